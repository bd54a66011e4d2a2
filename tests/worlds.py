"""Small adversarial worlds for the funnel engines, generated directly as FunnelInputs frames.

Few brands and categories so collisions are common; whole-second timestamps on an hourly grid
(so window lengths in whole hours land exactly on events) plus planted window edges: a touch at
the search second, a touch exactly seed_window before a search and one second earlier, orders at
exactly +conversion_window and one second later. Also: duplicate deliveries, exposures differing
only in dwell_ms, competing id links (ties, exactly the threshold, a loser above it), a second
external id of one user on one platform, refunded orders, orders of unknown brands or with a
wrong category, notes with several brands, none, or one missing from brands.csv, searches with
two categories or none, authors without a vertical, exposures of unknown notes. And new versions
in later deliveries (SPEC 3): orders refunded, re-paid, with corrected amounts, times, brands or
users; searches moved in time or given to another user; some changed back a day later; id links
re-delivered in part, corrected to another user, revoked with confidence 0, or contested anew.
And the edges of SPEC 5.10's activity window: searches and category orders exactly
activity_window before a search, a second either side, and orders at the search's own second.
With windows per category (SPEC 5.11) the edges are planted at every category's windows.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines import schemas
from pipelines.funnel.inputs import FunnelInputs
from pipelines.settings import FunnelParams
from pipelines.timeutil import business_day, day_start_utc

US = 1_000_000
HOUR = 3_600 * US
DAY = 24 * HOUR
FIRST_DAY = date(2026, 3, 10)


def random_params(rng: np.random.Generator) -> FunnelParams:
    """SPEC 5 parameters varied over defaults, short windows, odd thresholds and kinds."""
    kinds = [k for k in schemas.EXPOSURE_KINDS if rng.random() < 0.6] or ["read"]
    return FunnelParams(
        seed_window_days=float(rng.choice([15, 15, 7, 2, 1.5, 0.5])),
        conversion_window_days=float(rng.choice([3, 3, 1, 2.5, 0.25])),
        min_link_confidence=float(rng.choice([0.8, 0.8, 0.0, 0.5, 0.9, 1.0])),
        touch_kinds=tuple(kinds),
        decay_half_life_days=float(rng.choice([7, 7, 1, 0.5, 30])),
        boost_half_life_days=float(rng.choice([3, 3, 1, 10])),
        boost_top_n=int(rng.choice([50, 50, 2, 1])),
        activity_window_days=float(rng.choice([14, 14, 1, 2.5, 0.25])),
    )


def _hash16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _us(ts: pd.Series) -> np.ndarray:
    """Epoch microseconds of aware timestamps."""
    return ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).to_numpy("int64")


def _ts(us: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(us, dtype="int64"), unit="us", utc=True))


def _delivered(ts: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Delivery day: the event's business day, sometimes a day late."""
    late = pd.to_timedelta(rng.integers(0, 2, len(ts)), unit="D")
    return business_day(ts + late)


def _later(dt: pd.Series, days: int | np.ndarray = 1) -> pd.Series:
    """Delivery days ``days`` after ``dt``."""
    return (pd.to_datetime(dt.astype(str)) + pd.to_timedelta(days, unit="D")).dt.date


def _redeliver(df: pd.DataFrame, rng: np.random.Generator, share: float) -> pd.DataFrame:
    """Append exact copies of some rows delivered on another day."""
    copies = df[rng.random(len(df)) < share].copy()
    if len(copies) and "dt" in copies:
        copies["dt"] = _later(copies["dt"])
    return pd.concat([df, copies], ignore_index=True)


def _new_versions(
    df: pd.DataFrame, key: str, rng: np.random.Generator, share: float, change
) -> pd.DataFrame:
    """Append later versions of some keys: ``change(rows)`` delivered the day after the key's
    latest delivery, and for some of them the old content again one more day later."""
    newest = df[df["dt"] == df.groupby(key)["dt"].transform("max")].drop_duplicates(key)
    old = newest[rng.random(len(newest)) < share]
    changed = change(old.copy()).assign(dt=_later(old["dt"]))
    back = old[rng.random(len(old)) < 0.3].assign(dt=lambda d: _later(d["dt"], 2))
    return pd.concat([df, changed, back], ignore_index=True)


