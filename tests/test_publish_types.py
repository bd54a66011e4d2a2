"""Every warehouse table round-trips exactly through the fast loaders (binary COPY, multi-row INSERT).

Values cover each declared type with its edge cases: nulls where nullable, empty vs null text,
non-ASCII text, negative and large integers, floats needing all 17 digits, timestamps with
microseconds and before 2000 (PostgreSQL's epoch), and batches that do not divide evenly.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines import schemas, warehouse

N = 257


def _values(c: schemas.Column, rng: np.random.Generator) -> list:
    if c.enum is not None:
        vals = [c.enum[i % len(c.enum)] for i in range(N)]
    elif c.type == "str":
        pool = [
            "",
            "a",
            '种草 "quoted", comma',
            "tab\there\nnewline",
            "b_x",
            "\\back\\slash",
            "ü" * 40,
        ]
        vals = [pool[i % len(pool)] + (str(i) if i % 3 else "") for i in range(N)]
    elif c.type == "int64" and c.nullable:
        # A nullable integer travels as float64 in memory (pyarrow's to_pandas): exact up to
        # 2^53, which its declaration bounds it by.
        lo, hi = int(c.min if c.min is not None else -(2**53)), int(c.max if c.max is not None else 2**53)
        assert -(2**53) <= lo and hi <= 2**53, f"{c.name}: a nullable int64 must be bounded by 2^53"
        vals = rng.integers(lo, hi, N).tolist()
        vals[:3] = [lo, hi, lo + 1]
    elif c.type == "int64":
        vals = rng.integers(-(2**62), 2**62, N).tolist()
        vals[:3] = [0, -1, 2**63 - 1]
    elif c.type == "float64":
        vals = (rng.standard_normal(N) * 10.0 ** rng.integers(-300, 300, N)).tolist()
        vals[:3] = [0.1 + 0.2, -0.0, 1e308]
    elif c.type == "bool":
        vals = (rng.integers(0, 2, N) == 1).tolist()
    elif c.type == "ts":
        us = rng.integers(-(10**15), 4 * 10**15, N)  # 1938 .. 2096
        vals = list(pd.to_datetime(us, unit="us", utc=True))
    elif c.type == "date":
        vals = [date.fromordinal(d) for d in rng.integers(700_000, 760_000, N)]  # 1917 .. 2081
        vals[0] = date(2026, 1, 1)
    else:
        raise AssertionError(c.type)
    if c.nullable:
        for i in range(1, N, 5):
            vals[i] = None
        if c.type == "int64":
            return pd.array(vals, dtype="Int64")  # a list with None would become float64
    return vals


#: Together these hold every declared type, nullable and not.
TABLES = [
    schemas.AGG_BRAND_FUNNEL_DAILY.name,
    schemas.FCT_TOUCHES.name,
    schemas.FCT_ATTRIBUTION_CREDITS.name,
    schemas.INGEST_FILES.name,  # nullable int64 (file_bytes, refused_rows, collapsed_rows)
]


def test_tables_cover_every_type():
    covered = {(c.type, c.nullable) for n in TABLES for c in schemas.table(n).columns}
    used = {(c.type, c.nullable) for t in schemas.WAREHOUSE_TABLES for c in t.columns}
    assert used <= covered, f"add a table holding {used - covered} to TABLES"


@pytest.mark.parametrize("name", TABLES)
def test_every_type_round_trips(warehouse_url, name, monkeypatch):
    monkeypatch.setattr(warehouse, "BATCH_ROWS", 100)  # several batches, the last one short
    monkeypatch.setattr(warehouse, "_SQLITE_ROWS_PER_INSERT", 7)  # multi-row INSERTs plus leftovers
    t = schemas.table(name)
    rng = np.random.default_rng(len(name))
    frame = schemas.conform(t, pd.DataFrame({c.name: _values(c, rng) for c in t.columns}))
    engine = warehouse.make_engine(warehouse_url)
    warehouse.create_all(engine)
    days = sorted(set(frame[t.partition]))
    assert warehouse.publish(engine, {name: frame}, {name: days}) == {name: N}
    back = warehouse.read_table(engine, name)
    order = list(t.names)
    pd.testing.assert_frame_equal(
        back.sort_values(order, ignore_index=True),
        frame.sort_values(order, ignore_index=True),
        check_exact=True,
    )
