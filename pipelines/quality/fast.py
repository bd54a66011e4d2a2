"""Vectorised proof that a large table passes its suite, in Arrow and numpy, before GX is asked.

A restated day at 100k users publishes about ten million boost rows; GX judges a frame in pandas
(strings factorised for every uniqueness check, a boolean Series per expectation), seconds for
that table alone. Most days every expectation passes, and a passing expectation says little:
``0 of n rows unexpected``, or the columns it found. So a large table's rows are read once, as
Arrow (strings dictionary-encoded), and each expectation of its suite is checked here, on every row.

This module only ever **proves a pass**. ``suite_passes`` returns the results GX would give
(``element_count`` and ``unexpected_count`` 0, or the observed columns) when every expectation of
the suite certainly holds; otherwise (a row that may fail, an expectation type or argument not
handled here, a column of another type) it returns None and GX validates the suite on the pandas
frame as before, so failures, their counts, observed values and sample rows always come from GX.
The rules follow GX's pandas engine: map expectations skip missing values (null, and NaN in float
columns); a compound key is unique over the rows where not every key value is missing; a column
pair skips rows where either side is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Frames with fewer rows are left to GX alone: the saving is small, and a one-row frame's
#: observed value is the value itself (``validate._observed``).
MIN_ROWS = 2
#: A key whose codes span at most this many values is checked with a counting array.
_COUNTING_LIMIT = 1 << 24

_MAP_ARGS = {"column"}
_ALLOWED: dict[str, set[str]] = {
    "expect_table_columns_to_match_ordered_list": {"column_list"},
    "expect_column_values_to_not_be_null": _MAP_ARGS,
    "expect_column_values_to_be_unique": _MAP_ARGS,
    "expect_compound_columns_to_be_unique": {"column_list"},
    "expect_column_values_to_be_in_set": {"column", "value_set"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal", "ignore_row_if"},
}


@dataclass
class Part:
    """The rows of one marts day a table publishes, as ``fast`` reads them: ``data``, the columns
    whose values an expectation needs (strings dictionary-encoded), already restricted to the
    rows published; ``stats``, per column of the file, (min, max, null count) over **all** the
    file's rows (Parquet statistics; a superset of the rows published, so bounds that hold for
    them hold for every row checked); ``types``, the file's column types."""

    day: date
    rows: int
    #: None: read when the part's turn comes (``read``), and let go after it.
    data: pa.Table | None
    types: dict[str, pa.DataType]
    stats: dict[str, tuple] = field(default_factory=dict)
    read: Callable[[], pa.Table] | None = None

    @property
    def num_rows(self) -> int:
        return self.rows

    def loaded(self) -> Part:
        """This part with its data in memory."""
        if self.data is not None:
            return self
        return Part(self.day, self.rows, self.read(), self.types, self.stats)


def file_stats(metadata) -> dict[str, tuple]:
    """(min, max, null count) of each column over every row group of a Parquet file, for the
    columns every row group has statistics of (none for a file without rows)."""
    out: dict[str, tuple] = {}
    if metadata.num_row_groups == 0:
        return out
    for j in range(metadata.num_columns):
        lows, highs, nulls = [], [], 0
        for i in range(metadata.num_row_groups):
            col = metadata.row_group(i).column(j)
            st = col.statistics
            if st is None or not st.has_min_max or not st.has_null_count:
                break
            lows.append(st.min)
            highs.append(st.max)
            nulls += st.null_count
        else:
            name = metadata.row_group(0).column(j).path_in_schema
            try:
                out[name] = (min(lows), max(highs), nulls)
            except TypeError:
                continue
    return out


def data_columns(definition: dict, part_types: dict[str, pa.DataType], stats: dict[str, tuple], params: dict) -> set[str]:
    """The columns whose values ``suite_passes`` needs for ``definition`` on a file with these
    column types and statistics (the others are judged on the statistics alone)."""
    need: set[str] = set()
    for e in definition["expectations"]:
        kw = {k: _resolve(v, params) for k, v in e["kwargs"].items()}
        kind = e["type"]
        if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            need.update([kw["column"]] if "column" in kw else kw["column_list"])
        elif kind == "expect_column_values_to_be_in_set":
            need.add(kw["column"])
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            need.update([kw["column_A"], kw["column_B"]])
        elif kind == "expect_column_values_to_not_be_null":
            c = kw["column"]
            if c not in stats or pa.types.is_floating(part_types.get(c, pa.float64())):
                need.add(c)
        elif kind == "expect_column_values_to_be_between":
            if kw.get("column") not in stats:
                need.add(kw.get("column"))
    return {c for c in need if c in part_types}


