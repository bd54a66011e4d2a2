"""SPEC 5.9: agg_brand_funnel_daily, dense over days x brands x (five platforms + 'all')."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schemas
from ..settings import FunnelParams
from .prepare import merge_asof
from .uplift import slice_counts, with_uplift

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
    touches: pd.DataFrame, pairs: pd.DataFrame, params: FunnelParams
) -> pd.DataFrame:
    """exposed_users and searched_back_users per (touch day, brand, platform or 'all')."""
    seed_window = pd.Timedelta(params.seed_window)
    keys = ["dt", "brand_id", "user_id", "category_id"]
    per_platform = (
        touches.groupby([*keys, "platform"], sort=False)["touch_at"]
        .min()
        .rename("first_at")
        .reset_index()
    )
    # The first touch of the day over all platforms is the earliest of the per-platform firsts.
    overall = per_platform.groupby(keys, sort=False)["first_at"].min().reset_index()
    first = pd.concat([per_platform, overall.assign(platform=schemas.ALL)], ignore_index=True)
    # A search of c(b) in (t_first, t_first + W] is seeded for b by that very first touch.
    searches = pairs[["user_id", "category_id", "searched_at"]].drop_duplicates()
    first = merge_asof(
        first.sort_values("first_at", kind="stable"),
        searches.sort_values("searched_at", kind="stable"),
        left_on="first_at",
        right_on="searched_at",
        by=["user_id", "category_id"],
        direction="forward",
        allow_exact_matches=False,
    )
    first["searched_back"] = (
        first["searched_at"].notna() & (first["searched_at"] <= first["first_at"] + seed_window)
    ).to_numpy(dtype=bool)
    return (
        first.groupby(KEY, sort=False)
        .agg(exposed_users=("user_id", "size"), searched_back_users=("searched_back", "sum"))
        .reset_index()
    )


def brand_daily(
    days: pd.Series,
    brands: pd.DataFrame,
    touches: pd.DataFrame,
    pairs: pd.DataFrame,
    brand_level: tuple[pd.DataFrame, pd.DataFrame],
    orders: pd.DataFrame,
    credits: pd.DataFrame,
    params: FunnelParams,
) -> pd.DataFrame:
    """agg_brand_funnel_daily rows (without is_final / run_id)."""
    grid = (
        pd.DataFrame({"dt": days})
        .merge(
            pd.DataFrame({"brand_id": brands["brand_id"].drop_duplicates().astype("str")}),
            how="cross",
        )
        .merge(pd.DataFrame({"platform": PLATFORM_ROWS}), how="cross")
    )
    seeded, totals = brand_level
    day_brand = (
        grid[["dt", "brand_id"]].drop_duplicates().rename(columns={"brand_id": "subject_id"})
    )
    uplift = slice_counts(day_brand, seeded, totals)
    uplift = uplift.loc[uplift["slice"].isin(["all", "platform"])]
    uplift = uplift.rename(columns={"subject_id": "brand_id", "slice_value": "platform"}).drop(
        columns="slice"
    )

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
    for part in (exposure_counts(touches, pairs, params), search_back, uplift, sold, credited):
        out = out.merge(part, on=KEY, how="left")
    for c in ADDITIVE:
        if c not in out.columns:
            out[c] = 0
        if c.startswith("attributed_gmv_"):
            out[c] = out[c].fillna(0.0).astype("float64")
        else:
            out[c] = out[c].fillna(0).astype("int64")
    return finish(out)
