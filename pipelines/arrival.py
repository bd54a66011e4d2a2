"""Arrival (SPEC 5): what was delivered and ingested, what changed since the funnel was computed.

The lake keeps a small state file (``<lake>/_state.json``) beside its tables:

- ``deliveries``: every ingested delivery day and the fingerprint of its landing files, so a run
  ingests exactly the deliveries that are new or whose files changed (re-sent), whatever days were
  run before;
- ``pending``: the earliest day whose funnel figures the ingested-but-not-yet-computed changes
  may move, and the deliveries that caused it (``windows.affected_from`` decides the day); and the
  users whose boost snapshots they may move, each from its first day (``boost_users``): a run
  recomputes older snapshots for those users only (SCOPED);
- ``computed``: W, the first data day and the reference fingerprint of the last computation;
- ``unpublished``: marts days, logs and restatement records computed but not yet published (a
  blocked quality gate or a failed publish leaves them for the next run). A day of a SCOPED
  table restated for some users only is published for those users only: their ids are kept in
  ``<lake>/_unpublished/<table>/<day>.parquet`` (no such file: the whole day);
- ``generation``: bumped by every ingestion that changed the lake, so a computation that raced
  with one is refused rather than published.

Every read-modify-write of the state happens under the lake lock (``locked``): runs on one lake are
serial where they must be, and a run that has to wait says so.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import lake, schemas, windows
from .settings import PROJECT_ROOT, FunnelParams, ModelParams, Settings
from .timeutil import business_day

#: The lake folder of computed funnel tables (one partition per day), before publishing.
MARTS = "marts"
STATE_FILE = "_state.json"
LOCK_FILE = "_lock"
#: Input tables whose rows feed the funnel, in the order ingestion writes them.
SOURCES = ("notes", "exposures", "id_links", "searches", "orders")
#: Event tables: a delivery's rows are compared with that delivery's previous version.
EVENTS = ("exposures", "searches", "orders")
#: The event-time column of each event table (the one its rows' own day comes from).
EVENT_TIME = {"exposures": "event_time", "searches": "event_time", "orders": "paid_at"}
#: Inputs only the models of SPEC 5.11 read (source -> time column): a changed row restates the
#: snapshots from its own day (the funnel days from there are recomputed too, and do not change).
MODEL_INPUTS = {"spend": "spent_at"}
#: Dimensions: compared as resolved (SPEC 3), on what the funnel reads of them, so a re-delivered
#: note with fresher like counts, or a weekly batch naming the same links again, changes nothing.
DIMENSIONS: dict[str, tuple[list[str], list[str]]] = {
    "notes": (["platform", "note_id"], ["author_id", "title", "text", "tags"]),
    "id_links": (["platform", "ext_user_id"], ["user_id", "confidence"]),
}
#: Per-user tables restated per user: a late exposure, id link or note moves the boost snapshots of
#: the users it concerns only, so older days of brand_boost_signals are recomputed, stored, checked
#: and published for those users alone (table -> the column naming them).
SCOPED = schemas.RESTATED_BY_USER
SCOPE_DIR = "_unpublished"
#: Folders of text-matching code: a change of matching rules restates like a change of seeds.
MATCHING_CODE = ("pipelines/text",)

Say = Callable[[str], None]


class StaleRunError(RuntimeError):
    """The lake changed under a computation that did not hold the lock throughout."""


# ---------------------------------------------------------------- the lock

_held = threading.local()  # per thread: lock path -> depth (re-entrant within one thread)


@contextmanager
def locked(settings: Settings, say: Say | None = None, what: str = "run") -> Iterator[None]:
    """Hold the lake's lock (re-entrant within a thread); wait, saying so, while another run has it.

    An ``flock`` on ``<lake>/_lock``: other processes and other threads (each opens its own file
    description) wait for it. The holder's name is written into the file for the waiting message.
    """
    settings.lake.mkdir(parents=True, exist_ok=True)
    path = settings.lake / LOCK_FILE
    key = str(path.resolve())
    depth = getattr(_held, "depth", None)
    if depth is None:
        depth = _held.depth = {}
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
            (say or print)(f"waiting for the lake lock held by {holder} ({path})")
            t0 = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            (say or print)(f"got the lake lock after {time.monotonic() - t0:.1f} s")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the state


@dataclass
class Pending:
    """Changes ingested but not yet computed: the first day they may move, and their causes."""

    start: str | None = None
    causes: list[str] = field(default_factory=list)
    boost: dict[str, str] = field(default_factory=dict)  # user_id -> first as_of day it may move

    def add(self, day: date | None, cause: str) -> None:
        if day is None:
            return
        if self.start is None or day.isoformat() < self.start:
            self.start = day.isoformat()
        if cause not in self.causes:
            self.causes.append(cause)

    def add_users(self, first_day: pd.Series) -> None:
        """Users whose boost snapshots may move, from the given day (user_id -> date)."""
        for user, day in first_day.items():
            iso = day.isoformat()
            if self.boost.get(user, "9999") > iso:
                self.boost[user] = iso


@dataclass
class State:
    deliveries: dict[str, str] = field(default_factory=dict)
    items: str = ""
    pending: Pending = field(default_factory=Pending)
    computed: dict | None = None
    unpublished: dict[str, list[str]] = field(default_factory=dict)
    restatements: list[str] = field(default_factory=list)
    generation: int = 0
    runs: int = 0
    files: dict[str, list] = field(default_factory=dict)  # path -> [size, mtime_ns, sha256]

    @classmethod
    def load(cls, settings: Settings) -> State:
        path = settings.lake / STATE_FILE
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            pending = raw.get("pending", {})
            pending.pop("models", None)  # kept by 0.5.0, which restated a snapshot per as-of day
            raw["pending"] = Pending(**pending)
            return cls(**raw)
        except (ValueError, TypeError, AttributeError) as e:
            raise lake.damaged(path, e, settings.lake) from e

    def save(self, settings: Settings) -> None:
        path = settings.lake / STATE_FILE
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True), encoding="utf-8")
        with open(tmp, "rb") as fh:
            lake.fsync(fh.fileno())
        os.replace(tmp, path)

    def mark_scoped(self, lake_root: Path, table: str, day: date, keys: pa.Array) -> None:
        """A day of a SCOPED table restated for ``keys`` only (a whole unpublished day stays whole)."""
        path = scope_path(lake_root, table, day)
        if day.isoformat() in self.unpublished.get(table, []) and not path.exists():
            return
        if path.exists():
            keys = pc.unique(pa.chunked_array([read_scope(path), keys.cast(pa.large_string())]))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(pa.table({"key": keys.cast(pa.large_string())}), tmp)
        os.replace(tmp, path)
        self.mark_unpublished(table, [day])

    def published(self, lake_root: Path) -> None:
        """Everything unpublished was published."""
        self.unpublished = {}
        self.restatements = []
        shutil.rmtree(Path(lake_root) / SCOPE_DIR, ignore_errors=True)

    @property
    def latest_delivery(self) -> date | None:
        """W: the latest delivery day ingested."""
        return date.fromisoformat(max(self.deliveries)) if self.deliveries else None

    def mark_unpublished(self, table: str, days: list[date], lake_root: Path | None = None) -> None:
        """Whole days of ``table`` to publish (with ``lake_root``: any scope of those days is dropped)."""
        if lake_root is not None and table in SCOPED:
            for d in days:
                scope_path(lake_root, table, d).unlink(missing_ok=True)
        have = set(self.unpublished.get(table, []))
        self.unpublished[table] = sorted(have | {d.isoformat() for d in days})

    def unpublished_days(self, table: str) -> list[date]:
        return [date.fromisoformat(d) for d in self.unpublished.get(table, [])]


def scope_path(lake_root: Path, table: str, day: date) -> Path:
    return Path(lake_root) / SCOPE_DIR / table / f"{day.isoformat()}.parquet"


def read_scope(path: Path) -> pa.Array:
    return pq.read_table(path).column("key").combine_chunks()


def scopes(lake_root: Path, state: State, table: str) -> dict[date, pa.Array | None]:
    """Each unpublished day of ``table``: the keys restated (None: the whole day)."""
    out = {}
    for d in state.unpublished_days(table):
        path = scope_path(lake_root, table, d)
        out[d] = read_scope(path) if table in SCOPED and path.exists() else None
    return out


def unpublished_parts(lake_root: Path, state: State, table: str) -> Iterator[pa.Table]:
    """The rows a publish of ``table`` writes: the unpublished marts days in order (scoped days
    restricted to their keys), each in its stored row order, in batches of at most
    ``lake.BATCH_ROWS`` rows typed as the table's Arrow schema. A publish holds one batch, not a
    day: a boost day of a million users is some twenty million rows."""
    for d, keys in scopes(lake_root, state, table).items():
        for data in lake.iter_arrow(Path(lake_root) / MARTS, table, d):
            if keys is not None:
                data = data.filter(pc.is_in(data.column(SCOPED[table]).cast(pa.large_string()), value_set=keys))
            if data.num_rows:
                yield data


def read_unpublished(lake_root: Path, state: State, table: str) -> pd.DataFrame:
    """The rows a publish of ``table`` writes (``unpublished_parts``) as one frame."""
    t = schemas.table(table)
    parts = list(unpublished_parts(lake_root, state, table))
    if not parts:
        return schemas.empty_frame(t)
    return schemas.conform(t, pa.concat_tables(parts).to_pandas())


# ---------------------------------------------------------------- fingerprints


def _sha256(path: Path, follow_links: bool = True) -> str:
    h = hashlib.sha256()
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        if not follow_links and not stat.S_ISREG(os.fstat(fd).st_mode):
            return "refused:not_a_file"
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_fingerprint(
    files: list[Path], root: Path, cache: dict[str, list] | None = None, *, follow_links: bool = True
) -> str:
    """A hash of the files' names and contents (contents re-hashed only when size or mtime moved).

    ``follow_links=False`` (landing files, ``ingest.landing``): a link or anything but a regular
    file counts by its name and kind only; what it points to is never opened.
    """
    h = hashlib.sha256()
    for p in sorted(files):
        rel = str(p.relative_to(root))
        st = p.stat() if follow_links else os.lstat(p)
        if not stat.S_ISREG(st.st_mode) and not follow_links:
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "not_a_file"
            h.update(f"{rel}\0refused:{kind}\n".encode())
            continue
        hit = (cache or {}).get(rel)
        fresh = hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns
        digest = hit[2] if fresh else _sha256(p, follow_links)
        if cache is not None:
            cache[rel] = [st.st_size, st.st_mtime_ns, digest]
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()[:24]


def params_fingerprint(params: FunnelParams | ModelParams) -> str:
    values = asdict(params)
    if values.get("category_windows") == ():  # none set: the fingerprint of before they existed
        del values["category_windows"]
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def reference_fingerprint(settings: Settings) -> str:
    """Seeds (every file of the seeds folder) and the text-matching code."""
    seeds = Path(settings.seeds)
    files = [p for p in seeds.glob("*") if p.is_file() and not p.name.startswith(".")]
    code = [p for d in MATCHING_CODE for p in sorted((PROJECT_ROOT / d).glob("*.py"))]
    return files_fingerprint(files, seeds) + ":" + files_fingerprint(code, PROJECT_ROOT)


# ---------------------------------------------------------------- what a change affects


def _content_hashes(frame: pd.DataFrame, table: schemas.Table) -> np.ndarray:
    """One hash per row over every column but dt (list columns hashed as their text)."""
    cols = [c for c in table.names if c != "dt"]
    if frame.empty:
        return np.zeros(0, dtype="uint64")
    view = frame[cols]
    lists = [c for c in cols if table.column(c).type == "list<str>"]
    if lists:
        view = view.assign(**{c: view[c].astype(str) for c in lists})
    return pd.util.hash_pandas_object(view, index=False).to_numpy()


def changed_rows(before: pd.DataFrame, after: pd.DataFrame, table: schemas.Table) -> pd.DataFrame:
    """Rows of one delivery present in only one of its two versions (compared on all columns but dt)."""
    hb, ha = _content_hashes(before, table), _content_hashes(after, table)
    gone = before.loc[~np.isin(hb, ha)]
    new = after.loc[~np.isin(ha, hb)]
    return pd.concat([gone, new], ignore_index=True) if len(gone) or len(new) else after.iloc[:0]


def resolved_dimensions(lake_root: Path) -> dict[str, pd.DataFrame]:
    """Notes and id links as the funnel sees them (the winning version / claim), key + funnel columns."""
    from .funnel.prepare import link_winners

    notes = lake.resolve_notes(lake.read_table(lake_root, "notes"))
    links = link_winners(lake.read_table(lake_root, "id_links"))
    out = {}
    for name, frame in (("notes", notes), ("id_links", links)):
        key, content = DIMENSIONS[name]
        view = frame[key + content].copy()
        if "tags" in view.columns:
            view["tags"] = view["tags"].astype(str)
        out[name] = view.reset_index(drop=True)
    return out


def changed_keys(before: pd.DataFrame, after: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Keys whose row differs between two resolved versions of a dimension (new, gone or changed)."""
    hb = pd.util.hash_pandas_object(before, index=False).to_numpy() if len(before) else np.zeros(0, "uint64")
    ha = pd.util.hash_pandas_object(after, index=False).to_numpy() if len(after) else np.zeros(0, "uint64")
    moved = pd.concat([before.loc[~np.isin(hb, ha), key], after.loc[~np.isin(ha, hb), key]], ignore_index=True)
    return moved.drop_duplicates(ignore_index=True)


