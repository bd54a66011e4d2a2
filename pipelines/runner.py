"""The daily run, stage by stage: ingest -> prepare inputs -> funnel per user bucket -> reduce -> publish.

Each stage is a function of (settings, day, ...) that reads and writes the lake and returns paths
and counts, never data: the Airflow DAG calls the same functions as tasks, and
``seedfunnel run`` calls them in-process, day by day.
"""

from __future__ import annotations

import importlib
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import lake, schemas
from .funnel.inputs import FunnelInputs
from .settings import FunnelParams, Settings
from .timeutil import days as day_range

ENGINES = {"pandas": "pipelines.funnel.engine", "duckdb": "pipelines.oracle.duckdb_engine"}
MARTS = "marts"

#: Table groups by the window that decides which days a run rewrites (docs/semantics.md).
PAIR_WINDOW_TABLES = (
    schemas.FCT_TOUCHES.name,
    schemas.FCT_SEARCH_PAIRS.name,
    schemas.FCT_SEEDED_ORDERS.name,
    schemas.FCT_ATTRIBUTION_CREDITS.name,
    schemas.AGG_CONVERSION_UPLIFT.name,
)
#: Columns of agg_brand_funnel_daily that later runs still recompute (fed by exposures only).
EXPOSURE_COLUMNS = ("exposed_users", "searched_back_users", "search_back_rate", "is_final", "run_id")

EVENT_TABLES = ("exposures", "searches", "orders")

Progress = Callable[[str, float], None]


def default_run_id(day: date) -> str:
    """Deterministic, so re-running a day writes identical rows."""
    return f"run-{day.isoformat()}"


def first_data_day(settings: Settings, day: date) -> date:
    """The first delivery day of any event table in the lake (``day`` when there is none)."""
    firsts = [ps[0] for t in EVENT_TABLES if (ps := lake.partitions(settings.lake, t))]
    return min(min(firsts, default=day), day)


def written_days(table: str, day: date, params: FunnelParams, first: date | None = None) -> list[date]:
    """The days of ``table`` a run for ``day`` rewrites (none before ``first``, the first data day)."""
    floor = first or date.min
    if table in PAIR_WINDOW_TABLES:
        return day_range(max(floor, day - timedelta(days=math.ceil(params.conversion_window_days))), day)
    if table == schemas.AGG_BRAND_FUNNEL_DAILY.name:
        return day_range(max(floor, day - timedelta(days=params.finality_lag_days)), day)
    if table == schemas.BRAND_BOOST_SIGNALS.name:
        return [day]
    raise KeyError(table)


# ---------------------------------------------------------------- stage 1: ingest


def stage_ingest(settings: Settings, day: date, run_id: str | None = None) -> dict:
    """Ingest the day's landing files into the lake; returns per-table row accounting."""
    from .ingest.day import ingest_day

    result = ingest_day(settings, day, run_id=run_id or default_run_id(day))
    return {"totals": result.totals, "errors": result.errors}


# ---------------------------------------------------------------- stage 2: inputs


def load_inputs(
    settings: Settings, day: date, since: date | None = None, *, bucket: int = 0, buckets: int = 1
) -> FunnelInputs:
    """The funnel's inputs for a run of ``day``: events of the lookback, dimensions up to ``day``.

    ``since`` overrides the first event delivery day (a one-shot computation over all history).
    With ``buckets`` > 1, only user bucket ``bucket`` is read (``funnel.buckets``: equal to
    ``split_inputs(load_inputs(...), buckets)[bucket]``): event files are filtered one by one, so
    a bucket task holds about 1/buckets of the events, and only its searches are matched.
    """
    from .funnel.buckets import BucketKeys, bucket_of, ext_buckets
    from .reference import load_reference
    from .text.matcher import Matcher

    if not 0 <= bucket < buckets:
        raise ValueError(f"bucket {bucket} is not one of 0..{buckets - 1}")
    params = settings.funnel
    ref = load_reference(settings.seeds)
    matcher = Matcher.from_reference(ref)
    events = day_range(since or day - timedelta(days=params.event_lookback_days), day)
    dims = [d for d in lake.partitions(settings.lake, "notes") if d <= day]
    link_days = [d for d in lake.partitions(settings.lake, "id_links") if d <= day]
    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes", dims))
    id_links = lake.read_table(settings.lake, "id_links", link_days)
    by_user = by_ext = None
    if buckets > 1:
        keys = BucketKeys.of(ext_buckets(id_links, buckets), bucket)

        def by_ext(t: pa.Table) -> np.ndarray:
            return keys.mask(t.column("platform"), t.column("ext_user_id"))

        def by_user(t: pa.Table) -> np.ndarray:
            return bucket_of(t.column("user_id").to_pandas(), buckets) == bucket

        id_links = id_links.loc[keys.mask(id_links["platform"], id_links["ext_user_id"])]
        id_links = id_links.reset_index(drop=True)
    searches = lake.read_table(settings.lake, "searches", events, keep=by_user)
    return FunnelInputs(
        exposures=lake.read_table(settings.lake, "exposures", events, keep=by_ext),
        id_links=id_links,
        notes=notes,
        note_brands=matcher.note_brands(notes),
        searches=searches,
        search_categories=matcher.search_categories(searches, ref.brands),
        orders=lake.read_table(settings.lake, "orders", events, keep=by_user),
        brands=ref.brands,
        categories=ref.categories,
        creators=ref.creators,
    )


