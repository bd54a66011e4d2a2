"""Fuzzing ingestion with real exporter files (issue 17): bytes cut, swapped and flipped, text
re-encoded (whole or line by line), fields retyped. For every mutated file:

- nothing crashes;
- input = accepted + quarantined, where input is counted by this test's own reader of the mutated
  file (stdlib json / csv, following the documented rules), accepted by the rows of the file the
  lake holds, and quarantined from the quarantine records;
- nothing outside the landing zone is opened (``sys.addaudithook`` on ``open``), with a link to a
  file outside planted beside it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import zoneinfo
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opened import watch_opens

from pipelines import lake
from pipelines.ingest.day import ingest_day
from pipelines.settings import Settings

REAL = Path(__file__).parent / "fixtures" / "real"
DAY = date(2025, 9, 10)  # after every note of the samples was published
BOM = b"\xef\xbb\xbf"
EXAMPLES = 40  # per sample: both samples run in about 20 s (most of it fsync in the lake writes)


def _json_sample(n: int = 8) -> bytes:
    records = json.loads((REAL / "mediacrawler_xhs_notes.json").read_bytes())[:n]
    return json.dumps(records, indent=4, ensure_ascii=False).encode()  # the exporter's own layout


def _csv_sample(n: int = 25) -> bytes:
    text = (REAL / "mediacrawler_xhs_notes_phones.csv").read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    for _ in range(n + 1):
        next(reader)
    return "".join(text.splitlines(keepends=True)[: reader.line_num]).encode()


SAMPLES = {"notes.json": _json_sample(), "notes.csv": _csv_sample()}


# ---------------------------------------------------------------- mutations


@st.composite
def cut(draw, data: bytes) -> bytes:
    a = draw(st.integers(0, len(data)))
    b = draw(st.integers(a, min(len(data), a + 400)))
    return data[:a] + data[b:] if draw(st.booleans()) else data[:a]


@st.composite
def swap(draw, data: bytes) -> bytes:
    size = draw(st.integers(1, 200))
    a = draw(st.integers(0, max(0, len(data) - size)))
    b = draw(st.integers(0, max(0, len(data) - size)))
    a, b = sorted((a, b))
    if b < a + size:
        return data
    return data[:a] + data[b : b + size] + data[a + size : b] + data[a : a + size] + data[b + size :]


@st.composite
def flip(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.sampled_from([0x00, 0x22, 0x2C, 0x0A, 0x0D, 0x5B, 0x7B, 0xFF, 0xE7, 0x80]))
    return bytes(out)


@st.composite
def reencode(draw, data: bytes) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    how = draw(st.sampled_from(["gb18030", "mixed", "bom", "bom_mixed"]))
    if how == "gb18030":
        return text.encode("gb18030")
    lines = text.split("\n")
    picked = draw(st.sets(st.integers(0, max(0, len(lines) - 1)), max_size=6))
    mixed = b"\n".join(ln.encode("gb18030") if i in picked else ln.encode() for i, ln in enumerate(lines))
    return {"mixed": mixed, "bom": BOM + data, "bom_mixed": BOM + mixed}[how]


ODD_VALUES = [None, 1e308, -5, "", [], {"a": 1}, "9" * 30, True, "2099-01-01 00:00:00", 0, "1.2万", "-1", "\x00", "万万"]


@st.composite
def retype(draw, data: bytes) -> bytes:
    """Give one field of one record another type or an absurd value (the file stays well formed)."""
    text = data.decode("utf-8", errors="strict") if _utf8(data) else None
    if text is None:
        return data
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError:
            return data
        if not records or not isinstance(records, list) or not isinstance(records[0], dict):
            return data
        i = draw(st.integers(0, len(records) - 1))
        if isinstance(records[i], dict) and records[i]:
            key = draw(st.sampled_from(sorted(records[i])))
            records[i][key] = draw(st.sampled_from(ODD_VALUES))
        return json.dumps(records, indent=4, ensure_ascii=False).encode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if len(rows) < 2:
        return data
    i = draw(st.integers(1, len(rows) - 1))
    if rows[i]:
        j = draw(st.integers(0, len(rows[i]) - 1))
        rows[i][j] = str(draw(st.sampled_from(ODD_VALUES)))
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def mutated(data: bytes):
    one = st.one_of(cut(data), swap(data), flip(data), reencode(data), retype(data))
    return one.flatmap(lambda d: st.one_of(st.just(d), cut(d), swap(d), flip(d), reencode(d), retype(d)))


# ---------------------------------------------------------------- the test's own reader


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _lines(data: bytes) -> int:
    body = data[len(BOM) :] if data.startswith(BOM) else data
    return sum(1 for ln in body.split(b"\n") if ln.strip())


def independent_count(data: bytes) -> tuple[str, int]:
    """("records", n) when the file reads as records by the documented rules, ("lines", n) when
    it does not (it is then refused whole and counts its non-blank lines), ("empty", 0)."""
    body = data[len(BOM) :] if data.startswith(BOM) else data
    if not body.strip():
        return "empty", 0
    if b"\x00" in body[:65536]:
        return "lines", _lines(data)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = body.decode("gb18030")
        except UnicodeDecodeError:
            return "lines", _lines(data)
    first = text.lstrip()[:1]
    if first == "[":
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            return "lines", _lines(data)
        return ("records", len(value)) if isinstance(value, list) else ("lines", _lines(data))
    if first == "{":
        try:
            if isinstance(json.loads(text), dict):
                return "records", 1
        except (json.JSONDecodeError, RecursionError):
            pass
        return "records", sum(1 for ln in text.split("\n") if ln.rstrip("\r").strip())
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error:
        return "lines", _lines(data)
    return "records", max(0, len(rows) - 1)


# ---------------------------------------------------------------- watching what is opened

#: What reading a file may open besides it: Python's own modules and the time zone database.
_PYTHON = tuple(
    {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *zoneinfo.TZPATH)}
)


def _ingest_watched(settings: Settings) -> tuple[object, list[str]]:
    with watch_opens() as opened:
        result = ingest_day(settings, DAY)
    return result, list(opened)


def _check(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        outside = root / "outside"
        outside.mkdir()
        (outside / "secret.csv").write_text("search_id,user_id,event_time,query\ns,u,1,secret\n")
        folder = root / "landing" / "notes" / "xiaohongshu" / f"dt={DAY}"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        (folder / "zz_link.csv").symlink_to(outside / "secret.csv")
        settings = Settings(home=root / "home", landing=root / "landing")

        result, opened = _ingest_watched(settings)  # nothing crashes

        landing, home = (os.path.realpath(root / d) + os.sep for d in ("landing", "home"))
        foreign = [
            p for p in opened
            if not p.startswith((landing, home)) and not os.path.realpath(p).startswith(_PYTHON)
        ]
        assert not foreign, foreign  # nothing outside the landing zone (and the lake it writes)
        assert not [p for p in opened if p.startswith(os.path.realpath(outside))]

        rel = f"notes/xiaohongshu/dt={DAY}/{name}"
        files = result.ingest_files.set_index("source_file")
        f = files.loc[rel]
        quarantine = result.quarantine[result.quarantine.source_file == rel]
        stored = lake.read_table(settings.lake, "notes")
        accepted = int((stored.source_file == rel).sum())

        kind, n = independent_count(data)
        assert f.accepted_rows == accepted, (f, accepted)
        assert f.input_rows == f.accepted_rows + f.quarantined_rows, f
        if f.refused_rows:
            assert len(quarantine) == 1 and quarantine.row_number.iloc[0] == 0, quarantine
            assert f.input_rows == max(1, n), (kind, n, f, quarantine.message.tolist())
        else:
            assert kind != "lines", (kind, n, f)
            assert f.input_rows == n, (kind, n, f, quarantine.message.tolist()[:5])
            assert len(quarantine) == f.quarantined_rows, f
        assert files.loc[f"notes/xiaohongshu/dt={DAY}/zz_link.csv", "format"] == "symlink"


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_unmutated_samples_are_read_whole():
    for name, data in SAMPLES.items():
        _check(name, data)


@FUZZ
@given(mutated(SAMPLES["notes.json"]))
def test_fuzzed_mediacrawler_json(data):
    _check("notes.json", data)


@FUZZ
@given(mutated(SAMPLES["notes.csv"]))
def test_fuzzed_mediacrawler_csv(data):
    _check("notes.csv", data)


# ---------------------------------------------------------------- the fast path of event files

_EPOCH = int(datetime(2025, 9, 9, 12, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")).timestamp())
_EXPOSURE_ROWS = [
    {
        "platform": "douyin",
        "note_id": f"n{i % 4}",
        "ext_user_id": f"user-{i % 5:05d}",
        "event_time": _EPOCH + 37 * (i // 2),
        "kind": ["impression", "read", "like"][i % 3],
        "dwell_ms": None if i % 3 == 0 else 1000 + i,
    }
    for i in range(14)
]
#: Spellings a sender may use or get wrong: each is read by the fast path or left to the general one.
TRICKY = [
    "", " ", "x", " n1", "n1 ", "\u3000n1", "n1\u00a0", "READ", "Read", " read", "impression",
    "0x10", "+5", "-5", "05", "1e3", "1.0", "12.5", "NaN", "null", "None", "\t7",
    str(_EPOCH), str(_EPOCH * 1000), str(_EPOCH) + ".0", "2025-09-09 12:00:00", "2025-09-09T12:00:00",
    "2025-09-09T04:00:00Z", "2025-09-09T12:00:00+08:00", "2025-09-09 12:00:00-05:30",
    "2025-02-30 25:61:00", "2025-09-09 12:00:00.5", "2025-09-09_12:00:00", "1999-12-31 23:59:59",
    "2030-01-01 00:00:00", "9" * 16, "douyin", "DY", "抖音", "xiaohongshu", "o1", "b_x", "",
]
JSON_ODD = [None, True, 0, -1, 1.5, 2.0, 10**20, [], {"a": 1}, "s", _EPOCH, _EPOCH * 1000.0]


def _exposure_jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _exposure_csv(rows) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    w.writerow(list(rows[0]))
    w.writerows([["" if v is None else v for v in r.values()] for r in rows])
    return buf.getvalue().encode()


ORDERS_CSV = (
    "order_id,user_id,item_id,brand_id,category_id,amount_fen,paid_at,status\n"
    + "".join(
        f"o{i},u{i % 3},i{i % 4},{'' if i % 3 == 0 else 'b_own'},{'' if i % 5 == 0 else 'c_own'},"
        f"{100 * (i + 1)},{_EPOCH + i},{'paid' if i % 4 else 'refunded'}\n"
        for i in range(12)
    )
).encode()
ITEMS_CSV = b"item_id,brand_id,category_id,title\ni0,b_a,c_a,t\ni1,b_b,c_b,t\ni2,b_c,c_c,\n"


@st.composite
def field_edit(draw, data: bytes) -> bytes:
    """Put tricky spellings (and, in JSONL, other JSON types) into fields of a well-formed file."""
    text = data.decode("utf-8", errors="strict") if _utf8(data) else None
    if text is None:
        return data
    if text.startswith("{"):
        lines = [json.loads(ln) for ln in text.splitlines() if ln.strip()] if _jsonl_ok(text) else None
        if not lines:
            return data
        for _ in range(draw(st.integers(1, 3))):
            row = lines[draw(st.integers(0, len(lines) - 1))]
            key = draw(st.sampled_from(sorted(row) + ["Kind", " note_id", "extra"]))
            row[key] = draw(st.sampled_from(JSON_ODD + TRICKY))
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines).encode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if len(rows) < 2:
        return data
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0 if draw(st.integers(0, 9)) == 0 else 1, len(rows) - 1))
        if rows[i]:
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = draw(st.sampled_from(TRICKY))
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows(rows)
    return buf.getvalue().encode()


def _jsonl_ok(text: str) -> bool:
    try:
        return all(isinstance(json.loads(ln), dict) for ln in text.splitlines() if ln.strip())
    except json.JSONDecodeError:
        return False


def edited(data: bytes):
    return st.one_of(field_edit(data), field_edit(data).flatmap(lambda d: mutated(d)), mutated(data))


def _lake_tables(home: Path) -> dict[str, object]:
    import pyarrow.parquet as pq

    out = {}
    for path in sorted((home / "lake").rglob("*.parquet")):
        rel = path.relative_to(home / "lake")
        if not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = pq.read_table(path)
    return out


def _same_with_and_without_the_fast_path(files: dict[str, bytes]) -> int:
    """Ingest the files with the fast path and with the general path alone: the lake (every
    table, quarantine and ingest_files), errors and counts must be the same. Returns how many
    files the fast path took."""
    from unittest import mock

    from pipelines.ingest import fast

    taken = []
    real = fast.read_table

    def counted(*a, **k):
        got = real(*a, **k)
        taken.append(got is not None)
        return got

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            (root / "landing" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "landing" / rel).write_bytes(data)
        results = {}
        for name, reader in (("fast", counted), ("general", lambda *a, **k: None)):
            with mock.patch.object(fast, "read_table", reader):
                settings = Settings(home=root / name, landing=root / "landing")
                r = ingest_day(settings, DAY, run_id="run")  # nothing crashes
                results[name] = (r.errors, r.written, r.collapsed, _lake_tables(root / name))
        fast_tables, general_tables = results["fast"][3], results["general"][3]
        assert fast_tables.keys() == general_tables.keys()
        for rel, table in general_tables.items():
            assert fast_tables[rel].equals(table), (rel, fast_tables[rel].to_pylist()[:5], table.to_pylist()[:5])
        assert results["fast"][:3] == results["general"][:3]
    return sum(taken)


def _parquet(rows) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


EXPOSURE_FILES = {
    "jsonl": _exposure_jsonl(_EXPOSURE_ROWS),
    "csv": _exposure_csv(_EXPOSURE_ROWS),
    "csv_text_times": _exposure_csv(
        [{**r, "event_time": f"2025-09-09 12:{i % 60:02d}:00"} for i, r in enumerate(_EXPOSURE_ROWS)]
    ),
}


def test_clean_event_files_take_the_fast_path_and_land_as_the_general_path_lands_them():
    files = {
        f"exposures/douyin/dt={DAY}/e.jsonl": EXPOSURE_FILES["jsonl"],
        f"exposures/douyin/dt={DAY}/e.csv": EXPOSURE_FILES["csv"],
        f"exposures/douyin/dt={DAY}/f.csv": EXPOSURE_FILES["csv_text_times"],
        f"exposures/douyin/dt={DAY}/g.parquet": _parquet(_EXPOSURE_ROWS),
        f"exposures/douyin/dt={DAY}/h.parquet": _parquet(
            [{**r, "event_time": f"2025-09-09T04:{i:02d}:00Z"} for i, r in enumerate(_EXPOSURE_ROWS)]
        ),
        f"orders/dt={DAY}/o.csv": ORDERS_CSV,
        "items/items.csv": ITEMS_CSV,
    }
    assert _same_with_and_without_the_fast_path(files) == 6


def test_files_the_fast_path_must_hand_back_land_as_the_general_path_lands_them():
    broken_last = EXPOSURE_FILES["jsonl"][:-20]  # a truncated last line: a malformed record
    bad_row = EXPOSURE_FILES["csv"].replace(b'"read"', b'"READ "', 1).replace(b'"like"', b'"lik"', 1)
    rows = [dict(r) for r in _EXPOSURE_ROWS]
    rows[3]["event_time"] = "2025-02-30 25:61:00"
    files = {
        f"exposures/douyin/dt={DAY}/a.jsonl": broken_last,
        f"exposures/douyin/dt={DAY}/b.csv": bad_row,  # rows left to the general path one by one
        f"exposures/douyin/dt={DAY}/c.parquet": _parquet([{**r, "event_time": str(r["event_time"])} for r in rows]),
        f"exposures/douyin/dt={DAY}/d.jsonl": _exposure_jsonl(rows),  # JSON of mixed types: whole file
        f"exposures/douyin/dt={DAY}/e.jsonl": EXPOSURE_FILES["jsonl"].replace(b"\n", b"\r\n"),
        f"orders/dt={DAY}/o.csv": ORDERS_CSV.replace(b"i1,", b"i9,"),  # an item the catalog lacks
        "items/items.csv": ITEMS_CSV,
    }
    assert _same_with_and_without_the_fast_path(files) >= 3


@FUZZ
@given(st.sampled_from(sorted(EXPOSURE_FILES)).flatmap(lambda k: st.tuples(st.just(k), edited(EXPOSURE_FILES[k]))))
def test_fuzzed_exposure_files_land_as_the_general_path_lands_them(case):
    kind, data = case
    suffix = "jsonl" if kind == "jsonl" else "csv"
    _same_with_and_without_the_fast_path({f"exposures/douyin/dt={DAY}/e.{suffix}": data})


@FUZZ
@given(edited(ORDERS_CSV))
def test_fuzzed_order_files_land_as_the_general_path_lands_them(data):
    _same_with_and_without_the_fast_path({f"orders/dt={DAY}/o.csv": data, "items/items.csv": ITEMS_CSV})


def test_an_hours_only_offset_and_a_field_spelled_twice_are_read_not_crashed_on():
    """Two values the fuzzing found that made both paths fail: a time such as "12:08-00" (an
    offset of hours alone, which pandas reads as an offset among naive times) and a JSONL line
    that gives one field under two spellings (``Kind`` and ``kind``)."""
    import pyarrow.parquet as pq

    rows = [dict(r) for r in _EXPOSURE_ROWS]
    rows[1]["event_time"] = "2025-09-09 12:08-00"
    twice = [dict(r) for r in _EXPOSURE_ROWS]
    twice[2]["Kind"] = "read"  # two spellings in one line: which one was meant is unknown
    twice[3] = {("Kind" if k == "kind" else k): v for k, v in twice[3].items()}  # one spelling: fine
    files = {
        f"exposures/douyin/dt={DAY}/a.jsonl": _exposure_jsonl(rows),
        f"exposures/douyin/dt={DAY}/b.csv": _exposure_csv(rows),
        f"exposures/douyin/dt={DAY}/c.jsonl": _exposure_jsonl(twice),
    }
    _same_with_and_without_the_fast_path(files)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            (root / "landing" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "landing" / rel).write_bytes(data)
        settings = Settings(home=root / "home", landing=root / "landing")
        result = ingest_day(settings, DAY, run_id="run")
        assert result.totals["exposures"]["input_rows"] == 3 * len(_EXPOSURE_ROWS)
        assert result.totals["exposures"]["quarantined_rows"] == 1
        quarantine = pq.read_table(next((root / "home" / "lake" / "quarantine").rglob("*.parquet"))).to_pylist()
        assert [(q["row_number"], q["reason"]) for q in quarantine] == [(3, "malformed_record")]
        assert "'kind' is given more than once" in quarantine[0]["message"]
        exposures = lake.read_table(settings.lake, "exposures")
        # 12:08 at offset -00 is 12:08 UTC (the CSV's row is the same row, stored once)
        assert (exposures["event_time"] == pd.Timestamp("2025-09-09 12:08", tz="UTC")).sum() == 1
        t = result.totals["exposures"]
        assert t["input_rows"] == t["accepted_rows"] + t["quarantined_rows"]
        assert (exposures["kind"] == twice[3]["Kind"]).sum() >= 1
