"""Typing and checking raw columns against their ``schemas`` declaration (type, enum, range, nullable).

Nothing here lists columns: every rule comes from the ``schemas.Column`` being checked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import schemas
from ..timeutil import TZ, UTC_DTYPE, epoch_us, parse_timestamps, timestamp_bounds
from .quarantine import Checks

#: Spellings of platforms seen in exporter content (MediaCrawler's short names among them).
PLATFORM_ALIASES: dict[str, str] = {
    **{p: p for p in schemas.PLATFORMS},
    "xhs": "xiaohongshu",
    "redbook": "xiaohongshu",
    "小红书": "xiaohongshu",
    "dy": "douyin",
    "抖音": "douyin",
    "bili": "bilibili",
    "b站": "bilibili",
    "ks": "kuaishou",
    "快手": "kuaishou",
    "wb": "weibo",
    "微博": "weibo",
}


def _flag(mask: pd.Series) -> pd.Series:
    return mask.fillna(False).astype(bool)


def as_text(values: pd.Series) -> pd.Series:
    """Values as stripped text (pandas ``str`` dtype, missing where null): ids, names, free text."""
    s = pd.Series(values, copy=False)
    if pd.api.types.is_float_dtype(s.dtype):
        # Integral floats (ids that went through a float column) lose their ".0".
        whole = s.notna() & np.isfinite(s) & s.eq(np.floor(s))
        text = s.astype("str")
        text[whole] = s[whole].astype("int64").astype("str")
        return text.where(s.notna())
    if not isinstance(s.dtype, pd.StringDtype):
        s = s.astype("str")
    return s.str.strip()


def nested(values: pd.Series, parts: Sequence[int] | None = None) -> pd.Series:
    """True where a value is a JSON object or array (the wrong type for a scalar column).

    A column is looked into only when pandas infers it as mixed (``mixed-integer`` too: integers
    among other values). ``parts``: the lengths of the consecutive runs of ``values`` that come
    from different files, each inferred on its own (as when its file is checked alone).
    """
    s = pd.Series(values, copy=False)
    if parts is not None and s.dtype == object:
        found = np.zeros(len(s), dtype=bool)
        items = s.to_numpy()
        start = 0
        for n in parts:
            mine = items[start : start + n]
            if pd.api.types.infer_dtype(mine, skipna=True) in _MIXED:
                found[start : start + n] = [isinstance(v, (dict, list, tuple)) for v in mine]
            start += n
        return pd.Series(found, index=s.index)
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) not in _MIXED:
        return pd.Series(False, index=s.index)
    return s.map(lambda v: isinstance(v, (dict, list, tuple)))


#: What pandas infers of values that may hold a dict or list (``infer_dtype`` names any other
#: column by the one scalar type all its values share).
_MIXED = ("mixed", "mixed-integer", "unknown-array")


def to_utc(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """SPEC 2 timestamps (epoch s/ms, naive Asia/Shanghai text, ISO with offset) -> (UTC, is_bad)."""
    s = pd.Series(values, copy=False)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        # Fast path for typed epoch columns (Parquet): the same rule as parse_timestamps.
        n = s.astype("float64").to_numpy()
        us, fits = epoch_us(n)
        out = pd.Series(pd.to_datetime(us, unit="us", utc=True), index=s.index)
        out = out.where(fits).astype(UTC_DTYPE)
        return out, pd.Series(~fits & s.notna().to_numpy(), index=s.index)  # inf, 1e308: bad
    return parse_timestamps(s)


def column(
    values: pd.Series,
    col: schemas.Column,
    checks: Checks,
    *,
    empty_ok: bool = False,
    day: object | None = None,
    parts: Sequence[int] | None = None,
) -> pd.Series:
    """Type one raw column by its declaration, flagging failures in ``checks``; returns the typed values.

    ``day``, the delivery day, bounds timestamps (``timeutil.timestamp_bounds``): one outside
    them is ``out_of_range``. Numbers outside the declared min / max are ``out_of_range`` too, and
    an integer column never takes a value its declaration does not bound (nor one past 2^53,
    where a float no longer holds every integer). ``parts``: the lengths of the runs of values
    from different files, when several files are checked together (``nested``).
    """
    s = pd.Series(values, copy=False)
    name = col.name
    is_nested = _flag(nested(s, parts))
    if is_nested.any():
        s = s.where(~is_nested, None)
    typed = pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype)
    # JSON numbers: an object column of whole numbers is read as such, not through their text.
    ints = None if typed or col.type == "str" else _json_integers(s)
    text = None if (typed or ints is not None) and col.type != "str" else as_text(s)
    if text is not None:
        missing = _flag(text.isna()) if empty_ok else (_flag(text.isna()) | _flag(text.eq("")))
    else:
        missing = _flag(s.isna())
    if is_nested.any():
        missing &= ~is_nested  # not empty: the wrong type (bad_type below)
    if not col.nullable:
        checks.flag(missing, "missing_required", f"required field {name!r} is empty")
    checks.flag(
        is_nested, "bad_type", f"field {name!r} holds a JSON object or array, not a {col.type}"
    )

    if col.type == "str":
        out = text
        if col.enum is not None:
            out = text.str.lower()
            checks.flag(
                ~missing & ~_flag(out.isin(col.enum)),
                "bad_enum",
                name,
                shown=text,
                suffix=f" is not one of {', '.join(col.enum)}",
            )
        return out.where(~missing, None)

    if col.type == "ts":
        if ints is not None:
            ts, bad = to_utc(ints)  # as parse_timestamps reads their text: epoch s / ms
        else:
            ts, bad = to_utc(s.where(~missing) if missing.any() else s)
        if bad.any():
            finer = bad & _flag(as_text(s).str.contains(_FINER_THAN_US, regex=True))
            checks.flag(finer, "bad_timestamp", name, shown=s, suffix=_FINER_SUFFIX)
        checks.flag(bad, "bad_timestamp", name, shown=s, suffix=" is not a timestamp")
        if day is not None:
            low, high = timestamp_bounds(day)
            outside = _flag(ts.notna() & (ts.lt(low) | ts.ge(high)))
            if outside.any():
                local = ts.dt.tz_convert(TZ).dt.strftime("%Y-%m-%d %H:%M:%S")
                checks.flag(
                    outside,
                    "out_of_range",
                    name,
                    shown=local,
                    suffix=(
                        f" (Asia/Shanghai) is outside {low.tz_convert(TZ):%Y-%m-%d} .. the end of "
                        f"{(high.tz_convert(TZ) - pd.Timedelta(days=1)):%Y-%m-%d}, the day after "
                        "the delivery day"
                    ),
                )
            ts = ts.where(~outside)
        return ts

    if col.type in ("int64", "float64"):
        if pd.api.types.is_bool_dtype(s.dtype):
            num = pd.Series(np.nan, index=s.index)
            wrong = ~missing
        elif typed or ints is not None:
            num = s.astype("float64") if ints is None else ints
            wrong = pd.Series(False, index=s.index)
        else:
            num = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
            wrong = ~missing & _flag(num.isna())
        finite = np.isfinite(num.fillna(0).to_numpy())
        if col.type == "int64":
            wrong |= ~missing & _flag(num.notna() & num.ne(np.floor(num)))
        wrong |= ~missing & ~finite
        kind = "an integer" if col.type == "int64" else "a number"
        checks.flag(wrong, "bad_type", name, shown=s, suffix=f" is not {kind}")
        good = ~missing & ~wrong
        good &= ~_range(num, good, col, checks)
        if col.type == "int64":
            # Past 2^53 a float no longer holds every integer: such a value is never stored.
            huge = good & _flag(num.abs().gt(_EXACT_INT))
            checks.flag(huge, "out_of_range", name, shown=s, suffix=f" must be <= {_EXACT_INT:,}")
            good &= ~huge
            exact = pd.api.types.is_integer_dtype(s.dtype)
            if exact and bool(good.all()):
                return s.astype("int64")  # typed Parquet column, every value good: no copy by row
            values, keep = np.zeros(len(s), dtype="int64"), good.to_numpy(dtype=bool)
            if keep.any():
                values[keep] = (s[good] if exact else num[good]).astype("int64").to_numpy()
            return pd.Series(pd.arrays.IntegerArray(values, ~keep), index=s.index)
        return num.where(good)

    raise NotImplementedError(f"ingestion does not read columns of type {col.type} ({name})")


#: A time of day whose fraction of a second is finer than microseconds (``parse_timestamps``
#: never rounds it: it is bad).
_FINER_THAN_US = r":\d{2}[.,]\d{6}0*[1-9]"
_FINER_SUFFIX = " is not a timestamp: its fraction of a second has more than 6 digits (finer than microseconds)"

#: The largest integer every float64 holds exactly.
_EXACT_INT = 2**53


def _json_integers(s: pd.Series) -> pd.Series | None:
    """An object column of whole numbers and nulls (JSON numbers; a reader may have made them
    floats) as float64, when every one is below 2^53 in size: a float holds each exactly, as
    when parsed from its text. Else None (read through the text)."""
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) not in _NUMBERS:
        return None
    try:
        num = s.astype("float64")
    except (OverflowError, TypeError, ValueError):
        return None
    whole = num.abs().lt(_EXACT_INT) & num.eq(np.floor(num))
    return num if bool(whole.where(num.notna(), True).all()) else None


_NUMBERS = ("integer", "floating", "mixed-integer-float")


def bound_text(value: float) -> str:
    """A bound as a person writes it: 1000000000000 -> 1,000,000,000,000; 0.5 -> 0.5."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _range(num: pd.Series, good: pd.Series, col: schemas.Column, checks: Checks) -> pd.Series:
    """Flag values outside the declared bounds; returns where they are."""
    outside = pd.Series(False, index=num.index)
    if col.min is not None:
        low = good & _flag(num.le(col.min) if col.min_exclusive else num.lt(col.min))
        sign = ">" if col.min_exclusive else ">="
        checks.flag(low, "out_of_range", col.name, shown=num, suffix=f" must be {sign} {bound_text(col.min)}")
        outside |= low
    if col.max is not None:
        high = good & _flag(num.gt(col.max))
        checks.flag(high, "out_of_range", col.name, shown=num, suffix=f" must be <= {bound_text(col.max)}")
        outside |= high
    return outside


def platform_names(values: pd.Series) -> pd.Series:
    """A platform column of content (no folder names it) with every known spelling
    (``PLATFORM_ALIASES``: 小红书, xhs, DY, ...; case and blanks ignored) as the platform's name;
    other values as written, for the enum check to name them."""
    s = pd.Series(values, copy=False)
    named = as_text(s).str.lower().map(PLATFORM_ALIASES)
    return s.astype(object).where(_flag(named.isna()), named.astype(object))


def platform_agrees(values: pd.Series, folder: str, checks: Checks) -> None:
    """Flag rows whose platform field names another platform than the folder (empty is fine)."""
    text = as_text(values).str.lower()
    present = _flag(text.notna() & text.ne(""))
    spellings = [k for k, v in PLATFORM_ALIASES.items() if v == folder]
    wrong = present & ~_flag(text.isin(spellings))
    checks.flag(
        wrong,
        "platform_mismatch",
        "platform field",
        shown=values,
        suffix=f" disagrees with the folder {folder!r}",
    )
