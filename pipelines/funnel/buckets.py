"""User buckets: split inputs by user, compute each bucket alone, merge to exactly the one-bucket result.

Every fact is per user and distinct-user counts add up over disjoint user sets, so the reduce step
concatenates facts, sums the additive counts of the aggregates and recomputes every ratio from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from .daily import ADDITIVE as DAILY_ADDITIVE
from .daily import finish as finish_daily
from .inputs import FunnelInputs
from .prepare import link_winners
from .uplift import COUNTS, with_adjusted, with_uplift

HASH_KEY = "seedfunnel000000"  # 16 bytes: SipHash key, fixed so buckets never move between runs


def bucket_of(user_ids: pd.Series, n: int) -> np.ndarray:
    """Stable bucket 0..n-1 of each user id (SipHash with a fixed key, mod n)."""
    if n < 1:
        raise ValueError(f"bucket count must be >= 1, got {n}")
    hashed = pd.util.hash_array(
        pd.Series(user_ids).to_numpy(dtype=object), hash_key=HASH_KEY, categorize=True
    )
    return (hashed % np.uint64(n)).astype("int64")


def ext_buckets(id_links: pd.DataFrame, n: int) -> pd.DataFrame:
    """(platform, ext_user_id, bucket): an ext id goes with the bucket of its winning claim's user.

    So each bucket resolves every link of its ext ids exactly as the whole would.
    """
    winners = link_winners(id_links)
    return winners[["platform", "ext_user_id"]].assign(bucket=bucket_of(winners["user_id"], n))


def key_buckets(events: pd.DataFrame, key: str, n: int) -> np.ndarray:
    """Bucket of each row of a versioned event table (searches, orders): that of the user its key's
    latest delivery names, so every version of a key lands in one bucket and each bucket resolves
    versions exactly as the whole would (even when a later version names another user).
    """
    newest = events.sort_values("dt", kind="stable").drop_duplicates(key, keep="last")
    at = pd.Index(newest[key]).get_indexer(events[key])
    return bucket_of(newest["user_id"], n)[at]


@dataclass(frozen=True)
class BucketKeys:
    """The external ids of one bucket, as lookup sets: the ext ids alone, and (platform, ext id) keys."""

    ext_ids: pa.Array
    keys: pa.Array

    @classmethod
    def of(cls, ext_bucket: pd.DataFrame, bucket: int) -> BucketKeys:
        mine = ext_bucket.loc[ext_bucket["bucket"].to_numpy() == bucket]
        return cls(_arrow(mine["ext_user_id"]), _key(_arrow(mine["platform"]), _arrow(mine["ext_user_id"])))

    def mask(self, platform, ext_user_id) -> np.ndarray:
        """True where a row's (platform, ext_user_id) is one of the bucket's (pandas or Arrow columns).

        A cheap pass on the ext id alone, then an exact pass on (platform, ext id) over the few
        candidates: the large event files are hashed once against a set 1/n of the ids.
        """
        ext = _arrow(ext_user_id)
        candidate = _true(pc.is_in(ext, value_set=self.ext_ids))
        exact = _true(pc.is_in(_key(_arrow(platform).take(candidate), ext.take(candidate)), value_set=self.keys))
        out = np.zeros(len(ext), dtype=bool)
        out[candidate[exact]] = True
        return out


def _true(mask: pa.Array) -> np.ndarray:
    """Positions where a boolean Arrow array is true (null counts as false)."""
    return np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))


def _key(platform: pa.Array, ext: pa.Array) -> pa.Array:
    """platform + U+001F + ext id: unambiguous, platforms being an enumeration without that character."""
    return pc.binary_join_element_wise(platform, ext, pa.scalar("\x1f", pa.large_string()))


def _arrow(values) -> pa.Array:
    """A string column as one Arrow array (pandas ``str`` columns convert without copying)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    arr = values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True)
    return arr.cast(pa.large_string())


def split_inputs(inputs: FunnelInputs, n: int) -> list[FunnelInputs]:
    """The inputs split into n disjoint user buckets; notes and reference data go to every bucket.

    Exposures of ext ids that no link claim names go to no bucket: they make no touch anywhere.
    Searches and orders go with the user of their key's latest version (``key_buckets``).
    ``runner.load_inputs(..., bucket=b, buckets=n)`` reads bucket b alone from the lake, by the
    same rules.
    """
    if n == 1:
        return [inputs]
    ext_bucket = ext_buckets(inputs.id_links, n)
    search_bucket = key_buckets(inputs.searches, "search_id", n)
    order_bucket = key_buckets(inputs.orders, "order_id", n)
    parts = []
    for b in range(n):
        keys = BucketKeys.of(ext_bucket, b)
        searches = inputs.searches.loc[search_bucket == b]
        categories = inputs.search_categories
        links, exposures = inputs.id_links, inputs.exposures
        parts.append(
            replace(
                inputs,
                id_links=links.loc[keys.mask(links["platform"], links["ext_user_id"])],
                exposures=exposures.loc[keys.mask(exposures["platform"], exposures["ext_user_id"])],
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


#: The tables whose buckets' rows of one key are summed (the others are per user: buckets hold
#: disjoint rows, concatenated).
AGGREGATES = (schemas.AGG_BRAND_FUNNEL_DAILY, schemas.AGG_UPLIFT_STRATA, schemas.AGG_CONVERSION_UPLIFT)


def merge_table(
    table: schemas.Table, frames: list[pd.DataFrame], strata: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One table of the one-bucket result from its per-bucket frames.

    agg_conversion_uplift's adjusted figures are not additive: they are recomputed from the merged
    agg_uplift_strata, which ``strata`` must then be (``merge_table(AGG_UPLIFT_STRATA, ...)``).
    """
    if table is schemas.AGG_BRAND_FUNNEL_DAILY:
        merged = finish_daily(_sum_counts(frames, table, DAILY_ADDITIVE))
    elif table is schemas.AGG_UPLIFT_STRATA:
        merged = _sum_counts(frames, table, COUNTS)
    elif table is schemas.AGG_CONVERSION_UPLIFT:
        if strata is None:
            raise ValueError("merging agg_conversion_uplift needs the merged agg_uplift_strata")
        merged = with_adjusted(with_uplift(_sum_counts(frames, table, COUNTS)), strata)
    else:
        # Per-user tables (boost ranks are per user too): buckets hold disjoint rows.
        merged = pd.concat(frames, ignore_index=True)
    merged = schemas.conform(table, merged)
    return merged.sort_values(list(table.key), kind="stable").reset_index(drop=True)


def merge_outputs(parts: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The one-bucket result from per-bucket results: facts concatenated, aggregates re-derived."""
    if not parts:
        raise ValueError("merge_outputs needs at least one bucket's output")
    strata = merge_table(schemas.AGG_UPLIFT_STRATA, [p[schemas.AGG_UPLIFT_STRATA.name] for p in parts])
    return {
        t.name: strata
        if t is schemas.AGG_UPLIFT_STRATA
        else merge_table(t, [p[t.name] for p in parts], strata)
        for t in schemas.FUNNEL_TABLES
    }