def _first_day(ts: pd.Series) -> date | None:
    ts = ts.dropna()
    if ts.empty:
        return None
    return business_day(pd.Series([ts.min()])).iloc[0]


def _exposures_of(lake_root: Path, by: str, keys: pd.DataFrame) -> pd.DataFrame:
    """(platform, ext_user_id, event_time) of every exposure in the lake whose (platform, ``by``) is
    one of ``keys``."""
    cols = ["platform", "ext_user_id", "event_time"] + ([by] if by != "ext_user_id" else [])
    wanted = keys[by].astype(str).unique().tolist()
    if not wanted:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols}).astype({"event_time": "datetime64[us, UTC]"})
    data = lake.read_arrow(lake_root, "exposures", columns=cols, filters=[(by, "in", wanted)]).to_pandas()
    data = data.astype({"platform": object, by: object})
    return data.merge(keys[["platform", by]].astype(object).drop_duplicates(), on=["platform", by])


def _exposure_times(lake_root: Path, by: str, keys: pd.DataFrame) -> pd.Series:
    """event_time of every exposure in the lake whose (platform, ``by``) is one of ``keys``."""
    return _exposures_of(lake_root, by, keys)["event_time"]


def boost_users(
    lake_root: Path,
    exposures: pd.DataFrame,
    link_keys: pd.DataFrame,
    note_keys: pd.DataFrame,
    links: tuple[pd.DataFrame, pd.DataFrame],
) -> pd.Series:
    """user_id -> the first as_of day whose boost snapshot (SPEC 5.8) the changes may move.

    A snapshot reads the linked exposures of its user: it moves when one of them appears or goes
    (``exposures``: changed rows), when an exposed ext id links to another user (``link_keys``:
    both users, from that ext id's first exposure), or when a note's brands change (``note_keys``:
    every user exposed to it). ``links``: the resolved id links before and after the change.
    """
    ext = ["platform", "ext_user_id"]
    parts = [
        exposures[[*ext, "event_time"]].astype({"platform": object, "ext_user_id": object}),
        _exposures_of(lake_root, "ext_user_id", link_keys)[[*ext, "event_time"]],
        _exposures_of(lake_root, "note_id", note_keys)[[*ext, "event_time"]],
    ]
    moved = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if moved is None:
        return pd.Series([], dtype=object)
    first = moved.groupby(ext, as_index=False, sort=False)["event_time"].min()
    before, after = links
    owners = [after[[*ext, "user_id"]]]
    if len(link_keys):  # an ext id that changed hands moves its former owner's snapshots too
        owners.append(before[[*ext, "user_id"]].merge(link_keys[ext].astype(object), on=ext))
    owner = pd.concat(owners, ignore_index=True).astype(object).drop_duplicates()
    hit = first.merge(owner, on=ext)
    if hit.empty:
        return pd.Series([], dtype=object)
    per_user = hit.groupby("user_id", sort=False)["event_time"].min()
    return pd.Series(business_day(per_user.reset_index(drop=True)).to_numpy(), index=per_user.index.astype(str))


