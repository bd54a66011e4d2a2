"""SPEC 5.9: agg_brand_funnel_daily, dense over days x brands x (five platforms + 'all')."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import schemas
from ..settings import FunnelParams
from ..windows import window_us
from .prepare import decode, lexsort, run_starts
from .uplift import COUNTS, with_uplift

PLATFORM_ROWS: tuple[str, ...] = (*schemas.PLATFORMS, schemas.ALL)
KEY = ["dt", "brand_id", "platform"]
#: Columns that add up over disjoint user sets; everything else is recomputed from them.
ADDITIVE: list[str] = [
    c.name
    for c in schemas.AGG_BRAND_FUNNEL_DAILY.columns
    if c.name not in KEY and (c.type == "int64" or c.name.startswith("attributed_gmv_"))
]


def finish(df: pd.DataFrame) -> pd.DataFrame:
    """Search-back rate, cvr, uplift and interval recomputed from the additive counts."""
    out = with_uplift(df)
    exposed = out["exposed_users"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["search_back_rate"] = np.where(
            exposed > 0, out["searched_back_users"].to_numpy(dtype="float64") / exposed, np.nan
        )
    return out


def _with_all(rows: pd.DataFrame, platform: str) -> pd.DataFrame:
    """The rows keyed by their own platform and again under 'all'."""
    return pd.concat(
        [rows.assign(platform=rows[platform]), rows.assign(platform=schemas.ALL)], ignore_index=True
    )


def exposure_counts(
    touches: pd.DataFrame,
    pairs: pd.DataFrame,
    users: pd.Index,
    brands: pd.Index,
    params: FunnelParams,
) -> pd.DataFrame:
    """exposed_users and searched_back_users per (touch day, brand, platform or 'all').

    ``touches``: seeding touches as touches() makes them (sorted by user, brand, touch order,
    with their codes); ``users`` / ``brands``: the sorted ids their ``_user`` / ``_brand`` index.
    The seed window is that of the brand's category (SPEC 5.11).
    """
    user = touches["_user"].to_numpy(dtype="int64")
    brand = touches["_brand"].to_numpy(dtype="int64")
    platform = touches["_platform"].to_numpy(dtype="int64")
    t = touches["_t"].to_numpy(dtype="int64")
    day = _day_numbers(touches["dt"])
    # The first touch per (user, brand, day) over all platforms: rows are in touch order within
    # (user, brand), so it is the first row of each run; per platform, the first of each run
    # after a stable sort by (user, brand, day, platform).
    overall = run_starts(user, brand, day)
    by_platform = lexsort((platform, day, user * (int(brand.max(initial=0)) + 1) + brand))
    per_platform = by_platform[
        run_starts(user[by_platform], brand[by_platform], day[by_platform], platform[by_platform])
    ]
    n_platforms = len(schemas.PLATFORMS)
    firsts = np.concatenate([per_platform, overall])
    label = np.concatenate([platform[per_platform], np.full(len(overall), n_platforms)])

    categories = pd.Index(
        pd.concat([touches["category_id"], pairs["category_id"]]).unique(), dtype="str"
    )
    category = categories.get_indexer(touches["category_id"])
    seed_us = window_us(params, categories)[0]  # per category code
    width = max(len(categories), 1)
    first = pd.DataFrame(
        {
            "key": user[firsts] * width + category[firsts],
            "first_at": t[firsts],
            "seed_us": seed_us[category[firsts]],
            "row": np.arange(len(firsts)),
        }
    )
    search_user = users.get_indexer(pairs["user_id"])
    searches = pd.DataFrame(
        {
            "key": search_user * width + categories.get_indexer(pairs["category_id"]),
            "searched_at": pairs["searched_at"].to_numpy(dtype="datetime64[us]").view("int64"),
        }
    ).loc[search_user >= 0]
    searches = searches.drop_duplicates().sort_values("searched_at", kind="stable")
    # A search of c(b) in (t_first, t_first + W] is seeded for b by that very first touch.
    # (Microsecond epochs are exact in float64.)
    searched_back = np.zeros(len(firsts), dtype=bool)
    if len(first) and len(searches):
        found = pd.merge_asof(
            first.sort_values("first_at", kind="stable"),
            searches,
            left_on="first_at",
            right_on="searched_at",
            by="key",
            direction="forward",
            allow_exact_matches=False,
        )
        next_at = found["searched_at"].to_numpy(dtype="float64", na_value=np.nan)
        hit = next_at <= found["first_at"].to_numpy(dtype="float64") + found["seed_us"].to_numpy()
        searched_back[found["row"].to_numpy()] = hit
    counted = (
        pd.DataFrame(
            {
                "day": day[firsts],
                "brand": brand[firsts],
                "platform": label,
                "searched_back": searched_back,
            }
        )
        .groupby(["day", "brand", "platform"], sort=False)
        .agg(exposed_users=("searched_back", "size"), searched_back_users=("searched_back", "sum"))
        .reset_index()
    )
    platforms = pd.Index([*sorted(schemas.PLATFORMS), schemas.ALL], dtype="str")
    return pd.DataFrame(
        {
            "dt": _days(counted["day"].to_numpy()),
            "brand_id": decode(brands, counted["brand"].to_numpy()),
            "platform": decode(platforms, counted["platform"].to_numpy()),
            "exposed_users": counted["exposed_users"].to_numpy(dtype="int64"),
            "searched_back_users": counted["searched_back_users"].to_numpy(dtype="int64"),
        }
    )


def _day_numbers(days: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of an Arrow date32 column."""
    return np.asarray(pa.array(days).cast(pa.int32()).to_numpy(zero_copy_only=False), dtype="int64")


