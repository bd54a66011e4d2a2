"""Hand-computed cases for the DuckDB reference engine alone (expected numbers worked out inline)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd
import pytest

from pipelines import schemas
from pipelines.funnel.inputs import FunnelInputs
from pipelines.oracle.duckdb_engine import compute
from pipelines.settings import FunnelParams
from pipelines.timeutil import as_of

SH = "Asia/Shanghai"
# The search of most cases: 2026-03-10 12:00 Shanghai (04:00 UTC), business day 2026-03-10.
T = pd.Timestamp("2026-03-10 12:00", tz=SH).tz_convert("UTC")
D = date(2026, 3, 10)
H = pd.Timedelta(hours=1)
S = pd.Timedelta(seconds=1)
DAY = pd.Timedelta(days=1)
AUTHOR_A = "a" * 16  # vertical C1 (matches B1, B2)
AUTHOR_B = "b" * 16  # no vertical


def frame(table: str, rows: list[dict], **defaults) -> pd.DataFrame:
    """A conformed frame of the named table; omitted columns take the defaults given."""
    df = pd.DataFrame([{**defaults, **r} for r in rows]) if rows else schemas.empty_frame(table)
    for c in schemas.table(table).names:
        if c not in df.columns:
            df[c] = defaults.get(c)
    return schemas.conform(table, df)


def world(
    *,
    exposures: list[dict],
    links: list[dict],
    searches: list[dict],
    orders: list[dict] = (),
    notes: list[dict] | None = None,
    note_brands: list[tuple[str, str, str]] | None = None,
) -> FunnelInputs:
    """Brands B1, B2 (C1) and B3 (C2); notes n1 (xiaohongshu, B1) and n2 (douyin, B1+B2)."""
    notes = notes or [
        {"platform": "xiaohongshu", "note_id": "n1", "author_id": AUTHOR_A},
        {"platform": "douyin", "note_id": "n2", "author_id": AUTHOR_B},
        {"platform": "weibo", "note_id": "n3", "author_id": AUTHOR_B},
    ]
    note_brands = note_brands or [
        ("xiaohongshu", "n1", "B1"),
        ("douyin", "n2", "B1"),
        ("douyin", "n2", "B2"),
        ("weibo", "n3", "B1"),
    ]
    sc = [{"search_id": s["search_id"], "category_id": c} for s in searches for c in s["cats"]]
    return FunnelInputs(
        exposures=frame("exposures", list(exposures), dt=D),
        id_links=frame("id_links", list(links), dt=D),
        notes=frame(
            "notes", notes, published_at=T - 30 * DAY, title="", text="", tags=[], likes=0,
            collects=0, comments=0, shares=0, note_type="image", source_file="f", source_row=1, dt=D,
        ),
        note_brands=frame(
            "note_brands", [dict(zip(("platform", "note_id", "brand_id"), r, strict=True)) for r in note_brands]
        ),
        searches=frame(
            "searches", [{k: v for k, v in s.items() if k != "cats"} for s in searches], query="q", dt=D
        ),
        search_categories=frame("search_categories", sc),
        orders=frame("orders", list(orders), item_id="i", category_id="C1", status="paid", dt=D),
        brands=frame(
            "brands",
            [
                {"brand_id": "B1", "category_id": "C1"},
                {"brand_id": "B2", "category_id": "C1"},
                {"brand_id": "B3", "category_id": "C2"},
            ],
            name="n",
            aliases="a",
        ),
        categories=frame("categories", [{"category_id": "C1"}, {"category_id": "C2"}], name="n", keywords="k"),
        creators=frame("creators", [{"platform": "xiaohongshu", "author_id": AUTHOR_A, "vertical": "C1"}]),
    )


def exposure(platform: str, note: str, ext: str, at: pd.Timestamp, kind: str = "read", **kw) -> dict:
    return {"platform": platform, "note_id": note, "ext_user_id": ext, "event_time": at, "kind": kind, **kw}


def row(df: pd.DataFrame, **match) -> pd.Series:
    hit = df
    for k, v in match.items():
        hit = hit[hit[k] == v]
    assert len(hit) == 1, f"expected one row for {match}, got {len(hit)}"
    return hit.iloc[0]


@pytest.fixture(scope="module")
def edges() -> dict[str, pd.DataFrame]:
    """Window edges, collapse of duplicates, paid-only, brand category from brands.csv."""
    inputs = world(
        links=[
            {"platform": "xiaohongshu", "ext_user_id": "e1", "user_id": "u1", "confidence": 0.8},
            {"platform": "douyin", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0},
        ],
        exposures=[
            exposure("xiaohongshu", "n1", "e1", T - 15 * DAY),  # exactly seed_window: eligible
            exposure("xiaohongshu", "n1", "e1", T - 15 * DAY - S),  # one second early: not
            exposure("douyin", "n2", "e1", T - H, "like"),  # B1 and B2; eligible
            exposure("douyin", "n2", "e1", T - H, "like", dt=D + timedelta(days=1)),  # same, redelivered
            exposure("xiaohongshu", "n1", "e1", T),  # at the search second: not before it
            exposure("xiaohongshu", "n1", "e1", T - 2 * H, "impression"),  # impressions do not seed
        ],
        searches=[{"search_id": "s1", "user_id": "u1", "event_time": T, "cats": ["C1"]}],
        orders=[
            {"order_id": "o1", "user_id": "u1", "brand_id": "B1", "amount_fen": 1000, "paid_at": T + 3 * DAY},
            {"order_id": "o2", "user_id": "u1", "brand_id": "B1", "amount_fen": 500, "paid_at": T + 3 * DAY + S},
            {"order_id": "o3", "user_id": "u1", "brand_id": "B2", "amount_fen": 700, "paid_at": T + DAY, "status": "refunded"},
            # The order says C_WRONG; brands.csv says B2 is in C1, which wins.
            {"order_id": "o4", "user_id": "u1", "brand_id": "B2", "amount_fen": 300, "paid_at": T + 2 * H, "category_id": "C_WRONG"},
        ],
    )
    return compute(inputs, FunnelParams(), D, D + timedelta(days=3), "run-1")


def test_pair_window_edges(edges):
    pairs = edges["fct_search_pairs"]
    p = row(pairs, search_id="s1")
    # B1 by the touch at exactly T-15d and the douyin like; B2 by the like.
    assert p.seeded_brand_ids == "B1|B2" and p.is_seeded
    # o1 at exactly T+3d converts B1; o4 converts B2; o2 (+1 s) and o3 (refunded) do not count.
    assert p.converted_brand_ids == "B1|B2" and p.is_converted
    # The xiaohongshu read at T is not before the search: the last touch is the douyin like.
    assert p.last_touch_platform == "douyin"
    # end = D+3, conversion window 3 days: D + 3 < end fails, D is not final yet (the edge).
    assert not p.is_final and p["dt"] == D


def test_seeded_orders_and_anchor(edges):
    orders = edges["fct_seeded_orders"]
    assert sorted(orders.order_id) == ["o1", "o4"]  # o2 is 1 s late, o3 refunded
    o1 = row(orders, order_id="o1")
    assert o1.anchor_search_id == "s1" and o1.anchor_searched_at == T
    assert o1.touch_count == 2  # T-15d and T-1h; T-15d-1s and T itself are outside
    assert o1.last_touch_platform == "douyin" and not o1.is_vertical_match  # author B: no vertical
    assert o1["dt"] == D + timedelta(days=3)
    o4 = row(orders, order_id="o4")
    assert o4.category_id == "C1" and o4.touch_count == 1


def test_attribution_credits(edges):
    credits = edges["fct_attribution_credits"]
    o1 = credits[credits.order_id == "o1"]
    assert len(o1) == 2 * len(schemas.ATTRIBUTION_MODELS)  # zero credits are rows too

    def credit(model: str, seq: int) -> float:
        return row(o1, model=model, touch_seq=seq).credit_fen

    # seq 1 = the xiaohongshu read at T-15d, seq 2 = the douyin like at T-1h.
    assert row(o1, model="linear", touch_seq=1).platform == "xiaohongshu"
    assert (credit("last_touch", 1), credit("last_touch", 2)) == (0.0, 1000.0)
    assert (credit("first_touch", 1), credit("first_touch", 2)) == (1000.0, 0.0)
    assert (credit("linear", 1), credit("linear", 2)) == (500.0, 500.0)
    assert (credit("position_based", 1), credit("position_based", 2)) == (500.0, 500.0)
    # time_decay: weights 2^(-15/7) and 2^(-(1/24)/7), normalised.
    w1, w2 = 2 ** (-15 / 7), 2 ** (-(1 / 24) / 7)
    assert credit("time_decay", 1) == pytest.approx(1000 * w1 / (w1 + w2), rel=1e-12)
    for m in schemas.ATTRIBUTION_MODELS:
        assert o1[o1.model == m].credit_fen.sum() == pytest.approx(1000, rel=1e-12)


def test_touches_collapse_and_days(edges):
    touches = edges["fct_touches"]
    # On D..D+3: the douyin like (B1, B2; its redelivery collapses) and the read at T (B1).
    assert len(touches) == 3
    assert sorted(touches.brand_id) == ["B1", "B1", "B2"]
    assert set(touches.kind) == {"like", "read"}
    assert row(touches, platform="xiaohongshu").vertical == "C1"


def test_brand_funnel_daily(edges):
    agg = edges["agg_brand_funnel_daily"]
    assert len(agg) == 4 * 3 * 6  # days x brands x (5 platforms + all), dense
    b1 = agg[(agg.brand_id == "B1") & (agg.dt == D)]
    a = row(b1, platform="all")
    # u1's first B1 touch that day is the like at T-1h; s1 at T is within (t_first, t_first+15d].
    assert (a.exposed_users, a.searched_back_users, a.search_back_rate) == (1, 1, 1.0)
    assert (a.search_back_users, a.seeded_pairs, a.seeded_conversions) == (1, 1, 1)
    assert (a.baseline_pairs, a.baseline_conversions) == (0, 0)
    assert a.cvr_seeded == 1.0 and pd.isna(a.cvr_baseline) and pd.isna(a.uplift)
    # On xiaohongshu the first B1 touch that day is the read at T itself: s1 is not after it.
    x = row(b1, platform="xiaohongshu")
    assert (x.exposed_users, x.searched_back_users, x.search_back_rate) == (1, 0, 0.0)
    assert (x.search_back_users, x.seeded_pairs) == (0, 0)
    d = row(b1, platform="douyin")
    assert (d.exposed_users, d.searched_back_users, d.search_back_users, d.seeded_pairs) == (1, 1, 1, 1)
    paid = agg[(agg.brand_id == "B1") & (agg.dt == D + timedelta(days=3))]
    a3 = row(paid, platform="all")
    assert (a3.seeded_orders, a3.seeded_gmv_fen) == (1, 1000)
    assert a3.attributed_gmv_first_touch_fen == 1000.0 and a3.attributed_gmv_linear_fen == 1000.0
    assert row(paid, platform="douyin").attributed_gmv_last_touch_fen == 1000.0
    assert row(paid, platform="douyin").seeded_orders == 1  # the order's last touch platform
    assert row(paid, platform="xiaohongshu").attributed_gmv_first_touch_fen == 1000.0
    assert row(paid, platform="xiaohongshu").attributed_gmv_linear_fen == 500.0
    assert row(paid, platform="xiaohongshu").seeded_orders == 0
    # Every row is within 15 days of end = D+3: nothing is final yet.
    assert not agg.is_final.any()


def test_uplift_and_interval():
    """Six users search C1 on D: u1 (xiaohongshu touch, converts), u2 (weibo touch) are seeded
    for B1; u3..u6 are not, u3 converts. B1: x1=1, n1=2, x2=1, n2=4."""
    links = [
        {"platform": "xiaohongshu", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0},
        {"platform": "weibo", "ext_user_id": "e2", "user_id": "u2", "confidence": 1.0},
    ]
    exposures = [
        exposure("xiaohongshu", "n1", "e1", T - DAY),
        exposure("weibo", "n3", "e2", T - DAY),
    ]
    searches = [
        {"search_id": f"s{i}", "user_id": f"u{i}", "event_time": T + i * S, "cats": ["C1"]} for i in range(1, 7)
    ]
    orders = [
        {"order_id": "o1", "user_id": "u1", "brand_id": "B1", "amount_fen": 100, "paid_at": T + DAY},
        {"order_id": "o3", "user_id": "u3", "brand_id": "B1", "amount_fen": 100, "paid_at": T + DAY},
    ]
    out = compute(world(exposures=exposures, links=links, searches=searches, orders=orders), FunnelParams(), D, D, "r")
    up = out["agg_conversion_uplift"]
    assert len(up) == 1 * (1 + 2 + 3) * 8  # dense: all + 2 categories + 3 brands, 8 slices
    b1 = row(up, level="brand", subject_id="B1", slice="all")
    assert (b1.seeded_pairs, b1.seeded_conversions, b1.baseline_pairs, b1.baseline_conversions) == (2, 1, 4, 1)
    assert (b1.cvr_seeded, b1.cvr_baseline, b1.uplift) == (0.5, 0.25, 2.0)
    half = 1.96 * math.sqrt(1 / 1 - 1 / 2 + 1 / 1 - 1 / 4)
    assert b1.uplift_ci_low == pytest.approx(math.exp(math.log(2) - half), rel=1e-12)
    assert b1.uplift_ci_high == pytest.approx(math.exp(math.log(2) + half), rel=1e-12)
    # Platform slices: seeded counts of the slice, baseline of the whole brand.
    xhs = row(up, level="brand", subject_id="B1", slice="platform", slice_value="xiaohongshu")
    assert (xhs.seeded_pairs, xhs.seeded_conversions, xhs.baseline_pairs, xhs.uplift) == (1, 1, 4, 4.0)
    half_x = 1.96 * math.sqrt(1 - 1 + 1 - 1 / 4)
    assert xhs.uplift_ci_high == pytest.approx(math.exp(math.log(4) + half_x), rel=1e-12)
    wb = row(up, level="brand", subject_id="B1", slice="platform", slice_value="weibo")
    assert (wb.seeded_pairs, wb.seeded_conversions, wb.cvr_seeded) == (1, 0, 0.0)
    assert pd.isna(wb.uplift) and pd.isna(wb.uplift_ci_low)  # x1 = 0
    # Author A (xiaohongshu) has vertical C1 = c(B1); weibo's author has none.
    match = row(up, level="brand", subject_id="B1", slice="vertical_match", slice_value="match")
    mismatch = row(up, level="brand", subject_id="B1", slice="vertical_match", slice_value="mismatch")
    assert (match.seeded_pairs, mismatch.seeded_pairs) == (1, 1)
    # B2 is in C1 too: u1 and u2 were touched by notes without B2, so all six pairs are its
    # baseline, and none converts for B2 (both orders are B1).
    b2 = row(up, level="brand", subject_id="B2", slice="all")
    assert (b2.seeded_pairs, b2.baseline_pairs, b2.baseline_conversions) == (0, 6, 0)
    # Category C1 sees the six pairs, converted at category level.
    r = row(up, level="category", subject_id="C1", slice="all")
    assert (r.seeded_pairs, r.seeded_conversions, r.baseline_pairs, r.baseline_conversions) == (2, 1, 4, 1)
    # Level all pools the (pair, brand) units of B1 and B2: B1's (2, 1, 4, 1) plus B2's (0, 0, 6, 0).
    r = row(up, level="all", subject_id="all", slice="all")
    assert (r.seeded_pairs, r.seeded_conversions, r.baseline_pairs, r.baseline_conversions) == (2, 1, 10, 1)
    assert (r.cvr_seeded, r.cvr_baseline, r.uplift) == (0.5, 0.1, 5.0)
    c2 = row(up, level="category", subject_id="C2", slice="all")
    assert (c2.seeded_pairs, c2.baseline_pairs) == (0, 0) and pd.isna(c2.cvr_seeded)
    assert not up.is_final.any()  # end = D: the 3-day conversion window of D is still open


def test_uplift_not_final_until_window_closes():
    empty = world(exposures=[], links=[], searches=[])
    out = compute(empty, FunnelParams(), D, D + timedelta(days=3), "r")
    assert not out["agg_conversion_uplift"].is_final.any()  # D + 3 < D + 3 fails
    out = compute(empty, FunnelParams(), D, D + timedelta(days=4), "r")
    up = out["agg_conversion_uplift"]
    assert set(up.loc[up.is_final, "dt"]) == {D}
    assert len(out["fct_touches"]) == 0 and len(out["brand_boost_signals"]) == 0


def test_id_link_winner_then_threshold():
    links = [
        # Tie at 0.9: the smaller user_id wins.
        {"platform": "weibo", "ext_user_id": "e1", "user_id": "u3", "confidence": 0.9},
        {"platform": "weibo", "ext_user_id": "e1", "user_id": "u2", "confidence": 0.9},
        # The winner (0.7) is below the threshold; the loser can never link.
        {"platform": "douyin", "ext_user_id": "e2", "user_id": "u4", "confidence": 0.7},
        {"platform": "douyin", "ext_user_id": "e2", "user_id": "u5", "confidence": 0.6},
        # Exactly the threshold links; the same id on another platform is another person.
        {"platform": "xiaohongshu", "ext_user_id": "e2", "user_id": "u6", "confidence": 0.8},
    ]
    exposures = [
        exposure("weibo", "n3", "e1", T),
        exposure("douyin", "n2", "e2", T),
        exposure("xiaohongshu", "n1", "e2", T),
    ]
    out = compute(world(exposures=exposures, links=links, searches=[]), FunnelParams(), D, D, "r")
    got = out["fct_touches"][["platform", "user_id"]].drop_duplicates()
    assert sorted(map(tuple, got.to_numpy())) == [("weibo", "u2"), ("xiaohongshu", "u6")]


def test_anchor_tie_and_position_based():
    """Two seeded searches at the same second: the larger search_id ("s9" > "s10") anchors.
    Four eligible touches: position_based gives 40/10/10/40 of 1000."""
    links = [{"platform": "xiaohongshu", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0}]
    exposures = [exposure("xiaohongshu", "n1", "e1", T - k * H) for k in (1, 2, 3, 4)]
    searches = [
        {"search_id": "s10", "user_id": "u1", "event_time": T, "cats": ["C1"]},
        {"search_id": "s9", "user_id": "u1", "event_time": T, "cats": ["C1"]},
        {"search_id": "s8", "user_id": "u1", "event_time": T - S, "cats": ["C1"]},
    ]
    orders = [{"order_id": "o1", "user_id": "u1", "brand_id": "B1", "amount_fen": 1000, "paid_at": T + H}]
    out = compute(world(exposures=exposures, links=links, searches=searches, orders=orders), FunnelParams(), D, D, "r")
    o = row(out["fct_seeded_orders"], order_id="o1")
    assert o.anchor_search_id == "s9" and o.touch_count == 4
    pb = out["fct_attribution_credits"].query("model == 'position_based'").sort_values("touch_seq")
    assert pb.credit_fen.tolist() == pytest.approx([400, 100, 100, 400], rel=1e-12)
    assert pb.touch_at.tolist() == [T - 4 * H, T - 3 * H, T - 2 * H, T - H]


def test_boost_signal():
    """As of the end of D: raw = sum(kind_weight * 2^(-(as_of - t)/3 days)) over [as_of-15d, as_of)."""
    end_of_d = as_of(D)
    links = [{"platform": "douyin", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0}]
    exposures = [
        exposure("douyin", "n2", "e1", end_of_d - DAY, "read"),  # 1 * 2^(-1/3)
        exposure("douyin", "n2", "e1", end_of_d - 3 * DAY, "impression"),  # 0.2 * 2^-1
        exposure("douyin", "n2", "e1", end_of_d - 15 * DAY, "share"),  # 2.5 * 2^-5, on the edge
        exposure("douyin", "n2", "e1", end_of_d - 15 * DAY - S, "share"),  # outside
        exposure("douyin", "n2", "e1", end_of_d, "share"),  # at as_of: outside
    ]
    out = compute(world(exposures=exposures, links=links, searches=[]), FunnelParams(), D, D, "r")
    boost = out["brand_boost_signals"]
    raw = 2 ** (-1 / 3) + 0.2 * 2**-1 + 2.5 * 2**-5
    # n2 carries B1 and B2: equal scores, the smaller brand_id ranks first.
    assert boost.brand_id.tolist() == ["B1", "B2"] and boost["rank"].tolist() == [1, 2]
    assert boost.raw.tolist() == pytest.approx([raw, raw], rel=1e-12)
    assert boost.score.iloc[0] == pytest.approx(1 - math.exp(-raw), rel=1e-12)
    assert set(boost.as_of_dt) == {D}
    top1 = compute(world(exposures=exposures, links=links, searches=[]), FunnelParams(boost_top_n=1), D, D, "r")
    assert top1["brand_boost_signals"].brand_id.tolist() == ["B1"]


def test_conflicting_versions_in_one_delivery_are_a_clear_error():
    searches = [
        {"search_id": "s1", "user_id": "u1", "event_time": T, "cats": []},
        {"search_id": "s1", "user_id": "u2", "event_time": T, "cats": []},
    ]
    with pytest.raises(
        ValueError,
        match=r"searches: key \{'search_id': 's1'\} has conflicting rows in delivery dt=2026-03-10 "
        r"at positions \[0, 1\]",
    ):
        compute(world(exposures=[], links=[], searches=searches), FunnelParams(), D, D, "r")
    # In two deliveries they are two versions: the later one wins.
    searches[1]["dt"] = D + timedelta(days=1)
    out = compute(world(exposures=[], links=[], searches=searches), FunnelParams(), D, D, "r")
    assert out["fct_search_pairs"].empty  # no category: no pair, and no error


def test_latest_delivery_wins():
    """Orders, searches and id links: a later delivery (larger dt) is a new version of the key."""
    d1, d2 = D + timedelta(days=1), D + timedelta(days=2)
    links = [
        # e1 was u1's; the latest delivery naming it corrects it to u2, even at a lower confidence.
        {"platform": "xiaohongshu", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0},
        {"platform": "xiaohongshu", "ext_user_id": "e1", "user_id": "u2", "confidence": 0.85, "dt": d1},
        # e3 was u3's, then revoked with confidence 0.
        {"platform": "douyin", "ext_user_id": "e3", "user_id": "u3", "confidence": 1.0},
        {"platform": "douyin", "ext_user_id": "e3", "user_id": "u3", "confidence": 0.0, "dt": d2},
    ]
    exposures = [exposure("xiaohongshu", "n1", "e1", T - H), exposure("douyin", "n2", "e3", T - H)]
    searches = [
        {"search_id": "s2", "user_id": "u2", "event_time": T, "cats": ["C1"]},
        {"search_id": "s3", "user_id": "u3", "event_time": T, "cats": ["C1"]},
        # s9 was first u1's (who no longer touches anything); later delivered as u2's at T + 1 h.
        {"search_id": "s9", "user_id": "u1", "event_time": T, "cats": ["C1"]},
        {"search_id": "s9", "user_id": "u2", "event_time": T + H, "cats": ["C1"], "dt": d1},
    ]
    order = {"user_id": "u2", "brand_id": "B1", "paid_at": T + 2 * H}
    orders = [
        # o1: paid, then refunded in a later delivery (the rows' order does not matter).
        {**order, "order_id": "o1", "amount_fen": 100, "status": "refunded", "dt": d1},
        {**order, "order_id": "o1", "amount_fen": 100},
        # o2: its amount corrected twice; the latest delivery holds 900.
        {**order, "order_id": "o2", "amount_fen": 900, "dt": d2},
        {**order, "order_id": "o2", "amount_fen": 300},
        {**order, "order_id": "o2", "amount_fen": 600, "dt": d1},
    ]
    out = compute(world(exposures=exposures, links=links, searches=searches, orders=orders), FunnelParams(), D, D, "r")
    assert sorted(out["fct_touches"].user_id) == ["u2"]  # e1 is u2's now; e3 links nobody
    pairs = out["fct_search_pairs"]
    s9 = row(pairs, search_id="s9")
    assert (s9.user_id, s9.searched_at, s9.is_seeded) == ("u2", T + H, True)
    assert not row(pairs, search_id="s3").is_seeded
    # o2 is anchored on s9 (the later of u2's seeded searches); o1 no longer counts.
    orders_out = out["fct_seeded_orders"]
    assert orders_out.order_id.tolist() == ["o2"] and orders_out.amount_fen.tolist() == [900]
    assert orders_out.anchor_search_id.tolist() == ["s9"]
    credits = out["fct_attribution_credits"]
    assert set(credits.order_id) == {"o2"}
    assert credits.groupby("model").credit_fen.sum().tolist() == pytest.approx([900] * 5, rel=1e-12)
    assert row(out["agg_brand_funnel_daily"], brand_id="B1", platform="all").seeded_gmv_fen == 900


def test_boost_snapshot_of_every_day():
    """As of the end of each day of start..end, from the exposures before that day's as_of."""
    e0 = as_of(D)
    links = [{"platform": "douyin", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0}]
    exposures = [
        exposure("douyin", "n2", "e1", e0 - DAY, "read"),
        exposure("douyin", "n2", "e1", e0 + 6 * H, "share"),  # after D's as_of
        exposure("douyin", "n2", "e1", e0 + DAY, "like"),  # at D+1's as_of: only in D+2's
    ]
    out = compute(world(exposures=exposures, links=links, searches=[]), FunnelParams(), D, D + timedelta(days=2), "r")
    boost = out["brand_boost_signals"]
    b1 = boost[boost.brand_id == "B1"].set_index("as_of_dt").raw
    assert b1.index.tolist() == [D, D + timedelta(days=1), D + timedelta(days=2)]
    assert b1.tolist() == pytest.approx(
        [
            2 ** (-1 / 3),
            2 ** (-2 / 3) + 2.5 * 2 ** (-0.75 / 3),
            2**-1 + 2.5 * 2 ** (-1.75 / 3) + 1.5 * 2 ** (-1 / 3),
        ],
        rel=1e-12,
    )
    assert len(boost) == 6  # B1 and B2 (both on n2) every day


