"""The engine's sorts: the radix lexsort is numpy's lexsort, and a boost snapshot sums each
(user, brand)'s terms in ascending order whatever order its rows come in."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.funnel import boost
from pipelines.funnel.prepare import lexsort
from pipelines.settings import FunnelParams

_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, -0.0, 1.5])


@st.composite
def _keys(draw):
    n = draw(st.integers(0, 300))
    keys = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["small", "wide", "float", "bool", "time"]))
        if kind == "small":
            keys.append(np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), dtype="int64"))
        elif kind == "wide":
            keys.append(np.array(draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n)), dtype="int64"))
        elif kind == "float":
            keys.append(np.array(draw(st.lists(_FLOATS, min_size=n, max_size=n)), dtype="float64"))
        elif kind == "bool":
            keys.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool))
        else:
            keys.append(np.array(draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)), dtype="datetime64[us]"))
    return keys


@settings(max_examples=200, deadline=None)
@given(_keys())
def test_radix_lexsort_is_numpys_lexsort(keys):
    np.testing.assert_array_equal(lexsort(keys), np.lexsort(keys))


def test_radix_lexsort_on_large_keys():
    rng = np.random.default_rng(7)
    n = 200_000
    score = 1.0 - np.exp(-rng.exponential(size=n) * rng.integers(1, 4, n))
    user = np.sort(rng.integers(0, 150_000, n))
    wide = rng.integers(0, 2**45, n)
    for keys in ((-score, user), (score, wide), (rng.integers(0, 5, n), wide, user)):
        np.testing.assert_array_equal(lexsort(keys), np.lexsort(keys))


def _linked(rng, n: int, users: int, brands: int):
    kinds = pd.Index(["impression", "like", "read", "share"])
    return boost.Linked(
        user=rng.integers(0, users, n),
        brand=rng.integers(0, brands, n),
        t=rng.integers(0, 15 * 86_400_000_000, n),
        platform=np.zeros(n, dtype="int64"),
        note=np.zeros(n, dtype="int64"),
        ext=np.zeros(n, dtype="int64"),
        kind=rng.integers(0, len(kinds), n),
        mention=np.zeros(n, dtype="int64"),
        touch_key=np.ones(n, dtype=bool),
        users=pd.Index([f"u{i:05d}" for i in range(users)]),
        brands=pd.Index([f"b{i:03d}" for i in range(brands)]),
        platforms=pd.Index(["xiaohongshu"]),
        note_ids=pd.Index(["n"]),
        ext_ids=pd.Index(["e"]),
        kinds=kinds,
        dim=pd.DataFrame({"category_id": ["c"]}),
    )


def test_a_snapshot_sums_terms_in_ascending_order_whatever_order_the_rows_come_in():
    """boost_signals hands _snapshot a day's rows in one order fixed for every day; where float
    rounding makes that order disagree with the day's own terms, _snapshot sorts again. Either
    way every (user, brand)'s sum is the ascending-order sum, bit for bit."""
    rng = np.random.default_rng(3)
    params = FunnelParams()
    linked = _linked(rng, 20_000, 300, 40)
    # Equal and near-equal terms: many exposures at the same few instants.
    linked.t[: 10_000] = rng.choice(linked.t[:50], 10_000)
    pair = linked.user * len(linked.brands) + linked.brand
    end = 16 * 86_400_000_000
    weights = boost._kind_weights(linked, params)
    terms = boost._contributions(linked, np.arange(len(pair)), end, weights, params)
    by_pair_then_term = np.lexsort((terms, pair))
    want = boost._snapshot(linked, by_pair_then_term, pair, end, weights, params)
    for rows in (rng.permutation(len(pair)), np.lexsort((-terms, pair)), np.lexsort((rng.random(len(pair)), pair))):
        got = boost._snapshot(linked, rows, pair, end, weights, params)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    # The reference: each pair's terms sorted ascending, then summed as _sequential_sums does.
    user, brand, raw, _ = want
    frame = pd.DataFrame({"pair": pair, "term": terms}).sort_values(["pair", "term"], kind="stable")
    sums = {p: np.add.reduceat(g.to_numpy(), [0])[0] for p, g in frame.groupby("pair")["term"]}
    for u, b, r in zip(user, brand, raw, strict=True):
        assert r == sums[u * len(linked.brands) + b]
