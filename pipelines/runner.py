"""The daily run, stage by stage: plan (ingest) -> funnel per user bucket -> reduce -> validate -> publish.

A run for delivery day d ingests every delivery up to d that is new or changed (``arrival``), finds
the first day the changes can move (``windows``), recomputes from there through W (the latest
delivery day ingested) with the lookback those days need, and writes, validates and publishes only
the days whose rows changed, recording each in ``restatements``. So after every run the funnel
tables equal one computation over everything ingested (SPEC 5, Arrival), whatever the arrival
schedule, the order of runs, re-runs, or runs at once (they take the lake lock in turn).

Each stage is a function of (settings, plan, ...) that reads and writes the lake and returns paths
and counts, never data: the Airflow DAG calls the same functions as tasks, and ``seedfunnel run``
calls them in-process under one lock.
"""

from __future__ import annotations

import importlib
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import arrival, lake, schemas, windows, workers
from .funnel.boost import score_distribution
from .funnel.buckets import AGGREGATES, merge_table
from .funnel.inputs import FunnelInputs
from .redact import redact_url
from .settings import Settings
from .timeutil import day_numbers, day_start_utc
from .timeutil import days as day_range

if TYPE_CHECKING:
    from . import warehouse

ENGINES = {"pandas": "pipelines.funnel.engine", "duckdb": "pipelines.oracle.duckdb_engine"}
MARTS = arrival.MARTS
#: Each run's restatement records, one file per run (kept: the lake's own history of them).
RESTATED = "_restatements"

EVENT_TABLES = ("exposures", "searches", "orders")
#: The key whose versions resolve to one row (SPEC 3); exposures have none (duplicates collapse).
EVENT_KEY = {"searches": "search_id", "orders": "order_id"}

Progress = Callable[[str, float], None]
Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def first_data_day(settings: Settings, through: date | None = None) -> date | None:
    """The first delivery day of any event table in the lake (None when there is none)."""
    firsts = [ps[0] for t in EVENT_TABLES if (ps := lake.partitions(settings.lake, t))]
    first = min(firsts, default=None)
    return first if first is None or through is None else min(first, through)


# ---------------------------------------------------------------- stage 1: plan (ingest)


@dataclass
class Plan:
    """What one run computes: the days start..latest (None: nothing changed), read from ``read_from``."""

    run_id: str
    day: str
    latest: str | None
    first: str | None
    start: str | None
    read_from: str | None
    causes: list[str]
    generation: int
    reference: str
    ingested: list[str] = field(default_factory=list)
    ingest: dict = field(default_factory=lambda: {"totals": {}, "errors": []})
    #: Boost snapshots from this day on are recomputed for every user; earlier ones only for the
    #: users in the run's boost scope (``boost_scope``).
    boost_all_from: str | None = None

    def dates(self) -> tuple[date, date]:
        return date.fromisoformat(self.start), date.fromisoformat(self.latest)

    @property
    def computes(self) -> bool:
        return self.start is not None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, raw: dict | Plan) -> Plan:
        return raw if isinstance(raw, Plan) else cls(**raw)


def _add_totals(into: dict, totals: dict) -> None:
    for source, t in totals.items():
        acc = into.setdefault(source, dict.fromkeys(t, 0))
        for k, v in t.items():
            acc[k] = acc.get(k, 0) + v


def ingest_pending(
    settings: Settings, state: arrival.State, day: date, run_id: str, say: Say = _quiet
) -> tuple[list[date], dict]:
    """Ingest every delivery up to ``day`` that is new or whose files changed; record what it affects.

    Unchanged deliveries are skipped (re-ingesting them would change nothing). Each ingested
    delivery's rows are compared with the lake's previous version of it, and the first day the
    difference can move is added to ``state.pending`` (``arrival.affected_from``).
    """
    from .ingest.day import delivery_days, delivery_files, ingest_day, item_files

    landing = Path(settings.landing)
    if not landing.is_dir():
        raise FileNotFoundError(
            f"landing folder {landing} does not exist; pass the landing zone (--landing or "
            f"Settings(landing=...)) or set SEEDFUNNEL_LANDING"
        )
    todo = []
    for d in delivery_days(landing):
        if d > day:
            break
        fp = arrival.files_fingerprint(delivery_files(landing, d), landing, state.files, follow_links=False)
        if state.deliveries.get(d.isoformat()) != fp:
            todo.append((d, fp))
    items_fp = arrival.files_fingerprint(item_files(landing, day), landing, state.files, follow_links=False)
    items_changed = items_fp != state.items
    earlier = [k for k in state.deliveries if k <= day.isoformat()]
    if items_changed and not todo and earlier:
        # Only the catalog changed: re-ingest the latest delivery up to ``day`` (which reads it).
        last = max(earlier)
        todo.append((date.fromisoformat(last), state.deliveries[last]))
    totals: dict = {}
    errors: list[str] = []
    done: list[date] = []
    # Before the first computation every day is computed anyway: what each delivery changed
    # is not needed (finding it reads the lake around every delivery).
    detect = state.computed is not None
    if len(todo) > 1:
        # Each day's notes are mapped in the worker process, beside its event files
        # (``ingest.day._notes``). A lone day in a process without a worker maps them here: the
        # worker's start, seconds of imports, would cost more than they do.
        workers.start()
    for d, fp in todo:
        say(f"ingesting delivery {d}")
        if detect:
            before = {s: lake.read_table(settings.lake, s, [d]) for s in (*arrival.EVENTS, *arrival.MODEL_INPUTS)}
            dims_before = arrival.resolved_dimensions(settings.lake)
        result = ingest_day(settings, d, run_id=run_id)
        if detect:
            _record_changes(settings, state, d, before, dims_before)
        state.deliveries[d.isoformat()] = fp
        state.mark_unpublished(schemas.QUARANTINE.name, [d])
        state.mark_unpublished(schemas.INGEST_FILES.name, [d])
        state.generation += 1
        _add_totals(totals, result.totals)
        errors += result.errors
        done.append(d)
        state.save(settings)  # after each delivery: a crash loses no bookkeeping
    if items_changed:
        if state.items:  # a changed catalog (not its first delivery) can fill any order's brand
            first = first_data_day(settings)
            state.pending.add(first, "items")
        state.items = items_fp
        state.generation += 1
        state.save(settings)
    return done, {"totals": totals, "errors": errors}


