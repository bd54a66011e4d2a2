"""The lake: typed Parquet per table, hive-partitioned by delivery day, written atomically.

Layout: ``<lake>/<table>/dt=YYYY-MM-DD/part-0.parquet`` (the table's partition column, ``dt`` or
``as_of_dt``, is also a column inside the file;
platform is a column, not a partition); unpartitioned tables (items) live in
``<lake>/<table>/snapshot/part-0.parquet``. Read with ``read_table`` (or, with another engine,
hive partitioning off: the ``dt`` column is in the files).

A partition is replaced as a whole: the new folder is written under a hidden temporary name (file
written to a temporary name, fsynced, renamed), then swapped in with two renames. A crash leaves
either the old partition or the new one in place, plus hidden leftovers that readers ignore and the
next write of that partition cleans up (restoring the old partition if the swap was cut between
its two renames).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schemas
from .settings import ENV_FSYNC

PART = "part-0.parquet"
SNAPSHOT = "snapshot"
#: Rows per batch of ``iter_arrow`` (and of a warehouse load): bounds what a streaming reader holds.
BATCH_ROWS = 100_000


class LakeError(RuntimeError):
    """A lake file that cannot be read: the message names it and what to do."""


def damaged(path: Path, error: Exception, lake: Path | None = None) -> LakeError:
    """The error for a damaged lake file (every lake file is derived: the landing zone rebuilds it)."""
    where = f" {lake}" if lake is not None else ""
    return LakeError(
        f"the lake file {path} cannot be read ({error.__class__.__name__}: {error}); it is damaged. "
        f"The lake is derived from the landing zone: move the lake folder{where} aside and run "
        "again to rebuild it (or restore the file from a backup)."
    )


def partition_name(day: date | None, column: str | None = "dt") -> str:
    """``dt=YYYY-MM-DD`` (the table's partition column) for a day, ``snapshot`` for unpartitioned tables."""
    return SNAPSHOT if day is None or column is None else f"{column}={day.isoformat()}"


def partition_path(lake: Path, name: str, day: date | None) -> Path:
    return Path(lake) / name / partition_name(day, schemas.table(name).partition)


def write_partition(
    lake: Path, name: str, day: date | None, frame: pd.DataFrame | pa.Table, sidecars: dict[str, np.ndarray] | None = None
) -> Path:
    """Replace one partition of a table with ``frame`` (typed by ``schemas``); returns its folder.

    ``sidecars``: arrays stored beside the data as ``<name>.npy``, swapped in with it atomically
    (``read_sidecar``).
    """
    table = schemas.table(name)
    if (table.partition is None) != (day is None):
        raise ValueError(f"{name}: partitioned by {table.partition!r}, got day {day!r}")
    data = frame if isinstance(frame, pa.Table) else schemas.to_arrow(table, frame)
    final = partition_path(lake, name, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    _recover(final)
    token = uuid.uuid4().hex[:12]
    staged = final.parent / f".{final.name}.new-{token}"
    staged.mkdir()
    _write_file(staged / PART, data)
    for key, values in (sidecars or {}).items():
        np.save(staged / f"{key}.npy", values, allow_pickle=False)
    _fsync_dir(staged)
    retired = final.parent / f".{final.name}.old-{token}"
    if final.exists():
        os.replace(final, retired)
    os.replace(staged, final)
    _fsync_dir(final.parent)
    shutil.rmtree(retired, ignore_errors=True)
    return final


def _write_file(path: Path, data: pa.Table) -> None:
    """Write a Parquet file atomically: temporary name in the same folder, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        pq.write_table(data, fh, compression="zstd")
        fh.flush()
        fsync(fh.fileno())
    os.replace(tmp, path)


def fsync(fd: int) -> None:
    """``os.fsync``, unless ``SEEDFUNNEL_FSYNC=0`` (settings.ENV_FSYNC) turns durability off."""
    if os.environ.get(ENV_FSYNC, "1") != "0":
        os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def _recover(final: Path) -> None:
    """Clean leftovers of interrupted writes of one partition; restore it if a swap was cut."""
    parent = final.parent
    olds = sorted(parent.glob(f".{final.name}.old-*"))
    if olds and not final.exists():
        os.replace(olds.pop(), final)
    for leftover in olds + sorted(parent.glob(f".{final.name}.new-*")):
        shutil.rmtree(leftover, ignore_errors=True)


def read_sidecar(lake: Path, name: str, day: date | None, key: str) -> np.ndarray | None:
    """An array ``write_partition`` stored beside a partition's data, or None when it has none."""
    path = partition_path(lake, name, day) / f"{key}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise damaged(path, e, Path(lake)) from e


def partitions(lake: Path, name: str) -> list[date]:
    """The delivery days a table holds, ascending (leftovers of interrupted writes ignored)."""
    root = Path(lake) / name
    prefix = f"{schemas.table(name).partition}="
    if not root.is_dir():
        return []
    days = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(prefix) and (p / PART).exists():
            try:
                days.append(date.fromisoformat(p.name[len(prefix) :]))
            except ValueError:
                continue  # not a partition this code wrote
    return sorted(days)


def _files(lake: Path, name: str, days: Iterable[date] | None) -> list[Path]:
    table = schemas.table(name)
    if table.partition is None:
        f = partition_path(lake, name, None) / PART
        return [f] if f.exists() else []
    have = partitions(lake, name)
    wanted = have if days is None else sorted(set(have) & set(days))
    return [partition_path(lake, name, d) / PART for d in wanted]


def read_arrow(
    lake: Path,
    name: str,
    days: Iterable[date] | None = None,
    columns: list[str] | None = None,
    filters=None,
    keep: Callable[[pa.Table], np.ndarray] | None = None,
) -> pa.Table:
    """A table's partitions (all, or the given delivery days) as one Arrow table.

    ``keep`` selects rows file by file (a boolean mask of each partition), so a reader that needs
    a small part of a large table never holds all of it.
    """
    table = schemas.table(name)
    schema = table.arrow_schema()
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    parts = []
    for f in _files(lake, name, days):
        try:
            part = pq.read_table(f, columns=columns, filters=filters, schema=schema)
        except (pa.ArrowException, OSError) as e:
            raise damaged(f, e, Path(lake)) from e
        parts.append(part.filter(pa.array(keep(part))) if keep is not None else part)
    return pa.concat_tables(parts) if parts else schema.empty_table()


def iter_arrow(lake: Path, name: str, day: date | None, batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """One partition's rows in their stored order, at most ``batch_rows`` at a time, typed as the
    table's Arrow schema (``read_arrow`` of that day, in slices): a reader holds one batch."""
    schema = schemas.table(name).arrow_schema()
    for f in _files(lake, name, None if day is None else [day]):
        try:
            file = pq.ParquetFile(f)
            for batch in file.iter_batches(batch_size=batch_rows, columns=schema.names):
                part = pa.Table.from_batches([batch])
                yield part if part.schema.equals(schema) else part.cast(schema)
        except (pa.ArrowException, OSError) as e:
            raise damaged(f, e, Path(lake)) from e


def read_table(
    lake: Path,
    name: str,
    days: Iterable[date] | None = None,
    keep: Callable[[pa.Table], np.ndarray] | None = None,
) -> pd.DataFrame:
    """A table's rows from the given delivery days (all when None), conformed with ``schemas``.

    ``keep``: as in ``read_arrow``.
    """
    data = read_arrow(lake, name, days, keep=keep)
    return schemas.conform(name, data.to_pandas())


def resolve_spend(spend: pd.DataFrame) -> pd.DataFrame:
    """One row per spend_id: the version of its latest delivery (largest ``dt``), SPEC 3's rule for
    orders. ``dt`` is kept: the delivery of the winning version. Rows equal in every column but
    ``dt`` are one version. Two versions of a spend_id in one delivery are an error (ingestion
    quarantines them as ``conflicting_version``, so the lake never holds them)."""
    if spend.empty:
        return spend.reset_index(drop=True)
    content = [n for n in schemas.SPEND.names if n != "dt"]
    newest = spend.groupby("spend_id", sort=False)["dt"].transform("max")
    latest = spend.loc[spend["dt"].eq(newest).to_numpy(dtype=bool)]
    latest = latest.drop_duplicates(content)
    clash = latest["spend_id"].duplicated(keep=False)
    if clash.any():
        first = latest.loc[clash].iloc[0]
        raise ValueError(
            f"spend: spend_id {first['spend_id']!r} has different versions in one delivery "
            f"(dt={first['dt']}); ingestion should have quarantined them"
        )
    return latest.sort_values("spend_id", ignore_index=True)


def read_spend(lake: Path, days: Iterable[date] | None = None) -> pd.DataFrame:
    """Spend as it stands after the given deliveries (all when None): ``resolve_spend`` over them."""
    return resolve_spend(read_table(lake, schemas.SPEND.name, days))


def resolve_notes(notes: pd.DataFrame) -> pd.DataFrame:
    """One row per (platform, note_id): latest delivery day, then last file name, then last record."""
    if notes.empty:
        return notes.reset_index(drop=True)
    ordered = notes.sort_values(["dt", "source_file", "source_row"], kind="stable")
    return ordered.drop_duplicates(["platform", "note_id"], keep="last").sort_values(
        ["platform", "note_id"], ignore_index=True
    )
