"""The fast path for well-formed event files: typed and checked in Arrow, row by row proven.

A delivery day is mostly exposures in JSONL, CSV and Parquet files of clean, regular rows. This
reads such a file with pyarrow's C++ readers (types from the table's ``schemas`` declaration) and
checks every value in Arrow / numpy. A row is taken here only when the general path
(``files.read_records`` + ``events.to_table``) would accept it and type it to exactly these
values. The rows it cannot prove (a failing check, a value spelled another way than below) are
left to ``events.to_table`` on their own (CSV fields are all text and Parquet columns typed by the
file, so each row types alone); a JSONL file with such a row, and any file the fast path cannot
read as a whole (another encoding, a broken line but the last, an unknown shape or spelling of
a column), returns ``None`` and takes the general path whole.

What is proven, per file and row:

- Container: UTF-8 text (BOM or not, no NUL) that is JSONL with one object per line (every line
  starts with ``{`` and ends with ``}``, no blank line; a broken last line is a malformed record,
  as the general path has it) or CSV (a plain header, no record of another field count), or a
  Parquet file. Column names map one-to-one onto canonical names; every required column is there.
- Text: present where required, not empty, no blank or control character at either end (nothing
  a strip could remove), enum values already canonical (lower case); orders' empty brand and
  category are the catalog's for the item, as ``events._fill_from_items`` fills them.
- Integers: JSON integers, CSV plain digits, Parquet int64, inside the declared bounds (and 2^53).
- Timestamps: epoch integers (or plain digits), ``YYYY-MM-DD HH:MM:SS`` (or ``T``) as local time,
  the same with ``Z`` or ``+HH:MM``, typed Parquet times; all inside ``timeutil.timestamp_bounds``.
- A platform field in a platform folder's file is empty or names that folder's platform.

Tables with a float column, derived columns (spend) or no delivery day (items) never come here.
Values are typed as ``validate.column`` types them, through the same ``timeutil.epoch_us`` and
local-time rule, so the lake is the same whichever path a file took.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .. import schemas
from ..timeutil import TZ, epoch_us, timestamp_bounds
from .events import DERIVED, FILLED, FROM_CONTEXT
from .files import MALFORMED, PARQUET_MAGIC, UTF8_BOM, RawRecords, _malformed, read_records
from .quarantine import FileContext

#: The largest integer every float64 holds exactly (``validate._EXACT_INT``).
_EXACT_INT = 2**53
_TS = pa.timestamp("us", tz="UTC")


def eligible(table: schemas.Table) -> bool:
    """Whether files of ``table`` may take the fast path: only str, int64 and ts columns (and the
    delivery day), nothing derived from other columns, one partition per delivery day."""
    if table.partition != "dt" or table.name in DERIVED or table.name == "notes":
        return False
    return all(c.type in ("str", "int64", "ts") or c.name == "dt" for c in table.columns)


class LazyRecords:
    """The records of a file read by the fast path: ``row_numbers`` of its records as
    ``files.read_records`` numbers them, ``malformed`` its broken lines. The records themselves
    (raw text for a quarantine record, rows the fast path leaves to ``events.to_table``) are read
    the general way, on demand."""

    def __init__(self, data: bytes, fmt: str, row_numbers: np.ndarray, malformed: pd.DataFrame) -> None:
        self._data = data
        self.format = fmt
        self.row_numbers = row_numbers
        self.malformed = malformed
        self._full: RawRecords | None = None

    @property
    def input_rows(self) -> int:
        return len(self.row_numbers) + len(self.malformed)

    def full(self) -> RawRecords:
        if self._full is None:
            self._full = read_records(self._data)
        return self._full

    def raw_text(self, positions: np.ndarray) -> list[str]:
        return self.full().raw_text(positions)

    def subset(self, positions: np.ndarray) -> RawRecords:
        """The records at ``positions`` as the general path reads them."""
        full = self.full()
        frame = full.frame.iloc[positions].reset_index(drop=True)
        return RawRecords(frame, full.row_numbers[positions], full.format)


@dataclass
class Rows:
    """Accepted rows of a file, typed (the table's ``arrow_schema``), and their positions among
    the file's records (indices into its row numbers), in file order. Sliced like a frame
    (``rows.iloc[a:b]``), as the general path's accepted rows are."""

    table: pa.Table
    positions: np.ndarray

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def iloc(self) -> _Slicer:
        return _Slicer(self)


class _Slicer:
    def __init__(self, rows: Rows) -> None:
        self._rows = rows

    def __getitem__(self, key: slice) -> Rows:
        index = np.arange(len(self._rows))[key]
        return Rows(self._rows.table.take(pa.array(index)), self._rows.positions[index])


@dataclass
class FastTable:
    records: LazyRecords
    #: The proven rows, typed as the table's declaration (``arrow_schema``), in file order.
    table: pa.Table
    #: Their positions among the records (None: every record, in order).
    positions: np.ndarray | None
    #: Positions of the records left to the general path (``events.to_table`` on those rows).
    rest: np.ndarray


def read_table(
    data: bytes, table: schemas.Table, ctx: FileContext, items: pd.DataFrame | None = None
) -> FastTable | None:
    """The file's rows typed as ``table`` where the fast path proves them accepted; None when it
    cannot read the file as a whole (the general path reads it)."""
    if not eligible(table):
        return None
    try:
        if data.startswith(PARQUET_MAGIC):
            got = _read_parquet(data)
        else:
            got = _read_text(data, table)
        if got is None:
            return None
        columns, row_numbers, malformed, fmt = got
        typed = _typed_table(columns, len(row_numbers), table, ctx, items)
    except (pa.ArrowException, ValueError, UnicodeDecodeError, csv.Error):
        return None
    if typed is None:
        return None
    rows, ok = typed
    records = LazyRecords(data, fmt, row_numbers, malformed)
    if ok.all():
        return FastTable(records, rows, None, np.zeros(0, dtype=np.int64))
    if fmt.startswith("jsonl"):
        # JSON values were typed by the file as a whole (``validate``), a row's result may depend
        # on the others: the general path reads the whole file.
        return None
    # CSV fields are text and Parquet columns typed by the file: each row types on its own, so
    # the rows not proven here go through the general path alone.
    positions = np.flatnonzero(ok)
    return FastTable(records, rows.filter(pa.array(ok)), positions, np.flatnonzero(~ok))


# ---------------------------------------------------------------- reading

#: The columns read (canonical name -> values), row numbers, malformed records, format.
_Read = tuple[dict[str, pa.ChunkedArray], np.ndarray, pd.DataFrame, str]


def _read_parquet(data: bytes) -> _Read | None:
    read = pq.read_table(pa.BufferReader(data))
    columns = _canonical(read.column_names)
    if columns is None:
        return None
    return {c: read.column(i) for c, i in columns.items()}, _numbers(read.num_rows, 1), _NO_ROWS, "parquet"


def _numbers(rows: int, first: int) -> np.ndarray:
    return np.arange(first, first + rows, dtype="int64")


_NO_ROWS = _malformed()


def _canonical(names: list[str]) -> dict[str, int] | None:
    """Canonical column name -> position; None when two names map onto one (the general path
    decides what such a file means)."""
    out: dict[str, int] = {}
    for i, name in enumerate(names):
        key = str(name).strip().lower()
        if key in out:
            return None
        out[key] = i
    return out


def _text_body(data: bytes) -> tuple[bytes, str] | None:
    """The UTF-8 body (BOM left out) and its encoding label; None for anything else."""
    bom = data.startswith(UTF8_BOM)
    body = data[len(UTF8_BOM) :] if bom else data
    if not body or b"\x00" in body[:65536]:
        return None
    if not body.isascii():
        body.decode("utf-8")  # raises UnicodeDecodeError: not UTF-8 (the general path reads it)
    return body, "utf8_bom" if bom else "utf8"


def _read_text(data: bytes, table: schemas.Table) -> _Read | None:
    decoded = _text_body(data)
    if decoded is None:
        return None
    body, encoding = decoded
    head = body[:1]
    if head == b"{":
        return _read_jsonl(body, encoding, table)
    if head.isalnum() or head in (b'"', b"_"):
        return _read_csv(body, encoding, table)
    return None  # blanks first, a JSON array, ...: the general path


def _read_jsonl(body: bytes, encoding: str, table: schemas.Table) -> _Read | None:
    """JSONL with one object per line: every line starts with ``{`` and ends with ``}``, but the
    last one may be broken (a truncated file): it is then a malformed record, as the general path
    has it (a single broken line, the last, cannot join the others into JSON that
    ``files._read_jsonl`` would take as a whole)."""
    detail = None
    end = len(body) - body.endswith(b"\n")
    start = body.rfind(b"\n", 0, end) + 1
    last_line = body[start:end]
    if not (last_line.startswith(b"{") and last_line.endswith(b"}")):
        if start == 0:
            return None
        last = last_line.decode("utf-8").rstrip("\r")
        if not last.strip():
            return None
        try:
            json.loads(last)
        except json.JSONDecodeError as e:
            detail = f"is not valid JSON ({e.msg} at column {e.colno}); the line may be truncated"
        except RecursionError:
            detail = "is JSON nested too deeply to read"
        else:
            return None  # a whole value on a line of another shape: the general path
        body = body[:start]
    if not body.startswith(b"{") or not (body.endswith(b"}") or body.endswith(b"}\n")):
        return None
    trailing = body.endswith(b"\n")
    lines = body.count(b"\n") - trailing + 1
    if body.count(b"}\n{") != lines - 1:
        return None  # a blank line, a line of another shape, a CR line end
    first_end = body.find(b"\n")
    first = json.loads(body[: first_end if first_end >= 0 else len(body)])
    if not isinstance(first, dict):
        return None
    fields = []
    for col in table.columns:
        if col.name == "dt":
            continue
        typ = _json_type(col, first.get(col.name))
        if typ is None:
            return None
        fields.append(pa.field(col.name, typ))
    read = pajson.read_json(
        pa.BufferReader(body),
        read_options=pajson.ReadOptions(use_threads=True, block_size=_JSON_BLOCK),
        parse_options=pajson.ParseOptions(
            explicit_schema=pa.schema(fields),
            newlines_in_values=False,
            unexpected_field_behavior="infer",
        ),
    )
    if read.num_rows != lines:
        return None  # a line held more than one value
    declared = {f.name for f in fields}
    columns: dict[str, pa.ChunkedArray] = {}
    for name in read.column_names:
        key = str(name).strip().lower()
        if name in declared:
            columns[name] = read.column(name)
        elif key in table.names:
            return None  # "Kind", " note_id ": a spelling the general path folds onto a column
    # An explicit column is there even when no line names it: absent and all-null look alike.
    # Only a nullable column may be all null (both give nulls); a required one decides nothing here.
    for col in table.columns:
        if col.name in columns and not col.nullable and columns[col.name].null_count == len(read):
            return None
    malformed = _NO_ROWS
    if detail is not None:
        malformed = _malformed([lines + 1], [last], [detail], [MALFORMED])
    return columns, _numbers(lines, 1), malformed, f"jsonl_{encoding}"


#: JSON block size: a few blocks per large file, so both cores parse.
_JSON_BLOCK = 3 << 20


def _json_type(col: schemas.Column, first: object) -> pa.DataType | None:
    """The Arrow type to read a JSON field as, from its first line's value (a file whose later
    lines disagree fails to parse and takes the general path)."""
    if col.type == "str":
        return pa.string()
    if isinstance(first, bool):
        return None
    if col.type == "ts" and isinstance(first, str):
        return pa.string()
    if first is None or isinstance(first, int):
        return pa.int64()
    return None


def _read_csv(body: bytes, encoding: str, table: schemas.Table) -> _Read | None:
    end = body.find(b"\n")
    line = body[: end if end >= 0 else len(body)]
    if line.count(b'"') % 2:
        return None  # a header record spanning lines
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\r" in line or not all(_plain_field(f) for f in line.split(b",")):
        return None
    header = [h.strip() for h in next(csv.reader([line.decode("utf-8")]))]
    if not header or len(set(header)) != len(header) or any(not h for h in header):
        return None
    canonical = _canonical(header)
    if canonical is None:
        return None
    types = {}
    for col in table.columns:
        if col.name in canonical and col.name != "dt":
            types[header[canonical[col.name]]] = pa.string()  # numbers: digits checked, then cast
    read = pacsv.read_csv(
        pa.BufferReader(body),
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=True),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=list(types),
            null_values=[""],
            strings_can_be_null=False,
        ),
    )
    columns = {c: read.column(header[canonical[c]]) for c in canonical if header[canonical[c]] in types}
    return columns, _numbers(read.num_rows, 2), _NO_ROWS, f"csv_{encoding}"


