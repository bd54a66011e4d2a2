"""The warehouse: SQLAlchemy Core tables derived from ``schemas``, atomic day replacement, fast loads.

SQLite by default, PostgreSQL through a URL. Publishing a set of days of a table is one
transaction: delete those days, load the new rows, commit. A failure anywhere rolls back and the
previous data stays. On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (pysqlite's own
transaction handling is disabled, so the DELETE and INSERTs really are one transaction); on
PostgreSQL rows are loaded with binary ``COPY`` through psycopg 3 and publishes of the same table
are serialised by a transaction-scoped advisory lock.

Loads are built column-wise with Arrow in batches of ``BATCH_ROWS`` (no per-row Python work
besides the SQLite driver's binding): multi-row INSERTs on SQLite, binary COPY tuples assembled
with ``binary_join_element_wise`` on PostgreSQL (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from . import lake, schemas
from .redact import redact_text, redact_url

_SA_TYPES = {
    "str": sa.Text,
    "int64": sa.BigInteger,
    "float64": lambda: sa.Double(),
    "bool": sa.Boolean,
    "ts": lambda: sa.DateTime(timezone=True),
    "date": sa.Date,
    "list<str>": sa.Text,  # JSON text
}

metadata = sa.MetaData()


#: Secondary indexes beyond each table's day index, named by their columns: the access path of
#: the report's distinct exposed users (docs/report.md, "Cost"; migration 0006_report_indexes).
INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    schemas.FCT_TOUCHES.name: (("brand_id", "user_id", "dt"),),
}


def index_name(table: str, columns: tuple[str, ...]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def _sa_table(t: schemas.Table) -> sa.Table:
    cols = [sa.Column(c.name, _SA_TYPES[c.type](), nullable=c.nullable, comment=c.doc) for c in t.columns]
    idx = [sa.Index(f"ix_{t.name}_{t.partition}", t.partition)] if t.partition else []
    idx += [sa.Index(index_name(t.name, on), *on) for on in INDEXES.get(t.name, ())]
    return sa.Table(t.name, metadata, *cols, *idx, comment=f"{t.grain}. Key: {', '.join(t.key)}")


TABLES: dict[str, sa.Table] = {t.name: _sa_table(t) for t in schemas.WAREHOUSE_TABLES}


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with SQLite's transactions made real (BEGIN IMMEDIATE)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _no_pysqlite_tx(dbapi_conn, _record):  # pysqlite would BEGIN lazily, after DDL
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: large loads spill less

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            # A reader (``reading``) takes a deferred transaction: a snapshot that neither waits
            # for nor blocks a writer, nor other readers.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


_READ_ONLY = "seedfunnel_read_only"


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for reads only. On SQLite its transaction is deferred (``BEGIN``, not
    ``BEGIN IMMEDIATE``), so readers on several connections run at the same time."""
    with engine.connect() as conn:
        yield conn.execution_options(**{_READ_ONLY: True})


def create_all(engine: sa.Engine) -> None:
    """Create missing tables (the migrations' baseline)."""
    metadata.create_all(engine)


def check_connection(url: str) -> None:
    """Raise a clear error when the warehouse cannot be reached."""
    try:
        with make_engine(url).connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as e:  # the driver's message is the useful part
        raise RuntimeError(
            f"cannot connect to the warehouse {redact_url(url)}: {e.__class__.__name__}: "
            f"{redact_text(str(e), url)}. {_what_to_check(url)}"
        ) from None


def _what_to_check(url: str) -> str:
    """What a person should look at when the warehouse cannot be reached."""
    try:
        u = sa.make_url(url)
    except Exception:
        return "Check the URL (SEEDFUNNEL_WAREHOUSE_URL or --warehouse-url): it is not a SQLAlchemy URL."
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        folder = Path(u.database).parent
        return (
            f"The SQLite warehouse file lives in {folder}: check that the folder exists and that "
            "you can write to it (--home, SEEDFUNNEL_HOME), or pass --warehouse-url."
        )
    return "Check the URL (SEEDFUNNEL_WAREHOUSE_URL or --warehouse-url) and that the server is up."


#: What ``publish`` takes for a table: a frame, an Arrow table, or a callable that gives its rows
#: in parts (Arrow tables of the table's schema), loaded one after another so that few parts at a
#: time are in memory (``arrival.unpublished_parts``: batches of ``lake.BATCH_ROWS`` rows).
Rows = pd.DataFrame | pa.Table | Callable[[], Iterable[pa.Table]]


