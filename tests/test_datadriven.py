"""Data-driven channel attribution (SPEC 5.11): hand-computed Markov and Shapley splits, credit
conservation, determinism, bootstrap behaviour, the choice of the chain order and channel pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines import schemas
from pipelines.funnel import attribution
from pipelines.funnel import datadriven as dd

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def frames(
    paths: list[tuple[str, list[str], float | None]], **kw
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(touches, eligible, heuristic credits) for paths given as (user, channels, amount or None)."""
    lengths = np.array([len(c) for _, c, _ in paths])
    return flat_frames(
        np.repeat([u for u, _, _ in paths], lengths),
        np.repeat(np.arange(len(paths)), lengths),
        np.concatenate([c for _, c, _ in paths]),
        np.array([a if a is not None else np.nan for _, _, a in paths], dtype="float64"),
        **kw,
    )


def flat_frames(
    user: np.ndarray,
    path: np.ndarray,
    channel: np.ndarray,
    amount: np.ndarray,
    author: np.ndarray | None = None,
    vertical: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Vectorised fixture: one (user, brand) per path, touches ten minutes apart in path order,
    ``channel`` the platform (author ``a_<channel>``, vertical ``v_<channel>`` unless given); a
    path converts (one seeded order) when its amount is not NaN."""
    channel = np.asarray(channel, dtype=object)
    start = np.r_[0, np.flatnonzero(np.diff(path)) + 1]
    pos = np.arange(len(path)) - np.repeat(start, np.diff(np.r_[start, len(path)]))
    touches = pd.DataFrame(
        {
            "user_id": np.asarray(user, dtype=object),
            "brand_id": [f"b{p}" for p in path],
            "touch_at": T0 + pd.to_timedelta(pos * 600, unit="s"),
            "platform": channel,
            "note_id": [f"n{p}_{q}" for p, q in zip(path, pos, strict=True)],
            "author_id": author if author is not None else "a_" + channel,
            "vertical": vertical if vertical is not None else "v_" + channel,
            "kind": "read",
        }
    )
    converting = ~np.isnan(amount[path])
    eligible = touches.loc[converting].copy()
    eligible["order_id"] = [f"o{p:05d}" for p in path[converting]]
    eligible["touch_seq"] = pos[converting] + 1
    eligible["touch_count"] = np.bincount(path, minlength=len(amount))[path[converting]]
    eligible["amount_fen"] = amount[path[converting]].astype("int64")
    eligible["anchor_searched_at"] = T0 + pd.Timedelta(days=1)
    return touches, eligible, attribution.credits(eligible, 7.0)


def random_world(n_paths: int, seed: int, conv: float = 0.3, channels: str = "ABCDEF"):
    """Random paths of 1-6 touches over ``channels``; authors and verticals drawn separately (some
    verticals null)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, n_paths)
    path = np.repeat(np.arange(n_paths), lengths)
    letters = np.array(list(channels), dtype=object)
    channel = letters[rng.integers(0, len(letters), len(path))]
    author = np.array([f"c{i}" for i in rng.zipf(1.5, len(path)) % 15], dtype=object)
    vertical = np.array(["cat1", "cat2", "cat3", None], dtype=object)[rng.integers(0, 4, len(path))]
    amount = np.where(rng.random(n_paths) < conv, rng.integers(100, 10_000, n_paths), np.nan)
    user = np.array([f"u{p // 2:05d}" for p in path], dtype=object)  # two paths per user
    return flat_frames(user, path, channel, amount.astype("float64"), author, vertical)


def shares(result: dd.ChannelAttribution, model: str, kind: str = "platform") -> pd.Series:
    rows = result.channels.loc[
        (result.channels["model"] == model) & (result.channels["channel_kind"] == kind)
    ]
    return rows.set_index("channel")["share"]


