"""Time rules of SPEC section 2, vectorised.

- Every stored timestamp is an aware UTC timestamp (microseconds).
- The business day ``dt`` of an event is its calendar date in Asia/Shanghai.
- Epoch numbers above 1e11 are milliseconds, otherwise seconds.
- Naive timestamp strings are Asia/Shanghai local time; strings with an offset keep it.
- An input timestamp is plausible from 2000-01-01 to the end of the day after its delivery day
  (``timestamp_bounds``); ingestion quarantines any other (issue 17).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from .settings import TIMEZONE

TZ = ZoneInfo(TIMEZONE)
UTC_DTYPE = "datetime64[us, UTC]"
MS_THRESHOLD = 1e11
#: The first day (Asia/Shanghai) an input timestamp may fall on.
EARLIEST_DAY = date(2000, 1, 1)
#: Epoch values beyond this many microseconds do not fit a timestamp at all (int64 range).
_MAX_EPOCH_US = 2.0**62


def epoch_us(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SPEC 2 epoch numbers (> 1e11: milliseconds, else seconds) as int64 microseconds, and
    where they fit (finite and inside the int64 range; elsewhere the value is 0)."""
    n = np.asarray(n, dtype="float64")
    with np.errstate(over="ignore", invalid="ignore"):
        us = np.where(n > MS_THRESHOLD, n * 1_000, n * 1_000_000)
        ok = np.isfinite(us) & (np.abs(us) < _MAX_EPOCH_US)
    return np.where(ok, us, 0).round().astype("int64"), ok


def timestamp_bounds(delivery_day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[low, high): 2000-01-01 00:00 Asia/Shanghai to the end of the day after the delivery day.

    A delivery of day d holds events up to the end of d; one more day allows for clocks and
    time zones gone slightly wrong. Anything outside is an impossible timestamp.
    """
    return day_start_utc(EARLIEST_DAY), day_start_utc(delivery_day + timedelta(days=2))


#: A string that ends in a UTC offset: ``+08:00``, ``+0800`` or ``Z``, or ``+08`` / ``-00`` (hours
#: alone, which pandas reads as an offset too) right after a time (``12:08-00``), so that a
#: date's own ``-09`` is never taken for one.
OFFSET = r"(?:[+-]\d{2}:?\d{2}|Z|:\d{2}(?:[.,]\d+)?\s*[+-]\d{2})$"


def parse_timestamps(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse mixed epoch numbers / strings into UTC; returns (timestamps, is_bad).

    ``is_bad`` is True where a non-null value could not be parsed; nulls stay null and not bad.
    A string finer than microseconds (a non-zero 7th or later fractional-second digit) is bad: it
    is never rounded, nor parsed (pandas would read all the strings at nanosecond resolution,
    where years outside 1677-2262 do not fit). Zeros past the 6th digit are dropped.
    """
    s = pd.Series(values, copy=False)
    out = pd.Series(pd.NaT, index=s.index, dtype=UTC_DTYPE)
    if s.empty:
        return out, pd.Series(False, index=s.index)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ts = s if getattr(s.dt, "tz", None) is not None else s.dt.tz_localize(TZ)
        return ts.dt.tz_convert("UTC").astype(UTC_DTYPE), pd.Series(False, index=s.index)

    present = s.notna()
    as_text = s.astype("string").str.strip()
    present &= as_text.fillna("").ne("")
    num = pd.to_numeric(as_text.where(present), errors="coerce")
    is_num = num.notna()
    if is_num.any():
        us, fits = epoch_us(num[is_num].to_numpy(dtype="float64"))
        parsed = pd.Series(pd.to_datetime(us, unit="us", utc=True), index=num[is_num].index)
        out[is_num] = parsed.where(fits)  # an epoch that fits no timestamp (1e308, inf) is bad

    is_str = present & ~is_num
    if is_str.any():
        text = as_text[is_str].str.replace("_", " ", regex=False)  # XHS-Downloader's 2024-01-06_12:00:00
        text = text.str.replace(r"([.,]\d{6})0+(\D|$)", r"\1\2", regex=True)  # .1234560 is .123456
        text = text[~text.str.contains(r"[.,]\d{7}", regex=True)]  # finer than microseconds: bad
        has_offset = text.str.contains(OFFSET, regex=True)
        if has_offset.any():
            out[has_offset[has_offset].index] = pd.to_datetime(
                text[has_offset], utc=True, errors="coerce", format="ISO8601"
            )
        naive = text[~has_offset]
        if len(naive):
            local = pd.to_datetime(naive, errors="coerce", format="ISO8601")
            out[naive.index] = local.dt.tz_localize(TZ, nonexistent="NaT", ambiguous="NaT").dt.tz_convert("UTC")
    bad = present & out.isna()
    return out.astype(UTC_DTYPE), bad


def business_day(ts: pd.Series) -> pd.Series:
    """Asia/Shanghai calendar date of aware timestamps, as ``date`` objects (Arrow date32)."""
    local = ts.dt.tz_convert(TZ)
    return local.dt.normalize().dt.tz_localize(None).dt.date.astype("date32[pyarrow]")


def day_start_utc(day: date) -> pd.Timestamp:
    """00:00 Asia/Shanghai of ``day`` as a UTC timestamp."""
    return pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=TZ)).tz_convert("UTC")


def as_of(day: date) -> pd.Timestamp:
    """End of business day ``day``: next day 00:00 Asia/Shanghai, in UTC (SPEC 5.8)."""
    return day_start_utc(day + timedelta(days=1))


def parse_day(text: str | date) -> date:
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"not a day: {text!r}; write it as YYYY-MM-DD") from None


def days(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def scheduled_day(param_day: str | None, data_interval_start: datetime | None) -> date | None:
    """The business day a scheduled run processes: the ``day`` param when given, else the
    Asia/Shanghai date of the run's data interval start; None when the run has neither."""
    if param_day:
        return parse_day(param_day)
    if data_interval_start is None:
        return None
    return pd.Timestamp(data_interval_start).tz_convert(TZ).date()


def day_numbers(col: pd.Series) -> np.ndarray:
    """Days since the epoch of a date column (int32), vectorised through Arrow (pandas groups and
    compares Arrow dates one Python object at a time)."""
    return pa.array(col, type=pa.date32(), from_pandas=True).cast(pa.int32()).to_numpy(zero_copy_only=False)
