"""Ingest one delivery day of the landing zone (SPEC 1) into the lake.

Landing layout read for day d::

    notes/<platform>/dt=d/**        exporter note files (any supported exporter and container)
    exposures/<platform>/dt=d/**    id_links/<platform>/dt=d/**
    searches/dt=d/**                orders/dt=d/**
    items/**                        catalog snapshot (flat files, or dt=... folders up to d)

Every row of every file ends up accepted into the lake or in quarantine; per file
``input_rows = accepted_rows + quarantined_rows`` (``schemas.INGEST_FILES``). A file that cannot be
read at all is one quarantine row (row_number 0) and an entry in ``errors``; the day goes on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from .. import lake, schemas
from ..settings import Settings
from ..timeutil import days as day_range
from . import quarantine
from .events import WrongShape, to_table
from .files import SQLITE_MAGIC, RawRecords, UnreadableFile, read_records, sqlite_tables
from .notes.base import to_notes
from .notes.registry import detect, sqlite_table_formats
from .quarantine import Checks, FileContext

#: Inputs delivered per platform folder, and those delivered once for all platforms.
PER_PLATFORM = ("notes", "exposures", "id_links")
PLATFORMLESS = ("searches", "orders")
#: Tables keyed by one id whose later deliveries are new versions (SPEC 3, docs/semantics.md):
#: different versions of a key inside one delivery are a conflict.
KEYED = ("searches", "orders")
#: Tables whose exact duplicate rows collapse to one within a delivery day.
COLLAPSED = ("exposures", "id_links", "searches", "orders")

Progress = Callable[[str], None]


@dataclass
class FileResult:
    """The accounting of one landing file (one ``schemas.INGEST_FILES`` row)."""

    source: str
    platform: str | None
    source_file: str
    format: str
    input_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    error: str | None = None


@dataclass
class DayIngestResult:
    """What one day's ingestion read, accepted, quarantined and wrote."""

    day: date
    run_id: str
    files: list[FileResult]
    quarantine: pd.DataFrame
    written: dict[str, int]
    collapsed: dict[str, int]
    errors: list[str] = field(default_factory=list)

    @property
    def ingest_files(self) -> pd.DataFrame:
        rows = [
            {
                "dt": self.day,
                "source": f.source,
                "platform": f.platform,
                "source_file": f.source_file,
                "format": f.format,
                "input_rows": f.input_rows,
                "accepted_rows": f.accepted_rows,
                "quarantined_rows": f.quarantined_rows,
                "run_id": self.run_id,
            }
            for f in self.files
        ]
        frame = pd.DataFrame(rows) if rows else schemas.empty_frame(schemas.INGEST_FILES)
        return schemas.conform(schemas.INGEST_FILES, frame)

    @property
    def totals(self) -> dict[str, dict[str, int]]:
        """Per input table: files, input, accepted and quarantined rows."""
        out: dict[str, dict[str, int]] = {}
        for f in self.files:
            t = out.setdefault(
                f.source, {"files": 0, "input_rows": 0, "accepted_rows": 0, "quarantined_rows": 0}
            )
            t["files"] += 1
            t["input_rows"] += f.input_rows
            t["accepted_rows"] += f.accepted_rows
            t["quarantined_rows"] += f.quarantined_rows
        return out


@dataclass
class _Parsed:
    """One file (or one SQLite table) after reading: rows to accept, rows quarantined."""

    result: FileResult
    ctx: FileContext
    records: RawRecords | None = None
    accepted: pd.DataFrame | None = None
    quarantined: list[pd.DataFrame] = field(default_factory=list)


