"""SPEC 5.8: the brand boost signal per user and brand as of the end of each day, top N per user."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from ..settings import FunnelParams
from ..timeutil import as_of
from ..windows import window_us
from .attribution import DAY_US
from .prepare import decode, lexsort, run_starts, same_day
from .touches import Linked


@dataclass(frozen=True)
class BoostScope:
    """Which snapshots to compute: every user's from ``all_from`` on; before it, those of
    ``users`` (user ids) from their ``from_dt`` (dates) only. A snapshot is per user, so a
    scoped one equals that user's rows of the whole snapshot."""

    all_from: date
    users: pd.Series
    from_dt: pd.Series

    def first_day(self, users: pd.Index) -> np.ndarray:
        """Per user code of ``users``: the first day (ordinal) its snapshot is computed."""
        out = np.full(len(users), self.all_from.toordinal(), dtype="int64")
        code = users.get_indexer(pd.Index(self.users.astype(str)))
        day = np.array([d.toordinal() for d in self.from_dt], dtype="int64")
        ok = code >= 0
        np.minimum.at(out, code[ok], day[ok])
        return out


def boost_signals(
    linked: Linked, days: Sequence[date], params: FunnelParams, scope: BoostScope | None = None
) -> pd.DataFrame:
    """brand_boost_signals rows (without run_id): the snapshot as of the end of every day in
    ``days`` (ascending, at least one), every exposure kind counted; with a ``scope``, only the
    users it names before its ``all_from``. Sorted by (as_of_dt, user_id, brand_id).

    Each snapshot is vectorised (``_snapshots``); the window of an exposure is the seed window of
    its brand's category (SPEC 5.11; the global one for a brand missing from brands.csv).
    """
    return _frame(linked, list(_snapshots(linked, days, params, scope)))


def boost_days(
    linked: Linked, days: Sequence[date], params: FunnelParams, scope: BoostScope | None = None
) -> Iterator[pd.DataFrame]:
    """The rows of ``boost_signals`` one as-of day at a time, in day order: the same rows, each
    day's frame made only when the one before has been taken (a caller that writes each day away
    holds one day of snapshots, not all of them)."""
    for snapshot in _snapshots(linked, days, params, scope):
        yield _frame(linked, [snapshot])


