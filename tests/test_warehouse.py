"""Warehouse publishing on both backends: round trip, atomic day replacement, injected failures."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines import schemas, warehouse

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)


def _touches(day: date, n: int, run_id: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(day, tz="Asia/Shanghai").tz_convert("UTC")
    return pd.DataFrame(
        {
            "dt": [day] * n,
            "user_id": [f"u{i}" for i in rng.integers(0, 50, n)],
            "brand_id": "b_x",
            "touch_at": t0 + pd.to_timedelta(rng.integers(0, 86_400_000_000, n), unit="us"),
            "platform": "douyin",
            "note_id": [f"n{i}" for i in range(n)],
            "author_id": "0123456789abcdef",
            "ext_user_id": "e1",
            "kind": "read",
            "vertical": [None if i % 3 == 0 else "cat_x" for i in range(n)],
            "run_id": run_id,
        }
    )


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_round_trip_and_day_replacement(warehouse_url):
    engine = warehouse.make_engine(warehouse_url)
    warehouse.create_all(engine)
    a, b = _touches(D1, 200, "r1"), _touches(D2, 100, "r1", seed=1)
    warehouse.publish(engine, {"fct_touches": pd.concat([a, b])}, {"fct_touches": [D1, D2]})
    back = warehouse.read_table(engine, "fct_touches")
    pd.testing.assert_frame_equal(_sorted(back), _sorted(schemas.conform("fct_touches", pd.concat([a, b]))))

    # Re-publishing day 2 replaces day 2 only; day 1 is untouched.
    b2 = _touches(D2, 30, "r2", seed=2)
    warehouse.publish(engine, {"fct_touches": b2}, {"fct_touches": [D2]})
    back = warehouse.read_table(engine, "fct_touches")
    assert (back.dt == D1).sum() == 200
    assert set(back.loc[back.dt == D2, "run_id"]) == {"r2"} and (back.dt == D2).sum() == 30

    # Same input again: identical table.
    warehouse.publish(engine, {"fct_touches": b2}, {"fct_touches": [D2]})
    pd.testing.assert_frame_equal(_sorted(warehouse.read_table(engine, "fct_touches")), _sorted(back))


def test_failure_mid_publish_keeps_previous_data(warehouse_url):
    engine = warehouse.make_engine(warehouse_url)
    warehouse.create_all(engine)
    first = {"fct_touches": _touches(D1, 50, "r1"), "quarantine": schemas.empty_frame("quarantine")}
    warehouse.publish(engine, first, {"fct_touches": [D1], "quarantine": [D1]})
    before = warehouse.read_table(engine, "fct_touches")
    later = {
        "fct_touches": _touches(D1, 10, "r2", seed=3),
        "brand_boost_signals": schemas.empty_frame("brand_boost_signals"),
    }
    with pytest.raises(RuntimeError, match="injected"):
        warehouse.publish(
            engine, later, {"fct_touches": [D1], "brand_boost_signals": [D1]}, fail_after="fct_touches"
        )
    pd.testing.assert_frame_equal(_sorted(warehouse.read_table(engine, "fct_touches")), _sorted(before))


def test_unreachable_warehouse_says_what_to_do():
    with pytest.raises(RuntimeError, match="SEEDFUNNEL_WAREHOUSE_URL"):
        warehouse.check_connection("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_every_warehouse_table_has_ddl_from_the_declaration():
    for t in schemas.WAREHOUSE_TABLES:
        assert list(warehouse.TABLES[t.name].columns.keys()) == t.names
