"""The day arithmetic of SPEC 5's windows: finality and the touches a restatement needs.

Pure functions of ``FunnelParams`` and dates, shared by both funnel engines and the daily runner so
that they never disagree on a day. Windows are durations (``seed_window``, ``conversion_window``);
a window of a row of day d closes at most ``ceil(window)`` days after d, in whole days counted
exactly (no floating-point sums).

A row is final when every window it depends on closed before W, the latest delivery day
(``end`` of an engine call):

- pair metrics (fct_search_pairs, agg_conversion_uplift, agg_uplift_strata) of search day d: final iff
  ``d + ceil(conversion_window) < W``, i.e. ``d < pairs_final_before(params, W)``;
- agg_brand_funnel_daily of day d: final iff ``d + ceil(max(seed_window, conversion_window)) < W``,
  i.e. ``d < daily_final_before(params, W)``.
"""

from __future__ import annotations

from datetime import date, timedelta

from .settings import FunnelParams

_DAY = timedelta(days=1)


def _ceil_days(window: timedelta) -> int:
    """Whole days covering a duration (exact: timedelta arithmetic is in microseconds)."""
    return -(-window // _DAY)


def conversion_days(params: FunnelParams) -> int:
    """ceil(conversion_window) in days: how long a search day's pair metrics stay open."""
    return _ceil_days(params.conversion_window)


def daily_lag_days(params: FunnelParams) -> int:
    """ceil(max(seed_window, conversion_window)) in days: how long a day of
    agg_brand_funnel_daily stays open (its search-back rate looks seed_window ahead)."""
    return _ceil_days(max(params.seed_window, params.conversion_window))


def touch_lookback_days(params: FunnelParams) -> int:
    """ceil(seed_window + conversion_window) in days: restating payment day p needs touches back
    to ``p - this`` (an order pays up to conversion_window after its anchor search, whose eligible
    touches reach seed_window before it)."""
    return _ceil_days(params.seed_window + params.conversion_window)


def pairs_final_before(params: FunnelParams, end: date) -> date:
    """Pair metrics (fct_search_pairs, agg_conversion_uplift, agg_uplift_strata) of day d are final
    iff d < this."""
    return end - timedelta(days=conversion_days(params))


def daily_final_before(params: FunnelParams, end: date) -> date:
    """agg_brand_funnel_daily rows of day d are final iff d < this."""
    return end - timedelta(days=daily_lag_days(params))


# ---------------------------------------------------------------- what a run restates (runner)
# A changed input row of day x can move funnel figures of days >= the day these return; the runner
# restates from the earliest such day through W (and writes only the days that really changed).


def seed_days(params: FunnelParams) -> int:
    """ceil(seed_window) in days."""
    return _ceil_days(params.seed_window)


def affected_by_search(params: FunnelParams, day: date) -> date:
    """A search of ``day`` moves its own pairs and, looking back, the search-back rate of touch
    days up to seed_window before it (SPEC 5.9). Looking forward it moves the activity strata
    (SPEC 5.10) of that user's searches up to activity_window later: those days follow, so
    restating from here covers them."""
    return day - timedelta(days=seed_days(params))


def affected_by_order(params: FunnelParams, day: date) -> date:
    """An order paid on ``day`` moves the conversions of searches up to conversion_window before it,
    and the strata (SPEC 5.10: an order in the category in the activity window) of searches up to
    activity_window after it, which the restatement from here covers."""
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
