"""The daily run: day by day in order, the final tables equal one computation over all of it."""

from __future__ import annotations

import shutil
from dataclasses import fields
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines import lake, runner, schemas, warehouse
from pipelines.funnel.buckets import split_inputs
from pipelines.settings import FunnelParams, Settings
from pipelines.simulate import simulate_world

START, DAYS = date(2026, 3, 1), 9
# Short windows so that, within a small world, days close and carried-over columns are exercised.
PARAMS = FunnelParams(seed_window_days=3, conversion_window_days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    simulate_world(root / "landing", users=400, days=DAYS, start=START, seed=11, seeds_dir=runner_seeds())
    return root


def runner_seeds():
    return Settings().seeds


def _settings(root, home_name: str, **kw) -> Settings:
    return Settings(home=root / home_name, landing=root / "landing", funnel=PARAMS, **kw)


def _marts(settings: Settings, name: str) -> pd.DataFrame:
    return lake.read_table(settings.lake / runner.MARTS, name)


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=["run_id"])
    return df.sort_values(list(df.columns), kind="stable", ignore_index=True)


def test_day_by_day_final_tables_equal_one_computation(world):
    settings = _settings(world, "home")
    end = START + timedelta(days=DAYS - 1)
    summary = runner.run_days(settings, START, end, each_day=True)
    assert len(summary.days) == DAYS

    # One computation over everything ingested (START .. end), the models of SPEC 5.11 included.
    one_shot = runner.one_shot(settings, run_id="one-shot")
    assert runner.first_data_day(settings) == START
    for t in schemas.COMPUTED_TABLES:
        got, want = _marts(settings, t.name), one_shot[t.name]
        assert len(want) > 0 or t.name == "fct_seeded_orders", t.name
        pd.testing.assert_frame_equal(_norm(got), _norm(want), check_dtype=False, obj=t.name)


def test_model_snapshots_split_the_windows_seeded_gmv(world):
    # SPEC 5.11: every model's channel credits of a snapshot sum to the seeded GMV of its window,
    # for every channel kind; ROAS is attributed GMV over spend wherever there is spend.
    settings = _settings(world, "home")
    end = START + timedelta(days=DAYS - 1)
    if not (settings.lake / runner.MARTS).exists():
        runner.run_days(settings, START, end, each_day=True)
    orders = _marts(settings, "fct_seeded_orders")
    channels = _marts(settings, "agg_attribution_channels")
    window = settings.models.model_window_days
    # SPEC 5.11: one snapshot, as of W; the daily runs replaced each earlier day's.
    assert set(channels["as_of_dt"]) == {end}
    assert set(channels["model"]) == set(schemas.ALL_MODELS)
    for (as_of, model, kind), rows in channels.groupby(["as_of_dt", "model", "channel_kind"]):
        paid = orders.loc[(orders["dt"] <= as_of) & (orders["dt"] > as_of - timedelta(days=window)), "amount_fen"]
        assert rows["credit_fen"].sum() == pytest.approx(paid.sum(), rel=1e-9), (as_of, model, kind)
        if paid.sum() > 0:
            assert rows["share"].sum() == pytest.approx(1.0), (as_of, model, kind)
            ok = rows["share_ci_low"].notna()
            assert (rows.loc[ok, "share_ci_low"] <= rows.loc[ok, "share_ci_high"]).all()
    cost = _marts(settings, "agg_cost")
    spent = cost.loc[cost["spend_fen"] > 0]
    assert len(spent) > 0
    assert np.allclose(spent["roas"], spent["attributed_gmv_fen"] / spent["spend_fen"], equal_nan=True)
    # The brand level gives every model the brand's seeded orders and GMV.
    brand = cost.loc[cost["level"] == "brand"].groupby(["as_of_dt", "subject_id"])["attributed_gmv_fen"].nunique()
    assert (brand == 1).all()


def test_a_multi_day_run_is_one_computation_equal_to_the_daily_runs(world):
    settings = _settings(world, "once")
    end = START + timedelta(days=DAYS - 1)
    summary = runner.run_days(settings, START, end)
    assert len(summary.days) == 1 and summary.days[0].plan.start == START.isoformat()
    assert len(summary.days[0].plan.ingested) == DAYS  # every delivery up to the end, in one run
    daily = _settings(world, "home")
    if not (daily.lake / runner.MARTS).exists():
        runner.run_days(daily, START, end, each_day=True)
    for t in schemas.COMPUTED_TABLES:
        pd.testing.assert_frame_equal(
            _norm(_marts(settings, t.name)), _norm(_marts(daily, t.name)), check_dtype=False, obj=t.name
        )


def test_rerunning_a_day_gives_identical_warehouse_tables(world):
    settings = _settings(world, "rerun")
    runner.run_days(settings, START, START + timedelta(days=3))
    eng = warehouse.make_engine(settings.resolved_warehouse_url())
    funnel = [t.name for t in schemas.COMPUTED_TABLES]
    before = {name: _norm(warehouse.read_table(eng, name)) for name in funnel}
    logs = {t.name: len(warehouse.read_table(eng, t.name)) for t in schemas.LOG_TABLES}
    summary = runner.run_day(settings, START + timedelta(days=3))
    assert not summary.plan.computes
    after = {name: _norm(warehouse.read_table(eng, name)) for name in funnel}
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)
    assert len(before["fct_touches"]) > 0
    # Logs only grow: nothing was ingested or restated again; the re-run's checks are appended.
    for t in schemas.LOG_TABLES:
        n = len(warehouse.read_table(eng, t.name))
        assert n > logs[t.name] if t is schemas.DQ_RESULTS else n == logs[t.name], t.name