def _versions_times(lake_root: Path, table: str, key: str, time_col: str, ids: pd.Series) -> pd.Series:
    wanted = ids.astype(str).unique().tolist()
    if not wanted:
        return pd.Series([], dtype="datetime64[us, UTC]")
    data = lake.read_arrow(lake_root, table, columns=[key, time_col], filters=[(key, "in", wanted)])
    return data.column(time_col).to_pandas()


def affected_from(lake_root: Path, source: str, changed: pd.DataFrame, params: FunnelParams) -> date | None:
    """The first day whose funnel figures a changed set of rows of ``source`` may move.

    Late exposures by their own day; notes and id links by the days of the exposures they turn
    into touches (or stop doing so); searches and orders by every version of their key, and the
    windows that look forward at them (``windows.affected_by_search`` / ``affected_by_order``).
    """
    if changed.empty:
        return None
    if source == "exposures":
        return _first_day(changed["event_time"])
    if source in MODEL_INPUTS:
        return _first_day(changed[MODEL_INPUTS[source]])
    if source == "notes":
        return _first_day(_exposure_times(lake_root, "note_id", changed))
    if source == "id_links":
        return _first_day(_exposure_times(lake_root, "ext_user_id", changed))
    if source == "searches":
        times = pd.concat([changed["event_time"], _versions_times(lake_root, source, "search_id", "event_time", changed["search_id"])])
        first = _first_day(times)
        return None if first is None else windows.affected_by_search(params, first)
    if source == "orders":
        times = pd.concat([changed["paid_at"], _versions_times(lake_root, source, "order_id", "paid_at", changed["order_id"])])
        first = _first_day(times)
        return None if first is None else windows.affected_by_order(params, first)
    raise KeyError(source)


def keys_with_versions_since(data: pa.Table, key: str, time_col: str, since: pa.Scalar) -> pa.Table:
    """Rows of every key that has at least one version at or after ``since`` (all its versions)."""
    recent = pc.greater_equal(data.column(time_col), since)
    keys = pc.unique(pc.filter(data.column(key), recent))
    return data.filter(pc.is_in(data.column(key), value_set=keys))
