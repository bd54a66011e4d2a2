"""Write a simulated world as a landing zone (SPEC section 1) plus ``ground_truth.json``.

Layout under ``out/``::

    notes/<platform>/dt=YYYY-MM-DD/<exporter files>
    exposures/<platform>/dt=YYYY-MM-DD/exposures_<platform>_<day>.<csv|parquet|jsonl>
    id_links/<platform>/dt=YYYY-MM-DD/id_links_<platform>_<day>.<ext>
    searches/dt=YYYY-MM-DD/searches_<day>.<ext>
    orders/dt=YYYY-MM-DD/orders_<day>.<ext>
    spend/dt=YYYY-MM-DD/spend_<day>.<ext>   only on days with spend
    items/items.csv
    ground_truth.json
    arrivals.json                      when each file arrived (see arrival.py)
    .versions/<arrival day>/<path>     earlier versions of re-sent files

Event files use the canonical column names of ``schemas`` (without ``dt``). Every random choice
comes from one ``SeedSequence(seed)`` split into per-stage and per-day children, and no file holds
wall-clock time or unordered dict output, so the same arguments give byte-identical files.
The files are written in their final versions; ``arrivals.json`` says when each version arrived.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import schemas
from ..reference import load_reference
from ..settings import ModelParams
from . import exporters
from .arrival import (
    MANIFEST,
    VERSIONS,
    ArrivalParams,
    OrderVersions,
    SpendVersions,
    child_rng,
    late_days,
    plan_links,
    plan_missed_runs,
    plan_notes,
    plan_orders,
    plan_resends,
    plan_spend,
    plan_spend_resends,
    subset_mask,
)
from .vocab import Vocabulary, build_vocabulary
from .world import (
    World,
    WorldParams,
    behave,
    build_world,
    exposures_for_day,
    make_spend,
    planted_orders,
    planted_platform_shares,
    planted_split,
    touches_of,
)

EVENT_FORMATS = ("parquet", "csv", "csv_bom", "csv_gb18030", "jsonl")
TIME_STYLES = ("epoch_s", "epoch_ms", "local_naive", "iso_offset")
LANDING_FOLDERS = ("notes", "exposures", "id_links", "searches", "orders", "spend", "items")
BAD_TIMESTAMP = "2026-02-30 25:61:00"  # not a date: must be quarantined, never guessed
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class SimulationSummary:
    """What simulate_world wrote."""

    out: str
    seed: int
    users: int
    days: int
    start: str
    notes: int
    note_files: int
    exposures: int
    touches: int
    id_links: int
    searches: int
    orders: int
    files: int
    bytes: int
    arrival: str = "realistic"  # or "in_order"
    late_rows: int = 0
    resent_files: int = 0
    spend: int = 0  # spends (payments), each counted once whatever its versions


# ---------------------------------------------------------------- encoders


def time_array(t: np.ndarray, style: str) -> pa.Array:
    """Epoch seconds as one of the timestamp spellings found in the wild."""
    t = np.asarray(t, dtype=np.int64)
    if style == "epoch_s":
        return pa.array(t, pa.int64())
    if style == "epoch_ms":
        return pa.array(t * 1000, pa.int64())
    if style == "timestamp":
        return pa.array(t * 1_000_000, pa.timestamp("us", tz="UTC"))
    local = pa.array(t + 8 * 3600, pa.timestamp("s"))  # Asia/Shanghai: fixed +08:00
    if style == "local_naive":
        return pc.strftime(local, format="%Y-%m-%d %H:%M:%S")
    if style == "iso_offset":
        return pc.binary_join_element_wise(pc.strftime(local, format="%Y-%m-%dT%H:%M:%S"), "+08:00", "")
    raise ValueError(f"unknown time style {style!r}")


def _json_values(arr: pa.Array) -> pa.Array:
    """JSON text of each value of an Arrow column (strings quoted and escaped, nulls as null)."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        esc = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
        text = pc.binary_join_element_wise('"', esc, '"', "")
    else:
        text = pc.cast(arr, pa.string())
    return pc.if_else(pc.is_null(arr), "null", text)


def jsonl_bytes(table: pa.Table) -> bytes:
    """The table as JSON Lines, built column-wise in Arrow (no per-row Python)."""
    if table.num_rows == 0:
        return b""
    parts: list = []
    for i, name in enumerate(table.column_names):
        parts.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        parts.append(_json_values(table.column(name).combine_chunks()))
    parts.append("}\n")
    lines = pc.binary_join_element_wise(*parts, "").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def csv_bytes(table: pa.Table) -> bytes:
    """The table as UTF-8 CSV with a header (nulls as empty fields)."""
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
    return buf.getvalue()


def encode(table: pa.Table, fmt: str) -> bytes:
    """Bytes of the table in one of EVENT_FORMATS."""
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()
    if fmt == "jsonl":
        return jsonl_bytes(table)
    raw = csv_bytes(table)
    if fmt == "csv":
        return raw
    if fmt == "csv_bom":
        return b"\xef\xbb\xbf" + raw
    if fmt == "csv_gb18030":
        return raw.decode("utf-8").encode("gb18030")  # as Excel in China saves it
    raise ValueError(f"unknown format {fmt!r}")


def ambiguous_rows(table: pa.Table) -> np.ndarray:
    """Rows whose CSV line, saved as GB18030, is also valid non-ASCII UTF-8.

    Ingestion cannot tell such a line from a UTF-8 line in a mixed file, so it sets the record
    aside (``ambiguous_encoding``, docs/ingestion.md) and it never reaches the lake: a short
    Chinese text in GBK is valid UTF-8 now and then ("猫砂" in GBK reads "èɰ" as UTF-8).
    """
    lines = csv_bytes(table).decode("utf-8").split("\n")[1 : table.num_rows + 1]
    if len(lines) != table.num_rows:
        raise ValueError("a field spans lines: CSV rows no longer match table rows")
    out = np.zeros(table.num_rows, dtype=bool)
    for i, line in enumerate(lines):  # GB18030 files are a fifth of the search files: fine
        data = line.encode("gb18030")
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out[i] = True
    return out


