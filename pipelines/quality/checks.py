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

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import arrival, lake, schemas, windows
from ..ingest.notes.base import UNKNOWN_TYPE
from ..settings import Settings
from . import fast

#: Threads reading a day's tables (and proving their suites, ``validate``) at once.
READERS = 2

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
    rows = table_rows(settings, day)
    return {name: in_key_order(name, r.frame()) if sort else r.frame() for name, r in rows.items()}


@dataclass
class TableRows:
    """The rows of one validated table for a day. ``parts``: its files (the day's delivery of an
    input, the unpublished marts days of a computed table) as ``fast.Part`` (the columns its suite
    needs, in Arrow); None when the table is read as a frame only. ``frame()``: the pandas frame
    (made once, on demand), exactly ``arrival.read_unpublished`` or ``lake.read_table``."""

    table: schemas.Table
    parts: list[fast.Part] | None
    load: Callable[[], pd.DataFrame]
    _frame: pd.DataFrame | None = None
    #: Some columns of the frame, read alone (None: taken from ``frame()``).
    load_columns: Callable[[list[str]], pd.DataFrame] | None = None

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = self.load()
        return self._frame

    def columns(self, names: list[str]) -> pd.DataFrame:
        """``frame()[names]``, read alone when the frame was not made."""
        if self._frame is None and self.load_columns is not None:
            return self.load_columns(names)
        return self.frame()[names]

    @property
    def num_rows(self) -> int:
        return sum(p.num_rows for p in self.parts) if self.parts is not None else len(self.frame())


class TableFrames(Mapping):
    """Validated tables by name as pandas frames, each made when first asked for (``rows``: their
    ``TableRows``): a table whose suite passes on its Arrow parts never becomes a frame."""

    def __init__(self, rows: dict[str, TableRows]):
        self.rows = rows

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.rows[name].frame()

    def columns(self, name: str, names: list[str]) -> pd.DataFrame:
        return self.rows[name].columns(names)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def table_rows(
    settings: Settings, day: date, *, suites: dict[str, dict] | None = None, params: dict | None = None
) -> dict[str, TableRows]:
    """Every validated table of ``day``, as ``TableRows``. With ``suites`` (and the suite
    ``params``), the day's delivery of each canonical input and the unpublished marts days of
    each computed table are read as ``fast.Part`` (only the columns its suite needs; Parquet
    statistics for the rest), their frames on demand only; the others are read as frames."""
    state = arrival.State.load(settings)

    def rows_of(t: schemas.Table) -> TableRows:
        definition = (suites or {}).get(t.name)
        if t in schemas.COMPUTED_TABLES and state.unpublished_days(t.name):
            load = partial(arrival.read_unpublished, settings.lake, state, t.name)  # exactly what publish writes
            marts = Path(settings.lake) / arrival.MARTS
            files = [(d, lake.partition_path(marts, t.name, d) / lake.PART, keys)
                     for d, keys in arrival.scopes(settings.lake, state, t.name).items()]
            columns = partial(_unpublished_columns, settings.lake, state, t)
        elif t in schemas.INPUT_TABLES:
            days = None if t.partition is None else [day]
            load = partial(lake.read_table, settings.lake, t.name, days)
            path = lake.partition_path(settings.lake, t.name, days[0] if days else None) / lake.PART
            files = [(day if days else None, path, None)] if path.exists() else []
            columns = partial(_input_columns, settings.lake, t.name, days)
        else:
            if t in schemas.COMPUTED_TABLES:
                load = partial(lake.read_table, settings.lake / arrival.MARTS, t.name, funnel_days(settings, state, t, day))
            else:
                load = partial(lake.read_table, settings.lake, t.name, None if t.partition is None else [day])
            return TableRows(t, None, load, load())
        parts = _file_parts(t, files, definition, params or {}) if definition and files else None
        return TableRows(t, parts, load, None if parts is not None else load(), columns)

    # Tables are read on threads (Parquet reads and Arrow filters release the GIL).
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="validate-read") as pool:
        return dict(zip((t.name for t in VALIDATED_TABLES), pool.map(rows_of, VALIDATED_TABLES), strict=True))