def _record_changes(
    settings: Settings, state: arrival.State, d: date, before: dict[str, pd.DataFrame], dims_before: dict[str, pd.DataFrame]
) -> None:
    """Add to ``state.pending`` what ingesting delivery ``d`` changed: the first day it may move,
    and the users whose boost snapshots it may move (``arrival.affected_from``, ``boost_users``)."""
    params = settings.funnel
    changed: dict[str, pd.DataFrame] = {}
    for source in (*arrival.EVENTS, *arrival.MODEL_INPUTS):
        after = lake.read_table(settings.lake, source, [d])
        changed[source] = arrival.changed_rows(before[source], after, schemas.table(source))
        first = arrival.affected_from(settings.lake, source, changed[source], params)
        state.pending.add(first, f"{source}/dt={d}")
    dims_after = arrival.resolved_dimensions(settings.lake)
    for source, (key, _) in arrival.DIMENSIONS.items():
        changed[source] = arrival.changed_keys(dims_before[source], dims_after[source], key)
        state.pending.add(arrival.affected_from(settings.lake, source, changed[source], params), f"{source}/dt={d}")
    state.pending.add_users(
        arrival.boost_users(
            settings.lake,
            changed["exposures"],
            changed["id_links"],
            changed["notes"],
            (dims_before["id_links"], dims_after["id_links"]),
        )
    )


def stage_ingest(settings: Settings, day: date, run_id: str | None = None, say: Say = _quiet) -> dict:
    """Ingest every delivery up to ``day`` not yet ingested (or changed); returns row accounting."""
    with arrival.locked(settings, say, f"ingest {day}"):
        state = arrival.State.load(settings)
        state.runs += 1
        run_id = run_id or new_run_id(day, state.runs)
        done, out = ingest_pending(settings, state, day, run_id, say)
        state.save(settings)
    return {**out, "deliveries": [d.isoformat() for d in done]}


def new_run_id(day: date, seq: int) -> str:
    """``run-<day>-<n>``: the run's day and its number on this lake (runs of one day differ)."""
    return f"run-{day.isoformat()}-{seq:05d}"


def stage_plan(settings: Settings, day: date, run_id: str | None = None, say: Say = _quiet) -> dict:
    """Ingest what is pending up to ``day`` and decide the days to recompute; returns the Plan as a dict."""
    from .reference import load_reference

    # A broken seeds folder, or windows of a category it does not list, stops the run before
    # anything is ingested.
    ref = load_reference(settings.seeds)
    settings.funnel.check_categories(ref.categories["category_id"], str(Path(settings.seeds) / "categories.csv"))
    with arrival.locked(settings, say, f"plan {day}"):
        state = arrival.State.load(settings)
        state.runs += 1
        run_id = run_id or new_run_id(day, state.runs)
        done, ingest = ingest_pending(settings, state, day, run_id, say)
        latest = state.latest_delivery
        first = first_data_day(settings, latest) if latest else None
        params = settings.funnel
        reference = ":".join(
            (arrival.reference_fingerprint(settings), arrival.params_fingerprint(params), arrival.params_fingerprint(settings.models))
        )
        causes = list(state.pending.causes)
        start = boost_all_from = None
        if latest is not None and first is not None:
            computed = state.computed or {}
            pending = date.fromisoformat(state.pending.start) if state.pending.start else None
            through = date.fromisoformat(computed["latest"]) if computed.get("latest") else None
            start = windows.restate_start(params, pending, through, latest)
            if through is not None and latest > through:
                causes.append("window")
            everything = computed.get("reference") != reference
            if everything:
                start = first
                old = (computed.get("reference") or "").split(":")
                if not computed:
                    causes.append("first run")
                elif old[:2] != reference.split(":")[:2]:
                    causes.append("reference")
                else:
                    causes.append("settings")
            if computed.get("first") and first < date.fromisoformat(computed["first"]):
                start = first
                everything = True
            if start is not None:
                start = max(start, first)
                boost_all_from = start if everything or through is None else max(start, through + timedelta(days=1))
        read_from = start - timedelta(days=windows.event_lookback_days(params)) if start else None
        plan = Plan(
            run_id=run_id,
            day=day.isoformat(),
            latest=latest.isoformat() if latest else None,
            first=first.isoformat() if first else None,
            start=start.isoformat() if start else None,
            read_from=read_from.isoformat() if read_from else None,
            causes=causes,
            generation=state.generation,
            reference=reference,
            ingested=[d.isoformat() for d in done],
            ingest=ingest,
            boost_all_from=boost_all_from.isoformat() if boost_all_from else None,
        )
        if plan.computes:
            _write_evidence(settings)
            _write_boost_scope(settings, plan, state.pending.boost)
        state.save(settings)
    if plan.computes:
        say(f"recomputing {plan.start} .. {plan.latest} (caused by: {', '.join(causes) or 'nothing'})")
    else:
        say("nothing changed since the last computation")
    return plan.as_dict()


def _write_boost_scope(settings: Settings, plan: Plan, users: dict[str, str]) -> None:
    """The run's boost scope: the users whose snapshots before ``boost_all_from`` are recomputed,
    each from its first day (never before the plan's start)."""
    out = run_dir(settings, plan)
    out.mkdir(parents=True, exist_ok=True)
    first = {user: max(day, plan.start) for user, day in users.items()}  # ISO dates order as strings
    first = {user: day for user, day in first.items() if day < plan.boost_all_from}
    scope = pa.table(
        {
            "user_id": pa.array(list(first), pa.large_string()),
            "from_dt": pa.array(list(first.values()), pa.string()).cast(pa.date32()),
        }
    )
    pq.write_table(scope, out / BOOST_SCOPE)


