"""Ingest one delivery day of the landing zone (SPEC 1) into the lake.

Landing layout read for day d::

    notes/<platform>/dt=d/**        exporter note files (any supported exporter and container)
    exposures/<platform>/dt=d/**    id_links/<platform>/dt=d/**
    searches/dt=d/**                orders/dt=d/**
    spend/dt=d/**                   optional: a day without it has no spend (nothing is missing)
    items/**                        catalog snapshot (flat files, or dt=... folders up to d)

Every row of every file ends up accepted into the lake or in quarantine; per file
``input_rows = accepted_rows + quarantined_rows`` (``schemas.INGEST_FILES``), each side counted on
its own: input by the reader, accepted from the rows that reach the day's partition (of which
``collapsed_rows`` are exact duplicates that collapse), quarantined from the quarantine records.
A file that cannot be read at all is one quarantine row (row_number 0) standing for every row it
holds (``refused_rows``), and an entry in ``errors``; the day goes on. Nothing outside the landing
zone is opened (``landing``): links and special files are refused unopened.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import lake, schemas, workers
from ..settings import Settings
from ..timeutil import days as day_range
from . import fast, quarantine
from . import landing as landing_zone
from .events import WrongShape, to_table
from .files import SQLITE_MAGIC, RawRecords, UnreadableFile, read_records, rows_held, sqlite_tables
from .landing import Entry
from .notes.base import NoteFormat, to_notes_many
from .notes.registry import detect, sqlite_table_formats
from .quarantine import Checks, FileContext

#: Inputs delivered per platform folder, and those delivered once for all platforms.
PER_PLATFORM = ("notes", "exposures", "id_links")
PLATFORMLESS = ("searches", "orders", "spend")
#: Tables keyed by one id whose later deliveries are new versions (SPEC 3, docs/semantics.md):
#: different versions of a key inside one delivery are a conflict.
KEYED = ("searches", "orders", "spend")
#: Tables whose exact duplicate rows collapse to one within a delivery day.
COLLAPSED = ("exposures", "id_links", "searches", "orders", "spend")
#: Threads reading a delivery day's event files at once (beside the one mapping its notes).
READERS = 2

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
    file_bytes: int | None = None
    refused_rows: int = 0
    collapsed_rows: int = 0
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
                "file_bytes": f.file_bytes,
                "refused_rows": f.refused_rows,
                "collapsed_rows": f.collapsed_rows,
                "run_id": self.run_id,
            }
            for f in self.files
        ]
        frame = pd.DataFrame(rows) if rows else schemas.empty_frame(schemas.INGEST_FILES)
        return schemas.conform(schemas.INGEST_FILES, frame)

    @property
    def totals(self) -> dict[str, dict[str, int]]:
        """Per input table: files, bytes, input, accepted, quarantined, refused and collapsed rows."""
        out: dict[str, dict[str, int]] = {}
        counted = ("input_rows", "accepted_rows", "quarantined_rows", "refused_rows", "collapsed_rows")
        for f in self.files:
            t = out.setdefault(f.source, {"files": 0, "file_bytes": 0, **dict.fromkeys(counted, 0)})
            t["files"] += 1
            t["file_bytes"] += f.file_bytes or 0
            for k in counted:
                t[k] += getattr(f, k)
        return out


@dataclass
class _Parsed:
    """One file (or one SQLite table) after reading: rows to accept, rows quarantined."""

    result: FileResult
    ctx: FileContext
    records: RawRecords | fast.LazyRecords | None = None
    #: Rows to accept (+ ``_pos``), or typed Arrow rows of the fast path.
    accepted: pd.DataFrame | fast.Rows | None = None
    quarantined: list[pd.DataFrame] = field(default_factory=list)
    #: A note file's format: its records are mapped with the day's other note files (``_map_notes``).
    note_format: NoteFormat | None = None


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
    items_parsed = [p for e in item_files for p in _parse_path(e, "items", None, day, run_id, None)]
    parsed += items_parsed
    items = _items_snapshot(settings.lake, items_parsed)
    for p in items_parsed:
        p.result.accepted_rows = len(p.accepted) if p.accepted is not None else 0

    sources = PER_PLATFORM + PLATFORMLESS
    entries = [(source, e, platform) for source in sources for e, platform in _day_files(landing, source, day)]
    written: dict[str, int] = {}
    collapsed: dict[str, int] = {}
    # Worker threads beside this one. Two read the event files (mostly in Arrow's readers, which
    # release the GIL), one file each at a time, the exposures first, and settle the exposures,
    # the largest table, while the notes are parsed and mapped here in Python; one writes the
    # partitions, the first while the next table is settled. As before, nothing is written before
    # every file was read and mapped, files keep their order and each table its own rows and
    # records: the lake is the same.
    with ThreadPoolExecutor(max_workers=READERS) as reader, ThreadPoolExecutor(max_workers=1) as writer:
        settled: dict[str, pd.DataFrame | pa.Table] = {}
        failed: dict[str, Exception] = {}
        events = {
            (source, entry.rel): reader.submit(_parse_path, entry, source, platform, day, run_id, items)
            for source, entry, platform in sorted(
                (x for x in entries if x[0] != "notes"), key=lambda x: x[0] != "exposures"
            )
        }

        def settle_exposures() -> None:
            mine = [p for (source, _), f in events.items() if source == "exposures" for p in f.result()]
            try:
                settled["exposures"] = _settle("exposures", day, mine, run_id, collapsed)
            except Exception as e:  # noqa: BLE001 - raised where the table's turn comes (below)
                failed["exposures"] = e

        exposures = reader.submit(settle_exposures)
        for source, entry, _platform in entries:
            say(f"{source}: {entry.rel}")
        note_entries = [(entry, platform) for source, entry, platform in entries if source == "notes"]
        # The notes in the worker process when one runs (``_notes``), else here.
        notes, settled["notes"], collapsed["notes"] = workers.call(_notes, note_entries, day, run_id).result()
        exposures.result()
        for source, entry, _platform in entries:
            parsed += notes[entry.rel] if source == "notes" else events[source, entry.rel].result()
        writes = []
        for source in sources:
            if source in failed:
                raise failed[source]
            if source not in settled:
                settled[source] = _settle(
                    source, day, [p for p in parsed if p.result.source == source], run_id, collapsed
                )
            frame = settled.pop(source)
            writes.append(writer.submit(lake.write_partition, settings.lake, source, day, frame))
            written[source] = len(frame)
        for w in writes:
            w.result()
    written = {s: written[s] for s in sources}
    collapsed = {s: collapsed[s] for s in sources}
    if item_files:
        written["items"] = len(items)

    for p in parsed:
        records = int(sum(len(q) for q in p.quarantined))
        # A refused file's one record (row 0) stands for every row it holds.
        refused = p.result.refused_rows
        p.result.quarantined_rows = records + (refused - 1 if refused else 0)
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


def _day_files(landing: Path, source: str, day: date) -> list[tuple[Entry, str | None]]:
    """(entry, platform folder) of one source for one delivery day, links refused, never followed.

    A link where a folder was expected (the source folder, a platform folder) is refused in every
    delivery: each would have looked inside it.
    """
    part = lake.partition_name(day)
    if source in PLATFORMLESS:
        return [(e, None) for e in landing_zone.folder_entries(landing, f"{source}/{part}")]
    platforms, refused = landing_zone.subfolders(landing, source)
    out = [(e, _platform_of(e)) for e in refused]
    for platform in platforms:
        out += [(e, platform) for e in landing_zone.folder_entries(landing, f"{source}/{platform}/{part}")]
    return out


def _platform_of(entry: Entry) -> str | None:
    parts = entry.parts
    return parts[1] if len(parts) > 1 else None


def delivery_days(landing: Path) -> list[date]:
    """Every delivery day (``dt=`` folder of any source) in the landing zone, ascending.

    Folders are listed without following links: a ``dt=`` link counts as a delivery (it is
    refused when that day is ingested), a link above the ``dt=`` level is not looked into.
    """
    found: set[str] = set()
    for source in PER_PLATFORM + PLATFORMLESS:
        if source in PLATFORMLESS:
            folders = [source]
        else:
            folders = [f"{source}/{p}" for p in landing_zone.subfolders(landing, source)[0]]
        for folder in folders:
            names, links = landing_zone.subfolders(landing, folder)
            found |= {n[3:] for n in names if n.startswith("dt=")}
            found |= {e.parts[-1][3:] for e in links if e.parts[-1].startswith("dt=")}
    out = []
    for text in sorted(found):
        try:
            out.append(date.fromisoformat(text))
        except ValueError:
            continue  # not a day: ingestion never reads it
    return out


def delivery_files(landing: Path, day: date) -> list[Path]:
    """Every landing entry of delivery day ``day``, all sources (what ingest_day reads, items
    aside): regular files and refused links alike, so a link added or removed is a change."""
    return [e.path for source in PER_PLATFORM + PLATFORMLESS for e, _ in _day_files(landing, source, day)]


def item_files(landing: Path, day: date) -> list[Path]:
    """The catalog entries a delivery of ``day`` reads (refused links included)."""
    return [e.path for e in _item_files(landing, day)]


def _item_files(landing: Path, day: date) -> list[Entry]:
    """Catalog snapshot files: flat ones, and those of ``dt=`` folders up to ``day``."""
    out = []
    for e in landing_zone.folder_entries(landing, "items"):
        dts = _dts(e)
        if not dts or dts[-1] <= day.isoformat():
            out.append(e)
    # Snapshot order: dated folders by day after flat files; within each, by name.
    return sorted(out, key=lambda e: ((_dts(e) or [""])[-1], e.parts))


def _dts(entry: Entry) -> list[str]:
    return [part[3:] for part in entry.parts[1:-1] if part.startswith("dt=")]


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


def _parse_path(entry: Entry, source, platform, day, run_id, items) -> list[_Parsed]:
    """Parse one landing entry; a SQLite store of notes may give one result per note table.

    The file is opened once, here (``landing.read_bytes``); a refused entry is not opened at all.
    """
    ctx = FileContext(day, source, platform, entry.rel)
    out = _Parsed(FileResult(source, platform, entry.rel, entry.refused or "unknown"), ctx)
    if entry.refused:
        return [_fail(out, None, entry.refused, entry.detail, run_id)]
    try:
        data = landing_zone.read_bytes(entry)
    except landing_zone.Refused as e:
        out.result.format = e.reason
        return [_fail(out, None, e.reason, str(e), run_id)]
    except OSError as e:
        return [_fail(out, None, "unreadable_file", f"cannot be opened ({e.strerror or e})", run_id)]
    out.result.file_bytes = len(data)
    if source == "notes" and platform in schemas.PLATFORMS and data.startswith(SQLITE_MAGIC):
        return _parse_notes_sqlite(out, data, platform, run_id)
    return [_parse_file(out, data, items, run_id)]


def _parse_file(
    out: _Parsed, data: bytes, items, run_id: str, sqlite_table=None, fmt=None
) -> _Parsed:
    """Read and check one file (or one table of a SQLite file) of ``out``'s source."""
    ctx = out.ctx
    source, platform = ctx.source, ctx.platform
    if platform is not None and platform not in schemas.PLATFORMS:
        return _fail(
            out,
            data,
            "unknown_platform",
            f"platform folder {platform!r} is not a known platform",
            run_id,
        )
    if sqlite_table is None and source != "notes" and platform in (None, *schemas.PLATFORMS):
        table = schemas.table(source)
        got = fast.read_table(data, table, ctx, items) if fast.eligible(table) else None
        if got is not None:
            return _fast_rows(out, got, table, items, run_id)
    try:
        records = read_records(data, sqlite_table=sqlite_table)
        out.records = records
        out.result.input_rows = records.input_rows
        out.result.format = records.format
        if records.format == "empty":
            return out  # an empty file: 0 rows, recorded, not an error
        if source == "notes":
            fmt = fmt or _note_format(records, platform)
            if fmt is None:
                return out  # no records to detect a note format from: nothing to accept
            out.result.format = fmt.label(records.frame.columns, records.format)
            out.note_format = fmt
            return out  # mapped with the day's other note files (_map_notes)
        frame, checks = to_table(records, schemas.table(source), ctx, items)
    except UnreadableFile as e:
        return _fail(out, data, e.reason, str(e), run_id, rows=e.rows)
    except WrongShape as e:
        out.result.format = out.records.format if out.records is not None else "unknown"
        return _fail(out, data, "wrong_shape", str(e), run_id)
    _quarantine_rows(out, frame, checks, run_id)
    return out


