"""The warehouse: SQLAlchemy Core tables derived from ``schemas``, atomic day replacement, fast loads.

SQLite by default, PostgreSQL through a URL. Publishing a set of days of a table is one
transaction: delete those days, load the new rows, commit. A failure anywhere rolls back and the
previous data stays. On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (pysqlite's own
transaction handling is disabled, so the DELETE and INSERTs really are one transaction); on
PostgreSQL rows are loaded with ``COPY`` through psycopg 3 and publishes of the same table are
serialised by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Mapping
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from . import schemas

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


def _sa_table(t: schemas.Table) -> sa.Table:
    cols = [sa.Column(c.name, _SA_TYPES[c.type](), nullable=c.nullable, comment=c.doc) for c in t.columns]
    idx = [sa.Index(f"ix_{t.name}_{t.partition}", t.partition)] if t.partition else []
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

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


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
            f"cannot connect to the warehouse {_redact(url)}: {e.__class__.__name__}: {e}. "
            "Check the URL (SEEDFUNNEL_WAREHOUSE_URL or --warehouse-url) and that the server is up."
        ) from e


def _redact(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def publish(
    engine: sa.Engine,
    frames: Mapping[str, pd.DataFrame],
    days: Mapping[str, Iterable[date]],
    *,
    fail_after: str | None = None,
) -> dict[str, int]:
    """Replace ``days`` of each table with ``frames`` in ONE transaction; returns rows written.

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
            if day_list:
                conn.execute(sa.delete(sat).where(sat.c[part].in_(day_list)))
            arrow = schemas.to_arrow(t, df)
            if arrow.num_rows:
                _load(conn, t, arrow)
            written[name] = arrow.num_rows
            if fail_after == name:
                raise RuntimeError(f"injected failure after loading {name}")
    return written


def _lock_id(name: str) -> int:
    return zlib.crc32(f"seedfunnel:{name}".encode()) & 0x7FFFFFFF


def _load(conn: sa.Connection, t: schemas.Table, arrow) -> None:
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, t, arrow)
    else:
        _insert_many(conn, t, arrow)


def _text_columns(t: schemas.Table, arrow, *, ts_format: str) -> list[np.ndarray]:
    """Column values as Python-native arrays the drivers accept, built column-wise."""
    out = []
    for c, col in zip(t.columns, arrow.columns, strict=True):
        if c.type == "ts":
            col = pc.strftime(col, format=ts_format)
        elif c.type == "date":
            col = pc.strftime(col, format="%Y-%m-%d")
        elif c.type == "list<str>":
            col = _json_text(col)
        out.append(col.to_numpy(zero_copy_only=False))
    return out


def _json_text(col: pa.ChunkedArray) -> pa.Array:
    """A list<str> column as JSON text (the only list column is small: note tags)."""
    import json

    return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in col.to_pylist()])


def _insert_many(conn: sa.Connection, t: schemas.Table, arrow) -> None:
    # SQLAlchemy's SQLite DateTime stores naive 'YYYY-MM-DD HH:MM:SS.ffffff' (Arrow's %S carries
    # the microseconds); every value is UTC.
    cols = _text_columns(t, arrow, ts_format="%Y-%m-%d %H:%M:%S")
    rows = list(zip(*(_nullable(c) for c in cols), strict=True))
    placeholders = ", ".join("?" for _ in t.columns)
    names = ", ".join(f'"{n}"' for n in t.names)
    conn.exec_driver_sql(f'INSERT INTO "{t.name}" ({names}) VALUES ({placeholders})', rows)


def _nullable(values: np.ndarray) -> list:
    lst = values.tolist()
    if values.dtype.kind == "f":
        return [None if v != v else v for v in lst]  # NaN -> NULL
    return lst


def _copy_postgres(conn: sa.Connection, t: schemas.Table, arrow) -> None:
    cols = []
    for c, col in zip(t.columns, arrow.columns, strict=True):
        if c.type == "list<str>":
            col = _json_text(col)
        cols.append(col)
    buf = io.BytesIO()
    pacsv.write_csv(
        pa.Table.from_arrays(cols, names=t.names),
        buf,
        pacsv.WriteOptions(include_header=False, quoting_style="needed"),
    )
    names = ", ".join(f'"{n}"' for n in t.names)
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cur:
        # Arrow writes nulls as empty unquoted fields and empty strings as "" — exactly CSV COPY's rule.
        with cur.copy(f'COPY "{t.name}" ({names}) FROM STDIN (FORMAT csv)') as copy:
            copy.write(buf.getvalue())


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