def ingest_day(
    settings: Settings, day: date, progress: Progress | None = None, run_id: str | None = None
) -> DayIngestResult:
    """Ingest the landing folders of delivery day ``day`` into ``settings.lake``, replacing that day."""
    landing = Path(settings.landing)
    if not landing.is_dir():
        raise FileNotFoundError(
            f"landing folder {landing} does not exist; pass the landing zone (--landing or "
            f"Settings(landing=...)) or set SEEDFUNNEL_LANDING"
        )
    run_id = run_id or f"ingest-{day.isoformat()}-{uuid.uuid4().hex[:8]}"
    say = progress or (lambda _msg: None)
    parsed: list[_Parsed] = []

    item_files = _item_files(landing, day)
    items_parsed = [_parse_file(landing, p, "items", None, day, run_id, None) for p in item_files]
    parsed += items_parsed
    items = _items_snapshot(settings.lake, items_parsed)

    for source in PER_PLATFORM + PLATFORMLESS:
        for path, platform in _day_files(landing, source, day):
            say(f"{source}: {path.relative_to(landing)}")
            parsed += _parse_path(landing, path, source, platform, day, run_id, items)

    written: dict[str, int] = {}
    collapsed: dict[str, int] = {}
    for source in PER_PLATFORM + PLATFORMLESS:
        mine = [p for p in parsed if p.result.source == source]
        frame = _settle(source, day, mine, run_id, collapsed)
        lake.write_partition(settings.lake, source, day, frame)
        written[source] = len(frame)
    if item_files:
        written["items"] = len(items)

    for p in parsed:
        p.result.quarantined_rows = int(sum(len(q) for q in p.quarantined))
        p.result.accepted_rows = p.result.input_rows - p.result.quarantined_rows
    quarantined = [q for p in parsed for q in p.quarantined if len(q)]
    qframe = (
        pd.concat(quarantined, ignore_index=True)
        if quarantined
        else schemas.empty_frame(schemas.QUARANTINE)
    )
    result = DayIngestResult(
        day=day,
        run_id=run_id,
        files=[p.result for p in parsed],
        quarantine=schemas.conform(schemas.QUARANTINE, qframe),
        written=written,
        collapsed=collapsed,
        errors=[f"{p.result.source_file}: {p.result.error}" for p in parsed if p.result.error],
    )
    # Bookkeeping last: a day with an ingest_files partition was written completely.
    lake.write_partition(settings.lake, "quarantine", day, result.quarantine)
    lake.write_partition(settings.lake, "ingest_files", day, result.ingest_files)
    say(
        f"{day}: {sum(f.input_rows for f in result.files)} rows, {len(result.quarantine)} quarantined"
    )
    return result


def ingest_days(
    settings: Settings, start: date, end: date, progress: Progress | None = None
) -> list[DayIngestResult]:
    """Ingest every delivery day from ``start`` through ``end``, in order."""
    return [ingest_day(settings, d, progress) for d in day_range(start, end)]


# ---------------------------------------------------------------- finding files


