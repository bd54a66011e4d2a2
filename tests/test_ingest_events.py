"""Event and dimension readers: encodings, SPEC 2 timestamps, declaration-driven checks, keys."""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from test_ingest_helpers import DAY, drop, reasons, run

from pipelines import lake, schemas

INSTANT = pd.Timestamp("2024-01-06 04:00:00", tz="UTC")  # 2024-01-06 12:00 in Asia/Shanghai


def _read(tmp_path, name: str) -> pd.DataFrame:
    return lake.read_table(tmp_path / "lake", name)


def test_timestamps_in_every_spelling_land_on_one_instant(tmp_path):
    drop(
        tmp_path,
        f"exposures/douyin/dt={DAY}/exp.csv",
        "platform,note_id,ext_user_id,event_time,kind,dwell_ms\n"
        "douyin,n1,u_s,1704513600,read,1200\n"
        "douyin,n1,u_ms,1704513600000,read,\n"
        "douyin,n1,u_local,2024-01-06 12:00:00,like,\n"
        "douyin,n1,u_iso,2024-01-06T05:00:00+01:00,share,0\n"
        "douyin,n1,u_z,2024-01-06T04:00:00Z,comment,5\n",
    )
    result = run(tmp_path)
    assert result.quarantine.empty
    exp = _read(tmp_path, "exposures")
    assert (exp.event_time == INSTANT).all() and len(exp) == 5
    assert exp.dwell_ms.isna().tolist() == [False, True, True, False, False]
    assert exp.platform.eq("douyin").all() and exp.dt.eq(DAY).all()


def test_bom_and_gb18030_csv(tmp_path):
    header = "search_id,user_id,event_time,query\n"
    drop(
        tmp_path,
        f"searches/dt={DAY}/a_bom.csv",
        b"\xef\xbb\xbf" + (header + "s1,u1,1704513600,露营帐篷\n").encode(),
    )
    drop(
        tmp_path,
        f"searches/dt={DAY}/b_excel.csv",
        (header + "s2,u2,2024-01-06 12:00:00,防晒霜 推荐\n").encode("gb18030"),
    )
    result = run(tmp_path)
    assert result.ingest_files.format.tolist() == ["csv_utf8_bom", "csv_gb18030"]
    searches = _read(tmp_path, "searches").set_index("search_id")
    assert searches.loc["s1", "query"] == "露营帐篷"  # BOM not glued to the first header
    assert searches.loc["s2", "query"] == "防晒霜 推荐"
    assert (searches.event_time == INSTANT).all()


def test_json_jsonl_and_parquet_exposures(tmp_path):
    rows = [
        {
            "platform": "xiaohongshu",
            "note_id": "n1",
            "ext_user_id": "e1",
            "event_time": 1704513600000,
            "kind": "read",
            "dwell_ms": 3000,
        },
        {
            "platform": "xiaohongshu",
            "note_id": "n2",
            "ext_user_id": "e2",
            "event_time": "2024-01-06 12:00:00",
            "kind": "impression",
        },
    ]
    import json

    drop(tmp_path, f"exposures/xiaohongshu/dt={DAY}/a.json", json.dumps(rows))
    drop(
        tmp_path,
        f"exposures/xiaohongshu/dt={DAY}/b.jsonl",
        "\n".join(json.dumps(r) for r in rows[:1]) + "\n",
    )
    table = pa.table(
        {
            "note_id": ["n3", "n4"],
            "ext_user_id": ["e3", "e4"],
            "event_time": pa.array([1704513600000, 1704513600000], pa.int64()),
            "kind": ["collect", "READ"],
            "dwell_ms": pa.array([None, 10], pa.int64()),
        }
    )
    path = tmp_path / "landing" / "exposures" / "xiaohongshu" / f"dt={DAY}" / "c.parquet"
    pq.write_table(table, path)
    result = run(tmp_path)
    assert result.quarantine.empty
    assert result.ingest_files.format.tolist() == ["json_utf8", "jsonl_utf8", "parquet"]
    exp = _read(tmp_path, "exposures")
    # b.jsonl repeats a.json's first row exactly: it collapses to one.
    assert result.collapsed["exposures"] == 1
    assert sorted(exp.note_id) == ["n1", "n2", "n3", "n4"]
    assert set(exp.kind) == {"read", "impression", "collect"}  # enum values are case-folded
    assert (exp.event_time == INSTANT).all()


