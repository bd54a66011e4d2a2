"""What every note exporter adapter declares, and the one mapping of its records to ``schemas.NOTES``.

An exporter family module declares ``NoteFormat`` values (field names as the tool writes them);
``to_notes`` does the rest the same way for all of them: creator hashes, topic markup, tag lists,
counts, note types, SPEC 2 timestamps, and the checks derived from ``schemas.NOTES``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
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

    def one(v: object) -> list[str]:
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

    # Notes are dimension data (thousands a day): a per-record tag split is fine here.
    return s.map(one)


def _clean(tags: list[str]) -> list[str]:
    out = (re.sub(r"^#|\[话题\]#?$|#$", "", t.strip()).strip() for t in tags)
    return [t for t in out if t]


def to_notes(records: RawRecords, fmt: NoteFormat, ctx: FileContext) -> tuple[pd.DataFrame, Checks]:
    """Map one file's records to ``schemas.NOTES`` rows (+ ``_pos``), with the failures flagged."""
    raw = records.frame.reset_index(drop=True)
    cols = set(raw.columns)
    checks = Checks(raw.index)
    t = schemas.NOTES

    def field_or_empty(name: str | None) -> pd.Series:
        return (
            raw[name] if name and name in cols else pd.Series(None, index=raw.index, dtype=object)
        )

    ids = raw[fmt.note_id] if fmt.note_id in cols else id_from_url(raw[fmt.url], fmt.url_id_prefix)
    note_id = column(ids, t.column("note_id"), checks)

    hashed = as_text(field_or_empty(fmt.author_hash)).str.lower()
    renamed = next((c for c in AUTHOR_RENAMED if c in cols), None)
    if renamed and fmt.author_raw not in cols:
        # A derived export's author_id: a 16-hex value is already a creator_hash, else a raw id.
        value = as_text(raw[renamed])
        is_hash = value.str.fullmatch(HASH16).fillna(False).astype(bool)
        hashed = hashed.where(hashed.notna() & hashed.ne(""), value.where(is_hash))
        raw_ids = value.where(~is_hash)
    else:
        raw_ids = field_or_empty(fmt.author_raw)
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

    published = column(raw[fmt.published], t.column("published_at"), checks, day=ctx.day)

    counts = {}
    for name in COUNT_COLUMNS:
        source = fmt.counts.get(name)
        value, reason = parse_counts(field_or_empty(source))
        shown = field_or_empty(source)
        checks.flag(
            reason.eq("bad_count"),
            "bad_count",
            str(source),
            shown=shown,
            suffix=f" ({name}) is not a count",
        )
        checks.flag(
            reason.eq("negative_count"),
            "negative_count",
            str(source),
            shown=shown,
            suffix=f" ({name}) is negative",
        )
        limit = t.column(name).max
        checks.flag(
            reason.eq("out_of_range"),
            "out_of_range",
            str(source),
            shown=shown,
            suffix=f" ({name}) must be <= {bound_text(limit)}",
        )
        counts[name] = value

    note_type = _note_type(field_or_empty(fmt.note_type), fmt, checks)
    if "platform" in cols:
        platform_agrees(raw["platform"], ctx.platform, checks)

    for source in (fmt.title, fmt.text):
        checks.flag(
            nested(field_or_empty(source)),
            "bad_type",
            f"field {source!r} holds a JSON object or array, not text",
        )
    title = as_text(field_or_empty(fmt.title)).fillna("")
    title = title.where(~title.isin(fmt.untitled), "")
    text = as_text(field_or_empty(fmt.text)).fillna("")
    topics = title.str.findall(TOPIC_MARKUP) + text.str.findall(TOPIC_MARKUP)
    exporter_tags = split_tags(field_or_empty(fmt.tags), fmt.tag_style)
    tags = (exporter_tags + topics).map(lambda ts: list(dict.fromkeys(_clean(ts))))

    out = pd.DataFrame(
        {
            "platform": ctx.platform,
            "note_id": note_id,
            "author_id": author,
            "published_at": published,
            "title": _strip_markup(title),
            "text": _strip_markup(text),
            "tags": tags,
            **counts,
            "note_type": note_type,
            "source_file": ctx.source_file,
            "source_row": records.row_numbers,
            "dt": ctx.day,
            "_pos": np.arange(len(raw)),
        }
    )
    return out, checks


def id_from_url(urls: pd.Series, prefix: str = "") -> pd.Series:
    """The last path segment of each URL (query and fragment dropped), less ``prefix``."""
    path = as_text(urls).str.replace(r"[?#].*$", "", regex=True).str.rstrip("/")
    last = path.str.rsplit("/", n=1).str[-1]
    if prefix:
        last = last.str.removeprefix(prefix)
    return last.where(last.ne(""))


def _strip_markup(text: pd.Series) -> pd.Series:
    """Remove topic markup; the spaces that only separated topics go with it."""
    spaced = r"[ \t\u3000]*" + TOPIC_MARKUP.pattern
    return text.str.replace(spaced, "", regex=True).str.strip()


def _note_type(values: pd.Series, fmt: NoteFormat, checks: Checks) -> pd.Series:
    """image / video from the exporter's type field; a code no table lists yet is ``unknown``
    (platforms add codes: the note is still worth keeping). A missing type is quarantined
    unless the format has a default."""
    text = as_text(values).str.lower()
    mapping = {**COMMON_TYPES, **{k.lower(): v for k, v in fmt.type_map.items()}}
    mapped = text.map(mapping)
    empty = text.isna() | text.eq("")
    if fmt.type_default is not None:
        mapped = mapped.where(~empty, fmt.type_default)
    mapped = mapped.where(mapped.notna() | empty, UNKNOWN_TYPE)
    checks.flag(
        mapped.isna(),
        "missing_required",
        f"required field {fmt.note_type or 'note type'!r} is empty",
    )
    return mapped