def _visible_files(folder: Path) -> list[Path]:
    """Files under a folder in name order, hidden and bookkeeping files (``.x``, ``_x``) skipped."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part[:1] in "._" for part in p.relative_to(folder).parts)
    )


def _day_files(landing: Path, source: str, day: date) -> list[tuple[Path, str | None]]:
    """(file, platform folder) of one source for one delivery day."""
    part = lake.partition_name(day)
    root = landing / source
    if source in PLATFORMLESS:
        return [(p, None) for p in _visible_files(root / part)]
    if not root.is_dir():
        return []
    out = []
    for platform_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name[:1] not in "._"):
        out += [(p, platform_dir.name) for p in _visible_files(platform_dir / part)]
    return out


def delivery_days(landing: Path) -> list[date]:
    """Every delivery day (``dt=`` folder of any source) in the landing zone, ascending."""
    found: set[str] = set()
    for source in PER_PLATFORM + PLATFORMLESS:
        root = landing / source
        if not root.is_dir():
            continue
        folders = [root] if source in PLATFORMLESS else [p for p in root.iterdir() if p.is_dir() and p.name[:1] not in "._"]
        for folder in folders:
            found |= {p.name[3:] for p in folder.glob("dt=*") if p.is_dir()}
    out = []
    for text in sorted(found):
        try:
            out.append(date.fromisoformat(text))
        except ValueError:
            continue  # not a day: ingestion never reads it
    return out


def delivery_files(landing: Path, day: date) -> list[Path]:
    """Every landing file of delivery day ``day``, all sources (what ingest_day reads, items aside)."""
    return [p for source in PER_PLATFORM + PLATFORMLESS for p, _ in _day_files(landing, source, day)]


def item_files(landing: Path, day: date) -> list[Path]:
    """The catalog files a delivery of ``day`` reads."""
    return _item_files(landing, day)


def _item_files(landing: Path, day: date) -> list[Path]:
    """Catalog snapshot files: flat ones, and those of ``dt=`` folders up to ``day``."""
    root = landing / "items"
    out = []
    for p in _visible_files(root):
        dts = [part[3:] for part in p.relative_to(root).parts[:-1] if part.startswith("dt=")]
        if not dts or dts[-1] <= day.isoformat():
            out.append(p)
    # Snapshot order: dated folders by day after flat files; within each, by name.
    return sorted(out, key=lambda p: (_dt_of(p, root), str(p)))


def _dt_of(path: Path, root: Path) -> str:
    dts = [part[3:] for part in path.relative_to(root).parts[:-1] if part.startswith("dt=")]
    return dts[-1] if dts else ""


def _items_snapshot(lake_root: Path, items_parsed: list[_Parsed]) -> pd.DataFrame:
    """The catalog for this day: the landing's items files (later ones win), else the lake's."""
    frames = [
        p.accepted.drop(columns=["_pos"])
        for p in items_parsed
        if p.accepted is not None and len(p.accepted)
    ]
    if not items_parsed:
        return lake.read_table(lake_root, "items")
    if not frames:
        items = schemas.empty_frame(schemas.ITEMS)
    else:
        items = pd.concat(frames, ignore_index=True).drop_duplicates("item_id", keep="last")
    items = schemas.conform(schemas.ITEMS, items)
    lake.write_partition(lake_root, "items", None, items)
    return items


# ---------------------------------------------------------------- one file


def _parse_path(landing, path, source, platform, day, run_id, items) -> list[_Parsed]:
    """Parse one landing file; a SQLite store of notes may give one result per note table."""
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if source == "notes" and platform in schemas.PLATFORMS and head == SQLITE_MAGIC:
        return _parse_notes_sqlite(landing, path, platform, day, run_id)
    return [_parse_file(landing, path, source, platform, day, run_id, items)]


def _context(
    landing: Path, path: Path, source: str, platform: str | None, day: date, suffix: str = ""
) -> FileContext:
    return FileContext(day, source, platform, path.relative_to(landing).as_posix() + suffix)


def _parse_file(
    landing, path, source, platform, day, run_id, items, sqlite_table=None, fmt=None, suffix=""
) -> _Parsed:
    """Read and check one file (or one table of a SQLite file) of ``source``."""
    ctx = _context(landing, path, source, platform, day, suffix)
    out = _Parsed(FileResult(source, platform, ctx.source_file, "unknown"), ctx)
    if platform is not None and platform not in schemas.PLATFORMS:
        return _fail(
            out,
            path,
            "unknown_platform",
            f"platform folder {platform!r} is not a known platform",
            run_id,
        )
    try:
        records = read_records(path, sqlite_table=sqlite_table)
        out.records = records
        out.result.input_rows = records.input_rows
        out.result.format = records.format
        if records.format == "empty":
            return out  # an empty file: 0 rows, recorded, not an error
        if source == "notes":
            fmt = fmt or _note_format(records, platform)
            frame, checks = to_notes(records, fmt, ctx) if fmt else (None, None)
            out.result.format = (
                fmt.label(records.frame.columns, records.format) if fmt else records.format
            )
        else:
            frame, checks = to_table(records, schemas.table(source), ctx, items)
    except UnreadableFile as e:
        return _fail(out, path, e.reason, str(e), run_id)
    except WrongShape as e:
        out.result.format = out.records.format if out.records is not None else "unknown"
        return _fail(out, path, "wrong_shape", str(e), run_id)
    if frame is None:
        return out  # no records to detect a note format from: nothing to accept
    _quarantine_rows(out, frame, checks, run_id)
    return out


def _note_format(records: RawRecords, platform: str):
    """The note format of a file's records, or ``None`` when it has no records to detect from."""
    if records.frame.empty and not len(records.frame.columns):
        if len(records.malformed):
            raise WrongShape("holds no readable note record to detect its exporter from")
        return None
    found = detect(records.frame.columns)
    mine = [f for f in found if f.platform == platform]
    if mine:
        return mine[0]
    if found:
        others = sorted({f.platform for f in found})
        raise _PlatformMismatch(
            f"holds {found[0].name} records of {', '.join(others)}, not {platform}"
        )
    raise WrongShape(
        f"columns {sorted(map(str, records.frame.columns))[:12]} match no known note exporter "
        "(MediaCrawler, Spider_XHS, XHS-Downloader)"
    )


