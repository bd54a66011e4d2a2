"""Random FunnelInputs for property tests and timing: adversarial ties, edges and duplicates on purpose.

Not a model of the world (that is ``pipelines.simulate``): it builds engine inputs directly, with
timestamps on a coarse tick so equal times are common, exact window-edge offsets between touches,
searches and orders, competing id links (exactly 0.8 among them), refunds and duplicate rows, and
later deliveries that make new versions: refunds and corrected amounts of orders, id links
corrected or revoked (confidence 0).
"""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd

from pipelines import schemas
from pipelines.funnel.inputs import FunnelInputs
from pipelines.timeutil import business_day, day_start_utc

SECOND_US = 1_000_000
DAY_S = 86_400


def _ids(prefix: str, n: int, width: int = 5) -> np.ndarray:
    """Fixed-width ids so string order equals numeric order."""
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width)).astype(object)


def _hex16(values: np.ndarray) -> np.ndarray:
    """Creator-hash-like ids (16 lowercase hex) for a handful of authors."""
    return np.array(
        [hashlib.sha256(str(v).encode()).hexdigest()[:16] for v in values], dtype=object
    )


def _frame(table: schemas.Table, data: dict) -> pd.DataFrame:
    """A conformed frame of ``table`` from column arrays (missing nullable columns become null)."""
    n = len(next(iter(data.values())))
    cols = {c.name: data.get(c.name, [None] * n) for c in table.columns}
    return schemas.conform(table, pd.DataFrame(cols))


def _with_duplicates(df: pd.DataFrame, rng: np.random.Generator, rate: float) -> pd.DataFrame:
    """The frame plus exact copies of a random ``rate`` share of its rows."""
    picks = rng.random(len(df)) < rate
    return pd.concat([df, df.loc[picks]], ignore_index=True)


