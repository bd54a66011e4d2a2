"""Warehouse publishing on both backends: round trip, atomic day replacement, injected failures."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines import runner, schemas, warehouse
from pipelines.settings import Settings
from pipelines.simulate import simulate_world

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


def _all_tables(engine) -> dict[str, pd.DataFrame]:
    return {t.name: _sorted(warehouse.read_table(engine, t.name)) for t in schemas.WAREHOUSE_TABLES}


def test_two_publishes_at_once_to_postgres_equal_serial_publishing(tmp_path, pg_url):
    # A lake with three days of marts (plan -> funnel -> reduce; nothing published yet).
    start = date(2026, 3, 1)
    days = [start + timedelta(days=i) for i in range(3)]
    simulate_world(tmp_path / "landing", users=300, days=len(days), start=start, seed=5, seeds_dir=Settings().seeds)
    settings = Settings(home=tmp_path / "home", landing=tmp_path / "landing", warehouse_url=pg_url)
    plan = runner.stage_plan(settings, days[-1])
    runner.stage_reduce(settings, plan, [runner.stage_funnel_bucket(settings, plan, 0, 1)])
    state = tmp_path / "home" / "lake" / "_state.json"
    pending = state.read_bytes()  # what is to publish, to publish it again from scratch below
    pair = [plan, plan]
    engine = warehouse.make_engine(pg_url)

    for p in pair:
        runner.stage_publish(settings, p)
    serial = _all_tables(engine)
    assert set(serial["ingest_files"]["dt"]) == set(days)
    assert set(days) == set(serial["fct_touches"]["dt"]) and len(serial["fct_touches"]) > 0

    with engine.begin() as conn:
        for sat in warehouse.TABLES.values():
            conn.execute(sa.delete(sat))
    assert all(len(f) == 0 for f in _all_tables(engine).values())

    # Both at once, in two threads released together, twice (so each order gets its chance).
    for _ in range(2):
        state.write_bytes(pending)
        gate, errors = threading.Barrier(len(pair)), []

        def publish(p: dict, gate: threading.Barrier = gate, errors: list = errors) -> None:
            try:
                gate.wait(timeout=60)
                runner.stage_publish(settings, p)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=publish, args=(p,)) for p in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors and not any(t.is_alive() for t in threads), errors
        concurrent = _all_tables(engine)
        for name, frame in serial.items():
            pd.testing.assert_frame_equal(concurrent[name], frame, obj=name)
    engine.dispose()


def test_rows_given_in_parts_all_load_and_a_failing_part_keeps_previous_data(warehouse_url, monkeypatch):
    # Parts are read and converted one ahead, on a thread, while the previous one loads; a load
    # converts in batches (made small here, so parts hold several).
    monkeypatch.setattr(warehouse, "BATCH_ROWS", 7)
    engine = warehouse.make_engine(warehouse_url)
    warehouse.create_all(engine)
    frames = [_touches(D1, n, "r1", seed=n) for n in (20, 1, 33)]
    parts = [schemas.to_arrow(schemas.FCT_TOUCHES, f) for f in frames]
    written = warehouse.publish(engine, {"fct_touches": lambda: iter(parts)}, {"fct_touches": [D1]})
    assert written == {"fct_touches": 54}
    back = warehouse.read_table(engine, "fct_touches")
    pd.testing.assert_frame_equal(_sorted(back), _sorted(schemas.conform("fct_touches", pd.concat(frames))))

    made = []

    def failing():
        for i, part in enumerate(parts):
            if i == 2:
                raise OSError("the third part cannot be read")
            made.append(i)
            yield part

    with pytest.raises(OSError, match="third part"):
        warehouse.publish(engine, {"fct_touches": failing}, {"fct_touches": [D1]})
    assert made == [0, 1]
    pd.testing.assert_frame_equal(_sorted(warehouse.read_table(engine, "fct_touches")), _sorted(back))
