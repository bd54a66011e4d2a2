"""The report's figures, read from the warehouse tables (and note titles, queries and the top notes'
brand evidence from the lake).

Every figure the report shows is computed here, as a small frame, from the published warehouse
tables, so the page states exactly what the warehouse holds. Big tables are aggregated in SQL
restricted to the window's days (a WHERE on the indexed day column); only small results come back
to pandas. Each big table is read once per report: the window's seeded search pairs serve both the
funnel and the top queries; the day's boost scores are read as their published distribution
(agg_boost_scores, a dozen rows), not row by row; each SPEC 5.11 snapshot table
(agg_attribution_channels, agg_cost, agg_roi_curve) is read once, for the day's as_of_dt, only the
rows the models section shows. The functions take an engine and a window (or
the day) and do no rendering.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from .. import lake, schemas, warehouse
from ..funnel.boost import score_edges
from ..funnel.strata import ADJUSTED, STRATUM
from ..funnel.uplift import COUNTS, adjusted_over, with_uplift
from ..redact import redact_url
from ..settings import Settings

#: Days a report covers, ending at its day (fewer when the warehouse starts later).
WINDOW_DAYS = 30
#: The market's claim the report sets the overall uplift against when there is no ground truth.
CLAIMED_UPLIFT = 2.7
TOP_BRANDS = 15
TOP_CREATORS = 10
TOP_NOTES = 10
TOP_QUERIES = 10
MODELS = schemas.ATTRIBUTION_MODELS
#: SPEC 5.11 snapshots: the models shown beside each other (heuristic, then data-driven), the
#: models of the vertical table, the model that assigns orders and GMV in the cost block, and how
#: many verticals, brands by spend and ROI curves the section shows.
SNAPSHOT_MODELS = schemas.ALL_MODELS
VERTICAL_MODELS = ("markov", "shapley", "last_touch")
COST_MODEL = "shapley"
TOP_VERTICALS = 10
TOP_COST_BRANDS = 10
TOP_ROI_BRANDS = 8

T = warehouse.TABLES


class NoDataError(LookupError):
    """The warehouse holds nothing for the requested day."""


@dataclass(frozen=True)
class Reference:
    """What the uplift is set against. Lines only where ground truth is really known (a simulated
    world's ``ground_truth.json``: source "planted"); otherwise none (source "none"). The market's
    claim (``CLAIMED_UPLIFT``) is only ever shown as a labelled, unverified claim, never as a line."""

    value: float | None  # the planted factor for a vertical match; None: no line
    source: str  # "planted" or "none"
    label: str
    mismatch: float | None = None  # the planted factor for a vertical mismatch, when known
    realised: float | None = None  # the simulated world's realised pooled uplift, when known
    claim: float = CLAIMED_UPLIFT  # the market article's figure: unverified, shown as text only


@dataclass
class ReportData:
    """Every figure of one report. While ``reading`` still reads them, a field may hold the
    ``Future`` of its figure: reading the field waits for it (and keeps the result)."""

    day: date
    start: date
    warehouse_url: str
    brand_names: dict[str, str]
    funnel: pd.DataFrame
    rate: pd.DataFrame
    uplift: pd.DataFrame
    reference: Reference
    credit_platform: pd.DataFrame
    credit_creator: pd.DataFrame
    boost: pd.DataFrame
    boost_stats: dict[str, float]
    dq: pd.DataFrame
    ingest: pd.DataFrame
    quarantine: pd.DataFrame
    top_notes: pd.DataFrame
    top_queries: pd.DataFrame
    evidence: pd.DataFrame  # note_evidence() of the top notes
    channels: pd.DataFrame  # attribution_channels(): agg_attribution_channels as of ``day``
    cost: pd.DataFrame  # cost(): agg_cost as of ``day``, model COST_MODEL
    roi: pd.DataFrame  # roi_curve(): agg_roi_curve as of ``day``

    def __getattribute__(self, name: str):
        value = object.__getattribute__(self, name)
        if isinstance(value, Future):
            value = value.result()
            object.__setattr__(self, name, value)
        return value

    def resolved(self) -> ReportData:
        """This, every figure read (``reading`` may still be reading some)."""
        for f in fields(self):
            getattr(self, f.name)
        return self


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _frame(conn: sa.Connection, stmt) -> pd.DataFrame:
    result = conn.execute(stmt)
    # Plain tuples: given SQLAlchemy rows, pandas probes every row for attributes it lacks, and each
    # failed look-up costs a raised exception (seconds on a few hundred thousand rows).
    return pd.DataFrame([tuple(r) for r in result.fetchall()], columns=list(result.keys()))


def _raw_rows(conn: sa.Connection, stmt) -> tuple[list[str], list[tuple]]:
    """The column names and rows of ``stmt`` as the DB-API driver returns them (plain tuples).

    For large results of numbers and strings only: SQLAlchemy's per-row processing, skipped here,
    costs more than the query itself, and it is what would convert dates and booleans.
    """
    result = conn.execute(stmt)
    return list(result.keys()), result.cursor.fetchall()


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def available_days(engine: sa.Engine) -> tuple[date, date] | None:
    """First and last day of agg_brand_funnel_daily in the warehouse, or None when empty."""
    t = T[schemas.AGG_BRAND_FUNNEL_DAILY.name]
    with warehouse.reading(engine) as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(t.c.dt), sa.func.max(t.c.dt))).one()
    return None if lo is None else (_as_date(lo), _as_date(hi))


def window(engine: sa.Engine, day: date, days: int = WINDOW_DAYS) -> date:
    """The first day of the report window ending at ``day``; NoDataError when ``day`` has no rows."""
    if not sa.inspect(engine).has_table(schemas.AGG_BRAND_FUNNEL_DAILY.name):
        raise NoDataError(
            f"the warehouse {redact_url(engine.url.render_as_string(hide_password=False))} has no "
            f"seedfunnel tables yet. Run the pipeline first (`seedfunnel run --start {day}`), or point "
            "--warehouse-url / SEEDFUNNEL_WAREHOUSE_URL at the warehouse it published to."
        )
    span = available_days(engine)
    t = T[schemas.AGG_BRAND_FUNNEL_DAILY.name]
    with warehouse.reading(engine) as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.dt == day)).scalar_one()
    if not n:
        have = f"it holds {span[0]} .. {span[1]}" if span else "it holds no funnel rows at all"
        raise NoDataError(
            f"the warehouse has no agg_brand_funnel_daily rows for {day} ({have}). Run the day first "
            f"(`seedfunnel run --start {day}`) or pick a day it holds."
        )
    return max(day - timedelta(days=days - 1), span[0])


# ---------------------------------------------------------------- figures


def seeded_pairs(engine: sa.Engine, start: date, end: date) -> pd.DataFrame:
    """The window's seeded pairs of fct_search_pairs (search_id, user_id, seeded_brand_ids): one
    query shared by the funnel (search-back users) and the top queries (seeded searches)."""
    pairs = T[schemas.FCT_SEARCH_PAIRS.name]
    with warehouse.reading(engine) as conn:
        keys, rows = _raw_rows(
            conn,
            sa.select(pairs.c.search_id, pairs.c.user_id, pairs.c.seeded_brand_ids)
            .where(pairs.c.dt.between(start, end), pairs.c.is_seeded),
        )
    if not rows:
        return pd.DataFrame({k: pd.Series(dtype=object) for k in keys})
    return pd.DataFrame(rows, columns=keys)


def _search_back_users(seeded: pd.DataFrame) -> pd.DataFrame:
    """Per brand: distinct users with a seeded pair naming the brand in its ``seeded_brand_ids``
    (brands joined by ``|``). Each distinct brand list is split once; (user, brand) pairs are
    counted as integer codes."""
    if seeded.empty:
        return pd.DataFrame({"brand_id": pd.Series(dtype=object), "search_back_users": pd.Series(dtype="int64")})
    users = pd.factorize(seeded["user_id"])[0].astype("int64")
    lists, combos = pd.factorize(seeded["seeded_brand_ids"].astype(str))
    split = [str(c).split("|") for c in combos]
    brands = sorted({b for parts in split for b in parts})
    code = {b: i for i, b in enumerate(brands)}
    flat = np.fromiter((code[b] for parts in split for b in parts), dtype="int64")
    sizes = np.fromiter((len(parts) for parts in split), dtype="int64", count=len(split))
    first = np.cumsum(sizes) - sizes  # each list's offset in ``flat``
    per_row = sizes[lists]
    row_first = np.repeat(first[lists], per_row)
    within = np.arange(int(per_row.sum())) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    brand = flat[row_first + within]
    pairs = np.sort(np.repeat(users, per_row) * len(brands) + brand)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]  # distinct (user, brand)
    counts = np.bincount(pairs % len(brands), minlength=len(brands))
    out = pd.DataFrame({"brand_id": pd.Series(brands, dtype=str), "search_back_users": counts.astype("int64")})
    return out[out["search_back_users"] > 0].reset_index(drop=True)


def brand_funnel(engine: sa.Engine, start: date, end: date, seeded: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per brand over the window: distinct exposed users -> distinct search-back users -> seeded orders, GMV.

    Exposed users: distinct users in fct_touches; search-back users: distinct users with a pair of
    fct_search_pairs seeded for the brand (``seeded``: ``seeded_pairs`` of the window, read when
    not given); seeded orders and GMV: fct_seeded_orders (payment day).
    """
    if seeded is None:
        seeded = seeded_pairs(engine, start, end)
    return _funnel(*_funnel_counts(engine, start, end), _search_back_users(seeded))


def _funnel_counts(engine: sa.Engine, start: date, end: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The window's distinct exposed users and its seeded orders and GMV, per brand."""
    orders = T[schemas.FCT_SEEDED_ORDERS.name]
    with warehouse.reading(engine) as conn:
        exposed = _frame(conn, _exposed_users(conn, start, end))
        paid = _frame(
            conn,
            sa.select(
                orders.c.brand_id,
                sa.func.count().label("seeded_orders"),
                sa.func.sum(orders.c.amount_fen).label("seeded_gmv_fen"),
            )
            .where(orders.c.dt.between(start, end))
            .group_by(orders.c.brand_id),
        )
    return exposed, paid


def _funnel(exposed: pd.DataFrame, paid: pd.DataFrame, back: pd.DataFrame) -> pd.DataFrame:
    out = exposed.merge(back, on="brand_id", how="outer").merge(paid, on="brand_id", how="outer")
    cols = ["exposed_users", "search_back_users", "seeded_orders", "seeded_gmv_fen"]
    out[cols] = out[cols].fillna(0).astype("int64")
    out = out[out["brand_id"].astype(bool)]
    return out.sort_values(["exposed_users", "brand_id"], ascending=[False, True], ignore_index=True)[
        ["brand_id", *cols]
    ]


#: The window's days may be at most this share of the days fct_touches holds for the distinct
#: exposed users to be counted walking the whole ``(brand_id, user_id, dt)`` index (SQLite).
WALK_SHARE = 0.5


def _exposed_users(conn: sa.Connection, start: date, end: date):
    """The statement of the window's distinct exposed users per brand (fct_touches).

    On SQLite, while the window holds most of the days of fct_touches (at least ``WALK_SHARE``),
    the count walks the index ``(brand_id, user_id, dt)`` in order: each brand's users come
    sorted, so no sort and no table row is needed. SQLite's planner, without statistics, would
    pick the day index instead (then sort every touch of the window twice), so the day filter is
    written ``+dt``, which no index serves. A longer warehouse, where the walk would read many
    days outside the window, and PostgreSQL (which plans with statistics) take the plain filter.
    """
    touches = T[schemas.FCT_TOUCHES.name]
    day = touches.c.dt
    if conn.dialect.name == "sqlite":
        # Two subqueries: SQLite reads one end of the day index for each (a single query with
        # both min and max would scan it).
        lo, hi = conn.execute(
            sa.select(sa.select(sa.func.min(day)).scalar_subquery(), sa.select(sa.func.max(day)).scalar_subquery())
        ).one()
        if lo is not None:
            held = (max(_as_date(hi), end) - min(_as_date(lo), start)).days + 1
            if (end - start).days + 1 >= WALK_SHARE * held:
                day = sa.sql.expression.UnaryExpression(day, operator=sa.sql.operators.custom_op("+"), type_=day.type)
    return (
        sa.select(touches.c.brand_id, sa.func.count(sa.distinct(touches.c.user_id)).label("exposed_users"))
        .where(day.between(start, end))
        .group_by(touches.c.brand_id)
    )


def search_back_rate(engine: sa.Engine, start: date, end: date) -> pd.DataFrame:
    """Per exposure day and platform ('all' too): summed exposed / searched-back (user, brand) counts."""
    t = T[schemas.AGG_BRAND_FUNNEL_DAILY.name]
    with warehouse.reading(engine) as conn:
        df = _frame(
            conn,
            sa.select(
                t.c.dt,
                t.c.platform,
                sa.func.sum(t.c.exposed_users).label("exposed_users"),
                sa.func.sum(t.c.searched_back_users).label("searched_back_users"),
                sa.func.min(sa.cast(t.c.is_final, sa.Integer)).label("is_final"),
            )
            .where(t.c.dt.between(start, end))
            .group_by(t.c.dt, t.c.platform),
        )
    df["dt"] = df["dt"].map(_as_date)
    df[["exposed_users", "searched_back_users"]] = df[["exposed_users", "searched_back_users"]].astype("int64")
    df["is_final"] = df["is_final"].astype(bool)
    exposed = df["exposed_users"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        df["search_back_rate"] = np.where(exposed > 0, df["searched_back_users"] / exposed, np.nan)
    return df.sort_values(["dt", "platform"], ignore_index=True)


def uplift(engine: sa.Engine, start: date, end: date, top_brands: int = TOP_BRANDS) -> pd.DataFrame:
    """Window uplift (sums of the daily counts, SPEC 5.7 recomputed) for the forest plot's rows.

    Rows: overall (level all: every brand's units pooled), by platform of the last touch, by
    vertical match, and the brands with the most seeded pairs (whose uplift is defined); each with
    the engagement-adjusted figure (SPEC 5.10) from agg_uplift_strata.
    """
    t = T[schemas.AGG_CONVERSION_UPLIFT.name]
    overall_rows = sa.and_(t.c.level == "all")
    brand_rows = sa.and_(t.c.level == "brand", t.c.slice == "all")
    with warehouse.reading(engine) as conn:
        df = _frame(
            conn,
            sa.select(
                t.c.level, t.c.subject_id, t.c.slice, t.c.slice_value,
                *(sa.func.sum(t.c[c]).label(c) for c in COUNTS),
            )
            .where(t.c.dt.between(start, end), sa.or_(overall_rows, brand_rows))
            .group_by(t.c.level, t.c.subject_id, t.c.slice, t.c.slice_value),
        )
    df[COUNTS] = df[COUNTS].fillna(0).astype("int64")
    df = with_uplift(df)
    # SPEC 5.10 over the window: each stratum's counts summed over the days, then Mantel-Haenszel.
    k = T[schemas.AGG_UPLIFT_STRATA.name]
    keys = ["level", "subject_id", "slice", "slice_value"]
    strata_keys = [k.c[c] for c in (*keys, *STRATUM)]
    with warehouse.reading(engine) as conn:
        strata = _frame(
            conn,
            sa.select(*strata_keys, *(sa.func.sum(k.c[c]).label(c) for c in COUNTS))
            .where(
                k.c.dt.between(start, end),
                sa.or_(k.c.level == "all", sa.and_(k.c.level == "brand", k.c.slice == "all")),
            )
            .group_by(*strata_keys),
        )
    strata[COUNTS] = strata[COUNTS].fillna(0).astype("int64")
    df = df.merge(adjusted_over(strata, keys), on=keys, how="left")
    df[ADJUSTED] = df[ADJUSTED].astype("float64")
    group = np.select(
        [df["level"].eq("brand"), df["slice"].eq("platform"), df["slice"].eq("vertical_match")],
        ["brand", "platform", "vertical_match"],
        default="overall",
    )
    df["group"] = group
    brands = df[df["group"].eq("brand") & df["uplift"].notna()]
    brands = brands.sort_values(["seeded_pairs", "subject_id"], ascending=[False, True]).head(top_brands)
    order = {"overall": 0, "platform": 1, "vertical_match": 2, "brand": 3}
    platform_order = {p: i for i, p in enumerate(schemas.PLATFORMS)}
    rest = df[~df["group"].eq("brand")].copy()
    rest["_g"] = rest["group"].map(order)
    rest["_k"] = rest["slice_value"].map(platform_order).fillna(0)
    rest = rest.sort_values(["_g", "_k", "slice_value"]).drop(columns=["_g", "_k"])
    out = pd.concat([rest, brands], ignore_index=True)
    out["key"] = np.where(out["group"].eq("brand"), "brand:" + out["subject_id"], out["group"] + ":" + out["slice_value"])
    return out.reset_index(drop=True)


def reference_line(landing: Path | None) -> Reference:
    """The planted effect from ``landing/ground_truth.json`` when there is one, else no line."""
    path = Path(landing) / "ground_truth.json" if landing else None
    if path and path.is_file():
        try:
            truth = json.loads(path.read_text(encoding="utf-8"))
            est = truth["estimand"]
            value = float(est["factor_vertical_match"])
            realised = (est.get("realised_uplift") or {}).get("seeded")
            return Reference(
                value=value,
                source="planted",
                label=f"planted effect (ground_truth.json): vertical match {value:g}x",
                mismatch=float(est["factor_mismatch"]) if est.get("factor_mismatch") is not None else None,
                realised=float(realised) if realised is not None else None,
            )
        except (ValueError, KeyError, TypeError):
            pass
    return Reference(value=None, source="none", label="no ground truth: no reference line")


def credits(engine: sa.Engine, start: date, end: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Attributed GMV (fen) by platform and by creator (top by last_touch), one column per model."""
    t = T[schemas.FCT_ATTRIBUTION_CREDITS.name]
    in_window = t.c.dt.between(start, end)
    with warehouse.reading(engine) as conn:
        by_platform = _frame(
            conn,
            sa.select(t.c.platform, t.c.model, sa.func.sum(t.c.credit_fen).label("credit_fen"))
            .where(in_window)
            .group_by(t.c.platform, t.c.model),
        )
        by_creator = _frame(
            conn,
            sa.select(t.c.platform, t.c.author_id, t.c.model, sa.func.sum(t.c.credit_fen).label("credit_fen"))
            .where(in_window)
            .group_by(t.c.platform, t.c.author_id, t.c.model),
        )
    platform = _wide(by_platform, ["platform"])
    platform = platform.set_index("platform").reindex(list(schemas.PLATFORMS), fill_value=0.0).reset_index()
    creator = _wide(by_creator, ["platform", "author_id"])
    creator = creator.sort_values(
        ["last_touch", "platform", "author_id"], ascending=[False, True, True], ignore_index=True
    ).head(TOP_CREATORS)
    if len(creator):
        creator = creator.merge(_verticals(engine, creator, start, end), on=["platform", "author_id"], how="left")
    else:
        creator["vertical"] = pd.Series(dtype=object)
    return platform, creator


#: Days at the end of the window where a top creator's vertical is looked up first.
RECENT_DAYS = 3


def _verticals(engine: sa.Engine, creators: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """The vertical of each (platform, author_id) of ``creators``: the max over the creator's
    touches in fct_touches.

    A vertical is the creator's (seeds/creators.csv holds one per creator), the same on every
    touch, so the touches of a few days suffice: the window's last ``RECENT_DAYS`` days first,
    then the rest of the window, then the days before it, each only for the creators not found
    yet. Top creators by credit have touches in the last days, so one small query usually does.
    """
    touches = T[schemas.FCT_TOUCHES.name]
    recent = max(start, end - timedelta(days=RECENT_DAYS - 1))
    spans = [touches.c.dt.between(recent, end), touches.c.dt < start]
    if recent > start:
        spans.insert(1, touches.c.dt.between(start, recent - timedelta(days=1)))
    keys = ["platform", "author_id"]
    missing = creators[keys].drop_duplicates()
    found = []
    with warehouse.reading(engine) as conn:
        for days in spans:
            got = _frame(
                conn,
                sa.select(touches.c.platform, touches.c.author_id, sa.func.max(touches.c.vertical).label("vertical"))
                .where(days, touches.c.author_id.in_(sorted(set(missing["author_id"]))))
                .group_by(touches.c.platform, touches.c.author_id),
            ).merge(missing, on=keys)
            found.append(got)
            missing = missing.merge(got[keys], on=keys, how="left", indicator=True)
            missing = missing[missing["_merge"].eq("left_only")].drop(columns="_merge")
            if missing.empty:
                break
    return pd.concat(found, ignore_index=True)


def _wide(long: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if long.empty:
        return pd.DataFrame({**{k: pd.Series(dtype=object) for k in keys}, **{m: pd.Series(dtype="float64") for m in MODELS}})
    wide = long.pivot_table(index=keys, columns="model", values="credit_fen", aggfunc="sum", fill_value=0.0)
    return wide.reindex(columns=list(MODELS), fill_value=0.0).astype("float64").reset_index().rename_axis(columns=None)


def boost_histogram(engine: sa.Engine, day: date) -> tuple[pd.DataFrame, dict[str, float]]:
    """The day's distribution of brand_boost_signals scores, as agg_boost_scores holds it: the
    signals in each bin [low, high) (the last [low, 1]), and the day's signals, users and median.

    A dozen rows, published beside the boost snapshots: no score is read (two million rows a day
    at 100k users)."""
    t = T[schemas.AGG_BOOST_SCORES.name]
    with warehouse.reading(engine) as conn:
        rows = _frame(
            conn,
            sa.select(t.c.bin_low, t.c.bin_high, t.c.signals, t.c.day_signals, t.c.day_users, t.c.day_median_score)
            .where(t.c.as_of_dt == day)
            .order_by(t.c.bin_low),
        )
    if rows.empty:
        edges = score_edges()
        rows = pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "signals": 0})
        return rows, {"signals": 0, "users": 0, "median": float("nan")}
    hist = rows[["bin_low", "bin_high", "signals"]].astype({"bin_low": "float64", "bin_high": "float64", "signals": "int64"})
    first = rows.iloc[0]
    stats = {"signals": int(first["day_signals"]), "users": int(first["day_users"]), "median": float(first["day_median_score"])}
    return hist, stats


def data_quality(engine: sa.Engine, day: date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """dq_results of the day, ingest_files totals per source, quarantine reasons per source."""
    dq = warehouse.read_table(engine, schemas.DQ_RESULTS.name, T[schemas.DQ_RESULTS.name].c.dt == day)
    files = T[schemas.INGEST_FILES.name]
    quarantine = T[schemas.QUARANTINE.name]
    with warehouse.reading(engine) as conn:
        ingest = _frame(
            conn,
            sa.select(
                files.c.source,
                sa.func.count().label("files"),
                sa.func.sum(files.c.input_rows).label("input_rows"),
                sa.func.sum(files.c.accepted_rows).label("accepted_rows"),
                sa.func.sum(files.c.quarantined_rows).label("quarantined_rows"),
            )
            .where(files.c.dt == day)
            .group_by(files.c.source)
            .order_by(files.c.source),
        )
        reasons = _frame(
            conn,
            sa.select(
                quarantine.c.source,
                quarantine.c.reason,
                sa.func.count().label("rows"),
                sa.func.min(quarantine.c.message).label("example"),
            )
            .where(quarantine.c.dt == day)
            .group_by(quarantine.c.source, quarantine.c.reason)
            .order_by(quarantine.c.source, quarantine.c.reason),
        )
    for c in ("files", "input_rows", "accepted_rows", "quarantined_rows"):
        ingest[c] = ingest[c].astype("int64")
    reasons["rows"] = reasons["rows"].astype("int64")
    dq = dq.sort_values(["success", "severity", "table_name", "expectation"], ignore_index=True)
    return dq, ingest, reasons


def _rows_of_notes(settings: Settings, name: str, notes: pd.DataFrame, days: list[date] | None = None) -> pd.DataFrame:
    """The rows of lake table ``name`` for the (platform, note_id) pairs of ``notes`` only.

    A pyarrow filter on note_id skips every other row inside each file, so a report reads a few
    rows of the notes and note_brand_evidence tables, never the whole tables.
    """
    if notes.empty:
        return schemas.conform(name, schemas.table(name).arrow_schema().empty_table().to_pandas())
    ids = sorted(set(notes["note_id"].astype(str)))
    data = schemas.conform(name, lake.read_arrow(settings.lake, name, days, filters=[("note_id", "in", ids)]).to_pandas())
    wanted = pd.MultiIndex.from_frame(notes[["platform", "note_id"]].astype(str))
    return data[pd.MultiIndex.from_frame(data[["platform", "note_id"]].astype(str)).isin(wanted)].reset_index(drop=True)


def top_notes(engine: sa.Engine, settings: Settings, start: date, end: date) -> pd.DataFrame:
    """The notes with the most last-touch credit in the window, with their titles from the lake."""
    t = T[schemas.FCT_ATTRIBUTION_CREDITS.name]
    with warehouse.reading(engine) as conn:
        df = _frame(
            conn,
            sa.select(t.c.platform, t.c.note_id, t.c.author_id, sa.func.sum(t.c.credit_fen).label("credit_fen"))
            .where(t.c.dt.between(start, end), t.c.model == "last_touch")
            .group_by(t.c.platform, t.c.note_id, t.c.author_id),
        )
    df = df.sort_values(["credit_fen", "platform", "note_id"], ascending=[False, True, True]).head(TOP_NOTES)
    days = [d for d in lake.partitions(settings.lake, "notes") if d <= end]
    titles = pd.DataFrame(columns=["platform", "note_id", "title"])
    if len(df) and days:
        notes = lake.resolve_notes(_rows_of_notes(settings, schemas.NOTES.name, df, days))
        titles = notes[["platform", "note_id", "title"]]
    out = df.merge(titles, on=["platform", "note_id"], how="left")
    out["title"] = out["title"].fillna("")
    return out.reset_index(drop=True)


#: Characters of a note's normalised field shown either side of a brand match in its evidence.
SNIPPET_CHARS = 24
FIELD_ORDER = {"title": 0, "text": 1, "tags": 2}
EVIDENCE_COLUMNS = [*schemas.NOTE_BRAND_EVIDENCE.names, "before", "match", "after"]


def _field_text(note, field: str, index: int) -> str | None:
    """The text of one field of a note row (a tag by its index), None when the note lacks it."""
    if field != "tags":
        value = note[field]
        return value if isinstance(value, str) else None
    tags = note["tags"]
    if tags is None or not 0 <= index < len(tags):
        return None
    return tags[index]


def note_evidence(settings: Settings, notes: pd.DataFrame) -> pd.DataFrame:
    """Why each of ``notes`` (platform, note_id) mentions its brands: its note_brand_evidence rows.

    One row per alias match (schemas.NOTE_BRAND_EVIDENCE: alias, field, tag index, position in the
    normalised field, rule plain / context, whether it counts, the context that confirmed it), in
    the order of ``notes``, then field (title, text, tags), tag index and position. ``before``,
    ``match``, ``after``: a snippet of the normalised field around the match (SNIPPET_CHARS either
    side, ``…`` where cut), from the note version the evidence was computed on (the latest
    delivery, as the runner's matching reads it); None when the note is not in the lake or its
    text no longer holds the alias at that position (evidence of an older version).
    """
    from ..text.normalize import normalize_many

    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in EVIDENCE_COLUMNS})
    if notes.empty:
        return empty
    evidence = _rows_of_notes(settings, schemas.NOTE_BRAND_EVIDENCE.name, notes)
    if evidence.empty:
        return empty
    rank = {(p, n): i for i, (p, n) in enumerate(zip(notes["platform"].astype(str), notes["note_id"].astype(str), strict=True))}
    evidence["_note"] = [rank[(p, n)] for p, n in zip(evidence["platform"], evidence["note_id"], strict=True)]
    evidence["_field"] = evidence["field"].map(FIELD_ORDER)
    evidence = evidence.sort_values(["_note", "_field", "field_index", "position", "brand_id"], kind="stable", ignore_index=True)
    evidence = evidence.drop(columns=["_note", "_field"])

    versions = lake.resolve_notes(_rows_of_notes(settings, schemas.NOTES.name, notes))
    by_note = {(r["platform"], r["note_id"]): r for r in versions.to_dict("records")}
    texts = [
        _field_text(by_note[(p, n)], f, int(i)) if (p, n) in by_note else None
        for p, n, f, i in zip(evidence["platform"], evidence["note_id"], evidence["field"], evidence["field_index"], strict=True)
    ]
    normal = normalize_many(texts)
    snippets = [
        _snippet(text, int(position), alias) if raw is not None else (None, None, None)
        for text, raw, position, alias in zip(normal, texts, evidence["position"], evidence["alias"], strict=True)
    ]
    before, match, after = (list(part) for part in zip(*snippets, strict=True))
    return evidence.assign(before=before, match=match, after=after)[EVIDENCE_COLUMNS]


def _snippet(text: str, position: int, alias: str) -> tuple[str | None, str | None, str | None]:
    """(before, match, after) around ``alias`` at ``position`` of the normalised ``text``;
    Nones when the text does not hold the alias there."""
    end = position + len(alias)
    if text[position:end] != alias:
        return None, None, None
    lo, hi = max(0, position - SNIPPET_CHARS), min(len(text), end + SNIPPET_CHARS)
    return ("…" if lo > 0 else "") + text[lo:position], text[position:end], text[end:hi] + ("…" if hi < len(text) else "")


def top_queries(
    engine: sa.Engine, settings: Settings, start: date, end: date, seeded: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The most frequent queries of search-backs (seeded pairs) in the window, from the lake's searches.

    ``seeded``: ``seeded_pairs`` of the window (read when not given). Only the three columns needed
    are read from the lake, and only the rows of those searches reach pandas.
    """
    if seeded is None:
        seeded = seeded_pairs(engine, start, end)
    if seeded.empty:
        return pd.DataFrame({"query": pd.Series(dtype=object), "searches": pd.Series(dtype="int64")})
    # A search is delivered on its day or later; read the window's deliveries plus a few days.
    days = [d for d in lake.partitions(settings.lake, "searches") if start <= d <= end + timedelta(days=3)]
    searches = lake.read_arrow(settings.lake, "searches", days, columns=["dt", "search_id", "query"])
    ids = pa.array(pd.unique(seeded["search_id"].astype(str)), type=searches.schema.field("search_id").type)
    searches = searches.filter(pc.is_in(searches["search_id"], value_set=ids))
    searches = searches.to_pandas().sort_values("dt", kind="stable")
    # The query of each search's latest delivery (a later delivery is a new version, SPEC 3).
    searches = searches.drop_duplicates("search_id", keep="last")[["search_id", "query"]]
    counts = searches.groupby("query").size().rename("searches").reset_index()
    return counts.sort_values(["searches", "query"], ascending=[False, True], ignore_index=True).head(TOP_QUERIES)


# ---------------------------------------------------------------- SPEC 5.11 snapshots (as of the day)
# Each snapshot table is read once, for the report's day only (a WHERE on its indexed as_of_dt),
# and only the rows the section shows: a few hundred rows at most.

def _shown(table: schemas.Table) -> tuple[str, ...]:
    """A snapshot's columns but the as-of day (the query's filter) and run_id."""
    return tuple(c for c in table.names if c not in ("as_of_dt", "run_id"))


CHANNEL_COLUMNS = _shown(schemas.AGG_ATTRIBUTION_CHANNELS)
COST_COLUMNS = _shown(schemas.AGG_COST)
ROI_COLUMNS = _shown(schemas.AGG_ROI_CURVE)


def _typed(df: pd.DataFrame, table: schemas.Table) -> pd.DataFrame:
    """Rows of a snapshot query in the declared in-memory types: floats (nullable integers too)
    as float64 with NaN for null, dates as ``datetime.date``, booleans as bool, text as object."""
    df = df.copy()
    for c in df.columns:
        kind = table.column(c).type
        if kind == "float64" or (kind == "int64" and table.column(c).nullable):
            df[c] = df[c].astype("float64")
        elif kind == "int64":
            df[c] = df[c].astype("int64")
        elif kind == "date":
            df[c] = pd.Series([None if v is None else _as_date(v) for v in df[c]], index=df.index, dtype=object)
        elif kind == "bool":
            df[c] = df[c].astype(bool)
        else:
            df[c] = df[c].astype(object)
    return df


def _snapshot(engine: sa.Engine, table: schemas.Table, columns, day: date, *where, order: tuple[str, ...]) -> pd.DataFrame:
    """The columns of ``table``'s snapshot as of ``day`` (one query), typed and sorted by ``order``."""
    t = T[table.name]
    with warehouse.reading(engine) as conn:
        df = _frame(conn, sa.select(*(t.c[c] for c in columns)).where(t.c.as_of_dt == day, *where))
    if df.empty:
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return _typed(df, table).sort_values(list(order), kind="stable", ignore_index=True)


def attribution_channels(engine: sa.Engine, day: date) -> pd.DataFrame:
    """agg_attribution_channels as of ``day``: every model's platform rows, and the vertical rows
    of VERTICAL_MODELS (creator rows are not shown). Sorted by kind, model, channel."""
    t = T[schemas.AGG_ATTRIBUTION_CHANNELS.name]
    shown = sa.or_(
        t.c.channel_kind == "platform",
        sa.and_(t.c.channel_kind == "vertical", t.c.model.in_(VERTICAL_MODELS)),
    )
    return _snapshot(
        engine, schemas.AGG_ATTRIBUTION_CHANNELS, CHANNEL_COLUMNS, day, shown,
        order=("channel_kind", "model", "channel"),
    )


def cost(engine: sa.Engine, day: date, model: str = COST_MODEL) -> pd.DataFrame:
    """agg_cost as of ``day`` under ``model``, levels platform and brand. Sorted by level, subject."""
    t = T[schemas.AGG_COST.name]
    return _snapshot(
        engine, schemas.AGG_COST, COST_COLUMNS, day, t.c.model == model, t.c.level.in_(("platform", "brand")),
        order=("level", "subject_id"),
    )


def roi_curve(engine: sa.Engine, day: date) -> pd.DataFrame:
    """agg_roi_curve as of ``day``: every (category, brand, x days). Sorted by its key."""
    return _snapshot(
        engine, schemas.AGG_ROI_CURVE, ROI_COLUMNS, day, order=("category_id", "brand_id", "x_days"),
    )


def channel_order(channel: str) -> tuple[int, str]:
    """Platforms in schemas.PLATFORMS order, anything else after them by name."""
    order = {p: i for i, p in enumerate(schemas.PLATFORMS)}
    return order.get(channel, len(order)), channel


def model_order(model: str) -> tuple[int, str]:
    """schemas.ALL_MODELS order (heuristic, then data-driven); anything else after them by name."""
    order = {m: i for i, m in enumerate(SNAPSHOT_MODELS)}
    return order.get(model, len(order)), model


def tied_pairs(channels: pd.DataFrame, model: str, kind: str = "platform") -> list[tuple[str, str]]:
    """The pairs of channels of ``kind`` whose shares under ``model`` cannot be told apart (either
    names the other in ``tied_with``), each pair and the list in channel_order."""
    rows = channels[channels["model"].eq(model) & channels["channel_kind"].eq(kind)]
    pairs = set()
    for channel, tied in zip(rows["channel"], rows["tied_with"], strict=True):
        if not isinstance(tied, str):
            continue
        for other in tied.split("|"):
            other = other.strip()
            if other and other != channel:
                pairs.add(tuple(sorted((str(channel), other), key=channel_order)))
    return sorted(pairs, key=lambda p: (channel_order(p[0]), channel_order(p[1])))


def top_verticals(channels: pd.DataFrame, n: int = TOP_VERTICALS) -> pd.DataFrame:
    """The vertical rows of the ``n`` verticals with the largest Shapley share (ties and verticals
    without a Shapley row by name, after), each vertical's rows in VERTICAL_MODELS order."""
    rows = channels[channels["channel_kind"].eq("vertical") & channels["model"].isin(VERTICAL_MODELS)]
    shapley = rows[rows["model"].eq("shapley")].set_index("channel")["share"]
    ranked = pd.DataFrame({"channel": sorted(set(rows["channel"]))})
    ranked["shapley"] = ranked["channel"].map(shapley).astype("float64")
    ranked = ranked.sort_values(["shapley", "channel"], ascending=[False, True], na_position="last", kind="stable")
    rank = {c: i for i, c in enumerate(ranked["channel"].head(n))}
    models = {m: i for i, m in enumerate(VERTICAL_MODELS)}
    out = rows[rows["channel"].isin(rank)].copy()
    out["_r"] = out["channel"].map(rank)
    out["_m"] = out["model"].map(models)
    return out.sort_values(["_r", "_m"], kind="stable", ignore_index=True).drop(columns=["_r", "_m"])


def top_cost_brands(cost_rows: pd.DataFrame, n: int = TOP_COST_BRANDS) -> pd.DataFrame:
    """The brand rows of agg_cost with the most spend (spend > 0; ties by brand_id)."""
    brands = cost_rows[cost_rows["level"].eq("brand") & (cost_rows["spend_fen"] > 0)]
    return brands.sort_values(["spend_fen", "subject_id"], ascending=[False, True], kind="stable", ignore_index=True).head(n)


def roi_brands(roi: pd.DataFrame) -> tuple[int | None, list[str]]:
    """Which brands the ROI chart and table show, most spend first: the brands with spend in some
    cohort, ranked by their spend at the largest x with any spend (among schemas.ROI_DAYS, shared
    by every category; a decision cycle's x only when no ROI_DAYS cohort has spend), then by their
    largest spend, then brand_id. Returns that x (None without spend) and the ranked brand_ids."""
    spent = roi[roi["spend_fen"] > 0]
    if spent.empty:
        return None, []
    common = spent[spent["x_days"].isin(schemas.ROI_DAYS)]
    x = int((common if len(common) else spent)["x_days"].max())
    at_x = spent[spent["x_days"].eq(x)].groupby("brand_id")["spend_fen"].sum()
    ranked = pd.DataFrame({"brand_id": sorted(set(spent["brand_id"]))})
    ranked["at_x"] = ranked["brand_id"].map(at_x).fillna(0.0)
    ranked["most"] = ranked["brand_id"].map(spent.groupby("brand_id")["spend_fen"].max())
    ranked = ranked.sort_values(["at_x", "most", "brand_id"], ascending=[False, False, True], kind="stable")
    return x, ranked["brand_id"].tolist()


#: The seed files ``load_reference`` reads: the brand names are reloaded when any of them changes.
SEED_FILES = ("brands.csv", "categories.csv", "creators.csv")


def brand_names(seeds: Path) -> dict[str, str]:
    """brand_id -> name from the seeds (read and validated by ``load_reference``); kept while the
    seed files are unchanged, so a process writing a report per day reads them once."""
    stamps = []
    for name in SEED_FILES:
        try:
            st = (seeds / name).stat()
            stamps.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((name, None, None))
    return dict(_brand_names(seeds.resolve(), tuple(stamps)))


@lru_cache(maxsize=4)
def _brand_names(seeds: Path, _stamps: tuple) -> tuple[tuple[str, str], ...]:
    from ..reference import load_reference

    brands = load_reference(seeds).brands
    return tuple(zip(brands["brand_id"], brands["name"], strict=True))


#: Threads reading the report's figures at once (each on its own connection): the database works
#: on one query (the SQLite and PostgreSQL drivers release the GIL) while Python builds another's frame.
READERS = 3


def collect(settings: Settings, engine: sa.Engine, day: date, days: int = WINDOW_DAYS) -> ReportData:
    """Every figure of the report for ``day`` (window ``days`` long), read (``reading``)."""
    with reading(settings, engine, day, days) as figures:
        return figures.resolved()


@contextmanager
def reading(settings: Settings, engine: sa.Engine, day: date, days: int = WINDOW_DAYS) -> Iterator[ReportData]:
    """The figures of the report for ``day`` (window ``days`` long), as they are being read.

    The figures are independent reads (the window's seeded pairs feed both the funnel and the top
    queries, the top notes their evidence), run on ``READERS`` threads; each is the same frame a
    read on its own would give. Each field of the ``ReportData`` yielded waits for its own read, so
    the page can be drawn from the first figures while the database still reads the others. The
    small snapshot reads come first (the charts drawn first need them), then the longest reads.
    """
    start = window(engine, day, days)
    names = brand_names(Path(settings.seeds))
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="report-read") as pool:
        # A task that needs another's result is submitted after it.
        channels = pool.submit(attribution_channels, engine, day)
        spend = pool.submit(cost, engine, day)
        roi = pool.submit(roi_curve, engine, day)
        rate = pool.submit(search_back_rate, engine, start, day)
        dq = pool.submit(data_quality, engine, day)
        seeded = pool.submit(seeded_pairs, engine, start, day)
        boost = pool.submit(boost_histogram, engine, day)
        credit = pool.submit(credits, engine, start, day)
        counts = pool.submit(_funnel_counts, engine, start, day)
        up = pool.submit(uplift, engine, start, day)
        notes = pool.submit(top_notes, engine, settings, start, day)
        queries = pool.submit(lambda: top_queries(engine, settings, start, day, seeded.result()))
        evidence = pool.submit(lambda: note_evidence(settings, notes.result()))
        funnel = pool.submit(lambda: _funnel(*counts.result(), _search_back_users(seeded.result())))
        figures = ReportData(
            day=day,
            start=start,
            warehouse_url=redact_url(settings.resolved_warehouse_url()),
            brand_names=names,
            funnel=funnel,
            rate=rate,
            uplift=up,
            reference=reference_line(settings.landing),
            credit_platform=_item(credit, 0),
            credit_creator=_item(credit, 1),
            boost=_item(boost, 0),
            boost_stats=_item(boost, 1),
            dq=_item(dq, 0),
            ingest=_item(dq, 1),
            quarantine=_item(dq, 2),
            top_notes=notes,
            top_queries=queries,
            evidence=evidence,
            channels=channels,
            cost=spend,
            roi=roi,
        )
        try:
            yield figures
        finally:
            pool.shutdown(cancel_futures=True)  # a page that failed leaves no read queued


def _item(future: Future, i: int) -> Future:
    """The future of item ``i`` of ``future``'s result (a tuple), settled when ``future`` is."""
    out: Future = Future()

    def settle(done: Future) -> None:
        if done.cancelled():
            out.cancel()
        elif done.exception() is not None:
            out.set_exception(done.exception())
        else:
            out.set_result(done.result()[i])

    future.add_done_callback(settle)
    return out