def test_search_with_two_categories_makes_two_pairs():
    """s1 matches C1 and C2. The douyin like (B1, B2 — both C1) seeds only the C1 pair; the B3
    order (C2) converts only the C2 pair, and the B1 order only the C1 pair."""
    links = [{"platform": "douyin", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0}]
    exposures = [exposure("douyin", "n2", "e1", T - H, "like")]
    searches = [{"search_id": "s1", "user_id": "u1", "event_time": T, "cats": ["C1", "C2"]}]
    orders = [
        {"order_id": "o1", "user_id": "u1", "brand_id": "B3", "amount_fen": 100, "paid_at": T + H},
        {"order_id": "o2", "user_id": "u1", "brand_id": "B1", "amount_fen": 100, "paid_at": T + H},
    ]
    out = compute(world(exposures=exposures, links=links, searches=searches, orders=orders), FunnelParams(), D, D, "r")
    pairs = out["fct_search_pairs"]
    c1, c2 = row(pairs, category_id="C1"), row(pairs, category_id="C2")
    assert (c1.seeded_brand_ids, c1.converted_brand_ids, c1.last_touch_platform) == ("B1|B2", "B1", "douyin")
    assert (c2.seeded_brand_ids, c2.converted_brand_ids, c2.is_seeded) == ("", "B3", False)
    assert pd.isna(c2.last_touch_platform)
    # o2 (B1) is seeded through the C1 pair; o1 (B3) has no seeded C2 pair.
    assert out["fct_seeded_orders"].order_id.tolist() == ["o2"]
    up = out["agg_conversion_uplift"]
    # Level all pools (pair, brand) units: (C1 pair, B1) seeded and converted, (C1 pair, B2)
    # seeded, not converted; (C2 pair, B3) baseline, converted.
    all_ = row(up, level="all", slice="all")
    assert (all_.seeded_pairs, all_.seeded_conversions, all_.baseline_pairs, all_.baseline_conversions) == (2, 1, 1, 1)
    # Category level: the C1 pair seeded, converting (B1); the C2 pair baseline, converting (B3).
    c1, c2 = row(up, level="category", subject_id="C1", slice="all"), row(up, level="category", subject_id="C2", slice="all")
    assert (c1.seeded_pairs, c1.seeded_conversions, c2.baseline_pairs, c2.baseline_conversions) == (1, 1, 1, 1)


