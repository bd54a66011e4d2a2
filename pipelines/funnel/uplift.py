"""SPEC 5.7: conversion uplift of seeded over baseline pairs, with the log-method 95% interval, by slice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schemas

Z = 1.96
COUNTS: list[str] = ["seeded_pairs", "seeded_conversions", "baseline_pairs", "baseline_conversions"]
FIGURES: list[str] = ["cvr_seeded", "cvr_baseline", "uplift", "uplift_ci_low", "uplift_ci_high"]
#: The dense slice rows of every (day, subject) (docs/semantics.md).
SLICES: list[tuple[str, str]] = [
    ("all", schemas.ALL),
    *(("platform", p) for p in schemas.PLATFORMS),
    ("vertical_match", "match"),
    ("vertical_match", "mismatch"),
]


def with_uplift(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with cvr, uplift and its interval recomputed from its four count columns."""
    x1, n1, x2, n2 = (
        df[c].to_numpy(dtype="float64")
        for c in ("seeded_conversions", "seeded_pairs", "baseline_conversions", "baseline_pairs")
    )
    out = df.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cvr_seeded = np.where(n1 > 0, x1 / n1, np.nan)
        cvr_baseline = np.where(n2 > 0, x2 / n2, np.nan)
        defined = (x1 > 0) & (n1 > 0) & (x2 > 0) & (n2 > 0)
        uplift = np.where(defined, cvr_seeded / cvr_baseline, np.nan)
        half_width = Z * np.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
        log_uplift = np.log(uplift)
        out["cvr_seeded"] = cvr_seeded
        out["cvr_baseline"] = cvr_baseline
        out["uplift"] = uplift
        out["uplift_ci_low"] = np.where(defined, np.exp(log_uplift - half_width), np.nan)
        out["uplift_ci_high"] = np.where(defined, np.exp(log_uplift + half_width), np.nan)
    return out


def slice_counts(grid: pd.DataFrame, seeded: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Dense seeded / baseline counts per (dt, subject_id, slice, slice_value).

    ``grid``: the (dt, subject_id) rows wanted. ``seeded``: one row per seeded unit with dt,
    subject_id, platform (of its last touch), is_match and is_converted. ``totals``: per
    (dt, subject_id) all units (``pairs``) and all converting units (``conversions``), seeded or not.
    Baselines are the subject's whole baseline, repeated on every slice row.
    """
    keys = ["dt", "subject_id"]
    units = seeded[[*keys, "platform", "is_match", "is_converted"]]
    by_slice = pd.concat(
        [
            units.assign(slice="all", slice_value=schemas.ALL),
            units.assign(slice="platform", slice_value=units["platform"]),
            units.assign(
                slice="vertical_match",
                slice_value=np.where(units["is_match"].to_numpy(dtype=bool), "match", "mismatch"),
            ),
        ],
        ignore_index=True,
    )
    counted = (
        by_slice.groupby([*keys, "slice", "slice_value"], sort=False)
        .agg(seeded_pairs=("is_converted", "size"), seeded_conversions=("is_converted", "sum"))
        .reset_index()
    )
    slices = pd.DataFrame(SLICES, columns=["slice", "slice_value"])
    out = (
        grid[keys]
        .merge(slices, how="cross")
        .merge(counted, on=[*keys, "slice", "slice_value"], how="left")
    )
    seeded_all = counted.loc[
        counted["slice"] == "all", [*keys, "seeded_pairs", "seeded_conversions"]
    ]
    base = (
        grid[keys]
        .merge(totals, on=keys, how="left")
        .merge(seeded_all, on=keys, how="left", suffixes=("", "_all"))
    )
    base = base.fillna({"pairs": 0, "conversions": 0, "seeded_pairs": 0, "seeded_conversions": 0})
    base["baseline_pairs"] = base["pairs"] - base["seeded_pairs"]
    base["baseline_conversions"] = base["conversions"] - base["seeded_conversions"]
    out = out.merge(base[[*keys, "baseline_pairs", "baseline_conversions"]], on=keys, how="left")
    for c in COUNTS:
        out[c] = out[c].fillna(0).astype("int64")
    return out


def brand_units(
    cand: pd.DataFrame, pairs: pd.DataFrame, brands: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seeded units, totals) at brand level: units are pairs (s, c(b)) for brand b."""
    seeded = cand.loc[cand["is_seeded"]]
    seeded = pd.DataFrame(
        {
            "dt": seeded["dt"],
            "subject_id": seeded["brand_id"],
            "platform": seeded["lt_platform"],
            "is_match": (seeded["lt_vertical"] == seeded["category_id"]).fillna(False).astype(bool),
            "is_converted": seeded["is_converted"],
            "user_id": seeded["user_id"],
        }
    )
    per_category = pairs.groupby(["dt", "category_id"]).size().rename("pairs").reset_index()
    totals = per_category.merge(brands[["brand_id", "category_id"]], on="category_id", how="inner")
    conversions = (
        cand.loc[cand["is_converted"]]
        .groupby(["dt", "brand_id"])
        .size()
        .rename("conversions")
        .reset_index()
    )
    totals = totals.merge(conversions, on=["dt", "brand_id"], how="left")
    totals = totals.rename(columns={"brand_id": "subject_id"})[
        ["dt", "subject_id", "pairs", "conversions"]
    ]
    return seeded, totals


def pair_units(facts: pd.DataFrame, subject: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seeded units, totals) over pairs at category level (subject None) or level all (subject 'all')."""
    subject_id = facts["category_id"] if subject is None else pd.Series(subject, index=facts.index)
    units = pd.DataFrame(
        {
            "dt": facts["dt"],
            "subject_id": subject_id.astype("str"),
            "platform": facts["last_touch_platform"],
            "is_match": (facts["last_touch_vertical"] == facts["category_id"])
            .fillna(False)
            .astype(bool),
            "is_converted": facts["is_converted"],
            "is_seeded": facts["is_seeded"],
        }
    )
    totals = (
        units.groupby(["dt", "subject_id"])
        .agg(pairs=("is_converted", "size"), conversions=("is_converted", "sum"))
        .reset_index()
    )
    return units.loc[units["is_seeded"]], totals


def conversion_uplift(
    days: pd.Series,
    brands: pd.DataFrame,
    categories: pd.DataFrame,
    brand_level: tuple[pd.DataFrame, pd.DataFrame],
    facts: pd.DataFrame,
) -> pd.DataFrame:
    """agg_conversion_uplift rows (without is_final / run_id): dense over days x subjects x slices."""
    day_frame = pd.DataFrame({"dt": days})
    levels = []
    for level, subjects, (seeded, totals) in (
        ("all", pd.Series([schemas.ALL]), pair_units(facts, schemas.ALL)),
        ("category", categories["category_id"], pair_units(facts, None)),
        ("brand", brands["brand_id"], brand_level),
    ):
        grid = day_frame.merge(
            pd.DataFrame({"subject_id": subjects.drop_duplicates().astype("str")}), how="cross"
        )
        counts = slice_counts(grid, seeded, totals)
        counts.insert(1, "level", level)
        levels.append(counts)
    return with_uplift(pd.concat(levels, ignore_index=True))