def boost_scope(settings: Settings, plan: Plan) -> pd.DataFrame:
    """(user_id, from_dt) of the run's boost scope (``_write_boost_scope``)."""
    path = run_dir(settings, plan) / BOOST_SCOPE
    if not path.exists():
        return pd.DataFrame({"user_id": pd.Series([], dtype=object), "from_dt": pd.Series([], dtype=object)})
    return pq.read_table(path).to_pandas()


def _write_evidence(settings: Settings) -> None:
    """The lake's note_brand_evidence: why each note mentions each brand (SPEC 4), for every note."""
    from .reference import load_reference
    from .text.matcher import Matcher

    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes"))
    evidence = Matcher.from_reference(load_reference(settings.seeds)).note_brand_evidence(notes)
    lake.write_partition(settings.lake, schemas.NOTE_BRAND_EVIDENCE.name, None, evidence)


# ---------------------------------------------------------------- stage 2: inputs


def _event_table(
    settings: Settings, name: str, since: date | None, keep: Callable[[pa.Table], np.ndarray] | None
) -> pd.DataFrame:
    """Every delivered row of an event table whose own day is ``since`` or later (all when None).

    Keyed tables keep every version of a key that has any version from ``since`` on, so the
    engines resolve versions (SPEC 3) exactly as over the whole history.
    """
    if since is None:
        return lake.read_table(settings.lake, name, keep=keep)
    cutoff = pa.scalar(day_start_utc(since).to_pydatetime(), pa.timestamp("us", tz="UTC"))
    col = arrival.EVENT_TIME[name]
    if name in EVENT_KEY:
        data = lake.read_arrow(settings.lake, name, keep=keep)
        data = arrival.keys_with_versions_since(data, EVENT_KEY[name], col, cutoff)
    else:
        data = lake.read_arrow(settings.lake, name, filters=[(col, ">=", cutoff)], keep=keep)
    return schemas.conform(name, data.to_pandas())


def load_inputs(
    settings: Settings, since: date | None = None, *, bucket: int = 0, buckets: int = 1
) -> FunnelInputs:
    """The funnel's inputs: every ingested delivery, events from day ``since`` on (all when None).

    With ``buckets`` > 1, only user bucket ``bucket`` is read (``funnel.buckets``: equal to
    ``split_inputs(load_inputs(...), buckets)[bucket]``): event files are filtered one by one, so
    a bucket task holds about 1/buckets of the events, and only its searches are matched.
    """
    from .funnel.buckets import BucketKeys, ext_buckets
    from .reference import load_reference
    from .text.matcher import Matcher

    if not 0 <= bucket < buckets:
        raise ValueError(f"bucket {bucket} is not one of 0..{buckets - 1}")
    ref = load_reference(settings.seeds)
    matcher = Matcher.from_reference(ref)
    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes"))
    id_links = lake.read_table(settings.lake, "id_links")
    by_ext = None
    if buckets > 1:
        keys = BucketKeys.of(ext_buckets(id_links, buckets), bucket)

        def by_ext(t: pa.Table) -> np.ndarray:
            return keys.mask(t.column("platform"), t.column("ext_user_id"))

        id_links = id_links.loc[keys.mask(id_links["platform"], id_links["ext_user_id"])]
        id_links = id_links.reset_index(drop=True)
    searches = _event_table(settings, "searches", since, _key_filter(settings, "searches", bucket, buckets))
    # Categories of each search's latest version: the engines take them by search_id.
    latest_searches = searches.sort_values("dt", kind="stable").drop_duplicates("search_id", keep="last")
    return FunnelInputs(
        exposures=_event_table(settings, "exposures", since, by_ext),
        id_links=id_links,
        notes=notes,
        note_brands=matcher.note_brands(notes),
        searches=searches,
        search_categories=matcher.search_categories(latest_searches, ref.brands),
        orders=_event_table(settings, "orders", since, _key_filter(settings, "orders", bucket, buckets)),
        brands=ref.brands,
        categories=ref.categories,
        creators=ref.creators,
    )


def _key_filter(settings: Settings, name: str, bucket: int, buckets: int) -> Callable[[pa.Table], np.ndarray] | None:
    """Row filter of a versioned event table for one bucket: every version of a key goes with the
    user of its latest version (``funnel.buckets.key_buckets``), found from the key, user and dt
    columns before the rows are read file by file."""
    if buckets == 1:
        return None
    from .funnel.buckets import key_buckets

    key = EVENT_KEY[name]
    index = lake.read_arrow(settings.lake, name, columns=[key, "user_id", "dt"]).to_pandas()
    mine = pa.array(index.loc[key_buckets(index, key, buckets) == bucket, key].unique(), pa.string())

    def keep(t: pa.Table) -> np.ndarray:
        return pc.is_in(t.column(key), value_set=mine).to_numpy(zero_copy_only=False)

    return keep


def engine_module(name: str):
    try:
        return importlib.import_module(ENGINES[name])
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None


def one_shot(settings: Settings, engine: str = "pandas", run_id: str = "one-shot") -> dict[str, pd.DataFrame]:
    """Every funnel table computed once over everything ingested: what the warehouse must equal."""
    latest = arrival.State.load(settings).latest_delivery
    first = first_data_day(settings, latest)
    if latest is None or first is None:
        return {t.name: schemas.empty_frame(t) for t in schemas.COMPUTED_TABLES}
    inputs = load_inputs(settings)
    out = engine_module(engine).compute(inputs, settings.funnel, first, latest, run_id)
    out[schemas.AGG_BOOST_SCORES.name] = score_distribution(out[schemas.BRAND_BOOST_SIGNALS.name], run_id)
    facts = model_facts(settings, out, inputs.note_brands, inputs.brands)
    out.update(model_tables(settings, facts, first, latest, run_id))
    return out