def _parts(t: schemas.Table, rows: Rows, dialect: str) -> Iterator[_Prepared]:
    """A table's rows ready to load, in batches of at most ``BATCH_ROWS`` rows."""
    tables = rows() if callable(rows) else [rows if isinstance(rows, pa.Table) else schemas.to_arrow(t, rows)]
    yield from _read_ahead((b for table in tables for b in _batches(table)), partial(_prepare, t, dialect=dialect))


def _read_ahead(batches: Iterable[pa.Table], prepare: Callable[[pa.Table], _Prepared]) -> Iterator[_Prepared]:
    """``batches`` prepared, in order, the next one read and prepared on a thread while the caller
    loads this one: the Parquet read, the filter and the conversion overlap the database's work
    (SQLite's steps and psycopg's writes let go of the GIL). At most two batches are held; an
    error making a batch is raised where that batch's turn comes."""
    batches = iter(batches)

    def made() -> _Prepared | None:
        batch = next(batches, None)
        return None if batch is None else prepare(batch)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-read") as pool:
        ahead = pool.submit(made)
        while (part := ahead.result()) is not None:
            ahead = pool.submit(made)
            yield part


def publish(
    engine: sa.Engine,
    frames: Mapping[str, Rows],
    days: Mapping[str, Iterable[date]],
    *,
    scoped: Mapping[str, Mapping[date, pa.Array]] | None = None,
    fail_after: str | None = None,
) -> dict[str, int]:
    """Replace ``days`` of each table with ``frames`` in ONE transaction; returns rows written.

    A table's rows may come in parts (``Rows``); a log table's must be one frame.

    ``scoped``: per table, days of which only some keys' rows are replaced (the column
    ``schemas.RESTATED_BY_USER`` names: a boost day restated for some users); ``frames`` then holds those
    keys' rows of that day.

    Log tables (``schemas.LOG_TABLES``) are appended to instead: only rows of the frame's own
    run_ids are replaced, so a log never loses another run's rows.

    ``fail_after`` names a table after whose load an error is raised (for failure-injection tests).
    """
    written: dict[str, int] = {}
    with engine.begin() as conn:
        for name, df in frames.items():
            t = schemas.table(name)
            sat = TABLES[name]
            part = t.partition
            day_list = sorted(set(days.get(name, ())))
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_lock_id(name),))
            if t in schemas.LOG_TABLES:
                # A log only grows: a run replaces nothing but its own earlier rows.
                if callable(df):
                    raise TypeError(f"{name}: a log table is published from one frame, not in parts")
                runs = sorted(set(df["run_id"].astype(str))) if len(df) else []
                if runs:
                    conn.execute(sa.delete(sat).where(sat.c["run_id"].in_(runs)))
            elif day_list:
                conn.execute(sa.delete(sat).where(sat.c[part].in_(day_list)))
            for day, keys in sorted((scoped or {}).get(name, {}).items()):
                _delete_keys(conn, sat, part, day, schemas.RESTATED_BY_USER[name], keys)
            written[name] = 0
            for batch in _parts(t, df, engine.dialect.name):
                _load(conn, t, batch)
                written[name] += batch.rows
            if fail_after == name:
                raise RuntimeError(f"injected failure after loading {name}")
    return written


_SCOPE = sa.Table("seedfunnel_scope", sa.MetaData(), sa.Column("key", sa.Text), prefixes=["TEMPORARY"])


def _delete_keys(conn: sa.Connection, sat: sa.Table, part: str, day: date, col: str, keys: pa.Array) -> None:
    """Delete the rows of ``day`` whose ``col`` is one of ``keys`` (through a temporary table)."""
    _SCOPE.create(conn, checkfirst=True)
    conn.execute(sa.delete(_SCOPE))
    values = keys.to_pylist()
    for i in range(0, len(values), BATCH_ROWS):
        conn.execute(_SCOPE.insert(), [{"key": k} for k in values[i : i + BATCH_ROWS]])
    conn.execute(sa.delete(sat).where(sat.c[part] == day, sat.c[col].in_(sa.select(_SCOPE.c.key))))


def _lock_id(name: str) -> int:
    return zlib.crc32(f"seedfunnel:{name}".encode()) & 0x7FFFFFFF