def _days(numbers: np.ndarray) -> pd.Series:
    """Arrow date32 from days since 1970-01-01."""
    return pd.Series(
        pd.arrays.ArrowExtensionArray(pa.array(numbers.astype("int32")).view(pa.date32()))
    )


def brand_daily(
    days: pd.Series,
    brands: pd.DataFrame,
    touches: pd.DataFrame,
    pairs: pd.DataFrame,
    seeded: pd.DataFrame,
    uplift: pd.DataFrame,
    orders: pd.DataFrame,
    credits: pd.DataFrame,
    codes: tuple[pd.Index, pd.Index],
    params: FunnelParams,
) -> pd.DataFrame:
    """agg_brand_funnel_daily rows (without is_final / run_id).

    ``seeded``: brand-level seeded units (``uplift.brand_units``); ``uplift``: agg_conversion_uplift
    rows, whose brand-level slices all / platform are the daily table's uplift counts; ``codes``:
    (users, brands) as exposure_counts reads them.
    """
    grid = (
        pd.DataFrame({"dt": days})
        .merge(
            pd.DataFrame({"brand_id": brands["brand_id"].drop_duplicates().astype("str")}),
            how="cross",
        )
        .merge(pd.DataFrame({"platform": PLATFORM_ROWS}), how="cross")
    )
    brand_rows = uplift.loc[
        (uplift["level"] == "brand").to_numpy(dtype=bool)
        & uplift["slice"].isin(["all", "platform"]).to_numpy(dtype=bool),
        ["dt", "subject_id", "slice_value", *COUNTS],
    ]
    brand_rows = brand_rows.rename(columns={"subject_id": "brand_id", "slice_value": "platform"})

    seeded_users = _with_all(seeded.rename(columns={"platform": "lt_platform"}), "lt_platform")
    search_back = (
        seeded_users[["dt", "subject_id", "platform", "user_id"]]
        .drop_duplicates()
        .groupby(["dt", "subject_id", "platform"], sort=False)
        .size()
        .rename("search_back_users")
        .reset_index()
        .rename(columns={"subject_id": "brand_id"})
    )
    sold = (
        _with_all(
            orders[["dt", "brand_id", "last_touch_platform", "amount_fen"]], "last_touch_platform"
        )
        .groupby(KEY, sort=False)
        .agg(seeded_orders=("amount_fen", "size"), seeded_gmv_fen=("amount_fen", "sum"))
        .reset_index()
    )
    credit_rows = credits[["dt", "brand_id", "platform", "model", "credit_fen"]]
    credited = (
        _with_all(credit_rows.rename(columns={"platform": "touch_platform"}), "touch_platform")
        .groupby([*KEY, "model"], sort=False)["credit_fen"]
        .sum()
        .unstack("model")
        .rename(columns=lambda m: f"attributed_gmv_{m}_fen")
        .reset_index()
    )
    credited.columns.name = None
    out = grid
    for part in (
        exposure_counts(touches, pairs, *codes, params),
        search_back,
        brand_rows,
        sold,
        credited,
    ):
        out = out.merge(part, on=KEY, how="left")
    for c in ADDITIVE:
        if c not in out.columns:
            out[c] = 0
        if c.startswith("attributed_gmv_"):
            out[c] = out[c].fillna(0.0).astype("float64")
        else:
            out[c] = out[c].fillna(0).astype("int64")
    return finish(out)