def test_bad_rows_get_their_reason(tmp_path):
    drop(
        tmp_path,
        f"exposures/weibo/dt={DAY}/exp.csv",
        "platform,note_id,ext_user_id,event_time,kind,dwell_ms\n"
        "weibo,n1,u1,1704513600,read,10\n"  # 2 fine
        "weibo,n1,,1704513600,read,10\n"  # 3 missing ext_user_id
        "weibo,n1,u3,not a time,read,10\n"  # 4
        "weibo,n1,u4,1704513600,view,10\n"  # 5 kind outside the enum
        "weibo,n1,u5,1704513600,read,-3\n"  # 6 dwell below 0
        "weibo,n1,u6,1704513600,read,1.5\n"  # 7 not an integer
        "douyin,n1,u7,1704513600,read,10\n"  # 8 platform disagrees with the folder
        "weibo,n1,u8,1704513600,read\n",  # 9 a field short
    )
    result = run(tmp_path)
    assert reasons(result) == {
        3: "missing_required",
        4: "bad_timestamp",
        5: "bad_enum",
        6: "out_of_range",
        7: "bad_type",
        8: "platform_mismatch",
        9: "malformed_record",
    }
    q = result.quarantine.set_index("row_number")
    assert (
        q.loc[5, "raw"]
        == '{"platform":"weibo","note_id":"n1","ext_user_id":"u4","event_time":"1704513600","kind":"view","dwell_ms":"10"}'
    )
    assert q.loc[5, "message"].startswith(
        f"exposures/weibo/dt={DAY}/exp.csv row 5: kind 'view' is not one of impression"
    )
    assert q.loc[9, "raw"] == "weibo,n1,u8,1704513600,read"
    assert len(_read(tmp_path, "exposures")) == 1


def test_id_link_confidence_outside_unit_interval(tmp_path):
    drop(
        tmp_path,
        f"id_links/kuaishou/dt={DAY}/links.jsonl",
        '{"ext_user_id": "e1", "user_id": "u1", "confidence": 0.9}\n'
        '{"ext_user_id": "e2", "user_id": "u2", "confidence": 1.3}\n'
        '{"ext_user_id": "e3", "user_id": "u3", "confidence": -0.1}\n'
        '{"ext_user_id": "e4", "user_id": "u4", "confidence": "high"}\n'
        '{"ext_user_id": "e5", "user_id": "u5", "confidence": 1}\n',
    )
    result = run(tmp_path)
    assert reasons(result) == {2: "out_of_range", 3: "out_of_range", 4: "bad_type"}
    links = _read(tmp_path, "id_links")
    assert links.confidence.tolist() == [0.9, 1.0] and links.platform.eq("kuaishou").all()


ORDER_HEADER = "order_id,user_id,item_id,brand_id,category_id,amount_fen,paid_at,status\n"


