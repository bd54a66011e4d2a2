"""SPEC 5.5: seeded orders, their anchor search and their eligible touches (the windows of the
order's brand's category, SPEC 5.11)."""

from __future__ import annotations

import pandas as pd

from ..settings import FunnelParams
from ..timeutil import business_day
from ..windows import window_us
from .prepare import merge_asof
from .touches import TOUCH_ORDER


def seeded_orders(
    paid: pd.DataFrame, cand: pd.DataFrame, touches: pd.DataFrame, params: FunnelParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seeded orders, their eligible touches numbered 1..n in touch order)."""
    # Per (user, brand, search time) keep the larger search_id: the anchor's tie rule.
    anchors = cand.loc[cand["is_seeded"], ["user_id", "brand_id", "searched_at", "search_id"]]
    anchors = anchors.sort_values(["searched_at", "search_id"], kind="stable")
    anchors = anchors.drop_duplicates(["user_id", "brand_id", "searched_at"], keep="last")
    anchors = anchors.rename(
        columns={"searched_at": "anchor_searched_at", "search_id": "anchor_search_id"}
    )
    orders = merge_asof(
        paid.sort_values("paid_at", kind="stable"),
        anchors,
        left_on="paid_at",
        right_on="anchor_searched_at",
        by=["user_id", "brand_id"],
        direction="backward",
        allow_exact_matches=True,
    )
    # The latest seeded search at or before payment; if it is too old, every earlier one is too
    # (one window per order: its brand's category's).
    in_window = orders["anchor_searched_at"].notna() & (
        orders["anchor_searched_at"] >= orders["paid_at"] - _window(params, orders, 1)
    )
    orders = orders.loc[in_window.to_numpy(dtype=bool)].reset_index(drop=True)

    touch_cols = ["user_id", "brand_id", *TOUCH_ORDER, "author_id", "vertical"]
    eligible = orders[
        [
            "order_id",
            "user_id",
            "brand_id",
            "category_id",
            "amount_fen",
            "paid_at",
            "anchor_searched_at",
        ]
    ].merge(touches[touch_cols], on=["user_id", "brand_id"], how="inner")
    eligible = eligible.loc[
        (eligible["touch_at"] >= eligible["anchor_searched_at"] - _window(params, eligible, 0))
        & (eligible["touch_at"] < eligible["anchor_searched_at"])
    ]
    eligible = eligible.sort_values(["order_id", *TOUCH_ORDER], kind="stable").reset_index(
        drop=True
    )
    by_order = eligible.groupby("order_id", sort=False)
    eligible["touch_seq"] = by_order.cumcount().to_numpy(dtype="int64") + 1
    eligible["touch_count"] = by_order["touch_seq"].transform("size").to_numpy(dtype="int64")
    eligible["dt"] = business_day(eligible["paid_at"])

    last = eligible.loc[eligible["touch_seq"] == eligible["touch_count"]]
    last = last[["order_id", "touch_count", "platform", "vertical"]]
    orders = orders.merge(last, on="order_id", how="inner", validate="one_to_one")
    orders = orders.rename(columns={"platform": "last_touch_platform"})
    orders["is_vertical_match"] = (orders["vertical"] == orders["category_id"]).fillna(False)
    orders["is_vertical_match"] = orders["is_vertical_match"].astype(bool)
    orders["dt"] = business_day(orders["paid_at"])
    orders = orders.sort_values("order_id", kind="stable").reset_index(drop=True)
    return orders, eligible


def _window(params: FunnelParams, rows: pd.DataFrame, which: int) -> pd.Series:
    """Per row the seed (``which`` 0) or conversion (1) window of its ``category_id``."""
    us = window_us(params, rows["category_id"])[which]
    return pd.Series(pd.to_timedelta(us, unit="us"), index=rows.index)