def random_inputs(
    seed: int,
    *,
    users: int = 12,
    days: int = 4,
    brands: int = 4,
    categories: int = 2,
    params: FunnelParams | None = None,
    dwell_variants: bool = True,
) -> tuple[FunnelInputs, date, date]:
    """A random adversarial world and the run's (start, end) days."""
    rng = np.random.default_rng(seed)
    params = params or FunnelParams()
    micro = timedelta(microseconds=1)
    seed_us = params.max_seed_window // micro
    conv_us = params.max_conversion_window // micro
    # Every category's windows (one each without per-category windows: the lists as they were).
    seeds_us = sorted({s // micro for s, _ in params.all_windows()})
    convs_us = sorted({c // micro for _, c in params.all_windows()})
    start = FIRST_DAY
    end = start + timedelta(days=days - 1)
    t0 = int(day_start_utc(start).value // 1_000) - int(min(seed_us, 5 * DAY)) - 2 * DAY
    t1 = int(day_start_utc(end + timedelta(days=1)).value // 1_000) + conv_us + DAY
    hours = max(1, (t1 - t0) // HOUR)

    def grid(n: int) -> np.ndarray:
        """Times on the hour grid, a few one second off it."""
        jitter = rng.choice([0, 0, 0, 0, 1, -1], n) * US
        return t0 + rng.integers(0, hours, n) * HOUR + jitter

    cat_ids = [f"c{i}" for i in range(1, categories + 1)]
    brand_ids = [f"b{i}" for i in range(1, brands + 1)]
    brand_cat = [cat_ids[i % categories] if i < categories else str(rng.choice(cat_ids)) for i in range(brands)]
    categories_df = pd.DataFrame(
        {"category_id": cat_ids, "name": cat_ids, "keywords": [f"kw{c}" for c in cat_ids]}
    )
    brands_df = pd.DataFrame(
        {"brand_id": brand_ids, "name": brand_ids, "aliases": brand_ids, "category_id": brand_cat, "context_aliases": None}
    )

    # Notes: the same note ids on every platform; a small author pool, some with a vertical.
    platforms = list(schemas.PLATFORMS)
    notes_per_platform = 4
    note_ids = [f"n{i}" for i in range(notes_per_platform)]
    authors = [_hash16(f"author{i}") for i in range(5)]
    nplat = np.repeat(platforms, notes_per_platform)
    nid = np.tile(note_ids, len(platforms))
    nauthor = rng.choice(authors, len(nid))
    published = _ts(np.full(len(nid), t0 - 30 * DAY))
    notes_df = pd.DataFrame(
        {
            "platform": nplat,
            "note_id": nid,
            "author_id": nauthor,
            "published_at": published,
            "title": "t",
            "text": "x",
            "tags": [[] for _ in nid],
            "likes": 0,
            "collects": 0,
            "comments": 0,
            "shares": 0,
            "note_type": "image",
            "source_file": "notes.jsonl",
            "source_row": np.arange(1, len(nid) + 1),
            "dt": business_day(published),
        }
    )
    nb_count = rng.choice([0, 1, 1, 1, 2, 2, 3], len(nid))
    nb_rows = [
        (p, n, b)
        for p, n, k in zip(nplat, nid, nb_count, strict=True)
        for b in rng.choice(brand_ids, min(k, brands), replace=False)
    ]
    # A brand the matcher found but brands.csv no longer lists: it touches, it never seeds.
    nb_rows += [(p, n, "b_retired") for p, n in zip(nplat, nid, strict=True) if rng.random() < 0.05]
    note_brands_df = pd.DataFrame(nb_rows, columns=["platform", "note_id", "brand_id"])
    creators = {(p, a) for p, a in zip(nplat, nauthor, strict=True) if rng.random() < 0.6}
    creators_df = pd.DataFrame(
        [(p, a, str(rng.choice(cat_ids + ["c_unknown"]))) for p, a in sorted(creators)],
        columns=["platform", "author_id", "vertical"],
    )

    # External ids: a shared pool of names, so one name on two platforms is two people.
    user_ids = [f"u{i:03d}" for i in range(users)]
    ext_platform = rng.choice(platforms, 2 * users)
    ext_name = [f"x{i}" for i in rng.integers(0, users, 2 * users)]
    ext = pd.DataFrame({"platform": ext_platform, "ext_user_id": ext_name}).drop_duplicates()
    owner = rng.choice(user_ids, len(ext))
    conf = rng.choice([1.0, 0.95, 0.8, 0.8, 0.79, 0.5], len(ext))
    links = pd.DataFrame({**ext.to_dict("list"), "user_id": owner, "confidence": conf})
    links = links[rng.random(len(links)) < 0.9]  # some external ids never link
    rival = links[rng.random(len(links)) < 0.35].copy()
    rival["user_id"] = rng.choice(user_ids, len(rival))
    rival["confidence"] = np.where(
        rng.random(len(rival)) < 0.5, rival["confidence"], rng.choice([1.0, 0.8, 0.7], len(rival))
    )
    # A second external id of the same user on the same platform: touch-order ties on ext_user_id.
    alias = links[rng.random(len(links)) < 0.3].copy()
    alias["ext_user_id"] = alias["ext_user_id"] + "_alt"
    alias["confidence"] = 1.0
    id_links_df = pd.concat([links, rival, alias], ignore_index=True)
    id_links_df["dt"] = start
    id_links_df = _redeliver(id_links_df, rng, 0.2)

    # Exposures: random notes (and a few unknown ones) of the external id's platform.
    n_exp = 6 * len(ext)
    pick = rng.integers(0, len(ext), n_exp)
    exp_t = grid(n_exp)
    exposures_df = pd.DataFrame(
        {
            "platform": ext["platform"].to_numpy()[pick],
            "note_id": rng.choice(note_ids + ["n_missing"], n_exp),
            "ext_user_id": ext["ext_user_id"].to_numpy()[pick],
            "event_time": _ts(exp_t),
            "kind": rng.choice(schemas.EXPOSURE_KINDS, n_exp),
            "dwell_ms": pd.array(
                np.where(rng.random(n_exp) < 0.3, None, rng.integers(0, 5, n_exp) * 1000),
                dtype="Int64",
            ),
        }
    )
    # Ties: other notes / kinds at exactly the same second by the same external id.
    ties = exposures_df.sample(frac=0.3, random_state=seed).copy()
    ties["note_id"] = rng.choice(note_ids, len(ties))
    ties["kind"] = rng.choice(schemas.EXPOSURE_KINDS, len(ties))
    alias_exposures = exposures_df.merge(alias[["platform", "ext_user_id"]], on=["platform", "ext_user_id"])
    alias_exposures = alias_exposures[rng.random(len(alias_exposures)) < 0.5].assign(ext_user_id=lambda d: d["ext_user_id"] + "_alt")
    exposures_df = pd.concat([exposures_df, ties, alias_exposures], ignore_index=True)
    if dwell_variants:
        variants = exposures_df.sample(frac=0.05, random_state=seed + 1).copy()
        variants["dwell_ms"] = pd.array([123_456] * len(variants), dtype="Int64")
        exposures_df = pd.concat([exposures_df, variants], ignore_index=True)
    exposures_df["dt"] = _delivered(exposures_df["event_time"], rng)
    exposures_df = _redeliver(exposures_df, rng, 0.15)

    # Searches: random ones, plus ones planted on window edges of linked users' exposures.
    linked = exposures_df.merge(id_links_df, on=["platform", "ext_user_id"])
    n_rand = 3 * users
    plant = linked.sample(n=min(len(linked), 3 * users), random_state=seed + 2)
    # A touch at the search second does not seed it; exactly seed_window before does.
    edge = rng.choice([0, US, *(e for s in seeds_us for e in (s, s + US, s - US))], len(plant))
    planted_t = _us(plant["event_time"]) + edge
    search_t = np.concatenate([grid(n_rand), planted_t])
    search_user = np.concatenate([rng.choice(user_ids, n_rand), plant["user_id"].to_numpy()])
    # Same-second twins test the anchor tie to the larger search_id.
    twins = rng.random(len(search_t)) < 0.15
    search_t = np.concatenate([search_t, search_t[twins]])
    search_user = np.concatenate([search_user, search_user[twins]])
    search_ids = [f"s{h}" for h in rng.permutation(len(search_t) * 3)[: len(search_t)]]
    searches_df = pd.DataFrame(
        {
            "search_id": search_ids,
            "user_id": search_user,
            "event_time": _ts(search_t),
            "query": "q",
        }
    )
    searches_df["dt"] = _delivered(searches_df["event_time"], rng)
    searches_df = _redeliver(searches_df, rng, 0.15)
    n_cats = rng.choice([0, 1, 1, 1, 2], len(search_ids))
    sc_rows = [
        (s, c)
        for s, k in zip(search_ids, n_cats, strict=True)
        for c in rng.choice(cat_ids, min(k, categories), replace=False)
    ]
    search_categories_df = pd.DataFrame(sc_rows, columns=["search_id", "category_id"])

    # Orders: on conversion window edges of searches, plus random ones.
    base = searches_df.drop_duplicates("search_id").sample(frac=0.6, random_state=seed + 3)
    offset = rng.choice([0, *(e for c in convs_us for e in (c, c + US, -US, c // 2, c - US))], len(base))
    order_t = _us(base["event_time"]) + offset
    order_user = base["user_id"].to_numpy()
    n_rand_orders = users
    order_t = np.concatenate([order_t, grid(n_rand_orders)])
    order_user = np.concatenate([order_user, rng.choice(user_ids, n_rand_orders)])
    n_orders = len(order_t)
    order_brand = rng.choice(brand_ids + ["b_unknown"], n_orders, p=[0.95 / brands] * brands + [0.05])
    true_cat = dict(zip(brand_ids, brand_cat, strict=True))
    stated_cat = np.array([true_cat.get(b, "c1") for b in order_brand], dtype=object)
    wrong = rng.random(n_orders) < 0.1
    stated_cat[wrong] = "c_wrong"
    orders_df = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in rng.permutation(n_orders * 2)[:n_orders]],
            "user_id": order_user,
            "item_id": [f"i{b}" for b in order_brand],
            "brand_id": order_brand,
            "category_id": stated_cat,
            "amount_fen": rng.integers(1, 50_000, n_orders),
            "paid_at": _ts(order_t),
            "status": np.where(rng.random(n_orders) < 0.15, "refunded", "paid"),
        }
    )
    orders_df["dt"] = _delivered(orders_df["paid_at"], rng)
    orders_df = _redeliver(orders_df, rng, 0.15)

    # Later versions (SPEC 3: the latest delivery wins). Drawn last, so the rest of the world
    # stays as it was for a seed.
    def order_change(rows: pd.DataFrame) -> pd.DataFrame:
        what = rng.integers(0, 5, len(rows))
        flip = np.where(rows["status"] == "paid", "refunded", "paid")
        rows["status"] = np.where(what == 0, flip, rows["status"])
        rows["amount_fen"] = np.where(what == 1, rng.integers(1, 50_000, len(rows)), rows["amount_fen"])
        shift = rng.choice([US, -US, HOUR, conv_us, -conv_us], len(rows))
        rows["paid_at"] = _ts(_us(rows["paid_at"]) + np.where(what == 2, shift, 0)).set_axis(rows.index)
        rows["brand_id"] = np.where(what == 3, rng.choice(brand_ids, len(rows)), rows["brand_id"])
        rows["user_id"] = np.where(what == 4, rng.choice(user_ids, len(rows)), rows["user_id"])
        return rows

    def search_change(rows: pd.DataFrame) -> pd.DataFrame:
        what = rng.integers(0, 3, len(rows))
        shift = rng.choice([US, -US, HOUR, seed_us, -conv_us], len(rows))
        rows["event_time"] = _ts(_us(rows["event_time"]) + np.where(what == 0, shift, 0)).set_axis(rows.index)
        rows["user_id"] = np.where(what == 1, rng.choice(user_ids, len(rows)), rows["user_id"])
        rows["query"] = np.where(what == 2, "q2", rows["query"])
        return rows

    orders_df = _new_versions(orders_df, "order_id", rng, 0.3, order_change)
    searches_df = _new_versions(searches_df, "search_id", rng, 0.2, search_change)

    # id links: a later batch replaces every claim on the ext ids it names, at a day after their
    # latest delivery: corrected to another user, revoked (confidence 0), contested by two claims
    # that tie, or a first claim on an ext id that had none.
    named = id_links_df.groupby(["platform", "ext_user_id"], as_index=False)["dt"].max()
    named = pd.concat(
        [named, ext.merge(named, how="left", indicator=True).query("_merge == 'left_only'")],
        ignore_index=True,
    )
    named = named[rng.random(len(named)) < 0.3].drop(columns="_merge", errors="ignore")
    named["dt"] = _later(named["dt"].fillna(start))
    revised = named.assign(
        user_id=rng.choice(user_ids, len(named)),
        confidence=rng.choice([0.0, 0.0, 1.0, 0.9, 0.8, 0.79], len(named)),
    )
    contested = revised[rng.random(len(revised)) < 0.3].assign(
        user_id=lambda d: rng.choice(user_ids, len(d))  # same confidence: a tie
    )
    id_links_df = pd.concat([id_links_df, revised, contested], ignore_index=True)

    # Activity edges (SPEC 5.10), drawn last too: for some searches another search of the same
    # user exactly activity_window before (it counts), a second earlier (it does not) or later,
    # some with a category of their own; and paid orders of the search's category at those edges
    # or at the search's own second (not before it: no recent order).
    act_us = params.activity_window // timedelta(microseconds=1)
    anchors = searches_df.drop_duplicates("search_id", keep="last").sample(frac=0.3, random_state=seed + 4)
    before = rng.choice([act_us, act_us, act_us + US, act_us - US], len(anchors))
    extra_t = _us(anchors["event_time"]) - before
    extra_user = anchors["user_id"].to_numpy()
    # A busy user: a burst of a dozen searches in the seconds before one search (band 11+).
    busy = anchors.iloc[:1]
    extra_t = np.concatenate([extra_t, np.repeat(_us(busy["event_time"]), 12) - np.arange(1, 13) * US])
    extra_user = np.concatenate([extra_user, np.repeat(busy["user_id"].to_numpy(), 12)])
    extra_ids = [f"sa{i}" for i in range(len(extra_t))]
    extra_searches = pd.DataFrame(
        {"search_id": extra_ids, "user_id": extra_user, "event_time": _ts(extra_t), "query": "q"}
    )
    extra_searches["dt"] = business_day(extra_searches["event_time"])
    searches_df = pd.concat([searches_df, extra_searches], ignore_index=True)
    extra_cats = pd.DataFrame(
        {"search_id": extra_ids, "category_id": rng.choice(cat_ids, len(extra_ids))}
    )[rng.random(len(extra_ids)) < 0.3]
    search_categories_df = pd.concat([search_categories_df, extra_cats], ignore_index=True)
    anchor_cats = anchors[["search_id", "user_id", "event_time"]].merge(search_categories_df, on="search_id")
    brands_of = brands_df.groupby("category_id")["brand_id"].first()
    anchor_cats = anchor_cats[anchor_cats["category_id"].isin(brands_of.index)]
    edge = rng.choice([act_us, act_us + US, act_us - US, 0], len(anchor_cats))
    edge_orders = pd.DataFrame(
        {
            "order_id": [f"oa{i}" for i in range(len(anchor_cats))],
            "user_id": anchor_cats["user_id"].to_numpy(),
            "item_id": "i_edge",
            "brand_id": brands_of.reindex(anchor_cats["category_id"]).to_numpy(),
            "category_id": anchor_cats["category_id"].to_numpy(),
            "amount_fen": rng.integers(1, 50_000, len(anchor_cats)),
            "paid_at": _ts(_us(anchor_cats["event_time"]) - edge),
            "status": "paid",
        }
    )
    edge_orders["dt"] = business_day(edge_orders["paid_at"])
    orders_df = pd.concat([orders_df, edge_orders], ignore_index=True)

    inputs = FunnelInputs(
        exposures=schemas.conform("exposures", exposures_df),
        id_links=schemas.conform("id_links", id_links_df),
        notes=schemas.conform("notes", notes_df),
        note_brands=schemas.conform("note_brands", note_brands_df),
        searches=schemas.conform("searches", searches_df),
        search_categories=schemas.conform("search_categories", search_categories_df),
        orders=schemas.conform("orders", orders_df),
        brands=schemas.conform("brands", brands_df),
        categories=schemas.conform("categories", categories_df),
        creators=schemas.conform("creators", creators_df),
    )
    return inputs, start, end
