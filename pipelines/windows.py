"""The day arithmetic of SPEC 5's windows: finality and the touches a restatement needs.

Pure functions of ``FunnelParams`` and dates, shared by both funnel engines and the daily runner so
that they never disagree on a day. Windows are durations (``seed_window``, ``conversion_window``);
a window of a row of day d closes at most ``ceil(window)`` days after d, in whole days counted
exactly (no floating-point sums).

Windows may be set per category (SPEC 5.11, ``FunnelParams.category_windows``): a row with a brand
or category follows the windows of its category (``window_us`` gives them per row). Everything that
is not one row's (the lookbacks and restatement reach of the runner) takes the longest window of any
category, and so does a row that pools every category (level ``all``) or has none: the functions
below take ``category_id=None`` to mean that reach.

A row is final when every window it depends on closed before W, the latest delivery day
(``end`` of an engine call):

- pair metrics (fct_search_pairs, agg_conversion_uplift, agg_uplift_strata) of search day d and
  category c: final iff ``d + ceil(conversion_window(c)) < W``, i.e.
  ``d < pairs_final_before(params, W, c)`` (``pairs_final`` per row);
- agg_brand_funnel_daily of day d and brand b: final iff
  ``d + ceil(max(seed_window(c(b)), conversion_window(c(b)))) < W``, i.e.
  ``d < daily_final_before(params, W, c(b))`` (``daily_final`` per row).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pandas as pd

from .settings import FunnelParams
from .timeutil import day_numbers

_DAY = timedelta(days=1)
_US = timedelta(microseconds=1)
_EPOCH = date(1970, 1, 1)


def _ceil_days(window: timedelta) -> int:
    """Whole days covering a duration (exact: timedelta arithmetic is in microseconds)."""
    return -(-window // _DAY)


def _windows(params: FunnelParams, category_id: str | None) -> list[tuple[timedelta, timedelta]]:
    """The (seed, conversion) windows a row of ``category_id`` depends on: its category's; None:
    every category's (a row pooling them all, or the reach of a restatement)."""
    return params.all_windows() if category_id is None else [params.windows_of(category_id)]


