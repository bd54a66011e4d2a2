"""Every note format the ingestion knows, and detection of a file's format from its content.

Adding an exporter or a platform: one module declaring its ``NoteFormat`` values, one line here.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import mediacrawler, spider_xhs, xhs_downloader
from .base import NoteFormat

REGISTRY: tuple[NoteFormat, ...] = (
    *mediacrawler.FORMATS,
    *spider_xhs.FORMATS,
    *xhs_downloader.FORMATS,
)


def detect(columns: Iterable[str]) -> list[NoteFormat]:
    """The formats whose signature the columns carry, most specific signature first."""
    cols = set(columns)
    found = [f for f in REGISTRY if f.detects(cols)]
    return sorted(found, key=lambda f: -len(f.signature))


def sqlite_table_formats(tables: Iterable[str]) -> list[tuple[str, NoteFormat]]:
    """(table, format) for every known note table in a database store."""
    names = set(tables)
    return [(t, f) for f in REGISTRY for t in f.sqlite_tables if t in names]
