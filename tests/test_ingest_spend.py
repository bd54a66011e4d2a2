"""Spend (SPEC 5.11, ``spend/dt=YYYY-MM-DD/*``): formats, derived key, quarantine reasons,
accounting, versions (the latest delivery wins), optionality, and the simulator's spend.

Fixtures (hand-written, ``tests/fixtures/ingest/spend/``): ``agency_export.csv`` (an agency's
export with drifted headers, platform spellings and every kind of bad row) and ``boosts.jsonl``
(paid boosts, one with the sender's own spend_id, and bad lines).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from test_ingest_helpers import DAY, FIXTURES, drop, reasons, run

from pipelines import lake, schemas
from pipelines.ingest.day import delivery_days
from pipelines.quality import checks, suites

SPEND = FIXTURES / "spend"
FOLDER = f"spend/dt={DAY}"
NEXT = DAY + timedelta(days=1)
HEADER = "platform,author_id,note_id,spend_type,amount_fen,spent_at\n"


def _hash(raw_id: str) -> str:
    """creator_hash: first 16 hex of sha256 of the raw platform user id."""
    return hashlib.sha256(raw_id.encode()).hexdigest()[:16]


def _put(home: Path, name: str, rel_folder: str = FOLDER) -> None:
    drop(home, f"{rel_folder}/{name}", (SPEND / name).read_bytes())


def _spend(home: Path) -> pd.DataFrame:
    return lake.read_table(home / "lake", "spend")


def test_csv_export_rows_accepted_and_quarantined_with_their_reasons(tmp_path):
    _put(tmp_path, "agency_export.csv")
    result = run(tmp_path)  # asserts input = accepted + quarantined per file, and the lake rows
    assert reasons(result) == {
        6: "bad_enum",  # platform tiktok
        7: "out_of_range",  # amount 0: must be > 0
        8: "out_of_range",  # amount -500
        9: "missing_required",  # author_id empty
        10: "bad_timestamp",  # 2024-02-30 25:61:00
        11: "bad_enum",  # spend_type sponsorship
        12: "bad_type",  # amount 12.5 is not an integer
        13: "malformed_record",  # a field short
        14: "out_of_range",  # spent_at after the day after the delivery day
        15: "missing_required",  # platform empty (no folder gives it)
    }
    q = result.quarantine.set_index("row_number")
    assert q.loc[6, "message"].startswith(f"{FOLDER}/agency_export.csv row 6: platform 'tiktok' is not one of xiaohongshu")
    assert "amount_fen '0.0' must be > 0" in q.loc[7, "message"]
    assert "spend_type 'sponsorship' is not one of creator_fee, paid_boost" in q.loc[11, "message"]
    assert (result.quarantine.source == "spend").all() and result.quarantine.platform.isna().all()

    files = result.ingest_files
    assert files[["source", "format", "input_rows", "accepted_rows", "quarantined_rows"]].values.tolist() == [
        ["spend", "csv_utf8", 15, 5, 10]
    ]
    spend = _spend(tmp_path).set_index("spend_id")
    xhs, dy = _hash("5f1d2c3b4a59687766554433"), "0123456789abcdef"  # a 16-hex author id is a hash already
    # spend_id: platform|author_id|note_id|spend_type|spent_at (UTC, microseconds); headers were
    # matched case- and blank-insensitively, the extra campaign column ignored.
    fee = f"xiaohongshu|{xhs}|64a1b2c3d4e5f60718293a4b|creator_fee|2024-01-06T04:00:00.000000Z"
    boost = f"xiaohongshu|{xhs}|64a1b2c3d4e5f60718293a4b|paid_boost|2024-01-06T04:00:00.000000Z"  # 小红书
    retainer = f"douyin|{dy}||creator_fee|2024-01-05T02:00:00.000000Z"  # DY, no note, no type: a fee
    dou_plus = f"douyin|{dy}|7300000000000000001|paid_boost|2024-01-06T04:00:00.000000Z"  # epoch ms
    bili = f"bilibili|{_hash('12345678')}|BV1xx411c7mD|creator_fee|2024-01-07T01:30:00.000000Z"
    assert sorted(spend.index) == sorted([fee, boost, retainer, dou_plus, bili])
    assert spend.loc[fee, "amount_fen"] == 80000 and spend.loc[boost, "amount_fen"] == 20000
    assert pd.isna(spend.loc[retainer, "note_id"]) and spend.loc[retainer, "spend_type"] == "creator_fee"
    assert spend.loc[dou_plus, "spend_type"] == "paid_boost"
    assert spend.loc[retainer, "spent_at"] == pd.Timestamp("2024-01-05 02:00", tz="UTC")
    assert spend.dt.eq(DAY).all() and list(_spend(tmp_path).columns) == schemas.SPEND.names


def test_jsonl_boosts_keep_the_senders_spend_id(tmp_path):
    _put(tmp_path, "boosts.jsonl")
    result = run(tmp_path)
    assert reasons(result) == {
        3: "bad_type",  # author_id is a JSON object
        4: "bad_type",  # amount "abc"
        5: "out_of_range",  # amount above 10^12 fen
        6: "bad_timestamp",  # "yesterday"
        7: "malformed_record",  # truncated line
        8: "malformed_record",  # not a JSON object
    }
    assert result.ingest_files[["format", "input_rows", "accepted_rows", "quarantined_rows"]].values.tolist() == [
        ["jsonl_utf8", 9, 3, 6]
    ]
    spend = _spend(tmp_path).set_index("spend_id")
    assert spend.loc["inv-2024-001", "author_id"] == _hash("3xabc123def456g")  # the given id is kept
    xhs = f"xiaohongshu|{_hash('aaaaaaaaaaaaaaaaaaaaaaaa')}|65a000000000000000000001|paid_boost|2024-01-07T04:00:00.000000Z"
    assert spend.loc[xhs, "platform"] == "xiaohongshu"  # xhs: MediaCrawler's short name
    per_creator = f"bilibili|{_hash('12345678')}||creator_fee|2024-01-07T00:00:00.000000Z"
    assert spend.loc[per_creator, "amount_fen"] == 200000 and pd.isna(spend.loc[per_creator, "note_id"])


def test_parquet_and_gb18030_csv(tmp_path):
    when = pa.array([pd.Timestamp("2024-01-06 04:00", tz="UTC")] * 2, pa.timestamp("ms", tz="UTC"))
    table = pa.table({
        "platform": ["kuaishou", "weibo"],
        "author_id": ["3xabc123def456g", "5000000001"],
        "note_id": pa.array(["3xnote0002", None], pa.string()),
        "amount_fen": pa.array([1200, 50000], pa.int64()),
        "spent_at": when,
    })
    path = tmp_path / "landing" / FOLDER / "a.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    drop(tmp_path, f"{FOLDER}/b_excel.csv", (HEADER + "抖音,0123456789abcdef,,paid_boost,2500,2024-01-06 12:00:00\n").encode("gb18030"))
    result = run(tmp_path)
    assert result.quarantine.empty
    assert result.ingest_files.format.tolist() == ["parquet", "csv_gb18030"]
    spend = _spend(tmp_path)
    assert sorted(spend.platform) == ["douyin", "kuaishou", "weibo"]
    assert (spend.spent_at == pd.Timestamp("2024-01-06 04:00", tz="UTC")).all()
    assert spend.set_index("platform").loc["weibo", "spend_id"] == f"weibo|{_hash('5000000001')}||creator_fee|2024-01-06T04:00:00.000000Z"


def test_a_resent_delivery_names_the_same_spends_and_conflicts_are_quarantined(tmp_path):
    xhs_raw = "5f1d2c3b4a59687766554433"
    drop(
        tmp_path,
        f"{FOLDER}/a.csv",
        HEADER
        + f"xiaohongshu,{xhs_raw},n1,creator_fee,80000,2024-01-06 12:00:00\n"  # 2
        + "weibo,5000000001,n2,paid_boost,100,2024-01-06 12:00:00\n"  # 3: another amount in b.csv
        + f"xiaohongshu,{xhs_raw},n1,creator_fee,80000,2024-01-06 12:00:00\n",  # 4: exact repeat
    )
    drop(
        tmp_path,
        f"{FOLDER}/b.jsonl",
        # The same fee as a.csv row 2, written with the hash and an epoch: the same spend_id.
        json.dumps({"platform": "xiaohongshu", "author_id": _hash(xhs_raw), "note_id": "n1",
                    "spend_type": "creator_fee", "amount_fen": 80000, "spent_at": 1704513600}) + "\n"
        + json.dumps({"platform": "weibo", "author_id": "5000000001", "note_id": "n2",
                      "spend_type": "paid_boost", "amount_fen": 200, "spent_at": 1704513600}) + "\n",
    )
    result = run(tmp_path)
    # Two amounts of one spend in one delivery cannot be ordered: every row of it is quarantined.
    assert reasons(result, "a.csv") == {3: "conflicting_version"}
    assert reasons(result, "b.jsonl") == {2: "conflicting_version"}
    assert "comes with different content in this delivery" in result.quarantine.message.iloc[0]
    spend = _spend(tmp_path)
    assert len(spend) == 1 and spend.amount_fen.tolist() == [80000]
    # Three rows of one spend were accepted; the partition holds it once.
    files = result.ingest_files.set_index("source_file")
    assert files.loc[f"{FOLDER}/a.csv", ["accepted_rows", "collapsed_rows"]].tolist() == [2, 1]
    assert files.loc[f"{FOLDER}/b.jsonl", ["accepted_rows", "collapsed_rows"]].tolist() == [1, 1]
    assert result.collapsed["spend"] == 2


def test_a_later_delivery_is_a_new_version_that_wins_whatever_the_ingestion_order(tmp_path):
    first = HEADER + (
        "xiaohongshu,5f1d2c3b4a59687766554433,n1,creator_fee,80000,2024-01-06 12:00:00\n"
        "douyin,0123456789abcdef,n2,paid_boost,5000,2024-01-06 12:00:00\n"
    )
    drop(tmp_path, f"{FOLDER}/spend.csv", first)
    # The next day's file re-sends both: the fee with a corrected amount, the boost unchanged.
    drop(tmp_path, f"spend/dt={NEXT}/spend.csv", first.replace(",80000,", ",88000,"))
    lakes = {}
    for name, schedule in (("in order", [DAY, NEXT]), ("later first", [NEXT, DAY])):
        home = tmp_path / name
        shutil.copytree(tmp_path / "landing", home / "landing")
        assert all(run(home, d).quarantine.empty for d in schedule)
        lakes[name] = home / "lake"
    raw = {k: lake.read_table(v, "spend") for k, v in lakes.items()}
    pd.testing.assert_frame_equal(raw["in order"], raw["later first"])
    assert len(raw["in order"]) == 4  # every version stays in the lake, each in its delivery
    resolved = lake.read_spend(lakes["in order"]).set_index("note_id")
    assert resolved.loc["n1", "amount_fen"] == 88000 and resolved.loc["n1", "dt"] == NEXT
    assert resolved.loc["n2", "amount_fen"] == 5000 and len(resolved) == 2
    pd.testing.assert_frame_equal(resolved, lake.read_spend(lakes["later first"]).set_index("note_id"))
    # As of the first delivery alone, the first version stands.
    assert lake.read_spend(lakes["in order"], [DAY]).set_index("note_id").loc["n1", "amount_fen"] == 80000


def test_resolve_spend_refuses_two_versions_in_one_delivery():
    import pytest

    two = schemas.conform(schemas.SPEND, pd.DataFrame({
        "spend_id": ["s1", "s1"], "platform": "weibo", "author_id": "0123456789abcdef", "note_id": None,
        "spend_type": "creator_fee", "amount_fen": [100, 200],
        "spent_at": pd.Timestamp("2024-01-06", tz="UTC"), "dt": DAY,
    }))
    with pytest.raises(ValueError, match="'s1' has different versions in one delivery"):
        lake.resolve_spend(two)
    assert lake.resolve_spend(two.iloc[:1]).amount_fen.tolist() == [100]
    assert lake.resolve_spend(schemas.empty_frame(schemas.SPEND)).empty


def test_spend_is_optional_and_found_by_delivery_discovery(tmp_path):
    drop(tmp_path, f"searches/dt={DAY}/s.csv", "search_id,user_id,event_time,query\ns1,u1,1704513600,帐篷\n")
    result = run(tmp_path)
    assert result.errors == [] and result.quarantine.empty and result.written["spend"] == 0
    assert _spend(tmp_path).empty and lake.partitions(tmp_path / "lake", "spend") == [DAY]
    # A day with spend only is a delivery like any other.
    drop(tmp_path, f"spend/dt={NEXT}/x.csv", HEADER + "weibo,5000000001,,,100,2024-01-08 10:00:00\n")
    assert delivery_days(tmp_path / "landing") == [DAY, NEXT]
    assert run(tmp_path, NEXT).written == {"notes": 0, "exposures": 0, "id_links": 0, "searches": 0, "orders": 0, "spend": 1}
    # Validated like every input (its own suite), but no freshness expectation: a day without
    # spend lacks nothing, whatever the other sources do.
    assert "spend" in suites.build_suites() and "spend" in checks.SOURCES and "spend" not in checks.FRESH_SOURCES
    freshness = {e["kwargs"]["column"] for e in suites.build_suites()[checks.FRESHNESS]["expectations"]}
    assert not any(c.startswith("spend_") for c in freshness)
    assert "orders_delivery_age_days" in freshness


def test_files_of_another_shape_are_refused_with_a_hint(tmp_path):
    drop(tmp_path, f"{FOLDER}/orders_by_mistake.csv",
         "order_id,user_id,item_id,brand_id,category_id,amount_fen,paid_at,status\no1,u1,i1,b1,c1,100,1704513600,paid\n")
    drop(tmp_path, f"{FOLDER}/no_platform.csv", "author_id,note_id,amount_fen,spent_at\nabc,n1,100,1704513600\n")
    result = run(tmp_path)
    q = result.quarantine.set_index("source_file")
    mistake = q.loc[f"{FOLDER}/orders_by_mistake.csv"]
    assert mistake.reason == "wrong_shape" and "it looks like a orders" in mistake.message
    # Spend has no platform folder: its platform column is required.
    no_platform = q.loc[f"{FOLDER}/no_platform.csv"]
    assert no_platform.reason == "wrong_shape" and "lacks column(s) ['platform'] of spend" in no_platform.message


# ---------------------------------------------------------------- the simulator writes spend


def test_simulated_spend_arrives_late_resent_and_corrected_and_ingests_to_the_ground_truth(tmp_path):
    from pipelines.ingest.day import ingest_day
    from pipelines.settings import Settings
    from pipelines.simulate import ArrivalParams, load_schedule, simulate_world

    seeds = Path(__file__).parent.parent / "seeds"
    start = date(2026, 1, 1)
    sim = tmp_path / "sim"
    summary = simulate_world(sim, users=1500, days=12, start=start, seed=7, seeds_dir=seeds)
    truth = json.loads((sim / "ground_truth.json").read_text(encoding="utf-8"))
    assert summary.spend == truth["spend"]["spends"] == truth["counts"]["spend"] > 0
    by_type = truth["spend"]["by_type"]
    assert by_type["creator_fee"]["spends"] > 0 and by_type["paid_boost"]["spends"] > 0
    assert truth["spend"]["fees_per_creator"] > 0
    arrived = truth["arrival"]["spend"]
    assert arrived["late_rows"] > 0 and arrived["amount_corrected"] > 0
    resent = [f for f in load_schedule(sim).files if f["source"] == "spend" and len(f["versions"]) > 1]
    assert len(resent) == 1 and resent[0]["versions"][0]["rows"] < resent[0]["versions"][1]["rows"]

    settings = Settings(home=tmp_path / "home", landing=sim)
    for i in range(truth["days"]):
        result = ingest_day(settings, start + timedelta(days=i))
        assert (result.quarantine.source != "spend").all()
    stored = lake.read_table(settings.lake, "spend")
    versions = stored.groupby("spend_id").dt.nunique()
    assert int((versions > 1).sum()) == arrived["amount_corrected"]  # a correction: one more delivery
    assert stored.groupby(["spend_id", "dt"]).size().max() == 1
    spend = lake.read_spend(settings.lake)
    assert len(spend) == truth["spend"]["spends"] and int(spend.amount_fen.sum()) == truth["spend"]["spend_fen"]
    for t, counts in by_type.items():
        mine = spend[spend.spend_type == t]
        assert (len(mine), int(mine.amount_fen.sum())) == (counts["spends"], counts["spend_fen"])
    # The winning version of a corrected spend is its latest delivery's.
    corrected = versions.index[versions > 1]
    latest = stored[stored.spend_id.isin(corrected)].sort_values("dt").drop_duplicates("spend_id", keep="last")
    assert latest.set_index("spend_id").amount_fen.sort_index().equals(
        spend[spend.spend_id.isin(corrected)].set_index("spend_id").amount_fen.sort_index()
    )
    # Spend names the creators and notes of the notes feed (raw ids hashed alike).
    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes"))
    on_notes = spend.dropna(subset=["note_id"]).merge(notes[["platform", "note_id", "author_id"]],
                                                      on=["platform", "note_id"], suffixes=("", "_note"))
    assert len(on_notes) > 0.8 * spend.note_id.notna().sum()
    assert (on_notes.author_id == on_notes.author_id_note).all()
    # Late rows: a spend first delivered after the day it was paid.
    first = stored.sort_values("dt", kind="stable").drop_duplicates("spend_id")
    late = first.spent_at.dt.tz_convert("Asia/Shanghai").dt.date < first.dt
    assert int(late.sum()) == arrived["late_rows"]

    # In order: the same spends, each delivered once on its own day.
    calm = simulate_world(tmp_path / "calm", users=1500, days=12, start=start, seed=7, seeds_dir=seeds,
                          arrival=ArrivalParams.in_order())
    calm_truth = json.loads((tmp_path / "calm" / "ground_truth.json").read_text(encoding="utf-8"))
    assert calm.spend == summary.spend
    assert calm_truth["arrival"]["spend"] == {"late_rows": 0, "amount_corrected": 0}
    assert all(len(f["versions"]) == 1 for f in load_schedule(tmp_path / "calm").files)
    days_with_spend = {f["dt"] for f in calm_truth["files"] if f["source"] == "spend"}
    assert days_with_spend <= {(start + timedelta(days=i)).isoformat() for i in range(12)}
    assert sum(f["rows"] for f in calm_truth["files"] if f["source"] == "spend") == calm.spend
