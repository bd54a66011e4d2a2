"""SPEC 5.7 and 5.10: conversion uplift of seeded over baseline units, naive (log-method interval)
and engagement-adjusted (Mantel-Haenszel over activity strata), by level and slice.

Levels (docs/semantics.md): ``brand`` (units (s, c(b)) of one brand b), ``all`` (the same units of
every brand pooled: the headline estimand) and ``category`` (units are the pairs (s, c), seeded for
any brand of c, converting at category level). Every figure is computed from stratum counts: the
naive counts are their sums, the adjusted figure their Mantel-Haenszel ratio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schemas
from .strata import ACTIVITY_LABELS, ADJUSTED, STRATUM, Z, mantel_haenszel

COUNTS: list[str] = ["seeded_pairs", "seeded_conversions", "baseline_pairs", "baseline_conversions"]
FIGURES: list[str] = ["cvr_seeded", "cvr_baseline", "uplift", "uplift_ci_low", "uplift_ci_high"]
#: The dense slice rows of every (day, subject) (docs/semantics.md).
SLICES: list[tuple[str, str]] = [
    ("all", schemas.ALL),
    *(("platform", p) for p in schemas.PLATFORMS),
    ("vertical_match", "match"),
    ("vertical_match", "mismatch"),
]
#: A subject's row keys in agg_conversion_uplift (and, followed by STRATUM, agg_uplift_strata).
ROW = ["dt", "level", "subject_id", "slice", "slice_value"]
_UNIT = ["dt", "subject_id", *STRATUM]


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


def with_adjusted(rows: pd.DataFrame, strata: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (keyed by ROW) with the adjusted figures of ``strata`` (ROW + STRATUM counts);
    null where a row has no strata."""
    adjusted = mantel_haenszel(strata, ROW) if len(strata) else pd.DataFrame(columns=ROW + ADJUSTED)
    out = rows.drop(columns=[c for c in ADJUSTED if c in rows.columns])
    out = out.merge(adjusted, on=ROW, how="left")
    for c in ADJUSTED:
        out[c] = out[c].astype("float64")
    return out


def adjusted_over(strata: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The adjusted figures per ``keys`` of strata rows pooled over everything else (days: a window).

    Each stratum's four counts are summed first (a stratum is (stratum_id, activity,
    has_recent_order), whatever the day), then the Mantel-Haenszel formula applies to the sums.
    """
    summed = strata.groupby([*keys, *STRATUM], sort=True, dropna=False)[COUNTS].sum().reset_index()
    if summed.empty:
        return pd.DataFrame(columns=[*keys, *ADJUSTED])
    return mantel_haenszel(summed, keys)


def _by_slice(units: pd.DataFrame) -> pd.DataFrame:
    """Each seeded unit once per slice it belongs to: all, its platform, its vertical match."""
    return pd.concat(
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


def stratum_counts(seeded: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Seeded and baseline counts per (dt, subject_id, slice, slice_value, stratum), sparse.

    ``seeded``: one row per seeded unit with dt, subject_id, the STRATUM columns, platform (of its
    last touch), is_match and is_converted. ``totals``: per (dt, subject_id, stratum) every unit
    (``pairs``) and every converting unit (``conversions``), seeded or not. On a slice row the
    seeded counts are the slice's and the baseline counts the subject's whole baseline, stratum by
    stratum (SPEC 5.10). Rows with no unit at all (N_k = 0) are left out.
    """
    counted = (
        _by_slice(seeded[[*_UNIT, "platform", "is_match", "is_converted"]])
        .groupby([*_UNIT, "slice", "slice_value"], sort=False, dropna=False)
        .agg(seeded_pairs=("is_converted", "size"), seeded_conversions=("is_converted", "sum"))
        .reset_index()
    )
    seeded_all = counted.loc[counted["slice"] == "all", [*_UNIT, "seeded_pairs", "seeded_conversions"]]
    base = totals.merge(seeded_all, on=_UNIT, how="left")
    base = base.fillna({"seeded_pairs": 0, "seeded_conversions": 0})
    base["baseline_pairs"] = base["pairs"] - base["seeded_pairs"]
    base["baseline_conversions"] = base["conversions"] - base["seeded_conversions"]
    slices = pd.DataFrame(SLICES, columns=["slice", "slice_value"])
    out = (
        base[[*_UNIT, "baseline_pairs", "baseline_conversions"]]
        .merge(slices, how="cross")
        .merge(counted, on=[*_UNIT, "slice", "slice_value"], how="left")
    )
    for c in COUNTS:
        out[c] = out[c].fillna(0).astype("int64")
    return out.loc[(out["seeded_pairs"] + out["baseline_pairs"] > 0).to_numpy(dtype=bool)]