#: A table whose files to validate hold more rows than this (at 100k users a restated boost
#: holds about 10 million) is proven one file at a time, each read when the proof comes to it
#: and let go after (``fast.suite_passes``): what validation holds of it is one day, not all.
STREAM_ROWS = 25_000_000


def _file_parts(
    t: schemas.Table, files: list[tuple[date | None, Path, pa.Array | None]], definition: dict, params: dict
) -> list[fast.Part] | None:
    """The rows of ``files`` (each: its day, its path, the keys of a scoped day or None), one
    ``fast.Part`` per file: the columns ``definition`` needs the values of (strings
    dictionary-encoded: decoded and filtered once per distinct value), scoped days restricted to
    their keys, as ``arrival.read_unpublished`` reads them; None when a file does not hold
    exactly the declared columns and types (the frame is read instead). Past ``STREAM_ROWS`` rows
    in all, a part's data is read when the proof asks for it (only a scoped day's keys are read
    now, to count its rows)."""
    schema = t.arrow_schema()
    scoped = arrival.SCOPED.get(t.name)
    out = []
    try:
        opened = [(d, path, keys, pq.ParquetFile(path)) for d, path, keys in files]
    except (pa.ArrowException, OSError):
        return None
    later = sum(f.metadata.num_rows for *_, f in opened) > STREAM_ROWS
    for d, path, keys, file in opened:
        types = dict(zip(file.schema_arrow.names, file.schema_arrow.types, strict=True))
        if list(types) != schema.names or any(not types[f.name].equals(f.type) for f in schema):
            return None
        stats = fast.file_stats(file.metadata)
        need = sorted(fast.data_columns(definition, types, stats, params), key=schema.names.index)
        read = partial(_part_data, path, need, keys, scoped, types)
        try:
            if later:
                rows = file.metadata.num_rows if keys is None else _part_data(path, [], keys, scoped, types).num_rows
                out.append(fast.Part(d, rows, None, types, stats, read=read))
            else:
                data = read()
                out.append(fast.Part(d, file.metadata.num_rows if keys is None else data.num_rows, data, types, stats))
        except (pa.ArrowException, OSError):
            return None
    return out


def _part_data(
    path: Path, need: list[str], keys: pa.Array | None, scoped: str | None, types: dict[str, pa.DataType]
) -> pa.Table:
    """The columns ``need`` of a file (strings dictionary-encoded), restricted to the rows of
    ``keys`` in column ``scoped`` when given."""
    read = sorted(set(need) | ({scoped} if keys is not None else set()), key=list(types).index)
    strings = [c for c in read if pa.types.is_string(types[c])]
    data = pq.read_table(path, columns=read, read_dictionary=strings)
    if keys is not None:
        data = data.filter(_in_keys(data.column(scoped), keys))
    return data.select(need)


def _input_columns(lake_root: Path, name: str, days: list[date] | None, names: list[str]) -> pd.DataFrame:
    """``lake.read_table(...)[names]``, reading those columns only."""
    return lake.read_arrow(lake_root, name, days, columns=names).to_pandas()


def _unpublished_columns(lake_root: Path, state: arrival.State, t: schemas.Table, names: list[str]) -> pd.DataFrame:
    """``arrival.read_unpublished(...)[names]``, reading those columns only."""
    scoped = arrival.SCOPED.get(t.name)
    parts = []
    for d, keys in arrival.scopes(lake_root, state, t.name).items():
        read = [c for c in t.names if c in names or (keys is not None and c == scoped)]
        data = lake.read_arrow(Path(lake_root) / arrival.MARTS, t.name, [d], columns=read)
        if keys is not None:
            data = data.filter(pc.is_in(data.column(scoped).cast(pa.large_string()), value_set=keys))
        parts.append(data.select(names))
    if not parts:
        return schemas.empty_frame(t)[names]
    return pa.concat_tables(parts).to_pandas()