def boost_scores(settings: Settings, days: list[date], run_id: str) -> pd.DataFrame:
    """agg_boost_scores of ``days`` from the marts' brand_boost_signals, read one day at a time."""
    marts, source = settings.lake / MARTS, schemas.BRAND_BOOST_SIGNALS.name
    held = set(lake.partitions(marts, source))
    frames = [
        score_distribution(lake.read_arrow(marts, source, [d], columns=["as_of_dt", "score", "rank"]), run_id)
        for d in days
        if d in held
    ]
    return pd.concat(frames, ignore_index=True) if frames else schemas.empty_frame(schemas.AGG_BOOST_SCORES)


#: The funnel facts the models of SPEC 5.11 read.
FACT_TABLES = (schemas.FCT_TOUCHES, schemas.FCT_SEARCH_PAIRS, schemas.FCT_SEEDED_ORDERS, schemas.FCT_ATTRIBUTION_CREDITS)


def model_facts(settings: Settings, frames: dict[str, pd.DataFrame], note_brands: pd.DataFrame, brands: pd.DataFrame):
    from .funnel.models import Facts

    return Facts(
        touches=frames[schemas.FCT_TOUCHES.name],
        search_pairs=frames[schemas.FCT_SEARCH_PAIRS.name],
        seeded_orders=frames[schemas.FCT_SEEDED_ORDERS.name],
        credits=frames[schemas.FCT_ATTRIBUTION_CREDITS.name],
        spend=lake.read_spend(settings.lake),
        note_brands=note_brands,
        brands=brands,
    )


FACT_NAMES = {t.name for t in FACT_TABLES}


def _marts_facts(settings: Settings, latest: date):
    """The facts of the marts the snapshot as of ``latest`` reads (``models.reach_days``)."""
    from .funnel.models import reach_days
    from .reference import load_reference

    since = latest - timedelta(days=reach_days(settings.funnel, settings.models))
    marts = settings.lake / MARTS
    frames = {}
    for t in FACT_TABLES:
        days = [d for d in lake.partitions(marts, t.name) if since <= d <= latest]
        frames[t.name] = lake.read_table(marts, t.name, days) if days else schemas.empty_frame(t)
    evidence = lake.read_table(settings.lake, schemas.NOTE_BRAND_EVIDENCE.name)
    counted = evidence.loc[evidence["is_counted"].to_numpy(dtype=bool)]  # note_brands (SPEC 4)
    return model_facts(settings, frames, counted, load_reference(settings.seeds).brands)


def model_tables(settings: Settings, facts, first: date, latest: date, run_id: str) -> dict[str, pd.DataFrame]:
    """The tables of schemas.MODEL_TABLES: the snapshot as of W = ``latest`` (``funnel.models``)."""
    from .funnel import models

    return models.compute(facts, settings.funnel, settings.models, latest, first, run_id)


# ---------------------------------------------------------------- stage 3: funnel per bucket


BOOST_SCOPE = "boost_scope.parquet"


def run_dir(settings: Settings, plan: Plan) -> Path:
    return settings.work / plan.run_id


def bucket_dir(settings: Settings, plan: Plan, bucket: int) -> Path:
    return run_dir(settings, plan) / f"bucket={bucket}"


def stage_funnel_bucket(
    settings: Settings, plan: dict | Plan, bucket: int, buckets: int, engine: str = "pandas"
) -> str:
    """Compute every funnel table for one user bucket over the plan's days; returns its folder."""
    plan = Plan.of(plan)
    out = bucket_dir(settings, plan, bucket)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if plan.computes:
        start, latest = plan.dates()
        since = date.fromisoformat(plan.read_from)
        inputs = load_inputs(settings, since, bucket=bucket, buckets=buckets)
        if engine == "pandas":
            # The boost snapshots, the largest table, go to their file a day at a time.
            boost = schemas.BRAND_BOOST_SIGNALS
            with pq.ParquetWriter(out / f"{boost.name}.parquet", boost.arrow_schema()) as writer:
                outputs = engine_module(engine).compute(
                    inputs, settings.funnel, start, latest, plan.run_id,
                    boost_scope=_engine_scope(settings, plan),
                    boost_sink=lambda day: _write_days(writer, boost, schemas.to_arrow(boost, day)),
                )
        else:
            outputs = engine_module(engine).compute(inputs, settings.funnel, start, latest, plan.run_id)
        for name, frame in outputs.items():
            _write_bucket_table(out, schemas.table(name), schemas.to_arrow(name, frame))
    return str(out)


def _write_bucket_table(out: Path, t: schemas.Table, data: pa.Table) -> None:
    """One funnel table of a bucket, its rows grouped by day (the engine's order kept within a
    day), each row group of one day: the reduce reads a large table one day at a time."""
    with pq.ParquetWriter(out / f"{t.name}.parquet", t.arrow_schema()) as writer:
        _write_days(writer, t, data)


def _write_days(writer: pq.ParquetWriter, t: schemas.Table, data: pa.Table) -> None:
    """``data``'s rows as one row group per day, in day order (the engine's order within a day)."""
    days = data.column(t.partition).cast(pa.int32()).to_numpy(zero_copy_only=False)
    for d in np.unique(days):
        writer.write_table(data.filter(days == d))


def _engine_scope(settings: Settings, plan: Plan):
    from .funnel.boost import BoostScope

    if not plan.boost_all_from:
        return None
    scope = boost_scope(settings, plan)
    return BoostScope(date.fromisoformat(plan.boost_all_from), scope["user_id"], scope["from_dt"])


# ---------------------------------------------------------------- stage 4: reduce


#: A per-user table of more rows than this (over all buckets) is reduced one day at a time; a
#: smaller one is read whole and sliced by day (the same rows, fewer reads).
WHOLE_ROWS = 2_000_000


class _BucketFile:
    """One table of one bucket's output: its row groups by day (``_write_bucket_table``)."""

    def __init__(self, folder: str, t: schemas.Table) -> None:
        path = Path(folder) / f"{t.name}.parquet"
        self.file = pq.ParquetFile(path)
        meta, column = self.file.metadata, self.file.schema_arrow.get_field_index(t.partition)
        self.num_rows = meta.num_rows
        self.groups: dict[date, list[int]] = {}
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(column).statistics
            if stats is None or not stats.has_min_max or stats.min != stats.max:
                raise ValueError(f"{path}: row group {i} holds more than one day; run the funnel step again")
            self.groups.setdefault(stats.min, []).append(i)

    def day(self, d: date) -> pd.DataFrame:
        return self.file.read_row_groups(self.groups.get(d, [])).to_pandas()

    def whole(self) -> pd.DataFrame:
        return self.file.read().to_pandas()