class _PlatformMismatch(UnreadableFile):
    def __init__(self, message: str) -> None:
        super().__init__("platform_mismatch", message)


def _parse_notes_sqlite(landing, path, platform, day, run_id) -> list[_Parsed]:
    """Every note table of a SQLite store (MediaCrawler's ``xhs_note``..., XHS-Downloader's ``explore_data``)."""
    try:
        tables = sqlite_tables(path)
    except UnreadableFile as e:
        out = _Parsed(
            FileResult(
                "notes",
                platform,
                _context(landing, path, "notes", platform, day).source_file,
                "sqlite",
            ),
            _context(landing, path, "notes", platform, day),
        )
        return [_fail(out, path, e.reason, str(e), run_id)]
    known = sqlite_table_formats(tables)
    mine = [(t, f) for t, f in known if f.platform == platform]
    if not mine:
        ctx = _context(landing, path, "notes", platform, day)
        out = _Parsed(FileResult("notes", platform, ctx.source_file, "sqlite"), ctx)
        if known:
            reason, detail = (
                "platform_mismatch",
                f"holds note tables {[t for t, _ in known]} of another platform than {platform}",
            )
        else:
            reason, detail = (
                "wrong_shape",
                f"SQLite tables {sorted(tables)} hold no known note table",
            )
        return [_fail(out, path, reason, detail, run_id)]
    # One note table is the file; several are named file#table so each keeps its own row numbers.
    several = len(mine) > 1
    return [
        _parse_file(
            landing,
            path,
            "notes",
            platform,
            day,
            run_id,
            None,
            sqlite_table=t,
            fmt=f,
            suffix=f"#{t}" if several else "",
        )
        for t, f in mine
    ]


def _fail(out: _Parsed, path: Path, reason: str, detail: str, run_id: str) -> _Parsed:
    """A whole file refused: one quarantine row (row 0) and an error; its rows are all quarantined."""
    raw = quarantine.raw_preview(path.read_bytes())
    out.quarantined = [quarantine.whole_file(out.ctx, reason, detail, raw, run_id)]
    out.result.error = f"{reason}: {detail}"
    # The whole file is one quarantine record, whatever was counted while reading it.
    out.result.input_rows = 1
    out.accepted = None
    return out


def _quarantine_rows(out: _Parsed, frame: pd.DataFrame, checks: Checks, run_id: str) -> None:
    records = out.records
    bad = checks.bad.to_numpy()
    if len(records.malformed):
        m = records.malformed
        out.quarantined.append(
            quarantine.frame(
                out.ctx,
                m["row_number"].to_numpy(),
                "malformed_record",
                "record " + m["detail"].astype(str),
                m["raw"].tolist(),
                run_id,
            )
        )
    if bad.any():
        pos = np.flatnonzero(bad)
        out.quarantined.append(
            quarantine.frame(
                out.ctx,
                records.row_numbers[pos],
                checks.reason[bad].to_numpy(),
                checks.detail[bad].to_numpy(),
                records.raw_text(pos),
                run_id,
            )
        )
    out.accepted = frame.loc[~bad]


# ---------------------------------------------------------------- the day's table


