"""What every note exporter adapter declares, and the one mapping of its records to ``schemas.NOTES``.

An exporter family module declares ``NoteFormat`` values (field names as the tool writes them);
``to_notes`` does the rest the same way for all of them: creator hashes, topic markup, tag lists,
counts, note types, SPEC 2 timestamps, and the checks derived from ``schemas.NOTES``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ... import schemas
from ..counts import parse_counts
from ..files import RawRecords
from ..quarantine import Checks, FileContext
from ..validate import as_text, bound_text, column, nested, platform_agrees

#: Xiaohongshu's inline topic markup: ``#露营[话题]#``.
TOPIC_MARKUP = re.compile(r"#([^#\[\]\r\n]{1,100})\[话题\]#")
HASH16 = r"[0-9a-f]{16}"
COUNT_COLUMNS = ("likes", "collects", "comments", "shares")

#: Columns that hold the raw platform user id under another name in derived exports.
AUTHOR_RENAMED: tuple[str, ...] = ("author_id",)
#: The note type of a type code no exporter table lists yet (the note is kept, SPEC 3).
UNKNOWN_TYPE = "unknown"

#: Type values shared by exporters; a format adds its own codes in ``type_map``.
COMMON_TYPES: dict[str, str] = {
    "normal": "image",
    "image": "image",
    "images": "image",
    "图文": "image",
    "图集": "image",
    "video": "video",
    "视频": "video",
    "未知": UNKNOWN_TYPE,
}


@dataclass(frozen=True)
class NoteFormat:
    """One exporter's note record layout for one platform (field names as the tool writes them)."""

    name: str
    platform: str
    note_id: str
    published: str
    signature: frozenset[str]
    author_raw: str | None = None
    author_hash: str | None = None
    title: str | None = None
    text: str | None = None
    tags: str | None = None
    tag_style: str = "comma"  # comma | space | list
    counts: Mapping[str, str] = field(default_factory=dict)
    note_type: str | None = None
    type_map: Mapping[str, str] = field(default_factory=dict)
    type_default: str | None = None
    untitled: tuple[str, ...] = ()
    sqlite_tables: tuple[str, ...] = ()
    #: The note's URL, whose last path segment (less ``url_id_prefix``) is its id: early exports
    #: have no id column, only the URL.
    url: str | None = None
    url_id_prefix: str = ""

    def detects(self, columns: Iterable[str]) -> bool:
        """Whether records with these columns are this format (extra columns are fine)."""
        cols = set(columns)
        authored = bool({self.author_raw, self.author_hash, *AUTHOR_RENAMED} & cols)
        identified = self.note_id in cols or (self.url is not None and self.url in cols)
        return self.signature - {self.note_id} <= cols and identified and authored

    def label(self, columns: Iterable[str], container: str) -> str:
        """The ingest_files ``format`` value, e.g. ``mediacrawler_xhs_v2026_jsonl_utf8``."""
        cols = set(columns)
        schema = "_v2026" if self.author_hash and self.author_hash in cols else ""
        return f"{self.name}{schema}_{container}"


def creator_hash(user_ids: pd.Series) -> pd.Series:
    """First 16 hex of sha256 of each platform user id (MediaCrawler's ``creator_hash``)."""
    text = as_text(user_ids)
    uniq = text.dropna().unique()
    table = {u: hashlib.sha256(u.encode("utf-8")).hexdigest()[:16] for u in uniq}
    return text.map(table)


def split_tags(values: pd.Series, style: str) -> pd.Series:
    """The exporter's tag field as lists of names (JSON-quoted strings from database stores too)."""
    s = pd.Series(values, copy=False)
    # Notes are dimension data (thousands a day): a per-record tag split is fine here.
    return s.map(lambda v: _tag_list(v, style))


