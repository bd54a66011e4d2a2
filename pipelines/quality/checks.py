"""The frames a day is validated on: table frames read from the lake, derived check frames in pandas.

Table frames are exactly what the run publishes (the unpublished marts days of ``stage_publish``, the
day's quarantine and ingest_files) and the day's delivery of each canonical input. Derived check
frames turn rules that span tables into rows plain GX expectations can judge:

- ``check_credit_sums``: one row per (seeded order, model): amount, credit sum, absolute difference.
- ``check_ingest_reconciliation``: one row per input source: ingest_files accounting vs lake rows.
- ``check_freshness``: one row: per source, days since its latest delivered file and the hours from
  its latest event to the end of the day.
- ``check_feed_rates``: one row: id-link rate, orphan exposure rate, unknown brand rate, quarantine rate.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from .. import arrival, lake, schemas, windows
from ..settings import Settings

CREDIT_SUMS = "check_credit_sums"
RECONCILIATION = "check_ingest_reconciliation"
FRESHNESS = "check_freshness"
FEED_RATES = "check_feed_rates"
CHECKS = (CREDIT_SUMS, RECONCILIATION, FRESHNESS, FEED_RATES)

#: Every landing source (a canonical input table).
SOURCES: tuple[str, ...] = tuple(t.name for t in schemas.INPUT_TABLES)
#: The event-time column of each event source.
EVENT_TIME = {"exposures": "event_time", "searches": "event_time", "orders": "paid_at"}


def age_column(source: str) -> str:
    return f"{source}_delivery_age_days"


def lag_column(source: str) -> str:
    return f"{source}_event_lag_hours"


def stored_key(t: schemas.Table) -> list[str]:
    from .suites import STORED_KEY

    return list(STORED_KEY.get(t.name, t.key) or t.key)


def table_frames(settings: Settings, day: date) -> dict[str, pd.DataFrame]:
    """The frames of every validated table for ``day``, sorted by their key (stable samples)."""
    from .suites import VALIDATED_TABLES

    state = arrival.State.load(settings)
    out: dict[str, pd.DataFrame] = {}
    for t in VALIDATED_TABLES:
        if t in schemas.FUNNEL_TABLES:
            frame = lake.read_table(settings.lake / arrival.MARTS, t.name, funnel_days(settings, state, t, day))
        else:
            frame = lake.read_table(settings.lake, t.name, None if t.partition is None else [day])
        out[t.name] = frame.sort_values(stored_key(t), kind="stable", ignore_index=True)
    return out


def funnel_days(settings: Settings, state: arrival.State, t: schemas.Table, day: date) -> list[date]:
    """The marts days of ``t`` to validate: what the run would publish (computed, not yet published);
    with nothing pending (``seedfunnel validate`` on demand), the days up to ``day`` still open."""
    pending = state.unpublished_days(t.name)
    if pending:
        return pending
    first = windows.daily_final_before(settings.funnel, day)
    return [d for d in lake.partitions(settings.lake / arrival.MARTS, t.name) if first <= d <= day]


def credit_sums(seeded: pd.DataFrame, credits: pd.DataFrame) -> pd.DataFrame:
    """Per (seeded order, model): amount, sum of credits, absolute difference (missing side = 0)."""
    models = pd.DataFrame({"model": list(schemas.ATTRIBUTION_MODELS)})
    # Plain object keys: pandas cannot merge Arrow-backed string columns that have no chunks.
    seeded = seeded[["order_id", "amount_fen"]].astype({"order_id": object})
    grid = seeded.merge(models, how="cross")
    sums = credits.groupby(["order_id", "model"], as_index=False, sort=False)["credit_fen"].sum()
    sums = sums.astype({"order_id": object, "model": object})
    grid = grid.astype({"model": object})
    out = grid.merge(sums, on=["order_id", "model"], how="outer")
    out["amount_fen"] = out["amount_fen"].fillna(0).astype("int64")
    out["credit_fen_sum"] = out["credit_fen"].fillna(0.0).astype("float64")
    out["abs_diff_fen"] = (out["credit_fen_sum"] - out["amount_fen"]).abs()
    out = out.drop(columns="credit_fen")
    return out.sort_values(["order_id", "model"], kind="stable", ignore_index=True)


def reconciliation(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per source of the day: ingest_files accounting and the rows the lake and quarantine hold."""
    from ..ingest.day import COLLAPSED

    files = tables[schemas.INGEST_FILES.name]
    acc = files.groupby("source")[["input_rows", "accepted_rows", "quarantined_rows"]].sum()
    out = acc.reindex(sorted(set(SOURCES) | set(acc.index)), fill_value=0).astype("int64")
    out["unaccounted_rows"] = out["input_rows"] - out["accepted_rows"] - out["quarantined_rows"]
    # The items snapshot merges every delivery so far: it has no per-day row count to reconcile.
    lake_rows = {s: len(tables[s]) for s in SOURCES if schemas.table(s).partition is not None}
    out["lake_rows"] = pd.Series(lake_rows, dtype="float64").reindex(out.index)
    collapses = out.index.isin(COLLAPSED)
    out["min_lake_rows"] = np.where(
        collapses, np.minimum(out["accepted_rows"], 1), out["accepted_rows"]
    ).astype("float64")
    out.loc[out["lake_rows"].isna(), "min_lake_rows"] = np.nan
    quarantine = tables[schemas.QUARANTINE.name]
    out["quarantine_lake_rows"] = quarantine.groupby("source").size().reindex(out.index, fill_value=0).astype("int64")
    return out.rename_axis("source").reset_index()


