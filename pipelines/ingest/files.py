"""Reading landing files into raw records with their row numbers, whatever the format.

The format is detected from the content (magic bytes, first character), not from the file name:
Parquet (``PAR1``), SQLite (``SQLite format 3``), a JSON array, one JSON object (Spider_XHS's
``info.json``), JSONL, or else CSV. Text is decoded as UTF-8 with a BOM when it has one, else
strict UTF-8, else GB18030 (what Excel in China writes).

Row numbers are 1-based locators a person can open the file at: the line for JSONL, the element
for a JSON array, the record for CSV counted with the header as 1 (equal to the line number when no
field spans lines), the row for Parquet and SQLite.
"""

from __future__ import annotations

import csv
import io
import json
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


class UnreadableFile(Exception):
    """The file as a whole cannot be read; ``reason`` is a quarantine reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class RawRecords:
    """The records of one file (or one SQLite table): columns as the file names them.

    ``frame`` holds the good records, ``row_numbers`` their locators (aligned with ``frame``),
    ``malformed`` the records that could not be parsed at all (row_number, raw, detail).
    """

    frame: pd.DataFrame
    row_numbers: np.ndarray
    format: str
    malformed: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"row_number": [], "raw": [], "detail": []})
    )
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


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode file bytes; returns (text, encoding label). Raises ``UnreadableFile`` on binary data."""
    if data.startswith(UTF8_BOM):
        try:
            return data[len(UTF8_BOM) :].decode("utf-8"), "utf8_bom"
        except UnicodeDecodeError as e:
            raise UnreadableFile(
                "unreadable_file", f"starts with a UTF-8 BOM but is not UTF-8 ({e})"
            ) from e
    if b"\x00" in data[:65536]:
        raise UnreadableFile(
            "unreadable_file", "binary content (NUL bytes): not CSV, JSON, JSONL, Parquet or SQLite"
        )
    try:
        return data.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as e:
        raise UnreadableFile(
            "unreadable_file",
            f"neither UTF-8 nor GB18030 text ({e}); re-export it as UTF-8 CSV or JSON",
        ) from e


def sniff(data: bytes) -> str:
    """The container of a file from its first bytes: parquet, sqlite, empty or text."""
    if data.startswith(PARQUET_MAGIC):
        return "parquet"
    if data.startswith(SQLITE_MAGIC):
        return "sqlite"
    if not data.strip() or data.strip() == UTF8_BOM:
        return "empty"
    return "text"


def read_records(path: Path, sqlite_table: str | None = None) -> RawRecords:
    """Read one landing file into raw records. Raises ``UnreadableFile`` when it cannot be read.

    For a SQLite file, ``sqlite_table`` names the table to read (see ``sqlite_tables``).
    """
    data = Path(path).read_bytes()
    kind = sniff(data)
    if kind == "empty":
        return RawRecords(pd.DataFrame(), np.zeros(0, dtype="int64"), "empty")
    if kind == "parquet":
        return _read_parquet(path)
    if kind == "sqlite":
        if sqlite_table is None:
            tables = list(sqlite_tables(path))
            if len(tables) != 1:
                raise UnreadableFile(
                    "wrong_shape", f"a SQLite file with tables {tables}: expected exactly one table"
                )
            sqlite_table = tables[0]
        return _read_sqlite(path, sqlite_table)
    text, encoding = decode_text(data)
    first = text.lstrip()[:1]
    if first == "[":
        return _read_json_array(text, encoding)
    if first == "{":
        return _read_json_object_or_lines(text, encoding)
    return _read_csv(text, encoding)


def sqlite_tables(path: Path) -> dict[str, list[str]]:
    """Tables of a SQLite file and their columns. Raises ``UnreadableFile`` when it is no database."""
    try:
        with _connect(path) as con:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            return {n: [r[1] for r in con.execute(f'PRAGMA table_info("{n}")')] for n in names}
    except sqlite3.DatabaseError as e:
        raise UnreadableFile("unreadable_file", f"a damaged SQLite database ({e})") from e


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


def _read_sqlite(path: Path, table: str) -> RawRecords:
    try:
        with _connect(path) as con:
            frame = pd.read_sql_query(f'SELECT * FROM "{table}" ORDER BY rowid', con)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as e:
        raise UnreadableFile("unreadable_file", f"cannot read SQLite table {table!r} ({e})") from e
    return RawRecords(frame, np.arange(1, len(frame) + 1, dtype="int64"), "sqlite")


def _read_parquet(path: Path) -> RawRecords:
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as e:
        raise UnreadableFile("unreadable_file", f"a damaged Parquet file ({e})") from e
    return RawRecords(frame, np.arange(1, len(frame) + 1, dtype="int64"), "parquet")