def _tag_list(v: object, style: str) -> list[str]:
    """One record's tag field as a list of names (``split_tags``)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        items = [str(x) for x in v if x is not None]
    elif v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    else:
        text = str(v).strip()
        if text[:1] in ('"', "["):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError:
                decoded = text
            if isinstance(decoded, list):
                return _clean([str(x) for x in decoded])
            text = str(decoded)
        items = text.split() if style == "space" else re.split(r"[,，]", text)
    return _clean(items)


def _clean(tags: list[str]) -> list[str]:
    out = (re.sub(r"^#|\[话题\]#?$|#$", "", t.strip()).strip() for t in tags)
    return [t for t in out if t]


#: One note file to map: its records, its exporter's format, where it comes from.
NoteFile = tuple[RawRecords, NoteFormat, FileContext]

#: A fraction of a second finer than microseconds: pandas parses a whole column of text
#: timestamps at nanosecond resolution (a narrower range of years) when one value has it.
_SUB_MICROSECOND = re.compile(r"[.,]\d{7}")


def to_notes(records: RawRecords, fmt: NoteFormat, ctx: FileContext) -> tuple[pd.DataFrame, Checks]:
    """Map one file's records to ``schemas.NOTES`` rows (+ ``_pos``), with the failures flagged."""
    return to_notes_many([(records, fmt, ctx)])[0]


def to_notes_many(files: Sequence[NoteFile]) -> list[tuple[pd.DataFrame, Checks]]:
    """``to_notes`` of many files: for each file, its rows (+ ``_pos``) and its checks (rows
    in the file's order; the index is not reset).

    A delivery day brings dozens of note files of a few records each, from several exporters and
    platforms, and each pandas step costs far more than their rows. So the files whose columns
    hold plain Python values (JSON, JSONL and CSV files) are mapped together, one pass per step
    over all their rows, each row keeping its file's format, platform and provenance. Every step
    works value by value (where pandas judges a column as a whole, as in ``nested``, each file's
    part is judged alone), so each file gets what it gets mapped alone. Mapped alone are: typed
    files (Parquet, SQLite: their column types decide how values are read); a set pandas would
    treat otherwise together than alone (text timestamps with a fraction finer than microseconds
    parse at another resolution; a file whose URLs are all missing fails); and a set that fails
    (so an error is the one its file raises alone).
    """
    out: list[tuple[pd.DataFrame, Checks] | None] = [None] * len(files)
    together: dict[object, list[int]] = {}
    for i, (records, _, ctx) in enumerate(files):
        frame = records.frame
        if frame.columns.is_unique and all(map(pd.api.types.is_object_dtype, frame.dtypes)):
            together.setdefault(ctx.day, []).append(i)
    for group in together.values():
        if len(group) < 2:
            continue
        try:
            mapped = _map_files([files[i] for i in group])
        except Exception:  # noqa: BLE001 - mapped file by file below, failing as a file alone does
            mapped = None
        if mapped is not None:
            for i, m in zip(group, mapped, strict=True):
                out[i] = m
    return [m if m is not None else _map_files([files[i]])[0] for i, m in enumerate(out)]