def test_markov_removal_effects_by_hand():
    # First-order chain (k forced to 1). Paths: u1 A->B->B converts (300 fen), u2 A drops,
    # u3 B converts (90 fen). Transitions: start->A 2, start->B 1; A->B 1, A->null 1;
    # B->B 1, B->conv 2. So P(start->A) = 2/3, P(start->B) = 1/3, P(A->B) = P(A->null) = 1/2,
    # P(B->B) = 1/3, P(B->conv) = 2/3, hence x_B = 1, x_A = 1/2 and
    # P(conv) = 2/3 * 1/2 + 1/3 * 1 = 2/3.
    # Remove A (start->A leads to null): P = 1/3 * 1 = 1/3 -> effect 1 - (1/3)/(2/3) = 1/2.
    # Remove B: nothing converts, P = 0 -> effect 1.
    # Order u1 {A, B}: A gets 300 * 0.5 / 1.5 = 100, B 200 split over its two touches (100 each);
    # order u3: B gets 90. Markov channel credits: A 100, B 290.
    touches, eligible, credits = frames(
        [("u1", ["A", "B", "B"], 300), ("u2", ["A"], None), ("u3", ["B"], 90)]
    )
    r = dd.channel_attribution(
        touches, eligible, credits, replicates=0, seed=1, markov_orders=(1,), kinds=("platform",)
    )
    assert r.markov_order == {"platform": 1}
    effects = r.removal_effects.set_index("channel")["removal_effect"]
    assert effects["A"] == pytest.approx(0.5) and effects["B"] == pytest.approx(1.0)
    markov = r.order_credits.loc[r.order_credits["model"] == "markov"]
    got = markov.set_index(["order_id", "touch_seq"])["credit_fen"]
    assert got.to_dict() == pytest.approx(
        {("o00000", 1): 100.0, ("o00000", 2): 100.0, ("o00000", 3): 100.0, ("o00002", 1): 90.0}
    )
    assert markov["channel"].tolist() == ["A", "B", "B", "B"]
    ch = r.channels.loc[r.channels["model"] == "markov"].set_index("channel")
    assert ch["credit_fen"].to_dict() == pytest.approx({"A": 100.0, "B": 290.0})
    assert ch["share"]["A"] == pytest.approx(100 / 390)
    # No bootstrap: no interval, and no claim that channels cannot be told apart.
    assert ch["share_ci_low"].isna().all() and ch["share_ci_high"].isna().all()
    assert dd.indistinguishable(r, "markov", "platform") == []
    # As a second-order chain: start->(S,A) 2/3, ->(S,B) 1/3; (S,A)->(A,B) 1/2, ->null 1/2;
    # (A,B)->(B,B) 1; (B,B)->conv 1; (S,B)->conv 1. P(conv) = 2/3*1/2 + 1/3 = 2/3 again, without A
    # 1/3, without B 0: the same effects (likewise for k = 3).
    for k in (2, 3):
        rk = dd.channel_attribution(
            touches,
            eligible,
            credits,
            replicates=0,
            seed=1,
            markov_orders=(k,),
            kinds=("platform",),
        )
        assert rk.removal_effects["removal_effect"].tolist() == pytest.approx([0.5, 1.0])


# Three channels. Channel sets of the paths (conversions / paths):
#   {A}: 1/2, {B}: 0/2, {C}: 1/1, {A,B}: 1/1, {A,B,C}: 1/1.
# v(S) = conversions / paths over the paths whose set is inside S:
#   v(A) = 1/2, v(B) = 0, v(C) = 1, v(AB) = 2/5, v(AC) = 2/3, v(BC) = 1/3, v(ABC) = 4/7.
# Shapley over {A,B,C} (weights 1/3 for |S| = 0 and 2, 1/6 for |S| = 1):
#   phi_A = 1/3*1/2 + 1/6*(2/5-0) + 1/6*(2/3-1) + 1/3*(4/7-1/3) = 162/630 = 9/35
#   phi_B = 1/3*0 + 1/6*(2/5-1/2) + 1/6*(1/3-1) + 1/3*(4/7-2/3) = -201/1260 = -67/420
#   phi_C = 1/3*1 + 1/6*(2/3-1/2) + 1/6*(1/3-0) + 1/3*(4/7-2/5) = 597/1260
#   (sum 720/1260 = 4/7 = v(ABC)). B is clipped to 0: A gets 324/921, C 597/921 of the amount.
# Over {A,B}: phi_A = 1/2*1/2 + 1/2*(2/5-0) = 9/20, phi_B = 1/2*0 + 1/2*(2/5-1/2) = -1/20.
SHAPLEY_PATHS = [
    ("u1", ["A"], 100),
    ("u2", ["A"], None),
    ("u3", ["B"], None),
    ("u4", ["B"], None),
    ("u5", ["C"], 100),
    ("u6", ["A", "B"], 100),
    ("u7", ["C", "A", "B"], 921),
]