def engine_module(name: str):
    try:
        return importlib.import_module(ENGINES[name])
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None


# ---------------------------------------------------------------- stage 3: funnel per bucket


def bucket_dir(settings: Settings, day: date, run_id: str, bucket: int) -> Path:
    return settings.work / day.isoformat() / run_id / f"bucket={bucket}"


def stage_funnel_bucket(
    settings: Settings, day: date, bucket: int, buckets: int, engine: str = "pandas", run_id: str | None = None
) -> str:
    """Compute every funnel table for one user bucket; returns the folder of its Parquet files."""
    run_id = run_id or default_run_id(day)
    params = settings.funnel
    inputs = load_inputs(settings, day, bucket=bucket, buckets=buckets)
    start = max(day - timedelta(days=params.finality_lag_days), first_data_day(settings, day))
    outputs = engine_module(engine).compute(inputs, params, start, day, run_id)
    out = bucket_dir(settings, day, run_id, bucket)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, frame in outputs.items():
        pq.write_table(schemas.to_arrow(name, frame), out / f"{name}.parquet")
    return str(out)


# ---------------------------------------------------------------- stage 4: reduce


def _read_bucket(folder: str) -> dict[str, pd.DataFrame]:
    return {t.name: pq.read_table(Path(folder) / f"{t.name}.parquet").to_pandas() for t in schemas.FUNNEL_TABLES}


def carry_over(daily: pd.DataFrame, previous: pd.DataFrame, open_from: date) -> pd.DataFrame:
    """Days before ``open_from`` keep their pair/order/credit columns from the previous run.

    Only the exposure-fed columns (EXPOSURE_COLUMNS) are recomputed for those days, because the run
    no longer reads the touches their searches needed. Rows the previous run lacks stay computed.
    """
    if previous.empty:
        return daily
    key = list(schemas.AGG_BRAND_FUNNEL_DAILY.key)
    closed = (daily["dt"] < open_from).to_numpy(dtype=bool)
    carried_cols = [c for c in schemas.AGG_BRAND_FUNNEL_DAILY.names if c not in EXPOSURE_COLUMNS and c not in key]
    merged = daily.loc[closed, key + list(EXPOSURE_COLUMNS)].merge(
        previous[key + carried_cols], on=key, how="left", indicator=True
    )
    found = merged["_merge"].eq("both").to_numpy()
    fresh = daily.loc[closed].reset_index(drop=True)
    carried = merged.drop(columns="_merge")[schemas.AGG_BRAND_FUNNEL_DAILY.names]
    closed_rows = pd.concat([carried[found], fresh[~found]], ignore_index=True)
    out = pd.concat([closed_rows, daily.loc[~closed]], ignore_index=True)
    out = schemas.conform(schemas.AGG_BRAND_FUNNEL_DAILY, out)
    return out.sort_values(key, kind="stable", ignore_index=True)


def stage_reduce(settings: Settings, day: date, parts: list[str], run_id: str | None = None) -> dict[str, int]:
    """Merge bucket outputs, carry closed columns over, write the marts partitions of the run."""
    run_id = run_id or default_run_id(day)
    params = settings.funnel
    loaded = [_read_bucket(p) for p in parts]
    if len(loaded) == 1:
        merged = loaded[0]
    else:
        from .funnel.buckets import merge_outputs

        merged = merge_outputs(loaded)
    marts = settings.lake / MARTS
    daily_name = schemas.AGG_BRAND_FUNNEL_DAILY.name
    first = first_data_day(settings, day)
    previous = lake.read_table(marts, daily_name, written_days(daily_name, day, params, first))
    open_from = day - timedelta(days=math.ceil(params.conversion_window_days))
    merged[daily_name] = carry_over(merged[daily_name], previous, open_from)
    counts: dict[str, int] = {}
    for t in schemas.FUNNEL_TABLES:
        frame = merged[t.name]
        part_col = t.partition
        for d in written_days(t.name, day, params, first):
            rows = frame.loc[(frame[part_col] == d).to_numpy(dtype=bool)]
            lake.write_partition(marts, t.name, d, rows)
            counts[t.name] = counts.get(t.name, 0) + len(rows)
    return counts


# ---------------------------------------------------------------- stage 4b: validate


def stage_validate(settings: Settings, day: date, run_id: str | None = None, *, data_docs: bool = True) -> dict:
    """Run the quality suites on what the day would publish; returns counts (docs/quality.md).

    A critical failure publishes the day's dq_results alone and raises QualityGateError, so the
    publish stage does not run; warnings are recorded and do not block. ``data_docs`` rebuilds
    the Data Docs site (``settings.reports / "data_docs"``); a blocked day always does.
    """
    from .quality.validate import gate

    return gate(settings, day, run_id or default_run_id(day), data_docs=data_docs)


