"""Recovery of planted truth: the pipeline measures what the simulator planted.

The simulator's estimand (docs/simulator.md, ground_truth.json): for a search pair (s, c) and each
brand b of c independently, the user buys b within the conversion window with probability p0 * f,
f = 1 unseeded, 2.7 when seeded and the last touch's creator vertical equals c, 1.3 otherwise; p0 is
the same for every brand. So SPEC 5.7's uplift pooled over brands (summed counts) by the
vertical-match slice estimates exactly those factors, and its 95% log-method interval must cover them.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest

from pipelines import runner, schemas
from pipelines.funnel import engine
from pipelines.funnel.uplift import with_uplift
from pipelines.settings import Settings
from pipelines.simulate import simulate_world

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
