"""Engagement counts as exporters write them: "809", "10+", "1.2万", "3千", "1.5w", "None"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schemas

BAD_COUNT = "bad_count"
NEGATIVE_COUNT = "negative_count"
OUT_OF_RANGE = "out_of_range"

#: Unit suffixes. "w"/"W" is the Latin shorthand for 万 that Chinese apps use ("1.5w" = 15000).
UNITS: dict[str, int] = {
    "": 1,
    "k": 1_000,
    "千": 1_000,
    "w": 10_000,
    "万": 10_000,
    "亿": 100_000_000,
}
#: Values that mean "the exporter did not have the count": stored as 0.
MISSING = frozenset({"", "none", "null", "nan", "-1"})

_COUNT = r"^(?P<sign>-?)(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kK千wW万亿]?)\s*\+?$"
_THOUSANDS = r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?"


def parse_counts(values: pd.Series, limit: int = schemas.MAX_COUNT) -> tuple[pd.Series, pd.Series]:
    """Parse counts into int64; returns (counts, reason) with reason None where the value is good.

    Missing markers (null, "", "None", "null", "-1") are 0. "10+" is 10 (a lower bound, kept as
    is). A unit multiplies and the result is rounded to the nearest integer. A decimal without a
    unit, or any other text, is ``bad_count``; any other negative number is ``negative_count``;
    a count above ``limit`` (10^12 - 1) is ``out_of_range``.
    """
    s = pd.Series(values, copy=False)
    counts = pd.Series(0, index=s.index, dtype="int64")
    reason = pd.Series(None, index=s.index, dtype="object")
    if s.empty:
        return counts, reason

    text = s.astype("string").str.strip().fillna("").astype(object)
    text = text.where(~_flag(text.str.match(_THOUSANDS)), text.str.replace(",", "", regex=False))
    missing = _flag(text.str.lower().isin(MISSING)) | _flag(text.str.fullmatch(r"-1(?:\.0+)?"))
    parts = text.str.extract(_COUNT)
    matched = _flag(parts["num"].notna()) & ~missing

    number = pd.to_numeric(parts["num"].where(matched), errors="coerce").astype("float64")
    unit = parts["unit"].fillna("").astype(object).str.lower()
    scale = unit.map(UNITS).fillna(1).astype("float64")
    value = (number * scale).round()
    # A plain decimal ("12.5") is not a count; with a unit ("1.25万") it is an abbreviation.
    fractional = matched & _flag(unit.eq("")) & _flag(number.ne(np.floor(number)))
    negative = matched & _flag(parts["sign"].eq("-")) & _flag(value.ne(0))

    reason[~missing & ~matched] = BAD_COUNT
    reason[fractional] = BAD_COUNT
    reason[negative & ~fractional] = NEGATIVE_COUNT
    too_big = matched & reason.isna() & _flag(value.gt(limit) | ~np.isfinite(value.fillna(0)))
    reason[too_big] = OUT_OF_RANGE
    good = matched & reason.isna()
    counts[good] = value[good].astype("int64")
    return counts, reason


def _flag(mask: pd.Series) -> pd.Series:
    """A plain bool mask (missing counts as False), safe to combine with ``&``."""
    return mask.fillna(False).astype(bool)