def test_shapley_by_hand():
    touches, eligible, credits = frames(SHAPLEY_PATHS)
    r = dd.channel_attribution(
        touches, eligible, credits, replicates=0, seed=1, kinds=("platform",)
    )
    w = r.order_weights.loc[r.order_weights["model"] == "shapley"]
    w = w.set_index(["order_id", "channel"])["weight"]
    assert w[("o00006", "A")] == pytest.approx(9 / 35)
    assert w[("o00006", "B")] == pytest.approx(-67 / 420)
    assert w[("o00006", "C")] == pytest.approx(597 / 1260)
    assert w[("o00005", "A")] == pytest.approx(9 / 20)
    assert w[("o00005", "B")] == pytest.approx(-1 / 20)
    assert w[("o00000", "A")] == pytest.approx(1 / 2)  # v(A)
    sh = r.order_credits.loc[r.order_credits["model"] == "shapley"]
    got = sh.set_index(["order_id", "channel"])["credit_fen"]
    assert got[("o00006", "C")] == pytest.approx(597.0)
    assert got[("o00006", "A")] == pytest.approx(324.0)
    assert got[("o00006", "B")] == 0.0
    assert got[("o00005", "A")] == pytest.approx(100.0) and got[("o00005", "B")] == 0.0
    assert r.shapley_max_se == {"platform": 0.0}


def test_sampled_shapley_is_close_to_exact():
    touches, eligible, credits = random_world(400, seed=5)
    kw = dict(replicates=0, seed=3, kinds=("platform",), shapley_permutations=3000)
    exact = dd.channel_attribution(touches, eligible, credits, **kw)
    sampled = dd.channel_attribution(touches, eligible, credits, shapley_exact_max=2, **kw)
    key = ["order_id", "channel"]
    e = exact.order_weights.loc[exact.order_weights["model"] == "shapley"].set_index(key)
    s = sampled.order_weights.loc[sampled.order_weights["model"] == "shapley"].set_index(key)
    big = s["weight_se"] > 0
    assert big.sum() > 100 and (e["weight_se"] == 0).all()
    diff = (s["weight"] - e["weight"]).abs()
    # Within 4.5 stated standard errors everywhere, and mostly within 2.
    assert (diff[big] <= 4.5 * s["weight_se"][big] + 1e-12).all()
    assert (diff[big] <= 2 * s["weight_se"][big]).mean() > 0.9
    assert (diff[~big] < 1e-12).all()  # sets of at most 2 channels stay exact
    assert sampled.shapley_max_se["platform"] == pytest.approx(s["weight_se"].max())
    assert 0 < sampled.shapley_max_se["platform"] < 0.02