def _in_keys(col: pa.ChunkedArray, keys: pa.Array) -> pa.ChunkedArray:
    """Whether each value of a (dictionary-encoded) string column is one of ``keys``."""
    if not pa.types.is_dictionary(col.type):
        return pc.is_in(col.cast(pa.large_string()), value_set=keys)
    col = fast.one_dictionary(col)
    if not col.num_chunks:
        return pa.chunked_array([], pa.bool_())
    hit = pc.is_in(col.chunk(0).dictionary.cast(pa.large_string()), value_set=keys.cast(pa.large_string()))
    return pa.chunked_array([pc.take(hit, c.indices) for c in col.chunks], pa.bool_())


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
    lake_rows = {s: _num_rows(tables, s) for s in SOURCES if schemas.table(s).partition is not None}
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
            ts = _columns(tables, s, [EVENT_TIME[s]])[EVENT_TIME[s]]
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
    """``daily_feed_rates`` measured: one row per day, read from the lake.

    In Arrow: (platform, id) pairs are compared as one string each (``_pair_keys``), hashed by
    Arrow instead of pandas MultiIndexes; the winning links are found once per distinct set of
    link deliveries (links arrive in batches: days between two batches share it).
    """
    from ..funnel.prepare import linked_ids

    q = settings.quality
    last = max(days)

    def read(name: str, columns: list[str], upto: date = last, only: list[date] | None = None) -> pa.Table:
        have = [d for d in lake.partitions(settings.lake, name) if d <= upto and (only is None or d in only)]
        return lake.read_arrow(settings.lake, name, have, columns=columns)

    def day_numbers(data: pa.Table) -> np.ndarray:
        return data.column("dt").cast(pa.int32()).to_numpy()

    def number(d: date) -> int:
        return (d - _EPOCH).days

    links_data = read(schemas.ID_LINKS.name, schemas.ID_LINKS.names)
    links, links_dt = links_data.to_pandas(), day_numbers(links_data)
    notes = read(schemas.NOTES.name, ["platform", "note_id", "dt"])
    link_cohort = {d: d - timedelta(days=q.link_settle_days) for d in days}
    note_cohort = {d: d - timedelta(days=q.note_settle_days) for d in days}
    cohorts = sorted(set(link_cohort.values()) | set(note_cohort.values()))
    orders = read(schemas.ORDERS.name, ["brand_id", "dt"], only=days)
    orders_dt = day_numbers(orders)
    files_data = read(schemas.INGEST_FILES.name, ["input_rows", "quarantined_rows", "dt"], only=days)
    files, files_dt = files_data.to_pandas(), day_numbers(files_data)

    # Each exposure cohort once: its distinct external ids, and the first day a delivery held each
    # of its notes (seen by d: that day <= d; never delivered: null).
    note_keys = _pair_keys(notes.column("platform"), notes.column("note_id"))
    first = pa.table({"key": note_keys, "dt": day_numbers(notes)}).group_by("key").aggregate([("dt", "min")])
    # Each cohort's (platform, id) pairs as dictionary codes: strings made for distinct pairs only.
    ext_ids: dict[date, pa.Array] = {}
    seen_on: dict[date, np.ndarray] = {}
    delivered = set(lake.partitions(settings.lake, schemas.EXPOSURES.name))
    for c in cohorts:
        if c in delivered and c <= last:
            path = lake.partition_path(settings.lake, schemas.EXPOSURES.name, c) / lake.PART
            cols = ["platform", "note_id", "ext_user_id"]
            try:
                rows = pq.read_table(path, columns=cols, read_dictionary=cols)
            except (pa.ArrowException, OSError) as e:
                raise lake.damaged(path, e, Path(settings.lake)) from e
        else:
            rows = pa.table({n: pa.array([], pa.dictionary(pa.int32(), pa.string())) for n in ("platform", "note_id", "ext_user_id")})
        platform = _dictionary_codes(rows.column("platform"))
        ext, ext_at = _distinct_pairs(platform, _dictionary_codes(rows.column("ext_user_id")))
        ext_ids[c] = ext
        notes_read, read_at = _distinct_pairs(platform, _dictionary_codes(rows.column("note_id")))
        at = pc.index_in(notes_read, value_set=first.column("key"))
        seen = pc.take(first.column("dt_min"), at).to_numpy(zero_copy_only=False)  # NaN: never
        seen_on[c] = seen[read_at]

    winners: dict[int, pa.Array] = {}  # links delivered up to d (a prefix: read in day order) -> linked pairs

    def linked_pairs(d: date) -> pa.Array:
        upto = int(np.count_nonzero(links_dt <= number(d)))
        if upto not in winners:
            good = linked_ids(links.loc[links_dt <= number(d)], settings.funnel.min_link_confidence)
            winners[upto] = _pair_keys(
                pa.array(good["platform"], pa.string()), pa.array(good["ext_user_id"], pa.string())
            )
        return winners[upto]

    def share(mask) -> float:
        return float(np.mean(mask)) if len(mask) else np.nan

    brand_set = pa.array(list(brands), pa.string())
    rows = []
    for d in days:
        linked = pc.is_in(ext_ids[link_cohort[d]], value_set=linked_pairs(d)).to_numpy(zero_copy_only=False)
        orphan = ~(seen_on[note_cohort[d]] <= number(d))  # never seen (NaN) compares False
        day_orders = orders.column("brand_id").filter(pa.array(orders_dt == number(d)))
        known = pc.is_in(day_orders, value_set=brand_set).to_numpy(zero_copy_only=False)
        day_files = files.loc[files_dt == number(d)]
        input_rows = int(day_files["input_rows"].sum())
        rows.append(
            {
                "dt": d,
                "id_link_rate": share(linked),
                "orphan_exposure_rate": share(orphan),
                "unknown_brand_rate": share(~known),
                "quarantine_rate": int(day_files["quarantined_rows"].sum()) / input_rows if input_rows else np.nan,
            }
        )
    return rows