def synthetic_inputs(
    seed: int,
    *,
    users: int,
    days: int,
    start: date,
    brands: int = 12,
    categories: int = 4,
    notes_per_platform: int = 40,
    exposures_per_user_day: float = 2.0,
    searches_per_user_day: float = 0.3,
    orders_per_search: float = 0.1,
    tick_seconds: int = 60,
    duplicate_rate: float = 0.02,
) -> FunnelInputs:
    """A random world over ``days`` days from ``start`` (plus a 20-day lead-in of history)."""
    rng = np.random.default_rng(seed)
    lead_days = 20
    t0 = day_start_utc(start).value // 1_000 - lead_days * DAY_S * SECOND_US  # microseconds
    span_ticks = (days + lead_days) * DAY_S // tick_seconds
    tick_us = tick_seconds * SECOND_US

    category_ids = _ids("c", categories, 2)
    brand_ids = _ids("b", brands, 3)
    brand_category = category_ids[np.arange(brands) % categories]
    brand_frame = _frame(
        schemas.BRANDS,
        {
            "brand_id": brand_ids,
            "name": brand_ids,
            "aliases": brand_ids,
            "category_id": brand_category,
        },
    )
    category_frame = _frame(
        schemas.CATEGORIES,
        {"category_id": category_ids, "name": category_ids, "keywords": category_ids},
    )

    platforms = np.array(schemas.PLATFORMS, dtype=object)
    n_authors = 30
    author_ids = _hex16(np.arange(n_authors))
    author_platform = platforms[np.arange(n_authors) % len(platforms)]
    known = rng.random(n_authors) < 0.8  # some authors have no vertical
    creators = _frame(
        schemas.CREATORS,
        {
            "platform": author_platform[known],
            "author_id": author_ids[known],
            "vertical": category_ids[rng.integers(0, categories, n_authors)][known],
        },
    )

    n_notes = notes_per_platform * len(platforms)
    note_platform = np.repeat(platforms, notes_per_platform)
    note_ids = _ids("n", n_notes)
    note_author = author_ids[rng.integers(0, n_authors, n_notes)]
    notes = _frame(
        schemas.NOTES,
        {"platform": note_platform, "note_id": note_ids, "author_id": note_author},
    )
    # 0, 1 or 2 brands per note; two brands often share a category.
    mentions = rng.choice([0, 1, 2], size=n_notes, p=[0.1, 0.6, 0.3])
    first_brand = rng.integers(0, brands, n_notes)
    second_brand = (first_brand + categories * rng.integers(1, 3, n_notes)) % brands
    has1, has2 = mentions >= 1, mentions == 2
    note_brands = _frame(
        schemas.NOTE_BRANDS,
        {
            "platform": np.concatenate([note_platform[has1], note_platform[has2]]),
            "note_id": np.concatenate([note_ids[has1], note_ids[has2]]),
            "brand_id": np.concatenate(
                [brand_ids[first_brand[has1]], brand_ids[second_brand[has2]]]
            ),
        },
    ).drop_duplicates()

    # Every user has an ext id on every platform; links: mostly confident, some at exactly 0.8,
    # some below, some ext ids never linked, some with a competing claim.
    user_ids = _ids("u", users, 6)
    ext_platform = np.repeat(platforms, users)
    ext_user = np.tile(np.arange(users), len(platforms))
    ext_ids = np.char.add(
        np.char.add(ext_platform.astype(str), "_"),
        np.tile(np.arange(users), len(platforms)).astype(str),
    ).astype(object)
    linked = rng.random(len(ext_ids)) < 0.9
    confidence = rng.choice(
        [0.5, 0.79, 0.8, 0.9, 1.0], size=len(ext_ids), p=[0.05, 0.05, 0.2, 0.4, 0.3]
    )
    rival = linked & (rng.random(len(ext_ids)) < 0.1)
    rival_conf = np.where(
        rng.random(len(ext_ids)) < 0.5, confidence, rng.choice([0.8, 0.95], len(ext_ids))
    )
    rival_user = (ext_user + rng.integers(1, max(users, 2), len(ext_ids))) % users
    first_delivery = date.fromordinal(start.toordinal() - lead_days)
    id_links = _frame(
        schemas.ID_LINKS,
        {
            "platform": np.concatenate([ext_platform[linked], ext_platform[rival]]),
            "ext_user_id": np.concatenate([ext_ids[linked], ext_ids[rival]]),
            "user_id": np.concatenate([user_ids[ext_user[linked]], user_ids[rival_user[rival]]]),
            "confidence": np.concatenate([confidence[linked], rival_conf[rival]]),
            "dt": [first_delivery] * int(linked.sum() + rival.sum()),
        },
    )
    # A later batch replaces the claims on some ext ids: a link corrected to another user, or
    # revoked (confidence 0).
    revised = linked & (rng.random(len(ext_ids)) < 0.05)
    id_links = pd.concat(
        [
            id_links,
            _frame(
                schemas.ID_LINKS,
                {
                    "platform": ext_platform[revised],
                    "ext_user_id": ext_ids[revised],
                    "user_id": user_ids[rival_user[revised]],
                    "confidence": rng.choice([0.0, 0.9], int(revised.sum())),
                    "dt": [date.fromordinal(start.toordinal() + days // 2)] * int(revised.sum()),
                },
            ),
        ],
        ignore_index=True,
    )

    n_exp = int(users * (days + lead_days) * exposures_per_user_day)
    exp_ext = rng.integers(0, len(ext_ids), n_exp)
    exp_note = rng.integers(0, notes_per_platform, n_exp) + notes_per_platform * (exp_ext // users)
    exp_ticks = rng.integers(0, span_ticks, n_exp)
    exp_at = t0 + exp_ticks * tick_us
    kinds = np.array(schemas.EXPOSURE_KINDS, dtype=object)
    exp_kind = kinds[rng.choice(len(kinds), size=n_exp, p=[0.5, 0.25, 0.1, 0.07, 0.05, 0.03])]
    exposures = _frame(
        schemas.EXPOSURES,
        {
            "platform": ext_platform[exp_ext],
            "note_id": note_ids[exp_note],
            "ext_user_id": ext_ids[exp_ext],
            "event_time": pd.to_datetime(exp_at, unit="us", utc=True),
            "kind": exp_kind,
            "dwell_ms": rng.integers(0, 60_000, n_exp),
        },
    )

    # Searches: background ones, plus search-backs at chosen offsets after a random exposure of
    # the searching user (0 = the very second of the touch, exactly the seed window, one tick more).
    n_bg = int(users * (days + lead_days) * searches_per_user_day)
    n_back = n_bg // 2
    back_src = rng.integers(0, n_exp, n_back)
    back_note_brand = first_brand[exp_note[back_src]]
    offsets_s = rng.choice(
        [0, 1, 15 * DAY_S, 15 * DAY_S + 1, -1], size=n_back, p=[0.1, 0.1, 0.1, 0.1, 0.6]
    )
    offsets_s = np.where(offsets_s == -1, rng.integers(1, 16 * DAY_S, n_back), offsets_s)
    search_user = np.concatenate([rng.integers(0, users, n_bg), ext_user[exp_ext[back_src]]])
    search_at = np.concatenate(
        [t0 + rng.integers(0, span_ticks, n_bg) * tick_us, exp_at[back_src] + offsets_s * SECOND_US]
    )
    search_cat = np.concatenate([rng.integers(0, categories, n_bg), (back_note_brand % categories)])
    n_search = len(search_user)
    search_ids = _ids("s", n_search, 7)
    searches = _frame(
        schemas.SEARCHES,
        {
            "search_id": search_ids,
            "user_id": user_ids[search_user],
            "event_time": pd.to_datetime(search_at, unit="us", utc=True),
            "query": category_ids[search_cat],
        },
    )
    two = rng.random(n_search) < 0.2
    search_categories = _frame(
        schemas.SEARCH_CATEGORIES,
        {
            "search_id": np.concatenate([search_ids, search_ids[two]]),
            "category_id": np.concatenate(
                [category_ids[search_cat], category_ids[(search_cat[two] + 1) % categories]]
            ),
        },
    ).drop_duplicates()

    # Orders follow searches at edge offsets: 0, +3 days, +3 days + 1 s, within, or too late.
    n_orders = int(n_search * orders_per_search)
    src = rng.integers(0, n_search, n_orders)
    per_category = brands // categories
    order_brand = search_cat[src] + categories * rng.integers(0, max(per_category, 1), n_orders)
    order_brand = np.where(order_brand < brands, order_brand, search_cat[src])
    pay_offset = rng.choice(
        [0, 3 * DAY_S, 3 * DAY_S + 1, -1, -2], size=n_orders, p=[0.1, 0.1, 0.1, 0.6, 0.1]
    )
    pay_offset = np.where(pay_offset == -1, rng.integers(1, 3 * DAY_S, n_orders), pay_offset)
    pay_offset = np.where(
        pay_offset == -2, rng.integers(3 * DAY_S, 6 * DAY_S, n_orders), pay_offset
    )
    paid_at = search_at[src] + pay_offset * SECOND_US
    orders = _frame(
        schemas.ORDERS,
        {
            "order_id": _ids("o", n_orders, 7),
            "user_id": user_ids[search_user[src]],
            "item_id": np.char.add("i", order_brand.astype(str)).astype(object),
            "brand_id": brand_ids[order_brand],
            # Deliberately sometimes wrong: the engine must take the category from brands.csv.
            "category_id": category_ids[rng.integers(0, categories, n_orders)],
            "amount_fen": rng.integers(1, 100_000, n_orders),
            "paid_at": pd.to_datetime(paid_at, unit="us", utc=True),
            "status": np.where(rng.random(n_orders) < 0.1, "refunded", "paid").astype(object),
        },
    )

    def delivered(df: pd.DataFrame, ts: str) -> pd.DataFrame:
        return df.assign(dt=business_day(df[ts]).to_numpy())

    # New versions of some orders delivered one or two days after payment: refunded, or paid with
    # a corrected amount.
    orders = delivered(orders, "paid_at")
    changed = orders.loc[rng.random(n_orders) < 0.08].copy()
    refund = rng.random(len(changed)) < 0.5
    changed["status"] = np.where(refund, "refunded", "paid").astype(object)
    changed["amount_fen"] = np.where(
        refund, changed["amount_fen"], rng.integers(1, 100_000, len(changed))
    )
    later = pd.to_timedelta(rng.integers(1, 3, len(changed)), unit="D")
    changed["dt"] = (pd.to_datetime(changed["dt"].astype(str)) + later).dt.date
    orders = schemas.conform(schemas.ORDERS, pd.concat([orders, changed], ignore_index=True))

    return FunnelInputs(
        exposures=_with_duplicates(delivered(exposures, "event_time"), rng, duplicate_rate),
        id_links=id_links,
        notes=notes,
        note_brands=note_brands.reset_index(drop=True),
        searches=_with_duplicates(delivered(searches, "event_time"), rng, duplicate_rate),
        search_categories=search_categories.reset_index(drop=True),
        orders=_with_duplicates(orders, rng, duplicate_rate),
        brands=brand_frame,
        categories=category_frame,
        creators=creators,
    )
