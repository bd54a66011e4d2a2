"""Recovery of planted truth: the pipeline measures what the simulator planted.

The simulator's estimand (docs/simulator.md, ground_truth.json): for a search pair (s, c) and each
brand b of c independently, the user buys b within the conversion window with probability p0 * f,
f = 1 unseeded, 2.7 when seeded and the last touch's creator vertical equals c, 1.3 otherwise; p0 is
the same for every brand. So SPEC 5.7's uplift pooled over brands (summed counts) by the
vertical-match slice estimates exactly those factors, and its 95% log-method interval must cover them.

With the simulator's confounding knob on, active users are both seeded more and buy more at
baseline: the naive interval then lies above the planted factor, and SPEC 5.10's engagement-
adjusted uplift (Mantel-Haenszel over the activity strata) covers it.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest

from pipelines import runner, schemas
from pipelines.funnel import engine
from pipelines.funnel.uplift import COUNTS, adjusted_over, with_uplift
from pipelines.settings import Settings
from pipelines.simulate import WorldParams, simulate_world

START, DAYS = date(2026, 1, 1), 12


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("recovery")
    simulate_world(root / "landing", users=20_000, days=DAYS, start=START, seed=3, seeds_dir=Settings().seeds)
    settings = Settings(home=root / "home", landing=root / "landing")
    end = START + timedelta(days=DAYS - 1)
    runner.stage_ingest(settings, end)
    out = engine.compute(runner.load_inputs(settings), settings.funnel, START, end, "t")
    truth = json.loads((root / "landing" / "ground_truth.json").read_text())
    return out, truth


def _pooled(uplift, slice_value: str):
    """Brand-level counts summed over brands and final days; baseline = the brands' whole baseline."""
    brand = uplift[(uplift["level"] == "brand") & uplift["is_final"]]
    seeded = brand[brand["slice_value"] == slice_value]
    base = brand[brand["slice"] == "all"]
    row = {
        "seeded_pairs": seeded["seeded_pairs"].sum(),
        "seeded_conversions": seeded["seeded_conversions"].sum(),
        "baseline_pairs": base["baseline_pairs"].sum(),
        "baseline_conversions": base["baseline_conversions"].sum(),
    }
    import pandas as pd

    return with_uplift(pd.DataFrame([row])).iloc[0]


@pytest.mark.parametrize("slice_value,factor_key", [("match", "factor_vertical_match"), ("mismatch", "factor_mismatch")])
def test_planted_uplift_lies_within_the_measured_interval(measured, slice_value, factor_key):
    out, truth = measured
    planted = truth["estimand"][factor_key]
    got = _pooled(out[schemas.AGG_CONVERSION_UPLIFT.name], slice_value)
    assert got["seeded_pairs"] > 5_000
    assert got["uplift_ci_low"] <= planted <= got["uplift_ci_high"], (slice_value, planted, dict(got))


def test_measured_counts_equal_the_simulators_realised_counts(measured):
    out, truth = measured
    realised = truth["estimand"]["realised_pair_counts"]
    for slice_value, key in (("match", "seeded_vertical_match"), ("mismatch", "seeded_mismatch")):
        got = _pooled(out[schemas.AGG_CONVERSION_UPLIFT.name], slice_value)
        assert got["seeded_pairs"] == realised[key]["pairs"]
        assert got["seeded_conversions"] == realised[key]["conversions"]
    got = _pooled(out[schemas.AGG_CONVERSION_UPLIFT.name], "all")
    assert got["baseline_pairs"] == realised["unseeded"]["pairs"]
    assert got["baseline_conversions"] == realised["unseeded"]["conversions"]


def test_credits_sum_to_seeded_gmv_for_every_model(measured):
    out, _ = measured
    orders = out[schemas.FCT_SEEDED_ORDERS.name]
    credits = out[schemas.FCT_ATTRIBUTION_CREDITS.name]
    assert len(orders) > 100
    gmv = orders["amount_fen"].sum()
    for model in schemas.ATTRIBUTION_MODELS:
        per_order = credits[credits["model"] == model].groupby("order_id")["credit_fen"].sum()
        expected = orders.set_index("order_id")["amount_fen"].reindex(per_order.index)
        np.testing.assert_allclose(per_order.to_numpy(), expected.to_numpy(), rtol=1e-9)
        assert set(per_order.index) == set(orders["order_id"])
        assert abs(per_order.sum() - gmv) <= 1e-6 * gmv


def _level_all(out, slice_value: str) -> tuple[dict, dict]:
    """Level all over the final days: the naive figure (summed counts) and the adjusted one (strata
    summed per stratum over the days, then Mantel-Haenszel)."""
    u = out[schemas.AGG_CONVERSION_UPLIFT.name]
    k = out[schemas.AGG_UPLIFT_STRATA.name]
    u = u[(u["level"] == "all") & u["is_final"] & (u["slice_value"] == slice_value)]
    k = k[(k["level"] == "all") & k["is_final"] & (k["slice_value"] == slice_value)]
    naive = with_uplift(u.groupby("slice_value")[COUNTS].sum().reset_index()).iloc[0]
    adjusted = adjusted_over(k, ["slice_value"]).iloc[0]
    return dict(naive), dict(adjusted)


@pytest.mark.parametrize("slice_value,factor_key", [("match", "factor_vertical_match"), ("mismatch", "factor_mismatch")])
def test_unconfounded_world_adjusted_uplift_covers_the_planted_factor_too(measured, slice_value, factor_key):
    out, truth = measured
    planted = truth["estimand"][factor_key]
    _, adjusted = _level_all(out, slice_value)
    assert adjusted["adjusted_uplift_ci_low"] <= planted <= adjusted["adjusted_uplift_ci_high"], adjusted


@pytest.fixture(scope="module")
def confounded(tmp_path_factory):
    root = tmp_path_factory.mktemp("confounded")
    days = 14
    simulate_world(
        root / "landing", users=10_000, days=days, start=START, seed=3, seeds_dir=Settings().seeds,
        params=WorldParams(confounding=1.0),
    )
    settings = Settings(home=root / "home", landing=root / "landing")
    end = START + timedelta(days=days - 1)
    runner.stage_ingest(settings, end)
    out = engine.compute(runner.load_inputs(settings), settings.funnel, START, end, "t")
    truth = json.loads((root / "landing" / "ground_truth.json").read_text())
    return out, truth


@pytest.mark.parametrize("slice_value,factor_key", [("match", "factor_vertical_match"), ("mismatch", "factor_mismatch")])
def test_confounded_world_naive_uplift_misses_the_planted_factor_and_the_adjusted_one_recovers_it(
    confounded, slice_value, factor_key
):
    out, truth = confounded
    assert truth["estimand"]["confounding"]["strength"] == 1.0
    planted = truth["estimand"][factor_key]
    naive, adjusted = _level_all(out, slice_value)
    assert naive["seeded_pairs"] > 9_000
    # Seeded users are the active ones, who buy more anyway: the naive interval lies above the factor.
    assert naive["uplift_ci_low"] > planted, naive
    # Within strata of activity (and recent orders) the comparison is fair again.
    assert adjusted["adjusted_uplift_ci_low"] <= planted <= adjusted["adjusted_uplift_ci_high"], adjusted
    assert adjusted["adjusted_uplift"] < naive["uplift"]