def _snapshots(
    linked: Linked, days: Sequence[date], params: FunnelParams, scope: BoostScope | None
) -> Iterator[tuple[date, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]:
    """(day, (user, brand, raw, rank) codes) of each day's snapshot, in day order.

    One pass per day over the exposures of its window (found by binary search in the exposures
    sorted by time): the search takes the longest window, then each exposure keeps to its own.
    """
    by_time = np.argsort(linked.t, kind="stable")
    t_sorted = linked.t[by_time]
    reach_us = pd.Timedelta(params.max_seed_window).value // 1_000
    # Per row of the note dimension (note x brand): the seed window of the brand's category.
    own_us = window_us(params, linked.dim["category_id"])[0] if params.category_windows else None
    first_day = scope.first_day(linked.users) if scope is not None else None
    kind_weight = _kind_weights(linked, params)
    pair = linked.user.astype("int64") * len(linked.brands) + linked.brand
    # One sort for every snapshot: by (user, brand), then by log2 of the term as of the last day
    # (log2 of its kind's weight minus its age in half-lives: no underflow however old). A term
    # as of any day is that one times the same factor, so each day's rows, taken in this order,
    # are already in (pair, term) order; _snapshot checks that of the floats it computes and
    # sorts a day again where rounding says otherwise.
    last = as_of(days[-1]).value // 1_000
    with np.errstate(divide="ignore"):
        log_weight = np.log2(kind_weight)
    log_term = log_weight[linked.kind] - (last - linked.t) / DAY_US / params.boost_half_life_days
    order = lexsort((log_term, pair))
    in_window = np.zeros(len(pair), dtype=bool)
    for day in days:
        end = as_of(day).value // 1_000
        lo, hi = np.searchsorted(t_sorted, [end - reach_us, end], side="left")
        rows = by_time[lo:hi]
        if own_us is not None:
            rows = rows[linked.t[rows] >= end - own_us[linked.mention[rows]]]
        if first_day is not None and day < scope.all_from:
            rows = rows[first_day[linked.user[rows]] <= day.toordinal()]
        _check_kinds(linked, rows, params)
        in_window[rows] = True
        snapshot = _snapshot(linked, order[in_window[order]], pair, end, kind_weight, params)
        in_window[rows] = False
        yield day, snapshot


def _frame(linked: Linked, snapshots: list[tuple[date, tuple]]) -> pd.DataFrame:
    """brand_boost_signals rows (without run_id) of the snapshots (at least one), in their order."""
    user, brand, raw, rank = (np.concatenate(column) for column in zip(*(s for _, s in snapshots), strict=True))
    as_of_dt = pd.concat([same_day(day, len(s[0])) for day, s in snapshots], ignore_index=True)
    n = len(user)
    # Already in key order (as_of_dt, user_id, brand_id); "_order" tells publish so.
    return pd.DataFrame(
        {
            "as_of_dt": as_of_dt,
            "user_id": decode(linked.users, user),
            "brand_id": decode(linked.brands, brand),
            "raw": raw,
            "score": 1.0 - np.exp(-raw),
            "rank": rank,
            "_order": np.arange(n),
        }
    )


def _kind_weights(linked: Linked, params: FunnelParams) -> np.ndarray:
    """The weight of each exposure kind code (NaN for a kind without one)."""
    return np.array([params.kind_weight.get(k, np.nan) for k in linked.kinds], dtype="float64")


def _check_kinds(linked: Linked, rows: np.ndarray, params: FunnelParams) -> None:
    present = np.flatnonzero(np.bincount(linked.kind[rows], minlength=len(linked.kinds)))
    unknown = sorted(set(linked.kinds[present]) - set(params.kind_weight))
    if unknown:
        raise ValueError(f"boost: no kind weight for exposure kind(s) {unknown}")


def _contributions(linked: Linked, rows: np.ndarray, end: int, kind_weight: np.ndarray, params: FunnelParams) -> np.ndarray:
    """SPEC 5.8: each exposure's term as of ``end`` (UTC microseconds), halving every half-life."""
    age_days = (end - linked.t[rows]) / DAY_US
    return kind_weight[linked.kind[rows]] * np.exp2(-age_days / params.boost_half_life_days)


def _snapshot(
    linked: Linked, rows: np.ndarray, pair: np.ndarray, end: int, kind_weight: np.ndarray, params: FunnelParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user, brand, raw, rank) codes of the top rows per user as of ``end`` (UTC microseconds)
    from the linked exposures ``rows`` (those in ``[end - seed_window(c(b)), end)``), best given
    in (user, brand) order and, within a pair, in ascending contribution (any other order is
    sorted so first); returned in (user, brand) order."""
    contribution = _contributions(linked, rows, end, kind_weight, params)
    keys = pair[rows]
    # Terms summed in ascending order, always the same way: equal multisets of terms give equal
    # floats, so rank ties are true ties. Equal terms may come in any order.
    step = keys[1:] - keys[:-1]
    if np.any((step < 0) | ((step == 0) & (contribution[1:] < contribution[:-1]))):
        order = lexsort((contribution, keys))
        rows, keys, contribution = rows[order], keys[order], contribution[order]
    starts = run_starts(keys)
    raw = _sequential_sums(contribution, starts)
    user, brand = linked.user[rows[starts]], linked.brand[rows[starts]]
    score = 1.0 - np.exp(-raw)
    # Rank per user: highest score first, ties to the smaller brand_id (codes follow string order;
    # the rows are in (user, brand) order and the sort is stable).
    order = lexsort((-score, user))
    first = np.zeros(len(order), dtype=bool)
    first[run_starts(user[order])] = True
    position = np.arange(len(order))
    rank = np.empty(len(order), dtype="int64")
    rank[order] = position - np.maximum.accumulate(np.where(first, position, 0)) + 1
    keep = np.flatnonzero(rank <= params.boost_top_n)  # still (user, brand) order
    return user[keep], brand[keep], raw[keep], rank[keep]


def _sequential_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of each run values[starts[i]:starts[i+1]] (``np.add.reduceat``: the same sequence of
    values always gives the same float)."""
    if not len(values):
        return np.zeros(0, dtype="float64")
    return np.add.reduceat(values, starts)


def score_edges() -> np.ndarray:
    """The edges of agg_boost_scores' bins: k / n for k = 0..n (n = ``schemas.BOOST_SCORE_BINS``)."""
    return np.arange(schemas.BOOST_SCORE_BINS + 1) / schemas.BOOST_SCORE_BINS


def score_distribution(boost: pa.Table | pd.DataFrame, run_id: str) -> pd.DataFrame:
    """agg_boost_scores rows of every as-of day in ``boost`` (brand_boost_signals rows, whole days).

    Per day: the signals in each of the ``schemas.BOOST_SCORE_BINS`` (n) bins [k/n, (k+1)/n), the
    last one [(n-1)/n, 1] (a score outside [0, 1] in none), the day's signals, its users (rows of
    rank 1) and the median score (the mean of the middle two for an even count). A day without
    rows has none.
    """
    t = schemas.AGG_BOOST_SCORES
    if isinstance(boost, pd.DataFrame):
        boost = pa.Table.from_pandas(boost[["as_of_dt", "score", "rank"]], preserve_index=False)
    bins = schemas.BOOST_SCORE_BINS
    edges = score_edges()
    ordinal = pc.cast(boost.column("as_of_dt"), pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
    score = boost.column("score").to_numpy(zero_copy_only=False).astype("float64", copy=False)
    rank = boost.column("rank").to_numpy(zero_copy_only=False)
    if np.any(ordinal[1:] < ordinal[:-1]):  # marts days come in day order: no sort then
        order = np.argsort(ordinal, kind="stable")
        ordinal, score, rank = ordinal[order], score[order], rank[order]
    starts = run_starts(ordinal)
    days, n = ordinal[starts], len(starts)
    day_signals = np.diff(np.append(starts, len(ordinal)))
    day = np.repeat(np.arange(n), day_signals)
    inside = (score >= edges[0]) & (score <= edges[-1])
    at = np.minimum(np.searchsorted(edges, score[inside], side="right") - 1, bins - 1)
    signals = np.bincount(day[inside] * bins + at, minlength=n * bins)
    day_users = np.bincount(day[rank == 1], minlength=n)
    median = np.empty(n)
    for i, (lo, size) in enumerate(zip(starts, day_signals, strict=True)):  # a few days, not rows
        middle = ((size - 1) // 2, size // 2)
        part = np.partition(score[lo : lo + size], middle)
        median[i] = (part[middle[0]] + part[middle[1]]) / 2
    per_bin = np.repeat(np.arange(n), bins)
    low, high = np.tile(edges[:-1], n), np.tile(edges[1:], n)
    frame = pa.table(
        {
            "as_of_dt": pa.array(days.astype("int32")[per_bin]).view(pa.date32()),
            "bin_low": low,
            "bin_high": high,
            "signals": signals.astype("int64"),
            "day_signals": day_signals[per_bin].astype("int64"),
            "day_users": day_users[per_bin].astype("int64"),
            "day_median_score": median[per_bin],
            "run_id": pa.array([run_id] * len(per_bin), pa.string()),
        }
    ).to_pandas(types_mapper={pa.date32(): pd.ArrowDtype(pa.date32())}.get)
    return schemas.conform(t, frame)