def _notes(
    entries: list[tuple[Entry, str | None]], day: date, run_id: str
) -> tuple[dict[str, list[_Parsed]], pd.DataFrame, int]:
    """The day's note files read, mapped and settled: each file's results (by its landing path),
    the accepted notes, and how many collapsed.

    Pure (files in, results out), so the worker process can run it beside the event files
    (``workers``): it is Python and pandas from end to end, and would otherwise hold the
    interpreter lock the event readers need. What the rest of the day needs of each file is its
    accounting and quarantine records; its records and accepted rows are dropped before they are
    handed back.
    """
    notes = {entry.rel: _parse_path(entry, "notes", platform, day, run_id, None) for entry, platform in entries}
    files = [p for found in notes.values() for p in found]
    _map_notes(files, run_id)
    collapsed: dict[str, int] = {}
    frame = _settle("notes", day, files, run_id, collapsed)
    for p in files:
        p.records = p.accepted = p.note_format = None
    return notes, frame, collapsed["notes"]


def _map_notes(parsed: list[_Parsed], run_id: str) -> None:
    """Map every note file of the day to notes rows, then take or quarantine each file's rows.

    All files at once (``notes.base.to_notes_many``): a day holds dozens of small note files, and
    one pass per step over all of them costs what one file's pass did. Each file keeps its own
    rows, row numbers and quarantine records, as if mapped alone.
    """
    pending = [p for p in parsed if p.note_format is not None]
    mapped = to_notes_many([(p.records, p.note_format, p.ctx) for p in pending])
    for p, (frame, checks) in zip(pending, mapped, strict=True):
        _quarantine_rows(p, frame, checks, run_id)


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


