"""The landing zone as a boundary: what ingestion may list and open, and how.

Nothing outside the landing folder is read. Folders are listed without following links, and
only regular files are opened. A symbolic link (to a file or a folder, pointing inside or outside)
and anything that is not a regular file or a folder (a FIFO, a socket, a device) is refused
unopened: ingestion records it as one quarantine row with its reason and no content, and the
arrival fingerprint (``arrival.files_fingerprint``) counts it by name only. Files are opened with
``O_NOFOLLOW`` after every folder on the way was checked not to be a link, so a file swapped for a
link after the listing is refused too.

Files and folders whose name starts with ``.`` or ``_`` are skipped (hidden or bookkeeping).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .files import UnreadableFile

SYMLINK = "symlink"
NOT_A_FILE = "not_a_file"


@dataclass(frozen=True)
class Entry:
    """One thing to ingest: a regular file, or a refused entry (``refused`` = its reason code)."""

    root: Path
    rel: str  # POSIX path relative to the landing root
    refused: str | None = None
    detail: str = ""

    @property
    def path(self) -> Path:
        return self.root / self.rel

    @property
    def parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.rel).parts


class Refused(UnreadableFile):
    """A landing path that must not be opened (a link, or not a regular file)."""


def skipped(name: str) -> bool:
    """Hidden and bookkeeping names (``.x``, ``_x``) are not landing data."""
    return name[:1] in "._"


def _refusal(root: Path, path: Path, st: os.stat_result) -> tuple[str, str]:
    if stat.S_ISLNK(st.st_mode):
        inside = _inside(root, Path(os.path.realpath(path)))
        where = "inside" if inside else "outside"
        return SYMLINK, (
            f"is a symbolic link (pointing {where} the landing zone); links are never followed, "
            "so it was not opened"
        )
    return NOT_A_FILE, "is not a regular file (a FIFO, socket or device); it was not opened"


def _inside(root: Path, path: Path) -> bool:
    try:
        path.relative_to(Path(os.path.realpath(root)))
    except ValueError:
        return False
    return True


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def folder_entries(root: Path, rel: str) -> list[Entry]:
    """Every file under folder ``rel`` of the landing zone (recursively, in path order), and the
    refused entries met on the way. A folder of ``rel`` itself that is a link is one refused entry;
    a missing folder (or one that is a file) gives nothing."""
    root = Path(root)
    parts = PurePosixPath(rel).parts
    current = root
    for i, part in enumerate(parts):
        current = current / part
        st = _lstat(current)
        if st is None:
            return []
        if not stat.S_ISDIR(st.st_mode):
            if stat.S_ISLNK(st.st_mode):
                reason, detail = _refusal(root, current, st)
                return [Entry(root, "/".join(parts[: i + 1]), reason, detail)]
            return []
    out: list[Entry] = []
    _walk(root, current, "/".join(parts), out)
    return sorted(out, key=lambda e: e.parts)


def _walk(root: Path, folder: Path, rel: str, out: list[Entry]) -> None:
    with os.scandir(folder) as it:
        found = sorted(it, key=lambda e: e.name)
    for e in found:
        if skipped(e.name):
            continue
        child = f"{rel}/{e.name}" if rel else e.name
        st = e.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            _walk(root, Path(e.path), child, out)
        elif stat.S_ISREG(st.st_mode):
            out.append(Entry(root, child))
        else:
            reason, detail = _refusal(root, Path(e.path), st)
            out.append(Entry(root, child, reason, detail))


def subfolders(root: Path, rel: str) -> tuple[list[str], list[Entry]]:
    """The visible folders directly in ``rel`` (names, sorted) and its refused entries (links).

    Files directly in ``rel`` are neither: a caller lists the folders it descends into.
    """
    root = Path(root)
    folder = root / rel
    st = _lstat(folder)
    if st is None:
        return [], []
    if stat.S_ISLNK(st.st_mode):
        reason, detail = _refusal(root, folder, st)
        return [], [Entry(root, rel, reason, detail)]
    if not stat.S_ISDIR(st.st_mode):
        return [], []
    names, refused = [], []
    with os.scandir(folder) as it:
        found = sorted(it, key=lambda e: e.name)
    for e in found:
        if skipped(e.name):
            continue
        st = e.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            names.append(e.name)
        elif stat.S_ISLNK(st.st_mode):
            reason, detail = _refusal(root, Path(e.path), st)
            refused.append(Entry(root, f"{rel}/{e.name}", reason, detail))
    return names, refused


def read_bytes(entry: Entry) -> bytes:
    """The content of a regular landing file; raises ``Refused`` rather than follow a link.

    Every folder from the landing root down is checked not to be a link, and the file itself is
    opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO put there does not hang the run),
    then checked to be a regular file before a byte is read.
    """
    if entry.refused:
        raise Refused(entry.refused, entry.detail)
    current = entry.root
    for part in entry.parts[:-1]:
        current = current / part
        st = _lstat(current)
        if st is None or not stat.S_ISDIR(st.st_mode):
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise Refused(SYMLINK, f"folder {part!r} on its path became a symbolic link; it was not opened")
            raise FileNotFoundError(f"{entry.rel}: folder {part!r} on its path is gone")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(entry.path, flags)
    except OSError as e:
        st = _lstat(entry.path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise Refused(*_refusal(entry.root, entry.path, st)) from e
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(NOT_A_FILE, "is not a regular file (a FIFO, socket or device); it was not read")
        # One read of the whole file (its size as stat saw it, +1 to see the end) is usually all.
        chunks = []
        size = st.st_size + 1
        while chunk := os.read(fd, max(size, 1 << 16)):
            chunks.append(chunk)
            size = 1 << 24
        return b"".join(chunks)
    finally:
        os.close(fd)


def file_size(entry: Entry) -> int | None:
    """Size in bytes of a regular landing file (None for a refused entry: it is not looked into)."""
    if entry.refused:
        return None
    st = _lstat(entry.path)
    return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None
