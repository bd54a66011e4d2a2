"""SPEC 5.10: the activity stratum of every search pair, and the Mantel-Haenszel risk ratio over strata.

A unit's stratum is (its brand, or its category at category level; the user's activity band; whether
the user has a paid order in the pair's category). Activity is the searching user's distinct
searches in ``[t_s - activity_window, t_s)``, banded; the order flag looks at
orders whose latest version is paid, of a brand of the pair's category (brands.csv), paid in the same
window. Both depend on the pair (s, c) only, so every brand of c shares its pair's stratum.
Activity bands are declared once, as the labels of ``schemas.ACTIVITY_BANDS``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import schemas
from ..settings import FunnelParams
from .prepare import as_of_positions, sorted_ids

#: The normal quantile of every 95% interval of SPEC 5.7 and 5.10.
Z = 1.96
#: The activity bands of SPEC 5.10 ("0", "1-2", "3-5", "6-10", "11+"), declared in ``schemas``.
ACTIVITY_LABELS: tuple[str, ...] = schemas.ACTIVITY_BANDS
#: The lowest count of each band, read from its label: a band runs up to the next one's low.
ACTIVITY_LOWS: tuple[int, ...] = schemas.activity_band_lows()
#: The stratum columns of agg_uplift_strata, after the subject's keys.
STRATUM: list[str] = ["stratum_id", "activity", "has_recent_order"]
#: The adjusted figures agg_conversion_uplift carries beside the naive ones.
ADJUSTED: list[str] = ["adjusted_uplift", "adjusted_uplift_ci_low", "adjusted_uplift_ci_high"]


def activity_band(searches: np.ndarray) -> np.ndarray:
    """The band code (index into ACTIVITY_LABELS) of each count of searches."""
    lows = np.asarray(ACTIVITY_LOWS, dtype="int64")
    return np.searchsorted(lows, np.asarray(searches, dtype="int64"), side="right") - 1


def pair_strata(
    pairs: pd.DataFrame, searches: pd.DataFrame, paid: pd.DataFrame, params: FunnelParams
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``pairs``: (activity band code, has a paid order of the category in the window).

    ``searches``: one row per search_id (latest versions), every search of the log whether or not
    its query names a category; ``paid``: paid_orders() (category from brands.csv).
    """
    n = len(pairs)
    if n == 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype=bool)
    window_us = pd.Timedelta(params.activity_window).value // 1_000
    at = _micros(pairs["searched_at"])
    users = sorted_ids(pairs["user_id"])
    user = users.get_indexer(pairs["user_id"])

    # Searches of each user in [t_s - window, t_s): (searches before t_s) - (before t_s - window),
    # each the rank within the user of the latest search strictly before the edge, plus one.
    s_user = users.get_indexer(searches["user_id"])
    mine = s_user >= 0
    s_user, s_at = s_user[mine], _micros(searches["event_time"])[mine]
    order = np.lexsort((s_at, s_user))
    s_user, s_at = s_user[order], s_at[order]
    rank = np.arange(len(s_user)) - np.searchsorted(s_user, s_user, side="left")

    def before(edge: np.ndarray) -> np.ndarray:
        pos = as_of_positions(edge, user, s_at, s_user, "backward", exact=False)
        return np.where(pos >= 0, rank[np.maximum(pos, 0)] + 1, 0) if len(rank) else np.zeros(n, "int64")

    activity = activity_band(before(at) - before(at - window_us))

    # The latest paid order of (user, category) strictly before t_s decides the flag.
    categories = sorted_ids(pairs["category_id"], paid["category_id"])
    width = max(len(categories), 1)
    key = user * width + categories.get_indexer(pairs["category_id"])
    o_user = users.get_indexer(paid["user_id"])
    ok = o_user >= 0
    o_key = o_user[ok] * width + categories.get_indexer(paid["category_id"])[ok]
    o_at = _micros(paid["paid_at"])[ok]
    last = as_of_positions(at, key, o_at, o_key, "backward", exact=False)
    has_order = last >= 0
    has_order[has_order] = o_at[last[has_order]] >= at[has_order] - window_us
    return activity, has_order


def _micros(ts: pd.Series) -> np.ndarray:
    return pd.Series(ts).to_numpy(dtype="datetime64[us]").view("int64")


def mantel_haenszel(strata: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per ``keys`` group of stratum counts: RR_MH with its Greenland-Robins 95% interval (SPEC 5.10).

    Columns read: seeded_pairs (n1), seeded_conversions (a), baseline_pairs (n0),
    baseline_conversions (c). ``R = sum a n0 / N``, ``S = sum c n1 / N``, ``RR = R / S``;
    ``Var(ln RR) = sum (m1 n1 n0 - a c N) / N^2 / (R S)``, whose numerator is computed as
    ``a n1 (n0 - c) + c n0 (n1 - a)`` (the same value, a sum of non-negative terms: no cancellation).
    Null when R or S is 0. Strata are summed in key order, so equal strata give bit-equal figures
    whatever order their rows came in.
    """
    keys = list(keys)
    cols = ["seeded_pairs", "seeded_conversions", "baseline_pairs", "baseline_conversions"]
    df = strata.sort_values([*keys, *STRATUM], kind="stable")
    n1, a, n0, c = (df[k].to_numpy(dtype="float64") for k in cols)
    big_n = n1 + n0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = pd.DataFrame(
            {
                "r": np.where(big_n > 0, a * n0 / big_n, 0.0),
                "s": np.where(big_n > 0, c * n1 / big_n, 0.0),
                "v": np.where(big_n > 0, (a * n1 * (n0 - c) + c * n0 * (n1 - a)) / (big_n * big_n), 0.0),
            }
        )
    for k in keys:
        terms[k] = df[k].to_numpy()
    sums = terms.groupby(keys, sort=False, dropna=False)[["r", "s", "v"]].sum().reset_index()
    r, s, v = (sums[k].to_numpy(dtype="float64") for k in ("r", "s", "v"))
    defined = (r > 0) & (s > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(defined, r / s, np.nan)
        half = Z * np.sqrt(v / (r * s))
        log_ratio = np.log(ratio)
        sums["adjusted_uplift"] = ratio
        sums["adjusted_uplift_ci_low"] = np.where(defined, np.exp(log_ratio - half), np.nan)
        sums["adjusted_uplift_ci_high"] = np.where(defined, np.exp(log_ratio + half), np.nan)
    return sums[[*keys, *ADJUSTED]]