def test_credits_sum_to_amounts_for_every_model_and_kind():
    touches, eligible, credits = random_world(300, seed=11)
    r = dd.channel_attribution(touches, eligible, credits, replicates=30, seed=7)
    amount = eligible.drop_duplicates("order_id").set_index("order_id")["amount_fen"]
    gmv = float(amount.sum())
    assert len(amount) > 50
    oc = r.order_credits
    assert set(oc["model"]) == {"markov", "shapley"}
    assert (oc["credit_fen"] >= 0).all()
    for _, group in oc.groupby(["model", "channel_kind"]):
        per_order = group.groupby("order_id")["credit_fen"].sum()
        np.testing.assert_allclose(per_order.reindex(amount.index), amount, rtol=1e-12)
        # one row per eligible touch
        assert len(group) == len(eligible)
    assert set(r.channels.groupby(["model", "channel_kind"]).groups) == {
        (m, k) for m in dd.MODELS for k in dd.CHANNEL_KINDS
    }
    for (model, kind), group in r.channels.groupby(["model", "channel_kind"]):
        assert group["credit_fen"].sum() == pytest.approx(gmv, rel=1e-12), (model, kind)
        assert group["share"].sum() == pytest.approx(1.0)
        assert (group["share_ci_low"] <= group["share"] + 1e-12).mean() > 0.8
        assert (group["share_ci_low"] <= group["share_ci_high"]).all()
        rep = r.replicate_credits[(model, kind)]
        assert list(rep.index) == list(group["channel"]) and rep.shape[1] == 30
    # Verticals: null -> "unknown"; heuristic credits reach channels through the touch's vertical.
    verticals = set(r.channels.loc[r.channels["channel_kind"] == "vertical", "channel"])
    assert verticals == {"cat1", "cat2", "cat3", "unknown"}
    linear = r.channels.loc[
        (r.channels["model"] == "linear") & (r.channels["channel_kind"] == "vertical")
    ]
    el = eligible.assign(v=eligible["vertical"].fillna("unknown"))
    expected = (el["amount_fen"] / el["touch_count"]).groupby(el["v"]).sum()
    np.testing.assert_allclose(linear.set_index("channel")["credit_fen"], expected.sort_index())


def test_results_are_deterministic_and_independent_of_row_order():
    touches, eligible, credits = random_world(200, seed=2)
    kw = dict(replicates=25, seed=9, shapley_exact_max=3, shapley_permutations=200)
    a = dd.channel_attribution(touches, eligible, credits, **kw)
    b = dd.channel_attribution(touches, eligible, credits, **kw)
    c = dd.channel_attribution(
        touches.sample(frac=1, random_state=1),
        eligible.sample(frac=1, random_state=2),
        credits.sample(frac=1, random_state=3),
        **kw,
    )
    for other in (b, c):
        for name in (
            "channels",
            "order_credits",
            "order_weights",
            "removal_effects",
            "markov_selection",
        ):
            pd.testing.assert_frame_equal(getattr(a, name), getattr(other, name), check_exact=True)
        assert a.replicate_credits.keys() == other.replicate_credits.keys()
        for key, frame in a.replicate_credits.items():
            pd.testing.assert_frame_equal(frame, other.replicate_credits[key], check_exact=True)
        assert a.markov_order == other.markov_order and a.shapley_max_se == other.shapley_max_se
    d = dd.channel_attribution(touches, eligible, credits, **{**kw, "seed": 10})
    assert not d.channels["share_ci_low"].equals(a.channels["share_ci_low"])
    pd.testing.assert_series_equal(d.channels["credit_fen"], a.channels["credit_fen"])


def test_bootstrap_weights():
    users = np.array([f"u{i}" for i in range(20_000)], dtype=object)
    w = dd.bootstrap_weights(users, 40, seed=4)
    assert w.shape == (40, 20_000) and w.dtype == np.float64
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.var() == pytest.approx(1.0, abs=0.02)
    assert (w == 0).mean() == pytest.approx(np.exp(-1), abs=0.01)
    # A user's weights depend on (seed, user) only: not on order nor on the other users.
    perm = np.random.default_rng(0).permutation(len(users))
    np.testing.assert_array_equal(dd.bootstrap_weights(users[perm], 40, seed=4), w[:, perm])
    np.testing.assert_array_equal(dd.bootstrap_weights(users[:7], 40, seed=4), w[:, :7])
    assert not np.array_equal(dd.bootstrap_weights(users[:50], 40, seed=5), w[:, :50])
    # replicates are not copies of each other
    assert np.corrcoef(w[0], w[1])[0, 1] == pytest.approx(0.0, abs=0.03)
    assert dd.bootstrap_weights(users, 0, seed=4).shape == (0, 20_000)