class _Batch:
    """Note files mapped together: their raw records, formats, and which rows each holds."""

    def __init__(self, files: Sequence[NoteFile]) -> None:
        self.raws = [records.frame.reset_index(drop=True) for records, _, _ in files]
        self.cols = [set(raw.columns) for raw in self.raws]
        self.fmts = [fmt for _, fmt, _ in files]
        self.ctxs = [ctx for _, _, ctx in files]
        self.sizes = np.array([len(raw) for raw in self.raws], dtype="int64")
        self.single = len(files) == 1
        self.index = self.raws[0].index if self.single else pd.RangeIndex(int(self.sizes.sum()))
        #: The rows of each file, for checks that look at a file's column as a whole (``nested``).
        self.parts = None if self.single else self.sizes.tolist()
        # Several files: each one's values as one array (their columns all hold Python objects).
        self.arrays = [] if self.single else [raw.to_numpy(dtype=object) for raw in self.raws]
        self.positions = [{c: j for j, c in enumerate(raw.columns)} for raw in self.raws]
        # The distinct formats, by identity (a format holds dicts: it does not hash).
        self.formats: list[NoteFormat] = []
        numbers = []
        for fmt in self.fmts:
            k = next((k for k, f in enumerate(self.formats) if f is fmt), len(self.formats))
            if k == len(self.formats):
                self.formats.append(fmt)
            numbers.append(k)
        self.row_format = np.repeat(np.asarray(numbers, dtype="int64"), self.sizes)

    def values(
        self, column_of: Callable[[int], str | None], required: Callable[[int], bool] | None = None
    ) -> pd.Series:
        """One field of all rows: file i's column ``column_of(i)``; None for a file without it
        (a KeyError where ``required(i)``, as reading it from the file's frame raises)."""
        names = [column_of(i) for i in range(len(self.raws))]
        needed = [bool(required and required(i)) for i in range(len(self.raws))]
        if self.single:
            name = names[0]
            if needed[0] or (name is not None and name in self.cols[0]):
                return self.raws[0][name]
            return pd.Series(None, index=self.index, dtype=object)
        parts = []
        for i, name in enumerate(names):
            if name is not None and name in self.cols[i]:
                parts.append(self.arrays[i][:, self.positions[i][name]])
            elif needed[i]:
                raise KeyError(name)
            else:
                parts.append(np.full(self.sizes[i], None, dtype=object))
        return pd.Series(np.concatenate(parts), index=self.index, dtype=object)

    def field(self, name_of: Callable[[NoteFormat], str | None]) -> pd.Series:
        """The column each file's format names (``name_of(format)``); None where a file lacks it."""
        return self.values(lambda i: name_of(self.fmts[i]) or None)

    def all_of_a_file(self, which: Sequence[bool], rows: np.ndarray) -> bool:
        """Whether ``rows`` holds for every row of some file (with rows) where ``which`` holds."""
        ends = np.cumsum(self.sizes)
        for pick, a, z in zip(which, ends - self.sizes, ends, strict=True):
            if pick and z > a and rows[a:z].all():
                return True
        return False

    def of_files(self, which: Sequence[bool]) -> np.ndarray:
        """The rows of the files where ``which`` holds."""
        return np.repeat(np.asarray(which, dtype=bool), self.sizes)

    def flag(
        self,
        checks: Checks,
        mask: pd.Series,
        reason: str,
        detail_of: Callable[[NoteFormat], str],
        shown: pd.Series | None = None,
        suffix: str = "",
    ) -> None:
        """``checks.flag`` with a detail naming each row's format's field (``detail_of(format)``)."""
        if len(self.formats) == 1:
            checks.flag(mask, reason, detail_of(self.formats[0]), shown=shown, suffix=suffix)
            return
        mask = pd.Series(mask, index=self.index).fillna(False).astype(bool).to_numpy()
        if not mask.any():
            return
        by_detail: dict[str, list[int]] = {}
        for k, fmt in enumerate(self.formats):
            by_detail.setdefault(detail_of(fmt), []).append(k)
        for detail, ks in by_detail.items():
            mine = mask & np.isin(self.row_format, ks)
            checks.flag(mine, reason, detail, shown=shown, suffix=suffix)