def extension(fmt: str) -> str:
    return {"parquet": "parquet", "jsonl": "jsonl"}.get(fmt, "csv")


# ---------------------------------------------------------------- messiness


@dataclass
class Defects:
    """Every injected defect, with where it is, for ground_truth.json."""

    duplicate_rows: dict
    malformed: list
    styles: dict
    #: source -> ids of rows ingestion sets aside as ambiguous_encoding (``ambiguous_rows``)
    ambiguous: dict = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Defects:
        return cls(duplicate_rows={}, malformed=[], styles={})

    def count(self, key: str, n: int = 1) -> None:
        self.styles[key] = self.styles.get(key, 0) + int(n)


def _with_defects(
    rng: np.random.Generator,
    table: pa.Table,
    fmt: str,
    time_col: str,
    *,
    dup_share: float,
    bad_row: bool,
    source: str,
    rel: str,
    defects: Defects,
    fresh_id: tuple[str, str] | None = None,
) -> tuple[bytes, int]:
    """Encode a file with exact duplicate rows appended and maybe one malformed row at the end."""
    n = table.num_rows
    k = int(rng.binomial(n, dup_share)) if n else 0
    if k:
        table = pa.concat_tables([table, table.take(pa.array(np.sort(rng.choice(n, k, replace=False))))])
        defects.duplicate_rows[source] = defects.duplicate_rows.get(source, 0) + k
    content = encode(table, fmt)
    rows = table.num_rows
    if bad_row and n and fmt != "parquet":
        row = table.slice(0, 1).to_pylist()[0]
        if fresh_id:
            row[fresh_id[0]] = fresh_id[1]
        if fmt == "jsonl":
            line = jsonl_bytes(pa.Table.from_pylist([row], schema=table.schema))
            content += line[: len(line) // 2] + b"\n"
            reason = "truncated_json"
        else:
            row[time_col] = BAD_TIMESTAMP
            cols = {c: pa.array([None if row[c] is None else str(row[c])], pa.string()) for c in table.column_names}
            line = csv_bytes(pa.table(cols)).split(b"\n", 1)[1]
            content += line.decode("utf-8").encode("gb18030") if fmt == "csv_gb18030" else line
            reason = "bad_timestamp"
        rows += 1
        defects.malformed.append({"source": source, "file": rel, "row": rows, "line": rows + (0 if fmt == "jsonl" else 1), "reason": reason})
    return content, rows


# ---------------------------------------------------------------- the run


class _Writer:
    """Writes files under the landing root and keeps the file manifest and the arrival schedule.

    A file arrives on its dt day (items: the first day). A delivery planned as a re-send
    (``resends``: (source, platform, dt day) -> day) first arrives without some rows (stored
    under ``.versions/<dt>/<path>``) and its complete file arrives on the re-send day.
    """

    def __init__(self, root: Path, start: date, resends: dict | None = None,
                 rng: np.random.Generator | None = None, keep: float = 1.0):
        self.root = root
        self.start = start
        self.resends = resends or {}
        self.rng = rng
        self.keep = keep
        self.manifest: list[dict] = []
        self.arrivals: list[dict] = []
        self.resent: list[dict] = []
        self.bytes = 0

    def _put(self, rel: str, content: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        self.bytes += len(content)

    def write(self, rel: str, content: bytes, *, table: pa.Table | None = None,
              rng: np.random.Generator | None = None, **meta) -> None:
        """Write a file; ``rng`` (default the writer's) draws the rows a re-sent first version lacks."""
        self._put(rel, content)
        self.manifest.append({"path": rel, **meta})
        dt = meta.get("dt")
        arrival = dt or self.start.isoformat()
        versions = []
        key = (meta["source"], meta.get("platform"), (date.fromisoformat(dt) - self.start).days if dt else -1)
        if key in self.resends and table is not None and table.num_rows >= 2:
            mask = subset_mask(rng or self.rng, table.num_rows, self.keep)
            stored = f"{VERSIONS}/{dt}/{rel}"
            self._put(stored, encode(table.filter(pa.array(mask)), meta["format"]))
            versions.append({"file": stored, "arrival": dt, "rows": int(mask.sum())})
            arrival = (self.start + timedelta(days=self.resends[key])).isoformat()
            self.resent.append({"path": rel, "dt": dt, "first_arrival": dt, "resent": arrival,
                                "rows_first": int(mask.sum()), "rows_final": int(meta.get("rows", 0))})
        versions.append({"file": rel, "arrival": arrival, "rows": meta.get("rows")})
        self.arrivals.append({"path": rel, "source": meta["source"], "platform": meta.get("platform"),
                              "dt": dt, "arrival": versions[0]["arrival"], "versions": versions})


def _day_folder(source: str, day: date, platform: str | None = None) -> str:
    return f"{source}/{platform + '/' if platform else ''}dt={day.isoformat()}"


def _choose(rng: np.random.Generator, options: tuple[str, ...], forced: int | None) -> str:
    """A random option, or option ``forced`` (so the first day shows every variant)."""
    return options[forced % len(options)] if forced is not None else options[int(rng.integers(0, len(options)))]


def plan_world(
    *, users: int, days: int, start: date, seed: int, seeds_dir: Path, params: WorldParams | None = None,
    arrival: ArrivalParams | None = None,
) -> tuple[World, Vocabulary, list[np.random.SeedSequence]]:
    """The static world of these arguments (what simulate_world writes), its vocabulary and streams.

    The world is the final one: note delivery days, id_links batches (``world.link_deliveries``)
    and the links as resolved after every batch (revoked links do not resolve) follow
    ``params.arrival``. Streams: world, behaviour, notes, file choices, days, arrival, spend.
    """
    params = params or WorldParams()
    if arrival is not None:
        params = replace(params, arrival=arrival)
    seeds_dir = Path(seeds_dir)
    reference = load_reference(seeds_dir)
    creators_csv = seeds_dir / "creators.csv"
    raw_creators = (
        pd.read_csv(creators_csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if creators_csv.exists()
        else pd.DataFrame({"platform": pd.Series(dtype=str), "author_id": pd.Series(dtype=str)})
    )
    vocab = build_vocabulary(reference.brands, reference.categories)
    # the first five children are those of an in-order world; the sixth plans arrival; the
    # seventh draws spend and its arrival (added later: the first six, and their files, are as before)
    streams = np.random.SeedSequence(seed).spawn(7)
    world = build_world(np.random.default_rng(streams[0]), users=users, days=days, start=start,
                        reference=reference, raw_creators=raw_creators, vocab=vocab, params=params)
    plan_notes(child_rng(streams[5], 0), world)
    world.link_deliveries = plan_links(child_rng(streams[5], 1), world)
    return world, vocab, streams


def simulate_world(
    out: Path,
    *,
    users: int,
    days: int,
    start: date,
    seed: int,
    seeds_dir: Path,
    progress: Progress | None = None,
    params: WorldParams | None = None,
    arrival: ArrivalParams | None = None,
) -> SimulationSummary:
    """Simulate a world and write it under ``out`` as a landing zone plus ground_truth.json.

    Files arrive as ``arrival`` (default ``params.arrival``: realistic) says; the landing zone is
    written in its final state and ``arrivals.json`` holds the schedule (see ``materialize``).
    ``arrival=ArrivalParams.in_order()`` writes a world where everything arrives in order.
    """
    report = progress or (lambda message, fraction: None)
    out = Path(out)
    report("world", 0.0)
    world, vocab, streams = plan_world(users=users, days=days, start=start, seed=seed, seeds_dir=seeds_dir,
                                       params=params, arrival=arrival)
    a = world.params.arrival
    rng_behave, rng_notes, rng_files = (np.random.default_rng(s) for s in streams[1:4])
    day_streams = streams[4].spawn(days)
    arrival_seq = streams[5]

    _clear(out)
    resends = plan_resends(child_rng(arrival_seq, 2), days, a)
    w = _Writer(out, start, resends=resends, rng=child_rng(arrival_seq, 3), keep=a.resend_keep_share)
    defects = Defects.empty()
    dates = [start + timedelta(days=i) for i in range(days)]

    _write_links(world, dates, w)
    _write_items(world, w)

    touches, n_exposures = [], 0
    late = {"exposures": 0, "searches": 0, "orders": 0}
    pending: dict[int, list[pd.DataFrame]] = {}
    delivered_day = world.notes["delivered_day"].to_numpy()
    before_note = {"exposures": 0, "touches": 0}
    for d in range(days):
        report(f"exposures {dates[d]}", 0.05 + 0.6 * d / days)
        rng_day = np.random.default_rng(day_streams[d])
        ex = exposures_for_day(rng_day, world, d)
        n_exposures += len(ex)
        t = touches_of(world, ex)
        touches.append(t)
        before_note["exposures"] += int((delivered_day[ex["note"].to_numpy()] > d).sum())
        before_note["touches"] += int((delivered_day[t["note"].to_numpy()] > d).sum())
        # a share of the day's rows arrive in a later day's file
        arr = late_days(child_rng(arrival_seq, 100 + d), np.full(len(ex), d), days, a.late_share, a.late_max_days)
        is_late = arr > d
        late["exposures"] += int(is_late.sum())
        for later in np.unique(arr[is_late]):
            pending.setdefault(int(later), []).append(ex[arr == later])
        if is_late.any() or d in pending:
            ex = pd.concat([ex[~is_late], *pending.pop(d, [])], ignore_index=True)
        _write_exposures(rng_day, world, ex, d, dates[d], w, defects)
    touches_all = pd.concat(touches, ignore_index=True)

    report("searches and orders", 0.7)
    beh = behave(rng_behave, world, touches_all, vocab)
    s_day = _business_day_index(world, beh.searches["t"].to_numpy())
    s_arrival = late_days(child_rng(arrival_seq, 4), s_day, days, a.late_share, a.late_max_days)
    late["searches"] = int((s_arrival > s_day).sum())
    o_day = _business_day_index(world, beh.orders["t"].to_numpy())
    versions = plan_orders(child_rng(arrival_seq, 5), world, beh, o_day)
    late["orders"] = int((versions.arrival > o_day).sum())
    _write_searches(rng_files, world, beh, dates, w, defects, s_day, s_arrival)
    _write_orders(rng_files, world, beh, dates, w, defects, o_day, versions)

    report("notes", 0.85)
    note_files = _write_notes(rng_notes, world, dates, w, defects)

    report("spend", 0.95)
    spend_seq = streams[6]
    spend = make_spend(child_rng(spend_seq, 0), world)
    sp_day = _business_day_index(world, spend["t"].to_numpy())
    sp_versions = plan_spend(child_rng(spend_seq, 1), world, spend, sp_day)
    per_day = np.bincount(sp_versions.arrival, minlength=days) + np.bincount(sp_versions.versions["day"].to_numpy(), minlength=days)
    w.resends.update(plan_spend_resends(child_rng(spend_seq, 2), per_day, a))
    _write_spend(child_rng(spend_seq, 3), world, spend, dates, w, sp_day, sp_versions, resend_rng=child_rng(spend_seq, 4))

    report("ground truth", 0.97)
    missed = plan_missed_runs(child_rng(arrival_seq, 6), days, a)
    schedule = _schedule(w, dates, missed)
    (out / MANIFEST).write_text(json.dumps(schedule, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    arrival_truth = _arrival_truth(world, beh, versions, w, late=late, before_note=before_note, missed=missed, dates=dates)
    arrival_truth["spend"] = {
        "late_rows": int((sp_versions.arrival > sp_day).sum()),
        "amount_corrected": int(len(sp_versions.versions)),
    }
    truth = ground_truth(world, beh, touches_all, vocab, defects, w, seed=seed, users=users, n_exposures=n_exposures,
                         arrival=arrival_truth, spend=_spend_truth(world, spend, sp_versions))
    (out / "ground_truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    report("done", 1.0)
    return SimulationSummary(
        out=str(out), seed=seed, users=users, days=days, start=start.isoformat(),
        notes=len(world.notes), note_files=note_files, exposures=n_exposures,
        touches=len(touches_all), id_links=len(world.link_deliveries), searches=len(beh.searches),
        orders=len(beh.orders), files=len(w.manifest), bytes=w.bytes,
        arrival="in_order" if a.is_in_order else "realistic", late_rows=sum(late.values()), resent_files=len(w.resent),
        spend=len(spend),
    )


def _clear(out: Path) -> None:
    """Remove a previous simulation's files (the landing folders, ``.versions``, ground_truth.json
    and arrivals.json; nothing else)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (*LANDING_FOLDERS, VERSIONS):
        if (out / name).exists():
            shutil.rmtree(out / name)
    (out / "ground_truth.json").unlink(missing_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)


def _schedule(w: _Writer, dates: list[date], missed: list[int]) -> dict:
    """arrivals.json: every file's versions and arrival days, and the daily runs that happen."""
    missed_days = {dates[d].isoformat() for d in missed}
    return {
        "description": (
            "Every landing file (path relative to this folder) with its dt folder and arrival day: the "
            "first day it is present. versions lists its contents over time in arrival order, each "
            "with the stored file holding those bytes and the day it arrived; the last version is the "
            "file at path. A re-sent delivery has more than one version (earlier ones stored under "
            ".versions/). runs are the days a daily run happens, missed_runs the scheduled days it "
            "does not (nothing in the data changes: the next run ingests every delivery not yet "
            "ingested). pipelines.simulate.materialize(this folder, day, landing) rebuilds the "
            "landing zone as it stood on a day."
        ),
        "start": dates[0].isoformat(),
        "end": dates[-1].isoformat(),
        "runs": [d.isoformat() for d in dates if d.isoformat() not in missed_days],
        "missed_runs": sorted(missed_days),
        "files": sorted(w.arrivals, key=lambda f: f["path"]),
    }


def _write_links(world: World, dates: list[date], w: _Writer) -> None:
    """id_links batches: one file per platform and batch day (the first batch: every platform)."""
    links = world.link_deliveries
    batch_days = world.link_batches["days"]
    for j, d in enumerate(batch_days):
        day = dates[d]
        batch = links[links["day"].to_numpy() == d]
        for i, platform in enumerate(schemas.PLATFORMS):
            part = batch[batch["platform"] == platform]
            if j > 0 and len(part) == 0:
                continue
            fmt = EVENT_FORMATS[(i + 1 + j) % len(EVENT_FORMATS)]
            table = pa.table({c: pa.array(part[c].to_numpy(), schemas.arrow_type(schemas.ID_LINKS.column(c).type))
                              for c in schemas.ID_LINKS.names if c != "dt"})
            rel = f"{_day_folder('id_links', day, platform)}/id_links_{platform}_{day.isoformat()}.{extension(fmt)}"
            w.write(rel, encode(table, fmt), source="id_links", platform=platform, dt=day.isoformat(), format=fmt, rows=len(part))


def _write_items(world: World, w: _Writer) -> None:
    items = world.items
    table = pa.table({c: pa.array(items[c].to_numpy().astype(str), pa.string()) for c in schemas.ITEMS.names})
    w.write("items/items.csv", encode(table, "csv"), source="items", platform=None, dt=None, format="csv", rows=len(items))


def _write_exposures(rng: np.random.Generator, world: World, ex: pd.DataFrame, d: int, day: date, w: _Writer, defects: Defects) -> None:
    """One file per platform for the day, in a rotating format and time spelling."""
    acc = world.accounts
    platform_of = acc["platform"].to_numpy()[ex["account"].to_numpy()]
    ext_ids = pa.array(acc["ext_user_id"].to_numpy())
    note_ids = pa.array(world.notes["note_id"].to_numpy())
    kinds = pa.array(list(schemas.EXPOSURE_KINDS))
    for i, platform in enumerate(schemas.PLATFORMS):
        e = ex[platform_of == i]
        fmt = _choose(rng, EVENT_FORMATS, i if d == 0 else None)
        styles = ("timestamp",) + TIME_STYLES if fmt == "parquet" else TIME_STYLES
        style = _choose(rng, styles, (i + d) if d < 2 else None)
        dwell = e["dwell"].to_numpy()
        table = pa.table(
            {
                "platform": pa.array(np.full(len(e), platform)),
                "note_id": note_ids.take(pa.array(e["note"].to_numpy())),
                "ext_user_id": ext_ids.take(pa.array(e["account"].to_numpy())),
                "event_time": time_array(e["t"].to_numpy(), style),
                "kind": kinds.take(pa.array(e["kind"].to_numpy().astype(np.int64))),
                "dwell_ms": pa.array(dwell, pa.int64(), mask=dwell < 0),
            }
        )
        rel = f"{_day_folder('exposures', day, platform)}/exposures_{platform}_{day.isoformat()}.{extension(fmt)}"
        bad = (d == 0) or bool(rng.random() < 0.3)
        content, rows = _with_defects(rng, table, fmt, "event_time", dup_share=0.002, bad_row=bad,
                                      source="exposures", rel=rel, defects=defects)
        w.write(rel, content, table=table, source="exposures", platform=platform, dt=day.isoformat(), format=fmt,
                time_style=style, rows=rows)
        defects.count(f"exposures_format_{fmt}")
        defects.count(f"exposures_time_{style}")


def _business_day_index(world: World, t: np.ndarray) -> np.ndarray:
    return np.searchsorted(world.day_starts, t, side="right") - 1


def _arriving(day_of: np.ndarray, arrival: np.ndarray, d: int) -> np.ndarray:
    """Rows of the file of delivery day d: that day's on-time rows, then late rows of earlier days."""
    here = arrival == d
    return np.concatenate([np.flatnonzero(here & (day_of == d)), np.flatnonzero(here & (day_of < d))])


def _write_searches(rng: np.random.Generator, world: World, beh, dates: list[date], w: _Writer, defects: Defects,
                    day_of: np.ndarray, arrival: np.ndarray) -> None:
    """One file per delivery day: the day's searches and the late ones arriving with it."""
    s = beh.searches
    for d, day in enumerate(dates):
        part = s.iloc[_arriving(day_of, arrival, d)]
        fmt = _choose(rng, ("csv_gb18030", "jsonl", "parquet", "csv_bom", "csv"), d if d < 5 else None)
        style = _choose(rng, TIME_STYLES, d if d < 4 else None)
        table = pa.table(
            {
                "search_id": pa.array(part["search_id"].to_numpy()),
                "user_id": pa.array(world.user_ids[part["user"].to_numpy()]),
                "event_time": time_array(part["t"].to_numpy(), style),
                "query": pa.array(part["query"].to_numpy().astype(str)),
            }
        )
        rel = f"{_day_folder('searches', day)}/searches_{day.isoformat()}.{extension(fmt)}"
        if fmt == "csv_gb18030":
            lost = ambiguous_rows(table)
            defects.ambiguous.setdefault("searches", []).extend(part["search_id"].to_numpy()[lost].tolist())
        content, rows = _with_defects(rng, table, fmt, "event_time", dup_share=0.003, bad_row=d < 5 or bool(rng.random() < 0.2),
                                      source="searches", rel=rel, defects=defects, fresh_id=("search_id", f"s_bad_{day:%Y%m%d}"))
        w.write(rel, content, table=table, source="searches", platform=None, dt=day.isoformat(), format=fmt,
                time_style=style, rows=rows)
        defects.count(f"searches_format_{fmt}")


def _write_orders(rng: np.random.Generator, world: World, beh, dates: list[date], w: _Writer, defects: Defects,
                  day_of: np.ndarray, plan: OrderVersions) -> None:
    """One file per delivery day: first versions (on time, then late) and later versions (refunds,
    corrected amounts) of orders whose earlier version arrived on an earlier day."""
    o = beh.orders
    items, brands = world.items, world.brands
    missing = (o["status"].to_numpy() == "paid") & (rng.random(len(o)) < world.params.missing_brand_orders_share)
    defects.count("orders_missing_brand_filled_from_items", int(missing.sum()))
    brand_id = np.where(missing, None, brands["brand_id"].to_numpy()[o["brand"].to_numpy()])
    category_id = np.where(missing, None, brands["category_id"].to_numpy()[o["brand"].to_numpy()])
    v = plan.versions
    v_day, v_order = v["day"].to_numpy(), v["order"].to_numpy()
    for d, day in enumerate(dates):
        later = v_day == d
        rows = np.concatenate([_arriving(day_of, plan.arrival, d), v_order[later]])
        amount = np.concatenate([o["amount_fen"].to_numpy()[rows[: len(rows) - int(later.sum())]], v["amount_fen"].to_numpy()[later]])
        status = np.concatenate([o["status"].to_numpy()[rows[: len(rows) - int(later.sum())]], v["status"].to_numpy()[later]])
        fmt = _choose(rng, ("csv", "jsonl", "parquet", "csv_bom"), d if d < 4 else None)
        style = _choose(rng, TIME_STYLES, (d + 2) if d < 4 else None)
        table = pa.table(
            {
                "order_id": pa.array(o["order_id"].to_numpy()[rows]),
                "user_id": pa.array(world.user_ids[o["user"].to_numpy()[rows]]),
                "item_id": pa.array(items["item_id"].to_numpy()[o["item"].to_numpy()[rows]]),
                "brand_id": pa.array(brand_id[rows], pa.string()),
                "category_id": pa.array(category_id[rows], pa.string()),
                "amount_fen": pa.array(amount.astype(np.int64), pa.int64()),
                "paid_at": time_array(o["t"].to_numpy()[rows], style),
                "status": pa.array(status.astype(str)),
            }
        )
        rel = f"{_day_folder('orders', day)}/orders_{day.isoformat()}.{extension(fmt)}"
        content, n_rows = _with_defects(rng, table, fmt, "paid_at", dup_share=0.003, bad_row=False,
                                        source="orders", rel=rel, defects=defects)
        w.write(rel, content, table=table, source="orders", platform=None, dt=day.isoformat(), format=fmt,
                time_style=style, rows=n_rows)
        defects.count(f"orders_format_{fmt}")


def _write_spend(rng: np.random.Generator, world: World, spend: pd.DataFrame, dates: list[date], w: _Writer,
                 day_of: np.ndarray, plan: SpendVersions, *, resend_rng: np.random.Generator) -> None:
    """One file per delivery day that has spend (a day without any has no spend folder): first
    versions (on time, then late), then later versions (corrected amounts). The columns of
    ``schemas.SPEND`` but spend_id (derived by ingestion, as the SPEC 5.11 file has none) and dt;
    authors by their raw platform id (creators.csv rows holding only a hash: the hash)."""
    creators, notes = world.creators, world.notes
    raw = creators["raw_id"].to_numpy()
    author = np.where(raw != "", raw, creators["author_id"].to_numpy())
    note = spend["note"].to_numpy()
    text = {
        "platform": np.asarray(schemas.PLATFORMS)[spend["platform"].to_numpy()],
        "author_id": author[spend["creator"].to_numpy()],
        "note_id": np.where(note >= 0, notes["note_id"].to_numpy()[np.maximum(note, 0)], None),
        "spend_type": spend["spend_type"].to_numpy(),
    }
    v = plan.versions
    v_day, v_row = v["day"].to_numpy(), v["spend"].to_numpy()
    for d, day in enumerate(dates):
        later = v_day == d
        first = _arriving(day_of, plan.arrival, d)
        rows = np.concatenate([first, v_row[later]]).astype(np.int64)
        if len(rows) == 0:
            continue
        amount = np.concatenate([spend["amount_fen"].to_numpy()[first], v["amount_fen"].to_numpy()[later]])
        fmt = _choose(rng, ("csv", "jsonl", "parquet", "csv_bom"), d if d < 4 else None)
        style = _choose(rng, TIME_STYLES, (d + 1) if d < 4 else None)
        columns = {}
        for name in schemas.SPEND.names:
            if name in text:
                columns[name] = pa.array(text[name][rows], pa.string())
            elif name == "amount_fen":
                columns[name] = pa.array(amount.astype(np.int64), pa.int64())
            elif name == "spent_at":
                columns[name] = time_array(spend["t"].to_numpy()[rows], style)
        table = pa.table(columns)
        rel = f"{_day_folder('spend', day)}/spend_{day.isoformat()}.{extension(fmt)}"
        w.write(rel, encode(table, fmt), table=table, rng=resend_rng, source="spend", platform=None,
                dt=day.isoformat(), format=fmt, time_style=style, rows=table.num_rows)


def _spend_truth(world: World, spend: pd.DataFrame, plan: SpendVersions) -> dict:
    """Spend of the world by its final versions (a corrected amount replaces the first one)."""
    p = world.params
    final = plan.final_amount_fen
    types = spend["spend_type"].to_numpy()
    platforms = np.asarray(schemas.PLATFORMS)[spend["platform"].to_numpy()]
    note = spend["note"].to_numpy()
    return {
        "definition": (
            "Every spend (payment) paid inside the world's days, once, at its final amount (the latest "
            "delivery of its derived spend_id wins). creator_fee: one per (creator, note) for "
            f"{p.creator_fee_share:.0%} of notes, paid 3 days before to 1 day after publication; and one "
            f"per creator (no note) for {p.retainer_share:.0%} of the creators of creators.csv on the first "
            f"day. paid_boost: {p.paid_boost_share:.0%} of brand-bearing notes boosted 1-3 times, boost i "
            "on day i after publication."
        ),
        "spends": int(len(spend)),
        "spend_fen": int(final.sum()),
        "by_type": {t: {"spends": int((types == t).sum()), "spend_fen": int(final[types == t].sum())} for t in schemas.SPEND_TYPES},
        "by_platform": {pl: int(final[platforms == pl].sum()) for pl in schemas.PLATFORMS},
        "fees_per_creator": int((note < 0).sum()),
        "notes_with_creator_fee": int(len(np.unique(note[(types == schemas.SPEND_TYPES[0]) & (note >= 0)]))),
        "notes_boosted": int(len(np.unique(note[types == schemas.SPEND_TYPES[1]]))),
    }


def _write_notes(rng: np.random.Generator, world: World, dates: list[date], w: _Writer, defects: Defects) -> int:
    """Every note on its delivery day (and some again later, with fresher counts), per exporter."""
    notes = world.notes
    versions = pd.concat(
        [
            notes.assign(note=np.arange(len(notes)), day=notes["delivered_day"], version=0),
            notes.assign(note=np.arange(len(notes)), day=notes["redelivered_day"], version=1).query("day >= 0"),
        ],
        ignore_index=True,
    ).sort_values(["day", "platform", "published", "note"], kind="stable", ignore_index=True)
    defects.count("notes_redelivered", int((versions["version"] == 1).sum()))
    grow = np.where(versions["version"].to_numpy() == 1, 1.0 + rng.random(len(versions)), 1.0)
    n = len(versions)
    count_values = {
        "likes": versions["likes"].to_numpy(), "collects": versions["collects"].to_numpy(),
        "comments": versions["comments"].to_numpy(), "shares": versions["shares"].to_numpy(),
        "views": versions["likes"].to_numpy() * 20 + 100, "coins": versions["likes"].to_numpy() // 3,
    }
    count_text = {}
    for name, v in count_values.items():
        count_text[name], styles = exporters.count_strings(rng, np.round(v * grow).astype(np.int64))
        for style, k in styles.items():
            defects.count(f"note_counts_{style}", k)
    brandless = versions["brand1"].to_numpy() < 0
    platform_names = np.asarray(schemas.PLATFORMS)[versions["platform"].to_numpy()]
    # "None" (MediaCrawler, some platforms) and "-1" (XHS-Downloader) mark a missing count; only on
    # brandless notes, so whatever ingestion decides for them cannot move the planted estimand
    none_count = brandless & (platform_names != "xiaohongshu") & (rng.random(n) < 0.3)
    count_text["comments"] = np.where(none_count, "None", count_text["comments"])
    minus_one = brandless & (platform_names == "xiaohongshu") & (rng.random(n) < 0.3)

    fmt_idx = np.empty(n, dtype=np.int64)
    for platform in schemas.PLATFORMS:
        m = platform_names == platform
        k = len(exporters.FORMATS[platform])
        fmt_idx[m] = rng.integers(0, k, int(m.sum()))
        first_day = np.flatnonzero(m & (versions["day"].to_numpy() == 0))
        fmt_idx[first_day[:k]] = np.arange(min(k, len(first_day)))  # every format on day one
        # a creator known only by its hash (creators.csv may hold hashes) has no raw user id to
        # write: its notes go to the 2026-07 schema, so every note is still delivered
        hashed_only = m & (world.creators["raw_id"].to_numpy()[versions["creator"].to_numpy()] == "")
        v2026 = next(i for i, f in enumerate(exporters.FORMATS[platform]) if f[2] == "v2026")
        fmt_idx[hashed_only] = v2026
    versions["fmt"] = fmt_idx
    fields = exporters.note_fields(world, versions)
    files = 0
    for (day, pcode, fi), group in versions.groupby(["day", "platform", "fmt"], sort=True):
        platform = schemas.PLATFORMS[pcode]
        fmt = exporters.FORMATS[platform][fi]
        exporter, file_type, schema = fmt
        day_date = dates[int(day)]
        rows = group.index.to_numpy()
        fetched = exporters.fetched_ms(int(world.day_starts[int(day)]))
        records = []
        for r in rows:
            counts = {k: count_text[k][r] for k in count_text}
            f = fields[r]
            if exporter == "mediacrawler":
                records.append(exporters.mediacrawler_record(platform, schema, f, counts, fetched))
            elif exporter == "spider_xhs":
                records.append(exporters.spider_xhs_record(f, counts))
            else:
                if minus_one[r]:
                    counts["likes"] = "-1"
                records.append(exporters.xhs_downloader_record(f, counts, fetched // 1000))
        if not records:
            continue
        broken = {}
        if exporter == "mediacrawler" and file_type in ("json", "jsonl") and rng.random() < 0.25:
            broken[int(rng.integers(0, len(records)))] = "truncated_json" if file_type == "jsonl" else "unparseable_count"
        if exporter == "mediacrawler" and file_type == "csv" and rng.random() < 0.25:
            broken[int(rng.integers(0, len(records)))] = "unparseable_count"
        folder = _day_folder("notes", day_date, platform)
        for nf in exporters.write_note_files(platform, day_date.isoformat(), fmt, records, broken=broken):
            rel = f"{folder}/{nf.name}"
            w.write(rel, nf.content, source="notes", platform=platform, dt=day_date.isoformat(),
                    format=f"{nf.exporter}_{nf.file_type}_{nf.schema}", rows=nf.rows)
            for m in nf.malformed:
                defects.malformed.append({"source": "notes", "file": rel, **m})
            files += 1
            defects.count(f"notes_files_{nf.exporter}_{nf.file_type}_{nf.schema}")
    defects.count("note_counts_none_literal", int(none_count[np.isin(fmt_idx, range(6))].sum()))
    defects.count("note_counts_minus_one", int(minus_one[(platform_names == "xiaohongshu") & (fmt_idx == 7)].sum()))
    for col in ("alias_script_1", "alias_script_2", "alias_script_tag"):
        for script, k in versions[col].value_counts().items():
            if script:
                defects.count(f"note_alias_mentions_{script}", int(k))
    defects.count("notes_traditional_script", int(versions["traditional_notes"].sum()))
    return files


# ---------------------------------------------------------------- ground truth


def _ratio(x1: int, n1: int, x2: int, n2: int) -> float | None:
    if min(x1, n1, x2, n2) == 0:
        return None
    return round((x1 / n1) / (x2 / n2), 6)


def _arrival_truth(world: World, beh, plan: OrderVersions, w: _Writer, *, late: dict, before_note: dict,
                   missed: list[int], dates: list[date]) -> dict:
    """What arrived late, in batches, in later versions or re-sent (counts; arrivals.json has the files)."""
    a = world.params.arrival
    notes = world.notes
    lag = notes["delivery_lag_days"].to_numpy()
    kinds = plan.versions["kind"].to_numpy()
    return {
        "mode": "in_order" if a.is_in_order else "realistic",
        "notes": {
            "delivered_after_publication_day": int((lag > 0).sum()),
            "delivery_lag_days": {str(k): int(v) for k, v in zip(*np.unique(lag, return_counts=True), strict=True)},
            "exposures_before_note_delivery": before_note["exposures"],
            "touches_before_note_delivery": before_note["touches"],
        },
        "id_links": {
            "batch_days": [dates[d].isoformat() for d in world.link_batches["days"]],
            "accounts_first_named_per_batch": world.link_batches["accounts_first_named"],
            "rows_per_batch": world.link_batches["rows"],
            "accounts_corrected": world.link_stats["accounts_corrected"],
            "accounts_revoked": world.link_stats["accounts_revoked"],
        },
        "late_rows": dict(late),
        "order_versions": {
            "refunded_later": int((kinds == "refund").sum()),
            "amount_corrected": int((kinds == "amount").sum()),
            "pairs_unconverted_by_refunds": int(beh.pairs["refunded"].sum()),
        },
        "resent_files": sorted(w.resent, key=lambda r: r["path"]),
        "missed_runs": [dates[d].isoformat() for d in missed],
    }


PLATFORM_SHARES_DEFINITION = (
    "With platform_effects set, a seeded pair (s, c) for brand b buys with probability p0 * (1 + sum of e_p over "
    "its seeding set: the distinct platforms of the user's observable touches for b in [t_s - seed_window, t_s)) "
    "instead of p0 * factor_vertical_match / factor_mismatch. planted_platform_shares: every seeded order (SPEC 5.5: "
    "the order of a converted seeded pair, its latest version paid) paid in the window (the last model_window_days "
    "business days of the world, the window of the models' snapshot as of its last day; all of it when shorter), "
    "its search not set aside as ambiguous_encoding, splits its amount (latest version) over the platforms of its "
    "seeding set in proportion to e_p (equally when they are all 0); a platform's share is the sum of its parts "
    "over the sum of the orders' amounts."
)


def _platform_truth(world: World, beh, lost: np.ndarray) -> dict:
    """planted_platform_effects, planted_platform_shares and how they were counted (docs/simulator.md)."""
    window = ModelParams().model_window_days
    first_day = max(0, world.days - window)
    planted = planted_orders(world, beh, first_day=first_day, keep=~lost[beh.pairs["search"].to_numpy()])
    credit = planted_split(world, planted).sum(axis=0)
    shares = planted_platform_shares(world, planted)
    sizes = np.bitwise_count(planted["seed_platforms"].to_numpy().astype(np.uint64))
    return {
        "planted_platform_effects": dict(world.params.platform_effects),
        "planted_platform_shares": {p: (None if np.isnan(v) else float(v)) for p, v in zip(schemas.PLATFORMS, shares, strict=True)},
        "planted_platform_shares_basis": {
            "definition": PLATFORM_SHARES_DEFINITION,
            "window": {
                "first_day": (world.start + timedelta(days=first_day)).isoformat(),
                "last_day": (world.start + timedelta(days=world.days - 1)).isoformat(),
                "model_window_days": window,
            },
            "seeded_orders": int(len(planted)),
            "seeded_orders_by_seeding_set_size": {str(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True), strict=True)},
            "amount_fen": int(planted["amount_fen"].sum()),
            "platform_amount_fen": {p: round(float(v), 2) for p, v in zip(schemas.PLATFORMS, credit, strict=True)},
        },
    }


def ground_truth(world: World, beh, touches: pd.DataFrame, vocab, defects: Defects, w: _Writer, *, seed: int, users: int,
                 n_exposures: int, arrival: dict, spend: dict) -> dict:
    """Everything a test or a reader needs to know about the world: parameters, estimand, defects.

    Every figure is of the final state (after every delivery arrived): final links, the latest
    version of every order (an order refunded later does not convert its pair).
    """
    p = world.params
    # A search set aside as ambiguous_encoding never reaches the lake: its pairs are no pairs.
    lost = beh.searches["search_id"].isin(defects.ambiguous.get("searches", [])).to_numpy()
    pairs = beh.pairs[beh.pairs["final"].to_numpy() & ~lost[beh.pairs["search"].to_numpy()]]
    seeded, match = pairs["seeded"].to_numpy(), pairs["match"].to_numpy()
    conv = pairs["converted"].to_numpy()

    def cell(mask):
        return {"pairs": int(mask.sum()), "conversions": int((conv & mask).sum())}

    cells = {"unseeded": cell(~seeded), "seeded_vertical_match": cell(match), "seeded_mismatch": cell(seeded & ~match), "seeded": cell(seeded)}
    base = cells["unseeded"]
    realised = {
        k: _ratio(cells[k]["conversions"], cells[k]["pairs"], base["conversions"], base["pairs"])
        for k in ("seeded", "seeded_vertical_match", "seeded_mismatch")
    }
    query_scripts = beh.searches["query_script"].value_counts().to_dict()
    platform_truth = _platform_truth(world, beh, lost) if p.platform_effects else {}
    malformed = sorted(defects.malformed, key=lambda m: (m["file"], m["row"]))
    malformed_counts: dict[str, int] = {}
    for m in malformed:
        key = f"{m['source']}_{m['reason']}"
        malformed_counts[key] = malformed_counts.get(key, 0) + 1
    return {
        **platform_truth,
        "seed": seed,
        "users": users,
        "days": world.days,
        "start": world.start.isoformat(),
        "end": (world.start + timedelta(days=world.days - 1)).isoformat(),
        "parameters": p.as_dict(),
        "estimand": {
            "definition": (
                "For a search pair (s, c) and each brand b of c independently, the user buys b within "
                "[t_s, t_s + conversion_window] with probability p0 * f; f = 1 when (s, c) is not seeded "
                "for b (no observable touch for b in [t_s - seed_window, t_s)), f = factor_vertical_match "
                "when it is seeded and the creator vertical of the last such touch (touch order: time, "
                "platform, note_id, kind, ext_user_id) equals c, else f = factor_mismatch (unknown vertical "
                "is a mismatch). Hence SPEC 5.7 uplift by vertical_match estimates factor_vertical_match "
                "(match) and factor_mismatch (mismatch); orders come only from searches, and a user's "
                "searches of one category are more than conversion_window + 1 s apart."
            ),
            "p0": p.p0,
            "factor_vertical_match": p.factor_vertical_match,
            "factor_mismatch": p.factor_mismatch,
            "observable_touch": "kind in touch_kinds, account's winning link >= min_link_confidence, note mentions the brand",
            "final_pairs_only": "pairs final as SPEC 5 has it: search day + ceil(conversion_window) < the last day",
            "final_state": "links and orders as they stand after every delivery arrived: the latest delivery naming an account decides its link (revoked links do not resolve); an order counts only when its latest version is paid",
            "realised_pair_counts": cells,
            "realised_uplift": realised,
            "confounding": {
                "strength": p.confounding,
                "definition": (
                    "0: none, p0 is the same for every pair. Above 0, background searches follow each "
                    "user's activity (as exposures do) and p0 is multiplied by 1 + confounding * k, k the "
                    "index of the searching user's activity band of SPEC 5.10 (0, 1-2, 3-5, 6-10, 11+ "
                    "searches in [t_s - activity_window, t_s)). The naive uplift then overstates f; the "
                    "engagement-adjusted uplift over SPEC 5.10's strata estimates it."
                ),
            },
        },
        "search_back": {
            "p_search_back": p.p_search_back,
            "delay": f"truncated exponential, mean {p.search_back_delay_mean_days} days, within (0, seed_window)",
            "background_searches_per_user_day": p.background_searches_per_user_day,
            **beh.counts,
        },
        "counts": {
            "users": users,
            "notes": int(len(world.notes)),
            "notes_brandless": int((world.notes["brand1"] < 0).sum()),
            "notes_two_brands": int((world.notes["brand2"] >= 0).sum()),
            "note_brand_mentions": int(len(world.note_brands)),
            "exposures_generated": int(n_exposures),
            "touches": int(len(touches)),
            "searches": int(len(beh.searches)),
            "orders_paid": int((beh.orders["final_status"] == "paid").sum()),
            "orders_refunded": int((beh.orders["final_status"] == "refunded").sum()),
            "items": int(len(world.items)),
            "spend": spend["spends"],
            "spend_fen": spend["spend_fen"],
            "files": len(w.manifest) + 1,
            "bytes": int(w.bytes),
        },
        "links": world.link_stats,
        "spend": spend,
        "arrival": arrival,
        "defects": {
            "exact_duplicate_rows": dict(sorted(defects.duplicate_rows.items())),
            "malformed_rows": malformed_counts,
            "malformed": malformed,
            "ambiguous_encoding_rows": {k: len(v) for k, v in sorted(defects.ambiguous.items())},
            "variants": dict(sorted(defects.styles.items())),
            "query_scripts": {k: int(v) for k, v in sorted(query_scripts.items())},
        },
        "vocabulary_dropped": vocab.dropped,
        "files": w.manifest,
    }
