"""User buckets: stable assignment, disjoint split, and merge(split) == the one-bucket result."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from synthetic import synthetic_inputs

from pipelines import schemas
from pipelines.funnel.buckets import bucket_of, merge_outputs, split_inputs
from pipelines.funnel.engine import compute
from pipelines.settings import FunnelParams

START, END = date(2026, 3, 1), date(2026, 3, 6)


def test_bucket_of_is_stable_and_in_range():
    ids = pd.Series([f"u{i:06d}" for i in range(10_000)])
    b7 = bucket_of(ids, 7)
    assert b7.dtype == np.int64 and b7.min() == 0 and b7.max() == 6
    # Position, index and repetition do not matter: only the id does.
    shuffled = ids.sample(frac=1, random_state=1)
    assert (bucket_of(shuffled, 7) == b7[shuffled.index.to_numpy()]).all()
    assert (bucket_of(pd.Series(["u000003"] * 3, index=[5, 6, 7]), 7) == b7[3]).all()
    # Roughly even: SipHash spreads ids uniformly (10k / 7 = 1429 each).
    counts = np.bincount(b7, minlength=7)
    assert counts.min() > 1250 and counts.max() < 1600
    assert (bucket_of(ids, 1) == 0).all()
    # Pinned values: buckets must never move between releases (work files are keyed by them).
    assert bucket_of(pd.Series(["u000000", "u000001", "u000002", "alice"]), 7).tolist() == [
        6,
        5,
        1,
        2,
    ]
    with pytest.raises(ValueError, match="bucket count"):
        bucket_of(ids, 0)


def test_split_is_disjoint_and_keeps_link_claims_together():
    inputs = synthetic_inputs(5, users=120, days=4, start=START, tick_seconds=3600)
    parts = split_inputs(inputs, 3)
    # Exposures of ext ids that no claim names go nowhere (they make no touch); the rest split.
    claimed = inputs.exposures.merge(
        inputs.id_links[["platform", "ext_user_id"]].drop_duplicates(), on=["platform", "ext_user_id"]
    )
    assert sum(len(p.exposures) for p in parts) == len(claimed)
    assert sum(len(p.searches) for p in parts) == len(inputs.searches)
    assert sum(len(p.orders) for p in parts) == len(inputs.orders)
    assert sum(len(p.id_links) for p in parts) == len(inputs.id_links)
    assert sum(len(p.search_categories) for p in parts) == len(inputs.search_categories)
    users = [set(p.searches["user_id"]) | set(p.orders["user_id"]) for p in parts]
    assert not (users[0] & users[1] or users[0] & users[2] or users[1] & users[2])
    ext_sets = [
        set(zip(p.id_links["platform"], p.id_links["ext_user_id"], strict=True)) for p in parts
    ]
    assert not (ext_sets[0] & ext_sets[1] or ext_sets[0] & ext_sets[2] or ext_sets[1] & ext_sets[2])
    for p in parts:
        assert p.brands is inputs.brands and p.notes is inputs.notes


@pytest.mark.parametrize(
    "seed, params",
    [
        (1, FunnelParams()),
        (
            6,
            FunnelParams(
                seed_window_days=2.5,
                conversion_window_days=1,
                min_link_confidence=0.9,
                touch_kinds=("read", "share"),
                decay_half_life_days=1.5,
                boost_half_life_days=0.5,
                boost_top_n=3,
            ),
        ),
    ],
)
def test_merge_of_split_equals_one_bucket(seed, params):
    inputs = synthetic_inputs(seed, users=120, days=6, start=START, tick_seconds=1800)
    whole = compute(inputs, params, START, END, "r")
    assert len(whole["fct_seeded_orders"]) > 0 and len(whole["brand_boost_signals"]) > 0
    for n in (1, 2, 3, 7):
        split = split_inputs(inputs, n)
        assert len(split) == n
        # One bucket is the inputs themselves: its output is the whole result already computed.
        parts = [whole] if n == 1 else [compute(p, params, START, END, "r") for p in split]
        merged = merge_outputs(parts)
        assert set(merged) == set(whole)
        for name, frame in whole.items():
            pd.testing.assert_frame_equal(
                merged[name], frame, check_exact=False, rtol=1e-12, obj=f"{name} (n={n})"
            )


def test_later_versions_naming_another_user_stay_with_their_key():
    # A later delivery gives some searches and orders to another user: every version of a key goes
    # to the bucket of its latest version's user, so each bucket resolves it as the whole does.
    inputs = synthetic_inputs(3, users=120, days=6, start=START, tick_seconds=1800)
    rng = np.random.default_rng(0)
    moved = {}
    keys = {"searches": "search_id", "orders": "order_id"}
    for name, key in keys.items():
        frame = getattr(inputs, name)
        later = frame.drop_duplicates(key).sample(frac=0.2, random_state=1)
        later["user_id"] = rng.choice(frame["user_id"].unique(), len(later))
        later["dt"] = frame["dt"].max() + timedelta(days=1)  # after every earlier delivery
        moved[name] = pd.concat([frame, later], ignore_index=True)
    inputs = replace(inputs, searches=moved["searches"], orders=moved["orders"])
    whole = compute(inputs, FunnelParams(), START, END, "r")
    parts = split_inputs(inputs, 3)
    for name, key in keys.items():
        owners = [set(getattr(p, name)[key]) for p in parts]
        assert sum(len(o) for o in owners) == getattr(inputs, name)[key].nunique()
    merged = merge_outputs([compute(p, FunnelParams(), START, END, "r") for p in parts])
    for name, frame in whole.items():
        pd.testing.assert_frame_equal(merged[name], frame, check_exact=False, rtol=1e-12, obj=name)


def test_merge_outputs_recomputes_ratios_from_counts():
    # Two buckets of one (day, brand, platform) row: rates come from summed counts, not averages.
    t = schemas.AGG_BRAND_FUNNEL_DAILY
    base = {c: 0 for c in t.names}
    base.update(dt=START, brand_id="b1", platform="all", is_final=False, run_id="r")
    a = dict(
        base,
        exposed_users=1,
        searched_back_users=1,
        seeded_pairs=1,
        seeded_conversions=1,
        baseline_pairs=9,
        baseline_conversions=1,
    )
    b = dict(
        base,
        exposed_users=3,
        searched_back_users=0,
        seeded_pairs=3,
        seeded_conversions=1,
        baseline_pairs=11,
        baseline_conversions=3,
    )
    part = {tt.name: schemas.empty_frame(tt) for tt in schemas.FUNNEL_TABLES}
    parts = [
        dict(part, agg_brand_funnel_daily=schemas.conform(t, pd.DataFrame([r]))) for r in (a, b)
    ]
    row = merge_outputs(parts)["agg_brand_funnel_daily"].iloc[0]
    assert (row["exposed_users"], row["searched_back_users"]) == (4, 1)
    assert row["search_back_rate"] == 0.25
    # seeded 2/4 = 0.5 and baseline 4/20 = 0.2 -> uplift 2.5
    assert (row["cvr_seeded"], row["cvr_baseline"]) == (0.5, 0.2)
    assert row["uplift"] == pytest.approx(2.5, rel=1e-12)