class _Unsure(Exception):
    """The expectation may fail (or is not handled here): GX decides."""


def _resolve(value, params: dict):
    if isinstance(value, dict) and "$PARAMETER" in value:
        return params[value["$PARAMETER"]]
    return value


def _column(parts: list[Part], name: str) -> list[pa.ChunkedArray]:
    try:
        return [p.data.column(name) for p in parts]
    except KeyError:
        raise _Unsure(f"column {name} not read") from None


def _check_not_null(parts: list[Part], column: str) -> None:
    for part in parts:
        if column in part.data.column_names:
            if _has_missing(part.data.column(column)):
                raise _Unsure("a missing value")
        elif column in part.stats and column in part.types and not pa.types.is_floating(part.types[column]):
            if part.stats[column][2]:
                raise _Unsure("a null")
        else:
            raise _Unsure("no values, no statistics")


def _value_type(col: pa.ChunkedArray) -> pa.DataType:
    return col.type.value_type if pa.types.is_dictionary(col.type) else col.type


def _missing(col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Where pandas sees a missing value: null, and NaN in a float column."""
    if pa.types.is_floating(col.type):
        return pc.or_kleene(pc.is_null(col), pc.is_nan(col)).fill_null(True)
    return pc.is_null(col)


def _has_missing(col: pa.ChunkedArray) -> bool:
    if col.null_count:
        return True
    return pa.types.is_floating(col.type) and bool(pc.any(pc.is_nan(col)).as_py())


def _numeric(col: pa.ChunkedArray) -> None:
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        raise _Unsure(f"{t} is not a number")


def _number(v) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Unsure(f"bound {v!r} is not a number")
    return v


def _check_between(parts: list[Part], kw: dict) -> None:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    column = kw["column"]
    if lo is None and hi is None:
        raise _Unsure("no bound")
    for part in parts:
        t = part.types.get(column)
        if t is None or not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            raise _Unsure("not a number")
        if not part.num_rows:
            continue
        if column in part.data.column_names:
            col = part.data.column(column)
            if col.null_count == len(col):
                continue
            values = col.filter(pc.invert(_missing(col))) if _has_missing(col) else col
            if not len(values):
                continue
            bounds = pc.min_max(values)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
        elif column in part.stats:  # bounds of every row of the file (NaN is not in them: GX skips it too)
            low, high, _ = part.stats[column]
        else:
            raise _Unsure("no values, no statistics")
        if lo is not None:
            lo = _number(lo)
            if low < lo or (kw.get("strict_min") and low <= lo):
                raise _Unsure("below the minimum")
        if hi is not None:
            hi = _number(hi)
            if high > hi or (kw.get("strict_max") and high >= hi):
                raise _Unsure("above the maximum")


def _check_in_set(cols: list[pa.ChunkedArray], kw: dict) -> None:
    allowed = kw["value_set"]
    if not isinstance(allowed, list) or not all(isinstance(v, str) for v in allowed):
        raise _Unsure("a value set of strings only")
    value_set = pa.array(allowed, pa.string())
    for col in cols:
        if not pa.types.is_string(_value_type(col)) and not pa.types.is_large_string(_value_type(col)):
            raise _Unsure("strings only")
        if pa.types.is_dictionary(col.type):
            for chunk in col.chunks:
                used = pc.unique(chunk.indices.drop_null())
                if len(used) and not pc.all(pc.is_in(pc.take(chunk.dictionary, used), value_set=value_set)).as_py():
                    raise _Unsure("a value outside the set")
        else:
            present = col.drop_null()
            if len(present) and not pc.all(pc.is_in(present, value_set=value_set)).as_py():
                raise _Unsure("a value outside the set")


def _check_pair(cols_a: list[pa.ChunkedArray], cols_b: list[pa.ChunkedArray], kw: dict) -> None:
    if kw.get("ignore_row_if") != "either_value_is_missing":
        raise _Unsure("rows with a missing side are judged")
    for a, b in zip(cols_a, cols_b, strict=True):
        _numeric(a)
        _numeric(b)
        bad = pc.greater(b, a) if kw.get("or_equal") else pc.greater_equal(b, a)
        both = pc.invert(pc.or_(_missing(a), _missing(b)))
        if pc.any(pc.and_(bad, both)).as_py():
            raise _Unsure("a pair out of order")


def one_dictionary(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded column whose chunks all share one dictionary of distinct values.

    Parquet gives each batch its own dictionary, equal within a row group: the distinct ones are
    merged once, and each chunk's indices mapped into the merged one (Arrow's own unification
    would hash every chunk's dictionary).
    """
    if col.num_chunks == 0:
        return col
    distinct: list[pa.Array] = []
    which: list[int] = []
    for chunk in col.chunks:
        if not distinct or not chunk.dictionary.equals(distinct[-1]):
            distinct.append(chunk.dictionary)
        which.append(len(distinct) - 1)
    if len(distinct) == 1 and pc.count_distinct(distinct[0], mode="all").as_py() == len(distinct[0]):
        return col
    merged = pc.dictionary_encode(pa.concat_arrays(distinct))
    values, ends = merged.dictionary, np.cumsum([0] + [len(d) for d in distinct])
    remap = [merged.indices.slice(ends[k], ends[k + 1] - ends[k]) for k in range(len(distinct))]
    chunks = [
        pa.DictionaryArray.from_arrays(pc.take(remap[k], chunk.indices), values)
        for k, chunk in zip(which, col.chunks, strict=True)
    ]
    return pa.chunked_array(chunks, pa.dictionary(merged.indices.type, values.type))


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Integer codes of a column (equal values, equal codes; every null one more code, as pandas'
    ``duplicated`` takes missing values as equal) and how many codes there can be."""
    if not col.null_count:
        return _valid_codes(col)
    if pa.types.is_integer(col.type):
        # With nulls pandas holds integers as float64: beyond 2**53 two of them could be equal.
        bounds = pc.min_max(col)
        if max(abs(bounds["min"].as_py() or 0), abs(bounds["max"].as_py() or 0)) >= 1 << 53:
            raise _Unsure("large integers beside nulls")
    valid = pc.is_valid(col)
    codes_valid, n = _valid_codes(col.filter(valid))
    codes = np.full(len(col), n, dtype=np.int64)
    codes[valid.to_numpy(zero_copy_only=False)] = codes_valid
    return codes, n + 1


def _valid_codes(col: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """``_codes`` of a column without nulls."""
    if pa.types.is_dictionary(col.type):
        col = one_dictionary(col)  # one dictionary of distinct values: equal values, equal indices
        if col.num_chunks == 0:
            return np.zeros(0, dtype=np.int64), 1
        indices = pa.chunked_array([c.indices for c in col.chunks], col.type.index_type)
        return indices.to_numpy().astype(np.int64, copy=False), max(len(col.chunk(0).dictionary), 1)
    t = col.type
    if pa.types.is_date32(t) or pa.types.is_integer(t) or pa.types.is_timestamp(t):
        # Equal dates, integers or instants (one unit and zone per column): equal numbers.
        as_int = pa.int32() if pa.types.is_date32(t) else pa.int64()
        values = (col if pa.types.is_integer(t) else col.cast(as_int)).to_numpy().astype(np.int64, copy=False)
        if not len(values):
            return values.astype(np.int64), 1
        low, high = int(values.min()), int(values.max())
        if high - low < _COUNTING_LIMIT:
            return values.astype(np.int64) - low, high - low + 1
    elif not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)):
        raise _Unsure(f"keys of type {t}")
    codes, uniques = pd.factorize(col.to_numpy(zero_copy_only=False))
    return codes.astype(np.int64, copy=False), max(len(uniques), 1)


def _unique_codes(columns: list[pa.ChunkedArray]) -> bool:
    """Whether the rows of these columns (no missing values) are distinct."""
    code, span = None, 1
    for col in columns:
        c, n = _codes(col)
        if code is None:
            code, span = c, n
        elif span * n < (1 << 62):
            code, span = code * n + c, span * n
        else:  # renumber before the product overflows
            code, uniques = pd.factorize(code)
            code, span = code.astype(np.int64) * n + c, max(len(uniques), 1) * n
    if code is None or len(code) < 2:
        return True
    if span <= _COUNTING_LIMIT:
        return int(np.bincount(code, minlength=1).max()) <= 1
    return not pd.Series(code).duplicated().any()


def _check_unique(parts: list[Part], names: list[str], partition: str | None, compound: bool) -> None:
    """Whether the key ``names`` is unique. A single column (``compound`` False) skips missing
    values in GX: none may be missing here. A compound key skips rows where every key value is
    missing and takes missing values as equal otherwise: one column must have none."""
    if partition in names and len(names) > 1 and all(_one_day(p, partition) for p in parts):
        # Rows of two parts differ in the partition column, and within a part it is one value:
        # each part on its own, keyed by the other columns.
        names = [n for n in names if n != partition]
        per_part = True
    else:
        per_part = False
    cols = [_column(parts, n) for n in names]
    if any(pa.types.is_floating(c.type) for per_col in cols for c in per_col):
        raise _Unsure("a float key")
    complete = [not any(c.null_count for c in per_col) for per_col in cols]
    if not all(complete) and (not compound or not any(complete)):
        raise _Unsure("a key with missing values")
    if per_part:
        groups = [[cols[i][k] for i in range(len(names))] for k in range(len(parts))]
    else:
        groups = [[pa.chunked_array([ch for c in per_col for ch in c.chunks], per_col[0].type) for per_col in cols]]
    for group in groups:
        if not _unique_codes(group):
            raise _Unsure("a repeated key")


def _one_day(part: Part, partition: str) -> bool:
    """Whether every row of the part holds its day in the partition column (no null)."""
    if not pa.types.is_date32(part.types.get(partition, pa.null())):
        return False
    if partition in part.data.column_names:
        col = part.data.column(partition)
        return not col.null_count and (not len(col) or pc.all(pc.equal(col, pa.scalar(part.day, pa.date32()))).as_py())
    low, high, nulls = part.stats.get(partition, (None, None, 1))
    return not nulls and low == high == part.day


def suite_passes(
    definition: dict, parts: list[Part], columns: list[str], partition: str | None, params: dict
) -> dict[str, dict] | None:
    """GX's result of each expectation of ``definition`` by id, when every one certainly passes on
    the rows of ``parts`` (the frame GX would see, in pieces, one per day its ``partition`` column
    holds; ``columns`` the frame's columns, which every part's file has); None when any may fail.

    A suite whose every expectation holds on the whole when it holds on each day
    (``per_day``) is proven one part at a time, each part read when its turn comes and let go
    after: a table of tens of millions of rows is never held whole. Otherwise every part is read."""
    if any(list(p.types) != list(columns) for p in parts) or sum(p.num_rows for p in parts) < MIN_ROWS:
        return None
    rows = sum(p.num_rows for p in parts)
    if len(parts) > 1 and per_day(definition, partition, params):
        out: dict[str, dict] | None = {}
        for part in parts:
            try:
                part = part.loaded()
            except (pa.ArrowException, OSError):
                return None  # GX reads the frame, and says what is wrong with the file
            if not _one_day(part, partition):
                break  # days in the partition column that are not the part's: proven together below
            out = _passes(definition, [part], columns, partition, params)
            if out is None:
                return None
        else:
            return {k: {**v, "element_count": rows} if "element_count" in v else v for k, v in out.items()}
    try:
        loaded = [p.loaded() for p in parts]
    except (pa.ArrowException, OSError):
        return None
    return _passes(definition, loaded, columns, partition, params)


def per_day(definition: dict, partition: str | None, params: dict) -> bool:
    """Whether every expectation of ``definition`` holds on rows of several days when it holds on
    each day's rows: row by row checks, the column list, and keys that include the partition column
    (rows of two days differ in it)."""
    for e in definition["expectations"]:
        kind, kw = e["type"], {k: _resolve(v, params) for k, v in e["kwargs"].items()}
        if kind == "expect_column_values_to_be_unique" or (
            kind == "expect_compound_columns_to_be_unique" and (partition not in kw["column_list"] or len(kw["column_list"]) < 2)
        ):
            return False
    return partition is not None


def _passes(
    definition: dict, parts: list[Part], columns: list[str], partition: str | None, params: dict
) -> dict[str, dict] | None:
    """``suite_passes`` on parts in memory, all at once."""
    rows = sum(p.num_rows for p in parts)
    out: dict[str, dict] = {}
    try:
        for e in definition["expectations"]:
            kind, kw = e["type"], {k: _resolve(v, params) for k, v in e["kwargs"].items()}
            if kind not in _ALLOWED or set(kw) - _ALLOWED[kind]:
                raise _Unsure(f"{kind} with {sorted(kw)}")
            if kind == "expect_table_columns_to_match_ordered_list":
                if list(kw["column_list"]) != list(columns):
                    raise _Unsure("other columns")
                out[e["meta"]["id"]] = {"observed_value": list(columns)}
                continue
            if kind == "expect_column_values_to_not_be_null":
                _check_not_null(parts, kw["column"])
            elif kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
                names = [kw["column"]] if "column" in kw else list(kw["column_list"])
                _check_unique(parts, names, partition, compound="column" not in kw)
            elif kind == "expect_column_values_to_be_in_set":
                _check_in_set(_column(parts, kw["column"]), kw)
            elif kind == "expect_column_values_to_be_between":
                _check_between(parts, kw)
            elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
                _check_pair(_column(parts, kw["column_A"]), _column(parts, kw["column_B"]), kw)
            out[e["meta"]["id"]] = {"element_count": rows, "unexpected_count": 0}
    except _Unsure:
        return None
    return out