def freshness(settings: Settings, day: date, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row: per source, delivery age in days and event lag in hours."""
    from ..timeutil import day_start_utc

    days = [d for d in lake.partitions(settings.lake, schemas.INGEST_FILES.name) if d <= day]
    delivered = lake.read_arrow(settings.lake, schemas.INGEST_FILES.name, days, columns=["dt", "source"]).to_pandas()
    latest = delivered.groupby("source")["dt"].max()
    # Never delivered: as old as the ingestion history (every ingested day lacked it), plus one.
    never = (day - min(days, default=day)).days + 1
    row: dict[str, object] = {"dt": day}
    end = day_start_utc(day + timedelta(days=1))
    for s in SOURCES:
        row[age_column(s)] = (day - latest[s]).days if s in latest.index else never
        if s in EVENT_TIME:
            ts = tables[s][EVENT_TIME[s]]
            row[lag_column(s)] = (end - ts.max()) / pd.Timedelta(hours=1) if len(ts) else np.nan
    return pd.DataFrame([row])


def feed_rates(settings: Settings, day: date, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row: the day's id-link, orphan exposure, unknown brand and quarantine rates (NaN: no rows)."""
    from ..funnel.prepare import linked_ids
    from ..reference import load_reference

    exposures = tables[schemas.EXPOSURES.name]
    link_days = [d for d in lake.partitions(settings.lake, schemas.ID_LINKS.name) if d <= day]
    links = lake.read_table(settings.lake, schemas.ID_LINKS.name, link_days)
    # The funnel's own rule (SPEC 3): the winning claim of the latest delivery naming the ext id.
    good = linked_ids(links, settings.funnel.min_link_confidence)[["platform", "ext_user_id"]]
    ext = exposures[["platform", "ext_user_id"]].drop_duplicates()
    linked = ext.merge(good, how="left", indicator=True)["_merge"].eq("both")

    note_days = [d for d in lake.partitions(settings.lake, schemas.NOTES.name) if d <= day]
    notes = lake.read_arrow(settings.lake, schemas.NOTES.name, note_days, columns=["platform", "note_id"]).to_pandas()
    seen = pd.MultiIndex.from_frame(notes.drop_duplicates())
    orphan = ~pd.MultiIndex.from_frame(exposures[["platform", "note_id"]]).isin(seen)

    orders = tables[schemas.ORDERS.name]
    brands = load_reference(settings.seeds).brands["brand_id"]
    unknown = ~orders["brand_id"].isin(brands)

    input_rows = int(tables[schemas.INGEST_FILES.name]["input_rows"].sum())
    quarantined = len(tables[schemas.QUARANTINE.name])

    def share(mask) -> float:
        return float(np.mean(mask)) if len(mask) else np.nan

    return pd.DataFrame(
        [
            {
                "dt": day,
                "id_link_rate": share(linked),
                "orphan_exposure_rate": share(orphan),
                "unknown_brand_rate": share(unknown),
                "quarantine_rate": quarantined / input_rows if input_rows else np.nan,
            }
        ]
    )


def check_frames(settings: Settings, day: date, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every derived check frame of ``day``."""
    return {
        CREDIT_SUMS: credit_sums(
            tables[schemas.FCT_SEEDED_ORDERS.name], tables[schemas.FCT_ATTRIBUTION_CREDITS.name]
        ),
        RECONCILIATION: reconciliation(tables),
        FRESHNESS: freshness(settings, day, tables),
        FEED_RATES: feed_rates(settings, day, tables),
    }