def window_us(params: FunnelParams, category_ids) -> tuple[np.ndarray, np.ndarray]:
    """(seed_window, conversion_window) in int64 microseconds per row of ``category_ids``: the
    windows of the row's category (SPEC 5.11), the global ones where it names none (null) or one
    without windows of its own. Pass the categories of brands (brands.csv) for per-brand arrays."""
    seed, conv = params.windows_of(None)
    n = len(category_ids)
    if not params.category_windows:
        return np.full(n, seed // _US, dtype="int64"), np.full(n, conv // _US, dtype="int64")
    codes, uniques = pd.factorize(pd.Series(category_ids, dtype=object), use_na_sentinel=True)
    # Code -1 (null) takes the last entry: the global windows.
    table = [params.windows_of(c) for c in uniques] + [(seed, conv)]
    seeds = np.array([s // _US for s, _ in table], dtype="int64")
    convs = np.array([c // _US for _, c in table], dtype="int64")
    return seeds[codes], convs[codes]


def conversion_days(params: FunnelParams, category_id: str | None = None) -> int:
    """ceil(conversion_window) in days: how long a search day's pair metrics of ``category_id``
    stay open (None: of any category)."""
    return max(_ceil_days(conv) for _, conv in _windows(params, category_id))


def daily_lag_days(params: FunnelParams, category_id: str | None = None) -> int:
    """ceil(max(seed_window, conversion_window)) in days: how long a day of
    agg_brand_funnel_daily of a brand of ``category_id`` stays open (its search-back rate looks
    seed_window ahead; None: of any category)."""
    return max(_ceil_days(max(seed, conv)) for seed, conv in _windows(params, category_id))


def touch_lookback_days(params: FunnelParams) -> int:
    """ceil(seed_window + conversion_window) in days, the longest of any category: restating
    payment day p needs touches back to ``p - this`` (an order pays up to conversion_window after
    its anchor search, whose eligible touches reach seed_window before it)."""
    return max(_ceil_days(seed + conv) for seed, conv in params.all_windows())


def pairs_final_before(params: FunnelParams, end: date, category_id: str | None = None) -> date:
    """Pair metrics (fct_search_pairs, agg_conversion_uplift, agg_uplift_strata) of day d of
    ``category_id`` are final iff d < this (None: of every category, e.g. level all)."""
    return end - timedelta(days=conversion_days(params, category_id))


def daily_final_before(params: FunnelParams, end: date, category_id: str | None = None) -> date:
    """agg_brand_funnel_daily rows of day d of a brand of ``category_id`` are final iff d < this
    (None: of every category: the first day some row may still be open)."""
    return end - timedelta(days=daily_lag_days(params, category_id))


def _final(
    lag: Callable[[FunnelParams, str | None], int], params: FunnelParams, end: date, dt: pd.Series, category_ids
) -> np.ndarray:
    """Per row: day ``dt`` + lag(its category) < end (a null category: the longest lag)."""
    day = day_numbers(dt).astype("int64")
    last = (end - _EPOCH).days
    if not params.category_windows:
        return day + lag(params, None) < last
    codes, uniques = pd.factorize(pd.Series(category_ids, dtype=object), use_na_sentinel=True)
    lags = np.array([lag(params, c) for c in uniques] + [lag(params, None)], dtype="int64")
    return day + lags[codes] < last


def pairs_final(params: FunnelParams, end: date, dt: pd.Series, category_ids) -> np.ndarray:
    """is_final of pair-metric rows of days ``dt`` and categories ``category_ids`` (null: a row of
    every category)."""
    return _final(conversion_days, params, end, dt, category_ids)


def daily_final(params: FunnelParams, end: date, dt: pd.Series, category_ids) -> np.ndarray:
    """is_final of agg_brand_funnel_daily rows of days ``dt`` whose brands have ``category_ids``."""
    return _final(daily_lag_days, params, end, dt, category_ids)


# ---------------------------------------------------------------- what a run restates (runner)
# A changed input row of day x can move funnel figures of days >= the day these return; the runner
# restates from the earliest such day through W (and writes only the days that really changed).


def seed_days(params: FunnelParams) -> int:
    """ceil(seed_window) in days, the longest of any category."""
    return _ceil_days(params.max_seed_window)


def affected_by_search(params: FunnelParams, day: date) -> date:
    """A search of ``day`` moves its own pairs and, looking back, the search-back rate of touch
    days up to seed_window (of any category) before it (SPEC 5.9). Looking forward it moves the
    activity strata (SPEC 5.10) of that user's searches up to activity_window later: those days
    follow, so restating from here covers them."""
    return day - timedelta(days=seed_days(params))


def affected_by_order(params: FunnelParams, day: date) -> date:
    """An order paid on ``day`` moves the conversions of searches up to conversion_window (of any
    category) before it, and the strata (SPEC 5.10: an order in the category in the activity
    window) of searches up to activity_window after it, which the restatement from here covers."""
    return day - timedelta(days=conversion_days(params))


def activity_days(params: FunnelParams) -> int:
    """ceil(activity_window) in days: the strata of SPEC 5.10 of a search on day d count the
    user's searches and category orders back to ``d - this``."""
    return _ceil_days(params.activity_window)


def event_lookback_days(params: FunnelParams) -> int:
    """Days of events before the first restated day that a restatement reads: the touches of
    ``touch_lookback_days``, and the searches and orders of ``activity_days`` (SPEC 5, Arrival:
    the strata need searches and orders back to t_s - 14 days), whichever reaches further."""
    return max(touch_lookback_days(params), activity_days(params))


def restate_start(params: FunnelParams, pending: date | None, computed_through: date | None, latest: date) -> date | None:
    """The first day a run recomputes: the earliest day pending changes affect and, when W moved
    past the last computation's, every day whose finality the move can flip (the new days follow)."""
    starts = [d for d in (pending,) if d is not None]
    if computed_through is not None and latest > computed_through:
        starts.append(computed_through - timedelta(days=daily_lag_days(params)))
    return min(starts) if starts else None