# ---------------------------------------------------------------- stage 5: publish


def stage_publish(settings: Settings, day: date, *, fail_after: str | None = None) -> dict[str, int]:
    """Publish the run's marts days, quarantine, ingestion accounting and dq_results in one transaction."""
    from . import db, warehouse

    params = settings.funnel
    marts = settings.lake / MARTS
    frames: dict[str, pd.DataFrame] = {}
    days: dict[str, list[date]] = {}
    first = first_data_day(settings, day)
    for t in schemas.FUNNEL_TABLES:
        days[t.name] = written_days(t.name, day, params, first)
        frames[t.name] = lake.read_table(marts, t.name, days[t.name])
    for t in (schemas.QUARANTINE, schemas.INGEST_FILES):
        days[t.name] = [day]
        frames[t.name] = lake.read_table(settings.lake, t.name, [day])
    if day in lake.partitions(settings.lake, schemas.DQ_RESULTS.name):  # stage_validate ran
        days[schemas.DQ_RESULTS.name] = [day]
        frames[schemas.DQ_RESULTS.name] = lake.read_table(settings.lake, schemas.DQ_RESULTS.name, [day])
    url = settings.resolved_warehouse_url()
    warehouse.check_connection(url)
    db.upgrade(url)
    engine = warehouse.make_engine(url)
    try:
        return warehouse.publish(engine, frames, days, fail_after=fail_after)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- stage 6: report


def stage_report(settings: Settings, day: date) -> str:
    """Write the day's HTML attribution report from the warehouse; returns its path (docs/report.md)."""
    from .report import build_report

    return str(build_report(settings, day))


# ---------------------------------------------------------------- the whole day, in-process


@dataclass
class DaySummary:
    day: date
    ingest: dict
    published: dict[str, int]
    seconds: float
    report: str | None = None


@dataclass
class RunSummary:
    settings: Settings
    days: list[DaySummary] = field(default_factory=list)

    def as_rows(self) -> list[tuple[str, object]]:
        acc = sum(t["accepted_rows"] for d in self.days for t in d.ingest["totals"].values())
        quar = sum(t["quarantined_rows"] for d in self.days for t in d.ingest["totals"].values())
        errors = sum(len(d.ingest["errors"]) for d in self.days)
        rows: list[tuple[str, object]] = [
            ("days processed", f"{len(self.days)} ({self.days[0].day} .. {self.days[-1].day})" if self.days else 0),
            ("rows accepted", f"{acc:,}"),
            ("rows quarantined", f"{quar:,}"),
            ("unreadable files", errors),
        ]
        if self.days:
            for name, n in self.days[-1].published.items():
                rows.append((f"last day: {name}", f"{n:,} rows"))
        return rows

    def locations(self) -> list[tuple[str, str]]:
        """Where the outputs are."""
        return [
            ("lake (Parquet)", str(self.settings.lake.resolve())),
            ("warehouse", self.settings.resolved_warehouse_url()),
            ("rejected rows", "warehouse table `quarantine` (reason, file, row, raw content)"),
            *(("report", str(Path(d.report).resolve())) for d in self.days[-1:] if d.report),
        ]


def run_day(
    settings: Settings, day: date, *, engine: str = "pandas", run_id: str | None = None, report: bool = True
) -> DaySummary:
    """Every stage for one day, in-process; the report last (``report=False`` skips it)."""
    t0 = time.perf_counter()
    run_id = run_id or default_run_id(day)
    ingest = stage_ingest(settings, day, run_id)
    parts = [
        stage_funnel_bucket(settings, day, b, settings.buckets, engine, run_id) for b in range(settings.buckets)
    ]
    stage_reduce(settings, day, parts, run_id)
    # Raises QualityGateError on a critical failure: the day is not published. Data Docs are
    # rendered with the report (run_days: the last day, or a blocked one).
    stage_validate(settings, day, run_id, data_docs=report)
    published = stage_publish(settings, day)
    shutil.rmtree(settings.work / day.isoformat() / run_id, ignore_errors=True)
    path = stage_report(settings, day) if report else None
    return DaySummary(day, ingest, published, time.perf_counter() - t0, path)


def run_days(
    settings: Settings, start: date, end: date, *, engine: str = "pandas", progress: Progress | None = None
) -> RunSummary:
    """Run ``start..end`` in order (the final tables then equal one computation over all of it)."""
    summary = RunSummary(settings)
    days = day_range(start, end)
    for i, day in enumerate(days):
        if progress:
            progress(f"day {day}", i / len(days))
        # Only the last day's report: earlier days' figures are rewritten by the later runs anyway.
        summary.days.append(run_day(settings, day, engine=engine, report=day == days[-1]))
    if progress:
        progress("done", 1.0)
    return summary