class _Merged:
    """The bucket outputs as the one-bucket result (``funnel.buckets.merge_table``), read as the
    reduce asks: a large per-user table (buckets hold disjoint users, merged by concatenation)
    one day at a time, so the reduce holds one day of the boost snapshots; an aggregate (its merge
    needs every bucket's rows of a key) or a small table whole, sliced by day."""

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts
        self._strata: pd.DataFrame | None = None  # merged once: agg_conversion_uplift's merge reads it too

    def rows(self, t: schemas.Table) -> Callable[[date], tuple[pd.DataFrame, np.ndarray]]:
        """A day's rows of ``t`` and their row hashes (``_row_hashes``), day by day."""
        files = [_BucketFile(p, t) for p in self.parts]
        if t in AGGREGATES or sum(f.num_rows for f in files) <= WHOLE_ROWS:
            return _sliced(t, self._whole(t, files))

        def day(d: date) -> tuple[pd.DataFrame, np.ndarray]:
            frames = [f.day(d) for f in files]
            frame = frames[0] if len(frames) == 1 else merge_table(t, frames)
            return frame, _row_hashes(frame, t)

        return day

    def _whole(self, t: schemas.Table, files: list[_BucketFile] | None = None) -> pd.DataFrame:
        if t is schemas.AGG_UPLIFT_STRATA and self._strata is not None:
            return self._strata
        frames = [f.whole() for f in files or (_BucketFile(p, t) for p in self.parts)]
        if len(frames) == 1:
            return frames[0]
        strata = self._whole(schemas.AGG_UPLIFT_STRATA) if t is schemas.AGG_CONVERSION_UPLIFT else None
        merged = merge_table(t, frames, strata)
        if t is schemas.AGG_UPLIFT_STRATA:
            self._strata = merged
        return merged


def _row_hashes(frame: pd.DataFrame, table: schemas.Table) -> np.ndarray:
    """One hash per row over every column but run_id (floats rounded to 12 significant digits, so
    a figure that only moved by summation order is not a change)."""
    cols = [c for c in table.names if c != "run_id"]
    if frame.empty:
        return np.zeros(0, dtype="uint64")
    view = frame[cols].copy()
    for c in cols:
        if table.column(c).type == "float64":
            view[c] = _round_sig(view[c].to_numpy(dtype="float64", na_value=np.nan))
    return pd.util.hash_pandas_object(view, index=False).to_numpy()


def _round_sig(v: np.ndarray, digits: int = 12) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mag = np.where(np.isfinite(v) & (v != 0), np.floor(np.log10(np.abs(v))), 0)
        scale = 10.0 ** (digits - 1 - mag)
        return np.where(np.isfinite(v), np.round(v * scale) / scale, v)


#: Sidecars of a marts partition (``lake.write_partition``): its sorted row hashes, and whether
#: every row was final, so the reduce compares a day without reading it back.
DIGEST, ALL_FINAL = "row_hashes", "all_final"


def _day_slices(frame: pd.DataFrame, table: schemas.Table) -> tuple[pd.DataFrame, np.ndarray, dict[int, slice]]:
    """The frame ordered by day (key order kept within a day), its row hashes, and each day's slice."""
    if frame.empty:
        return frame, np.zeros(0, dtype="uint64"), {}
    num = day_numbers(frame[table.partition])
    order = np.argsort(num, kind="stable")
    frame, num = frame.iloc[order], num[order]
    days, first = np.unique(num, return_index=True)
    last = np.append(first[1:], len(num))
    return frame, _row_hashes(frame, table), {int(d): slice(a, b) for d, a, b in zip(days, first, last, strict=True)}


def _sliced(t: schemas.Table, table_frame: pd.DataFrame) -> Callable[[date], tuple[pd.DataFrame, np.ndarray]]:
    """A whole table's rows and row hashes of a day (``_Merged.rows``)."""
    frame, hashes, slices = _day_slices(table_frame, t)

    def day(d: date) -> tuple[pd.DataFrame, np.ndarray]:
        part = slices.get((d - _EPOCH).days, slice(0, 0))
        return frame.iloc[part], hashes[part]

    return day


def rows_changed(old: np.ndarray, new: np.ndarray) -> int:
    """Rows removed plus rows added between two versions of a day, from their sorted row hashes
    (a day's rows are distinct: every funnel table has a key)."""
    if len(old) == len(new) and np.array_equal(old, new):
        return 0
    if not len(old) or not len(new):
        return len(old) + len(new)
    common = int(np.count_nonzero(_in_sorted(old, new)))
    return (len(old) - common) + (len(new) - common)


def _old_digest(marts: Path, table: schemas.Table, day: date) -> tuple[np.ndarray, bool]:
    """(sorted row hashes, every row final) of a marts partition: its sidecars, else its rows."""
    hashes = lake.read_sidecar(marts, table.name, day, DIGEST)
    final = lake.read_sidecar(marts, table.name, day, ALL_FINAL)
    if hashes is not None and final is not None:
        return hashes, bool(final.all())
    old = lake.read_arrow(marts, table.name, [day]).to_pandas()
    return np.sort(_row_hashes(old, table)), _all_final(table, old)


def _holds_rows(marts: Path, table: schemas.Table, day: date) -> bool:
    """Whether a marts partition holds any row (its digest sidecar says; else its rows)."""
    hashes = lake.read_sidecar(marts, table.name, day, DIGEST)
    return bool(len(hashes)) if hashes is not None else lake.read_arrow(marts, table.name, [day]).num_rows > 0