def _records_frame(
    records: list, numbers: np.ndarray, fmt: str, raw_lines: list[str] | None
) -> RawRecords:
    """Split parsed JSON values into object records and malformed ones (not an object)."""
    is_obj = np.fromiter((isinstance(r, dict) for r in records), dtype=bool, count=len(records))
    good = [r for r, ok in zip(records, is_obj, strict=True) if ok]
    frame = pd.DataFrame.from_records(good) if good else pd.DataFrame(index=range(0))
    frame = frame.astype(object) if len(frame.columns) else frame
    bad_pos = np.flatnonzero(~is_obj)
    malformed = pd.DataFrame(
        {
            "row_number": numbers[bad_pos],
            "raw": [
                raw_lines[i] if raw_lines else json.dumps(records[i], ensure_ascii=False)
                for i in bad_pos
            ],
            "detail": ["is not a JSON object"] * len(bad_pos),
        }
    )
    lines = [raw_lines[i] for i in np.flatnonzero(is_obj)] if raw_lines is not None else None
    return RawRecords(frame, numbers[is_obj], fmt, malformed, lines)


def _read_json_array(text: str, encoding: str) -> RawRecords:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnreadableFile(
            "unreadable_file",
            f"not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); the file may be truncated",
        ) from e
    if not isinstance(records, list):
        raise UnreadableFile("unreadable_file", "JSON that is neither an array nor an object")
    return _records_frame(
        records, np.arange(1, len(records) + 1, dtype="int64"), f"json_{encoding}", None
    )


def _read_json_object_or_lines(text: str, encoding: str) -> RawRecords:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        one_line = "\n" not in text.strip()
        fmt = f"jsonl_{encoding}" if one_line else f"json_object_{encoding}"
        return _records_frame(
            [obj], np.ones(1, dtype="int64"), fmt, [text.strip()] if one_line else None
        )
    return _read_jsonl(text, encoding)


def _read_jsonl(text: str, encoding: str) -> RawRecords:
    lines = text.split("\n")
    stripped = [ln.rstrip("\r") for ln in lines]
    keep = np.fromiter((bool(ln.strip()) for ln in stripped), dtype=bool, count=len(stripped))
    numbers = np.flatnonzero(keep).astype("int64") + 1
    body = [stripped[i] for i in np.flatnonzero(keep)]
    try:
        # One C-level parse of the whole file; only a file with a broken line pays per line.
        records = json.loads("[" + ",".join(body) + "]")
        if len(records) != len(body):
            raise ValueError("a line holds more than one JSON value")
    except ValueError:
        return _read_jsonl_per_line(body, numbers, encoding)
    return _records_frame(records, numbers, f"jsonl_{encoding}", body)


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
    good = np.flatnonzero(ok)
    out = _records_frame(parsed, numbers[good], f"jsonl_{encoding}", [body[i] for i in good])
    bad = np.flatnonzero(~ok)
    broken = pd.DataFrame(
        {"row_number": numbers[bad], "raw": [body[i] for i in bad], "detail": details}
    )
    out.malformed = pd.concat([out.malformed, broken], ignore_index=True).sort_values(
        "row_number", ignore_index=True
    )
    return out


def _read_csv(text: str, encoding: str) -> RawRecords:
    try:
        header = next(csv.reader(io.StringIO(text)))
    except (StopIteration, csv.Error) as e:
        raise UnreadableFile("unreadable_file", f"no CSV header ({e})") from e
    header = [h.strip() for h in header]
    if len(set(header)) != len(header) or any(not h for h in header):
        raise UnreadableFile(
            "wrong_shape", f"CSV header has empty or repeated column names: {header}"
        )
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        raise UnreadableFile("unreadable_file", f"cannot parse as CSV ({e})") from e
    frame = table.to_pandas().astype(object)
    # pyarrow numbers records counting the skipped header as 1, as we do.
    bad_numbers = np.array([n if n is not None else -1 for n, _ in invalid], dtype="int64")
    total = len(frame) + len(invalid)
    all_numbers = np.arange(2, total + 2, dtype="int64")
    good_numbers = all_numbers[~np.isin(all_numbers, bad_numbers)][: len(frame)]
    malformed = pd.DataFrame(
        {
            "row_number": bad_numbers,
            "raw": [t for _, t in invalid],
            "detail": [f"has a different number of fields than the header ({len(header)})"]
            * len(invalid),
        }
    )
    return RawRecords(frame, good_numbers, f"csv_{encoding}", malformed)
