"""Hostile but fair files (issue 17): the landing zone is a boundary, every number and time is
bounded, mixed encodings are never accepted garbled, SQLite files are read from memory, and the
accounting counts each side on its own."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opened import watch_opens
from test_ingest_helpers import DAY, FIXTURES, drop, reasons, run, settings_for, sqlite_from_sql

from pipelines import lake, runner, schemas
from pipelines.ingest.day import delivery_files
from pipelines.settings import Settings

SECRET = "root:x:0:0:CANARY-SECRET-LINE:/root:/bin/bash\n"
SEARCH_HEADER = "search_id,user_id,event_time,query\n"
ORDER_HEADER = "order_id,user_id,item_id,brand_id,category_id,amount_fen,paid_at,status\n"


def _secret(tmp_path: Path) -> Path:
    """A file outside the landing zone, as /etc/passwd would be."""
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SECRET)
    return path


def _lake_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((home / "lake").rglob("*")) if p.is_file())


# ---------------------------------------------------------------- the landing zone is a boundary


def test_a_link_to_a_file_outside_is_one_record_with_its_reason_and_no_content(tmp_path):
    secret = _secret(tmp_path)
    drop(tmp_path, f"searches/dt={DAY}/good.csv", SEARCH_HEADER + "s1,u1,1704513600,露营\n")
    link = tmp_path / "landing" / "searches" / f"dt={DAY}" / "passwd.csv"
    link.symlink_to(secret)

    with watch_opens() as opened:
        result = run(tmp_path)
    assert str(secret) not in opened and not any(p.endswith("passwd.csv") and "landing" not in p for p in opened)
    q = result.quarantine
    assert q[["source_file", "row_number", "reason", "raw"]].values.tolist() == [
        [f"searches/dt={DAY}/passwd.csv", 0, "symlink", ""]
    ]
    assert "outside the landing zone" in q.message.iloc[0] and "CANARY" not in q.message.iloc[0]
    files = result.ingest_files.set_index("source_file")
    assert files.loc[f"searches/dt={DAY}/passwd.csv", ["format", "input_rows", "quarantined_rows"]].tolist() == [
        "symlink",
        1,
        1,
    ]
    assert pd.isna(files.loc[f"searches/dt={DAY}/passwd.csv", "file_bytes"])
    assert lake.read_table(tmp_path / "lake", "searches").search_id.tolist() == ["s1"]  # the day goes on
    assert b"CANARY-SECRET" not in _lake_bytes(tmp_path)


def test_links_to_folders_are_refused_not_followed_wherever_they_are(tmp_path):
    outside = tmp_path / "outside"
    secret = _secret(tmp_path)
    (outside / "searches.csv").write_text(SEARCH_HEADER + "s_out,u9,1704513600,CANARY-SECRET-LINE\n")
    drop(tmp_path, f"searches/dt={DAY}/good.csv", SEARCH_HEADER + "s1,u1,1704513600,露营\n")
    landing = tmp_path / "landing"
    (landing / "searches" / f"dt={DAY}" / "sub").symlink_to(outside)  # a folder inside a delivery
    (landing / "orders").mkdir()
    (landing / "orders" / f"dt={DAY}").symlink_to(outside)  # a whole delivery folder
    (landing / "exposures").mkdir()
    (landing / "exposures" / "douyin").symlink_to(outside)  # a platform folder
    (landing / "items").mkdir()
    (landing / "items" / "catalog.csv").symlink_to(secret)  # the catalog

    with watch_opens() as opened:
        result = run(tmp_path)
    assert not [p for p in opened if p.startswith(str(outside))]
    refused = result.quarantine.set_index("source_file")
    assert refused.reason.to_dict() == {
        "items/catalog.csv": "symlink",
        "exposures/douyin": "symlink",
        f"searches/dt={DAY}/sub": "symlink",
        f"orders/dt={DAY}": "symlink",
    }
    assert (refused.raw == "").all() and (refused.row_number == 0).all()
    assert refused.loc["exposures/douyin", "platform"] == "douyin"
    assert lake.read_table(tmp_path / "lake", "searches").search_id.tolist() == ["s1"]
    assert b"CANARY-SECRET" not in _lake_bytes(tmp_path)


def test_a_fifo_in_the_landing_zone_is_refused_without_waiting_for_a_writer(tmp_path):
    drop(tmp_path, f"searches/dt={DAY}/good.csv", SEARCH_HEADER + "s1,u1,1704513600,a\n")
    os.mkfifo(tmp_path / "landing" / "searches" / f"dt={DAY}" / "pipe.csv")
    done: dict = {}
    worker = threading.Thread(target=lambda: done.setdefault("result", run(tmp_path)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert "result" in done, "ingestion blocked on a FIFO"
    assert reasons(done["result"], "pipe.csv") == {0: "not_a_file"}


def test_a_file_swapped_for_a_link_after_the_listing_is_refused(tmp_path):
    from pipelines.ingest import landing as landing_zone

    secret = _secret(tmp_path)
    drop(tmp_path, f"searches/dt={DAY}/a.csv", SEARCH_HEADER)
    (entry,) = landing_zone.folder_entries(tmp_path / "landing", f"searches/dt={DAY}")
    entry.path.unlink()
    entry.path.symlink_to(secret)
    with watch_opens() as opened, pytest.raises(landing_zone.Refused) as refused:
        landing_zone.read_bytes(entry)
    assert refused.value.reason == "symlink" and str(secret) not in opened


def test_the_arrival_fingerprint_never_opens_a_link_target_and_sees_links_come_and_go(tmp_path):
    secret = _secret(tmp_path)
    settings = settings_for(tmp_path)
    drop(tmp_path, f"searches/dt={DAY}/good.csv", SEARCH_HEADER + "s1,u1,1704513600,a\n")
    first = runner.stage_ingest(settings, DAY)
    assert first["deliveries"] == [DAY.isoformat()]

    (tmp_path / "landing" / "searches" / f"dt={DAY}" / "passwd.csv").symlink_to(secret)
    (tmp_path / "landing" / "items").mkdir()
    (tmp_path / "landing" / "items" / "items.csv").symlink_to(secret)
    assert any(p.name == "passwd.csv" for p in delivery_files(settings.landing, DAY))
    with watch_opens() as opened:
        again = runner.stage_ingest(settings, DAY)
    assert str(secret) not in opened
    assert again["deliveries"] == [DAY.isoformat()]  # a new link is a change of the delivery
    assert lake.read_table(settings.lake, "quarantine", [DAY]).reason.tolist().count("symlink") == 2
    with watch_opens() as opened:
        assert runner.stage_ingest(settings, DAY)["deliveries"] == []  # and unchanged, nothing to do
    assert str(secret) not in opened


# ---------------------------------------------------------------- bounds on numbers and times


def test_absurd_amounts_are_out_of_range_and_the_day_goes_on(tmp_path):
    drop(
        tmp_path,
        f"orders/dt={DAY}/orders.csv",
        ORDER_HEADER
        + "o1,u1,i1,b1,c1,1e308,1704513600,paid\n"  # 2: the float that became -9223372036854775808
        + "o2,u1,i1,b1,c1,1e19,1704513600,paid\n"  # 3
        + "o3,u1,i1,b1,c1,9223372036854775808,1704513600,paid\n"  # 4: one past int64
        + "o4,u1,i1,b1,c1,1000000000001,1704513600,paid\n"  # 5: 10^12 + 1 fen
        + "o5,u1,i1,b1,c1,1000000000000,1704513600,paid\n"  # 6: 10^12 fen is the largest amount
        + "o6,u1,i1,b1,c1,1,1704513600,paid\n",  # 7
    )
    drop(
        tmp_path,
        f"orders/dt={DAY}/orders.jsonl",
        json.dumps({"order_id": "o7", "user_id": "u", "item_id": "i", "brand_id": "b", "category_id": "c",
                    "amount_fen": 1e308, "paid_at": 1704513600, "status": "paid"}) + "\n",
    )
    path = tmp_path / "landing" / "orders" / f"dt={DAY}" / "orders.parquet"
    pq.write_table(
        pa.table(
            {
                "order_id": ["o8", "o9"],
                "user_id": ["u", "u"],
                "item_id": ["i", "i"],
                "brand_id": ["b", "b"],
                "category_id": ["c", "c"],
                "amount_fen": pa.array([2**63 - 1, 500], pa.int64()),
                "paid_at": pa.array([1704513600, 1704513600], pa.int64()),
                "status": ["paid", "paid"],
            }
        ),
        path,
    )
    result = run(tmp_path)
    assert reasons(result, "orders.csv") == dict.fromkeys([2, 3, 4, 5], "out_of_range")
    assert reasons(result, "orders.jsonl") == {1: "out_of_range"}
    assert reasons(result, "orders.parquet") == {1: "out_of_range"}
    q = result.quarantine
    message = q.loc[q.source_file.str.endswith(".csv") & q.row_number.eq(5), "message"].iloc[0]
    assert "must be <= 1,000,000,000,000" in message
    orders = lake.read_table(tmp_path / "lake", "orders").set_index("order_id")
    assert orders.amount_fen.to_dict() == {"o5": 10**12, "o6": 1, "o9": 500}


def test_counts_and_dwell_times_are_bounded(tmp_path):
    drop(
        tmp_path,
        f"exposures/douyin/dt={DAY}/exp.csv",
        "note_id,ext_user_id,event_time,kind,dwell_ms\n"
        "n1,e1,1704513600,read,1e19\n"  # 2
        "n1,e2,1704513600,read,999999999999\n",  # 3: the largest count
    )
    notes = FIXTURES / "notes" / "mediacrawler_douyin_new_types.jsonl"
    good = json.loads(notes.read_text(encoding="utf-8").splitlines()[0])
    drop(tmp_path, f"notes/douyin/dt={DAY}/n.jsonl", json.dumps({**good, "liked_count": "99999999999999999999"}) + "\n")
    result = run(tmp_path)
    assert reasons(result, "exp.csv") == {2: "out_of_range"}
    assert reasons(result, "n.jsonl") == {1: "out_of_range"}
    assert lake.read_table(tmp_path / "lake", "exposures").dwell_ms.tolist() == [999_999_999_999]


def test_impossible_timestamps_are_out_of_range(tmp_path):
    # Delivery day 2024-01-07: plausible from 2000-01-01 00:00 to 2024-01-08 24:00 (Asia/Shanghai).
    drop(
        tmp_path,
        f"searches/dt={DAY}/s.csv",
        SEARCH_HEADER
        + "s1,u,0,a\n"  # 2: 1970
        + "s2,u,4070908800,a\n"  # 3: 2099 in epoch seconds
        + "s3,u,2099-01-01 00:00:00,a\n"  # 4
        + "s4,u,1999-12-31 23:59:59,a\n"  # 5: a second too early
        + "s5,u,2000-01-01 00:00:00,a\n"  # 6: the first plausible second
        + "s6,u,2024-01-08 23:59:59,a\n"  # 7: the last plausible second
        + "s7,u,2024-01-09 00:00:00,a\n"  # 8: a second too late
        + "s8,u,1e308,a\n"  # 9: no timestamp at all
        + "s9,u,inf,a\n",  # 10
    )
    result = run(tmp_path)
    assert reasons(result) == {
        2: "out_of_range",
        3: "out_of_range",
        4: "out_of_range",
        5: "out_of_range",
        8: "out_of_range",
        9: "bad_timestamp",
        10: "bad_timestamp",
    }
    message = result.quarantine.set_index("row_number").loc[3, "message"]
    assert "2099-01-01" in message and "2000-01-01" in message and "2024-01-08" in message
    assert sorted(lake.read_table(tmp_path / "lake", "searches").search_id) == ["s5", "s6"]


def test_impossible_epochs_in_a_typed_parquet_column(tmp_path):
    folder = tmp_path / "landing" / "exposures" / "douyin" / f"dt={DAY}"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "note_id": ["n1", "n2", "n3", "n4", "n5"],
                "ext_user_id": ["e1", "e2", "e3", "e4", "e5"],
                "event_time": pa.array([1704513600.0, float("inf"), 1e308, 0.0, -1e18]),
                "kind": ["read"] * 5,
            }
        ),
        folder / "e.parquet",
    )
    result = run(tmp_path)
    assert reasons(result) == {2: "bad_timestamp", 3: "bad_timestamp", 4: "out_of_range", 5: "bad_timestamp"}
    assert lake.read_table(tmp_path / "lake", "exposures").note_id.tolist() == ["n1"]


def test_a_day_with_hostile_orders_and_times_runs_through_the_funnel_and_the_gate(tmp_path):
    from pipelines.quality import checks
    from pipelines.simulate import simulate_world
    from pipelines.simulate.arrival import ArrivalParams

    start = date(2026, 3, 1)
    landing = tmp_path / "landing"
    simulate_world(landing, users=120, days=1, start=start, seed=3, seeds_dir=Settings().seeds,
                   arrival=ArrivalParams.in_order())
    hostile = landing / "orders" / f"dt={start}" / "zz_hostile.csv"
    hostile.write_text(
        ORDER_HEADER
        + "h1,u1,i1,b1,c1,1e308,2026-03-01 10:00:00,paid\n"
        + "h2,u1,i1,b1,c1,1e19,2026-03-01 10:00:00,paid\n"
        + "h3,u1,i1,b1,c1,100,2099-01-01 00:00:00,paid\n"
        + "h4,u1,i1,b1,c1,100,1970-01-01 08:00:00,paid\n"
    )
    exposures = next((landing / "exposures").rglob("*.csv"), None) or next((landing / "exposures").rglob("*"))
    settings = Settings(home=tmp_path / "home", landing=landing, warehouse_url=f"sqlite:///{tmp_path / 'w.sqlite'}")
    summary = runner.run_day(settings, start, report=False)  # the quality gate runs: nothing blocks
    assert summary.plan.computes and summary.published
    q = lake.read_table(settings.lake, "quarantine", [start])
    assert q.loc[q.source_file.str.endswith("zz_hostile.csv"), "reason"].tolist() == ["out_of_range"] * 4
    orders = lake.read_table(settings.lake, "orders", [start])
    assert orders.amount_fen.between(1, 10**12).all() and not orders.order_id.str.startswith("h").any()
    lag = checks.freshness(settings, start, checks.table_frames(settings, start)).iloc[0]
    assert lag["orders_event_lag_hours"] >= -24 and exposures.exists()


# ---------------------------------------------------------------- values pandas reads awkwardly


def _files(result, *names: str) -> dict[str, list[int]]:
    """source file name -> [input, accepted, quarantined] rows."""
    files = result.ingest_files.assign(name=result.ingest_files.source_file.str.rsplit("/", n=1).str[-1])
    rows = files.set_index("name")[["input_rows", "accepted_rows", "quarantined_rows"]]
    return {name: rows.loc[name].tolist() for name in names}


def _message(result, name: str, row: int) -> str:
    q = result.quarantine
    return q.loc[q.source_file.str.endswith("/" + name) & q.row_number.eq(row), "message"].iloc[0]


def test_timestamps_finer_than_microseconds_are_bad_never_rounded(tmp_path):
    drop(
        tmp_path,
        f"searches/dt={DAY}/s.csv",
        SEARCH_HEADER
        + "s1,u,2024-01-06T10:00:00.1234567+08:00,a\n"  # 2: 7 digits, with an offset
        + "s2,u,2024-01-06 10:00:00.123456789,a\n"  # 3: nanoseconds, naive
        + "s3,u,2024-01-06T10:00:00.123456789Z,a\n"  # 4
        + "s4,u,2024-01-06T10:00:00.123456000+08:00,a\n"  # 5: zeros past microseconds lose nothing
        + "s5,u,2024-01-06T10:00:00.123456+08:00,a\n"  # 6
        + "s6,u,2300-01-01 00:00:00,a\n"  # 7: too late, though its neighbours have nanoseconds
        + "s7,u,１２３,a\n"  # 8: full-width digits
        + "s8,u,99999999999999999999999999,a\n"  # 9: an epoch past any timestamp
        + "s9,u,1704513600,a\n",  # 10
    )
    good = json.loads((FIXTURES / "notes" / "mediacrawler_xhs_v2026.jsonl").read_text(encoding="utf-8").splitlines()[0])
    drop(
        tmp_path,
        f"notes/xiaohongshu/dt={DAY}/n.jsonl",
        json.dumps({**good, "note_id": "n1", "time": "2024-01-06T10:00:00.1234567+08:00"}) + "\n"
        + json.dumps({**good, "note_id": "n2"}) + "\n",
    )
    result = run(tmp_path)
    assert reasons(result, "s.csv") == {
        2: "bad_timestamp",
        3: "bad_timestamp",
        4: "bad_timestamp",
        7: "out_of_range",
        8: "bad_timestamp",
        9: "bad_timestamp",
    }
    assert reasons(result, "n.jsonl") == {1: "bad_timestamp"}
    assert _files(result, "s.csv", "n.jsonl") == {"s.csv": [9, 3, 6], "n.jsonl": [2, 1, 1]}
    assert _message(result, "s.csv", 2).startswith(
        f"searches/dt={DAY}/s.csv row 2: event_time '2024-01-06T10:00:00.1234567+08:00' is not a "
        "timestamp: its fraction of a second has more than 6 digits (finer than microseconds)"
    )
    assert _message(result, "n.jsonl", 1).startswith(
        f"notes/xiaohongshu/dt={DAY}/n.jsonl row 1: published_at '2024-01-06T10:00:00.1234567+08:00'"
    )
    searches = lake.read_table(tmp_path / "lake", "searches").set_index("search_id")
    assert sorted(searches.index) == ["s4", "s5", "s9"]
    assert searches.event_time["s4"] == searches.event_time["s5"] == pd.Timestamp("2024-01-06 02:00:00.123456Z")


def test_early_url_only_notes_whose_urls_are_all_empty_are_missing_their_id(tmp_path):
    # MediaCrawler's early CSV shape: no id column, the id is the last segment of note_url.
    fixture = FIXTURES / "notes" / "mediacrawler_xhs_url_only.csv"
    drop(tmp_path, f"notes/xiaohongshu/dt={DAY}/good.csv", fixture.read_bytes())
    header, *rows = list(csv.reader(io.StringIO(fixture.read_text(encoding="utf-8-sig"), newline="")))
    first = dict(zip(header, rows[0], strict=True))
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows([header] + [[*r[:-1], ""] for r in rows[:2]])
    drop(tmp_path, f"notes/xiaohongshu/dt={DAY}/empty.csv", out.getvalue())
    drop(tmp_path, f"notes/xiaohongshu/dt={DAY}/nulls.jsonl", "".join(
        json.dumps({**first, "note_url": url}, ensure_ascii=False) + "\n" for url in (None, None)
    ))
    drop(tmp_path, f"notes/xiaohongshu/dt={DAY}/blank.json", json.dumps(
        [{**first, "note_url": url} for url in (None, "", "   ")], ensure_ascii=False
    ))
    result = run(tmp_path)
    assert reasons(result, "empty.csv") == {2: "missing_required", 3: "missing_required"}
    assert reasons(result, "nulls.jsonl") == {1: "missing_required", 2: "missing_required"}
    assert reasons(result, "blank.json") == dict.fromkeys([1, 2, 3], "missing_required")
    assert reasons(result, "good.csv") == {}
    assert _files(result, "good.csv", "empty.csv", "nulls.jsonl", "blank.json") == {
        "good.csv": [20, 20, 0],
        "empty.csv": [2, 0, 2],
        "nulls.jsonl": [2, 0, 2],
        "blank.json": [3, 0, 3],
    }
    assert _message(result, "nulls.jsonl", 2).startswith(
        f"notes/xiaohongshu/dt={DAY}/nulls.jsonl row 2: required field 'note_id' is empty"
    )


def test_a_json_object_or_array_among_integers_is_the_wrong_type(tmp_path):
    searches = [
        {"search_id": "s1", "user_id": "u", "event_time": 1704513600, "query": "q"},
        {"search_id": "s2", "user_id": "u", "event_time": {"at": 1704513600}, "query": "q"},  # 2
        {"search_id": "s3", "user_id": "u", "event_time": [1704513600], "query": "q"},  # 3
        {"search_id": 4, "user_id": "u", "event_time": 1704513600, "query": "q"},  # 4: a number id is fine
        {"search_id": {"id": 5}, "user_id": "u", "event_time": 1704513600, "query": "q"},  # 5
    ]
    drop(tmp_path, f"searches/dt={DAY}/s.jsonl", "".join(json.dumps(r) + "\n" for r in searches))
    good = json.loads((FIXTURES / "notes" / "mediacrawler_douyin_new_types.jsonl").read_text(encoding="utf-8").splitlines()[0])
    notes = [
        {**good, "aweme_id": "a1", "create_time": {"t": 1}},  # 1: among whole-number times
        {**good, "aweme_id": "a2", "title": [1]},  # 2: among text and a number
        {**good, "aweme_id": "a3", "title": 7},  # 3
    ]
    drop(tmp_path, f"notes/douyin/dt={DAY}/n.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in notes))
    result = run(tmp_path)
    assert reasons(result, "s.jsonl") == {2: "bad_type", 3: "bad_type", 5: "bad_type"}
    assert reasons(result, "n.jsonl") == {1: "bad_type", 2: "bad_type"}
    assert _files(result, "s.jsonl", "n.jsonl") == {"s.jsonl": [5, 2, 3], "n.jsonl": [3, 1, 2]}
    assert _message(result, "s.jsonl", 2).startswith(
        f"searches/dt={DAY}/s.jsonl row 2: field 'event_time' holds a JSON object or array"
    )
    assert _message(result, "s.jsonl", 5).startswith(
        f"searches/dt={DAY}/s.jsonl row 5: field 'search_id' holds a JSON object or array"
    )
    assert _message(result, "n.jsonl", 2).startswith(
        f"notes/douyin/dt={DAY}/n.jsonl row 2: field 'title' holds a JSON object or array, not text"
    )
    assert sorted(lake.read_table(tmp_path / "lake", "searches").search_id) == ["4", "s1"]
    assert lake.read_table(tmp_path / "lake", "notes").note_id.tolist() == ["a3"]


# ---------------------------------------------------------------- encodings


UTF8_QUERY, GBK_QUERY = "猫粮 推荐", "防晒霜 推荐"


def test_a_csv_of_utf8_lines_with_a_few_gbk_lines_never_accepts_garbled_text(tmp_path):
    data = (
        SEARCH_HEADER.encode()
        + f"s1,u1,1704513600,{UTF8_QUERY}\n".encode()
        + f"s2,u2,1704513600,{GBK_QUERY}\n".encode("gbk")
        + f"s3,u3,1704513600,{UTF8_QUERY}2\n".encode()
        + b"s4,u4,1704513600,plain ascii\n"
    )
    drop(tmp_path, f"searches/dt={DAY}/mixed.csv", data)
    result = run(tmp_path)
    assert result.ingest_files.format.tolist() == ["csv_gb18030"]
    assert reasons(result) == {2: "ambiguous_encoding", 4: "ambiguous_encoding"}
    q = result.quarantine.set_index("row_number")
    assert q.loc[2, "raw"] == f"s1,u1,1704513600,{UTF8_QUERY}"  # the raw bytes, exactly (they are UTF-8)
    searches = lake.read_table(tmp_path / "lake", "searches").set_index("search_id")
    assert searches["query"].to_dict() == {"s2": GBK_QUERY, "s4": "plain ascii"}
    assert "鐚" not in "".join(searches["query"])  # 猫粮 read as GB18030


def test_mixed_jsonl_and_json_arrays_and_a_bom_file_with_gbk_lines(tmp_path):
    def line(sid: str, query: str) -> dict:
        return {"search_id": sid, "user_id": "u", "event_time": 1704513600, "query": query}

    jsonl = json.dumps(line("j1", UTF8_QUERY), ensure_ascii=False).encode() + b"\n"
    jsonl += json.dumps(line("j2", GBK_QUERY), ensure_ascii=False).encode("gbk") + b"\n"
    drop(tmp_path, f"searches/dt={DAY}/a.jsonl", jsonl)
    pretty = [json.dumps(line(f"a{i}", q), ensure_ascii=False, indent=2) for i, q in enumerate([GBK_QUERY, UTF8_QUERY])]
    array = b"[\n" + pretty[0].encode("gbk") + b",\n" + pretty[1].encode("utf-8") + b"\n]\n"
    drop(tmp_path, f"searches/dt={DAY}/b.json", array)
    bom = b"\xef\xbb\xbf" + SEARCH_HEADER.encode() + f"c1,u,1704513600,{UTF8_QUERY}\n".encode()
    bom += f"c2,u,1704513600,{GBK_QUERY}\n".encode("gbk")
    drop(tmp_path, f"searches/dt={DAY}/c.csv", bom)
    result = run(tmp_path)
    assert reasons(result, "a.jsonl") == {1: "ambiguous_encoding"}
    assert reasons(result, "b.json") == {2: "ambiguous_encoding"}
    assert reasons(result, "c.csv") == {2: "ambiguous_encoding"}
    raw = result.quarantine.set_index("source_file").loc[f"searches/dt={DAY}/b.json", "raw"]
    assert json.loads(raw)["query"] == UTF8_QUERY  # the element's own bytes
    searches = lake.read_table(tmp_path / "lake", "searches").set_index("search_id")
    assert searches["query"].to_dict() == {"j2": GBK_QUERY, "a0": GBK_QUERY, "c2": GBK_QUERY}


def test_an_ambiguous_csv_header_refuses_the_file_and_counts_its_rows(tmp_path):
    data = "查询编号,user_id,event_time,query\n".encode() + f"s1,u,1704513600,{GBK_QUERY}\n".encode("gbk") * 3
    drop(tmp_path, f"searches/dt={DAY}/h.csv", data)
    result = run(tmp_path)
    assert reasons(result) == {0: "ambiguous_encoding"}
    files = result.ingest_files.iloc[0]
    assert (files.input_rows, files.refused_rows, files.quarantined_rows) == (3, 3, 3)


# ---------------------------------------------------------------- SQLite files: no URI from a name


def test_a_sqlite_file_name_cannot_change_which_file_is_opened_or_how(tmp_path):
    folder = tmp_path / "landing" / "notes" / "xiaohongshu" / f"dt={DAY}"
    name = "store?mode=rwc&vfs=unix-none#..%2F..%2Fvictim.db"
    sqlite_from_sql(folder / name, (FIXTURES / "notes" / "mediacrawler_xhs_store.sql").read_text(encoding="utf-8"))
    before = sorted(p.name for p in folder.iterdir())
    with watch_opens() as opened:
        result = run(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing created beside it
    read = {p for p in opened if p.startswith(str(tmp_path / "landing"))}
    assert read == {str(folder / name)}  # the file itself, by its whole name; nothing else
    assert result.quarantine.empty, result.quarantine.message.tolist()
    assert result.ingest_files.format.tolist() == ["mediacrawler_xhs_sqlite"]
    assert lake.read_table(tmp_path / "lake", "notes").note_id.tolist() == ["6650a1b2000000001e00dd01"]


# ---------------------------------------------------------------- accounting


def test_a_refused_file_reports_its_size_and_the_rows_it_could_not_read(tmp_path):
    rows = [{"search_id": f"s{i}", "user_id": "u", "event_time": 1704513600, "query": "q"} for i in range(5000)]
    truncated = ("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")[:-10]  # cut: not JSON any more
    drop(tmp_path, f"searches/dt={DAY}/cut.json", truncated)
    header_twice = "search_id,search_id,event_time,query\n" + "s,u,1704513600,q\n" * 700
    drop(tmp_path, f"searches/dt={DAY}/twice.csv", header_twice)
    drop(tmp_path, f"searches/dt={DAY}/binary.bin", b"\x00\x01" * 100)
    result = run(tmp_path)
    files = result.ingest_files.set_index("source_file")
    cut = files.loc[f"searches/dt={DAY}/cut.json"]
    assert cut.file_bytes == len(truncated.encode())
    assert cut.input_rows == cut.refused_rows == cut.quarantined_rows == 5001  # its non-blank lines
    twice = files.loc[f"searches/dt={DAY}/twice.csv"]
    assert twice.input_rows == twice.refused_rows == 700  # the records it holds
    assert files.loc[f"searches/dt={DAY}/binary.bin", "refused_rows"] == 1
    assert len(result.quarantine) == 3 and (result.quarantine.row_number == 0).all()
    assert result.totals["searches"]["input_rows"] == 5001 + 700 + 1


def test_collapsed_duplicates_are_recorded_per_file_and_the_lake_holds_the_rest(tmp_path):
    row = "n1,e1,1704513600,read,5\n"
    drop(tmp_path, f"exposures/weibo/dt={DAY}/a.csv", "note_id,ext_user_id,event_time,kind,dwell_ms\n" + row * 3)
    drop(tmp_path, f"exposures/weibo/dt={DAY}/b.csv", "note_id,ext_user_id,event_time,kind,dwell_ms\n" + row + "n2,e1,1704513600,read,5\n")
    result = run(tmp_path)
    files = result.ingest_files.set_index("source_file")[["input_rows", "accepted_rows", "collapsed_rows"]]
    assert files.values.tolist() == [[3, 3, 2], [2, 2, 1]]
    assert len(lake.read_table(tmp_path / "lake", "exposures")) == 2 == (5 - 3)


def test_a_row_lost_between_the_checks_and_the_lake_breaks_the_accounting(tmp_path, monkeypatch):
    # accepted_rows is counted from the rows that reach the partition, not as input - quarantined:
    # a row lost on the way shows as input != accepted + quarantined.
    from pipelines.ingest import day as ingest_day_module

    original = ingest_day_module._quarantine_rows

    def lossy(out, frame, checks, run_id):
        original(out, frame, checks, run_id)
        out.accepted = out.accepted.iloc[1:]

    monkeypatch.setattr(ingest_day_module, "_quarantine_rows", lossy)
    # The general path (the fast path, which types such a clean file in Arrow, is turned off).
    monkeypatch.setattr(ingest_day_module.fast, "read_table", lambda *a, **k: None)
    drop(tmp_path, f"searches/dt={DAY}/s.csv", SEARCH_HEADER + "s1,u,1704513600,a\ns2,u,1704513600,b\n")
    result = ingest_day_module.ingest_day(settings_for(tmp_path), DAY)
    f = result.ingest_files.iloc[0]
    assert (f.input_rows, f.accepted_rows, f.quarantined_rows) == (2, 1, 0)


def test_a_row_lost_on_the_fast_path_breaks_the_accounting_too(tmp_path, monkeypatch):
    # The fast path's rows (typed in Arrow) are taken through the same step as the general path's.
    from pipelines.ingest import day as ingest_day_module
    from pipelines.ingest import fast

    original = ingest_day_module._quarantine_rows

    def lossy(out, frame, checks, run_id):
        original(out, frame, checks, run_id)
        assert isinstance(out.accepted, fast.Rows)
        out.accepted = out.accepted.iloc[1:]

    monkeypatch.setattr(ingest_day_module, "_quarantine_rows", lossy)
    drop(tmp_path, f"searches/dt={DAY}/s.csv", SEARCH_HEADER + "s1,u,1704513600,a\ns2,u,1704513600,b\n")
    result = ingest_day_module.ingest_day(settings_for(tmp_path), DAY)
    f = result.ingest_files.iloc[0]
    assert (f.input_rows, f.accepted_rows, f.quarantined_rows) == (2, 1, 0)


def test_the_0004_migration_keeps_logged_rows_and_nulls_the_new_columns(sqlite_url):
    import sqlalchemy as sa

    from pipelines import db, warehouse

    db.upgrade(sqlite_url, "0003_adjusted_uplift")
    engine = warehouse.make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO ingest_files VALUES ('2026-01-01', 'searches', NULL, 's.csv', 'csv_utf8', 3, 2, 1, 'r1')"
        )
    db.upgrade(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM ingest_files")).mappings().all()
    assert [dict(r) for r in rows] == [
        {"dt": "2026-01-01", "source": "searches", "platform": None, "source_file": "s.csv", "format": "csv_utf8",
         "input_rows": 3, "accepted_rows": 2, "quarantined_rows": 1, "file_bytes": None, "refused_rows": None,
         "collapsed_rows": None, "run_id": "r1"}
    ]
    assert [c["name"] for c in sa.inspect(engine).get_columns("ingest_files")] == schemas.INGEST_FILES.names
    db.downgrade(sqlite_url, "0003_adjusted_uplift")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT input_rows, run_id FROM ingest_files")).all() == [(3, "r1")]
    engine.dispose()


def test_timestamp_bounds_are_declared_once():
    from pipelines.timeutil import day_start_utc, timestamp_bounds

    low, high = timestamp_bounds(DAY)
    assert low == day_start_utc(date(2000, 1, 1)) and high == day_start_utc(DAY + timedelta(days=2))