#: Rows per batch of a load: bounds the memory of converted values, not the transaction.
BATCH_ROWS = lake.BATCH_ROWS
#: Rows per SQLite INSERT statement (fewer statement steps than one row each).
_SQLITE_ROWS_PER_INSERT = 500
#: Microseconds and days from the Unix epoch to PostgreSQL's (2000-01-01), for binary COPY.
_PG_EPOCH_US = 946_684_800_000_000
_PG_EPOCH_DAYS = 10_957
_PG_NULL = b"\xff\xff\xff\xff"  # a field of length -1


class _Prepared(NamedTuple):
    """One batch of a table's rows converted for one dialect: SQLite's bound values
    (``_sqlite_rows``) or PostgreSQL's binary COPY tuples (``_binary_rows``)."""

    rows: int
    values: np.ndarray | pa.Buffer


def _prepare(t: schemas.Table, batch: pa.Table, dialect: str) -> _Prepared:
    batch = _encode_lists(t, batch)
    convert = _binary_rows if dialect == "postgresql" else _sqlite_rows
    return _Prepared(batch.num_rows, convert(t, batch))


def _load(conn: sa.Connection, t: schemas.Table, batch: _Prepared) -> None:
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, t, batch.values)
    else:
        _insert_many(conn, t, batch.values)


def _encode_lists(t: schemas.Table, arrow: pa.Table) -> pa.Table:
    """list<str> columns as JSON text (the only list column is small: note tags)."""
    import json

    for i, c in enumerate(t.columns):
        if c.type == "list<str>":
            col = arrow.column(i)
            text = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False) for v in col.to_pylist()],
                type=pa.string(),
            )
            arrow = arrow.set_column(i, c.name, text)
    return arrow


def _batches(arrow: pa.Table):
    for offset in range(0, arrow.num_rows, BATCH_ROWS):
        yield arrow.slice(offset, BATCH_ROWS)


# ---------------------------------------------------------------- SQLite: executemany


def _sqlite_rows(t: schemas.Table, batch: pa.Table) -> np.ndarray:
    """A batch's values as SQLite binds them, row-major (an object array of rows x columns)."""
    values = np.empty((batch.num_rows, len(t.columns)), dtype=object)  # row-major: rows bound flat
    for j, (c, col) in enumerate(zip(t.columns, batch.columns, strict=True)):
        values[:, j] = _sqlite_values(c, col)
    return values


