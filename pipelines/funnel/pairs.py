"""SPEC 5.2 - 5.4: search pairs, and per (pair, brand) whether it is seeded and whether it converts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from ..settings import FunnelParams
from ..timeutil import business_day
from ..windows import window_us
from .prepare import as_of_positions, columns, decode, lexsort, run_starts
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
    n_brands: int,
    params: FunnelParams,
) -> pd.DataFrame:
    """Per (pair, brand of its category) the user ever touched or bought: seeded and converted flags.

    (pair, brand) combinations absent here are neither seeded nor converted, so pairs are joined
    only to the user's own brands of the pair's category (no pairs x brands blow-up). Users and
    brands are joined on their shared integer codes (``_user``, ``_brand``; ``n_brands`` codes);
    ``pairs`` carries ``_row``, its position in (search_id, category_id) order. Both windows are
    those of the pair's category c, the category of every brand b considered (SPEC 5.11).
    """
    pair_seed_us, pair_conversion_us = window_us(params, pairs["category_id"])
    owned = ["_user", "_brand", "brand_id", "category_id"]
    # Touches are sorted by (user, brand, touch order): the first row of each run is one per pair.
    tu, tb, tt = (touches[c].to_numpy(dtype="int64") for c in ("_user", "_brand", "_t"))
    touched = touches[owned].iloc[run_starts(tu, tb)]
    # A brand has one category (brands.csv), so (user, brand) decides the row.
    user_brands = pd.concat([touched, paid[owned]], ignore_index=True).drop_duplicates(
        ["_user", "_brand"], ignore_index=True
    )
    # The join and the as-of look-ups run on narrow integer frames, already in output order
    # (search_id, category_id, brand_id) = (_row, _brand); wide columns are taken once at the end.
    joined = pairs[["_user", "category_id", "_row"]].merge(
        user_brands[["_user", "category_id", "_brand"]].assign(_ub_row=np.arange(len(user_brands))),
        on=["_user", "category_id"],
        how="inner",
    )
    row, brand, ub_row = (joined[c].to_numpy(dtype="int64") for c in ("_row", "_brand", "_ub_row"))
    order = lexsort((brand, row))
    row, brand, ub_row = row[order], brand[order], ub_row[order]
    searched = pairs["searched_at"].to_numpy(dtype="datetime64[us]").view("int64")[row]
    seed_us, conversion_us = pair_seed_us[row], pair_conversion_us[row]
    ub = pairs["_user"].to_numpy(dtype="int64")[row] * n_brands + brand

    # The latest touch strictly before the search decides both "seeded" (it is the newest, so if
    # any touch lies in [t_s - W, t_s) this one does) and the platform / vertical slices.
    # Per (user, brand, time) the last in touch order: the last row of each run.
    starts = run_starts(tu, tb, tt)
    ends = np.r_[starts[1:], len(touches)] - 1 if len(starts) else starts
    last = as_of_positions(searched, ub, tt[ends], tu[ends] * n_brands + tb[ends], "backward", exact=False)
    seeded = last >= 0
    seeded[seeded] = tt[ends[last[seeded]]] >= searched[seeded] - seed_us[seeded]

    paid_at = paid["paid_at"].to_numpy(dtype="datetime64[us]").view("int64")
    paid_ub = paid["_user"].to_numpy(dtype="int64") * n_brands + paid["_brand"].to_numpy(dtype="int64")
    first = as_of_positions(searched, ub, paid_at, paid_ub, "forward", exact=True)
    converted = first >= 0
    converted[converted] = paid_at[first[converted]] <= searched[converted] + conversion_us[converted]

    cand = pairs.iloc[row].reset_index(drop=True)
    cand["_brand"] = brand
    cand["brand_id"] = user_brands["brand_id"].array.take(ub_row)
    at = np.where(seeded, ends[np.maximum(last, 0)], -1) if len(ends) else np.full(len(row), -1)
    for old, new in LAST_TOUCH.items():
        cand[new] = touches[old].array.take(at, allow_fill=True)
    cand["is_seeded"] = seeded
    cand["is_converted"] = converted
    return cand


def joined_ids(rows: pd.DataFrame, n: int) -> pd.Series:
    """Per pair (``_row`` 0..n-1) its rows' brand_ids joined with '|' in row order; '' for none.

    ``rows`` are sorted by ``_row`` (vectorised in Arrow: list offsets from the runs of _row).
    """
    row = rows["_row"].to_numpy(dtype="int64")
    starts = run_starts(row)
    offsets = pa.array(np.r_[starts, len(row)].astype("int32"), pa.int32())
    values = pa.array(rows["brand_id"], from_pandas=True).cast(pa.string())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, values), "|")
    index = np.full(n, -1, dtype="int64")
    index[row[starts]] = np.arange(len(starts))
    taken = joined.take(pa.array(index, mask=index < 0)).fill_null("")
    return pd.Series(pd.array(taken, dtype="str"))


def pair_facts(pairs: pd.DataFrame, cand: pd.DataFrame) -> pd.DataFrame:
    """fct_search_pairs rows (without run_id / is_final) plus the last touch's vertical.

    ``cand`` is pair_brands' output (sorted by pair ``_row``, then brand_id).
    """
    n = len(pairs)
    seeded = cand.loc[cand["is_seeded"].to_numpy(dtype=bool)]
    converted = cand.loc[cand["is_converted"].to_numpy(dtype=bool)]
    last_order = [LAST_TOUCH[c] for c in TOUCH_ORDER]
    last = seeded.sort_values(["_row", *last_order], kind="stable").drop_duplicates(
        "_row", keep="last"
    )
    out = pairs.reset_index(drop=True)
    out["seeded_brand_ids"] = joined_ids(seeded, n)
    out["converted_brand_ids"] = joined_ids(converted, n)
    index = np.full(n, -1, dtype="int64")
    index[last["_row"].to_numpy()] = np.arange(len(last))
    out["last_touch_platform"] = decode(last["lt_platform"], index)
    out["last_touch_vertical"] = decode(last["lt_vertical"], index)
    out["is_seeded"] = out["seeded_brand_ids"].ne("").to_numpy(dtype=bool)
    out["is_converted"] = out["converted_brand_ids"].ne("").to_numpy(dtype=bool)
    return out
