"""The pandas funnel engine: SPEC 5 from FunnelInputs to every published funnel table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

from .. import schemas
from ..settings import FunnelParams
from ..timeutil import days as day_range
from ..windows import daily_final, pairs_final
from .attribution import credits
from .boost import BoostScope, boost_days, boost_signals
from .daily import brand_daily
from .inputs import FunnelInputs
from .orders import seeded_orders
from .pairs import pair_brands, pair_facts, search_pairs
from .prepare import (
    brand_categories,
    columns,
    linked_ids,
    paid_orders,
    sorted_ids,
    unique_searches,
)
from .strata import pair_strata
from .touches import linked_exposures, note_dimension, touches
from .uplift import brand_units, category_units, conversion_uplift


def publish(table: schemas.Table, df: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """The frame with run_id, exactly the declared columns and types, sorted by the table's key.

    A frame with an ``_order`` column (each row's rank in key order, from integer codes) is put
    in that order instead of sorting its strings.
    """
    if "_order" in df.columns:
        order = df["_order"].to_numpy()
        if len(order) > 1 and not (order[1:] > order[:-1]).all():  # already in order: no copy
            df = df.iloc[np.argsort(order, kind="stable")]
        out = schemas.conform(table, df.assign(run_id=run_id))
        return out.reset_index(drop=True)
    out = schemas.conform(table, df.assign(run_id=run_id))
    return out.sort_values(list(table.key), kind="stable").reset_index(drop=True)


def _within(df: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Rows whose business day dt lies in start..end."""
    return df.loc[((df["dt"] >= start) & (df["dt"] <= end)).to_numpy(dtype=bool)]


def _category_of(brand_ids: pd.Series, brands: pd.DataFrame) -> np.ndarray:
    """Per row the category (brands.csv) of its brand, None where the brand has none."""
    at = pd.Index(brands["brand_id"]).get_indexer(brand_ids)
    return np.where(at >= 0, brands["category_id"].to_numpy(dtype=object)[np.maximum(at, 0)], None)


def _subject_category(rows: pd.DataFrame, brands: pd.DataFrame) -> np.ndarray:
    """Per uplift row the category whose windows it depends on (SPEC 5.11): a brand's, a
    category's own; None for level all, which pools every category (``windows``: the longest)."""
    level = rows["level"].to_numpy(dtype=object)
    subject = rows["subject_id"].to_numpy(dtype=object)
    return np.where(
        level == "brand",
        _category_of(rows["subject_id"], brands),
        np.where(level == "category", subject, None),
    )


def compute(
    inputs: FunnelInputs,
    params: FunnelParams,
    start: date,
    end: date,
    run_id: str,
    boost_scope: BoostScope | None = None,
    boost_sink: Callable[[pd.DataFrame], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of schemas.FUNNEL_TABLES for the days start..end (boost: a snapshot as of the
    end of each of those days, for the users ``boost_scope`` names where it does); finality
    relative to end (``pipelines.windows``).

    With a ``boost_sink``, brand_boost_signals is not returned: each as-of day's rows, published
    (``publish``), are handed to it in day order as soon as they are computed, so the snapshots of
    many days are never in memory at once (the funnel step writes them to its bucket file).
    """
    days = pd.Series(day_range(start, end), dtype="date32[pyarrow]")
    brands = brand_categories(inputs.brands)
    categories = columns(inputs.categories, schemas.CATEGORIES, ["category_id"]).drop_duplicates()

    notes = note_dimension(inputs.notes, inputs.note_brands, inputs.brands, inputs.creators)
    links = linked_ids(inputs.id_links, params.min_link_confidence)
    paid = paid_orders(inputs.orders, inputs.brands)
    searches = unique_searches(inputs.searches)
    pairs = search_pairs(searches, inputs.search_categories)
    strata = pair_strata(pairs, searches, paid, params)
    # Users and brands as integer codes shared by touches, pairs and orders (string order).
    users = sorted_ids(links["user_id"], pairs["user_id"], paid["user_id"])
    brand_ids = sorted_ids(notes["brand_id"], paid["brand_id"])
    pairs["_user"] = users.get_indexer(pairs["user_id"])
    pairs["_row"] = np.arange(len(pairs))
    paid["_user"] = users.get_indexer(paid["user_id"])
    paid["_brand"] = brand_ids.get_indexer(paid["brand_id"])

    linked = linked_exposures(inputs.exposures, links, notes, users, brand_ids)
    touch = touches(linked, params.touch_kinds)
    seeding = touch.loc[touch["category_id"].notna()]
    cand = pair_brands(pairs, seeding, paid, len(brand_ids), params)
    facts = pair_facts(pairs, cand)
    orders, eligible = seeded_orders(paid, cand, seeding, params)
    credit = credits(eligible, params.decay_half_life_days)

    brand_level = brand_units(cand, pairs, brands, strata)
    uplift, uplift_strata = conversion_uplift(
        days, brands, categories, brand_level, category_units(facts, strata)
    )
    daily = brand_daily(
        days,
        brands,
        seeding,
        pairs,
        brand_level[0],
        uplift,
        orders,
        credit,
        (linked.users, linked.brands),
        params,
    )
    boost_table = schemas.BRAND_BOOST_SIGNALS
    if boost_sink is None:
        boost = boost_signals(linked, day_range(start, end), params, boost_scope)
    else:
        for day in boost_days(linked, day_range(start, end), params, boost_scope):
            boost_sink(publish(boost_table, day, run_id))
        boost = None

    # Finality follows each row's own category windows (pipelines.windows).
    facts = _within(facts, start, end)
    facts = facts.assign(is_final=pairs_final(params, end, facts["dt"], facts["category_id"]))
    uplift = uplift.assign(
        is_final=pairs_final(params, end, uplift["dt"], _subject_category(uplift, brands))
    )
    uplift_strata = uplift_strata.assign(
        is_final=pairs_final(
            params, end, uplift_strata["dt"], _subject_category(uplift_strata, brands)
        )
    )
    daily = daily.assign(
        is_final=daily_final(params, end, daily["dt"], _category_of(daily["brand_id"], brands))
    )

    frames = {
        schemas.FCT_TOUCHES.name: _within(touch, start, end),
        schemas.FCT_SEARCH_PAIRS.name: facts,
        schemas.FCT_SEEDED_ORDERS.name: _within(orders, start, end),
        schemas.FCT_ATTRIBUTION_CREDITS.name: _within(credit, start, end),
        schemas.AGG_BRAND_FUNNEL_DAILY.name: daily,
        schemas.AGG_CONVERSION_UPLIFT.name: uplift,
        schemas.AGG_UPLIFT_STRATA.name: uplift_strata,
        boost_table.name: boost,
    }
    del boost  # each frame is released once published (frames.pop): the boost's copies do not pile up
    return {
        table.name: publish(table, frames.pop(table.name), run_id)
        for table in schemas.FUNNEL_TABLES
        if frames[table.name] is not None
    }