def brand_units(
    cand: pd.DataFrame,
    pairs: pd.DataFrame,
    brands: pd.DataFrame,
    strata: tuple[np.ndarray, np.ndarray],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seeded units, totals) at brand level: units are (s, c(b), b) for every brand b of c.

    ``cand``: pair_brands' rows (only the users' own brands: absent units are neither seeded nor
    converted); ``strata``: per pair (``_row``) its activity band code and order flag.
    """
    activity, has_order = strata
    row = cand["_row"].to_numpy(dtype="int64")
    units = pd.DataFrame(
        {
            "dt": cand["dt"],
            "subject_id": cand["brand_id"],
            "stratum_id": cand["brand_id"],
            "activity": activity[row],
            "has_recent_order": has_order[row],
            "platform": cand["lt_platform"],
            "is_match": (cand["lt_vertical"] == cand["category_id"]).fillna(False).astype(bool),
            "is_converted": cand["is_converted"],
            "is_seeded": cand["is_seeded"],
            "user_id": cand["user_id"],
        }
    )
    seeded = units.loc[units["is_seeded"].to_numpy(dtype=bool)]
    per_category = (
        pd.DataFrame(
            {
                "dt": pairs["dt"],
                "category_id": pairs["category_id"],
                "activity": activity,
                "has_recent_order": has_order,
            }
        )
        .groupby(["dt", "category_id", "activity", "has_recent_order"], sort=False)
        .size()
        .rename("pairs")
        .reset_index()
    )
    totals = per_category.merge(brands[["brand_id", "category_id"]], on="category_id", how="inner")
    totals = totals.assign(subject_id=totals["brand_id"], stratum_id=totals["brand_id"])
    conversions = (
        units.loc[units["is_converted"].to_numpy(dtype=bool)]
        .groupby(_UNIT, sort=False)
        .size()
        .rename("conversions")
        .reset_index()
    )
    totals = totals[[*_UNIT, "pairs"]].merge(conversions, on=_UNIT, how="left")
    totals["conversions"] = totals["conversions"].fillna(0).astype("int64")
    return seeded, totals


def category_units(
    facts: pd.DataFrame, strata: tuple[np.ndarray, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(seeded units, totals) at category level: units are the pairs (s, c) (rows of ``facts``,
    aligned with ``strata``), seeded for any brand of c, converting at category level."""
    activity, has_order = strata
    units = pd.DataFrame(
        {
            "dt": facts["dt"],
            "subject_id": facts["category_id"].astype("str"),
            "stratum_id": facts["category_id"].astype("str"),
            "activity": activity,
            "has_recent_order": has_order,
            "platform": facts["last_touch_platform"],
            "is_match": (facts["last_touch_vertical"] == facts["category_id"])
            .fillna(False)
            .astype(bool),
            "is_converted": facts["is_converted"],
            "is_seeded": facts["is_seeded"],
        }
    )
    totals = (
        units.groupby(_UNIT, sort=False)
        .agg(pairs=("is_converted", "size"), conversions=("is_converted", "sum"))
        .reset_index()
    )
    return units.loc[units["is_seeded"].to_numpy(dtype=bool)], totals


def conversion_uplift(
    days: pd.Series,
    brands: pd.DataFrame,
    categories: pd.DataFrame,
    brand_level: tuple[pd.DataFrame, pd.DataFrame],
    category_level: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(agg_conversion_uplift rows, agg_uplift_strata rows) for ``days`` (without is_final / run_id).

    Uplift rows are dense over days x subjects x slices; strata rows exist where a stratum has a
    unit. Level ``all`` pools the brand-level units: its strata are the brands' strata.
    """
    seeded, totals = brand_level
    pooled = (seeded.assign(subject_id=schemas.ALL), totals.assign(subject_id=schemas.ALL))
    day_frame = pd.DataFrame({"dt": days})
    wanted = set(days)
    rows, strata = [], []
    for level, subjects, (units, unit_totals) in (
        ("all", pd.Series([schemas.ALL]), pooled),
        ("category", categories["category_id"], category_level),
        ("brand", brands["brand_id"], brand_level),
    ):
        subjects = subjects.drop_duplicates().astype("str")
        counts = stratum_counts(units, unit_totals)
        # Only the grid's days and subjects (a search category missing from categories.csv has no
        # uplift row, so no strata either).
        keep = counts["dt"].isin(wanted).to_numpy(dtype=bool) & counts["subject_id"].isin(subjects).to_numpy(dtype=bool)
        counts = counts.loc[keep]
        counts.insert(1, "level", level)
        strata.append(counts)
        grid = day_frame.merge(
            pd.DataFrame({"subject_id": subjects}), how="cross"
        ).merge(pd.DataFrame(SLICES, columns=["slice", "slice_value"]), how="cross")
        summed = counts.groupby(["dt", "subject_id", "slice", "slice_value"], sort=False)[COUNTS].sum()
        dense = grid.merge(summed.reset_index(), on=["dt", "subject_id", "slice", "slice_value"], how="left")
        for c in COUNTS:
            dense[c] = dense[c].fillna(0).astype("int64")
        dense.insert(1, "level", level)
        rows.append(dense)
    strata_rows = pd.concat(strata, ignore_index=True)
    strata_rows["activity"] = np.asarray(ACTIVITY_LABELS, dtype=object)[
        strata_rows["activity"].to_numpy(dtype="int64")
    ]
    uplift = with_adjusted(with_uplift(pd.concat(rows, ignore_index=True)), strata_rows)
    return uplift, strata_rows
