"""Reading landing files into raw records with their row numbers, whatever the format.

The format is detected from the content (magic bytes, first character), not from the file name:
Parquet (``PAR1``), SQLite (``SQLite format 3``), a JSON array, one JSON object (Spider_XHS's
``info.json``), JSONL, or else CSV. Readers take the file's bytes (``landing.read_bytes`` opens
them); nothing here opens a path, and a SQLite file is read from memory, never through a URI.

Text: a file that decodes as strict UTF-8 (after a BOM, if it has one) is UTF-8. Otherwise it is
read as GB18030 (what Excel in China writes), but GB18030 decodes almost any bytes, so a mixed
file would be read garbled: every record with a line that is also valid non-ASCII UTF-8 is
ambiguous and set aside (``ambiguous_encoding``, its raw bytes kept), never accepted.

Row numbers are 1-based locators a person can open the file at: the line for JSONL, the element
for a JSON array, the record for CSV counted with the header as 1 (equal to the line number when no
field spans lines), the row for Parquet and SQLite.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

PARQUET_MAGIC = b"PAR1"
SQLITE_MAGIC = b"SQLite format 3\x00"
UTF8_BOM = b"\xef\xbb\xbf"
MALFORMED = "malformed_record"
AMBIGUOUS = "ambiguous_encoding"


class UnreadableFile(Exception):
    """The file as a whole cannot be read; ``reason`` is a quarantine reason code.

    ``rows``: the records the file was seen to hold before it was refused (None: not known).
    """

    def __init__(self, reason: str, message: str, rows: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.rows = rows


def _malformed(row_number=(), raw=(), detail=(), reason=()) -> pd.DataFrame:
    if not len(row_number):
        return _NONE_MALFORMED.copy()  # most files: built once, copied (a frame costs far more)
    return _malformed_frame(row_number, raw, detail, reason)


def _malformed_frame(row_number, raw, detail, reason) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row_number": np.asarray(row_number, dtype="int64"),
            "raw": pd.Series(list(raw), dtype=object),
            "detail": pd.Series(list(detail), dtype=object),
            "reason": pd.Series(list(reason), dtype=object),
        }
    )


_NONE_MALFORMED = _malformed_frame((), (), (), ())


@dataclass
class RawRecords:
    """The records of one file (or one SQLite table): columns as the file names them.

    ``frame`` holds the good records, ``row_numbers`` their locators (aligned with ``frame``),
    ``malformed`` the records that could not be taken at all (row_number, raw, detail, reason:
    ``malformed_record`` or ``ambiguous_encoding``).
    """

    frame: pd.DataFrame
    row_numbers: np.ndarray
    format: str
    malformed: pd.DataFrame = field(default_factory=_malformed)
    raw_lines: list[str] | None = None  # JSONL: the original text of each record, for quarantine

    @property
    def input_rows(self) -> int:
        return len(self.frame) + len(self.malformed)

    def raw_text(self, positions: np.ndarray) -> list[str]:
        """The raw content of the records at ``positions`` (indices into ``frame``), as text."""
        positions = np.asarray(positions, dtype="int64")
        if len(positions) == 0:
            return []
        if self.raw_lines is not None:
            return [self.raw_lines[i] for i in positions]
        sub = self.frame.iloc[positions]
        text = sub.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
        return text.rstrip("\n").split("\n")


@dataclass
class Decoded:
    """A text file decoded; for GB18030, its raw lines and those that are also non-ASCII UTF-8."""

    text: str
    encoding: str  # utf8, utf8_bom or gb18030
    body: bytes = b""  # the bytes decoded (a BOM left out)
    lines: list[bytes] | None = None  # GB18030: the raw lines, split on b"\n"
    ambiguous: frozenset[int] = frozenset()  # 1-based line numbers (of ``lines``)

    def raw(self, first: int, last: int) -> str:
        """The raw bytes of lines first..last (1-based) as text: UTF-8 where valid, else \\xNN."""
        assert self.lines is not None
        data = b"\n".join(self.lines[first - 1 : last])
        return data.decode("utf-8", errors="backslashreplace").rstrip("\r")

    def any_ambiguous(self, first: int, last: int) -> bool:
        return any(n in self.ambiguous for n in range(first, last + 1))


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_text(data: bytes) -> Decoded:
    """Decode file bytes: strict UTF-8 (BOM or not), else GB18030 with its ambiguous lines.

    Raises ``UnreadableFile`` on binary data or bytes that are neither.
    """
    bom = data.startswith(UTF8_BOM)
    body = data[len(UTF8_BOM) :] if bom else data
    if b"\x00" in body[:65536]:
        raise UnreadableFile(
            "unreadable_file", "binary content (NUL bytes): not CSV, JSON, JSONL, Parquet or SQLite"
        )
    try:
        return Decoded(body.decode("utf-8"), "utf8_bom" if bom else "utf8", body)
    except UnicodeDecodeError:
        pass
    try:
        text = body.decode("gb18030")
    except UnicodeDecodeError as e:
        raise UnreadableFile(
            "unreadable_file",
            f"neither UTF-8 nor GB18030 text ({e}); re-export it as UTF-8 CSV or JSON",
        ) from e
    # b"\n" is never part of a multi-byte GB18030 or UTF-8 character: lines split the same way in
    # bytes and in text. GB18030 files are Excel exports, small: a loop over lines is fine.
    lines = body.split(b"\n")
    ambiguous = frozenset(i + 1 for i, ln in enumerate(lines) if not ln.isascii() and _is_utf8(ln))
    return Decoded(text, "gb18030", body, lines, ambiguous)


def sniff(data: bytes) -> str:
    """The container of a file from its first bytes: parquet, sqlite, empty or text."""
    if data.startswith(PARQUET_MAGIC):
        return "parquet"
    if data.startswith(SQLITE_MAGIC):
        return "sqlite"
    if not data.strip() or data.strip() == UTF8_BOM:
        return "empty"
    return "text"


def rows_held(data: bytes) -> int:
    """How many rows a file that could not be read as records holds, as far as can be told
    without parsing it: Parquet's own row count when its footer is readable, else the non-blank
    lines of its bytes; at least 1 (the file)."""
    if data.startswith(PARQUET_MAGIC):
        try:
            return max(1, pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows)
        except (pa.ArrowException, OSError):
            pass
    if data.startswith(SQLITE_MAGIC):
        return 1
    return max(1, count_lines(data))


def count_lines(data: bytes) -> int:
    """Non-blank lines (split on ``\\n``; a line of blanks only is blank)."""
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    return sum(1 for ln in body.split(b"\n") if ln.strip())


def read_records(data: bytes | Path, sqlite_table: str | None = None) -> RawRecords:
    """Read one landing file's bytes into raw records. Raises ``UnreadableFile`` when it cannot be read.

    For a SQLite file, ``sqlite_table`` names the table to read (see ``sqlite_tables``). A path
    is read as it is (tools outside ingestion); ingestion passes the bytes it opened itself.
    """
    if isinstance(data, Path):
        data = data.read_bytes()
    kind = sniff(data)
    if kind == "empty":
        return RawRecords(pd.DataFrame(), np.zeros(0, dtype="int64"), "empty")
    if kind == "parquet":
        return _read_parquet(data)
    if kind == "sqlite":
        if sqlite_table is None:
            tables = list(sqlite_tables(data))
            if len(tables) != 1:
                raise UnreadableFile(
                    "wrong_shape", f"a SQLite file with tables {tables}: expected exactly one table"
                )
            sqlite_table = tables[0]
        return _read_sqlite(data, sqlite_table)
    decoded = decode_text(data)
    first = decoded.text.lstrip()[:1]
    if first == "[":
        return _read_json_array(decoded)
    if first == "{":
        return _read_json_object_or_lines(decoded)
    return _read_csv(decoded)


# ---------------------------------------------------------------- SQLite, Parquet


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open_sqlite(data: bytes) -> sqlite3.Connection:
    """The database held in ``data``, in memory and read-only: no file is opened, no URI built."""
    image = bytearray(data)
    if len(image) > 19 and image[18] == 2 and image[19] == 2:
        # A WAL-mode file: an in-memory copy cannot use WAL, and without its -wal file the
        # database file alone is what was checkpointed. Read it as a rollback-journal file.
        image[18] = image[19] = 1
    con = sqlite3.connect(":memory:")
    try:
        con.deserialize(bytes(image))
        con.execute("PRAGMA query_only = ON")
    except sqlite3.DatabaseError:
        con.close()
        raise
    return con


def sqlite_tables(data: bytes) -> dict[str, list[str]]:
    """Tables of a SQLite file and their columns. Raises ``UnreadableFile`` when it is no database."""
    try:
        con = _open_sqlite(data)
        try:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            return {n: [r[1] for r in con.execute(f"PRAGMA table_info({_quote(n)})")] for n in names}
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise UnreadableFile("unreadable_file", f"a damaged SQLite database ({e})") from e


def _read_sqlite(data: bytes, table: str) -> RawRecords:
    try:
        con = _open_sqlite(data)
        try:
            frame = pd.read_sql_query(f"SELECT * FROM {_quote(table)} ORDER BY rowid", con)
        finally:
            con.close()
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as e:
        raise UnreadableFile("unreadable_file", f"cannot read SQLite table {table!r} ({e})") from e
    return RawRecords(frame, np.arange(1, len(frame) + 1, dtype="int64"), "sqlite")


def _read_parquet(data: bytes) -> RawRecords:
    try:
        frame = pq.read_table(pa.BufferReader(data)).to_pandas()
    except (pa.ArrowException, OSError) as e:
        raise UnreadableFile("unreadable_file", f"a damaged Parquet file ({e})") from e
    return RawRecords(frame, np.arange(1, len(frame) + 1, dtype="int64"), "parquet")


# ---------------------------------------------------------------- JSON, JSONL


def _records_frame(
    records: list, numbers: np.ndarray, fmt: str, raw_lines: list[str] | None
) -> RawRecords:
    """Split parsed JSON values into object records and malformed ones (not an object)."""
    is_obj = np.fromiter((isinstance(r, dict) for r in records), dtype=bool, count=len(records))
    good = [r for r, ok in zip(records, is_obj, strict=True) if ok]
    frame = pd.DataFrame.from_records(good) if good else pd.DataFrame(index=range(0))
    frame = frame.astype(object) if len(frame.columns) else frame
    bad_pos = np.flatnonzero(~is_obj)
    malformed = _malformed(
        numbers[bad_pos],
        [
            raw_lines[i] if raw_lines else json.dumps(records[i], ensure_ascii=False)
            for i in bad_pos
        ],
        ["is not a JSON object"] * len(bad_pos),
        [MALFORMED] * len(bad_pos),
    )
    lines = [raw_lines[i] for i in np.flatnonzero(is_obj)] if raw_lines is not None else None
    return RawRecords(frame, numbers[is_obj], fmt, malformed, lines)


def _with_malformed(out: RawRecords, more: pd.DataFrame) -> RawRecords:
    if len(more):
        out.malformed = pd.concat([out.malformed, more], ignore_index=True).sort_values(
            "row_number", ignore_index=True, kind="stable"
        )
    return out


def _ambiguous_detail(what: str) -> str:
    return (
        f"{what} is valid UTF-8 text inside a file that is not UTF-8 (read as GB18030): "
        "its encoding is ambiguous, so it was not taken"
    )


def _unparseable_json(e: json.JSONDecodeError) -> UnreadableFile:
    return UnreadableFile(
        "unreadable_file",
        f"not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); the file may be truncated",
    )


def _read_json_array(decoded: Decoded) -> RawRecords:
    fmt = f"json_{decoded.encoding}"
    if decoded.ambiguous:
        return _read_json_array_mixed(decoded, fmt)
    try:
        records = json.loads(decoded.text)
    except json.JSONDecodeError as e:
        raise _unparseable_json(e) from e
    except RecursionError as e:
        raise UnreadableFile("unreadable_file", "JSON nested too deeply to read") from e
    if not isinstance(records, list):
        raise UnreadableFile("unreadable_file", "JSON that is neither an array nor an object")
    return _records_frame(records, np.arange(1, len(records) + 1, dtype="int64"), fmt, None)


_BLANK = re.compile(r"[ \t\n\r]*")


def _json_array_spans(text: str) -> list[tuple[object, int, int]]:
    """The elements of a JSON array with their character spans (start, end) in ``text``."""
    dec = json.JSONDecoder()
    i = _BLANK.match(text, 0).end()
    if text[i : i + 1] != "[":
        raise json.JSONDecodeError("Expecting '['", text, i)
    i = _BLANK.match(text, i + 1).end()
    out: list[tuple[object, int, int]] = []
    if text[i : i + 1] == "]":
        i += 1
    else:
        while True:
            value, end = dec.raw_decode(text, i)
            out.append((value, i, end))
            i = _BLANK.match(text, end).end()
            ch = text[i : i + 1]
            if ch == ",":
                i = _BLANK.match(text, i + 1).end()
                continue
            if ch == "]":
                i += 1
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
    if text[_BLANK.match(text, i).end() :]:
        raise json.JSONDecodeError("Extra data", text, i)
    return out


def _read_json_array_mixed(decoded: Decoded, fmt: str) -> RawRecords:
    """A GB18030 JSON array with ambiguous lines: elements touching one are set aside."""
    text = decoded.text
    try:
        spans = _json_array_spans(text)
    except json.JSONDecodeError as e:
        raise _unparseable_json(e) from e
    except RecursionError as e:
        raise UnreadableFile("unreadable_file", "JSON nested too deeply to read") from e
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    lines = [(line(s), line(max(s, e - 1))) for _, s, e in spans]
    bad = np.array([decoded.any_ambiguous(a, b) for a, b in lines], dtype=bool)
    numbers = np.arange(1, len(spans) + 1, dtype="int64")
    good = [v for (v, _, _), b in zip(spans, bad, strict=True) if not b]
    out = _records_frame(good, numbers[~bad], fmt, None)
    pos = np.flatnonzero(bad)
    return _with_malformed(
        out,
        _malformed(
            numbers[pos],
            [decoded.raw(*lines[i]) for i in pos],
            [_ambiguous_detail("element")] * len(pos),
            [AMBIGUOUS] * len(pos),
        ),
    )


def _read_json_object_or_lines(decoded: Decoded) -> RawRecords:
    text, encoding = decoded.text, decoded.encoding
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        one_line = "\n" not in text.strip()
        fmt = f"jsonl_{encoding}" if one_line else f"json_object_{encoding}"
        if decoded.ambiguous:
            last = len(decoded.lines or [])
            return RawRecords(
                pd.DataFrame(),
                np.zeros(0, dtype="int64"),
                fmt,
                _malformed([1], [decoded.raw(1, last)], [_ambiguous_detail("the object")], [AMBIGUOUS]),
            )
        return _records_frame(
            [obj], np.ones(1, dtype="int64"), fmt, [text.strip()] if one_line else None
        )
    return _read_jsonl(decoded)


def _read_jsonl(decoded: Decoded) -> RawRecords:
    encoding = decoded.encoding
    lines = decoded.text.split("\n")
    stripped = [ln.rstrip("\r") for ln in lines]
    keep = np.fromiter((bool(ln.strip()) for ln in stripped), dtype=bool, count=len(stripped))
    numbers = np.flatnonzero(keep).astype("int64") + 1
    ambiguous = np.isin(numbers, np.fromiter(decoded.ambiguous, dtype="int64"))
    set_aside = _malformed(
        numbers[ambiguous],
        [decoded.raw(n, n) for n in numbers[ambiguous]],
        [_ambiguous_detail("line")] * int(ambiguous.sum()),
        [AMBIGUOUS] * int(ambiguous.sum()),
    )
    numbers = numbers[~ambiguous]
    body = [stripped[n - 1] for n in numbers]
    try:
        # One C-level parse of the whole file; only a file with a broken line pays per line.
        records = json.loads("[" + ",".join(body) + "]")
        if len(records) != len(body):
            raise ValueError("a line holds more than one JSON value")
    except (ValueError, RecursionError):
        return _with_malformed(_read_jsonl_per_line(body, numbers, encoding), set_aside)
    return _with_malformed(_records_frame(records, numbers, f"jsonl_{encoding}", body), set_aside)


def _read_jsonl_per_line(body: list[str], numbers: np.ndarray, encoding: str) -> RawRecords:
    parsed: list = []
    ok = np.ones(len(body), dtype=bool)
    details: list[str] = []
    for i, line in enumerate(body):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as e:
            ok[i] = False
            details.append(
                f"is not valid JSON ({e.msg} at column {e.colno}); the line may be truncated"
            )
        except RecursionError:
            ok[i] = False
            details.append("is JSON nested too deeply to read")
    good = np.flatnonzero(ok)
    out = _records_frame(parsed, numbers[good], f"jsonl_{encoding}", [body[i] for i in good])
    bad = np.flatnonzero(~ok)
    broken = _malformed(numbers[bad], [body[i] for i in bad], details, [MALFORMED] * len(bad))
    return _with_malformed(out, broken)


# ---------------------------------------------------------------- CSV

#: Line ends as the csv module (and pyarrow) see them; neither byte is ever inside a multi-byte
#: UTF-8 or GB18030 character, so bytes and text split into the same lines.
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _field_count_detail(n: int) -> str:
    return f"has a different number of fields than the header ({n})"


def _bad_header(header: list[str]) -> bool:
    return len(set(header)) != len(header) or any(not h for h in header)


def _read_csv(decoded: Decoded) -> RawRecords:
    """A CSV file: pyarrow reads a plain file in one pass; a file of mixed encodings, or one
    pyarrow cannot parse, is read record by record (``_read_csv_records``), the same way."""
    if not decoded.ambiguous:
        fast = _read_csv_pyarrow(decoded)
        if fast is not None:
            return fast
    return _read_csv_records(decoded)


def _read_csv_pyarrow(decoded: Decoded) -> RawRecords | None:
    """The whole file in one pyarrow pass; None when it is not a plain CSV pyarrow reads."""
    try:
        header = next(csv.reader(io.StringIO(decoded.text, newline="")))
    except (StopIteration, csv.Error):
        return None
    header = [h.strip() for h in header]
    if not header or _bad_header(header):
        return None  # the record-by-record reader counts its records, then refuses it
    parsed = _pyarrow_csv(decoded.text, header)
    if parsed is None:
        return None
    table, invalid = parsed
    frame = table.to_pandas().astype(object)
    # pyarrow numbers records counting the skipped header as 1, as we do.
    bad_numbers = np.array([n if n is not None else -1 for n, _ in invalid], dtype="int64")
    total = len(frame) + len(invalid)
    all_numbers = np.arange(2, total + 2, dtype="int64")
    good_numbers = all_numbers[~np.isin(all_numbers, bad_numbers)][: len(frame)]
    malformed = _malformed(
        bad_numbers,
        [t for _, t in invalid],
        [_field_count_detail(len(header))] * len(invalid),
        [MALFORMED] * len(invalid),
    )
    return RawRecords(frame, good_numbers, f"csv_{decoded.encoding}", malformed)


def _pyarrow_csv(text: str, names: list[str]) -> tuple[pa.Table, list[tuple[int, str]]] | None:
    """The records after the header as strings, and the invalid ones; None when unparseable."""
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowException:
        return None
    return table, invalid


def _read_csv_records(decoded: Decoded) -> RawRecords:
    """A CSV read record by record with the line span of each record (the csv module).

    As the one-pass reader: every field a string, blank lines are no records, the header is
    record 1, a record with another field count than the header is malformed. In a GB18030 file,
    a record with a line that is also valid non-ASCII UTF-8 is set aside as ambiguous.
    """
    body = decoded.body
    raw_lines = _LINE_END.split(body)
    ambiguous = (
        {i + 1 for i, ln in enumerate(raw_lines) if not ln.isascii() and _is_utf8(ln)}
        if decoded.encoding == "gb18030"
        else set()
    )

    def raw(first: int, last: int) -> str:
        return b"\n".join(raw_lines[first - 1 : last]).decode("utf-8", errors="backslashreplace")

    def mixed(first: int, last: int) -> bool:
        return any(n in ambiguous for n in range(first, last + 1))

    reader = csv.reader(io.StringIO(decoded.text, newline=""))
    spans: list[tuple[list[str], int, int]] = []
    try:
        last = 0
        for fields in reader:
            first, last = last + 1, reader.line_num
            if fields:
                spans.append((fields, first, last))
    except csv.Error as e:
        raise UnreadableFile("unreadable_file", f"cannot parse as CSV ({e})") from e
    if not spans:
        raise UnreadableFile("unreadable_file", "no CSV header")
    header_fields, h1, h2 = spans[0]
    header = [h.strip() for h in header_fields]
    records = spans[1:]
    if mixed(h1, h2):
        raise UnreadableFile(AMBIGUOUS, _ambiguous_detail("the CSV header"), rows=len(records))
    if _bad_header(header):
        raise UnreadableFile(
            "wrong_shape", f"CSV header has empty or repeated column names: {header}", rows=len(records)
        )
    good_rows, good_numbers, bad = [], [], []
    for number, (fields, a, b) in enumerate(records, start=2):
        if mixed(a, b):
            bad.append((number, raw(a, b), _ambiguous_detail("record"), AMBIGUOUS))
        elif len(fields) != len(header):
            bad.append((number, raw(a, b), _field_count_detail(len(header)), MALFORMED))
        else:
            good_rows.append(fields)
            good_numbers.append(number)
    frame = pd.DataFrame(good_rows, columns=header, dtype=object)
    malformed = _malformed(*zip(*bad, strict=True)) if bad else _malformed()
    return RawRecords(
        frame, np.asarray(good_numbers, dtype="int64"), f"csv_{decoded.encoding}", malformed
    )
