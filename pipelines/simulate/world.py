"""The latent world: users, their external accounts and links, creators, notes, and behaviour.

Everything is integer codes and epoch seconds (UTC) in numpy arrays; strings are made once per
dimension (user ids, account ids, note ids) and taken by index when files are written. Behaviour is
driven by what the funnel can observe, so that its estimand is exactly the planted factor:

- a touch is an exposure of a touch kind whose account's winning link (highest confidence, ties to
  the smallest user_id) reaches ``min_link_confidence``, for each brand the note mentions;
- search-backs follow touches; every other search is background;
- orders answer searches only: for a kept search pair (s, c) and each brand b of c, one Bernoulli
  draw with probability ``p0 * f`` where f is 1 unseeded, ``factor_vertical_match`` when the last
  seeding touch's creator vertical is c, else ``factor_mismatch``; with ``platform_effects`` set,
  f is 1 + the sum of the planted e_p over the distinct platforms of the pair's seeding touches
  instead (``planted_orders`` / ``planted_platform_shares``: each platform's planted share).

Seed and conversion windows are those of the brand's category (SPEC 5.11, ``funnel.category_windows``
of the world's funnel parameters), as the funnel reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from .. import schemas
from ..reference import Reference, canonical_author_id
from ..settings import FunnelParams
from ..timeutil import day_start_utc
from .arrival import ArrivalParams
from .vocab import SEPARATORS, Vocabulary

DAY = 86_400
PLATFORM_CODE = {p: i for i, p in enumerate(schemas.PLATFORMS)}
KIND_CODE = {k: i for i, k in enumerate(schemas.EXPOSURE_KINDS)}
#: Planted per-platform incremental effects e_p for ``WorldParams.platform_effects`` (what
#: bench/coverage.py plants; docs/simulator.md). Douyin, the platform with the most exposures,
#: has the smallest effect and Bilibili, one of the least exposed, the largest, so that exposure
#: volume and incremental effect rank the platforms differently.
PLATFORM_EFFECTS: tuple[tuple[str, float], ...] = (
    ("xiaohongshu", 1.0),
    ("douyin", 0.2),
    ("bilibili", 1.5),
    ("kuaishou", 0.6),
    ("weibo", 0.4),
)


@dataclass(frozen=True)
class WorldParams:
    """Every knob of the simulated world; written verbatim into ground_truth.json."""

    # planted effect (the estimand: see docs/simulator.md)
    p0: float = 0.03
    factor_vertical_match: float = 2.7
    factor_mismatch: float = 1.3
    # Confounding by engagement (docs/simulator.md): 0 plants none. Above 0, a user's activity
    # (user_weight, which sets the exposure rate) also sets their rate of background searches, and a
    # pair's baseline purchase probability is p0 * (1 + confounding * band), band the index of the
    # searching user's activity band of SPEC 5.10 (0, 1-2, 3-5, 6-10, 11+ searches in the activity
    # window before t_s). Seeded users are the active ones, so the naive uplift overstates f; the
    # engagement-adjusted uplift over those strata estimates it.
    confounding: float = 0.0
    # Per-platform incremental effects (docs/simulator.md, "Platform effects"): empty plants none
    # and the vertical-match factors above apply. Set ((platform, e_p), ...; a mapping is accepted),
    # a seeded pair's factor is 1 + the sum of e_p over the distinct platforms of its seeding set
    # (the user's touches for the brand in [t_s - seed_window, t_s)) instead, and ground_truth.json
    # holds each platform's planted share (planted_platform_shares). PLATFORM_EFFECTS: the values
    # bench/coverage.py plants.
    platform_effects: tuple[tuple[str, float], ...] = ()
    p_search_back: float = 0.3
    search_back_delay_mean_days: float = 2.0
    background_searches_per_user_day: float = 0.03
    # exposure volume and mix
    exposures_per_user_day: float = 3.0
    user_activity_sigma: float = 0.8
    kind_probs: tuple[tuple[str, float], ...] = (
        ("impression", 0.70),
        ("read", 0.20),
        ("like", 0.05),
        ("collect", 0.03),
        ("comment", 0.01),
        ("share", 0.01),
    )
    platform_presence: tuple[tuple[str, float], ...] = (
        ("xiaohongshu", 0.60),
        ("douyin", 0.70),
        ("bilibili", 0.30),
        ("kuaishou", 0.30),
        ("weibo", 0.25),
    )
    # id links
    link_share: float = 0.85  # accounts with any link claim; the rest are never linked
    low_confidence_share: float = 0.12  # of linked accounts, true claim below the threshold
    competing_claim_share: float = 0.03  # of linked accounts, a second claim to another user
    competing_wins_share: float = 0.4  # of competing claims, the wrong one has the higher confidence
    competing_tie_share: float = 0.1  # of competing claims, an exact confidence tie
    # notes
    notes_per_user: float = 0.02  # per 30 days of world (pre-start history included)
    min_notes: int = 400
    max_notes: int = 40_000
    history_days: int = 20  # notes published this long before the first day
    platform_note_shares: tuple[tuple[str, float], ...] = (
        ("xiaohongshu", 0.35),
        ("douyin", 0.30),
        ("bilibili", 0.12),
        ("kuaishou", 0.12),
        ("weibo", 0.11),
    )
    unknown_creator_share: float = 0.2  # creators not in creators.csv (unknown vertical)
    brandless_share: float = 0.15
    two_brand_share: float = 0.15
    on_vertical_share: float = 0.65
    brand_only_in_tags_share: float = 0.1
    traditional_note_share: float = 0.08
    redelivered_note_share: float = 0.05
    # orders
    items_per_brand: int = 4
    refunded_extra_share: float = 0.05  # extra refunded orders, per paid order
    missing_brand_orders_share: float = 0.01  # paid orders written without brand_id / category_id
    # spend (SPEC 5.11): what seeding cost; drawn from its own stream, it never moves other draws
    creator_fee_share: float = 0.3  # of notes: the creator is paid a fee for it around publication
    creator_fee_median_fen: int = 80_000  # lognormal, sigma 0.8, in whole yuan
    paid_boost_share: float = 0.1  # of brand-bearing notes: boosted 1-3 times after publication
    paid_boost_median_fen: int = 20_000
    retainer_share: float = 0.1  # of creators in creators.csv: a fee per creator (no note) on day 1
    # funnel parameters the estimand is defined with (SPEC 5 defaults)
    funnel: FunnelParams = field(default_factory=FunnelParams)
    # when files arrive (late notes, link batches, late rows, order versions, re-sends):
    # realistic by default, ArrivalParams.in_order() for an in-order landing zone
    arrival: ArrivalParams = field(default_factory=ArrivalParams)

    def __post_init__(self) -> None:
        effects = self.platform_effects
        pairs = tuple(effects.items()) if isinstance(effects, Mapping) else tuple(effects)
        pairs = tuple((str(p), float(e)) for p, e in pairs)
        unknown = sorted({p for p, _ in pairs} - set(schemas.PLATFORMS))
        if unknown:
            raise ValueError(f"platform_effects: unknown platforms {unknown}; known: {', '.join(schemas.PLATFORMS)}")
        if len({p for p, _ in pairs}) != len(pairs):
            raise ValueError("platform_effects: a platform is named twice")
        if any(not np.isfinite(e) or e < 0 for _, e in pairs):
            raise ValueError("platform_effects: every effect must be finite and >= 0")
        object.__setattr__(self, "platform_effects", pairs)

    def effect_of_platform(self) -> np.ndarray:
        """The planted incremental effect e_p per platform code (0 for a platform not named)."""
        out = np.zeros(len(schemas.PLATFORMS))
        for platform, e in self.platform_effects:
            out[PLATFORM_CODE[platform]] = e
        return out

    def as_dict(self) -> dict:
        """Parameters as plain JSON-able values."""
        out = asdict(self)
        # Written only when set, so that worlds without platform effects keep their ground truth.
        del out["platform_effects"]
        if self.platform_effects:
            out["platform_effects"] = dict(self.platform_effects)
        out["kind_probs"] = dict(self.kind_probs)
        out["platform_presence"] = dict(self.platform_presence)
        out["platform_note_shares"] = dict(self.platform_note_shares)
        out["funnel"]["touch_kinds"] = list(self.funnel.touch_kinds)
        out["funnel"]["kind_weights"] = dict(self.funnel.kind_weights)
        # Written only when set, so that worlds with the global windows keep their ground truth.
        del out["funnel"]["category_windows"]
        if self.funnel.category_windows:
            out["funnel"]["category_windows"] = {c: dict(w) for c, w in self.funnel.category_windows}
        return out


@dataclass
class World:
    """The static world plus the bookkeeping the writers and the ground truth need."""

    params: WorldParams
    start: date
    days: int
    day_starts: np.ndarray  # epoch seconds of 00:00 Asia/Shanghai of each day, and one past the end
    brands: pd.DataFrame  # brand_id, category_id, cat (code), has_alias, has_plain_alias
    categories: pd.DataFrame
    user_ids: np.ndarray  # str, index = user code
    user_weight: np.ndarray
    accounts: pd.DataFrame  # platform (code), user (code), ext_user_id, link_user (code or -1)
    links: pd.DataFrame  # final id_links claims (latest delivery per account): platform, ext_user_id, user_id, confidence
    link_stats: dict
    creators: pd.DataFrame  # platform, raw_id, author_id, vertical ('' unknown), in_seeds
    notes: pd.DataFrame  # one row per note, see make_notes
    note_brands: pd.DataFrame  # note (code), brand (code)
    items: pd.DataFrame  # schemas.ITEMS columns plus brand (code), price_fen
    link_deliveries: pd.DataFrame | None = None  # every id_links row delivered, with its batch day
    link_batches: dict = field(default_factory=dict)

    @property
    def end(self) -> int:
        """Epoch seconds of the end of the last day (exclusive)."""
        return int(self.day_starts[-1])


def day_starts(start: date, days: int) -> np.ndarray:
    """Epoch seconds of 00:00 Asia/Shanghai of each day, plus the end of the last day."""
    return np.array(
        [int(day_start_utc(start + timedelta(days=i)).timestamp()) for i in range(days + 1)],
        dtype=np.int64,
    )


def _numeric_ids(rng: np.random.Generator, n: int, base: int, stride: int) -> np.ndarray:
    """``n`` distinct random-looking decimal ids: base + i * stride + jitter (< stride)."""
    ids = base + np.arange(n, dtype=np.int64) * stride + rng.integers(0, stride, size=n)
    return ids.astype(str)


def _hex_ids(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """``n`` distinct random lowercase hex ids of ``width`` characters."""
    raw = rng.bytes(n * width // 2).hex().encode()
    ids = np.frombuffer(raw, dtype=f"S{width}").astype(str)
    if len(np.unique(ids)) != n:  # 2**(4*width) space: practically never
        raise RuntimeError("hex id collision; choose another seed")
    return ids


def _alnum_ids(rng: np.random.Generator, n: int, prefix: str, width: int) -> np.ndarray:
    """``n`` distinct ids: prefix + ``width`` base-36 characters (Kuaishou's ``3x...`` style)."""
    alphabet = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype="S1")
    codes = rng.integers(0, 36, size=(n, width))
    body = alphabet[codes].view(f"S{width}").ravel().astype(str)
    ids = np.char.add(prefix, body)
    if len(np.unique(ids)) != n:
        raise RuntimeError("id collision; choose another seed")
    return ids