def _population(copies: int):
    """A fixed population of 40 users (three channels) repeated ``copies`` times."""
    rng = np.random.default_rng(21)
    base = [
        (
            f"u{i}",
            list(rng.choice(list("ABC"), rng.integers(1, 4))),
            500 if rng.random() < 0.4 else None,
        )
        for i in range(40)
    ]
    return frames([(f"{u}_{c}", ch, a) for c in range(copies) for u, ch, a in base])


def test_intervals_shrink_with_more_users():
    widths = []
    for copies in (1, 16):
        touches, eligible, credits = _population(copies)
        r = dd.channel_attribution(
            touches, eligible, credits, replicates=120, seed=3, kinds=("platform",)
        )
        ch = r.channels
        assert ch["share_ci_low"].notna().all()
        widths.append(
            ch.groupby("model").apply(lambda g: (g["share_ci_high"] - g["share_ci_low"]).mean())
        )
    ratio = widths[1] / widths[0]
    # sqrt(16) = 4 times narrower in expectation; clearly narrower for every model.
    assert (ratio < 0.45).all(), ratio.to_dict()
    assert ratio.median() < 0.35


def _chain_paths(order: int, n_paths: int, seed: int):
    """Paths over A, B, C from a first- or second-order process: the next channel is a fixed
    function of the last ``order`` channels with probability 0.85, else uniform; after every touch
    the path ends with probability 1/4 (so the end does not depend on the position either)."""
    rng = np.random.default_rng(seed)
    cap = 40
    seq = np.zeros((n_paths, cap), dtype="int64")
    seq[:, 0] = rng.integers(0, 3, n_paths)
    seq[:, 1] = rng.integers(0, 3, n_paths)  # overwritten below when order == 1
    for t in range(order, cap):
        last = seq[:, t - 1]
        rule = (last + 1) % 3 if order == 1 else (last + 2 * seq[:, t - 2] + 1) % 3
        seq[:, t] = np.where(rng.random(n_paths) < 0.85, rule, rng.integers(0, 3, n_paths))
    lengths = np.minimum(rng.geometric(0.25, n_paths), cap)
    keep = np.arange(cap)[None, :] < lengths[:, None]
    path = np.repeat(np.arange(n_paths), lengths)
    channel = np.array(list("ABC"), dtype=object)[seq[keep]]
    amount = np.where(rng.random(n_paths) < 0.3, 100.0, np.nan)
    return flat_frames(np.array([f"u{p}" for p in path], dtype=object), path, channel, amount)


@pytest.mark.parametrize(("order", "seed"), [(1, 1), (2, 6)])
def test_heldout_choice_of_the_chain_order(order: int, seed: int):
    # 600 paths (~2400 transitions): the true order wins by > 0.01 nats per held-out transition
    # here; over seeds 0-7 it wins for every seed, by 0.003 (order 1) and 0.008 (order 2) at least.
    touches, eligible, credits = _chain_paths(order, 600, seed=seed)
    r = dd.channel_attribution(
        touches, eligible, credits, replicates=0, seed=1, kinds=("platform",)
    )
    assert r.markov_order == {"platform": order}
    sel = r.markov_selection.set_index("k")
    assert sel.index.tolist() == [1, 2, 3] and sel["chosen"].sum() == 1
    # start + 3 channels, + 9 pairs, + the observed triples (at most 27)
    assert sel["states"][1] == 4 and sel["states"][2] == 13 and 13 < sel["states"][3] <= 40
    # A state cap stops the candidates: only k = 1 fits under 13 states.
    capped = dd.channel_attribution(
        touches, eligible, credits, replicates=0, seed=1, kinds=("platform",), max_states=13
    )
    assert capped.markov_order == {"platform": 1}
    assert capped.markov_selection["k"].tolist() == [1]