def _dictionary_codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """A dictionary-encoded string column (no nulls) as codes into one dictionary of distinct values."""
    col = fast.one_dictionary(col)
    if not col.num_chunks:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    indices = pa.chunked_array([c.indices for c in col.chunks], col.type.index_type).to_numpy()
    return indices.astype(np.int64, copy=False), col.chunk(0).dictionary


def _distinct_pairs(
    platform: tuple[np.ndarray, pa.Array], value: tuple[np.ndarray, pa.Array]
) -> tuple[pa.Array, np.ndarray]:
    """The distinct (platform, value) pairs of two coded columns as ``_pair_keys``, and for each
    row the position of its pair among them."""
    (p, p_values), (v, v_values) = platform, value
    span = max(len(v_values), 1)
    at, pairs = pd.factorize(p * span + v)
    keys = _pair_keys(p_values.take(pa.array(pairs // span)), v_values.take(pa.array(pairs % span)))
    return keys, at


_EPOCH = date(1970, 1, 1)
#: Separates the two halves of a pair key: no platform name holds it.
_PAIR_SEP = "\x1f"


def _pair_keys(platform: pa.ChunkedArray | pa.Array, value: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One string per (platform, value) pair: equal pairs, equal strings, and only those (the
    platform never holds the separator)."""
    platform, value = (pc.cast(a, pa.string()) for a in (platform, value))
    if pc.any(pc.match_substring(platform, _PAIR_SEP)).as_py():
        raise ValueError(f"a platform name holds the pair separator {_PAIR_SEP!r}")
    joined = pc.binary_join_element_wise(platform, value, _PAIR_SEP)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


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
            _columns(tables, schemas.FCT_SEEDED_ORDERS.name, ["order_id", "amount_fen"]),
            _columns(tables, schemas.FCT_ATTRIBUTION_CREDITS.name, [*stored_key(schemas.FCT_ATTRIBUTION_CREDITS), "credit_fen"]),
        ),
        RECONCILIATION: reconciliation(tables),
        FRESHNESS: freshness(settings, day, tables),
        FEED_RATES: feed_rates(settings, day, tables),
    }


def _columns(tables, name: str, names: list[str]) -> pd.DataFrame:
    """Some columns of a table's frame (read alone from ``TableFrames``)."""
    return tables.columns(name, names) if isinstance(tables, TableFrames) else tables[name][names]


def _num_rows(tables, name: str) -> int:
    """The rows of a table's frame (counted without making it, from ``TableFrames``)."""
    return tables.rows[name].num_rows if isinstance(tables, TableFrames) else len(tables[name])