def _plain_field(field: bytes) -> bool:
    """A header field without quotes, or quoted whole without a quote (or comma) inside."""
    if b'"' not in field:
        return True
    return len(field) >= 2 and field[:1] == field[-1:] == b'"' and b'"' not in field[1:-1]


# ---------------------------------------------------------------- typing and checks

#: A typed column and where each of its rows is proven accepted (elsewhere the value is a filler).
_Typed = tuple[pa.Array, np.ndarray]


def _typed_table(
    columns: dict[str, pa.ChunkedArray],
    rows: int,
    table: schemas.Table,
    ctx: FileContext,
    items: pd.DataFrame | None,
) -> tuple[pa.Table, np.ndarray] | None:
    """Every row typed as ``table`` and where it is proven accepted; None when a column as a
    whole is not one the fast path reads (the file then takes the general path)."""
    filled = set(FILLED.get(table.name, ()))
    ok = np.ones(rows, dtype=bool)
    typed: dict[str, _Typed] = {}
    for col in table.columns:
        if col.name == "dt":
            continue
        if col.name == "platform" and ctx.platform is not None:
            if col.name in columns:
                agrees = _names_folder(columns[col.name], ctx.platform)
                if agrees is None:
                    return None
                ok &= agrees
            continue
        values = columns.get(col.name)
        if values is None:
            if col.nullable and col.name not in filled and col.name not in FROM_CONTEXT:
                continue  # absent: null in every row
            return None  # required, or filled by the general path (orders from the items)
        got = _typed(values, col, ctx.day, empty_ok=col.name in filled)
        if got is None:
            return None
        typed[col.name] = got
    if filled:
        fills = _fill_from_items(typed, filled, table, items)
        if fills is None:
            return None
        typed.update(fills)
    arrays = []
    for col in table.columns:
        if col.name == "dt":
            arrays.append(_day_array(ctx.day, rows))
        elif col.name == "platform" and ctx.platform is not None:
            arrays.append(pa.repeat(pa.scalar(ctx.platform, pa.string()), rows))
        elif col.name in typed:
            arr, good = typed[col.name]
            arrays.append(arr)
            ok &= good
        else:
            arrays.append(pa.nulls(rows, schemas.arrow_type(col.type)))
    return pa.Table.from_arrays(arrays, schema=table.arrow_schema()), ok