def test_other_pooling_and_indistinguishable():
    # Creators by touches: c1 5, c2 3, c3 3, c4 1, c5 1. With max_channels = 2 keep c1 and c2 (the
    # c2/c3 tie goes to the smaller id); c3, c4, c5 pool into "(other)".
    author = np.array(["c1"] * 5 + ["c2"] * 3 + ["c3"] * 3 + ["c4", "c5"], dtype=object)
    path = np.arange(13)
    rng = np.random.default_rng(0)
    amount = np.where(rng.random(13) < 0.6, 1000.0, np.nan)
    amount[[0, 5, 8]] = 1000.0
    touches, eligible, credits = flat_frames(
        np.array([f"u{p}" for p in path], dtype=object), path, np.array(["A"] * 13), amount, author
    )
    r = dd.channel_attribution(
        touches,
        eligible,
        credits,
        replicates=200,
        seed=2,
        max_channels=2,
        kinds=("creator", "platform"),
    )
    creators = r.channels.loc[r.channels["channel_kind"] == "creator"]
    assert set(creators["channel"]) == {"c1", "c2", dd.OTHER}
    assert r.replicate_credits[("linear", "creator")].index.tolist() == ["c1", "c2", dd.OTHER]
    pooled = r.order_credits.loc[r.order_credits["channel_kind"] == "creator"]
    on_other = eligible["author_id"].isin(["c3", "c4", "c5"]).sum()
    assert (pooled["channel"] == dd.OTHER).sum() == 2 * on_other  # markov and shapley rows
    # Single-touch paths: every model gives each order to its one creator.
    ch = creators.pivot(index="channel", columns="model", values="credit_fen")
    assert (ch.sub(ch["linear"], axis=0).abs() < 1e-9).all().all()
    pairs = dd.indistinguishable(r, "linear", "creator")
    assert set(pairs) <= {("c1", "c2"), ("c1", dd.OTHER), ("c2", dd.OTHER)}
    assert dd.indistinguishable(r, "linear", "platform") == []  # one channel, no pair
    assert dd.indistinguishable(r, "nope", "creator") == []

    # Two clearly different channels vs two alike ones.
    paths = [(f"u{i}", ["A"], 100) for i in range(300)]
    paths += [(f"v{i}", ["B"], 100) for i in range(300)]
    paths += [(f"w{i}", ["C"], 100) for i in range(20)]
    touches, eligible, credits = frames(paths)
    r = dd.channel_attribution(
        touches, eligible, credits, replicates=200, seed=2, kinds=("platform",)
    )
    for model in dd.MODELS:
        assert dd.indistinguishable(r, model, "platform") == [("A", "B")]


def test_empty_inputs_give_empty_typed_outputs():
    touches, eligible, credits = frames([("u1", ["A"], 100)])
    r = dd.channel_attribution(
        touches.iloc[:0], eligible.iloc[:0], credits.iloc[:0], replicates=10, seed=1
    )
    assert r.channels.empty and r.order_credits.empty and r.order_weights.empty
    assert list(r.channels.columns) == [
        "model",
        "channel_kind",
        "channel",
        "credit_fen",
        "share",
        "share_ci_low",
        "share_ci_high",
    ]
    assert r.channels["credit_fen"].dtype == np.float64
    assert list(r.order_credits.columns) == [
        "order_id",
        "touch_seq",
        "model",
        "channel_kind",
        "channel",
        "credit_fen",
    ]
    assert r.order_credits["touch_seq"].dtype == np.int64
    assert r.replicate_credits == {}
    assert r.markov_order == {k: 1 for k in dd.CHANNEL_KINDS}
    assert r.shapley_max_se == {k: 0.0 for k in dd.CHANNEL_KINDS}

    # Touches without any seeded order: channels with no credit, shares undefined.
    r = dd.channel_attribution(touches, eligible.iloc[:0], credits.iloc[:0], replicates=5, seed=1)
    assert r.order_credits.empty
    assert (r.channels["credit_fen"] == 0).all() and r.channels["share"].isna().all()
    assert set(r.channels["model"]) == set(schemas.ALL_MODELS)
