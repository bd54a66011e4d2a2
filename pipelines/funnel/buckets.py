"""User buckets: split inputs by user, compute each bucket alone, merge to exactly the one-bucket result.

Every fact is per user and distinct-user counts add up over disjoint user sets, so the reduce step
concatenates facts, sums the additive counts of the aggregates and recomputes every ratio from them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .. import schemas
from .daily import ADDITIVE as DAILY_ADDITIVE
from .daily import finish as finish_daily
from .inputs import FunnelInputs
from .prepare import link_winners
from .uplift import COUNTS, with_uplift

HASH_KEY = "seedfunnel000000"  # 16 bytes: SipHash key, fixed so buckets never move between runs


def bucket_of(user_ids: pd.Series, n: int) -> np.ndarray:
    """Stable bucket 0..n-1 of each user id (SipHash with a fixed key, mod n)."""
    if n < 1:
        raise ValueError(f"bucket count must be >= 1, got {n}")
    hashed = pd.util.hash_array(
        pd.Series(user_ids).to_numpy(dtype=object), hash_key=HASH_KEY, categorize=True
    )
    return (hashed % np.uint64(n)).astype("int64")


def split_inputs(inputs: FunnelInputs, n: int) -> list[FunnelInputs]:
    """The inputs split into n disjoint user buckets; notes and reference data go to every bucket."""
    if n == 1:
        return [inputs]
    # An ext id goes with the bucket of its winning claim's user, so each bucket resolves every
    # link exactly as the whole would; ext ids with no claim make no touch and stay in bucket 0.
    winners = link_winners(inputs.id_links)
    ext_bucket = winners[["platform", "ext_user_id"]].assign(
        bucket=bucket_of(winners["user_id"], n)
    )

    def by_ext(df: pd.DataFrame) -> np.ndarray:
        keyed = df[["platform", "ext_user_id"]].merge(
            ext_bucket, on=["platform", "ext_user_id"], how="left"
        )
        return keyed["bucket"].fillna(0).to_numpy(dtype="int64")

    link_bucket = by_ext(inputs.id_links)
    exposure_bucket = by_ext(inputs.exposures)
    search_bucket = bucket_of(inputs.searches["user_id"], n)
    order_bucket = bucket_of(inputs.orders["user_id"], n)
    parts = []
    for b in range(n):
        searches = inputs.searches.loc[search_bucket == b]
        categories = inputs.search_categories
        parts.append(
            replace(
                inputs,
                id_links=inputs.id_links.loc[link_bucket == b],
                exposures=inputs.exposures.loc[exposure_bucket == b],
                searches=searches,
                search_categories=categories.loc[
                    categories["search_id"].isin(searches["search_id"])
                ],
                orders=inputs.orders.loc[order_bucket == b],
            )
        )
    return parts


def _sum_counts(
    frames: list[pd.DataFrame], table: schemas.Table, additive: list[str]
) -> pd.DataFrame:
    """Per key of ``table``: additive columns summed, the others taken from the first part."""
    key = list(table.key)
    stacked = pd.concat(frames, ignore_index=True)
    rest = [c for c in table.names if c not in key and c not in additive]
    grouped = stacked.groupby(key, sort=False, dropna=False)
    out = grouped[additive].sum().join(grouped[rest].first()).reset_index()
    return out


def merge_outputs(parts: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The one-bucket result from per-bucket results: facts concatenated, aggregates re-derived."""
    if not parts:
        raise ValueError("merge_outputs needs at least one bucket's output")
    out: dict[str, pd.DataFrame] = {}
    for table in schemas.FUNNEL_TABLES:
        frames = [p[table.name] for p in parts]
        if table is schemas.AGG_BRAND_FUNNEL_DAILY:
            merged = finish_daily(_sum_counts(frames, table, DAILY_ADDITIVE))
        elif table is schemas.AGG_CONVERSION_UPLIFT:
            merged = with_uplift(_sum_counts(frames, table, COUNTS))
        else:
            # Per-user tables (boost ranks are per user too): buckets hold disjoint rows.
            merged = pd.concat(frames, ignore_index=True)
        merged = schemas.conform(table, merged)
        out[table.name] = merged.sort_values(list(table.key), kind="stable").reset_index(drop=True)
    return out