def _fill_from_items(
    typed: dict[str, _Typed], filled: set[str], table: schemas.Table, items: pd.DataFrame | None
) -> dict[str, _Typed] | None:
    """Orders: an empty brand_id / category_id is the catalog's for the row's item_id, as
    ``events._fill_from_items`` fills it; a row whose item the catalog lacks is left to the
    general path."""
    key, key_ok = typed["item_id"]
    out = {}
    catalog = None
    if items is not None and not items.empty:
        catalog = items.drop_duplicates("item_id", keep="last")
    for name in sorted(filled):
        arr, ok = typed[name]
        starts, ends, valid = _spans(arr)
        empty = ~valid | (ends == starts)
        if not empty.any():
            out[name] = (arr, ok)
            continue
        if catalog is None:
            out[name] = (arr, ok & ~empty)
            continue
        rows = np.flatnonzero(empty)
        where = pc.index_in(key.take(pa.array(rows)), value_set=pa.array(catalog["item_id"], pa.string()))
        found = where.is_valid().to_numpy(zero_copy_only=False)
        values = pa.array(catalog[name], pa.string()).take(where)
        checked, values_ok = _text(values, table.column(name))
        mask = np.zeros(len(arr), dtype=bool)
        mask[rows] = True
        full = np.zeros(len(arr), dtype=np.int64)
        full[rows] = np.arange(len(rows))
        merged = pc.if_else(pa.array(mask), checked.take(pa.array(full)), arr)
        good = ok.copy()
        good[rows] = found & values_ok & key_ok[rows]
        out[name] = (merged, good)
    return out