def test_orders_amount_duplicates_and_brand_from_items(tmp_path):
    drop(
        tmp_path,
        "items/items.csv",
        "item_id,brand_id,category_id,title\ni1,b_naturehike,c_camp,帐篷\ni2,b_anessa,c_sun,\n",
    )
    drop(
        tmp_path,
        f"orders/dt={DAY}/a.csv",
        ORDER_HEADER
        + "o1,u1,i1,b_naturehike,c_camp,29900,1704513600,paid\n"  # 2
        + "o2,u1,i2,,,0,1704513600,paid\n"  # 3 amount 0
        + "o3,u2,i2,,,5000,1704513600,PAID\n"  # 4 brand from items
        + "o3,u2,i2,b_anessa,c_sun,5000,1704513600,paid\n"  # 5 the same once filled: collapses
        + "o4,u3,i9,,,100,1704513600,paid\n"  # 6 unknown item, no brand
        + "o5,u3,i1,b_naturehike,c_camp,abc,1704513600,paid\n"  # 7 wrong type
        + "o6,u3,i1,b_naturehike,c_camp,100,1704513600,shipped\n"  # 8 bad status
        + "o7,u4,i1,b_naturehike,c_camp,100,1704513600,paid\n"  # 9 another version in b.csv
        + "o7,u4,i1,b_naturehike,c_camp,100,1704513600,paid\n",  # 10 an exact repeat of it
    )
    drop(
        tmp_path,
        f"orders/dt={DAY}/b.csv",
        ORDER_HEADER
        + "o7,u4,i1,b_naturehike,c_camp,19900,1704513600,paid\n"  # 2 o7 with another amount
        + "o1,u1,i1,b_naturehike,c_camp,29900,1704513600,paid\n",  # 3 exact repeat: collapses
    )
    result = run(tmp_path)
    assert reasons(result, "a.csv") == {
        3: "out_of_range",
        6: "missing_required",
        7: "bad_type",
        8: "bad_enum",
        9: "conflicting_version",
        10: "conflicting_version",
    }
    # Two versions of o7 in one delivery: neither can be chosen, every row of o7 is quarantined.
    assert reasons(result, "b.csv") == {2: "conflicting_version"}
    conflict = result.quarantine.query("reason == 'conflicting_version'")
    assert conflict.message.str.contains(f"key o7 comes with different content in this delivery \\(dt={DAY}\\)").all()
    orders = _read(tmp_path, "orders").set_index("order_id")
    assert sorted(orders.index) == ["o1", "o3"]
    assert orders.loc["o1", "amount_fen"] == 29900
    assert (
        orders.loc["o3", "brand_id"],
        orders.loc["o3", "category_id"],
        orders.loc["o3", "status"],
    ) == ("b_anessa", "c_sun", "paid")
    assert result.collapsed["orders"] == 2
    items = _read(tmp_path, "items")
    assert sorted(items.item_id) == ["i1", "i2"] and items.title.isna().tolist() == [False, True]


def test_a_later_delivery_is_a_new_version_whatever_the_ingestion_order(tmp_path):
    later = DAY + timedelta(days=1)
    drop(
        tmp_path,
        f"orders/dt={DAY}/a.csv",
        ORDER_HEADER + "o1,u1,i1,b1,c1,100,1704513600,paid\no2,u1,i1,b1,c1,200,1704513600,paid\n",
    )
    drop(
        tmp_path,
        f"orders/dt={later}/a.csv",
        ORDER_HEADER
        + "o1,u1,i1,b1,c1,100,1704513600,paid\n"  # re-delivered unchanged
        + "o2,u1,i1,b1,c1,200,1704513600,refunded\n"  # refunded: a new version
        + "o3,u2,i1,b1,c1,300,1704600000,paid\n",
    )
    drop(
        tmp_path,
        f"searches/dt={DAY}/s.csv",
        "search_id,user_id,event_time,query\ns1,u1,1704513600,帐篷\n",
    )
    drop(
        tmp_path,
        f"searches/dt={later}/s.csv",
        "search_id,user_id,event_time,query\ns1,u1,1704513600,露营帐篷\n",  # query corrected
    )
    lakes = {}
    for name, schedule in (("in order", [DAY, later]), ("later first", [later, DAY])):
        home = tmp_path / name
        shutil.copytree(tmp_path / "landing", home / "landing")
        results = [run(home, d) for d in schedule]
        assert all(r.quarantine.empty for r in results)
        lakes[name] = {t: _read(home, t) for t in ("orders", "searches")}
    # The lake keeps every version in its delivery, whichever day was ingested first.
    for t in ("orders", "searches"):
        pd.testing.assert_frame_equal(lakes["in order"][t], lakes["later first"][t])
    orders = lakes["in order"]["orders"]
    assert orders.groupby("dt").order_id.apply(sorted).to_dict() == {
        DAY: ["o1", "o2"],
        later: ["o1", "o2", "o3"],
    }
    assert orders.query("order_id == 'o2'").status.tolist() == ["paid", "refunded"]
    assert lakes["in order"]["searches"].sort_values("dt")["query"].tolist() == ["帐篷", "露营帐篷"]