def _insert_many(conn: sa.Connection, t: schemas.Table, values: np.ndarray) -> None:
    """Multi-row INSERTs (up to ``_SQLITE_ROWS_PER_INSERT`` rows each) with the values bound flat."""
    dbapi = conn.connection.driver_connection  # the transaction's own connection
    width = len(t.columns)
    per = max(1, min(_SQLITE_ROWS_PER_INSERT, dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    names = ", ".join(f'"{n}"' for n in t.names)
    row = "(" + ", ".join("?" for _ in t.columns) + ")"
    many = f'INSERT INTO "{t.name}" ({names}) VALUES ' + ", ".join([row] * per)
    one = f'INSERT INTO "{t.name}" ({names}) VALUES {row}'
    cur = dbapi.cursor()
    try:
        full = len(values) // per * per
        flat = values[:full].ravel().tolist()
        step = per * width
        for i in range(0, len(flat), step):
            cur.execute(many, flat[i : i + step])
        if full < len(values):
            cur.executemany(one, values[full:].tolist())
    finally:
        cur.close()


def _sqlite_values(c: schemas.Column, col: pa.ChunkedArray) -> np.ndarray:
    """One column as the Python values SQLAlchemy's SQLite types store (object array; nulls None).

    Timestamps are SQLAlchemy's naive 'YYYY-MM-DD HH:MM:SS.ffffff' text (every value is UTC),
    dates 'YYYY-MM-DD', booleans 0/1. Arrow's casts format them column-wise.
    """
    if c.type == "ts":
        col = col.cast(pa.timestamp("us")).cast(pa.string())
    elif c.type == "date":
        col = col.cast(pa.string())
    if pa.types.is_string(col.type):
        codes = col.combine_chunks().dictionary_encode()
        if len(codes.dictionary) * 4 < len(codes):  # repetitive: one Python string per distinct value
            distinct = np.append(codes.dictionary.to_numpy(zero_copy_only=False), None)
            return distinct[pc.fill_null(codes.indices, len(codes.dictionary)).to_numpy(zero_copy_only=False)]
        return col.to_numpy(zero_copy_only=False)  # nulls come out as None
    filled = pc.fill_null(col, False if c.type == "bool" else 0) if col.null_count else col
    values = filled.to_numpy(zero_copy_only=False).astype(object)
    if col.null_count:
        values[col.is_null().to_numpy(zero_copy_only=False)] = None
    return values


# ---------------------------------------------------------------- PostgreSQL: binary COPY


def _copy_postgres(conn: sa.Connection, t: schemas.Table, rows: pa.Buffer) -> None:
    """COPY in PostgreSQL's binary format, built column-wise with Arrow (no per-row Python)."""
    names = ", ".join(f'"{n}"' for n in t.names)
    dbapi = conn.connection.driver_connection
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    with dbapi.cursor() as cur:
        with cur.copy(f'COPY "{t.name}" ({names}) FROM STDIN (FORMAT binary)') as copy:
            copy.write(header)
            copy.write(memoryview(rows))
            copy.write(b"\xff\xff")  # end of data: a field count of -1


def _binary_rows(t: schemas.Table, batch: pa.Table) -> pa.Buffer:
    """The binary COPY tuples of a batch: per row, the field count, then each field's length and bytes."""
    n = batch.num_rows
    fields = [_fixed_binary(np.full(n, len(t.columns), dtype=">i2"))]
    fields += [_binary_field(c, col) for c, col in zip(t.columns, batch.columns, strict=True)]
    rows = pc.binary_join_element_wise(*fields, pa.scalar(b"", pa.binary()))
    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=n + 1, offset=rows.offset * 4)
    return rows.buffers()[2][offsets[0] : offsets[-1]]


def _binary_field(c: schemas.Column, col: pa.ChunkedArray) -> pa.Array:
    """One column as binary COPY fields: 4-byte big-endian length (-1 for null) + the value's bytes."""
    col = col.combine_chunks()
    n = len(col)
    if c.type in ("str", "list<str>"):
        data = col.cast(pa.binary())
        length = pc.fill_null(pc.binary_length(data), 0).to_numpy(zero_copy_only=False)
        prefix = _fixed_binary(length.astype(">i4"))
        out = pc.binary_join_element_wise(prefix, data, pa.scalar(b"", pa.binary()))
    else:
        numeric, epoch, dtype = {
            "ts": (pa.int64(), _PG_EPOCH_US, ">i8"),  # microseconds since 2000-01-01 UTC
            "date": (pa.int32(), _PG_EPOCH_DAYS, ">i4"),  # days since 2000-01-01
            "int64": (pa.int64(), 0, ">i8"),
            "float64": (pa.float64(), 0, ">f8"),
            "bool": (pa.uint8(), 0, "u1"),
        }[c.type]
        values = pc.fill_null(col.cast(numeric), 0).to_numpy(zero_copy_only=False)
        value = (values - epoch if epoch else values).astype(dtype)
        packed = np.empty(n, dtype=[("len", ">i4"), ("value", dtype)])
        packed["len"] = value.dtype.itemsize
        packed["value"] = value
        out = _fixed_binary(packed)
    if col.null_count:
        out = pc.if_else(col.is_null(), pa.scalar(_PG_NULL, pa.binary()), out)
    return out


def _fixed_binary(values: np.ndarray) -> pa.Array:
    """Each element's raw bytes (any fixed-width numpy dtype) as an Arrow binary array."""
    raw = np.ascontiguousarray(values)
    width = raw.dtype.itemsize
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(raw), [None, pa.py_buffer(raw.tobytes())])
    return fixed.cast(pa.binary())


def read_table(engine: sa.Engine, name: str, where: sa.ColumnElement | None = None) -> pd.DataFrame:
    """Read a warehouse table back as a frame conformed to its declaration."""
    sat = TABLES[name]
    stmt = sa.select(sat)
    if where is not None:
        stmt = stmt.where(where)
    with engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    t = schemas.table(name)
    for c in t.columns:
        if c.type == "ts":
            df[c.name] = pd.to_datetime(df[c.name], utc=True, format="mixed").astype("datetime64[us, UTC]")
        elif c.type == "date":
            df[c.name] = pd.to_datetime(df[c.name]).dt.date
        elif c.type == "bool":
            df[c.name] = df[c.name].astype(bool)
    return schemas.conform(t, df)