def _parse_notes_sqlite(out: _Parsed, data: bytes, platform: str, run_id: str) -> list[_Parsed]:
    """Every note table of a SQLite store (MediaCrawler's ``xhs_note``..., XHS-Downloader's ``explore_data``).

    The database is read from the bytes in memory (``files.sqlite_tables``): its file name never
    reaches SQLite, so no name can change which file is opened or how.
    """
    out.result.format = "sqlite"
    try:
        tables = sqlite_tables(data)
    except UnreadableFile as e:
        return [_fail(out, data, e.reason, str(e), run_id)]
    known = sqlite_table_formats(tables)
    mine = [(t, f) for t, f in known if f.platform == platform]
    if not mine:
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
        return [_fail(out, data, reason, detail, run_id)]
    # One note table is the file; several are named file#table so each keeps its own row numbers.
    several = len(mine) > 1
    parsed = []
    for t, f in mine:
        name = out.ctx.source_file + (f"#{t}" if several else "")
        ctx = FileContext(out.ctx.day, "notes", platform, name)
        one = _Parsed(
            FileResult("notes", platform, name, "sqlite", file_bytes=out.result.file_bytes), ctx
        )
        parsed.append(_parse_file(one, data, None, run_id, sqlite_table=t, fmt=f))
    return parsed