def _settle(
    source: str,
    day: date,
    parsed: list[_Parsed],
    run_id: str,
    collapsed: dict[str, int],
) -> pd.DataFrame:
    """One table's accepted rows of the day: conflicts quarantined, exact duplicates collapsed.

    Only this delivery's rows are looked at: a key delivered again on another day is a new
    version of it (resolved when the funnel reads the lake), so the result does not depend on the
    order in which deliveries are ingested.
    """
    table = schemas.table(source)
    parts = [
        (i, p.accepted) for i, p in enumerate(parsed) if p.accepted is not None and len(p.accepted)
    ]
    if not parts:
        return schemas.empty_frame(table)
    file_idx = np.concatenate([np.full(len(a), i) for i, a in parts])
    pos = np.concatenate([a["_pos"].to_numpy() for _, a in parts])
    frame = schemas.conform(table, pd.concat([a for _, a in parts], ignore_index=True))

    if source in KEYED:
        conflict = _conflicts(frame, table)
        for i in np.unique(file_idx[conflict]):
            p = parsed[i]
            mine = conflict & (file_idx == i)
            what = (
                "key "
                + _key_text(frame.loc[mine], table)
                + f" comes with different content in this delivery (dt={day})"
            )
            p.quarantined.append(
                quarantine.frame(
                    p.ctx,
                    p.records.row_numbers[pos[mine]],
                    "conflicting_version",
                    what.to_numpy(),
                    p.records.raw_text(pos[mine]),
                    run_id,
                )
            )
        frame = frame.loc[~conflict]
    if source in COLLAPSED:
        dup = _exact_duplicates(frame, table)
        collapsed[source] = int(dup.sum())
        frame = frame.loc[~dup]
    return frame.reset_index(drop=True)


def _exact_duplicates(frame: pd.DataFrame, table: schemas.Table) -> np.ndarray:
    """Rows equal in every column but dt to an earlier row (hash to find candidates, then compare).

    Rows equal in every column are equal in any of them, so candidates are the rows whose
    numeric and time columns (cheap to hash, nearly unique per event) repeat; only those are
    compared in full. Text columns are hashed only when a table has nothing else.
    """
    cheap = [
        c
        for c in _content_columns(table)
        if table.column(c).type in ("int64", "float64", "ts", "bool")
    ]
    key = (
        pd.util.hash_pandas_object(frame[cheap], index=False)
        if cheap
        else _content_hash(frame, table)
    )
    candidates = key.duplicated(keep=False).to_numpy()
    dup = np.zeros(len(frame), dtype=bool)
    if candidates.any():
        dup[candidates] = (
            frame.loc[candidates].duplicated(subset=_content_columns(table)).to_numpy()
        )
    return dup


def _content_columns(table: schemas.Table) -> list[str]:
    return [c for c in table.names if c != "dt"]


def _key_text(frame: pd.DataFrame, table: schemas.Table) -> pd.Series:
    text = frame[list(table.key)].astype(str)
    return text.iloc[:, 0] if len(table.key) == 1 else text.agg("/".join, axis=1)


def _content_hash(frame: pd.DataFrame, table: schemas.Table) -> pd.Series:
    return pd.util.hash_pandas_object(frame[_content_columns(table)], index=False)


def _conflicts(frame: pd.DataFrame, table: schemas.Table) -> np.ndarray:
    """Every row of a key that comes in more than one version (content but dt) in this delivery.

    Only rows whose key repeats can conflict; among those, exact duplicates collapse first.
    """
    key = list(table.key)
    repeated = frame.duplicated(key, keep=False).to_numpy()
    conflict = np.zeros(len(frame), dtype=bool)
    if repeated.any():
        rows = frame.loc[repeated]
        versions = rows.drop_duplicates(_content_columns(table))
        clashing = versions.loc[versions.duplicated(key, keep=False), key]
        conflict[repeated] = pd.MultiIndex.from_frame(rows[key]).isin(
            pd.MultiIndex.from_frame(clashing)
        )
    return conflict