def test_buckets_and_engines_give_the_same_published_tables(world):
    day = START + timedelta(days=4)
    results = {}
    for label, buckets, eng in (("one", 1, "pandas"), ("four", 4, "pandas"), ("sql", 1, "duckdb")):
        settings = _settings(world, f"b-{label}", buckets=buckets)
        runner.run_days(settings, START, day, engine=eng)
        results[label] = {t.name: _norm(_marts(settings, t.name)) for t in schemas.COMPUTED_TABLES}
    for label in ("four", "sql"):
        for name, frame in results["one"].items():
            pd.testing.assert_frame_equal(
                results[label][name], frame, check_exact=False, rtol=1e-9, obj=f"{label}:{name}"
            )


@pytest.mark.parametrize("buckets", [1, 3])
def test_the_reduce_reading_tables_day_by_day_writes_the_same_marts(world, monkeypatch, buckets):
    # A large per-user table is reduced one day at a time (runner.WHOLE_ROWS): every table here
    # goes that way once, and the marts (rows, order within a day, digests) equal the whole read.
    day = START + timedelta(days=4)
    homes = {}
    for label, whole_rows in (("whole", runner.WHOLE_ROWS), ("by-day", 0)):
        monkeypatch.setattr(runner, "WHOLE_ROWS", whole_rows)
        homes[label] = _settings(world, f"reduce-{label}-{buckets}", buckets=buckets)
        runner.run_days(homes[label], START, day)
    marts = {label: s.lake / runner.MARTS for label, s in homes.items()}
    compared = 0
    for t in schemas.FUNNEL_TABLES:
        days = lake.partitions(marts["whole"], t.name)
        assert days == lake.partitions(marts["by-day"], t.name), t.name
        for d in days:
            a, b = (lake.read_arrow(m, t.name, [d]) for m in marts.values())
            assert a.equals(b), (t.name, d)
            digests = [lake.read_sidecar(m, t.name, d, runner.DIGEST) for m in marts.values()]
            assert np.array_equal(*digests), (t.name, d)
            compared += a.num_rows
    assert compared > 0


def test_reading_one_bucket_equals_splitting_the_whole(world):
    # A bucket task reads only its bucket, file by file; it must see exactly its split of the whole.
    settings = _settings(world, "home-read")
    end = START + timedelta(days=DAYS - 1)
    runner.stage_ingest(settings, end)
    whole = runner.load_inputs(settings)
    split = split_inputs(whole, 3)
    linked = sum(len(p.exposures) for p in split)
    assert 0 < linked < len(whole.exposures)  # unclaimed ext ids go to no bucket
    for b in range(3):
        part = runner.load_inputs(settings, bucket=b, buckets=3)
        assert len(part.exposures) > 0 and len(part.searches) > 0
        for f in fields(part):
            pd.testing.assert_frame_equal(
                getattr(part, f.name).reset_index(drop=True),
                getattr(split[b], f.name).reset_index(drop=True),
                obj=f"bucket {b}: {f.name}",
            )
    with pytest.raises(ValueError, match="bucket 3 is not one of 0..2"):
        runner.load_inputs(settings, bucket=3, buckets=3)


def test_a_lake_from_before_the_boost_distribution_gets_every_day_of_it(world):
    """agg_boost_scores is derived from the marts' boost snapshots: a lake without it (made before
    the table existed) gets it for every day at its next run, restated or not, and it equals the
    distribution of each day's whole snapshot as published."""
    settings = _settings(world, "home-summary")
    end = START + timedelta(days=DAYS - 1)
    runner.run_days(settings, START, end - timedelta(days=1))
    summary = schemas.AGG_BOOST_SCORES.name
    marts = settings.lake / runner.MARTS
    held = lake.partitions(marts, summary)
    assert held == lake.partitions(marts, schemas.BRAND_BOOST_SIGNALS.name) and len(held) == DAYS - 1
    for d in held:  # as a lake written before the table existed
        shutil.rmtree(lake.partition_path(marts, summary, d))
    runner.run_days(settings, end, end)
    assert lake.partitions(marts, summary) == lake.partitions(marts, schemas.BRAND_BOOST_SIGNALS.name)
    engine = warehouse.make_engine(settings.resolved_warehouse_url())
    try:
        got = warehouse.read_table(engine, summary)
        boost = warehouse.read_table(engine, schemas.BRAND_BOOST_SIGNALS.name)
    finally:
        engine.dispose()
    assert sorted(set(got["as_of_dt"])) == sorted(set(boost["as_of_dt"])) and len(set(got["as_of_dt"])) == DAYS
    for day, rows in boost.groupby("as_of_dt"):
        mine = got[got["as_of_dt"] == day].sort_values("bin_low")
        counts, _ = np.histogram(rows["score"], bins=np.arange(11) / 10)
        assert mine["signals"].tolist() == counts.tolist(), day
        assert (mine["day_signals"] == len(rows)).all() and (mine["day_users"] == (rows["rank"] == 1).sum()).all()
        assert mine["day_median_score"].iloc[0] == pytest.approx(float(np.median(rows["score"])), rel=1e-15)