def _fail(
    out: _Parsed, data: bytes | None, reason: str, detail: str, run_id: str, rows: int | None = None
) -> _Parsed:
    """A whole file refused: one quarantine row (row 0) standing for every row it holds.

    Those rows are the records read before it was refused, else what ``files.rows_held`` counts
    in its bytes (at least 1: the file); an entry never opened (a link) counts 1. Its raw content
    is the first bytes of the file, and nothing for an entry that was not opened.
    """
    raw = quarantine.raw_preview(data) if data is not None else ""
    out.quarantined = [quarantine.whole_file(out.ctx, reason, detail, raw, run_id)]
    out.result.error = f"{reason}: {detail}"
    if rows is None and out.records is not None:
        rows = out.records.input_rows
    if rows is None:
        rows = rows_held(data) if data is not None else 1
    out.result.input_rows = out.result.refused_rows = max(1, rows)
    out.accepted = None
    return out


def _fast_rows(out: _Parsed, got: fast.FastTable, table: schemas.Table, items, run_id: str) -> _Parsed:
    """A file the fast path read: its proven rows come typed; the rows it left (if any) are typed
    and checked by ``events.to_table`` on their own, accepted or quarantined as the general path
    does, and take their place among the others in file order."""
    out.records = got.records
    out.result.input_rows = got.records.input_rows
    out.result.format = got.records.format
    rows, positions, left = got.table, got.positions, []
    if len(got.rest):
        sub = got.records.subset(got.rest)
        frame, checks = to_table(sub, table, out.ctx, items)
        bad = checks.bad.to_numpy()
        left += _failed_rows(out.ctx, sub, checks, run_id)
        taken = got.rest[~bad]
        if len(taken):
            positions = np.concatenate([positions, taken])
            order = np.argsort(positions, kind="stable")
            rows = pa.concat_tables([rows, schemas.to_arrow(table, frame.loc[~bad])]).take(pa.array(order))
            positions = positions[order]
    if positions is None:
        positions = np.arange(rows.num_rows)
    # The rows are taken as every file's are (no failure left among them).
    _quarantine_rows(out, fast.Rows(rows, positions), Checks(pd.RangeIndex(0)), run_id)
    out.quarantined += left
    return out


