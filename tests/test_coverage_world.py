"""Per-platform incremental effects in the simulated world (``WorldParams.platform_effects``) and
their planted shares (docs/simulator.md, "Platform effects"; the coverage benchmark is
bench/coverage.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_bench

from pipelines import schemas
from pipelines.simulate import ArrivalParams, WorldParams, simulate_world
from pipelines.simulate.world import (
    PLATFORM_EFFECTS,
    expected_platform_shares,
    planted_orders,
    planted_platform_shares,
    seeded_lookup,
)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
START = date(2026, 1, 1)


@pytest.fixture(scope="module")
def bench():
    """bench/coverage.py, loaded by path (its name would shadow the coverage package)."""
    return load_bench("coverage")


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _truth(root: Path) -> dict:
    return json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("effects")
    kw = dict(users=600, days=6, start=START, seed=9, seeds_dir=SEEDS)
    simulate_world(base / "default", **kw)
    simulate_world(base / "off", params=WorldParams(platform_effects={}), **kw)
    simulate_world(base / "on", params=WorldParams(platform_effects=PLATFORM_EFFECTS), **kw)
    return base


def test_knob_off_keeps_the_world_identical(worlds):
    assert _hashes(worlds / "default") == _hashes(worlds / "off")
    truth = _truth(worlds / "off")
    assert "platform_effects" not in truth["parameters"]
    assert not [k for k in truth if k.startswith("planted_platform")]


def test_knob_on_draws_nothing_extra_so_only_orders_move(worlds):
    def others(root: Path) -> dict[str, str]:
        """Every file but the orders (their formats follow the number of orders: other files) and
        the files that list them."""
        return {k: v for k, v in _hashes(root).items()
                if "orders/" not in k and k not in ("ground_truth.json", "arrivals.json")}

    off, on = others(worlds / "default"), others(worlds / "on")
    assert len(off) > 50 and off == on  # the same exposures, links, notes, searches, spend
    assert _truth(worlds / "on")["counts"]["orders_paid"] != _truth(worlds / "default")["counts"]["orders_paid"]


def test_planted_shares_sum_to_one_and_the_effects_are_written(worlds):
    truth = _truth(worlds / "on")
    assert truth["parameters"]["platform_effects"] == dict(PLATFORM_EFFECTS)
    assert truth["planted_platform_effects"] == dict(PLATFORM_EFFECTS)
    shares = truth["planted_platform_shares"]
    assert set(shares) == set(schemas.PLATFORMS)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(v > 0 for v in shares.values())
    basis = truth["planted_platform_shares_basis"]
    assert basis["seeded_orders"] == sum(basis["seeded_orders_by_seeding_set_size"].values()) > 0
    assert "0" not in basis["seeded_orders_by_seeding_set_size"]  # every seeded order has a platform
    assert sum(basis["platform_amount_fen"].values()) == pytest.approx(basis["amount_fen"])
    assert basis["window"] == {"first_day": "2026-01-01", "last_day": "2026-01-06", "model_window_days": 28}


def test_effects_are_validated():
    with pytest.raises(ValueError, match="unknown platforms"):
        WorldParams(platform_effects={"tiktok": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        WorldParams(platform_effects={"douyin": -0.5})
    assert WorldParams(platform_effects={"douyin": 1}).platform_effects == (("douyin", 1.0),)


def test_seeding_sets_equal_a_brute_force_lookup(bench):
    sim = bench.simulate(4, 500, 10, bench.world_params())
    world, touches, pairs = sim.world, sim.touches, sim.behaviour.pairs
    window = int(world.params.funnel.seed_window.total_seconds())
    joined = pairs[["search", "brand", "user", "t"]].reset_index().merge(
        touches.assign(t_touch=touches["t"])[["user", "brand", "t_touch", "note"]], on=["user", "brand"])
    joined = joined[(joined["t_touch"] < joined["t"]) & (joined["t_touch"] >= joined["t"] - window)]
    bit = np.left_shift(1, world.notes["platform"].to_numpy()[joined["note"].to_numpy()].astype(np.int64))
    want = pd.Series(bit).groupby(joined["index"].to_numpy()).agg(np.bitwise_or.reduce)
    got = seeded_lookup(world, touches, pairs[["user", "brand", "t"]], platforms=True)["seed_platforms"]
    assert (got > 0).sum() == len(want) > 100
    assert (got.to_numpy()[want.index.to_numpy()] == want.to_numpy()).all()
    assert (pairs["seed_platforms"].to_numpy() == got.to_numpy()).all()  # what behave planted on


def test_the_factor_is_one_plus_the_effects_of_the_seeding_set(bench):
    # p0 * (1 + e_bilibili) = 1: every final pair seeded through Bilibili buys; the others at p0
    params = WorldParams(p0=0.5, platform_effects={"bilibili": 1.0}, arrival=ArrivalParams.in_order())
    pairs = bench.simulate(2, 400, 8, params).behaviour.pairs
    final = pairs.loc[pairs["final"].to_numpy()]
    bilibili = (final["seed_platforms"].to_numpy() & (1 << schemas.PLATFORMS.index("bilibili"))) > 0
    assert bilibili.sum() > 20 and final["converted"].to_numpy()[bilibili].all()
    assert 0.4 < final["converted"].to_numpy()[~bilibili].mean() < 0.6


def test_shapley_recovers_the_planted_shares(bench):
    """One world of the coverage benchmark: the funnel counts exactly the planted seeded orders,
    and Shapley's platform shares are near the planted ones (a loose check that the planting works)."""
    from pipelines.reference import load_reference

    sim = bench.simulate(0, 3000, 28, bench.world_params())
    _, fit, first_day, eligible = bench.funnel_and_attribution(sim, load_reference(SEEDS), replicates=0, seed=0)
    planted = planted_orders(sim.world, sim.behaviour, first_day=first_day)
    assert set(eligible["order_id"]) == set(planted["order_id"])
    truth = pd.Series(planted_platform_shares(sim.world, planted), index=list(schemas.PLATFORMS))
    assert truth.sum() == pytest.approx(1.0)
    ch = fit.channels.loc[fit.channels["model"] == "shapley"].set_index("channel")["share"]
    assert ch.reindex(truth.index).to_numpy() == pytest.approx(truth.to_numpy(), abs=0.02)