def _day_array(day: date, rows: int) -> pa.Array:
    return pa.repeat(pa.scalar(day, pa.date32()), rows)


def _names_folder(values: pa.ChunkedArray, platform: str) -> np.ndarray | None:
    """Rows whose platform field is empty or exactly the folder's platform."""
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        return None
    ok = pc.or_kleene(pc.is_in(values, value_set=pa.array([platform, ""])), pc.is_null(values))
    return _mask(ok)


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _typed(values: pa.ChunkedArray, col: schemas.Column, day: date, empty_ok: bool = False) -> _Typed | None:
    arr = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if col.type == "str":
        if pa.types.is_large_string(arr.type):
            arr = arr.cast(pa.string())
        if not pa.types.is_string(arr.type):
            return None
        return _text(arr, col, empty_ok)
    if col.type == "int64":
        return _integers(arr, col)
    return _timestamps(arr, col, day)


def _text(arr: pa.Array, col: schemas.Column, empty_ok: bool = False) -> _Typed:
    """Text as ``validate.column`` takes it, proven where no stripping or case folding could
    change it. ``empty_ok``: an empty value is proven too (orders fill it from the items)."""
    if col.enum is not None:
        # Canonical values only (lower case, no blanks); anything else the general path folds.
        ok = _mask(pc.is_in(arr, value_set=pa.array(list(col.enum))))
        if col.nullable:
            ok |= ~_valid(arr)
        return arr, ok
    starts, ends, valid = _spans(arr)
    empty = valid & (ends == starts)
    ok = _no_blank_edges(arr, starts, ends, valid & ~empty)
    if empty_ok:
        return arr, ok
    if not col.nullable:
        return arr, ok & valid & ~empty
    if empty.any():  # a nullable column: an empty value is missing
        arr = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), arr)
    return arr, ok


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _spans(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end byte offsets of each string of a string array, and where it is valid."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return offsets[:-1], offsets[1:], _valid(arr)


def _bytes(arr: pa.Array) -> np.ndarray:
    data = arr.buffers()[2]
    return np.zeros(0, dtype=np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)


@cache
def _blank_characters() -> pa.Array:
    """Every character a strip of the general path (Python's, or Arrow's Unicode whitespace)
    could remove, with controls and format characters for good measure: a value starting or
    ending with one of these is left to the general path."""
    chars = [
        chr(c)
        for c in range(0x3001)
        if chr(c).isspace() or unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp", "Cc", "Cf")
    ]
    return pa.array(chars + ["\ufeff"])


#: Bytes that may begin or end a character of ``_blank_characters``: ASCII controls and blank,
#: DEL, and every non-ASCII byte (looked at character by character).
_SUSPECT = np.zeros(256, dtype=bool)
_SUSPECT[:0x21] = True
_SUSPECT[0x7F:] = True


def _no_blank_edges(arr: pa.Array, starts: np.ndarray, ends: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Rows whose value (where present) neither starts nor ends with a blank or control character."""
    ok = np.ones(len(arr), dtype=bool)
    if not present.any():
        return ok
    data = _bytes(arr)
    pos = np.flatnonzero(present)
    suspect = _SUSPECT[data[starts[pos]]] | _SUSPECT[data[ends[pos] - 1]]
    if not suspect.any():
        return ok
    rows = pos[suspect]
    sub = arr.take(pa.array(rows))
    blanks = _blank_characters()
    first = _mask(pc.is_in(pc.utf8_slice_codeunits(sub, 0, 1), value_set=blanks))
    last = _mask(pc.is_in(pc.utf8_slice_codeunits(sub, -1, 2**31 - 1), value_set=blanks))
    ok[rows] = ~(first | last)
    return ok


def _integers(arr: pa.Array, col: schemas.Column) -> _Typed | None:
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr, ok = _digits(arr.cast(pa.string()), col.nullable)
    elif pa.types.is_int64(arr.type):
        ok = np.ones(len(arr), dtype=bool)
    else:
        return None
    valid = _valid(arr)
    if not col.nullable:
        ok &= valid
    values = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return arr, ok & (~valid | _inside(values, col))


def _inside(values: np.ndarray, col: schemas.Column) -> np.ndarray:
    """Where values are inside the declared bounds (and 2^53), compared exactly as integers."""
    ok = np.abs(values) <= _EXACT_INT
    if col.min is not None:
        ok &= values > col.min if col.min_exclusive else values >= col.min
    if col.max is not None:
        ok &= values <= col.max
    return ok


def _digits(arr: pa.Array, nullable: bool) -> tuple[pa.Array, np.ndarray]:
    """Text of plain decimal digits (1 to 15 of them) as int64, and where it was so; an empty
    value is null where the column is nullable. Any other spelling (signs, blanks, exponents,
    ``0x``) is not proven: the general path reads it as it reads it."""
    starts, ends, valid = _spans(arr)
    size = ends - starts
    data = _bytes(arr)[starts[0] : ends[-1]] if len(arr) else _bytes(arr)
    digits = valid & (size >= 1) & (size <= 15)
    if digits.any() and (data - np.uint8(ord("0")) > 9).any():  # some value is not all digits
        other = np.concatenate([[0], np.cumsum(data - np.uint8(ord("0")) > 9)])
        digits &= other[ends - starts[0]] == other[starts - starts[0]]
    ok = digits | (nullable & valid & (size == 0)) | (nullable & ~valid)
    number = pc.if_else(pa.array(digits), arr, pa.scalar(None, pa.string()))
    return pc.cast(number, pa.int64()), ok


def _timestamps(arr: pa.Array, col: schemas.Column, day: date) -> _Typed | None:
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    valid = _valid(arr)
    us = np.zeros(len(arr), dtype=np.int64)
    if pa.types.is_string(arr.type):
        numbers, digits = _digits(arr, False)  # epoch digits, read as the number they spell
        ok = digits.copy()
        rows = np.flatnonzero(digits)
        if len(rows):
            epoch, fits = epoch_us(numbers.filter(pa.array(digits)).to_numpy().astype("float64"))
            us[rows], ok[rows] = epoch, fits
        text = np.flatnonzero(valid & ~digits)
        if len(text):
            us[text], ok[text] = _text_times(arr.take(pa.array(text)))
    elif pa.types.is_int64(arr.type):
        epoch, ok = epoch_us(arr.fill_null(0).to_numpy().astype("float64"))
        us[:] = epoch
    elif pa.types.is_timestamp(arr.type) and arr.type.unit in ("s", "ms", "us"):
        # A typed Parquet time: its instant, naive ones being Asia/Shanghai (parse_timestamps).
        us[:] = np.asarray(arr.cast(pa.timestamp("us", tz=arr.type.tz)).cast(pa.int64()).fill_null(0).to_numpy())
        ok = np.ones(len(arr), dtype=bool)
        if arr.type.tz is None:
            us[:], ok = _localized(us)
    else:
        return None
    ok &= valid
    low, high = _bounds_us(day)
    ok &= (us >= low) & (us < high)
    return pa.array(np.where(ok, us, 0), type=_TS), ok


@cache
def _bounds_us(day: date) -> tuple[int, int]:
    """``timeutil.timestamp_bounds`` of a delivery day in microseconds."""
    low, high = timestamp_bounds(day)
    return low.value // 1000, high.value // 1000


def _localized(local_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local Asia/Shanghai wall times (microseconds) as UTC, as parse_timestamps localizes."""
    stamps = pd.DatetimeIndex(local_us.astype("datetime64[us]")).tz_localize(
        TZ, nonexistent="NaT", ambiguous="NaT"
    )
    ok = ~np.asarray(stamps.isna())
    return np.where(ok, stamps.tz_convert("UTC").as_unit("us").asi8, 0), ok


_DIGIT_AT = np.array([i for i in range(19) if i not in (4, 7, 10, 13, 16)])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _text_times(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``YYYY-MM-DD HH:MM:SS`` (or ``T``): local time; with ``Z`` or ``+HH:MM`` (hours up to 14):
    that offset. Microseconds UTC and where a value is such a valid date and time (any other
    spelling is left to the general path)."""
    n = len(arr)
    starts, ends, _ = _spans(arr)
    size = ends - starts
    naive, zulu, offset = size == 19, size == 20, size == 25
    ok = naive | zulu | offset
    data = _bytes(arr)
    idx = np.where(ok, starts, 0)
    data = np.concatenate([data, np.zeros(25, dtype=np.uint8)])  # room for the offset of short values
    chars = data[idx[:, None] + np.arange(19)]
    ok &= (chars[:, 4] == ord("-")) & (chars[:, 7] == ord("-"))
    ok &= (chars[:, 13] == ord(":")) & (chars[:, 16] == ord(":"))
    ok &= (chars[:, 10] == ord(" ")) | (chars[:, 10] == ord("T"))
    digits = chars[:, _DIGIT_AT].astype(np.int64) - ord("0")
    ok &= ((digits >= 0) & (digits <= 9)).all(axis=1)
    digits = np.clip(digits, 0, 9)

    def num(a: int, b: int) -> np.ndarray:
        return digits[:, a:b] @ (10 ** np.arange(b - a - 1, -1, -1))

    year, month, mday = num(0, 4), num(4, 6), num(6, 8)
    hour, minute, second = num(8, 10), num(10, 12), num(12, 14)
    ok &= (month >= 1) & (month <= 12)
    month = np.where(ok, month, 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    dim = _DAYS_IN_MONTH[month] + (leap & (month == 2))
    ok &= (mday >= 1) & (mday <= dim) & (hour <= 23) & (minute <= 59) & (second <= 59)
    local = (_days_from_civil(year, month, mday) * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000
    out = np.zeros(n, dtype=np.int64)
    rows = np.flatnonzero(ok & naive)
    if len(rows):
        out[rows], ok[rows] = _localized(local[rows])
    tz = data[idx[:, None] + np.arange(19, 25)]
    ok &= ~zulu | (tz[:, 0] == ord("Z"))
    out[ok & zulu] = local[ok & zulu]
    sign = tz[:, 0]
    tz_digits = tz[:, [1, 2, 4, 5]].astype(np.int64) - ord("0")
    hh = tz_digits[:, 0] * 10 + tz_digits[:, 1]
    mm = tz_digits[:, 2] * 10 + tz_digits[:, 3]
    ok &= ~offset | (
        ((sign == ord("+")) | (sign == ord("-")))
        & (tz[:, 3] == ord(":"))
        & ((tz_digits >= 0) & (tz_digits <= 9)).all(axis=1)
        & (hh <= 14)
        & (mm <= 59)
    )
    shift = (hh * 60 + mm) * 60_000_000 * np.where(sign == ord("-"), -1, 1)
    out[ok & offset] = (local - shift)[ok & offset]
    return out, ok


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