def test_unreadable_and_wrong_shape_files_do_not_stop_the_day(tmp_path):
    drop(tmp_path, f"searches/dt={DAY}/garbage.csv", bytes(range(256)) * 4)
    drop(tmp_path, f"searches/dt={DAY}/broken.json", '[{"search_id": "s1", "user_id"')
    drop(
        tmp_path,
        f"orders/dt={DAY}/searches_by_mistake.csv",
        "search_id,user_id,event_time,query\ns1,u1,1704513600,帐篷\n",
    )
    drop(tmp_path, f"searches/dt={DAY}/empty.csv", "")
    drop(tmp_path, f"searches/dt={DAY}/header_only.csv", "search_id,user_id,event_time,query\n")
    drop(
        tmp_path,
        f"searches/dt={DAY}/good.jsonl",
        '{"search_id": "s9", "user_id": "u9", "event_time": 1704513600, "query": "帐篷"}\n',
    )
    result = run(tmp_path)
    q = result.quarantine.set_index("source_file")
    assert q.loc[f"searches/dt={DAY}/garbage.csv", "reason"] == "unreadable_file"
    assert q.loc[f"searches/dt={DAY}/broken.json", "reason"] == "unreadable_file"
    shape = q.loc[f"orders/dt={DAY}/searches_by_mistake.csv"]
    assert shape.reason == "wrong_shape" and "looks like a searches file" in shape.message
    assert (result.quarantine.row_number == 0).all() and len(result.errors) == 3
    files = result.ingest_files.set_index("source_file")
    assert files.loc[f"searches/dt={DAY}/empty.csv", "input_rows"] == 0
    assert files.loc[f"searches/dt={DAY}/header_only.csv", ["input_rows", "format"]].tolist() == [
        0,
        "csv_utf8",
    ]
    assert _read(tmp_path, "searches").search_id.tolist() == ["s9"]


def test_missing_landing_folder_says_what_to_pass(tmp_path):
    import pytest

    from pipelines.ingest.day import ingest_day
    from pipelines.settings import Settings

    with pytest.raises(FileNotFoundError, match="SEEDFUNNEL_LANDING"):
        ingest_day(Settings(home=tmp_path, landing=tmp_path / "nowhere"), DAY)


def test_lake_bookkeeping_tables_and_accounting(tmp_path):
    drop(
        tmp_path,
        f"searches/dt={DAY}/s.csv",
        "search_id,user_id,event_time,query\ns1,u1,1704513600,a\ns2,,1704513600,b\n",
    )
    result = run(tmp_path)
    files = _read(tmp_path, "ingest_files")
    quarantined = _read(tmp_path, "quarantine")
    assert files[["input_rows", "accepted_rows", "quarantined_rows"]].values.tolist() == [[2, 1, 1]]
    assert (
        quarantined.reason.tolist() == ["missing_required"]
        and quarantined.run_id.eq(result.run_id).all()
    )
    assert list(files.columns) == schemas.INGEST_FILES.names
    assert result.totals["searches"] == {
        "files": 1,
        "file_bytes": 71,
        "input_rows": 2,
        "accepted_rows": 1,
        "quarantined_rows": 1,
        "refused_rows": 0,
        "collapsed_rows": 0,
    }
    assert isinstance(files.dt.iloc[0], date)


def test_sqlite_event_file_with_one_table_or_several(tmp_path):
    from test_ingest_helpers import sqlite_from_sql

    folder = tmp_path / "landing" / "searches" / f"dt={DAY}"
    sqlite_from_sql(
        folder / "one.db",
        "CREATE TABLE s (search_id TEXT, user_id TEXT, event_time INTEGER, query TEXT);"
        "INSERT INTO s VALUES ('s1', 'u1', 1704513600, '帐篷');",
    )
    sqlite_from_sql(folder / "two.db", "CREATE TABLE a (x TEXT); CREATE TABLE b (y TEXT);")
    result = run(tmp_path)
    assert reasons(result, "two.db") == {0: "wrong_shape"}
    assert _read(tmp_path, "searches").event_time.tolist() == [INSTANT]