def _all_final(table: schemas.Table, rows: pd.DataFrame) -> bool:
    return "is_final" in table.names and len(rows) > 0 and bool(rows["is_final"].all())


def _was_final(table: schemas.Table, day: date, rows_before: int, all_final: bool, latest_before: date | None) -> bool:
    if not rows_before:
        return False
    if "is_final" in table.names:
        return all_final
    return latest_before is not None and day < latest_before  # touches, orders, credits, boost: look back only


_EPOCH = date(1970, 1, 1)
_NO_HASHES = np.zeros(0, dtype="uint64")
#: What restating one marts day changed: rows before, rows after, rows changed, whether every old
#: row was final, and the keys restated (None: the whole day).
Change = tuple[int, int, int, bool, "pa.Array | None"]


def _restate_day(
    settings: Settings, t: schemas.Table, d: date, rows: pd.DataFrame, hashes: np.ndarray, exists: bool
) -> Change | None:
    """Replace a whole marts day with ``rows`` if they differ from what it holds."""
    marts = settings.lake / MARTS
    new = np.sort(hashes)
    old, old_final = _old_digest(marts, t, d) if exists else (_NO_HASHES, False)
    changed = rows_changed(old, new)
    if not changed and (exists or not len(new)):
        return None
    lake.write_partition(marts, t.name, d, rows, sidecars={DIGEST: new, ALL_FINAL: np.array([_all_final(t, rows)])})
    return len(old), len(new), changed, old_final, None


def _restate_scoped(
    settings: Settings,
    t: schemas.Table,
    d: date,
    rows: pd.DataFrame,
    hashes: np.ndarray,
    keys: pa.Array,
    exists: bool,
) -> Change | None:
    """Replace the rows of ``keys`` (users) in a marts day of a SCOPED table with theirs in ``rows``."""
    marts = settings.lake / MARTS
    col = arrival.SCOPED[t.name]
    mine = pc.is_in(pa.array(rows[col], pa.large_string()), value_set=keys).to_numpy(zero_copy_only=False)
    rows, new = rows.loc[mine], hashes[mine]
    old = lake.read_arrow(marts, t.name, [d]) if exists else schemas.table(t.name).arrow_schema().empty_table()
    hit = pc.is_in(old.column(col).cast(pa.large_string()), value_set=keys)
    gone = old.filter(hit).to_pandas()
    gone_hashes = _row_hashes(gone, t)
    # Compared sorted (binary searches of sorted values walk memory in order), then mapped back.
    new_order, gone_order = np.argsort(new), np.argsort(gone_hashes)
    new_sorted, gone_sorted = new[new_order], gone_hashes[gone_order]
    new_kept, gone_kept = _in_sorted(new_sorted, gone_sorted), _in_sorted(gone_sorted, new_sorted)
    changed = int(np.count_nonzero(~new_kept) + np.count_nonzero(~gone_kept))
    if not changed:
        return None
    data = pa.concat_tables([old.filter(pc.invert(hit)), schemas.to_arrow(t, rows)])
    digest = lake.read_sidecar(marts, t.name, d, DIGEST) if exists else _NO_HASHES
    if digest is None or len(digest) != old.num_rows:
        digest = np.sort(_row_hashes(data.to_pandas(), t))
    else:  # the day's digest without the rows that went, with those that came: two sorted runs,
        # which a stable sort (timsort) merges in one pass
        digest = np.sort(np.concatenate([_drop_sorted(digest, gone_sorted), new_sorted]), kind="stable")
    lake.write_partition(marts, t.name, d, data, sidecars={DIGEST: digest, ALL_FINAL: np.array([False])})
    moved = pd.concat([gone[col].iloc[gone_order[~gone_kept]], rows[col].iloc[new_order[~new_kept]]])
    return old.num_rows, data.num_rows, changed, False, pa.array(moved.astype(str).unique(), pa.large_string())


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Whether each value is in ``sorted_set`` (sorted): a binary search, no hash table."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def _drop_sorted(many: np.ndarray, few: np.ndarray) -> np.ndarray:
    """``many`` without the values of ``few`` (both sorted, distinct values): a binary search of
    the few in the many, so a day's digest loses a few users' rows without a pass over it per row."""
    if not len(many) or not len(few):
        return many
    at = np.searchsorted(many, few)
    inside = at < len(many)
    # A value of ``many`` equal to one of ``few`` is found at exactly that value's insertion point.
    at = at[inside][many[at[inside]] == few[inside]]
    keep = np.ones(len(many), dtype=bool)
    keep[at] = False
    return many[keep]


def _scoped_days(settings: Settings, plan: Plan) -> dict[date, pa.Array]:
    """Days before the plan's boost_all_from: the users whose snapshots the run recomputed."""
    if not plan.boost_all_from:
        return {}
    start, _ = plan.dates()
    until = date.fromisoformat(plan.boost_all_from) - timedelta(days=1)
    if until < start:
        return {}
    scope = boost_scope(settings, plan)
    first = pd.to_datetime(scope["from_dt"]).dt.date if len(scope) else scope["from_dt"]
    return {
        d: pa.array(scope.loc[(first <= d).to_numpy(dtype=bool), "user_id"].astype(str), pa.large_string())
        for d in day_range(start, until)
    }


def stage_reduce(settings: Settings, plan: dict | Plan, parts: list[str], say: Say = _quiet) -> dict[str, int]:
    """Merge bucket outputs; write the days whose rows changed to the marts and record each.

    Refuses (StaleRunError) when the lake took another ingestion after the plan: the computation
    would be missing it, and the run that ingested it computes it.
    """
    plan = Plan.of(plan)
    with arrival.locked(settings, what=f"reduce {plan.run_id}"):
        state = arrival.State.load(settings)
        if state.generation != plan.generation:
            raise arrival.StaleRunError(
                f"{plan.run_id}: the lake took new deliveries after this run planned (generation "
                f"{plan.generation} -> {state.generation}); its results would be stale, so nothing "
                "was written. Run the day again (the run that ingested them also computes them)."
            )
        counts: dict[str, int] = {}
        if plan.computes:
            counts = _write_changed_days(settings, plan, state, parts, say)
        state.pending = arrival.Pending()
        if plan.latest:
            state.computed = {"latest": plan.latest, "first": plan.first, "reference": plan.reference}
        state.save(settings)
    return counts


