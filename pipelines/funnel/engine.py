"""The pandas funnel engine: SPEC 5 from FunnelInputs to every published funnel table."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pandas as pd

from .. import schemas
from ..settings import FunnelParams
from ..timeutil import days as day_range
from .attribution import credits
from .boost import boost_signals
from .daily import brand_daily
from .inputs import FunnelInputs
from .orders import seeded_orders
from .pairs import pair_brands, pair_facts, search_pairs
from .prepare import brand_categories, columns, linked_ids, paid_orders, unique_searches
from .touches import linked_exposures, note_dimension, touches
from .uplift import brand_units, conversion_uplift


def publish(table: schemas.Table, df: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """The frame with run_id, exactly the declared columns and types, sorted by the table's key."""
    out = schemas.conform(table, df.assign(run_id=run_id))
    return out.sort_values(list(table.key), kind="stable").reset_index(drop=True)


def _within(df: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Rows whose business day dt lies in start..end."""
    return df.loc[((df["dt"] >= start) & (df["dt"] <= end)).to_numpy(dtype=bool)]


def compute(
    inputs: FunnelInputs, params: FunnelParams, start: date, end: date, run_id: str
) -> dict[str, pd.DataFrame]:
    """Every table of schemas.FUNNEL_TABLES for the days start..end; finality relative to end."""
    days = pd.Series(day_range(start, end), dtype="date32[pyarrow]")
    brands = brand_categories(inputs.brands)
    categories = columns(inputs.categories, schemas.CATEGORIES, ["category_id"]).drop_duplicates()

    notes = note_dimension(inputs.notes, inputs.note_brands, inputs.brands, inputs.creators)
    links = linked_ids(inputs.id_links, params.min_link_confidence)
    linked = linked_exposures(inputs.exposures, links, notes)
    touch = touches(linked, params.touch_kinds)
    seeding = touch.loc[touch["category_id"].notna()]

    paid = paid_orders(inputs.orders, inputs.brands)
    pairs = search_pairs(unique_searches(inputs.searches), inputs.search_categories)
    cand = pair_brands(pairs, seeding, paid, params)
    facts = pair_facts(pairs, cand)
    orders, eligible = seeded_orders(paid, cand, seeding, params)
    credit = credits(eligible, params.decay_half_life_days)

    brand_level = brand_units(cand, pairs, brands)
    uplift = conversion_uplift(days, brands, categories, brand_level, facts)
    daily = brand_daily(days, brands, seeding, pairs, brand_level, orders, credit, params)
    boost = boost_signals(linked, end, params)

    pairs_final = end - timedelta(days=math.ceil(params.conversion_window_days))
    daily_final = end - timedelta(days=params.finality_lag_days)
    facts = _within(facts, start, end)
    facts = facts.assign(is_final=(facts["dt"] <= pairs_final).to_numpy(dtype=bool))
    uplift = uplift.assign(is_final=(uplift["dt"] <= pairs_final).to_numpy(dtype=bool))
    daily = daily.assign(is_final=(daily["dt"] <= daily_final).to_numpy(dtype=bool))

    frames = {
        schemas.FCT_TOUCHES.name: _within(touch, start, end),
        schemas.FCT_SEARCH_PAIRS.name: facts,
        schemas.FCT_SEEDED_ORDERS.name: _within(orders, start, end),
        schemas.FCT_ATTRIBUTION_CREDITS.name: _within(credit, start, end),
        schemas.AGG_BRAND_FUNNEL_DAILY.name: daily,
        schemas.AGG_CONVERSION_UPLIFT.name: uplift,
        schemas.BRAND_BOOST_SIGNALS.name: boost,
    }
    return {
        table.name: publish(table, frames[table.name], run_id) for table in schemas.FUNNEL_TABLES
    }
