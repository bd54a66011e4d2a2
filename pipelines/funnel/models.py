"""SPEC 5.11: the models over a reporting window, one snapshot as of W.

The snapshot as of the end of day d (the runner asks for W) is fitted over the reporting window ``[d - model_window + 1,
d]`` (settings ``[models]``) from the published funnel facts (touches, seeded orders, their
credits, search pairs) and the spend of the window:

- ``agg_attribution_channels``: every model's split of the window's seeded GMV over platforms,
  author verticals and creators, with 95% bootstrap intervals (``datadriven``);
- ``agg_cost``: spend against touches, search-back users, seeded orders and GMV per platform,
  creator and brand, per model, with 95% bootstrap intervals;
- ``agg_roi_curve``: ROI(T+x) per brand.

Pure functions: the runner gives them the facts (from one computation, or from the marts) and
the as-of day. How spend and orders are assigned to subjects: docs/attribution.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from threadpoolctl import threadpool_limits

from .. import schemas, windows
from ..settings import FunnelParams, ModelParams
from ..timeutil import business_day, day_numbers
from . import datadriven
from .prepare import merge_asof

_EPOCH = date(1970, 1, 1)
DAY_US = 86_400_000_000
OTHER = datadriven.OTHER
LINEAR = "linear"
#: Channel kinds whose rows list the channels they cannot be told apart from (``tied_with``).
TIED_KINDS = ("platform", "vertical")


@dataclass(frozen=True)
class Facts:
    """The funnel facts and reference data the models read. Frames may span more days than a
    snapshot needs; each snapshot selects its window."""

    touches: pd.DataFrame  # fct_touches
    search_pairs: pd.DataFrame  # fct_search_pairs
    seeded_orders: pd.DataFrame  # fct_seeded_orders
    credits: pd.DataFrame  # fct_attribution_credits
    spend: pd.DataFrame  # resolved spend (schemas.SPEND), may be empty
    note_brands: pd.DataFrame  # (platform, note_id, brand_id)
    brands: pd.DataFrame  # brands.csv (brand_id, category_id)


def reach_days(params: FunnelParams, models: ModelParams) -> int:
    """How many days before the first as-of day the facts must reach: the longest ROI cohort
    (30 days or a category's decision cycle, plus the window) and the touches of its orders."""
    longest = max(max(schemas.ROI_DAYS), _longest_cycle(params))
    return longest + models.model_window_days + windows.touch_lookback_days(params)


def _longest_cycle(params: FunnelParams) -> int:
    return int(np.ceil(params.max_seed_window / timedelta(days=1)))


def _cycle_days(params: FunnelParams, categories: pd.Series) -> np.ndarray:
    """Each category's own decision cycle: its seed window in whole days (rounded up)."""
    table = params.category_seed_windows()
    days = categories.map(lambda c: table.get(c, params.seed_window_days)).to_numpy(dtype="float64")
    return np.ceil(days).astype("int64")


def snapshot_seed(seed: int, day: date) -> int:
    """The bootstrap seed of one snapshot: the setting and the as-of day, nothing else."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{day.isoformat()}".encode()).digest()[:8], "little")


def compute(
    facts: Facts, params: FunnelParams, models: ModelParams, as_of: date, first_day: date, run_id: str
) -> dict[str, pd.DataFrame]:
    """Every table of schemas.MODEL_TABLES: the snapshot as of ``as_of`` (W: SPEC 5.11 fits the
    models over the last model_window days up to it), conformed and sorted."""
    # Thousands of small dense solves: BLAS threads only contend for them (4x slower on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        frames = snapshot(_prepare(facts), params, models, as_of, first_day)
    out = {}
    for t in schemas.MODEL_TABLES:
        frame = schemas.conform(t, frames[t.name].assign(run_id=run_id))
        out[t.name] = frame.sort_values(list(t.key), kind="stable").reset_index(drop=True)
    return out


@dataclass(frozen=True)
class _Codes:
    """Users and the subjects of each cost level as integer codes."""

    users: pd.Index
    subjects: dict[str, pd.Index]  # level -> its subjects (creators end with OTHER)
    touch_user: np.ndarray
    touch_subject: dict[str, np.ndarray]
    credit_user: np.ndarray
    credit_subject: dict[str, np.ndarray]  # platform and creator of the credited touch
    order_user: np.ndarray
    order_brand: np.ndarray
    order_amount: np.ndarray
    pair_user: np.ndarray  # seeded pairs only
    pair_subject: dict[str, np.ndarray]  # platform and creator of the last touch (-1: none)
    sb_pair: np.ndarray  # (pair, brand) of every brand a seeded pair is seeded for
    sb_brand: np.ndarray


@dataclass(frozen=True)
class _Prepared:
    touches: pd.DataFrame
    touch_day: np.ndarray
    pairs: pd.DataFrame  # seeded pairs
    pair_day: np.ndarray
    orders: pd.DataFrame
    order_day: np.ndarray
    credits: pd.DataFrame  # with the order's amount, user, paid_at and the touch's day
    credit_day: np.ndarray  # payment day
    spend: pd.DataFrame
    spend_day: np.ndarray
    note_brands: pd.DataFrame
    brand_category: pd.Series
    codes: _Codes
    mix: pd.DataFrame  # (creator, brand_id) of every touch: how a creator's spend splits over brands


def _creator(platform: pd.Series, author: pd.Series) -> pd.Series:
    """A creator channel: author ids are unique per platform only."""
    return platform.astype(str) + ":" + author.astype(str)


def _text(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype=object, na_value=None)


def _prepare(facts: Facts) -> _Prepared:
    # The columns the models read (fewer to take per snapshot).
    unread = ("ext_user_id", "kind", "run_id")
    touches = facts.touches[[c for c in schemas.FCT_TOUCHES.names if c not in unread]].copy()
    touches["creator"] = _creator(touches["platform"], touches["author_id"])
    orders = facts.seeded_orders
    credits = facts.credits.merge(
        orders[["order_id", "amount_fen", "paid_at", "touch_count"]], on="order_id", how="inner", validate="many_to_one"
    )
    vertical = touches.drop_duplicates(["platform", "author_id"])[["platform", "author_id", "vertical"]]
    credits = credits.merge(vertical, on=["platform", "author_id"], how="left")
    credits["creator"] = _creator(credits["platform"], credits["author_id"])
    credits["touch_day"] = day_numbers(business_day(credits["touch_at"]))
    spend = facts.spend
    if len(spend):
        spend = spend.assign(creator=_creator(spend["platform"], spend["author_id"]))
        spend_day = day_numbers(business_day(spend["spent_at"]))
    else:
        spend = pd.DataFrame(
            {"platform": pd.Series(dtype=str), "author_id": pd.Series(dtype=str), "note_id": pd.Series(dtype=str),
             "amount_fen": pd.Series(dtype="int64"), "creator": pd.Series(dtype=str)}
        )
        spend_day = np.zeros(0, dtype="int32")
    pairs = facts.search_pairs
    pairs = pairs.loc[pairs["is_seeded"].to_numpy(dtype=bool)].reset_index(drop=True)
    brands = facts.brands.drop_duplicates("brand_id")
    return _Prepared(
        touches=touches,
        touch_day=day_numbers(touches["dt"]),
        pairs=pairs,
        pair_day=day_numbers(pairs["dt"]),
        orders=orders,
        order_day=day_numbers(orders["dt"]),
        credits=credits,
        credit_day=day_numbers(credits["dt"]),
        spend=spend,
        spend_day=spend_day,
        note_brands=facts.note_brands[["platform", "note_id", "brand_id"]].drop_duplicates(),
        brand_category=pd.Series(brands["category_id"].to_numpy(), index=brands["brand_id"].to_numpy()),
        codes=_codes(touches, credits, orders, pairs, spend, (brands["brand_id"], facts.note_brands["brand_id"])),
        mix=touches[["creator", "brand_id"]],
    )


def _arrow_text(values) -> pa.Array:
    """A text column (pandas, numpy or Arrow) as one large_string Arrow array."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def _distinct(*cols) -> pa.Array:
    """The sorted distinct non-null values of text columns (code point order, as ``np.unique``)."""
    values = pc.unique(pa.concat_arrays([_arrow_text(c) for c in cols])).drop_null()
    return values.take(pc.sort_indices(values))


def _positions(table: pa.Array, values) -> np.ndarray:
    """Position of each value in ``table`` (``_distinct``'s output); -1 where absent or null."""
    found = pc.index_in(_arrow_text(values), value_set=table)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype("int64")


def _codes(
    touches: pd.DataFrame, credits: pd.DataFrame, orders: pd.DataFrame, pairs: pd.DataFrame, spend: pd.DataFrame,
    brands: tuple[pd.Series, ...],
) -> _Codes:
    user_text = _distinct(*(f["user_id"] for f in (touches, orders, pairs)))
    exploded = pd.DataFrame({"pair": np.arange(len(pairs)), "brand_id": pairs["seeded_brand_ids"].astype(str).str.split("|")})
    exploded = exploded.explode("brand_id")
    exploded = exploded.loc[exploded["brand_id"].fillna("").astype(str) != ""]
    creators = _distinct(*(f["creator"] for f in (touches, credits, spend)))
    creators = creators.filter(pc.not_equal(creators, OTHER))
    creator_text = pa.concat_arrays([creators, pa.array([OTHER], pa.large_string())])
    brand_text = _distinct(touches["brand_id"], orders["brand_id"], exploded["brand_id"], *brands)
    platform_text = pa.array(list(schemas.PLATFORMS), pa.large_string())
    texts = {"platform": platform_text, "creator": creator_text, "brand": brand_text}
    subjects = {level: pd.Index(t.to_numpy(zero_copy_only=False)) for level, t in texts.items()}
    last = _last_touch_creators(touches, pairs)
    return _Codes(
        users=pd.Index(user_text.to_numpy(zero_copy_only=False)),
        subjects=subjects,
        touch_user=_positions(user_text, touches["user_id"]),
        touch_subject={
            "platform": _positions(platform_text, touches["platform"]),
            "creator": _positions(creator_text, touches["creator"]),
            "brand": _positions(brand_text, touches["brand_id"]),
        },
        credit_user=_positions(user_text, credits["user_id"]),
        credit_subject={
            "platform": _positions(platform_text, credits["platform"]),
            "creator": _positions(creator_text, credits["creator"]),
        },
        order_user=_positions(user_text, orders["user_id"]),
        order_brand=_positions(brand_text, orders["brand_id"]),
        order_amount=orders["amount_fen"].to_numpy(dtype="float64"),
        pair_user=_positions(user_text, pairs["user_id"]),
        pair_subject={
            "platform": _positions(platform_text, pairs["last_touch_platform"]),
            "creator": _positions(creator_text, last.reindex(pairs.index).to_numpy(dtype=object)),
        },
        sb_pair=exploded["pair"].to_numpy(dtype="int64"),
        sb_brand=_positions(brand_text, exploded["brand_id"]),
    )


def _between(days: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (days >= lo) & (days <= hi)


def snapshot(p: _Prepared, params: FunnelParams, models: ModelParams, day: date, first_day: date) -> dict[str, pd.DataFrame]:
    """The three model tables as of the end of ``day`` (without run_id)."""
    d = (day - _EPOCH).days
    lo = d - models.model_window_days + 1
    window_start = _EPOCH + timedelta(days=lo)
    touches = p.touches.loc[_between(p.touch_day, lo, d)]
    credits = p.credits.loc[_between(p.credit_day, lo, d)]
    eligible = credits.loc[(credits["model"] == LINEAR).to_numpy(dtype=bool)]
    seed = snapshot_seed(models.bootstrap_seed, day)
    fit = datadriven.channel_attribution(
        touches.assign(author_id=touches["creator"]),
        eligible.assign(author_id=eligible["creator"]),
        credits.assign(author_id=credits["creator"]),
        replicates=models.bootstrap_replicates,
        seed=seed,
        max_channels=models.max_creators,
    )
    channels = _channels(fit, day, window_start)
    spend = p.spend.loc[_between(p.spend_day, lo, d)]
    cost = _cost(p, fit, touches, spend, models, (lo, d), seed)
    cost = cost.assign(as_of_dt=day, window_start_dt=window_start)
    roi = _roi(p, params, models, d, first_day)
    return {
        schemas.AGG_ATTRIBUTION_CHANNELS.name: channels,
        schemas.AGG_COST.name: cost,
        schemas.AGG_ROI_CURVE.name: roi.assign(as_of_dt=day),
    }


def _channels(fit, day: date, window_start: date) -> pd.DataFrame:
    out = fit.channels.copy()
    tied = []
    for (model, kind), group in out.groupby(["model", "channel_kind"], sort=False):
        # Creators: hundreds of channels, tens of thousands of pairs; not listed.
        pairs = datadriven.indistinguishable(fit, model, kind) if kind in TIED_KINDS else []
        partners: dict[str, list[str]] = {}
        for a, b in pairs:
            partners.setdefault(a, []).append(b)
            partners.setdefault(b, []).append(a)
        tied.append(
            pd.Series(
                ["|".join(sorted(partners[c])) if c in partners else None for c in group["channel"]],
                index=group.index,
                dtype=object,
            )
        )
    out["tied_with"] = pd.concat(tied) if tied else pd.Series(dtype=object)
    order = out["channel_kind"].map(fit.markov_order)
    out["markov_order"] = np.where(out["model"] == "markov", order, np.nan)
    return out.assign(as_of_dt=day, window_start_dt=window_start)


# ---------------------------------------------------------------- cost


def _spend_by_subject(p: _Prepared, spend: pd.DataFrame, touches: pd.DataFrame, level: str) -> pd.Series:
    """Spend per subject (platform, creator or brand; brands: ``_spend_by_brand``)."""
    if not len(spend):
        return pd.Series(dtype="float64")
    if level == "brand":
        return _spend_by_brand(p, spend, touches)
    subject = _text(spend["platform"] if level == "platform" else spend["creator"])
    return spend["amount_fen"].astype("float64").groupby(subject).sum()


def _spend_by_brand(p: _Prepared, spend: pd.DataFrame, touches: pd.DataFrame) -> pd.Series:
    """Spend per brand: a note's spend split equally over the note's brands; a creator's spend
    without a note over the brands of the creator's ``touches`` (those of the same days), in
    proportion to them; spend that reaches no brand is left out."""
    if not len(spend):
        return pd.Series(dtype="float64")
    amount = spend["amount_fen"].astype("float64")
    on_note = spend["note_id"].notna().to_numpy(dtype=bool)
    noted = spend.loc[on_note, ["platform", "note_id"]].assign(amount=amount[on_note].to_numpy())
    noted = noted.merge(p.note_brands, on=["platform", "note_id"], how="inner")
    noted["amount"] = noted["amount"] / noted.groupby(["platform", "note_id"])["brand_id"].transform("size")
    bare = spend.loc[~on_note, ["creator"]].assign(amount=amount[~on_note].to_numpy())
    mix = touches.groupby(["creator", "brand_id"], observed=True).size().rename("n").reset_index()
    mix["w"] = mix["n"] / mix.groupby("creator")["n"].transform("sum")
    bare = bare.merge(mix, on="creator", how="inner")
    bare["amount"] = bare["amount"] * bare["w"]
    both = pd.concat([noted[["brand_id", "amount"]], bare[["brand_id", "amount"]]], ignore_index=True)
    return both.groupby(_text(both["brand_id"]))["amount"].sum()


def _last_touch_creators(touches: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """For each seeded pair (index of ``pairs``), the creator of the latest touch, for any brand it
    is seeded for, before the search."""
    exploded = pairs[["user_id", "searched_at", "seeded_brand_ids"]].copy()
    exploded["pair"] = np.arange(len(exploded))
    exploded["brand_id"] = exploded["seeded_brand_ids"].str.split("|")
    exploded = exploded.explode("brand_id")
    exploded = exploded.loc[exploded["brand_id"].fillna("").astype(str) != ""]
    left = exploded.sort_values("searched_at", kind="stable")
    right = touches[["user_id", "brand_id", "touch_at", "creator"]].sort_values("touch_at", kind="stable")
    left = left.assign(user_id=left["user_id"].astype(str), brand_id=left["brand_id"].astype(str))
    right = right.assign(user_id=right["user_id"].astype(str), brand_id=right["brand_id"].astype(str))
    hit = merge_asof(
        left, right, left_on="searched_at", right_on="touch_at", by=["user_id", "brand_id"],
        allow_exact_matches=False, direction="backward",
    )
    hit = hit.dropna(subset=["touch_at"]).sort_values(["pair", "touch_at", "creator"], kind="stable")
    last = hit.drop_duplicates("pair", keep="last")
    return pd.Series(last["creator"].to_numpy(), index=pairs.index[last["pair"].to_numpy()])


def _user_matrix(users: np.ndarray, subjects: np.ndarray, value: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """A (subject x window user) matrix of summed values; rows with a code of -1 are left out.
    ``shape`` is (users, subjects)."""
    ok = (users >= 0) & (subjects >= 0)
    return sparse.csr_matrix((value[ok], (subjects[ok], users[ok])), shape=(shape[1], shape[0]))


def _sums(m: sparse.csr_matrix, weights_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row sums of a subject x user matrix, and the same under each replicate's user weights
    (replicates x subjects); ``weights_t`` is users x replicates, C-contiguous."""
    return np.asarray(m.sum(axis=1)).ravel(), np.asarray(m @ weights_t).T


def _interval(reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval per column of replicates x subjects; null where fewer than 95% of
    the replicates define the figure."""
    finite = np.isfinite(reps)
    defined = finite.mean(axis=0) >= 0.95 if reps.shape[0] else np.zeros(reps.shape[1], dtype=bool)
    low, high = datadriven.percentile_interval(np.where(finite, reps, np.nan).T)
    return np.where(defined, low, np.nan), np.where(defined, high, np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(np.isfinite(out), out, np.nan)


def _cost(p: _Prepared, fit, touches: pd.DataFrame, spend: pd.DataFrame, models: ModelParams, window: tuple[int, int], seed: int) -> pd.DataFrame:
    """agg_cost rows (without as_of_dt and run_id) for every model and level."""
    lo, d = window
    c = p.codes
    t_in = _between(p.touch_day, lo, d)
    pr_in = _between(p.pair_day, lo, d)
    o_in = _between(p.order_day, lo, d)
    cr_in = _between(p.credit_day, lo, d)
    # Window users as rows 0..n-1 (a user's bootstrap weight depends on the user id alone).
    present = np.unique(np.concatenate([c.touch_user[t_in], c.pair_user[pr_in], c.order_user[o_in]]))
    present = present[present >= 0]
    row = np.full(len(c.users), -1, dtype="int64")
    row[present] = np.arange(len(present))
    weights = datadriven.bootstrap_weights(c.users.to_numpy()[present], models.bootstrap_replicates, seed)  # (B, U)
    weights = np.ascontiguousarray(weights.T)  # (U, B): one layout for every product below
    # Creators beyond the channels of their own of the attribution are pooled as OTHER.
    creators = c.subjects["creator"]
    kept = np.zeros(len(creators), dtype=bool)
    kept[creators.get_indexer(_text(fit.channels.loc[fit.channels["channel_kind"] == "creator", "channel"]))] = True
    pool = np.where(kept, np.arange(len(creators)), len(creators) - 1)
    order_ids = p.orders["order_id"].to_numpy(dtype=object)[o_in]
    rows = []
    for level in schemas.COST_LEVELS:
        subjects = c.subjects[level]
        shape = (len(present), len(subjects))

        def pooled(codes: np.ndarray, level: str = level) -> np.ndarray:
            return np.where(codes >= 0, pool[np.maximum(codes, 0)], -1) if level == "creator" else codes

        t_sub = pooled(c.touch_subject[level][t_in])
        touch = _user_matrix(row[c.touch_user[t_in]], t_sub, np.ones(len(t_sub)), shape)
        if level == "brand":
            sb_in = pr_in[c.sb_pair]
            sb_user, sb_sub = row[c.pair_user[c.sb_pair[sb_in]]], c.sb_brand[sb_in]
        else:
            sb_user, sb_sub = row[c.pair_user[pr_in]], pooled(c.pair_subject[level][pr_in])
        searched = _user_matrix(sb_user, sb_sub, np.ones(len(sb_sub)), shape)
        searched.data[:] = 1.0  # distinct users
        spend_s = _spend_by_subject(p, spend, touches, level)
        spend_v = np.zeros(len(subjects))
        at = subjects.get_indexer(spend_s.index.to_numpy(dtype=object))
        np.add.at(spend_v, pooled(at)[at >= 0], spend_s.to_numpy()[at >= 0])
        touch_n, touch_r = _sums(touch, weights)
        sb_n, sb_r = _sums(searched, weights)
        cost = np.where(spend_v > 0, spend_v, np.nan)  # no spend: no cost figure
        for model in schemas.ALL_MODELS:
            if level == "brand":
                user, sub = row[c.order_user[o_in]], c.order_brand[o_in]
                credit = c.order_amount[o_in]
                share = np.ones(len(credit))
            elif model in schemas.DATA_DRIVEN_MODELS:
                oc = fit.order_credits
                oc = oc.loc[((oc["model"] == model) & (oc["channel_kind"] == level)).to_numpy(dtype=bool)]
                at = pd.Index(order_ids).get_indexer(_text(oc["order_id"]))
                user = np.where(at >= 0, row[c.order_user[o_in][np.maximum(at, 0)]], -1)
                sub = pooled(subjects.get_indexer(_text(oc["channel"])))
                credit = oc["credit_fen"].to_numpy(dtype="float64")
                share = credit / np.where(at >= 0, c.order_amount[o_in][np.maximum(at, 0)], np.nan)
            else:
                m = cr_in & (p.credits["model"] == model).to_numpy(dtype=bool)
                user, sub = row[c.credit_user[m]], pooled(c.credit_subject[level][m])
                credit = p.credits["credit_fen"].to_numpy(dtype="float64")[m]
                share = credit / p.credits["amount_fen"].to_numpy(dtype="float64")[m]
            orders_n, orders_r = _sums(_user_matrix(user, sub, share, shape), weights)
            gmv_n, gmv_r = _sums(_user_matrix(user, sub, credit, shape), weights)
            shown = (touch_n > 0) | (sb_n > 0) | (spend_v > 0) | (orders_n > 0)
            frame = pd.DataFrame(
                {
                    "model": model,
                    "level": level,
                    "subject_id": subjects.to_numpy(dtype=object)[shown],
                    "spend_fen": spend_v[shown],
                    "touches": touch_n[shown],
                    "search_back_users": sb_n[shown],
                    "seeded_orders": orders_n[shown],
                    "attributed_gmv_fen": gmv_n[shown],
                }
            )
            for name, point, reps in (
                ("cost_per_touch", _ratio(cost, touch_n), _ratio(cost[None, :], touch_r)),
                ("cost_per_search_back_user", _ratio(cost, sb_n), _ratio(cost[None, :], sb_r)),
                ("cost_per_seeded_order", _ratio(cost, orders_n), _ratio(cost[None, :], orders_r)),
                ("roas", _ratio(gmv_n, cost), _ratio(gmv_r, cost[None, :])),
            ):
                point, reps = point[shown], reps[:, shown]
                low, high = _interval(reps)
                defined = np.isfinite(point)
                frame[name] = point
                frame[f"{name}_ci_low"] = np.where(defined, low, np.nan)
                frame[f"{name}_ci_high"] = np.where(defined, high, np.nan)
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------- ROI(T+x)


def _roi(p: _Prepared, params: FunnelParams, models: ModelParams, d: int, first_day: date) -> pd.DataFrame:
    """agg_roi_curve rows (without as_of_dt) as of the end of day number d."""
    mw = models.model_window_days
    first = (first_day - _EPOCH).days
    linear = p.credits.loc[(p.credits["model"] == LINEAR).to_numpy(dtype=bool) & (p.credit_day <= d)]
    lag_us = (linear["paid_at"] - linear["touch_at"]).to_numpy(dtype="timedelta64[us]").astype("int64")
    brands = p.brand_category
    cats = pd.Series(brands.to_numpy(), index=brands.index)
    cycles = pd.Series(_cycle_days(params, cats), index=brands.index)
    out = []
    for x in sorted(set(schemas.ROI_DAYS) | set(cycles.unique().tolist())):
        end = d - x
        start = end - mw + 1
        in_cohort = _between(linear["touch_day"].to_numpy(), start, end) & (lag_us < x * DAY_US)
        gmv = linear.loc[in_cohort].groupby("brand_id")["credit_fen"].sum()
        spend = _spend_by_brand(
            p, p.spend.loc[_between(p.spend_day, start, end)], p.mix.loc[_between(p.touch_day, start, end)]
        )
        subjects = sorted(set(gmv.index) | set(spend.index))
        if not subjects:
            continue
        frame = pd.DataFrame({"brand_id": subjects})
        frame["category_id"] = brands.reindex(subjects).to_numpy()
        frame = frame.dropna(subset=["category_id"])
        cycle = cycles.reindex(frame["brand_id"]).to_numpy()
        frame = frame.loc[(x in schemas.ROI_DAYS) | (cycle == x)]
        frame["x_days"] = x
        frame["cohort_start_dt"] = _EPOCH + timedelta(days=start)
        frame["cohort_end_dt"] = _EPOCH + timedelta(days=end)
        frame["is_decision_cycle"] = cycles.reindex(frame["brand_id"]).to_numpy() == x
        frame["is_complete"] = start >= first
        frame["gmv_fen"] = gmv.reindex(frame["brand_id"]).fillna(0.0).to_numpy()
        frame["spend_fen"] = spend.reindex(frame["brand_id"]).fillna(0.0).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["roi"] = np.where(frame["spend_fen"] > 0, frame["gmv_fen"] / frame["spend_fen"], np.nan)
        out.append(frame)
    if not out:
        return schemas.empty_frame(schemas.AGG_ROI_CURVE).drop(columns=["as_of_dt", "run_id"])
    return pd.concat(out, ignore_index=True)