def test_expected_shares_are_the_mean_of_the_planted_shares_over_purchase_draws(bench):
    """``expected_platform_shares`` integrates the purchase draws out in closed form; drawing them
    (buy, paid second, item) 4,000 times over the same seeding sets gives the same credits."""
    params = bench.world_params(min_notes=400)
    sim = bench.simulate(5, 600, 12, params)
    world, pairs = sim.world, sim.behaviour.pairs
    first_day = 4
    want = expected_platform_shares(world, sim.behaviour, first_day=first_day)

    rng = np.random.default_rng(0)
    seeded = pairs.loc[pairs["seeded"].to_numpy()]
    bits = ((seeded["seed_platforms"].to_numpy()[:, None] >> np.arange(len(schemas.PLATFORMS))) & 1).astype(float)
    effect = world.params.effect_of_platform()
    prob = world.params.p0 * (1 + bits @ effect)
    conv = int(world.params.funnel.conversion_window.total_seconds())
    t = seeded["t"].to_numpy()
    items = world.items
    draws = 4000
    buy = rng.random((draws, len(seeded))) < prob
    paid = t + rng.integers(0, conv + 1, (draws, len(seeded)))
    inside = (paid >= world.day_starts[first_day]) & (paid < world.end)
    # an item of the pair's brand, uniformly: its price (quantity and refunds cancel in shares)
    price_by_brand = items.groupby("brand")["price_fen"].apply(np.asarray)
    pick = np.stack([rng.choice(price_by_brand[b], draws) for b in seeded["brand"].to_numpy()], axis=1)
    amount = (buy & inside) * pick
    split = bits * effect / (bits @ effect)[:, None]
    credit = (amount.sum(axis=0)[:, None] * split).sum(axis=0)
    np.testing.assert_allclose(credit / credit.sum(), want, atol=0.004)
    assert want.sum() == pytest.approx(1.0)
