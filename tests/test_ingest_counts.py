"""Engagement count parsing: exporter spellings, missing markers, what is quarantined."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.ingest.counts import parse_counts


def test_exporter_spellings():
    values = ["809", "10+", "1.2万", "3千", "1.5w", "2.5K", "10万+", "1,234", " 7 ", 42, 3.0]
    counts, reason = parse_counts(pd.Series(values, dtype=object))
    assert counts.tolist() == [809, 10, 12000, 3000, 15000, 2500, 100000, 1234, 7, 42, 3]
    assert reason.isna().all()


def test_missing_markers_are_zero():
    counts, reason = parse_counts(
        pd.Series(["None", "", None, "-1", -1, "null", float("nan")], dtype=object)
    )
    assert counts.tolist() == [0] * 7
    assert reason.isna().all()


def test_unparseable_and_negative():
    counts, reason = parse_counts(
        pd.Series(["一些", "12.5", "abc", "-5", -3, "1.2.3"], dtype=object)
    )
    assert reason.tolist() == [
        "bad_count",
        "bad_count",
        "bad_count",
        "negative_count",
        "negative_count",
        "bad_count",
    ]


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_plain_integers_round_trip(n):
    counts, reason = parse_counts(pd.Series([str(n), n], dtype=object))
    assert counts.tolist() == [n, n] and reason.isna().all()


def test_counts_of_10_to_the_12_or_more_are_out_of_range():
    # Counts are non-negative and below 10^12 (issue 17); a count that big is a broken export,
    # and before this it overflowed int64 silently.
    values = ["1000000000000", 10**12, "9" * 30, "99999亿", "99999999999999999999万", 10**12 - 1]
    counts, reason = parse_counts(pd.Series(values, dtype=object))
    assert reason.iloc[:5].tolist() == ["out_of_range"] * 5 and pd.isna(reason.iloc[5])
    assert counts.tolist() == [0] * 5 + [10**12 - 1]


@given(
    st.integers(min_value=0, max_value=99999),
    st.sampled_from([("万", 10_000), ("w", 10_000), ("千", 1_000), ("k", 1_000)]),
)
def test_units_with_one_decimal(tenths, unit):
    text, scale = unit
    value = f"{tenths // 10}.{tenths % 10}{text}"
    counts, reason = parse_counts(pd.Series([value]))
    assert reason.isna().all()
    assert counts.iloc[0] == tenths * scale // 10