def _map_files(files: Sequence[NoteFile]) -> list[tuple[pd.DataFrame, Checks]] | None:
    """What ``to_notes`` gives for each of ``files``, mapped together (one file: on its own).

    None when several files cannot be mapped together with each file's own result (never for
    one file).
    """
    t = schemas.NOTES
    b = _Batch(files)
    checks = Checks(b.index)
    day = b.ctxs[0].day

    published_raw = b.values(lambda i: b.fmts[i].published, required=lambda i: True)
    if not b.single and published_raw.map(
        lambda v: v is not None and _SUB_MICROSECOND.search(str(v)) is not None
    ).any():
        return None

    # The note id: its column, else the last segment of the note's URL (early exports).
    by_url = [fmt.note_id not in cols for fmt, cols in zip(b.fmts, b.cols, strict=True)]
    direct = b.values(lambda i: None if by_url[i] else b.fmts[i].note_id)
    if any(by_url):
        urls = b.values(lambda i: b.fmts[i].url if by_url[i] else None, required=by_url.__getitem__)
        if not b.single and b.all_of_a_file(by_url, as_text(urls).isna().to_numpy()):
            return None  # pandas fails on the URLs of a file that are all missing (id_from_url)
        from_url = None
        for prefix in dict.fromkeys(f.url_id_prefix for f, u in zip(b.fmts, by_url, strict=True) if u):
            ids = id_from_url(urls, prefix)
            mine = [u and f.url_id_prefix == prefix for f, u in zip(b.fmts, by_url, strict=True)]
            from_url = ids if from_url is None else from_url.where(~b.of_files(mine), ids)
        direct = from_url if all(by_url) else direct.where(~b.of_files(by_url), from_url)
    note_id = column(direct, t.column("note_id"), checks, parts=b.parts)

    hashed = as_text(b.field(lambda f: f.author_hash)).str.lower()
    renamed = [next((c for c in AUTHOR_RENAMED if c in cols), None) for cols in b.cols]
    by_renamed = [
        bool(r) and fmt.author_raw not in cols
        for r, fmt, cols in zip(renamed, b.fmts, b.cols, strict=True)
    ]
    if any(by_renamed):
        # A derived export's author_id: a 16-hex value is already a creator_hash, else a raw id.
        value = as_text(b.values(lambda i: renamed[i] if by_renamed[i] else None))
        is_hash = value.str.fullmatch(HASH16).fillna(False).astype(bool)
        if all(by_renamed):
            hashed = hashed.where(hashed.notna() & hashed.ne(""), value.where(is_hash))
            raw_ids = value.where(~is_hash)
        else:
            mine = b.of_files(by_renamed)
            hashed = hashed.where(~mine | (hashed.notna() & hashed.ne("")), value.where(is_hash))
            raw_ids = b.field(lambda f: f.author_raw).where(~mine, value.where(~is_hash))
    else:
        raw_ids = b.field(lambda f: f.author_raw)
    has_hash = hashed.notna() & hashed.ne("")
    author = hashed.where(has_hash, creator_hash(raw_ids))
    author = author.where(author.ne(""), None)
    checks.flag(
        author.isna(),
        "missing_required",
        "required field author (user_id or creator_hash) is empty",
    )
    checks.flag(
        has_hash & ~hashed.str.fullmatch(HASH16).fillna(False).astype(bool),
        "bad_type",
        "creator_hash",
        shown=hashed,
        suffix=" is not 16 lowercase hex characters",
    )

    published = column(published_raw, t.column("published_at"), checks, day=day, parts=b.parts)

    fields = {name: b.field(lambda f, name=name: f.counts.get(name)) for name in COUNT_COLUMNS}
    counts = {}
    for name, (value, reason) in _parse_count_fields(fields, b.index).items():
        shown = fields[name]
        limit = t.column(name).max
        for code, suffix in (
            ("bad_count", f" ({name}) is not a count"),
            ("negative_count", f" ({name}) is negative"),
            ("out_of_range", f" ({name}) must be <= {bound_text(limit)}"),
        ):
            b.flag(
                checks,
                reason.eq(code),
                code,
                lambda f, name=name: str(f.counts.get(name)),
                shown=shown,
                suffix=suffix,
            )
        counts[name] = value

    note_type = _note_type(b.field(lambda f: f.note_type), b, checks)
    has_platform = ["platform" in cols for cols in b.cols]
    if any(has_platform):
        platforms = b.values(lambda i: "platform" if has_platform[i] else None)
        folders = [ctx.platform for ctx in b.ctxs]
        for folder in dict.fromkeys(p for p, h in zip(folders, has_platform, strict=True) if h):
            mine = [h and p == folder for p, h in zip(folders, has_platform, strict=True)]
            values = platforms if all(mine) else platforms.where(b.of_files(mine))
            platform_agrees(values, folder, checks)

    for name_of in (lambda f: f.title, lambda f: f.text):
        b.flag(
            checks,
            nested(b.field(name_of), b.parts),
            "bad_type",
            lambda f, name_of=name_of: f"field {name_of(f)!r} holds a JSON object or array, not text",
        )
    title = as_text(b.field(lambda f: f.title)).fillna("")
    if len(b.formats) == 1:
        title = title.where(~title.isin(b.formats[0].untitled), "")
    else:
        for k, fmt in enumerate(b.formats):
            if fmt.untitled:
                title = title.where(~(title.isin(fmt.untitled) & (b.row_format == k)), "")
    text = as_text(b.field(lambda f: f.text)).fillna("")
    topics = title.str.findall(TOPIC_MARKUP) + text.str.findall(TOPIC_MARKUP)
    tag_field = b.field(lambda f: f.tags)
    styles = [fmt.tag_style for fmt in b.fmts]
    if len(set(styles)) == 1:
        exporter_tags = split_tags(tag_field, styles[0])
    else:
        row_styles = np.repeat(np.asarray(styles, dtype=object), b.sizes)
        exporter_tags = pd.Series(
            [_tag_list(v, s) for v, s in zip(tag_field.tolist(), row_styles, strict=True)],
            index=b.index,
            dtype=object,
        )
    tags = (exporter_tags + topics).map(lambda ts: list(dict.fromkeys(_clean(ts))))

    def per_file(values: list) -> object:
        return values[0] if b.single else np.repeat(np.asarray(values, dtype=object), b.sizes)

    out = pd.DataFrame(
        {
            "platform": per_file([ctx.platform for ctx in b.ctxs]),
            "note_id": note_id,
            "author_id": author,
            "published_at": published,
            "title": _strip_markup(title),
            "text": _strip_markup(text),
            "tags": tags,
            **counts,
            "note_type": note_type,
            "source_file": per_file([ctx.source_file for ctx in b.ctxs]),
            "source_row": np.concatenate([records.row_numbers for records, _, _ in files]),
            "dt": day,
            "_pos": np.concatenate([np.arange(len(raw)) for raw in b.raws]),
        }
    )
    if b.single:
        return [(out, checks)]
    ends = np.cumsum(b.sizes)
    return [(out.iloc[a:z], checks.part(a, z)) for a, z in zip(ends - b.sizes, ends, strict=True)]


