"""SPEC 5.2 - 5.4: search pairs, and per (pair, brand) whether it is seeded and whether it converts."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from ..settings import FunnelParams
from ..timeutil import business_day
from .prepare import columns, merge_asof
from .touches import TOUCH_ORDER

#: Columns describing a (pair, brand)'s last touch before the search.
LAST_TOUCH = {
    "touch_at": "lt_at",
    "platform": "lt_platform",
    "note_id": "lt_note_id",
    "kind": "lt_kind",
    "ext_user_id": "lt_ext_user_id",
    "vertical": "lt_vertical",
}


def search_pairs(searches: pd.DataFrame, search_categories: pd.DataFrame) -> pd.DataFrame:
    """One row per (search, category of its query) with the searching user, time and day."""
    cats = columns(search_categories, schemas.SEARCH_CATEGORIES, ["search_id", "category_id"])
    pairs = cats.drop_duplicates().merge(
        searches[["search_id", "user_id", "event_time"]], on="search_id", how="inner"
    )
    pairs = pairs.rename(columns={"event_time": "searched_at"})
    pairs = pairs.sort_values(["search_id", "category_id"], kind="stable").reset_index(drop=True)
    pairs["dt"] = business_day(pairs["searched_at"])
    return pairs


def pair_brands(
    pairs: pd.DataFrame,
    touches: pd.DataFrame,
    paid: pd.DataFrame,
    params: FunnelParams,
) -> pd.DataFrame:
    """Per (pair, brand of its category) the user ever touched or bought: seeded and converted flags.

    (pair, brand) combinations absent here are neither seeded nor converted, so pairs are joined
    only to the user's own brands of the pair's category (no pairs x brands blow-up).
    """
    seed_window = pd.Timedelta(params.seed_window)
    conversion_window = pd.Timedelta(params.conversion_window)
    owned = ["user_id", "brand_id", "category_id"]
    user_brands = pd.concat([touches[owned], paid[owned]], ignore_index=True).drop_duplicates()
    cand = pairs.merge(user_brands, on=["user_id", "category_id"], how="inner")
    cand = cand.sort_values("searched_at", kind="stable")

    # The latest touch strictly before the search decides both "seeded" (it is the newest, so if
    # any touch lies in [t_s - W, t_s) this one does) and the platform / vertical slices.
    last = touches.drop_duplicates(["user_id", "brand_id", "touch_at"], keep="last")
    last = last[["user_id", "brand_id", *LAST_TOUCH]].rename(columns=LAST_TOUCH)
    cand = merge_asof(
        cand,
        last.sort_values("lt_at", kind="stable"),
        left_on="searched_at",
        right_on="lt_at",
        by=["user_id", "brand_id"],
        direction="backward",
        allow_exact_matches=False,
    )
    seeded = cand["lt_at"].notna() & (cand["lt_at"] >= cand["searched_at"] - seed_window)
    cand["is_seeded"] = seeded.to_numpy(dtype=bool)
    cand.loc[~cand["is_seeded"], list(LAST_TOUCH.values())] = None

    first_paid = paid[["user_id", "brand_id", "paid_at"]].drop_duplicates()
    cand = merge_asof(
        cand,
        first_paid.sort_values("paid_at", kind="stable"),
        left_on="searched_at",
        right_on="paid_at",
        by=["user_id", "brand_id"],
        direction="forward",
        allow_exact_matches=True,
    )
    converted = cand["paid_at"].notna() & (
        cand["paid_at"] <= cand["searched_at"] + conversion_window
    )
    cand["is_converted"] = converted.to_numpy(dtype=bool)
    cand = cand.drop(columns=["paid_at"])
    cand = cand.sort_values(["search_id", "category_id", "brand_id"], kind="stable")
    return cand.reset_index(drop=True)


def joined_ids(rows: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Per group of ``keys`` the sorted values of ``value`` joined with '|' (vectorised in Arrow)."""
    ordered = rows.sort_values([*keys, value], kind="stable")[[*keys, value]]
    table = pa.Table.from_pandas(ordered, preserve_index=False)
    table = table.set_column(len(keys), value, table[value].cast(pa.string()))
    grouped = table.group_by(keys, use_threads=False).aggregate([(value, "list")])
    joined = pc.binary_join(grouped[f"{value}_list"], "|")
    out = grouped.drop_columns([f"{value}_list"]).append_column(value, joined)
    return out.to_pandas()


def pair_facts(pairs: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    """fct_search_pairs rows (without run_id / is_final) plus the last touch's vertical."""
    keys = ["search_id", "category_id"]
    seeded = cand.loc[cand["is_seeded"]]
    converted = cand.loc[cand["is_converted"]]
    seeded_ids = joined_ids(seeded, keys, "brand_id").rename(
        columns={"brand_id": "seeded_brand_ids"}
    )
    converted_ids = joined_ids(converted, keys, "brand_id").rename(
        columns={"brand_id": "converted_brand_ids"}
    )
    last_order = [LAST_TOUCH[c] for c in TOUCH_ORDER]
    last = seeded.sort_values([*keys, *last_order], kind="stable").drop_duplicates(
        keys, keep="last"
    )
    last = last[[*keys, "lt_platform", "lt_vertical"]].rename(
        columns={"lt_platform": "last_touch_platform", "lt_vertical": "last_touch_vertical"}
    )
    out = (
        pairs.merge(seeded_ids, on=keys, how="left")
        .merge(converted_ids, on=keys, how="left")
        .merge(last, on=keys, how="left")
    )
    out["is_seeded"] = out["seeded_brand_ids"].notna().to_numpy(dtype=bool)
    out["is_converted"] = out["converted_brand_ids"].notna().to_numpy(dtype=bool)
    out["seeded_brand_ids"] = out["seeded_brand_ids"].fillna("")
    out["converted_brand_ids"] = out["converted_brand_ids"].fillna("")
    return out