def _write_changed_days(settings: Settings, plan: Plan, state: arrival.State, parts: list[str], say: Say = _quiet) -> dict[str, int]:
    merged = _Merged(parts)
    start, latest = plan.dates()
    before = state.computed or {}
    latest_before = date.fromisoformat(before["latest"]) if before.get("latest") else None
    marts = settings.lake / MARTS
    records: list[dict] = []
    counts: dict[str, int] = {}
    span = day_range(start, latest)
    scoped = _scoped_days(settings, plan)

    def restate(t: schemas.Table, rows: Callable[[date], tuple[pd.DataFrame, np.ndarray]], days: list[date]) -> int:
        have = set(lake.partitions(marts, t.name))
        written = 0
        for d in days:
            if t.name in arrival.SCOPED and d in scoped:
                if not len(scoped[d]):
                    continue
                change = _restate_scoped(settings, t, d, *rows(d), scoped[d], d in have)
            else:
                change = _restate_day(settings, t, d, *rows(d), d in have)
            if change is None:
                continue
            rows_before, rows_after, changed, old_final, keys = change
            if keys is None:
                state.mark_unpublished(t.name, [d], lake_root=settings.lake)
            else:
                state.mark_scoped(settings.lake, t.name, d, keys)
            written += 1
            records.append(
                {
                    "dt": d,
                    "table_name": t.name,
                    "rows_before": rows_before,
                    "rows_after": rows_after,
                    "rows_changed": changed,
                    "was_final": _was_final(t, d, rows_before, old_final, latest_before),
                    "caused_by": " ".join(plan.causes) or "window",
                    "through_dt": latest,
                    "run_id": plan.run_id,
                }
            )
        return written

    # SPEC 5.11: the models are fitted over the last model_window days up to W, so a run fits one
    # snapshot, as of W, from the funnel facts as the marts now hold them. It replaces the snapshot
    # of an earlier W (those rows go, and the restatement records say so); unchanged, it is not
    # rewritten. It is fitted on a worker thread once the facts are restated, while the other
    # tables are (both mostly run in numpy and Arrow, which release the GIL).
    def fit():
        return model_tables(settings, _marts_facts(settings, latest), date.fromisoformat(plan.first), latest, plan.run_id)

    fitting = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="models") as pool:
        for t in schemas.FUNNEL_TABLES:
            counts[t.name] = restate(t, merged.rows(t), span)
            if fitting is None and FACT_NAMES <= counts.keys():
                say(f"model snapshot (SPEC 5.11) as of {latest}")
                fitting = pool.submit(fit)
        # A summary follows its source's days as the marts now hold them (whole days, also after
        # a scoped restatement): those this run changed, and any it lacks (a lake from before the
        # summary existed gets all of its days, restated or not).
        source, summary = schemas.BRAND_BOOST_SIGNALS.name, schemas.AGG_BOOST_SCORES
        changed = {r["dt"] for r in records if r["table_name"] == source}
        lacking = set(lake.partitions(marts, source)) - set(lake.partitions(marts, summary.name))
        days = sorted(changed | lacking)
        counts[summary.name] = restate(summary, _sliced(summary, boost_scores(settings, days, plan.run_id)), days)
        models = fitting.result()
    for t in schemas.MODEL_TABLES:
        earlier = [d for d in lake.partitions(marts, t.name) if d != latest and _holds_rows(marts, t, d)]
        counts[t.name] = restate(t, _sliced(t, models[t.name]), [*earlier, latest])
    if records:
        folder = settings.lake / RESTATED
        folder.mkdir(parents=True, exist_ok=True)
        frame = schemas.to_arrow(schemas.RESTATEMENTS, pd.DataFrame(records))
        pq.write_table(frame, folder / f"{plan.run_id}.parquet")
        if plan.run_id not in state.restatements:
            state.restatements.append(plan.run_id)
    return counts


# ---------------------------------------------------------------- stage 4b: validate


def stage_validate(settings: Settings, plan: dict | Plan, *, data_docs: bool = True) -> dict:
    """Run the quality suites on what the run would publish; returns counts (docs/quality.md).

    A critical failure publishes the run's dq_results alone and raises QualityGateError, so the
    publish stage does not run (what it would have published stays pending for the next run);
    warnings are recorded and do not block. ``data_docs`` rebuilds the Data Docs site.
    """
    from .quality.validate import gate

    plan = Plan.of(plan)
    with arrival.locked(settings, what=f"validate {plan.run_id}"):
        return gate(settings, date.fromisoformat(plan.day), plan.run_id, data_docs=data_docs)


# ---------------------------------------------------------------- stage 5: publish


def publish_frames(
    settings: Settings, state: arrival.State, day: date
) -> tuple[dict[str, warehouse.Rows], dict[str, list[date]], dict[str, dict[date, pa.Array]]]:
    """Everything not yet published: changed marts days (scoped days: their keys' rows, and the
    keys), read one day at a time as the publish loads them; ingestion logs, restatements, the
    day's dq_results."""
    frames: dict[str, warehouse.Rows] = {}
    days: dict[str, list[date]] = {}
    scoped: dict[str, dict[date, pa.Array]] = {}
    for t in schemas.COMPUTED_TABLES:
        scope = arrival.scopes(settings.lake, state, t.name)
        days[t.name] = [d for d, keys in scope.items() if keys is None]
        scoped[t.name] = {d: keys for d, keys in scope.items() if keys is not None}
        frames[t.name] = partial(arrival.unpublished_parts, settings.lake, state, t.name)
    for t in (schemas.QUARANTINE, schemas.INGEST_FILES):
        logged = state.unpublished_days(t.name)
        frames[t.name] = lake.read_table(settings.lake, t.name, logged) if logged else schemas.empty_frame(t)
    restated = [settings.lake / RESTATED / f"{r}.parquet" for r in state.restatements]
    restated = [p for p in restated if p.exists()]
    frames[schemas.RESTATEMENTS.name] = schemas.conform(
        schemas.RESTATEMENTS,
        pd.concat([pq.read_table(p).to_pandas() for p in restated], ignore_index=True)
        if restated
        else schemas.empty_frame(schemas.RESTATEMENTS),
    )
    if day in lake.partitions(settings.lake, schemas.DQ_RESULTS.name):  # stage_validate ran
        frames[schemas.DQ_RESULTS.name] = lake.read_table(settings.lake, schemas.DQ_RESULTS.name, [day])
    return frames, days, scoped