def _parse_count_fields(
    fields: dict[str, pd.Series], index: pd.Index
) -> dict[str, tuple[pd.Series, pd.Series]]:
    """``parse_counts`` of each count field: in one pass over all of them when they all hold
    Python values (it works value by value); typed columns each on their own."""
    if not len(index) or not all(pd.api.types.is_object_dtype(s.dtype) for s in fields.values()):
        return {name: parse_counts(s) for name, s in fields.items()}
    value, reason = parse_counts(pd.concat(list(fields.values()), ignore_index=True))
    n = len(index)
    values, reasons = value.to_numpy(), reason.to_numpy()
    return {
        name: (
            pd.Series(values[k * n : (k + 1) * n], index=index),
            pd.Series(reasons[k * n : (k + 1) * n], index=index, dtype=object),
        )
        for k, name in enumerate(fields)
    }


def id_from_url(urls: pd.Series, prefix: str = "") -> pd.Series:
    """The last path segment of each URL (query and fragment dropped), less ``prefix``."""
    path = as_text(urls).str.replace(r"[?#].*$", "", regex=True).str.rstrip("/")
    if not path.notna().any():
        return path  # all missing (pandas cannot take a segment of no string at all)
    last = path.str.rsplit("/", n=1).str[-1]
    if prefix:
        last = last.str.removeprefix(prefix)
    return last.where(last.ne(""))


def _strip_markup(text: pd.Series) -> pd.Series:
    """Remove topic markup; the spaces that only separated topics go with it."""
    spaced = r"[ \t\u3000]*" + TOPIC_MARKUP.pattern
    return text.str.replace(spaced, "", regex=True).str.strip()


def _note_type(values: pd.Series, b: _Batch, checks: Checks) -> pd.Series:
    """image / video from the exporter's type field; a code no table lists yet is ``unknown``
    (platforms add codes: the note is still worth keeping). A missing type is quarantined
    unless the format has a default."""
    text = as_text(values).str.lower()
    empty = text.isna() | text.eq("")
    mapped = None
    for k, fmt in enumerate(b.formats):
        mapping = {**COMMON_TYPES, **{c.lower(): v for c, v in fmt.type_map.items()}}
        mine = text.map(mapping)
        if fmt.type_default is not None:
            mine = mine.where(~empty, fmt.type_default)
        mapped = mine if mapped is None else mapped.where(b.row_format != k, mine)
    mapped = mapped.where(mapped.notna() | empty, UNKNOWN_TYPE)
    b.flag(
        checks,
        mapped.isna(),
        "missing_required",
        lambda f: f"required field {f.note_type or 'note type'!r} is empty",
    )
    return mapped
