"""The frames a day is validated on: table frames read from the lake, derived check frames in pandas.

Table frames are exactly what the run publishes (the unpublished marts days of ``stage_publish``, the
day's quarantine and ingest_files) and the day's delivery of each canonical input. Derived check
frames turn rules that span tables into rows plain GX expectations can judge:

- ``check_credit_sums``: one row per (seeded order, model): amount, credit sum, absolute difference.
- ``check_ingest_reconciliation``: one row per input source: ingest_files accounting vs lake rows.
- ``check_freshness``: one row: per source (but the optional ones), days since its latest
  delivered file and the hours from its latest event to the end of the day.
- ``check_feed_rates``: one row: id-link rate, orphan exposure rate, unknown brand rate, quarantine
  rate, each with its days of trailing history and its working share against that history; and
  the unknown note type rate with its count (judged against a ceiling only: a warning).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from .. import arrival, lake, schemas, windows
from ..ingest.notes.base import UNKNOWN_TYPE
from ..settings import Settings

CREDIT_SUMS = "check_credit_sums"
RECONCILIATION = "check_ingest_reconciliation"
FRESHNESS = "check_freshness"
FEED_RATES = "check_feed_rates"
CHECKS = (CREDIT_SUMS, RECONCILIATION, FRESHNESS, FEED_RATES)

#: Tables validated with a table suite: the canonical inputs and everything stage_publish writes.
VALIDATED_TABLES: tuple[schemas.Table, ...] = schemas.INPUT_TABLES + schemas.COMPUTED_TABLES + (
    schemas.QUARANTINE,
    schemas.INGEST_FILES,
)

#: Columns unique within what the lake stores, where that differs from the declared key: notes
#: keep every delivered version (resolved on read, SPEC 3), so a (file, record) pair is the row;
#: id_links keep competing claims for one external id (the highest confidence wins on read).
STORED_KEY: dict[str, tuple[str, ...] | None] = {
    "notes": ("source_file", "source_row"),
    "id_links": None,
}

#: Every landing source (a canonical input table).
SOURCES: tuple[str, ...] = tuple(t.name for t in schemas.INPUT_TABLES)
#: The sources whose delivery age is checked: a day without an optional one (spend) lacks nothing.
FRESH_SOURCES: tuple[str, ...] = tuple(s for s in SOURCES if schemas.table(s) not in schemas.OPTIONAL_INPUTS)
#: The event-time column of each event source.
EVENT_TIME = arrival.EVENT_TIME


def age_column(source: str) -> str:
    return f"{source}_delivery_age_days"


def lag_column(source: str) -> str:
    return f"{source}_event_lag_hours"


def stored_key(t: schemas.Table) -> list[str]:
    return list(STORED_KEY.get(t.name, t.key) or t.key)


def table_frames(settings: Settings, day: date, *, sort: bool = True) -> dict[str, pd.DataFrame]:
    """The frames of every validated table for ``day``, each read once, sorted by their key
    (stable samples; ``sort=False``: in the lake's order, see ``in_key_order``)."""
    state = arrival.State.load(settings)
    out: dict[str, pd.DataFrame] = {}
    for t in VALIDATED_TABLES:
        if t in schemas.COMPUTED_TABLES and state.unpublished_days(t.name):
            frame = arrival.read_unpublished(settings.lake, state, t.name)  # exactly what publish writes
        elif t in schemas.COMPUTED_TABLES:
            frame = lake.read_table(settings.lake / arrival.MARTS, t.name, funnel_days(settings, state, t, day))
        else:
            frame = lake.read_table(settings.lake, t.name, None if t.partition is None else [day])
        out[t.name] = in_key_order(t.name, frame) if sort else frame
    return out


def in_key_order(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A validated table's frame sorted by its stored key (stable: ties keep the lake's order),
    so the first failing rows sampled are the same whatever order the lake returned them in.
    Check frames are built in key order: returned as they are. Sorting by string keys is slow
    (about 0.2 s for the 1.7 million boost rows of a 20k-user day), so validation sorts only the
    frame of a suite with a failed expectation."""
    t = next((t for t in VALIDATED_TABLES if t.name == name), None)
    if t is None:
        return frame
    return frame.sort_values(stored_key(t), kind="stable", ignore_index=True)


def funnel_days(settings: Settings, state: arrival.State, t: schemas.Table, day: date) -> list[date]:
    """The marts days of ``t`` to validate: what the run would publish (computed, not yet published);
    with nothing pending (``seedfunnel validate`` on demand), the days up to ``day`` still open."""
    pending = state.unpublished_days(t.name)
    if pending:
        return pending
    first = windows.daily_final_before(settings.funnel, day)
    return [d for d in lake.partitions(settings.lake / arrival.MARTS, t.name) if first <= d <= day]


def credit_sums(seeded: pd.DataFrame, credits: pd.DataFrame) -> pd.DataFrame:
    """Per (seeded order, model): amount, sum of credits, absolute difference (missing side = 0).

    Credits are summed in key order (order, model, touch), so the float sums do not depend on the
    order the frame comes in.
    """
    key = stored_key(schemas.FCT_ATTRIBUTION_CREDITS)
    credits = credits[[*key, "credit_fen"]].sort_values(key, kind="stable")
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
    """Per source of the day: ingest_files accounting and the rows the lake and quarantine hold.

    Exact, in both directions: the partition holds accepted_rows - collapsed_rows rows (only
    exact duplicates collapse), the quarantine quarantined_rows - refused_rows records plus one
    per refused file (its one record stands for all its rows). Rows logged before 0.4.0 have no
    refused or collapsed count: they count as 0.
    """
    files = tables[schemas.INGEST_FILES.name]
    counted = ["input_rows", "accepted_rows", "quarantined_rows", "refused_rows", "collapsed_rows"]
    files = files.assign(
        refused_rows=files["refused_rows"].fillna(0),
        collapsed_rows=files["collapsed_rows"].fillna(0),
        refused_files=files["refused_rows"].fillna(0).gt(0).astype("int64"),
    )
    acc = files.groupby("source")[[*counted, "refused_files"]].sum()
    out = acc.reindex(sorted(set(SOURCES) | set(acc.index)), fill_value=0).astype("int64")
    out["unaccounted_rows"] = out["input_rows"] - out["accepted_rows"] - out["quarantined_rows"]
    out["stored_rows"] = out["accepted_rows"] - out["collapsed_rows"]
    # The items snapshot merges every delivery so far: it has no per-day row count to reconcile.
    lake_rows = {s: len(tables[s]) for s in SOURCES if schemas.table(s).partition is not None}
    out["lake_rows"] = pd.Series(lake_rows, dtype="float64").reindex(out.index)
    out.loc[out["lake_rows"].isna(), "stored_rows"] = np.nan
    out["quarantine_records"] = out["quarantined_rows"] - out["refused_rows"] + out["refused_files"]
    quarantine = tables[schemas.QUARANTINE.name]
    out["quarantine_lake_rows"] = quarantine.groupby("source").size().reindex(out.index, fill_value=0).astype("int64")
    return out.rename_axis("source").reset_index()


def freshness(settings: Settings, day: date, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row: per source (optional ones aside), delivery age in days and event lag in hours."""
    from ..timeutil import day_start_utc

    days = [d for d in lake.partitions(settings.lake, schemas.INGEST_FILES.name) if d <= day]
    delivered = lake.read_arrow(settings.lake, schemas.INGEST_FILES.name, days, columns=["dt", "source"]).to_pandas()
    latest = delivered.groupby("source")["dt"].max()
    # Never delivered: as old as the ingestion history (every ingested day lacked it), plus one.
    never = (day - min(days, default=day)).days + 1
    row: dict[str, object] = {"dt": day}
    end = day_start_utc(day + timedelta(days=1))
    for s in FRESH_SOURCES:
        row[age_column(s)] = (day - latest[s]).days if s in latest.index else never
        if s in EVENT_TIME:
            ts = tables[s][EVENT_TIME[s]]
            row[lag_column(s)] = (end - ts.max()) / pd.Timedelta(hours=1) if len(ts) else np.nan
    return pd.DataFrame([row])


#: The feed rates of check_feed_rates: (rate, the table it speaks for, whether a higher rate is
#: healthier). A rate's "working share" is the rate itself when higher is healthier, else 1 - rate:
#: linked external ids, exposures of known notes, orders of known brands, accepted rows.
FEEDS: tuple[tuple[str, str, bool], ...] = (
    ("id_link_rate", schemas.ID_LINKS.name, True),
    ("orphan_exposure_rate", schemas.EXPOSURES.name, False),
    ("unknown_brand_rate", schemas.ORDERS.name, False),
    ("quarantine_rate", schemas.QUARANTINE.name, False),
)


#: Counted shares of the day's delivery judged against a ceiling only, never against history nor
#: critically (a rise is worth a look, not a reason to stop the day): rate -> (the table it speaks
#: for, the column of the count, the column of what it is counted among).
COUNTED_RATES: dict[str, tuple[str, str, str]] = {
    "unknown_note_type_rate": (schemas.NOTES.name, "unknown_note_types", "delivered_notes"),
}


def history_days_column(rate: str) -> str:
    return f"{rate}_history_days"


def vs_history_column(rate: str) -> str:
    return f"{rate}_vs_history"


def history_median_column(rate: str) -> str:
    return f"{rate}_history_median"


#: Feed rates already measured in this process, by what each day's were measured on (see
#: ``_rate_inputs``). A day's rates depend only on deliveries up to that day, so the trailing
#: history a day is judged against was mostly measured for the day before: kept, not re-read.
_MEASURED_RATES: dict[tuple, dict[str, object]] = {}
_MEASURED_RATES_KEPT = 512

#: The lake tables a day's feed rates read.
_RATE_TABLES = (schemas.ID_LINKS, schemas.NOTES, schemas.EXPOSURES, schemas.ORDERS, schemas.INGEST_FILES)


def _rate_inputs(settings: Settings, d: date, parts: dict[str, list[date]], brands: tuple) -> tuple:
    """What the feed rates of ``d`` are measured on: the settings that shape them, brands.csv's ids
    and every lake file read (links and notes delivered up to d, the exposures of d's cohorts,
    d's orders and ingest_files), each by size, modification time and inode (a rewritten
    partition is a new file: ``lake.write_partition`` replaces it)."""
    q = settings.quality
    cohorts = {d - timedelta(days=q.link_settle_days), d - timedelta(days=q.note_settle_days)}
    read = {
        schemas.ID_LINKS.name: lambda p: p <= d,
        schemas.NOTES.name: lambda p: p <= d,
        schemas.EXPOSURES.name: lambda p: p in cohorts,
        schemas.ORDERS.name: lambda p: p == d,
        schemas.INGEST_FILES.name: lambda p: p == d,
    }
    files = []
    for name, wanted in read.items():
        for p in parts[name]:
            if wanted(p):
                st = (lake.partition_path(settings.lake, name, p) / lake.PART).stat()
                files.append((name, p, st.st_size, st.st_mtime_ns, st.st_ino))
    return (
        str(Path(settings.lake).resolve()), d, q.link_settle_days, q.note_settle_days,
        settings.funnel.min_link_confidence, brands, tuple(files),
    )


def daily_feed_rates(settings: Settings, days: list[date]) -> pd.DataFrame:
    """The feed rates of each of ``days`` as that day measures them (index: day; NaN: nothing to count).

    Each day d sees only deliveries up to d. Feeds that arrive in batches are measured where they
    had time to arrive: the id-link rate of d is the share of the external ids exposing in the
    delivery of d - link_settle_days that a link delivered up to d links (the funnel's rule: the
    winning claim of the latest delivery naming the id, at min_link_confidence); the orphan exposure
    rate of d the share of the exposures delivered on d - note_settle_days whose note no delivery up
    to d holds. The unknown brand rate is of d's orders (brands.csv), the quarantine rate of d's
    input rows (ingest_files).

    A day measured before in this process on the same files and settings is not measured again.
    """
    from ..reference import load_reference

    brands = load_reference(settings.seeds).brands["brand_id"]
    parts = {t.name: lake.partitions(settings.lake, t.name) for t in _RATE_TABLES}
    keys = {d: _rate_inputs(settings, d, parts, tuple(brands)) for d in days}
    missing = [d for d in days if keys[d] not in _MEASURED_RATES]
    if missing:
        for row in _measure_feed_rates(settings, missing, brands):
            _MEASURED_RATES[keys[row["dt"]]] = row
        while len(_MEASURED_RATES) > _MEASURED_RATES_KEPT:
            del _MEASURED_RATES[next(iter(_MEASURED_RATES))]
    return pd.DataFrame([dict(_MEASURED_RATES[keys[d]]) for d in days]).set_index("dt")


def _measure_feed_rates(settings: Settings, days: list[date], brands: pd.Series) -> list[dict[str, object]]:
    """``daily_feed_rates`` measured: one row per day, read from the lake."""
    from ..funnel.prepare import linked_ids

    q = settings.quality
    last = max(days)

    def read(name: str, columns: list[str], upto: date = last, only: list[date] | None = None):
        """The rows, and their days as datetime64 (compared without a Python date per row)."""
        have = [d for d in lake.partitions(settings.lake, name) if d <= upto and (only is None or d in only)]
        data = lake.read_arrow(settings.lake, name, have, columns=columns)
        return data.to_pandas(), data.column("dt").to_numpy()

    links, links_dt = read(schemas.ID_LINKS.name, schemas.ID_LINKS.names)
    notes, notes_dt = read(schemas.NOTES.name, ["platform", "note_id", "dt"])
    link_cohort = {d: d - timedelta(days=q.link_settle_days) for d in days}
    note_cohort = {d: d - timedelta(days=q.note_settle_days) for d in days}
    cohorts = sorted(set(link_cohort.values()) | set(note_cohort.values()))
    exposures, exposures_dt = read(schemas.EXPOSURES.name, ["platform", "note_id", "ext_user_id", "dt"], only=cohorts)
    orders, orders_dt = read(schemas.ORDERS.name, ["brand_id", "dt"], only=days)
    files, files_dt = read(schemas.INGEST_FILES.name, ["input_rows", "quarantined_rows", "dt"], only=days)

    def on(dts: np.ndarray, d: date) -> np.ndarray:
        return dts == np.datetime64(d, "D")

    # Each exposure cohort once: its distinct external ids, and its notes with the first day a
    # delivery held each (seen by d: that day <= d).
    cohort = {c: exposures.loc[on(exposures_dt, c)] for c in cohorts}
    ext_ids = {c: pd.MultiIndex.from_frame(cohort[c][["platform", "ext_user_id"]].drop_duplicates()) for c in cohorts}
    first_seen = pd.Series(notes_dt).groupby([notes["platform"], notes["note_id"]], sort=False).min()

    def share(mask) -> float:
        return float(np.mean(mask)) if len(mask) else np.nan

    rows = []
    for d in days:
        ext = ext_ids[link_cohort[d]]
        good = linked_ids(links.loc[links_dt <= np.datetime64(d, "D")], settings.funnel.min_link_confidence)
        linked = ext.isin(pd.MultiIndex.from_frame(good[["platform", "ext_user_id"]]))
        read_notes = cohort[note_cohort[d]][["platform", "note_id"]]
        seen_on = first_seen.reindex(pd.MultiIndex.from_frame(read_notes)).to_numpy()
        orphan = ~(seen_on <= np.datetime64(d, "D"))  # never seen (NaT) compares False
        day_files = files.loc[on(files_dt, d)]
        input_rows = int(day_files["input_rows"].sum())
        rows.append(
            {
                "dt": d,
                "id_link_rate": share(linked),
                "orphan_exposure_rate": share(orphan),
                "unknown_brand_rate": share(~orders.loc[on(orders_dt, d), "brand_id"].isin(brands)),
                "quarantine_rate": int(day_files["quarantined_rows"].sum()) / input_rows if input_rows else np.nan,
            }
        )
    return rows


def feed_rates(settings: Settings, day: date, tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row: the day's feed rates and each against its own trailing history.

    Per rate: the rate (NaN: nothing to count); ``<rate>_history_days``, the days of the trailing
    ``feed_history_days`` with a rate; ``<rate>_history_median``, the rate of their median working
    share; ``<rate>_vs_history``, the day's working share over the
    median working share of those days (NaN when the day has no rate, with fewer than
    ``feed_min_history_days`` days of history, or a median of 0: nothing to judge a drop against).
    """
    q = settings.quality
    history = [day - timedelta(days=i) for i in range(q.feed_history_days, 0, -1)]
    rates = daily_feed_rates(settings, [*history, day])
    row: dict[str, object] = {"dt": day}
    for rate, _, higher_is_healthier in FEEDS:
        working = rates[rate] if higher_is_healthier else 1 - rates[rate]
        today, past = working.loc[day], working.loc[history].dropna()
        median = float(past.median()) if len(past) else np.nan
        judged = pd.notna(today) and len(past) >= q.feed_min_history_days and median > 0
        row[rate] = rates.loc[day, rate]
        row[history_days_column(rate)] = float(len(past))
        row[history_median_column(rate)] = median if higher_is_healthier else 1 - median
        row[vs_history_column(rate)] = today / median if judged else np.nan
    row.update(note_types(settings, day, tables))
    return pd.DataFrame([row])


def note_types(settings: Settings, day: date, tables: dict[str, pd.DataFrame] | None = None) -> dict[str, object]:
    """The notes delivered on ``day`` (each note once: its latest version of the day) and how many
    have a type code no exporter table lists (note_type unknown; ingestion keeps them, SPEC 3):
    ``delivered_notes``, ``unknown_note_types`` and their ratio ``unknown_note_type_rate`` (NaN
    when no note was delivered)."""
    name = schemas.NOTES.name
    if tables is not None and name in tables:
        notes = tables[name]
    else:
        notes = lake.read_table(settings.lake, name, [day])
    latest = lake.resolve_notes(notes[["platform", "note_id", "note_type", "dt", "source_file", "source_row"]])
    unknown = int(latest["note_type"].eq(UNKNOWN_TYPE).sum())
    return {
        "delivered_notes": len(latest),
        "unknown_note_types": unknown,
        "unknown_note_type_rate": unknown / len(latest) if len(latest) else np.nan,
    }


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
