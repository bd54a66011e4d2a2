"""SPEC 5.11: data-driven channel attribution (Markov removal effects, Shapley values) beside the
heuristic models of 5.6, with 95% intervals from a bootstrap over users. Pure functions, no I/O.

The rules below are the contract (docs quote them).

**Channels.** Kind ``platform``: the touch's platform. ``vertical``: its author's vertical (null ->
``unknown``). ``creator``: its ``author_id`` (callers that need creators unique across platforms
pass ``platform:author_id``). Per kind at most ``max_channels`` channels are kept: those with the
most touches in the units below (ties: the smaller name); the others pool into ``(other)``.

**Units (paths)** over the reporting window (the caller passes the window's touches and the
eligible touches of the window's seeded orders):

- one *converting* path per seeded order: the channels of its eligible touches in touch_seq order;
- one *non-converting* path per (user_id, brand_id) with touches but no seeded order: the channels of
  its touches in (touch_at, platform, note_id) order.

Each path belongs to its user_id; users are the unit of the bootstrap.

**Markov.** A k-order chain whose transient states are the last k channels (padded with a start
symbol; the start state is k start symbols) and whose absorbing states are conversion (a converting
path's end) and null (a non-converting path's end). Transition probabilities are the (weighted)
transition counts over the paths, normalised per state (no smoothing). P(conv) from the start
state is ``x[start]`` with ``(I - Q) x = r``, solved exactly (a dense inverse of I - Q up to 5000
states, sparse LU beyond). The removal effect of channel c is ``1 - P_c / P(conv)``, P_c being
P(conv) when every state whose k channels contain c leads to null instead (0 when P(conv) = 0;
clipped to [0, 1] against rounding). k is chosen among ``markov_orders`` (1, 2, 3): users whose
stable hash of user_id falls in the lowest ``holdout_share`` (20%) are held out, the chain is fitted
on the other users' paths with add-alpha smoothing (``alpha`` 0.5) over the next symbol (every
channel, conversion, null), and the k with the largest held-out log-likelihood per transition wins
(ties: the smaller k; the smallest candidate when either side is empty). A k whose distinct states
(over all paths) reach ``max_states`` (2000: the dense solve costs states**3 per fit and per
replicate) is not a candidate, nor is any larger k; the smallest candidate always is. The chosen k
is reported per channel kind and used by the final fit over all paths and by every replicate.

**Shapley.** For a seeded order whose path has channel set P, the Shapley values over the players
P of ``v(S)`` = conversion rate of the paths whose channel set is a non-empty subset of S (0 when
there is none; ``v(empty) = 0``). Exact enumeration of the subsets when ``|P| <= shapley_exact_max``
(12); beyond that the mean marginal contribution over ``shapley_permutations`` random orderings of
P (a generator seeded with a fixed constant and the set itself: a pure function of the data), with
standard error ``sd / sqrt(permutations)``; ``shapley_max_se`` reports the largest over every
sampled (order set, channel) of the full fit, 0 when all are exact. v is computed once per distinct
channel set, not per order.

**Per-order split** (both data-driven models). The order's amount is split over the distinct
channels of its path in proportion to the model's weights (Markov: the channels' removal effects;
Shapley: the order's Shapley values), clipped at 0; if all are 0, equally. Each channel's part is
then split equally over that channel's touches in the order. So an order's credits sum to its
amount_fen (to float rounding), as for the heuristic models.

**Heuristic models** (last_touch, first_touch, linear, time_decay, position_based): a channel's
credit is the sum of the given per-touch credits (fct_attribution_credits) of its touches.

**Shares and intervals.** Every channel of the kind's paths gets a row per model (0 credit
included). share = channel credit / the model's credit over every channel of the kind (null when
that is 0). Intervals are 95% percentile intervals over ``replicates`` bootstrap replicates that
resample users with Poisson(1) weights (``bootstrap_weights``). A replicate re-fits both data-driven
models on the weighted paths (weighted transition counts, weighted conversion rates, the same k and
channels), re-splits every order and weights its credits by its user's weight; a heuristic
replicate credit is the weighted sum of the touch credits. Replicate credits are kept per (model,
kind, channel) for other estimators (cost, ROAS) to reuse with the same weights. Without
replicates the intervals are null. ``indistinguishable`` lists the channel pairs whose replicate
share difference has a 95% interval containing 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from .. import schemas

CHANNEL_KINDS: tuple[str, ...] = schemas.CHANNEL_KINDS
DATA_DRIVEN: tuple[str, ...] = schemas.DATA_DRIVEN_MODELS
MODELS: tuple[str, ...] = (*schemas.ATTRIBUTION_MODELS, *DATA_DRIVEN)
OTHER = "(other)"
UNKNOWN = "unknown"
LEVEL = 0.95

_SOURCE = {"platform": "platform", "vertical": "vertical", "creator": "author_id"}
_HOLDOUT_KEY = "seedfunnel-hold1"  # 16 bytes: SipHash key of the held-out split, never changes
_WEIGHT_KEY = "seedfunnel-boot1"  # 16 bytes: SipHash key of the bootstrap weights, never changes
_ZOBRIST_SEED = 20_260_511  # channel-set hashing only: any fixed value
_PERMUTATION_SEED = 5_011  # sampled Shapley orderings: fixed, so estimates depend on data only
_DENSE_STATES = 5000  # chains up to this many states are inverted densely (200 MB)
_CHUNK = 1 << 20  # cells per block of the vectorised Shapley and dense Markov work
_CELLS = 1 << 22  # float cells per array of one batch of bootstrap replicates (32 MB)


# ---------------------------------------------------------------- result


@dataclass(frozen=True)
class ChannelAttribution:
    """Every model's split of the window's seeded GMV over channels, with bootstrap replicates.

    - ``channels``: model, channel_kind, channel, credit_fen, share, share_ci_low, share_ci_high
      (every channel of the kind's paths, for every model and kind fitted).
    - ``order_credits``: order_id, touch_seq, model ("markov", "shapley"), channel_kind, channel,
      credit_fen; one row per (eligible touch, data-driven model, kind).
    - ``order_weights``: order_id, model, channel_kind, channel, weight, weight_se: the weight each
      distinct channel of an order had in its split (before clipping); weight_se > 0 only for sampled
      Shapley values.
    - ``removal_effects``: channel_kind, channel, removal_effect (the full Markov fit).
    - ``markov_selection``: channel_kind, k, states, heldout_loglik, chosen (the held-out scores).
    - ``replicate_credits``: (model, kind) -> DataFrame indexed by channel (the rows of
      ``channels``) with one column per replicate: the attributed credit in fen.
    - ``markov_order``: kind -> chosen k; ``shapley_max_se``: kind -> largest sampled standard error.
    - ``replicates``, ``seed``: ``bootstrap_weights(users, replicates, seed)`` reproduces the weights.
    """

    channels: pd.DataFrame
    order_credits: pd.DataFrame
    order_weights: pd.DataFrame
    removal_effects: pd.DataFrame
    markov_selection: pd.DataFrame
    replicate_credits: dict[tuple[str, str], pd.DataFrame]
    markov_order: dict[str, int]
    shapley_max_se: dict[str, float]
    replicates: int
    seed: int


_STR, _F64, _I64, _BOOL = "str", "float64", "int64", "bool"
_CHANNELS = {
    "model": _STR,
    "channel_kind": _STR,
    "channel": _STR,
    "credit_fen": _F64,
    "share": _F64,
    "share_ci_low": _F64,
    "share_ci_high": _F64,
}
_ORDER_CREDITS = {
    "order_id": _STR,
    "touch_seq": _I64,
    "model": _STR,
    "channel_kind": _STR,
    "channel": _STR,
    "credit_fen": _F64,
}
_ORDER_WEIGHTS = {
    "order_id": _STR,
    "model": _STR,
    "channel_kind": _STR,
    "channel": _STR,
    "weight": _F64,
    "weight_se": _F64,
}
_REMOVAL = {"channel_kind": _STR, "channel": _STR, "removal_effect": _F64}
_SELECTION = {
    "channel_kind": _STR,
    "k": _I64,
    "states": _I64,
    "heldout_loglik": _F64,
    "chosen": _BOOL,
}


def _frame(
    parts: list[dict[str, object]], dtypes: dict[str, str], by: str | None = None
) -> pd.DataFrame:
    """Concatenate ``parts`` (column -> array, or a value for every row) into the declared
    columns and dtypes (an empty frame when none), stably sorted by the integer column ``by``
    when given."""
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})
    sizes = [max(np.size(v) for v in part.values() if np.ndim(v)) for part in parts]
    columns = {}
    for c in [*dtypes, *([by] if by else [])]:
        columns[c] = np.concatenate(
            [
                np.asarray(part[c])
                if np.ndim(part[c])
                else np.repeat(np.array([part[c]], object), n)
                for part, n in zip(parts, sizes, strict=True)
            ]
        )
    if by:
        order = np.argsort(columns.pop(by), kind="stable")
        columns = {c: v[order] for c, v in columns.items()}
    return pd.DataFrame(columns).astype(dtypes)


# ---------------------------------------------------------------- hashing and bootstrap weights


def _hash_ids(ids: np.ndarray | pd.Series | Sequence[str], key: str) -> np.ndarray:
    """Stable 64-bit SipHash of each id (as text)."""
    values = pd.Series(ids, dtype=object).astype(str).to_numpy(dtype=object)
    return pd.util.hash_array(values, hash_key=key, categorize=True)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection of uint64 that spreads every input bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _unit_uniform(z: np.ndarray) -> np.ndarray:
    """uint64 -> float in [0, 1) from the top 53 bits."""
    return (z >> np.uint64(11)).astype("float64") * 2.0**-53


_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(i) for i in range(24)])
# The quantile of every uniform number in [b / 256, (b + 1) / 256) when no CDF value splits that
# range (-1 when one does): most draws need no search.
_BUCKET_DRAW = np.where(
    np.searchsorted(_POISSON_CDF, np.arange(1, 257) / 256, side="left")
    == np.searchsorted(_POISSON_CDF, np.arange(256) / 256, side="right"),
    np.searchsorted(_POISSON_CDF, np.arange(256) / 256, side="right"),
    -1,
)


def bootstrap_weights(
    user_ids: np.ndarray | pd.Series | Sequence[str], replicates: int, seed: int
) -> np.ndarray:
    """Poisson(1) bootstrap weights, shape (replicates, len(user_ids)), float64.

    Replicate b draws a 64-bit key from ``numpy.random.default_rng(seed)``; user u's weight is the
    Poisson(1) quantile of a uniform number hashed from (key_b, SipHash(user_id)). So a user's
    weights depend only on (seed, user_id): not on row order, nor on which other
    users are passed. Every estimator that takes the same (users, replicates, seed) therefore uses
    the same resampled populations, and intervals of ratios across tables stay coherent.
    """
    if replicates < 0:
        raise ValueError(f"replicates must be >= 0, got {replicates}")
    hashed = _hash_ids(user_ids, _WEIGHT_KEY)
    keys = np.random.default_rng(seed).integers(
        0, np.iinfo(np.uint64).max, size=replicates, dtype=np.uint64, endpoint=True
    )
    z = _mix(_mix(keys[:, None] ^ hashed[None, :]) + np.uint64(0x9E3779B97F4A7C15))
    draws = _BUCKET_DRAW[z >> np.uint64(56)]  # the top 8 bits of the uniform number
    split = draws < 0
    draws[split] = np.searchsorted(_POISSON_CDF, _unit_uniform(z[split]), side="right")
    return draws.astype("float64").reshape(replicates, len(hashed))


def _held_out(user_ids: np.ndarray, share: float) -> np.ndarray:
    """Users held out for the choice of k: the lowest ``share`` of a stable hash of user_id."""
    return _unit_uniform(_mix(_hash_ids(user_ids, _HOLDOUT_KEY))) < share


# ---------------------------------------------------------------- sorting helpers
# numpy's np.unique hashes integers and its return_inverse sorts stably: plain sorts are far faster.


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)``."""
    s = np.sort(values)
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    return s[new]


def _index_in(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each of ``values`` (integers) in ``table``, sorted distinct values that hold them
    all."""
    if len(table) and table[-1] - table[0] < max(1 << 16, 2 * len(values)):
        lookup = np.zeros(int(table[-1] - table[0]) + 1, dtype="int64")
        lookup[table - table[0]] = np.arange(len(table))
        return lookup[values - table[0]]
    return np.searchsorted(table, values)


def _groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True, return_inverse=True)``: sorted distinct values, the
    first index of each, the index of each value in them."""
    order = np.argsort(values)
    s = values[order]
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    inverse = np.empty(len(s), dtype="int64")
    inverse[order] = np.cumsum(new) - 1
    first = np.minimum.reduceat(order, starts) if len(s) else np.zeros(0, dtype="int64")
    return s[starts], first, inverse


def _lexsort(keys: list[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys[::-1])`` (the first key most significant) for integer keys, as passes
    over their 16-bit digits (numpy sorts 16-bit integers stably by radix sort)."""
    digits = []
    for key in reversed(keys):
        if not len(key):
            return np.zeros(0, dtype="int64")
        key = key - key.min()
        top, shift = int(key.max()), 0
        while True:
            digits.append(((key >> shift) & 0xFFFF).astype(np.uint16))
            shift += 16
            if top >> shift == 0:
                break
    return np.lexsort(digits)


def _count_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """``csr_matrix((ones, (rows, cols)), shape)``, duplicates summed."""
    key = np.sort(rows.astype("int64") * shape[1] + cols)
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(key))).astype("float64")
    key = key[starts]
    indptr = np.searchsorted(key, np.arange(shape[0] + 1, dtype="int64") * shape[1])
    return sp.csr_matrix((counts, key % shape[1], indptr), shape=shape)


# ---------------------------------------------------------------- units


@dataclass(frozen=True)
class _Units:
    """Touch rows of every path, sorted by path then position; converting paths come first, one
    per order (orders sorted by order_id), and their rows are the sorted eligible rows."""

    path: np.ndarray  # per touch row (sorted)
    first: np.ndarray  # per path: index of its first touch row
    last: np.ndarray  # per path: index of its last touch row
    columns: dict[str, tuple[np.ndarray, pd.Series]]  # source -> (code per touch row, its values)
    path_user: np.ndarray  # user code per path
    converted: np.ndarray  # per path
    users: np.ndarray  # sorted distinct user ids
    orders: pd.DataFrame  # order_id, user code, amount_fen (float64)
    eligible: pd.DataFrame  # order_id, touch_seq (the converting touch rows)


def _sort_codes(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(code per value, value per code): codes ordered as ``sort_values`` orders the values, nulls
    last (code ``len(values_of)``)."""
    codes, uniques = pd.factorize(values, sort=True)
    return np.where(codes < 0, len(uniques), codes), pd.Series(uniques)


def _time_codes(values: pd.Series) -> np.ndarray:
    """Codes ordered as ``sort_values`` orders the values (nulls last)."""
    if isinstance(values.array, pd.arrays.DatetimeArray):
        codes = values.array.asi8.copy()
        null = values.isna().to_numpy()
        codes[null] = codes[~null].max() + 1 if (~null).any() else 0
        return codes
    return _sort_codes(values)[0]


def _recode(codes: np.ndarray, values_of: pd.Series, convert) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(convert(values), sort=True)`` of the values with codes ``codes`` (from
    ``_sort_codes``), converting each distinct value once."""
    n = len(values_of)
    present = np.flatnonzero(np.bincount(codes, minlength=n + 1))
    values = values_of.iloc[present[present < n]]
    if len(present) and present[-1] == n:  # a null
        values = pd.concat([values, pd.Series([None], dtype=values_of.dtype)], ignore_index=True)
    sub, uniques = pd.factorize(convert(values), sort=True)
    lookup = np.full(n + 1, -1, dtype="int64")
    lookup[present] = sub
    return lookup[codes], np.asarray(uniques, dtype=object)


def _user_text(values: pd.Series) -> np.ndarray:
    return values.astype(str).to_numpy(dtype=object)


def _channel_text(values: pd.Series) -> np.ndarray:
    raw = values.astype(object).where(values.notna())
    return raw.fillna(UNKNOWN).astype(str).to_numpy(dtype=object)


def _units(touches: pd.DataFrame, eligible: pd.DataFrame) -> _Units:
    el = eligible.sort_values(["order_id", "touch_seq"], kind="stable").reset_index(drop=True)
    orders = el.drop_duplicates("order_id")[["order_id", "user_id", "brand_id", "amount_fen"]]
    head = orders.index.to_numpy()  # each order's first eligible row
    orders = orders.reset_index(drop=True)
    n_orders = len(orders)
    order_of = pd.Index(orders["order_id"]).get_indexer(el["order_id"])

    # Every column as codes over the touches then the eligible rows (so the two match).
    n_t = len(touches)
    codes = {
        c: _sort_codes(pd.concat([touches[c], el[c]], ignore_index=True))
        for c in ("user_id", "brand_id", "platform", "author_id", "vertical")
    }
    user, brand = codes["user_id"][0], codes["brand_id"][0]
    n_user, n_brand = len(codes["user_id"][1]), len(codes["brand_id"][1])
    pair = user * (n_brand + 1) + brand
    keep = np.flatnonzero(~np.isin(pair[:n_t], pair[n_t:][head]))  # (user, brand) not seeded
    # Non-converting rows sorted by (user_id, brand_id, touch_at, platform, note_id, author_id).
    keys = [
        user[keep],
        brand[keep],
        _time_codes(touches["touch_at"])[keep],
        codes["platform"][0][keep],
        _sort_codes(touches["note_id"])[0][keep],
        codes["author_id"][0][keep],
    ]
    nc = keep[_lexsort(keys)]
    # One path per (user_id, brand_id) in sorted order; null keys have none (-1), as groupby.
    u, b = user[nc], brand[nc]
    valid = (u < n_user) & (b < n_brand)
    u, b = u[valid], b[valid]
    step = np.ones(len(u), dtype=bool)
    step[1:] = (u[1:] != u[:-1]) | (b[1:] != b[:-1])
    nc_path = np.full(len(nc), -1, dtype="int64")
    nc_path[valid] = np.cumsum(step) - 1
    n_paths = n_orders + (int(nc_path.max()) + 1 if len(nc_path) else 0)

    source = np.concatenate([n_t + np.arange(len(el)), nc])  # rows of the joint columns
    path = np.concatenate([order_of.astype("int64"), nc_path + n_orders])
    user_codes, users = _recode(user[source], codes["user_id"][1], _user_text)
    path_user = np.zeros(n_paths, dtype="int64")
    path_user[path] = user_codes
    order = np.argsort(path, kind="stable")  # converting rows first, each path's rows in order
    source = source[order]
    counts = np.bincount(path, minlength=n_paths)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype("int64")
    return _Units(
        path=path[order],
        first=first,
        last=first + counts - 1,
        columns={c: (codes[c][0][source], codes[c][1]) for c in set(_SOURCE.values())},
        path_user=path_user,
        converted=np.arange(n_paths) < n_orders,
        users=users,
        orders=pd.DataFrame(
            {
                "order_id": orders["order_id"].astype(str).to_numpy(dtype=object),
                "user": path_user[:n_orders],
                "amount_fen": orders["amount_fen"].to_numpy(dtype="float64"),
            }
        ),
        eligible=el[["order_id", "touch_seq"]],
    )


@dataclass(frozen=True)
class _Paths:
    """One channel kind's view of the units: per touch row its channel code."""

    names: np.ndarray  # channel name per code
    channel: np.ndarray  # per touch row
    path: np.ndarray  # per touch row (sorted)
    first: np.ndarray  # per path: index of its first touch row
    last: np.ndarray  # per path: index of its last touch row
    path_user: np.ndarray
    converted: np.ndarray


def _channel_codes(
    codes: np.ndarray, uniques: np.ndarray, max_channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, names) from the touches' codes of their sorted channel names ``uniques``: the
    ``max_channels`` channels with most touches (ties: smaller name) keep their name, sorted; the
    rest pool into OTHER, the last code."""
    if len(uniques) <= max_channels:
        return codes, uniques
    counts = np.bincount(codes, minlength=len(uniques))
    ranked = np.lexsort((np.arange(len(uniques)), -counts))  # names are sorted: index breaks ties
    kept = np.sort(ranked[:max_channels])
    remap = np.full(len(uniques), len(kept), dtype="int64")
    remap[kept] = np.arange(len(kept))
    return remap[codes], np.append(uniques[kept], OTHER).astype(object)


def _paths(units: _Units, kind: str, max_channels: int) -> _Paths:
    codes, names = _channel_codes(
        *_recode(*units.columns[_SOURCE[kind]], _channel_text), max_channels
    )
    return _Paths(
        names=names,
        channel=codes,
        path=units.path,
        first=units.first,
        last=units.last,
        path_user=units.path_user,
        converted=units.converted,
    )


# ---------------------------------------------------------------- Markov


@dataclass(frozen=True)
class _Transitions:
    """Every transition of every path under a k-order chain, as state codes."""

    src: np.ndarray  # state code before the step
    dst: np.ndarray  # state code after it (-1: absorbed)
    symbol: np.ndarray  # channel code, or C (conversion) / C + 1 (null)
    path: np.ndarray
    start: int  # code of the start state
    base: int


def _transitions(p: _Paths, k: int) -> _Transitions:
    n_channels = len(p.names)
    base = n_channels + 1  # code n_channels is the start (padding) symbol
    idx = np.arange(len(p.channel))
    pos = idx - p.first[p.path]
    code = np.zeros(len(idx), dtype="int64")
    for j in range(k):
        lag = np.where(pos >= j, p.channel[np.maximum(idx - j, 0)], n_channels)
        code += lag * base**j
    start = int(sum(n_channels * base**j for j in range(k)))
    prev = np.where(pos == 0, start, code[np.maximum(idx - 1, 0)])
    end = np.where(p.converted, n_channels, n_channels + 1)
    return _Transitions(
        src=np.concatenate([prev, code[p.last]]),
        dst=np.concatenate([code, np.full(len(p.last), -1, dtype="int64")]),
        symbol=np.concatenate([p.channel, end]),
        path=np.concatenate([p.path, np.arange(len(p.last))]),
        start=start,
        base=base,
    )


def _heldout_loglik(
    t: _Transitions, held: np.ndarray, n_symbols: int, alpha: float, states: np.ndarray
) -> float:
    """Mean log-likelihood of the held-out transitions under add-alpha smoothed probabilities
    ``(n(s, y) + alpha) / (n(s) + alpha * n_symbols)`` counted on the other transitions
    (``states``: the distinct t.src)."""
    if len(states) * n_symbols <= max(1 << 16, 4 * len(t.src)):  # dense counts
        src = _index_in(states, t.src)
        key = src * n_symbols + t.symbol
        n_sy = np.bincount(key[~held], minlength=len(states) * n_symbols)[key[held]]
        n_s = np.bincount(src[~held], minlength=len(states))[src[held]]
        return float(np.mean(np.log((n_sy + alpha) / (n_s + alpha * n_symbols))))
    key = t.src * n_symbols + t.symbol
    train_keys, train_n = np.unique(key[~held], return_counts=True)
    train_states, state_n = np.unique(t.src[~held], return_counts=True)

    def lookup(table: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(table, q), len(table) - 1)
        return np.where(table[at] == q, counts[at], 0)

    n_sy = lookup(train_keys, train_n, key[held])
    n_s = lookup(train_states, state_n, t.src[held])
    return float(np.mean(np.log((n_sy + alpha) / (n_s + alpha * n_symbols))))


def _select_order(
    p: _Paths,
    held_user: np.ndarray,
    orders: Sequence[int],
    alpha: float,
    max_states: int,
) -> tuple[int, list[dict], _Transitions]:
    """The chain order k (rule in the module docstring), the score of every candidate and the
    transitions of the chosen k."""
    rows: list[dict] = []
    best_k, best = min(orders), -np.inf
    for k in sorted(orders):
        t = _transitions(p, k)
        distinct = _sorted_unique(t.src)
        states = len(distinct)
        if states >= max_states and k > min(orders):
            break
        if k == best_k:
            chosen = t
        held = held_user[p.path_user[t.path]]
        score = np.nan
        if held.any() and (~held).any():
            score = _heldout_loglik(t, held, len(p.names) + 2, alpha, distinct)
            if score > best:
                best_k, best, chosen = k, score, t
        rows.append({"k": k, "states": states, "heldout_loglik": score})
    for row in rows:
        row["chosen"] = row["k"] == best_k
    return best_k, rows, chosen


@dataclass(frozen=True)
class _Chain:
    """A k-order chain's structure: distinct transitions with their per-user counts."""

    n_states: int
    start: int  # index of the start state
    src: np.ndarray  # per distinct transition: from-state index
    dst: np.ndarray  # to-state index; n_states = conversion, n_states + 1 = null
    by_user: sp.csr_matrix  # (distinct transitions, users): occurrences
    entered: list[np.ndarray]  # per channel: the states whose latest channel it is
    out_of: sp.csr_matrix  # (states, distinct transitions): 1 where the transition leaves the state
    blocks: list[tuple[np.ndarray, np.ndarray]]  # per |R_c|: (channels, their states R_c)

    @classmethod
    def build(cls, t: _Transitions, p: _Paths, n_users: int) -> _Chain:
        n_channels = len(p.names)
        states = _sorted_unique(t.src)
        n = len(states)
        absorbed = t.dst < 0
        dst = np.where(
            absorbed,
            np.where(t.symbol == n_channels, n, n + 1),
            _index_in(states, np.where(absorbed, states[0], t.dst)),
        )
        key = _index_in(states, t.src) * (n + 2) + dst
        keys = _sorted_unique(key)
        by_user = _count_matrix(_index_in(keys, key), p.path_user[t.path], (len(keys), n_users))
        latest = states % t.base  # the start state's is the padding symbol, n_channels
        by_latest = np.argsort(latest, kind="stable")
        bounds = np.searchsorted(latest[by_latest], np.arange(n_channels + 1))
        entered = [by_latest[bounds[c] : bounds[c + 1]] for c in range(n_channels)]
        sizes = np.diff(bounds)
        blocks = []
        for m in np.unique(sizes[sizes > 0]):
            chans = np.flatnonzero(sizes == m)
            blocks.append((chans, by_latest[bounds[chans][:, None] + np.arange(m)[None, :]]))
        src = keys // (n + 2)
        out_of = _count_matrix(src, np.arange(len(keys)), (n, len(keys)))
        return cls(
            n_states=n,
            start=int(np.searchsorted(states, t.start)),
            src=src,
            dst=keys % (n + 2),
            by_user=by_user,
            entered=entered,
            out_of=out_of,
            blocks=blocks,
        )

    def removal_effects(self, counts: np.ndarray) -> np.ndarray:
        """Removal effects (replicates, channels) for transition counts ``counts`` (distinct
        transitions, replicates), each column weighted by one replicate's users."""
        n, n_rep = self.n_states, counts.shape[1]
        out_n = (self.out_of @ counts)[self.src]
        with np.errstate(divide="ignore", invalid="ignore"):
            prob = np.where(out_n > 0, counts / out_n, 0.0)
        inner, conv = self.dst < n, self.dst == n
        if n > _DENSE_STATES:
            p_conv, p_removed = np.zeros(n_rep), np.zeros((n_rep, len(self.entered)))
            for b in range(n_rep):
                q = sp.csr_matrix(
                    (prob[inner, b], (self.src[inner], self.dst[inner])), shape=(n, n)
                )
                r = np.bincount(self.src[conv], weights=prob[conv, b], minlength=n)
                p_conv[b], p_removed[b] = _absorption_sparse(
                    sp.identity(n, format="csc") - q, r, self.start, self.entered
                )
        else:
            a = np.zeros((n_rep, n, n))
            a[:, self.src[inner], self.dst[inner]] = -prob[inner].T
            diagonal = np.arange(n)
            a[:, diagonal, diagonal] += 1.0
            r = np.zeros((n_rep, n))
            r[:, self.src[conv]] = prob[conv].T
            p_conv, p_removed = _absorption(a, r, self.start, self.blocks, len(self.entered))
        with np.errstate(divide="ignore", invalid="ignore"):
            effects = np.clip(1.0 - p_removed / p_conv[:, None], 0.0, 1.0)
        return np.where((p_conv <= 0)[:, None], 0.0, effects)


def _absorption(
    a: np.ndarray,
    r: np.ndarray,
    start: int,
    blocks: list[tuple[np.ndarray, np.ndarray]],
    n_channels: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For a stack of chains (``a`` = I - Q, (replicates, n, n); ``r``, (replicates, n)): P(conv)
    from ``start``, and per channel c the same when every state containing c leads to null
    instead.

    A path reaches a state containing c only through a state whose latest channel is c (the step
    that emits c), so with R_c those states, x = N r and N = (I - Q)^-1 (expected visits), the chain
    converts without entering R_c with probability ``x_s - N[s, R] N[R, R]^-1 x_R``:
    ``N[s, R] N[R, R]^-1`` is the distribution of the first state of R entered, ``x_R`` their
    conversion probabilities. The sets R_c partition the states but the start, so one dense
    inverse serves every channel; ``blocks`` groups the channels by |R_c| (their states R_c as
    rows), so the small solves run as one batched call per size. A channel without states keeps
    P(conv)."""
    inverse = np.linalg.inv(a)
    x = np.matmul(inverse, r[:, :, None])[:, :, 0]
    x_start, row = x[:, start], inverse[:, start, :]
    p_removed = np.repeat(x_start[:, None], n_channels, axis=1)
    for channels, at in blocks:
        block = inverse[:, at[:, :, None], at[:, None, :]]
        solved = np.linalg.solve(block, x[:, at][..., None])[..., 0]
        p_removed[:, channels] = x_start[:, None] - np.einsum("bgm,bgm->bg", row[:, at], solved)
    return x_start, np.clip(p_removed, 0.0, x_start[:, None])


def _absorption_sparse(
    a: sp.csc_matrix, r: np.ndarray, start: int, entered: list[np.ndarray]
) -> tuple[float, np.ndarray]:
    """``_absorption`` for one chain above ``_DENSE_STATES`` states: a sparse LU per channel of
    the system with the rows of R_c set to ``x = 0``."""
    n = a.shape[0]
    p_removed = np.zeros(len(entered))
    x = splu(a).solve(r)
    for c, at in enumerate(entered):
        keep = np.setdiff1d(np.arange(n), at, assume_unique=True)
        restricted = splu(a[keep][:, keep].tocsc())
        p_removed[c] = restricted.solve(r[keep])[np.searchsorted(keep, start)]
    return float(x[start]), np.clip(p_removed, 0.0, x[start])


# ---------------------------------------------------------------- Shapley


@dataclass(frozen=True)
class _Shapley:
    """Shapley values of every distinct channel set of an order, for any user weights.

    Atoms are the distinct channel sets of all paths; ``sets`` the distinct sets of the orders
    (a subset of the atoms). The values of a set's channels sit at ``offsets[s] + j`` in the flat
    result, j the rank of the channel code within the set.
    """

    atom_conv: sp.csr_matrix  # (atoms, users): converting paths
    atom_total: sp.csr_matrix  # (atoms, users): paths
    order_set: np.ndarray  # per order: its set
    offsets: np.ndarray  # per set: start of its values in the flat result (plus the total)
    exact: list[tuple[np.ndarray, int, np.ndarray]]  # (set rows, m, atom of each subset mask)
    sampled: list[tuple[int, np.ndarray, sp.csr_matrix, np.ndarray]]  # (set, atoms, scatter, ranks)
    permutations: int

    @classmethod
    def build(
        cls, p: _Paths, n_orders: int, n_users: int, exact_max: int, permutations: int
    ) -> _Shapley:
        n_channels, n_paths = len(p.names), len(p.first)
        pair_key = _sorted_unique(p.path * n_channels + p.channel)  # distinct (path, channel)
        pair_path, pair_channel = pair_key // n_channels, pair_key % n_channels
        size = np.bincount(pair_path, minlength=n_paths)
        pair_start = np.cumsum(size) - size
        zobrist = np.random.default_rng(_ZOBRIST_SEED).integers(
            0, np.iinfo(np.uint64).max, size=(2, n_channels), dtype=np.uint64, endpoint=True
        )
        hashes = (
            np.stack(
                [np.bitwise_xor.reduceat(z[pair_channel], pair_start) for z in zobrist], axis=1
            )
            if n_paths
            else np.zeros((0, 2), dtype=np.uint64)
        )
        # Atoms sorted by (hash 0, hash 1); hash 0 alone tells them apart (checked below).
        first_hash, rep, path_atom = _groups(hashes[:, 0])
        atoms = hashes[rep]
        if len(atoms) >= np.iinfo(np.int32).max:
            raise ValueError("too many distinct channel sets")
        if (atoms[path_atom, 1] != hashes[:, 1]).any():
            raise RuntimeError("channel-set hash collision")  # probability ~ 2**-64 per pair

        def members(atom_rows: np.ndarray, m: int) -> np.ndarray:
            """(len(atom_rows), m) sorted channel codes of atoms of size m."""
            at = pair_start[rep[atom_rows]][:, None] + np.arange(m)[None, :]
            return pair_channel[at]

        set_atoms, order_set = np.unique(path_atom[:n_orders], return_inverse=True)
        set_size = size[rep[set_atoms]]
        offsets = np.concatenate([[0], np.cumsum(set_size)]).astype("int64")
        exact: list[tuple[np.ndarray, int, np.ndarray]] = []
        for m in np.unique(set_size[set_size <= exact_max]):
            m = int(m)
            rows_m = np.flatnonzero(set_size == m)
            step = max(1, _CHUNK >> m)
            for lo in range(0, len(rows_m), step):
                rows = rows_m[lo : lo + step]
                codes = members(set_atoms[rows], m)
                keys = np.zeros((2, len(rows), 1 << m), dtype=np.uint64)
                for j in range(m):
                    view = keys.reshape(2, len(rows), -1, 2, 1 << j)[:, :, :, 1, :]
                    view ^= zobrist[:, codes[:, j]][:, :, None, None]
                at = np.minimum(np.searchsorted(first_hash, keys[0]), len(atoms) - 1)
                found = (atoms[at, 0] == keys[0]) & (atoms[at, 1] == keys[1])
                found[:, 0] = False
                exact.append((rows, m, np.where(found, at, -1).astype(np.int32)))

        sampled: list[tuple[int, np.ndarray, sp.csr_matrix, np.ndarray]] = []
        big = np.flatnonzero(set_size > exact_max)
        if len(big):
            atom_size = size[rep]
            indptr = np.concatenate([[0], np.cumsum(atom_size)])
            flat = pair_channel[_ranges(pair_start[rep], atom_size)]
            incidence = sp.csr_matrix(
                (np.ones(len(flat)), flat, indptr), shape=(len(atoms), n_channels)
            )
            overlap = (incidence[set_atoms[big]] @ incidence.T).tocsr()
            for i, s in enumerate(big):
                m = int(set_size[s])
                cols = overlap.indices[overlap.indptr[i] : overlap.indptr[i + 1]]
                hits = overlap.data[overlap.indptr[i] : overlap.indptr[i + 1]]
                local = np.sort(cols[hits == atom_size[cols]])
                own = members(set_atoms[[s]], m)[0]
                local_size = atom_size[local]
                member_rank = np.searchsorted(
                    own, pair_channel[_ranges(pair_start[rep[local]], local_size)]
                )
                rng = np.random.default_rng([_PERMUTATION_SEED, int(atoms[set_atoms[s], 0])])
                ranks = np.argsort(rng.random((permutations, m)), axis=1).argsort(axis=1)
                bounds = np.concatenate([[0], np.cumsum(local_size)[:-1]])
                pos = np.maximum.reduceat(ranks[:, member_rank], bounds, axis=1)
                # Local atom j of ordering o completes the coalition at position pos[o, j].
                cell = (np.arange(permutations)[:, None] * m + pos).ravel()
                scatter = sp.csr_matrix(
                    (np.ones(len(cell)), (cell, np.tile(np.arange(len(local)), permutations))),
                    shape=(permutations * m, len(local)),
                )
                sampled.append((int(s), local, scatter, ranks))
        conv = p.converted
        return cls(
            atom_conv=_count_matrix(path_atom[conv], p.path_user[conv], (len(atoms), n_users)),
            atom_total=_count_matrix(path_atom, p.path_user, (len(atoms), n_users)),
            order_set=order_set.ravel(),
            offsets=offsets,
            exact=exact,
            sampled=sampled,
            permutations=permutations,
        )

    def values(self, user_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Shapley value, standard error) of every (order set, channel), flat, per column of
        ``user_weights`` (users, replicates): both (replicates, values)."""
        n_rep = user_weights.shape[1]
        conv = np.ascontiguousarray((self.atom_conv @ user_weights).T)
        total = np.ascontiguousarray((self.atom_total @ user_weights).T)
        phi = np.zeros((n_rep, self.offsets[-1]))
        se = np.zeros((n_rep, self.offsets[-1]))
        for rows, m, lookup in self.exact:
            at = self.offsets[rows][:, None] + np.arange(m)[None, :]
            step = max(1, _CELLS // lookup.size)
            for lo in range(0, n_rep, step):
                part = slice(lo, lo + step)
                phi[part, at] = _exact(lookup, m, conv[part], total[part])
        for s, local, scatter, ranks in self.sampled:
            permutations, m = ranks.shape
            at = self.offsets[s] + np.arange(m)
            step = max(1, _CELLS // (permutations * m))
            for lo in range(0, n_rep, step):
                part = slice(lo, lo + step)
                cum = [
                    (scatter @ w[part, local].T).reshape(permutations, m, -1).cumsum(axis=1)
                    for w in (conv, total)
                ]
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.where(cum[1] > 0, cum[0] / cum[1], 0.0)
                marginal = np.diff(v, axis=1, prepend=0.0)
                per_channel = np.take_along_axis(marginal, ranks[:, :, None], axis=1)
                phi[part, at] = per_channel.mean(axis=0).T
                se[part, at] = per_channel.std(axis=0, ddof=1).T / np.sqrt(permutations)
        return phi, se


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for every (start, length)."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0)


def _exact(lookup: np.ndarray, m: int, conv: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Exact Shapley values (replicates, rows, m) from each set's subset -> atom table ``lookup``
    (rows, 2**m) and the atoms' weighted conversions and paths (replicates, atoms): v(S) =
    conv / total summed over the atoms that are subsets of S (a zeta transform)."""
    hit = lookup >= 0
    f_conv = np.where(hit, conv[:, lookup], 0.0)
    f_total = np.where(hit, total[:, lookup], 0.0)
    n_rep, n = len(conv), len(lookup)
    for j in range(m):
        for f in (f_conv, f_total):
            view = f.reshape(n_rep, n, -1, 2, 1 << j)
            view[:, :, :, 1, :] += view[:, :, :, 0, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(f_total > 0, f_conv / f_total, 0.0)
    size = np.bitwise_count(np.arange(1 << m, dtype=np.uint64)).astype("int64")
    weight = np.array(
        [math.factorial(s) * math.factorial(m - 1 - s) / math.factorial(m) for s in range(m)]
    )
    phi = np.zeros((n_rep, n, m))
    for i in range(m):
        view = v.reshape(n_rep, n, -1, 2, 1 << i)
        w = weight[size.reshape(-1, 2, 1 << i)[:, 0, :]]
        phi[:, :, i] = ((view[:, :, :, 1, :] - view[:, :, :, 0, :]) * w).sum(axis=(2, 3))
    return phi


# ---------------------------------------------------------------- splitting orders


@dataclass(frozen=True)
class _Pairs:
    """Distinct (order, channel) pairs of the converting paths, sorted by order then channel."""

    order: np.ndarray
    channel: np.ndarray
    rank: np.ndarray  # rank of the channel within the order's distinct channels
    touches: np.ndarray  # the order's touches of the channel
    of_touch: np.ndarray  # per converting touch row: its pair
    by_order: sp.csr_matrix  # (orders, pairs): 1 where the pair is the order's
    by_channel: sp.csr_matrix  # (channels, pairs): 1 where the pair is the channel's
    per_order: np.ndarray  # per pair: its order's number of pairs

    @classmethod
    def build(cls, p: _Paths, n_orders: int) -> _Pairs:
        n_channels = len(p.names)
        conv = p.path < n_orders
        keys, of_touch, touches = np.unique(
            p.path[conv] * n_channels + p.channel[conv], return_inverse=True, return_counts=True
        )
        order = keys // n_channels
        channel = keys % n_channels
        first = np.searchsorted(order, np.arange(n_orders))
        pair = np.arange(len(keys))
        ones = np.ones(len(keys))
        return cls(
            order=order,
            channel=channel,
            rank=pair - first[order],
            touches=touches,
            of_touch=of_touch.ravel(),
            by_order=sp.csr_matrix((ones, (order, pair)), shape=(n_orders, len(keys))),
            by_channel=sp.csr_matrix((ones, (channel, pair)), shape=(n_channels, len(keys))),
            per_order=np.bincount(order, minlength=n_orders)[order],
        )

    def fractions(self, weight: np.ndarray) -> np.ndarray:
        """Each pair's fraction of its order (per row of ``weight``, (replicates, pairs)): clipped
        weights normalised per order; equal when an order's clipped weights are all 0."""
        w = np.clip(weight, 0.0, None)
        total = (self.by_order @ w.T).T[:, self.order]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, w / total, 1.0 / self.per_order)


@dataclass(frozen=True)
class _Fit:
    """Both data-driven models of one channel kind, refittable under any user weights."""

    chain: _Chain
    shapley: _Shapley
    pairs: _Pairs
    flat: np.ndarray  # per pair: its Shapley value's index in the flat result
    paths: _Paths
    n_orders: int

    @classmethod
    def build(
        cls,
        p: _Paths,
        t: _Transitions,
        n_users: int,
        n_orders: int,
        exact_max: int,
        permutations: int,
    ) -> _Fit:
        shapley = _Shapley.build(p, n_orders, n_users, exact_max, permutations)
        pairs = _Pairs.build(p, n_orders)
        flat = shapley.offsets[shapley.order_set[pairs.order]] + pairs.rank
        return cls(_Chain.build(t, p, n_users), shapley, pairs, flat, p, n_orders)

    def __call__(
        self, user_weights: np.ndarray
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
        """Per column of ``user_weights`` (users, replicates): (per model: (weight, its se,
        fraction of the order), each (replicates, pairs); removal effects (replicates,
        channels))."""
        columns = np.ascontiguousarray(user_weights)
        effects = self.chain.removal_effects(self.chain.by_user @ columns)
        phi, se = self.shapley.values(columns)
        pairs = self.pairs
        out = {}
        for model, w, s in (
            ("markov", effects[:, pairs.channel], np.zeros((len(effects), len(pairs.order)))),
            ("shapley", phi[:, self.flat], se[:, self.flat]),
        ):
            out[model] = (w, s, pairs.fractions(w))
        return out, effects

    def _cells(self) -> int:
        """Float cells one replicate of ``__call__`` holds at once (the largest array)."""
        chain = self.chain
        square = chain.n_states**2 if chain.n_states <= _DENSE_STATES else 0
        return max(
            1,
            square,
            len(chain.src),
            self.shapley.atom_total.shape[0],
            int(self.shapley.offsets[-1]),
            len(self.pairs.order),
        )

    def replicate_credits(
        self, weights: np.ndarray, order_user: np.ndarray, amount: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Per model, (channels, replicates) credits for user weights (users, replicates): each
        replicate re-fits both models under its user weights and credits every order's split
        weighted by its user's weight. The replicates run in batches of bounded memory."""
        n_channels, n_rep = len(self.paths.names), weights.shape[1]
        out = {model: np.zeros((n_channels, n_rep)) for model in DATA_DRIVEN}
        step = max(1, _CELLS // self._cells())
        order = self.pairs.order
        for lo in range(0, n_rep, step):
            user_weights = weights[:, lo : lo + step]
            fitted, _ = self(user_weights)
            order_weight = user_weights[order_user[order]] * amount[order][:, None]
            for model in DATA_DRIVEN:
                out[model][:, lo : lo + step] = self.pairs.by_channel @ (
                    order_weight * fitted[model][2].T
                )
        return out


# ---------------------------------------------------------------- main entry


def channel_attribution(
    touches: pd.DataFrame,
    eligible: pd.DataFrame,
    heuristic_credits: pd.DataFrame,
    *,
    replicates: int,
    seed: int,
    max_channels: int = 200,
    kinds: Sequence[str] = CHANNEL_KINDS,
    markov_orders: Sequence[int] = (1, 2, 3),
    holdout_share: float = 0.2,
    alpha: float = 0.5,
    max_states: int = 2000,
    shapley_exact_max: int = 12,
    shapley_permutations: int = 2000,
) -> ChannelAttribution:
    """Every model's channel credits and shares per kind, with bootstrap intervals (module
    docstring). ``touches``: the window's fct_touches rows; ``eligible``: the eligible touches of
    the window's seeded orders (order_id, touch_seq, user_id, brand_id, platform, author_id,
    vertical, amount_fen, ...); ``heuristic_credits``: their fct_attribution_credits rows."""
    if max_channels < 1:
        raise ValueError(f"max_channels must be >= 1, got {max_channels}")
    unknown = set(kinds) - set(CHANNEL_KINDS)
    if unknown:
        raise ValueError(f"unknown channel kinds: {sorted(unknown)}")
    units = _units(touches, eligible)
    n_orders, n_users = len(units.orders), len(units.users)
    weights = bootstrap_weights(units.users, replicates, seed)  # (B, users)
    weights_t = np.ascontiguousarray(weights.T)
    amount = units.orders["amount_fen"].to_numpy()
    order_user = units.orders["user"].to_numpy()

    # Heuristic credits -> the converting touch row they credit.
    at = units.eligible.assign(_row=np.arange(len(units.eligible)))
    hc = heuristic_credits[["order_id", "touch_seq", "model", "credit_fen"]]
    hc = hc.sort_values(["order_id", "model", "touch_seq"], kind="stable")  # sums in one order
    hc = hc.merge(at, on=["order_id", "touch_seq"], how="left")
    if hc["_row"].isna().any():
        raise ValueError("heuristic credits name touches that are not eligible touches")
    hc_row = hc["_row"].to_numpy(dtype="int64")
    hc_model = hc["model"].astype(str).to_numpy(dtype=object)
    hc_credit = hc["credit_fen"].to_numpy(dtype="float64")
    eligible_order_id = units.eligible["order_id"].astype(str).to_numpy(dtype=object)
    eligible_touch_seq = units.eligible["touch_seq"].to_numpy(dtype="int64")
    order_ids = units.orders["order_id"].to_numpy()
    held_user = _held_out(units.users, holdout_share)

    channel_parts, credit_parts, weight_parts, removal_parts, selection_parts = [], [], [], [], []
    replicate_credits: dict[tuple[str, str], pd.DataFrame] = {}
    markov_order: dict[str, int] = {}
    shapley_max_se: dict[str, float] = {}
    for kind in kinds:
        if not len(units.converted):
            markov_order[kind], shapley_max_se[kind] = min(markov_orders), 0.0
            continue
        p = _paths(units, kind, max_channels)
        n_channels = len(p.names)
        k, scores, t = _select_order(p, held_user, markov_orders, alpha, max_states)
        markov_order[kind] = k
        selection_parts.append(
            {c: np.array([row[c] for row in scores]) for c in scores[0]} | {"channel_kind": kind}
        )
        model_fit = _Fit.build(p, t, n_users, n_orders, shapley_exact_max, shapley_permutations)
        pairs = model_fit.pairs
        point, effects = model_fit(np.ones((n_users, 1)))
        point = {model: tuple(a[0] for a in fitted) for model, fitted in point.items()}
        effects = effects[0]
        shapley_max_se[kind] = float(point["shapley"][1].max()) if len(pairs.order) else 0.0
        removal_parts.append({"channel_kind": kind, "channel": p.names, "removal_effect": effects})
        reps = model_fit.replicate_credits(weights_t, order_user, amount)

        conv_rows = p.path < n_orders
        touch_pair = pairs.of_touch
        touch_channel = p.channel[conv_rows]
        credits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for model in DATA_DRIVEN:
            w, s, frac = point[model]
            pair_credit = amount[pairs.order] * frac
            credits[model] = (
                np.bincount(pairs.channel, weights=pair_credit, minlength=n_channels),
                reps[model],
            )
            credit_parts.append(
                {
                    "order_id": eligible_order_id,
                    "touch_seq": eligible_touch_seq,
                    "model": model,
                    "channel_kind": kind,
                    "channel": p.names[touch_channel],
                    "credit_fen": pair_credit[touch_pair] / pairs.touches[touch_pair],
                    "_order": p.path[conv_rows],
                }
            )
            weight_parts.append(
                {
                    "order_id": order_ids[pairs.order],
                    "model": model,
                    "channel_kind": kind,
                    "channel": p.names[pairs.channel],
                    "weight": w,
                    "weight_se": s,
                    "_order": pairs.order,
                }
            )
        for model in schemas.ATTRIBUTION_MODELS:
            mine = hc_model == model
            by_user = sp.csr_matrix(
                (hc_credit[mine], (touch_channel[hc_row[mine]], order_user[p.path[hc_row[mine]]])),
                shape=(n_channels, n_users),
            )
            credits[model] = (
                np.asarray(by_user.sum(axis=1)).ravel(),
                np.asarray(by_user @ weights_t).reshape(n_channels, replicates),
            )

        for model in MODELS:
            credit, rep = credits[model]
            replicate_credits[(model, kind)] = pd.DataFrame(
                rep, index=pd.Index(p.names.astype(str), name="channel", dtype="str")
            )
            low, high = _share_interval(rep)
            total = credit.sum()
            channel_parts.append(
                {
                    "model": model,
                    "channel_kind": kind,
                    "channel": p.names,
                    "credit_fen": credit,
                    "share": credit / total if total > 0 else np.full(n_channels, np.nan),
                    "share_ci_low": low,
                    "share_ci_high": high,
                }
            )

    # Orders are numbered in order_id order: sorting by number sorts by order_id.
    return ChannelAttribution(
        channels=_frame(channel_parts, _CHANNELS),
        order_credits=_frame(credit_parts, _ORDER_CREDITS, by="_order"),
        order_weights=_frame(weight_parts, _ORDER_WEIGHTS, by="_order"),
        removal_effects=_frame(removal_parts, _REMOVAL),
        markov_selection=_frame(selection_parts, _SELECTION),
        replicate_credits=replicate_credits,
        markov_order=markov_order,
        shapley_max_se=shapley_max_se,
        replicates=replicates,
        seed=seed,
    )


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per row over the replicates (columns), NaN replicates left out; NaN
    without replicates."""
    tail = (1.0 - level) / 2.0
    if values.shape[1] == 0 or values.shape[0] == 0:
        nan = np.full(values.shape[0], np.nan)
        return nan, nan.copy()
    usable = ~np.isnan(values).all(axis=1)
    low = np.full(values.shape[0], np.nan)
    high = np.full(values.shape[0], np.nan)
    complete = ~np.isnan(values).any(axis=1)
    if complete.any():  # np.quantile is vectorised; nanquantile goes row by row
        low[complete], high[complete] = np.quantile(values[complete], [tail, 1.0 - tail], axis=1)
    partial = usable & ~complete
    if partial.any():
        rows = values[partial]
        missing = np.isnan(rows)
        if (missing == missing[0]).all():  # the usual case: the same replicates are NaN
            low[partial], high[partial] = np.quantile(
                rows[:, ~missing[0]], [tail, 1.0 - tail], axis=1
            )
        else:
            low[partial], high[partial] = np.nanquantile(rows, [tail, 1.0 - tail], axis=1)
    return low, high


def replicate_shares(result: ChannelAttribution, model: str, kind: str) -> pd.DataFrame:
    """(channels, replicates) shares of one (model, kind): each replicate's credits over their
    total (NaN in a replicate whose total is 0)."""
    rep = result.replicate_credits[(model, kind)]
    total = rep.sum(axis=0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = rep.to_numpy() / np.where(total > 0, total, np.nan)[None, :]
    return pd.DataFrame(shares, index=rep.index, columns=rep.columns)


def _share_interval(rep: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    total = rep.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = rep / np.where(total > 0, total, np.nan)[None, :]
    return percentile_interval(shares, level)


def indistinguishable(
    result: ChannelAttribution, model: str, kind: str, *, level: float = LEVEL
) -> list[tuple[str, str]]:
    """Channel pairs (a, b), a < b in channel order, of one (model, kind) whose bootstrap interval of
    the share difference ``share_a - share_b`` contains 0: the data cannot tell them apart. Needs at
    least 2 replicates (otherwise no claim is made: []); an unknown (model, kind) has no pairs."""
    if (model, kind) not in result.replicate_credits or result.replicates < 2:
        return []
    shares = replicate_shares(result, model, kind)
    names = shares.index.to_numpy(dtype=object)
    a, b = np.triu_indices(len(names), 1)
    values = shares.to_numpy()
    diff = values[a] - values[b]
    low, high = percentile_interval(diff, level)
    tied = (low <= 0) & (high >= 0)
    return [(str(x), str(y)) for x, y in zip(names[a[tied]], names[b[tied]], strict=True)]