def stage_publish(settings: Settings, plan: dict | Plan, *, fail_after: str | None = None) -> dict[str, int]:
    """Publish everything pending (this run's and any earlier unpublished work) in one transaction."""
    from . import db, warehouse

    plan = Plan.of(plan)
    url = settings.resolved_warehouse_url()
    warehouse.check_connection(url)
    db.upgrade(url)
    with arrival.locked(settings, what=f"publish {plan.run_id}"):
        state = arrival.State.load(settings)
        frames, days, scoped = publish_frames(settings, state, date.fromisoformat(plan.day))
        engine = warehouse.make_engine(url)
        try:
            written = warehouse.publish(engine, frames, days, scoped=scoped, fail_after=fail_after)
        finally:
            engine.dispose()
        state.published(settings.lake)
        state.save(settings)
    return written


# ---------------------------------------------------------------- stage 6: report


def stage_report(settings: Settings, day: date) -> str:
    """Write the day's HTML attribution report from the warehouse; returns its path (docs/report.md)."""
    from .report import build_report

    return str(build_report(settings, day))


# ---------------------------------------------------------------- a whole run, in-process


@dataclass
class DaySummary:
    day: date
    plan: Plan
    published: dict[str, int]
    seconds: float
    report: str | None = None

    @property
    def ingest(self) -> dict:
        return self.plan.ingest


@dataclass
class RunSummary:
    settings: Settings
    days: list[DaySummary] = field(default_factory=list)

    def as_rows(self) -> list[tuple[str, object]]:
        totals = [t for d in self.days for t in d.ingest["totals"].values()]
        acc = sum(t["accepted_rows"] for t in totals)
        quar = sum(t["quarantined_rows"] for t in totals)
        errors = sum(len(d.ingest["errors"]) for d in self.days)
        delivered = sorted({x for d in self.days for x in d.plan.ingested})
        rows: list[tuple[str, object]] = [
            ("runs", f"{len(self.days)} ({self.days[0].day} .. {self.days[-1].day})" if self.days else 0),
            ("deliveries ingested", f"{len(delivered)}" + (f" ({delivered[0]} .. {delivered[-1]})" if delivered else "")),
            ("rows accepted", f"{acc:,}"),
            ("rows quarantined", f"{quar:,}"),
            ("unreadable files", errors),
        ]
        if self.days:
            last = self.days[-1].plan
            rows.append(("latest delivery (W)", last.latest or "none"))
            rows.append(("recomputed", f"{last.start} .. {last.latest}" if last.computes else "nothing changed"))
            for name, n in self.days[-1].published.items():
                rows.append((f"published: {name}", f"{n:,} rows"))
        return rows

    def locations(self) -> list[tuple[str, str]]:
        """Where the outputs are."""
        return [
            ("lake (Parquet)", str(self.settings.lake.resolve())),
            ("warehouse", redact_url(self.settings.resolved_warehouse_url())),
            ("rejected rows", "warehouse table `quarantine` (reason, file, row, raw content)"),
            ("what each run rewrote", "warehouse table `restatements`"),
            *(("report", str(Path(d.report).resolve())) for d in self.days[-1:] if d.report),
        ]


def run_day(
    settings: Settings,
    day: date,
    *,
    engine: str = "pandas",
    run_id: str | None = None,
    report: bool = True,
    validate: bool = True,
    say: Say = _quiet,
) -> DaySummary:
    """One run for delivery day ``day``, every stage in-process under the lake lock; the report last.

    ``validate=False`` skips the quality gate (tests of the arrival rules that run hundreds of days).
    """
    t0 = time.perf_counter()
    if report:
        # The report draws its charts in the worker process (``workers``); started now, its
        # imports overlap the stages before it.
        workers.start()
    with arrival.locked(settings, say, f"run {day}"):
        plan = Plan.of(stage_plan(settings, day, run_id, say))
        parts = [stage_funnel_bucket(settings, plan, b, settings.buckets, engine) for b in range(settings.buckets)]
        stage_reduce(settings, plan, parts, say)
        shutil.rmtree(run_dir(settings, plan), ignore_errors=True)
        # Raises QualityGateError on a critical failure: nothing more is published, and what this
        # run computed stays pending for the next run.
        if validate:
            stage_validate(settings, plan, data_docs=report)
        published = stage_publish(settings, plan)
    path = stage_report(settings, day) if report else None
    return DaySummary(day, plan, published, time.perf_counter() - t0, path)


def run_days(
    settings: Settings,
    start: date,
    end: date,
    *,
    engine: str = "pandas",
    progress: Progress | None = None,
    each_day: bool = False,
) -> RunSummary:
    """Bring the warehouse up to delivery day ``end``.

    By default one run for ``end``: it ingests every delivery up to ``end`` not yet ingested and
    computes the funnel once. ``each_day`` runs ``start .. end`` one by one instead, as a daily
    schedule would (the result is the same; SPEC 5, Arrival).
    """
    summary = RunSummary(settings)
    days = day_range(start, end) if each_day else [end]
    for i, day in enumerate(days):
        done = i / len(days)
        if progress:
            progress(f"day {day}", done)
        say = (lambda msg, at=done: progress(msg, at)) if progress else _quiet
        summary.days.append(run_day(settings, day, engine=engine, report=day == days[-1], say=say))
    if progress:
        progress("done", 1.0)
    return summary
