"""Differential test: the pandas engine and the DuckDB reference agree on random adversarial worlds.

Every table of ``schemas.FUNNEL_TABLES``: the same rows (keys), equal counts, flags and strings,
and floats (money, scores, ratios, intervals) equal to 1e-9 relative.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from worlds import random_inputs, random_params

from pipelines import schemas
from pipelines.funnel.inputs import FunnelInputs
from pipelines.oracle import duckdb_engine
from pipelines.settings import FunnelParams

try:
    pandas_engine = importlib.import_module("pipelines.funnel.engine")
except ImportError as e:  # the pandas engine is developed in parallel
    pandas_engine = None
    _MISSING = f"pandas engine not importable yet ({e})"

needs_pandas_engine = pytest.mark.skipif(
    pandas_engine is None or not hasattr(pandas_engine, "compute"),
    reason=_MISSING if pandas_engine is None else "pipelines.funnel.engine has no compute()",
)

RTOL = 1e-9
ATOL = 1e-9  # credits of far-away touches under a short half-life can be ~1e-6 fen

# (seed, users, days, brands, categories): small to medium, default parameters on the first few.
SIZES = [(4, 1, 1, 1), (6, 2, 2, 1), (10, 3, 3, 2), (16, 4, 4, 2), (30, 6, 5, 3), (60, 5, 6, 3)]
CASES = [(seed, *SIZES[seed % len(SIZES)]) for seed in range(30)]


def _params(seed: int) -> FunnelParams:
    return FunnelParams() if seed < 6 else random_params(np.random.default_rng(10_000 + seed))


#: Decision cycles (SPEC 5.11): c1 a long one (face serum, ~29 days), c2 a short one, c3 only its
#: own conversion window (its seed window stays the global one).
CATEGORY_WINDOWS = {
    "c1": {"seed_window_days": 29, "conversion_window_days": 7},
    "c2": {"seed_window_days": 5, "conversion_window_days": 1},
    "c3": {"conversion_window_days": 0.25},
}
# Worlds of two or three categories: the first few with the global defaults, the rest random.
WINDOW_CASES = [(100 + i, *[s for s in SIZES if s[3] >= 2][i % 4]) for i in range(12)]


def _window_params(seed: int) -> FunnelParams:
    return replace(_params(seed - 100 + 4), category_windows=CATEGORY_WINDOWS)


def _sorted(t: schemas.Table, df: pd.DataFrame) -> pd.DataFrame:
    df = schemas.conform(t, df)
    order = list(t.key) + [c for c in t.names if c not in t.key]
    return df.sort_values(order, kind="mergesort", na_position="first").reset_index(drop=True)


def _column_diff(t: schemas.Table, name: str, a: pd.Series, b: pd.Series) -> np.ndarray:
    """Row positions where the two columns disagree (nulls equal only to nulls)."""
    null_a, null_b = a.isna().to_numpy(), b.isna().to_numpy()
    both = ~null_a & ~null_b
    if t.column(name).type == "float64":
        x, y = a.to_numpy("float64", na_value=np.nan), b.to_numpy("float64", na_value=np.nan)
        same = np.isclose(x, y, rtol=RTOL, atol=ATOL)
    else:
        same = (a.astype(object).to_numpy() == b.astype(object).to_numpy())
    return np.flatnonzero((null_a != null_b) | (both & ~same))


def differences(t: schemas.Table, ours: pd.DataFrame, theirs: pd.DataFrame) -> list[str]:
    """Human-readable disagreements between two outputs of one table (empty when they agree)."""
    a, b = _sorted(t, ours), _sorted(t, theirs)
    key = list(t.key)
    keys_a = a[key].astype(str).agg("|".join, axis=1)
    keys_b = b[key].astype(str).agg("|".join, axis=1)
    only_a = sorted(set(keys_a) - set(keys_b))
    only_b = sorted(set(keys_b) - set(keys_a))
    out = []
    if only_a or only_b or len(a) != len(b):
        out.append(
            f"{t.name}: {len(a)} rows (duckdb) vs {len(b)} (pandas); "
            f"only duckdb {only_a[:5]}; only pandas {only_b[:5]}"
        )
        return out
    for c in t.names:
        bad = _column_diff(t, c, a[c], b[c])
        if len(bad):
            i = bad[0]
            out.append(
                f"{t.name}.{c}: {len(bad)} rows differ, first at key {keys_a.iloc[i]}: "
                f"duckdb {a[c].iloc[i]!r} vs pandas {b[c].iloc[i]!r}"
            )
    return out


@needs_pandas_engine
@pytest.mark.parametrize(("seed", "users", "days", "brands", "categories"), CASES)
def test_engines_agree(seed: int, users: int, days: int, brands: int, categories: int):
    params = _params(seed)
    inputs, start, end = random_inputs(
        seed, users=users, days=days, brands=brands, categories=categories, params=params
    )
    ours = duckdb_engine.compute(inputs, params, start, end, "run-x")
    theirs = pandas_engine.compute(inputs, params, start, end, "run-x")
    assert set(theirs) == {t.name for t in schemas.FUNNEL_TABLES}
    problems = [p for t in schemas.FUNNEL_TABLES for p in differences(t, ours[t.name], theirs[t.name])]
    assert not problems, f"seed {seed}, {params}, days {start}..{end}:\n" + "\n".join(problems)


@needs_pandas_engine
@pytest.mark.parametrize(("seed", "users", "days", "brands", "categories"), WINDOW_CASES)
def test_engines_agree_with_windows_per_category(seed: int, users: int, days: int, brands: int, categories: int):
    params = _window_params(seed)
    inputs, start, end = random_inputs(
        seed, users=users, days=days, brands=brands, categories=categories, params=params
    )
    ours = duckdb_engine.compute(inputs, params, start, end, "run-x")
    theirs = pandas_engine.compute(inputs, params, start, end, "run-x")
    problems = [p for t in schemas.FUNNEL_TABLES for p in differences(t, ours[t.name], theirs[t.name])]
    assert not problems, f"seed {seed}, {params}, days {start}..{end}:\n" + "\n".join(problems)


def test_worlds_with_windows_per_category_are_not_trivial():
    """Each category's own window edges are planted (a touch exactly seed_window(c) before a search
    of c, an order of a brand of c exactly conversion_window(c) after one), and the figures differ
    from those with the global windows only."""
    edges = {(c, e): 0 for c in CATEGORY_WINDOWS for e in ("touch at -seed", "order at +conversion")}
    moved = dict.fromkeys(
        ("fct_search_pairs", "fct_seeded_orders", "agg_brand_funnel_daily", "brand_boost_signals"), 0
    )
    for seed, users, days, brands, categories in WINDOW_CASES:
        params = _window_params(seed)
        inputs, start, end = random_inputs(
            seed, users=users, days=days, brands=brands, categories=categories, params=params
        )
        searched = inputs.searches.merge(inputs.search_categories, on="search_id")
        seen = inputs.exposures.merge(inputs.id_links, on=["platform", "ext_user_id"])
        seen = seen.merge(searched, on="user_id", suffixes=("_e", "_s"))
        bought = inputs.orders.merge(inputs.brands[["brand_id", "category_id"]], on="brand_id", suffixes=("_o", ""))
        bought = bought.merge(searched, on=["user_id", "category_id"])
        for c in CATEGORY_WINDOWS:
            seed_window, conversion_window = params.windows_of(c)
            mine = seen[seen["category_id"] == c]
            edges[(c, "touch at -seed")] += int((mine["event_time_s"] - mine["event_time_e"] == seed_window).sum())
            mine = bought[bought["category_id"] == c]
            edges[(c, "order at +conversion")] += int((mine["paid_at"] - mine["event_time"] == conversion_window).sum())
        out = duckdb_engine.compute(inputs, params, start, end, "run-x")
        plain = duckdb_engine.compute(inputs, replace(params, category_windows=()), start, end, "run-x")
        for name in moved:
            moved[name] += len(differences(schemas.table(name), out[name], plain[name]))
    assert all(n > 0 for n in edges.values()), edges
    assert all(n > 0 for n in moved.values()), moved


def _contents(df: pd.DataFrame, key: str) -> pd.Series:
    """Per key, how many different contents (every column but dt) its deliveries hold."""
    return df.drop(columns="dt").drop_duplicates().groupby(key).size()


def test_worlds_are_not_trivial():
    """The worlds exercise every table, hit the window edges exactly and hold new versions."""
    totals = dict.fromkeys((t.name for t in schemas.FUNNEL_TABLES), 0)
    edges = {
        "order at +conversion_window": 0,
        "touch at -seed_window": 0,
        "touch at search": 0,
        "search at -activity_window": 0,
        "order at -activity_window": 0,
    }
    strata = {"activity bands": set(), "recent order": set(), "adjusted uplift defined": 0}
    versions = {
        "order refunded later": 0,
        "order changed otherwise": 0,
        "search changed": 0,
        "link claims replaced": 0,
        "link revoked": 0,
        "boost snapshot days": 0,
    }
    for seed, users, days, brands, categories in CASES[:12]:
        params = _params(seed)
        inputs, start, end = random_inputs(
            seed, users=users, days=days, brands=brands, categories=categories, params=params
        )
        out = duckdb_engine.compute(inputs, params, start, end, "run-x")
        for name, df in out.items():
            totals[name] += len(df)
        orders = out["fct_seeded_orders"]
        lag = orders["paid_at"] - orders["anchor_searched_at"]
        edges["order at +conversion_window"] += int((lag == params.conversion_window).sum())
        # Seeding edges are mostly before `start`, so look for them in the inputs.
        seen = inputs.exposures.merge(inputs.id_links, on=["platform", "ext_user_id"])
        seen = seen.merge(inputs.searches, on="user_id", suffixes=("_e", "_s"))
        lead = seen["event_time_s"] - seen["event_time_e"]
        edges["touch at -seed_window"] += int((lead == params.seed_window).sum())
        same = out["fct_touches"].merge(
            out["fct_search_pairs"], left_on=["user_id", "touch_at"], right_on=["user_id", "searched_at"]
        )
        edges["touch at search"] += len(same)
        # Activity edges (SPEC 5.10): another search / order of the searching user exactly
        # activity_window before a search that makes a pair.
        searched = inputs.searches.merge(inputs.search_categories, on="search_id")[["user_id", "event_time"]]
        for frame, col, name in ((inputs.searches, "event_time", "search"), (inputs.orders, "paid_at", "order")):
            near = searched.merge(frame[["user_id", col]], on="user_id", suffixes=("", "_other"))
            other = near[col if col != "event_time" else "event_time_other"]
            lead = near["event_time"] - other
            edges[f"{name} at -activity_window"] += int((lead == params.activity_window).sum())
        k = out["agg_uplift_strata"]
        strata["activity bands"] |= set(k["activity"])
        strata["recent order"] |= set(k["has_recent_order"])
        strata["adjusted uplift defined"] += int(out["agg_conversion_uplift"]["adjusted_uplift"].notna().sum())
        # Versions (SPEC 3) in later deliveries.
        by_dt = inputs.orders.sort_values("dt", kind="stable")
        first = by_dt.drop_duplicates("order_id").set_index("order_id")
        last = by_dt.drop_duplicates("order_id", keep="last").set_index("order_id").loc[first.index]
        refunded = (first["status"] == "paid") & (last["status"] == "refunded")
        versions["order refunded later"] += int(refunded.sum())
        changed = (first.drop(columns="dt") != last.drop(columns="dt")).any(axis=1)
        versions["order changed otherwise"] += int((changed & ~refunded).sum())
        versions["search changed"] += int((_contents(inputs.searches, "search_id") > 1).sum())
        links = inputs.id_links
        newest = links.groupby(["platform", "ext_user_id"])["dt"].transform("max")
        replaced = links[links["dt"] < newest][["platform", "ext_user_id"]].drop_duplicates()
        versions["link claims replaced"] += len(replaced)
        current = links[links["dt"] == newest]
        best = current.groupby(["platform", "ext_user_id"])["confidence"].max()
        versions["link revoked"] += int((best == 0).sum())
        versions["boost snapshot days"] += out["brand_boost_signals"]["as_of_dt"].nunique() - 1
    assert all(n > 0 for n in totals.values()), totals
    assert all(n > 0 for n in edges.values()), edges
    assert all(n > 0 for n in versions.values()), versions
    assert strata["activity bands"] == set(schemas.ACTIVITY_BANDS), strata
    assert strata["recent order"] == {True, False} and strata["adjusted uplift defined"] > 0, strata


@needs_pandas_engine
def test_engines_agree_on_an_empty_world():
    """No events at all: both still emit the dense aggregates (zeros, null ratios)."""
    world, start, end = random_inputs(0, users=4, days=2)
    empty = FunnelInputs.empty()
    empty.brands, empty.categories, empty.creators = world.brands, world.categories, world.creators
    params = FunnelParams()
    ours = duckdb_engine.compute(empty, params, start, end, "run-x")
    theirs = pandas_engine.compute(empty, params, start, end, "run-x")
    problems = [p for t in schemas.FUNNEL_TABLES for p in differences(t, ours[t.name], theirs[t.name])]
    assert not problems, "\n".join(problems)
    assert len(ours["agg_brand_funnel_daily"]) == 2 * len(world.brands) * 6


@needs_pandas_engine
@pytest.mark.parametrize(
    ("seed", "users", "days", "brands", "categories"),
    [next(c for c in CASES if c[2] >= 3), next(c for c in WINDOW_CASES if c[2] >= 3)],
)
def test_boost_handed_over_a_day_at_a_time_is_the_whole_table(seed, users, days, brands, categories):
    """``compute(..., boost_sink=...)``: brand_boost_signals comes one as-of day at a time, in day
    order, each day published, and the days together are the table computed whole; the other
    tables are the same."""
    params = _params(seed) if (seed, users, days, brands, categories) in CASES else _window_params(seed)
    inputs, start, end = random_inputs(seed, users=users, days=days, brands=brands, categories=categories, params=params)
    whole = pandas_engine.compute(inputs, params, start, end, "run-x")
    handed: list[pd.DataFrame] = []
    streamed = pandas_engine.compute(inputs, params, start, end, "run-x", boost_sink=handed.append)
    boost = schemas.BRAND_BOOST_SIGNALS.name
    assert set(streamed) == set(whole) - {boost}
    for name, frame in streamed.items():
        pd.testing.assert_frame_equal(frame, whole[name])
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    assert len(handed) == len(days)
    assert all(set(f["as_of_dt"]) <= {day} for day, f in zip(days, handed, strict=True))
    assert sum(len(f) > 0 for f in handed) > 1
    pd.testing.assert_frame_equal(pd.concat(handed, ignore_index=True), whole[boost])
