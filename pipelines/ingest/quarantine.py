"""Quarantine: every input row that cannot be accepted, with a reason from a small closed set.

A row is never dropped: it is either accepted into the lake or kept here with its source file
(relative to the landing root), 1-based row number (0 = the whole file), reason code, a message
naming the file, the row and what to do, and its raw content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import schemas

#: The closed set of reason codes, each with what the sender should do about it.
REASONS: dict[str, str] = {
    "unreadable_file": "the file cannot be read at all (binary, damaged, or not CSV/JSON/JSONL/Parquet/SQLite); re-export it",
    "symlink": "the path is a symbolic link: links are never followed, so nothing outside the landing zone is read; copy the file itself into the landing zone",
    "not_a_file": "the path is not a regular file (a FIFO, socket or device) and was not opened; deliver a regular file",
    "ambiguous_encoding": "the file is not UTF-8, so it was read as GB18030, but this record is also valid UTF-8 text: its encoding is ambiguous (a file of mixed encodings) and it is kept unread with its raw bytes; re-export the whole file in one encoding, UTF-8",
    "wrong_shape": "the file's columns are not those of this input (another table's file, or an unknown exporter); move it to the right folder or export it in a supported format",
    "unknown_platform": "the platform folder is not one of "
    + ", ".join(schemas.PLATFORMS)
    + "; rename the folder",
    "platform_mismatch": "the platform in the content disagrees with the platform folder; move the file or fix the field",
    "malformed_record": "the record cannot be parsed (truncated JSON, not an object, wrong number of CSV fields); re-export it",
    "missing_required": "a required field is empty; fill it in or drop the record at the source",
    "bad_type": "a value has the wrong type; fix the value",
    "bad_timestamp": "a timestamp cannot be parsed; use epoch seconds/milliseconds, 'YYYY-MM-DD HH:MM:SS' (Asia/Shanghai) or ISO 8601 with an offset",
    "bad_count": "a count cannot be parsed; use digits, optionally with 万/千/w/k or a trailing +",
    "negative_count": "a count is negative; counts must be >= 0 (-1 alone means missing)",
    "bad_enum": "a value is outside the allowed set; use one of the listed values",
    "out_of_range": "a value is outside its allowed range (amounts 0 < fen <= 10^12, counts 0 .. 10^12 - 1, timestamps from 2000-01-01 to the end of the day after the delivery day); fix the value",
    "conflicting_version": "one delivery holds different versions of the same search_id / order_id / spend_id, so none of them is taken; fix the files of that delivery and deliver it again, or send the one correct version in a later delivery (the latest delivery of a key wins)",
}


def advice(reason: str) -> str:
    """What to do about a reason code."""
    return REASONS[reason].split("; ", 1)[-1]


class Checks:
    """Row-level failures of one frame, first failure wins (checks run in a meaningful order)."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(None, index=index, dtype="object")
        self.detail = pd.Series(None, index=index, dtype="object")

    def flag(
        self,
        mask: pd.Series | np.ndarray,
        reason: str,
        detail: pd.Series | str,
        shown: pd.Series | None = None,
        suffix: str = "",
    ) -> None:
        """Mark rows where ``mask`` holds (and nothing failed yet) with ``reason``.

        With ``shown``, the detail of each row is ``detail '<its value>'suffix``, built only for
        the flagged rows (checks run over millions of rows that mostly pass).
        """
        if reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}; add it to REASONS")
        mask = (
            pd.Series(mask, index=self.reason.index).fillna(False).astype(bool) & self.reason.isna()
        )
        if not mask.any():
            return
        self.reason[mask] = reason
        if shown is not None:
            value = shown[mask].astype("str").str.strip().fillna("").str.slice(0, 80)
            self.detail[mask] = (f"{detail} '" + value + "'" + suffix).astype(object)
        else:
            self.detail[mask] = (
                detail[mask].astype(object) if isinstance(detail, pd.Series) else detail
            )

    @property
    def bad(self) -> pd.Series:
        return self.reason.notna()

    def part(self, start: int, stop: int) -> Checks:
        """The checks of rows ``start:stop`` (one file of several checked together)."""
        out = Checks.__new__(Checks)
        out.reason = self.reason.iloc[start:stop]
        out.detail = self.detail.iloc[start:stop]
        return out


@dataclass(frozen=True)
class FileContext:
    """Where rows come from: enough to name them in a quarantine message."""

    day: object  # datetime.date
    source: str
    platform: str | None
    source_file: str


def frame(
    ctx: FileContext,
    row_numbers: np.ndarray | pd.Series,
    reasons: pd.Series | list[str] | str,
    details: pd.Series | list[str] | str,
    raw: list[str] | pd.Series,
    run_id: str,
) -> pd.DataFrame:
    """Quarantine rows (``schemas.QUARANTINE`` columns) for one file."""
    n = len(row_numbers)
    if n == 0:
        return schemas.empty_frame(schemas.QUARANTINE)
    rows = pd.Series(np.asarray(row_numbers, dtype="int64"))
    reason = pd.Series(np.broadcast_to(np.asarray(reasons, dtype=object), (n,)))
    detail = pd.Series(np.broadcast_to(np.asarray(details, dtype=object), (n,)))
    where = np.where(
        rows.eq(0), ctx.source_file + " (whole file)", ctx.source_file + " row " + rows.astype(str)
    )
    todo = reason.map(advice)
    message = pd.Series(where) + ": " + detail.astype(str) + "; " + todo
    out = pd.DataFrame(
        {
            "dt": [ctx.day] * n,
            "source": ctx.source,
            "platform": ctx.platform,
            "source_file": ctx.source_file,
            "row_number": rows,
            "reason": reason,
            "message": message,
            "raw": pd.Series(list(raw), dtype=object).astype(str),
            "run_id": run_id,
        }
    )
    return schemas.conform(schemas.QUARANTINE, out)


def whole_file(ctx: FileContext, reason: str, detail: str, raw: str, run_id: str) -> pd.DataFrame:
    """The one quarantine row (row_number 0) of a file that cannot be read at all."""
    return frame(ctx, np.zeros(1, dtype="int64"), reason, detail, [raw], run_id)


def raw_preview(data: bytes, limit: int = 2000) -> str:
    """The first bytes of an unreadable file as text, for the quarantine's raw column."""
    head = data[:limit]
    text = head.decode("utf-8", errors="backslashreplace")
    return text + (f"... ({len(data)} bytes in all)" if len(data) > limit else "")