def _quarantine_malformed(out: _Parsed, run_id: str) -> None:
    m = out.records.malformed
    if len(m):
        out.quarantined.append(
            quarantine.frame(
                out.ctx,
                m["row_number"].to_numpy(),
                m["reason"].to_numpy(),
                "record " + m["detail"].astype(str),
                m["raw"].tolist(),
                run_id,
            )
        )


def _failed_rows(ctx, records, checks: Checks, run_id: str) -> list[pd.DataFrame]:
    """The quarantine rows of the records that failed their checks (none: an empty list)."""
    bad = checks.bad.to_numpy()
    if not bad.any():
        return []
    pos = np.flatnonzero(bad)
    detail = checks.detail[bad].to_numpy()
    return [quarantine.frame(ctx, records.row_numbers[pos], checks.reason[bad].to_numpy(), detail, records.raw_text(pos), run_id)]


def _quarantine_rows(out: _Parsed, frame: pd.DataFrame, checks: Checks, run_id: str) -> None:
    bad = checks.bad.to_numpy()
    _quarantine_malformed(out, run_id)
    out.quarantined += _failed_rows(out.ctx, out.records, checks, run_id)
    out.accepted = frame.loc[~bad] if bad.any() else frame


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
    order in which deliveries are ingested. Sets each file's ``accepted_rows`` (its rows in the
    returned frame, before collapsing) and ``collapsed_rows`` from the rows themselves.
    """
    table = schemas.table(source)
    for p in parsed:
        p.result.accepted_rows = p.result.collapsed_rows = 0
    parts = [
        (i, p.accepted) for i, p in enumerate(parsed) if p.accepted is not None and len(p.accepted)
    ]
    if not parts:
        collapsed[source] = 0
        return schemas.empty_frame(table)
    file_idx = np.concatenate([np.full(len(a), i) for i, a in parts])
    pos = np.concatenate([_positions(parsed[i]) for i, _ in parts])
    if not any(isinstance(a, fast.Rows) for _, a in parts):
        frame = schemas.conform(table, pd.concat([a for _, a in parts], ignore_index=True))
    else:
        # Files of the fast path come typed; the others are typed the same way (``to_arrow``).
        data = pa.concat_tables(
            [a.table if isinstance(a, fast.Rows) else schemas.to_arrow(table, a) for _, a in parts]
        )
        if source not in KEYED and _hashable(table):
            dup = _arrow_duplicates(data, table)
            _count_rows(parsed, file_idx, dup, source, collapsed)
            return data.filter(pa.array(~dup)) if dup.any() else data
        frame = data.to_pandas()  # what schemas.conform gives

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
        file_idx = file_idx[~conflict]
    dup = _exact_duplicates(frame, table) if source in COLLAPSED else np.zeros(len(frame), dtype=bool)
    _count_rows(parsed, file_idx, dup, source, collapsed)
    return frame.loc[~dup].reset_index(drop=True)


def _positions(p: _Parsed) -> np.ndarray:
    """The record positions of a file's accepted rows (indices into its row numbers)."""
    if isinstance(p.accepted, fast.Rows):
        return p.accepted.positions
    return p.accepted["_pos"].to_numpy()