def platform_ids(rng: np.random.Generator, platform: str, n: int, kind: str) -> np.ndarray:
    """Ids shaped like each platform's own: user ids (kind='user') or note ids (kind='note')."""
    if platform == "xiaohongshu":
        return _hex_ids(rng, n, 24)
    if platform == "kuaishou":
        return _alnum_ids(rng, n, "3x", 13)
    if kind == "user":
        base, stride = {"douyin": (10**11, 997), "bilibili": (10**6, 97), "weibo": (10**9, 89)}[platform]
    else:
        base, stride = {
            "douyin": (7 * 10**18, 10**6),
            "bilibili": (10**8, 101),
            "weibo": (5 * 10**15, 10**4),
        }[platform]
    return _numeric_ids(rng, n, base, stride)


def make_users(rng: np.random.Generator, n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """User ids (``u`` + zero-padded number, so string order = number order) and activity weights."""
    width = max(8, len(str(n)))
    ids = np.char.add("u", np.char.zfill(np.arange(1, n + 1).astype(str), width))
    return ids, rng.lognormal(0.0, sigma, size=n)


def make_accounts(rng: np.random.Generator, n_users: int, params: WorldParams) -> pd.DataFrame:
    """External accounts: each user is on each platform with its presence probability."""
    parts = []
    for platform, share in params.platform_presence:
        users = np.flatnonzero(rng.random(n_users) < share)
        parts.append(
            pd.DataFrame(
                {
                    "platform": np.full(len(users), PLATFORM_CODE[platform], dtype=np.int8),
                    "user": users.astype(np.int32),
                    "ext_user_id": platform_ids(rng, platform, len(users), "user"),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def make_links(
    rng: np.random.Generator, accounts: pd.DataFrame, user_ids: np.ndarray, params: WorldParams
) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """id_links claims, the resolved user of every account (-1 when it does not link), and counts.

    Resolution is SPEC 3's: highest confidence wins, ties to the smallest user_id, and the winner
    links only at ``min_link_confidence`` or above. Confidences are rounded to 3 decimals before
    anything is decided, so the written values decide exactly as the simulator did.
    """
    threshold = params.funnel.min_link_confidence
    n = len(accounts)
    claimed = rng.random(n) < params.link_share
    low = claimed & (rng.random(n) < params.low_confidence_share)
    conf = np.where(low, rng.uniform(0.30, threshold, n), rng.uniform(threshold, 1.0, n))
    conf = np.minimum(np.round(conf, 3), 1.0)
    conf = np.where(low & (conf >= threshold), np.round(threshold - 0.001, 3), conf)
    competing = claimed & (rng.random(n) < params.competing_claim_share)
    r = rng.random(n)
    wins = competing & (r < params.competing_wins_share)
    tie = competing & ~wins & (r < params.competing_wins_share + params.competing_tie_share)
    other_user = (accounts["user"].to_numpy() + rng.integers(1, len(user_ids), n)) % len(user_ids)
    other_conf = np.where(
        wins,
        np.minimum(np.round(conf + rng.uniform(0.001, 0.2, n), 3), 1.0),
        np.where(tie, conf, np.round(conf * rng.uniform(0.3, 0.95, n), 3)),
    )
    # a "winning" decoy that rounds to the same value as the true claim is a tie, not a win
    tie |= wins & (other_conf == conf)
    wins &= other_conf > conf

    true_rows = pd.DataFrame(
        {
            "platform": accounts["platform"].to_numpy()[claimed],
            "ext_user_id": accounts["ext_user_id"].to_numpy()[claimed],
            "user": accounts["user"].to_numpy()[claimed],
            "confidence": conf[claimed],
            "account": np.flatnonzero(claimed),
        }
    )
    decoy_rows = pd.DataFrame(
        {
            "platform": accounts["platform"].to_numpy()[competing],
            "ext_user_id": accounts["ext_user_id"].to_numpy()[competing],
            "user": other_user[competing].astype(np.int32),
            "confidence": other_conf[competing],
            "account": np.flatnonzero(competing),
        }
    )
    claims = pd.concat([true_rows, decoy_rows], ignore_index=True)
    # user codes order like user_id strings (zero-padded), so the smaller code is the smaller id
    claims = claims.sort_values(["account", "confidence", "user"], ascending=[True, False, True])
    winner = claims.drop_duplicates("account")
    link_user = np.full(n, -1, dtype=np.int32)
    ok = winner["confidence"].to_numpy() >= threshold
    link_user[winner["account"].to_numpy()[ok]] = winner["user"].to_numpy()[ok]

    links = pd.DataFrame(
        {
            "platform": np.asarray(schemas.PLATFORMS)[claims["platform"].to_numpy()],
            "ext_user_id": claims["ext_user_id"].to_numpy(),
            "user_id": user_ids[claims["user"].to_numpy()],
            "confidence": claims["confidence"].to_numpy(),
        }
    ).sort_values(["platform", "ext_user_id", "user_id"], ignore_index=True)
    true_user = accounts["user"].to_numpy()
    stats = {
        "accounts": int(n),
        "accounts_never_linked": int((~claimed).sum()),
        "accounts_true_claim_below_threshold": int(low.sum()),
        "accounts_with_competing_claims": int(competing.sum()),
        "competing_claims_wrong_user_wins": int((wins & (other_conf >= threshold)).sum()),
        "competing_claims_tied": int(tie.sum()),
        "accounts_resolving_to_a_user": int((link_user >= 0).sum()),
        "accounts_resolving_to_another_user": int(((link_user >= 0) & (link_user != true_user)).sum()),
        "link_rows": int(len(links)),
    }
    return links, link_user, stats


def make_creators(
    rng: np.random.Generator, reference: Reference, raw_creators: pd.DataFrame, params: WorldParams
) -> pd.DataFrame:
    """Creators from creators.csv (with their verticals) plus unknown creators on every platform."""
    known = pd.DataFrame(
        {
            "platform": raw_creators["platform"].astype(str).to_numpy(),
            "raw_id": raw_creators["author_id"].astype(str).to_numpy(),
            "author_id": canonical_author_id(raw_creators["author_id"]).to_numpy(),
        }
    ).merge(reference.creators[["platform", "author_id", "vertical"]], on=["platform", "author_id"])
    # a creators.csv row that holds a hash (not a raw id) can only be written in the 2026-07 schema
    known["raw_id"] = known["raw_id"].where(known["raw_id"] != known["author_id"], "")
    known["in_seeds"] = True
    parts = [known]
    for platform in schemas.PLATFORMS:
        n_known = int((known["platform"] == platform).sum())
        n = max(5, int(round(n_known * params.unknown_creator_share / (1 - params.unknown_creator_share))))
        raw = platform_ids(rng, platform, n, "user")
        parts.append(
            pd.DataFrame(
                {
                    "platform": platform,
                    "raw_id": raw,
                    "author_id": canonical_author_id(pd.Series(raw)).to_numpy(),
                    "vertical": "",
                    "in_seeds": False,
                }
            )
        )
    creators = pd.concat(parts, ignore_index=True)
    creators = creators.drop_duplicates(["platform", "author_id"], ignore_index=True)
    creators["nickname"] = _nicknames(rng, len(creators))
    return creators


_NICK_HEAD = np.array(["小", "阿", "大", "橙", "猫", "鱼", "Lily", "Momo", "一只", "快乐"])
_NICK_TAIL = np.array(["酱", "同学", "日记", "的小屋", "本人", "在路上", "Studio", "不吃香菜", "爱生活", "ya"])


def _nicknames(rng: np.random.Generator, n: int) -> np.ndarray:
    """Creator nicknames (never matched: nicknames are not note text)."""
    head = _NICK_HEAD[rng.integers(0, len(_NICK_HEAD), n)]
    tail = _NICK_TAIL[rng.integers(0, len(_NICK_TAIL), n)]
    return np.char.add(np.char.add(head, rng.integers(0, 1000, n).astype(str)), tail)


def _codes_with_offsets(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows by integer key: (order, start, count) so group k is order[start[k]:start[k]+count[k]]."""
    order = np.argsort(keys, kind="stable")
    count = np.bincount(keys, minlength=n_keys)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return order, start, count


def _pick_in_group(rng, order, start, count, groups: np.ndarray) -> np.ndarray:
    """One uniform row of each requested group; -1 where the group is empty."""
    c = count[groups]
    pos = start[groups] + (rng.random(len(groups)) * c).astype(np.int64)
    if len(order) == 0:
        return np.full(len(groups), -1, dtype=np.int64)
    return np.where(c > 0, order[np.minimum(pos, len(order) - 1)], -1)


def make_notes(
    rng: np.random.Generator,
    world_days: int,
    starts: np.ndarray,
    n_users: int,
    creators: pd.DataFrame,
    brands: pd.DataFrame,
    vocab: Vocabulary,
    params: WorldParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Notes (publication time, creator, text fragments, counts) and their planted brands."""
    n = int(np.clip(round(n_users * params.notes_per_user * (world_days + params.history_days) / 30),
                    params.min_notes, params.max_notes))
    plat_names = [p for p, _ in params.platform_note_shares]
    shares = np.array([s for _, s in params.platform_note_shares])
    platform = rng.choice(len(plat_names), size=n, p=shares / shares.sum())
    platform = np.array([PLATFORM_CODE[plat_names[i]] for i in range(len(plat_names))])[platform]

    creator_platform = creators["platform"].map(PLATFORM_CODE).to_numpy()
    c_order, c_start, c_count = _codes_with_offsets(creator_platform, len(schemas.PLATFORMS))
    creator = _pick_in_group(rng, c_order, c_start, c_count, platform)

    first = starts[0] - params.history_days * DAY
    published = first + (rng.random(n) * (starts[-1] - first)).astype(np.int64)
    published = np.minimum(published, starts[-1] - 1)

    cat_codes = brands["cat"].to_numpy()
    n_cats = int(cat_codes.max()) + 1
    vertical = creators["vertical"].to_numpy()[creator]
    cat_of_id = {c: i for i, c in enumerate(brands.attrs["category_ids"])}
    vertical_code = np.array([cat_of_id.get(v, -1) for v in vertical])
    usable = brands["has_alias"].to_numpy()
    b_order, b_start, b_count = _codes_with_offsets(np.where(usable, cat_codes, n_cats), n_cats + 1)
    # a second brand may be of another category, whose keyword the note need not hold: it is
    # written with a plain (non-context) alias, so only brands that have one qualify
    plain = brands["has_plain_alias"].to_numpy()
    p_order, p_start, p_count = _codes_with_offsets(np.where(plain, cat_codes, n_cats), n_cats + 1)

    r = rng.random(n)
    n_mentions = np.where(r < params.brandless_share, 0, np.where(r < params.brandless_share + params.two_brand_share, 2, 1))
    on_vertical = (vertical_code >= 0) & (rng.random(n) < params.on_vertical_share)
    cat1 = np.where(on_vertical, vertical_code, rng.integers(0, n_cats, n))
    cat1 = np.where(b_count[cat1] > 0, cat1, rng.choice(np.flatnonzero(b_count[:n_cats] > 0), n))
    brand1 = _pick_in_group(rng, b_order, b_start, b_count, cat1)
    brand2 = _pick_in_group(rng, p_order, p_start, p_count, rng.choice(np.flatnonzero(b_count[:n_cats] > 0), n))
    brand1 = np.where(n_mentions >= 1, brand1, -1)
    brand2 = np.where((n_mentions == 2) & (brand2 != brand1), brand2, -1)
    note_cat = np.where(brand1 >= 0, cat_codes[np.maximum(brand1, 0)], np.where(vertical_code >= 0, vertical_code, cat1))

    text = _compose_texts(rng, n, brand1, brand2, note_cat, brands, vocab, params)
    kinds = {"xiaohongshu": 0.15, "douyin": 0.8, "bilibili": 1.0, "kuaishou": 0.9, "weibo": 0.1}
    p_video = np.array([kinds[p] for p in schemas.PLATFORMS])[platform]
    counts = {
        name: np.round(rng.lognormal(mu, 1.6, n)).astype(np.int64)
        for name, mu in (("likes", 5.0), ("collects", 4.2), ("comments", 2.8), ("shares", 2.5))
    }
    notes = pd.DataFrame(
        {
            "platform": platform.astype(np.int8),
            "creator": creator,
            "published": published,
            "brand1": brand1,
            "brand2": brand2,
            "category": note_cat,
            "note_type": np.where(rng.random(n) < p_video, "video", "image"),
            "popularity": rng.lognormal(0.0, 1.0, n),
            **text,
            **counts,
        }
    )
    notes = notes.sort_values(["published", "platform"], kind="stable", ignore_index=True)
    notes["note_id"] = ""
    for platform_name, code in PLATFORM_CODE.items():
        mask = notes["platform"].to_numpy() == code
        notes.loc[mask, "note_id"] = platform_ids(rng, platform_name, int(mask.sum()), "note")
    notes["delivered_day"] = np.clip((np.searchsorted(starts, notes["published"].to_numpy(), "right") - 1), 0, world_days - 1)
    redeliver = rng.random(len(notes)) < params.redelivered_note_share
    lag = rng.integers(1, 6, len(notes))
    notes["redelivered_day"] = np.where(redeliver & (notes["delivered_day"] + lag < world_days), notes["delivered_day"] + lag, -1)
    notes["redeliver_lag"] = np.where(redeliver, lag, 0)  # the arrival plan moves delivered_day
    mentions = pd.DataFrame(
        {
            "note": np.concatenate([np.arange(len(notes)), np.arange(len(notes))]),
            "brand": np.concatenate([notes["brand1"].to_numpy(), notes["brand2"].to_numpy()]),
        }
    )
    note_brands = mentions[mentions["brand"] >= 0].sort_values(["note", "brand"], ignore_index=True)
    return notes, note_brands


def _compose_texts(
    rng: np.random.Generator,
    n: int,
    brand1: np.ndarray,
    brand2: np.ndarray,
    note_cat: np.ndarray,
    brands: pd.DataFrame,
    vocab: Vocabulary,
    params: WorldParams,
) -> dict[str, np.ndarray]:
    """Title, body and tags of each note from checked fragments joined by separators.

    Every alias sits between separators (or at an edge), so leftmost-longest matching finds it
    whole and nothing else; filler and keywords name no brand. Hence brands(note) is exactly
    {brand1, brand2} minus the absent ones.
    """
    trad = rng.random(n) < params.traditional_note_share
    fill_s = vocab.fillers["text"].to_numpy(dtype=object)
    fill_t = vocab.fillers["traditional"].to_numpy(dtype=object)

    def filler(size=n):
        i = rng.integers(0, len(fill_s), size)
        return np.where(trad, fill_t[i], fill_s[i])

    seps = np.array(SEPARATORS, dtype=object)
    title_seps = np.array([s for s in SEPARATORS if s not in ("\n", "\t")], dtype=object)

    def sep(pool=seps):
        return pool[rng.integers(0, len(pool), n)]

    brand_index = {b: i for i, b in enumerate(brands["brand_id"])}
    al = vocab.note_aliases
    al_brand = al["brand_id"].map(brand_index).to_numpy()
    a_order, a_start, a_count = _codes_with_offsets(al_brand, len(brands))
    plain = ~al["context"].to_numpy(dtype=bool)
    p_order, p_start, p_count = _codes_with_offsets(np.where(plain, al_brand, len(brands)), len(brands) + 1)
    tag_ok = al["tag_ok"].to_numpy()
    t_order, t_start, t_count = _codes_with_offsets(np.where(tag_ok, al_brand, len(brands)), len(brands) + 1)
    al_text = al["text"].to_numpy(dtype=object)
    al_script = al["script"].to_numpy(dtype=object)

    def alias(brand, plain_only=False):
        has = brand >= 0
        groups = (p_order, p_start, p_count) if plain_only else (a_order, a_start, a_count)
        idx = _pick_in_group(rng, *groups, np.where(has, brand, 0))
        return np.where(has, al_text[idx], ""), np.where(has, al_script[idx], ""), idx

    kw = vocab.note_keywords
    cat_ids = brands.attrs["category_ids"]
    kw_cat = kw["category_id"].map({c: i for i, c in enumerate(cat_ids)}).to_numpy()
    k_order, k_start, k_count = _codes_with_offsets(kw_cat, len(cat_ids))
    kwi = _pick_in_group(rng, k_order, k_start, k_count, note_cat)
    keyword = np.where(trad, kw["traditional"].to_numpy(dtype=object)[kwi], kw["text"].to_numpy(dtype=object)[kwi])
    kwi2 = _pick_in_group(rng, k_order, k_start, k_count, note_cat)
    keyword2 = np.where(trad, kw["traditional"].to_numpy(dtype=object)[kwi2], kw["text"].to_numpy(dtype=object)[kwi2])

    a1, s1, _ = alias(brand1)
    a1_title, _, _ = alias(brand1)
    a2, s2, _ = alias(brand2, plain_only=True)  # brand1's category keyword is always in the note
    has_tag_alias = (brand1 >= 0) & (t_count[np.maximum(brand1, 0)] > 0)
    tag_idx = _pick_in_group(rng, t_order, t_start, t_count, np.maximum(brand1, 0))
    tag_alias = np.where(has_tag_alias, al_text[tag_idx], "")
    tag_script = np.where(has_tag_alias, al_script[tag_idx], "")
    only_tags = has_tag_alias & (rng.random(n) < params.brand_only_in_tags_share)
    alias_tag = has_tag_alias & (only_tags | (rng.random(n) < 0.3))
    in_title = (brand1 >= 0) & ~only_tags & (rng.random(n) < 0.5)

    title = filler() + sep(title_seps) + np.where(in_title, a1_title, keyword) + sep(title_seps) + filler()
    body_brand1 = np.where((brand1 >= 0) & ~only_tags, a1, filler())
    body = (
        filler() + sep() + body_brand1 + sep() + keyword2 + sep() + filler()
        + np.where(brand2 >= 0, sep() + a2, "") + sep() + filler() + sep() + filler()
    )
    tf_s = vocab.tag_fillers["text"].to_numpy(dtype=object)
    tf_t = vocab.tag_fillers["traditional"].to_numpy(dtype=object)
    tfi = rng.integers(0, len(tf_s), n)
    tag_filler = np.where(trad, tf_t[tfi], tf_s[tfi])
    # tags are |-joined here and split by the exporters (no tag holds "|": aliases are checked)
    tags = keyword + "|" + tag_filler + np.where(alias_tag, "|" + tag_alias, "")
    scripts = {
        "traditional_notes": trad,
        "alias_script_1": np.where(in_title | ((brand1 >= 0) & ~only_tags), s1, ""),
        "alias_script_2": s2,
        "alias_script_tag": np.where(alias_tag, tag_script, ""),
    }
    return {"title": title, "body": body, "tags": tags, **scripts}


def make_items(rng: np.random.Generator, brands: pd.DataFrame, params: WorldParams) -> pd.DataFrame:
    """The item catalog: a few items per brand with a price in fen."""
    k = params.items_per_brand
    brand = np.repeat(np.arange(len(brands)), k)
    price = (np.round(rng.lognormal(np.log(15_000), 0.9, len(brand)) / 100) * 100 + 90).astype(np.int64)
    items = pd.DataFrame(
        {
            "item_id": np.char.add("i", np.char.zfill(np.arange(1, len(brand) + 1).astype(str), 7)),
            "brand_id": brands["brand_id"].to_numpy()[brand],
            "category_id": brands["category_id"].to_numpy()[brand],
            "brand": brand,
            "price_fen": price,
        }
    )
    items["title"] = items["brand_id"].str.removeprefix("b_").str.replace("_", " ") + " item " + (np.arange(len(items)) % k + 1).astype(str)
    return items


def build_world(
    rng: np.random.Generator,
    *,
    users: int,
    days: int,
    start: date,
    reference: Reference,
    raw_creators: pd.DataFrame,
    vocab: Vocabulary,
    params: WorldParams,
) -> World:
    """The static world: users, accounts, links, creators, notes and items."""
    if users < 2:
        raise ValueError(f"users must be at least 2 (links need another user to compete), got {users}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    starts = day_starts(start, days)
    category_ids = list(reference.categories["category_id"])
    brands = reference.brands[["brand_id", "category_id"]].copy()
    brands["cat"] = brands["category_id"].map({c: i for i, c in enumerate(category_ids)}).to_numpy()
    brands["has_alias"] = brands["brand_id"].isin(vocab.note_aliases["brand_id"]).to_numpy()
    plain_aliases = vocab.note_aliases[~vocab.note_aliases["context"].astype(bool)]
    brands["has_plain_alias"] = brands["brand_id"].isin(plain_aliases["brand_id"]).to_numpy()
    brands.attrs["category_ids"] = category_ids
    user_ids, weight = make_users(rng, users, params.user_activity_sigma)
    accounts = make_accounts(rng, users, params)
    links, link_user, link_stats = make_links(rng, accounts, user_ids, params)
    accounts["link_user"] = link_user
    creators = make_creators(rng, reference, raw_creators, params)
    notes, note_brands = make_notes(rng, days, starts, users, creators, brands, vocab, params)
    items = make_items(rng, brands, params)
    return World(
        params=params, start=start, days=days, day_starts=starts, brands=brands,
        categories=reference.categories, user_ids=user_ids, user_weight=weight, accounts=accounts,
        links=links, link_stats=link_stats, creators=creators, notes=notes,
        note_brands=note_brands, items=items,
    )


# ---------------------------------------------------------------- spend (SPEC 5.11)


def _yuan(rng: np.random.Generator, median_fen: int, n: int) -> np.ndarray:
    """Lognormal amounts (sigma 0.8) in whole yuan, at least 1 yuan (100 fen)."""
    fen = rng.lognormal(np.log(median_fen), 0.8, n)
    return np.maximum(np.round(fen / 100), 1).astype(np.int64) * 100


def make_spend(rng: np.random.Generator, world: World) -> pd.DataFrame:
    """What seeding cost: creator fees, paid boosts and retainers inside the world's days.

    - a creator fee per (creator, note) for ``creator_fee_share`` of notes, paid from 3 days
      before to 1 day after publication;
    - ``paid_boost_share`` of brand-bearing notes boosted 1-3 times, boost i on day i after
      publication (so one note's boosts never share a time);
    - a retainer (note -1) for ``retainer_share`` of the creators of creators.csv, on the first day.

    Spends paid outside the world's days (notes published before it) are left out. Columns:
    platform (code), creator (row of world.creators), note (row of world.notes, -1: none),
    spend_type, amount_fen, t (epoch seconds); one row per spend, sorted by time.
    """
    p, notes, creators = world.params, world.notes, world.creators
    n = len(notes)
    published = notes["published"].to_numpy()
    fee = rng.random(n) < p.creator_fee_share
    fee_t = published + rng.integers(-3 * DAY, DAY, n)
    fee_amount = _yuan(rng, p.creator_fee_median_fen, n)
    branded = notes["brand1"].to_numpy() >= 0
    boosts = np.where(branded & (rng.random(n) < p.paid_boost_share), rng.integers(1, 4, n), 0)
    b_note = np.repeat(np.arange(n), boosts)
    b_seq = np.arange(len(b_note)) - np.repeat(np.cumsum(boosts) - boosts, boosts)
    b_t = published[b_note] + (b_seq + 1) * DAY - rng.integers(0, DAY // 2, len(b_note))
    b_amount = _yuan(rng, p.paid_boost_median_fen, len(b_note))
    known = np.flatnonzero(creators["in_seeds"].to_numpy())
    kept = known[rng.random(len(known)) < p.retainer_share]
    r_t = world.day_starts[0] + 9 * 3600 + rng.integers(0, 9 * 3600, len(kept))
    r_amount = _yuan(rng, 4 * p.creator_fee_median_fen, len(kept))
    note_creator = notes["creator"].to_numpy()
    fees = np.flatnonzero(fee)
    spend = pd.DataFrame(
        {
            "creator": np.concatenate([note_creator[fees], note_creator[b_note], kept]),
            "note": np.concatenate([fees, b_note, np.full(len(kept), -1)]),
            "spend_type": np.repeat(list(schemas.SPEND_TYPES) + [schemas.SPEND_TYPES[0]], [len(fees), len(b_note), len(kept)]),
            "amount_fen": np.concatenate([fee_amount[fees], b_amount, r_amount]),
            "t": np.concatenate([fee_t[fees], b_t, r_t]),
        }
    )
    spend.insert(0, "platform", creators["platform"].map(PLATFORM_CODE).to_numpy()[spend["creator"].to_numpy()].astype(np.int8))
    inside = (spend["t"] >= world.day_starts[0]) & (spend["t"] < world.end)
    return spend[inside].sort_values(["t", "creator", "note", "spend_type"], kind="stable", ignore_index=True)


# ---------------------------------------------------------------- behaviour


def exposures_for_day(rng: np.random.Generator, world: World, day: int) -> pd.DataFrame:
    """One day's exposure events: account, note, time (epoch s), kind, dwell (ms, -1 = none)."""
    p = world.params
    acc = world.accounts
    weight = world.user_weight[acc["user"].to_numpy()]
    n = rng.poisson(p.exposures_per_user_day * len(world.user_ids))
    account = np.searchsorted(np.cumsum(weight), rng.random(n) * weight.sum(), side="right")
    account = np.minimum(account, len(acc) - 1)
    platform = acc["platform"].to_numpy()[account]
    t0 = world.day_starts[day]
    notes = world.notes
    note = np.full(n, -1, dtype=np.int64)
    for code in range(len(schemas.PLATFORMS)):
        rows = np.flatnonzero(notes["platform"].to_numpy() == code)  # sorted by published already
        avail = rows[notes["published"].to_numpy()[rows] < t0]
        here = np.flatnonzero(platform == code)
        if len(avail) == 0 or len(here) == 0:
            continue
        cum = np.cumsum(notes["popularity"].to_numpy()[avail])
        pick = np.searchsorted(cum, rng.random(len(here)) * cum[-1], side="right")
        note[here] = avail[np.minimum(pick, len(avail) - 1)]
    keep = note >= 0
    # diurnal: more in the evening (Asia/Shanghai), none of it matters to the estimand
    hour_w = np.array([2, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 4, 4, 4, 5, 6, 7, 8, 9, 8, 5], dtype=float)
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    t = t0 + hour * 3600 + rng.integers(0, 3600, n)
    kinds = np.array([KIND_CODE[k] for k, _ in p.kind_probs])
    kp = np.array([v for _, v in p.kind_probs])
    kind = kinds[rng.choice(len(kinds), size=n, p=kp / kp.sum())]
    dwell = np.where(kind == KIND_CODE["impression"], -1, np.round(rng.lognormal(9.6, 0.9, n)).astype(np.int64))
    out = pd.DataFrame({"account": account, "note": note, "t": t, "kind": kind.astype(np.int8), "dwell": dwell})
    return out[keep].sort_values(["t", "account", "note", "kind"], kind="stable", ignore_index=True)


def touches_of(world: World, exposures: pd.DataFrame) -> pd.DataFrame:
    """Observable touches of exposures: user, brand, time, and the fields touch order needs."""
    touch_kinds = np.array([KIND_CODE[k] for k in world.params.funnel.touch_kinds])
    acc = world.accounts
    user = acc["link_user"].to_numpy()[exposures["account"].to_numpy()]
    ok = np.isin(exposures["kind"].to_numpy(), touch_kinds) & (user >= 0)
    e = exposures[ok]
    nb = world.note_brands
    t = e.assign(user=user[ok]).merge(nb, on="note", how="inner")
    return t[["user", "brand", "t", "note", "kind", "account"]]


def touch_order_keys(world: World, touches: pd.DataFrame) -> list[np.ndarray]:
    """Keys (primary last, for np.lexsort) of touch order: time, platform, note_id, kind, ext_user_id."""
    notes = world.notes
    note_rank = np.empty(len(notes), dtype=np.int64)
    note_rank[np.argsort(notes["note_id"].to_numpy(), kind="stable")] = np.arange(len(notes))
    plat_rank = np.argsort(np.argsort(np.asarray(schemas.PLATFORMS)))
    kind_rank = np.argsort(np.argsort(np.asarray(schemas.EXPOSURE_KINDS)))
    acc_ids = world.accounts["ext_user_id"].to_numpy()
    acc_rank = np.empty(len(acc_ids), dtype=np.int64)
    acc_rank[np.argsort(acc_ids, kind="stable")] = np.arange(len(acc_ids))
    note = touches["note"].to_numpy()
    return [
        acc_rank[touches["account"].to_numpy()],
        kind_rank[touches["kind"].to_numpy()],
        note_rank[note],
        plat_rank[notes["platform"].to_numpy()[note]],
        touches["t"].to_numpy(),
    ]


def window_seconds(world: World, which: int) -> int | np.ndarray:
    """The seed (``which`` 0) or conversion (1) window in whole seconds: one int when no category
    has windows of its own, else one per category code (SPEC 5.11); index it with ``_of``."""
    funnel = world.params.funnel
    if not funnel.category_windows:
        return int(funnel.windows_of(None)[which].total_seconds())
    ids = world.brands.attrs["category_ids"]
    return np.array([int(funnel.windows_of(c)[which].total_seconds()) for c in ids], dtype=np.int64)


def _of(window: int | np.ndarray, cat: np.ndarray) -> int | np.ndarray:
    """The window of each category code in ``cat`` (the one window when there is one)."""
    return window if np.ndim(window) == 0 else window[cat]


def search_backs(rng: np.random.Generator, world: World, touches: pd.DataFrame) -> pd.DataFrame:
    """Searches that follow touches: probability p_search_back, delay in (0, seed_window) of the
    brand's category."""
    p = world.params
    hit = rng.random(len(touches)) < p.p_search_back
    tt = touches[hit]
    cat = world.brands["cat"].to_numpy()[tt["brand"].to_numpy()]
    window = _of(window_seconds(world, 0), cat)
    mean = p.search_back_delay_mean_days * DAY
    u = rng.random(len(tt))
    # truncated exponential on [0, window - 1): the search stays inside the seed window
    delay = 1 + np.floor(-mean * np.log1p(-u * (1 - np.exp(-(window - 1) / mean)))).astype(np.int64)
    delay = np.minimum(delay, window - 1)
    return pd.DataFrame(
        {
            "user": tt["user"].to_numpy(),
            "cat": cat,
            "t": tt["t"].to_numpy() + delay,
            "source": np.int8(1),
            "brand_hint": tt["brand"].to_numpy(),
        }
    )


def background_searches(rng: np.random.Generator, world: World) -> pd.DataFrame:
    """Searches independent of any note: uniform users, categories and times."""
    p = world.params
    n_users = len(world.user_ids)
    n = rng.poisson(p.background_searches_per_user_day * n_users * world.days)
    first, end = world.day_starts[0], world.end
    if p.confounding > 0:  # active users search more, in proportion to their activity
        weight = world.user_weight
        user = np.searchsorted(np.cumsum(weight), rng.random(n) * weight.sum(), side="right")
        user = np.minimum(user, n_users - 1)
    else:
        user = rng.integers(0, n_users, n)
    return pd.DataFrame(
        {
            "user": user.astype(np.int32),
            "cat": rng.integers(0, len(world.categories), n),
            "t": first + (rng.random(n) * (end - first)).astype(np.int64),
            "source": np.int8(0),
            "brand_hint": -1,
        }
    )


def space_searches(searches: pd.DataFrame, conversion_seconds: int | np.ndarray) -> tuple[pd.DataFrame, int]:
    """Drop every search within conversion_window + 1 s of the previous search of its user+category
    (``conversion_seconds``: one window, or one per category code).

    One pass over the original sequence suffices: if a search is kept, its gap to the immediately
    preceding search (kept or dropped) exceeds the limit, and every earlier search is earlier still,
    so kept searches are more than the limit apart from all others. Their conversion windows are
    then disjoint and no pair can convert on another pair's order.
    """
    s = searches.sort_values(["user", "cat", "t", "source"], kind="stable", ignore_index=True)
    same = (s["user"].to_numpy()[1:] == s["user"].to_numpy()[:-1]) & (s["cat"].to_numpy()[1:] == s["cat"].to_numpy()[:-1])
    gap = np.diff(s["t"].to_numpy())
    limit = _of(conversion_seconds, s["cat"].to_numpy()[1:])
    drop = np.concatenate([[False], same & (gap <= limit + 1)])
    return s[~drop].reset_index(drop=True), int(drop.sum())


def seeded_lookup(world: World, touches: pd.DataFrame, pairs: pd.DataFrame, *, platforms: bool = False) -> pd.DataFrame:
    """For (user, brand, t) pairs: the last touch of that user+brand strictly before t, in touch order.

    Touches are sorted by (user, brand, touch order); a pair's composite key (user, brand, t)
    searched on the left finds the position after every touch with t_touch < t_s, so the element
    before it is the last such touch (the latest in touch order among equal times). The same
    answer as a merge_asof by (user, brand) with allow_exact_matches=False.

    With ``platforms``, also ``seed_platforms``: the pair's seeding set, the distinct platforms of
    the user's touches of the brand in [t - seed_window, t), as a bit mask (bit ``PLATFORM_CODE``;
    0 when unseeded). Those touches are one run of the sorted keys, from the key (user, brand,
    t - seed_window) searched on the left to the pair's own position; a platform is in the set
    when its running count of touches differs at the two ends.
    """
    nb = len(world.brands)
    t_base = world.day_starts[0] - world.params.history_days * DAY
    shift = np.int64(1 << 24)  # > seconds of any world this simulator makes (194 days)
    if (world.end - t_base) >= shift:
        raise ValueError("world too long for the composite touch key; use at most 150 days")
    keys = touch_order_keys(world, touches)
    group = touches["user"].to_numpy().astype(np.int64) * nb + touches["brand"].to_numpy()
    order = np.lexsort(keys + [group])
    tg = group[order]
    tt = touches["t"].to_numpy()[order] - t_base
    comp = tg * shift + tt
    pg = pairs["user"].to_numpy().astype(np.int64) * nb + pairs["brand"].to_numpy()
    q = pg * shift + (pairs["t"].to_numpy() - t_base)
    pos = np.searchsorted(comp, q, side="left") - 1
    found = pos >= 0
    pos_c = np.maximum(pos, 0)
    found &= tg[pos_c] == pg if len(tg) else np.zeros(len(pg), dtype=bool)
    last_t = np.where(found, tt[pos_c] + t_base if len(tt) else 0, -1)
    window = _of(window_seconds(world, 0), world.brands["cat"].to_numpy()[pairs["brand"].to_numpy()])
    seeded = found & (last_t >= pairs["t"].to_numpy() - window)
    src = order[pos_c] if len(order) else np.zeros(len(pg), dtype=np.int64)
    last_note = np.where(seeded, touches["note"].to_numpy()[src] if len(order) else -1, -1)
    out = pd.DataFrame({"seeded": seeded, "last_touch_t": np.where(seeded, last_t, -1), "last_note": last_note})
    if platforms:
        # touches never precede the first day, so clipping the window's start at t_base loses none
        lo = np.searchsorted(comp, pg * shift + np.maximum(pairs["t"].to_numpy() - window - t_base, 0), side="left")
        hi = pos + 1  # one past the pair's last touch
        plat = world.notes["platform"].to_numpy()[touches["note"].to_numpy()[order]]
        mask = np.zeros(len(pg), dtype=np.int64)
        for code in range(len(schemas.PLATFORMS)):  # one running count at a time (memory)
            running = np.concatenate([[0], np.cumsum(plat == code, dtype=np.int64)])
            mask |= (running[hi] > running[lo]).astype(np.int64) << code
        out["seed_platforms"] = np.where(seeded, mask, 0)
    return out


def activity_bands(world: World, searches: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """Per pair: the band index (into ``schemas.ACTIVITY_BANDS``) of its user's distinct searches in
    ``[t - activity_window, t)``, as SPEC 5.10 strata count them (the searches are the kept ones)."""
    base = world.day_starts[0]  # no search is earlier
    shift = np.int64(1 << 24)  # > seconds of any world this simulator makes (see seeded_lookup)
    comp = np.sort(searches["user"].to_numpy().astype(np.int64) * shift + (searches["t"].to_numpy() - base))
    user = pairs["user"].to_numpy().astype(np.int64) * shift
    at = pairs["t"].to_numpy() - base
    window = int(world.params.funnel.activity_window.total_seconds())
    count = np.searchsorted(comp, user + at, "left") - np.searchsorted(comp, user + np.maximum(at - window, 0), "left")
    return np.searchsorted(np.asarray(schemas.activity_band_lows()), count, "right") - 1


def platform_bits(mask: np.ndarray) -> np.ndarray:
    """(len(mask), platforms) 0/1 matrix of platform bit masks (``seeded_lookup``'s seed_platforms)."""
    return ((np.asarray(mask, dtype=np.int64)[:, None] >> np.arange(len(schemas.PLATFORMS))) & 1).astype(np.float64)


@dataclass
class Behaviour:
    """Searches and orders of the world, with the bookkeeping of the planted estimand."""

    searches: pd.DataFrame  # search_id, user, cat, t, source, query, query_script
    orders: pd.DataFrame  # order_id, user, brand, item, amount_fen, t, status, search (row)
    pairs: pd.DataFrame  # one (search, brand of its category): seeded, match, converted, final
    counts: dict


def behave(rng: np.random.Generator, world: World, touches: pd.DataFrame, vocab: Vocabulary) -> Behaviour:
    """Searches (background + search-backs, spaced) and the orders that answer them."""
    p = world.params
    conv_by_cat = window_seconds(world, 1)
    sb = search_backs(rng, world, touches)
    bg = background_searches(rng, world)
    raw = pd.concat([bg, sb], ignore_index=True)
    in_world = (raw["t"] >= world.day_starts[0]) & (raw["t"] < world.end)
    raw = raw[in_world]
    kept, dropped = space_searches(raw, conv_by_cat)
    kept = kept.sort_values(["t", "user", "cat", "source"], kind="stable", ignore_index=True)
    kept["search_id"] = np.char.add("s", np.char.zfill(np.arange(1, len(kept) + 1).astype(str), 9))
    term = _query_terms(rng, world, kept, vocab)
    fill = vocab.fillers["text"].to_numpy(dtype=object)[rng.integers(0, len(vocab.fillers), len(kept))]
    text = vocab.query_terms["text"].to_numpy(dtype=object)[term]
    kept["query"] = np.where(rng.random(len(kept)) < 0.4, text + " " + fill, text)
    kept["query_script"] = vocab.query_terms["script"].to_numpy(dtype=object)[term]

    # every (search, brand of its category) pair
    cat_codes = world.brands["cat"].to_numpy()
    b_order, b_start, b_count = _codes_with_offsets(cat_codes, len(world.categories))
    reps = b_count[kept["cat"].to_numpy()]
    s_idx = np.repeat(np.arange(len(kept)), reps)
    within = np.arange(len(s_idx)) - np.repeat(np.cumsum(reps) - reps, reps)
    brand = b_order[b_start[kept["cat"].to_numpy()[s_idx]] + within]
    pairs = pd.DataFrame({"search": s_idx, "user": kept["user"].to_numpy()[s_idx], "brand": brand, "t": kept["t"].to_numpy()[s_idx]})
    look = seeded_lookup(world, touches, pairs, platforms=bool(p.platform_effects))
    pairs = pd.concat([pairs, look], axis=1)
    creator_vertical = world.creators["vertical"].to_numpy()[world.notes["creator"].to_numpy()]
    cat_ids = np.asarray(world.brands.attrs["category_ids"])
    last_vertical = np.where(pairs["seeded"], creator_vertical[np.maximum(pairs["last_note"].to_numpy(), 0)], "")
    pairs["match"] = pairs["seeded"].to_numpy() & (last_vertical == cat_ids[cat_codes[pairs["brand"].to_numpy()]])
    if p.platform_effects:  # additive incremental effects of the seeding set's platforms
        effect = p.effect_of_platform()
        factor = 1.0 + platform_bits(pairs["seed_platforms"].to_numpy()) @ effect
        biggest = 1.0 + effect.sum()
    else:
        factor = np.where(pairs["match"], p.factor_vertical_match, np.where(pairs["seeded"], p.factor_mismatch, 1.0))
        biggest = max(p.factor_vertical_match, p.factor_mismatch, 1.0)
    engaged = 1.0 + p.confounding * activity_bands(world, kept, pairs) if p.confounding > 0 else 1.0
    top = 1.0 + p.confounding * (len(schemas.ACTIVITY_BANDS) - 1)
    if p.p0 * biggest * max(top, 1.0) > 1:
        raise ValueError("p0 * factor (times the confounding multiplier) exceeds 1; lower p0 or confounding")
    buy = rng.random(len(pairs)) < p.p0 * factor * engaged
    conv = _of(conv_by_cat, cat_codes[pairs["brand"].to_numpy()])
    paid = pairs["t"].to_numpy() + rng.integers(0, conv + 1, len(pairs))
    # Final as SPEC 5 "Arrival" has it: search day d + ceil(conversion_window) < W, the last day
    # (the window of the pair's category).
    search_day = np.searchsorted(world.day_starts, pairs["t"].to_numpy(), side="right") - 1
    last_day = len(world.day_starts) - 2
    pairs["final"] = search_day + -(-conv // DAY) < last_day
    pairs["converted"] = buy & (paid < world.end)

    o = pairs[pairs["converted"]]
    paid_o = paid[pairs["converted"].to_numpy()]
    orders = _orders(rng, world, o, paid_o)
    counts = {
        "searches_background_drawn": int(len(bg)),
        "searches_search_back_drawn": int(len(sb)),
        "searches_outside_world": int((~in_world).sum()),
        "searches_dropped_by_spacing": dropped,
        "searches_kept": int(len(kept)),
        "searches_kept_search_back": int((kept["source"] == 1).sum()),
    }
    return Behaviour(searches=kept, orders=orders, pairs=pairs, counts=counts)


# ---------------------------------------------------------------- planted platform shares


def planted_orders(world: World, beh: Behaviour, *, first_day: int = 0, keep: np.ndarray | None = None) -> pd.DataFrame:
    """The seeded orders of the world paid on day ``first_day`` or later, as the funnel counts them
    (SPEC 5.5): one per converted seeded pair (its order's final version paid), so one per order.
    Columns: order_id, pair (row of ``beh.pairs``), t (paid), amount_fen (final), seed_platforms
    (bit mask). ``keep``: per pair, False for pairs the funnel never sees (lost searches).

    A converted seeded pair's order is a seeded order anchored on the pair's own search: searches of
    one user and category are more than conversion_window + 1 s apart, so no other search of the
    brand's category lies between the search and the payment, and an unseeded pair's order has no
    seeded search within the conversion window before it.
    """
    pairs, o = beh.pairs, beh.orders
    ok = pairs["converted"].to_numpy() & pairs["seeded"].to_numpy()
    if keep is not None:
        ok &= keep
    nb = len(world.brands)
    paid = o.loc[o["status"].to_numpy() == "paid"]
    key = paid["search"].to_numpy().astype(np.int64) * nb + paid["brand"].to_numpy()
    pair_key = pairs["search"].to_numpy().astype(np.int64) * nb + pairs["brand"].to_numpy()
    rows = np.flatnonzero(ok)
    by_key = np.argsort(key, kind="stable")
    at = by_key[np.searchsorted(key[by_key], pair_key[rows])] if len(key) else np.zeros(0, dtype=np.int64)
    match = paid.iloc[at]
    amount = match["final_amount_fen"] if "final_amount_fen" in match.columns else match["amount_fen"]
    day = np.searchsorted(world.day_starts, match["t"].to_numpy(), side="right") - 1
    mask = pairs["seed_platforms"].to_numpy()[rows] if "seed_platforms" in pairs.columns else np.zeros(len(rows), dtype=np.int64)
    out = pd.DataFrame({
        "order_id": match["order_id"].to_numpy(),
        "pair": rows,
        "t": match["t"].to_numpy(),
        "amount_fen": amount.to_numpy().astype(np.int64),
        "seed_platforms": mask,
    })
    return out.loc[day >= first_day].sort_values("order_id", ignore_index=True)


def planted_split(world: World, planted: pd.DataFrame) -> np.ndarray:
    """(orders, platforms): each order's amount split over the platforms of its seeding set in
    proportion to their planted effects e_p (equally when every e_p of the set is 0)."""
    bits = platform_bits(planted["seed_platforms"].to_numpy())
    weight = bits * world.params.effect_of_platform()[None, :]
    total = weight.sum(axis=1, keepdims=True)
    n = bits.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(total > 0, weight / total, np.where(n > 0, bits / n, 0.0))
    return frac * planted["amount_fen"].to_numpy(dtype=np.float64)[:, None]


def planted_platform_shares(world: World, planted: pd.DataFrame) -> np.ndarray:
    """Each platform's planted share of the seeded GMV of ``planted`` (``planted_split`` summed per
    platform, over its total; NaN without orders), per platform code."""
    credit = planted_split(world, planted).sum(axis=0)
    total = credit.sum()
    return credit / total if total > 0 else np.full(len(credit), np.nan)


def expected_platform_shares(world: World, beh: Behaviour, *, first_day: int = 0) -> np.ndarray:
    """``planted_platform_shares`` with the purchase draws integrated out: for the world's searches
    and seeding sets (``beh.pairs``), each seeded pair buys with its probability p0 * (1 + sum of
    its platforms' e_p) (times its confounding multiplier), is paid a uniform whole number of
    seconds into its conversion window (counted when that falls in days first_day.. of the
    world), for the mean price of its brand's items; the expected amount is split as
    ``planted_split`` splits an order's. Refunds, quantities and amount corrections are drawn
    alike for every brand and platform, so they cancel in the shares. NaN without seeded pairs.

    On a world of many users this is the planted share of the world's content (its creators,
    notes and items) with the users' own draws averaged out: what an interval that resamples
    users estimates (bench/coverage.py)."""
    p = world.params
    pairs = beh.pairs
    seeded = np.flatnonzero(pairs["seeded"].to_numpy())
    bits = platform_bits(pairs["seed_platforms"].to_numpy()[seeded])
    effect = p.effect_of_platform()
    buy = p.p0 * (1.0 + bits @ effect)
    if p.confounding > 0:
        buy = buy * (1.0 + p.confounding * activity_bands(world, beh.searches, pairs)[seeded])
    brand = pairs["brand"].to_numpy()[seeded]
    conv = _of(window_seconds(world, 1), world.brands["cat"].to_numpy()[brand])
    t = pairs["t"].to_numpy()[seeded]
    lo, hi = world.day_starts[first_day] - t, world.end - 1 - t  # offsets paid within days first_day..
    inside = np.clip(np.minimum(conv, hi) - np.maximum(0, lo) + 1, 0, None) / (conv + 1)
    price = world.items.groupby("brand")["price_fen"].mean().reindex(range(len(world.brands))).to_numpy()
    expected = pd.DataFrame({"seed_platforms": pairs["seed_platforms"].to_numpy()[seeded], "amount_fen": buy * inside * price[brand]})
    return planted_platform_shares(world, expected)


def _query_terms(rng: np.random.Generator, world: World, searches: pd.DataFrame, vocab: Vocabulary) -> np.ndarray:
    """A query for each search: its brand's alias (search-backs, mostly) or a term of its category."""
    qt = vocab.query_terms
    cat_index = {c: i for i, c in enumerate(world.brands.attrs["category_ids"])}
    q_cat = qt["category_id"].map(cat_index).to_numpy()
    q_order, q_start, q_count = _codes_with_offsets(q_cat, len(cat_index))
    if (q_count == 0).any():
        empty = [c for c, i in cat_index.items() if q_count[i] == 0]
        raise ValueError(f"categories {empty} have no clean query term (keyword or alias); fix categories.csv / brands.csv")
    term = _pick_in_group(rng, q_order, q_start, q_count, searches["cat"].to_numpy())
    brand_index = {b: i for i, b in enumerate(world.brands["brand_id"])}
    q_brand = qt["brand_id"].map(brand_index).fillna(-1).astype(np.int64).to_numpy()
    a_order, a_start, a_count = _codes_with_offsets(np.where(q_brand >= 0, q_brand, len(brand_index)), len(brand_index) + 1)
    hint = searches["brand_hint"].to_numpy()
    use_brand = (hint >= 0) & (a_count[np.maximum(hint, 0)] > 0) & (rng.random(len(searches)) < 0.6)
    brand_term = _pick_in_group(rng, a_order, a_start, a_count, np.maximum(hint, 0))
    return np.where(use_brand, brand_term, term)


def _orders(rng: np.random.Generator, world: World, converted: pd.DataFrame, paid: np.ndarray) -> pd.DataFrame:
    """Paid orders of converted pairs, plus extra refunded ones (which never count)."""
    p = world.params
    items = world.items
    i_order, i_start, i_count = _codes_with_offsets(items["brand"].to_numpy(), len(world.brands))
    brand = converted["brand"].to_numpy()
    item = _pick_in_group(rng, i_order, i_start, i_count, brand)
    paid_orders = pd.DataFrame(
        {"user": converted["user"].to_numpy(), "brand": brand, "item": item, "t": paid,
         "status": "paid", "search": converted["search"].to_numpy()}
    )
    refund = rng.random(len(paid_orders)) < p.refunded_extra_share
    extra = paid_orders[refund].copy()
    extra["status"] = "refunded"
    extra["t"] = np.minimum(extra["t"].to_numpy() + rng.integers(0, 3600, len(extra)), world.end - 1)
    orders = pd.concat([paid_orders, extra], ignore_index=True)
    qty = np.where(rng.random(len(orders)) < 0.85, 1, rng.integers(2, 4, len(orders)))
    orders["amount_fen"] = items["price_fen"].to_numpy()[orders["item"].to_numpy()] * qty
    orders = orders.sort_values(["t", "user", "brand", "status"], kind="stable", ignore_index=True)
    numbers = np.arange(1, len(orders) + 1).astype(str)
    # np.char.zfill cannot size an empty array: a tiny world may have no orders at all.
    orders["order_id"] = np.char.add("o", np.char.zfill(numbers, 9)) if len(numbers) else numbers
    return orders