def test_strata_and_adjusted_uplift():
    """SPEC 5.10 by hand. Six users search C1 at T. u1 (seeded by a xiaohongshu touch, had a B2
    order two days before: a recent order of C1) buys B1; u2 (seeded by a weibo touch) does not;
    u3 (a B1 order three days before) and u4 buy B1 unseeded; u5 and u6 buy nothing. u5 also
    searched exactly 14 days before (counts), 14 days and a second before (does not) and an hour
    before: activity 2."""
    links = [
        {"platform": "xiaohongshu", "ext_user_id": "e1", "user_id": "u1", "confidence": 1.0},
        {"platform": "weibo", "ext_user_id": "e2", "user_id": "u2", "confidence": 1.0},
    ]
    exposures = [exposure("xiaohongshu", "n1", "e1", T - DAY), exposure("weibo", "n3", "e2", T - DAY)]
    searches = [{"search_id": f"s{i}", "user_id": f"u{i}", "event_time": T, "cats": ["C1"]} for i in range(1, 7)]
    searches += [
        {"search_id": f"p{i}", "user_id": "u5", "event_time": T - lag, "cats": []}
        for i, lag in enumerate((14 * DAY, 14 * DAY + S, H))
    ]
    orders = [
        {"order_id": "o1", "user_id": "u1", "brand_id": "B1", "amount_fen": 100, "paid_at": T + DAY},
        {"order_id": "o3", "user_id": "u3", "brand_id": "B1", "amount_fen": 100, "paid_at": T + DAY},
        {"order_id": "o4", "user_id": "u4", "brand_id": "B1", "amount_fen": 100, "paid_at": T + DAY},
        {"order_id": "r1", "user_id": "u1", "brand_id": "B2", "amount_fen": 100, "paid_at": T - 2 * DAY},
        {"order_id": "r3", "user_id": "u3", "brand_id": "B1", "amount_fen": 100, "paid_at": T - 3 * DAY},
    ]
    out = compute(world(exposures=exposures, links=links, searches=searches, orders=orders), FunnelParams(), D, D, "r")
    k = out["agg_uplift_strata"]
    b1 = k[(k.level == "brand") & (k.subject_id == "B1") & (k.slice == "all")]
    got = sorted(
        b1[["activity", "has_recent_order", "seeded_pairs", "seeded_conversions", "baseline_pairs", "baseline_conversions"]]
        .itertuples(index=False, name=None)
    )
    # (0, recent order): u1 seeded, converts | u3 baseline, converts. (0, none): u2 seeded |
    # u4 (converts), u6 baseline. (1-2, none): u5 baseline.
    assert got == [("0", False, 1, 0, 2, 1), ("0", True, 1, 1, 1, 1), ("1-2", False, 0, 0, 1, 0)]
    assert set(b1.stratum_id) == {"B1"} and not b1.is_final.any()
    up = out["agg_conversion_uplift"]
    r = row(up, level="brand", subject_id="B1", slice="all")
    # Naive: (1/2) / (2/4) = 1. MH: R = 1*1/2 + 0*2/3 = 1/2, S = 1*1/2 + 1*1/3 = 5/6, RR = 3/5;
    # Var = [(2*1*1 - 1*1*2)/4 + (1*1*2 - 0)/9] / (R S) = (2/9) / (5/12) = 8/15.
    assert (r.seeded_pairs, r.seeded_conversions, r.baseline_pairs, r.baseline_conversions) == (2, 1, 4, 2)
    assert r.uplift == pytest.approx(1.0)
    assert r.adjusted_uplift == pytest.approx(3 / 5, rel=1e-12)
    half = 1.96 * math.sqrt(8 / 15)
    assert r.adjusted_uplift_ci_low == pytest.approx(3 / 5 * math.exp(-half), rel=1e-12)
    assert r.adjusted_uplift_ci_high == pytest.approx(3 / 5 * math.exp(half), rel=1e-12)
    # The weibo slice: seeded u2 only, against the whole baseline, stratum by stratum:
    # R = 0, so null; its strata rows are still there (the baseline), for sums over a window.
    wb = row(up, level="brand", subject_id="B1", slice="platform", slice_value="weibo")
    assert pd.isna(wb.adjusted_uplift)
    assert len(k[(k.subject_id == "B1") & (k.slice_value == "weibo")]) == 3
    # The xiaohongshu slice: u1 only. R = 1*1/2 = 1/2, S = 1*1/2 + 1*0/3 = 1/2: RR = 1.
    xhs = row(up, level="brand", subject_id="B1", slice="platform", slice_value="xiaohongshu")
    assert xhs.adjusted_uplift == pytest.approx(1.0, rel=1e-12)
    # Level all pools B1 and B2 units. B2 has no seeded unit and no conversion (u1's B2 order was
    # before the search), so its strata add nothing to R or S.
    a = row(up, level="all", subject_id="all", slice="all")
    assert a.adjusted_uplift == pytest.approx(3 / 5, rel=1e-12)
    pooled = k[(k.level == "all") & (k.slice == "all")]
    assert set(pooled.stratum_id) == {"B1", "B2"} and pooled.seeded_pairs.sum() == 2
    # Category C1: the same pairs, category-level conversions (B1 only here): the same figure.
    c1 = row(up, level="category", subject_id="C1", slice="all")
    assert c1.adjusted_uplift == pytest.approx(3 / 5, rel=1e-12)