def _count_rows(
    parsed: list[_Parsed], file_idx: np.ndarray, dup: np.ndarray, source: str, collapsed: dict[str, int]
) -> None:
    """Each file's accepted rows (in the partition, before collapsing) and collapsed rows."""
    accepted = np.bincount(file_idx, minlength=len(parsed))
    folded = np.bincount(file_idx[dup], minlength=len(parsed))
    for i, p in enumerate(parsed):
        p.result.accepted_rows, p.result.collapsed_rows = int(accepted[i]), int(folded[i])
    collapsed[source] = int(dup.sum())


def _hashable(table: schemas.Table) -> bool:
    """Tables whose rows ``_arrow_duplicates`` compares: no float column (pandas and Arrow
    may disagree on what equal floats are: -0.0, NaN)."""
    return table.name in COLLAPSED and all(c.type in ("str", "int64", "ts", "date") for c in table.columns)


def _arrow_duplicates(data: pa.Table, table: schemas.Table) -> np.ndarray:
    """``_exact_duplicates`` of a typed Arrow table: rows equal in every column but dt to an
    earlier row. Candidates are the rows whose key repeats: times, integers and the last bytes of
    text columns with many values (ids; equal rows are equal in any of them), hashed together;
    only those are compared in full, as ``_exact_duplicates`` compares them."""
    h = np.zeros(data.num_rows, dtype=np.uint64)
    for name in _content_columns(table):
        col = data.column(name)
        if pa.types.is_string(col.type):
            if table.column(name).enum is None and name != "platform":
                h = _mix(h, _text_key(col))
        elif not pa.types.is_int64(col.type) or not col.null_count:
            ints = col.cast(pa.int64()) if not pa.types.is_int64(col.type) else col
            h = _mix(h, ints.to_numpy().astype(np.int64).view(np.uint64))
    candidates = pd.Series(h.view(np.int64)).duplicated(keep=False).to_numpy()
    dup = np.zeros(data.num_rows, dtype=bool)
    if candidates.any():
        rows = data.filter(pa.array(candidates)).to_pandas()
        dup[candidates] = rows.duplicated(subset=_content_columns(table)).to_numpy()
    return dup


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray, values: np.ndarray) -> np.ndarray:
    h = (h ^ values) * _MIX
    return h ^ (h >> np.uint64(29))


def _text_key(col: pa.ChunkedArray) -> np.ndarray:
    """Per value of a string column: its last 8 bytes (fewer when it is shorter; null as empty)
    as an integer. Equal values give equal keys."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    raw = np.concatenate([np.zeros(8, dtype=np.uint8), raw])  # every value has 8 bytes before its end
    words = np.ndarray((len(raw) - 7,), dtype="<u8", buffer=raw, strides=(1,))
    end = offsets[1:]
    tail = words[end]  # the 8 bytes before the value's end (little endian: its last byte is the top)
    size = end - offsets[:-1]
    if size.min(initial=8) < 8:
        keep = np.minimum(size, 8).astype(np.uint64) * np.uint64(8)
        shift = np.uint64(64) - np.maximum(keep, np.uint64(8))
        tail = np.where(keep == 0, np.uint64(0), tail >> shift)
    return tail


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
