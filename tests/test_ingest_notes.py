"""Note exporters: the real MediaCrawler sample, one fixture per exporter format, bad note rows."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pandas as pd
from test_ingest_helpers import (
    DAY,
    FIXTURES,
    assert_accounting,
    drop,
    reasons,
    run,
    sqlite_from_sql,
)

from pipelines import lake, schemas
from pipelines.settings import Settings

NOTES = FIXTURES / "notes"
#: A delivery day after every note of the real samples was published (they run to 2025-09):
#: a timestamp after the day following its delivery is impossible and quarantined.
REAL_DAY = date(2025, 9, 10)



#: Real exporter samples, committed (copies of the shared samples): no skip on a lone clone.
REAL = Path(__file__).resolve().parent / "fixtures" / "real"


def _hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


def _notes(tmp_path) -> pd.DataFrame:
    return lake.read_table(tmp_path / "lake", "notes").set_index("note_id")


def test_real_mediacrawler_sample_ingests_clean(tmp_path):
    sample = REAL / "mediacrawler_xhs_notes.json"
    drop(tmp_path, f"notes/xiaohongshu/dt={REAL_DAY}/{sample.name}", sample.read_bytes())
    result = run(tmp_path, REAL_DAY)
    assert result.quarantine.empty, result.quarantine.message.tolist()
    assert result.errors == []
    files = result.ingest_files
    assert files.format.tolist() == ["mediacrawler_xhs_json_utf8"]
    assert files.accepted_rows.tolist() == [60]

    notes = _notes(tmp_path)
    raw = {r["note_id"]: r for r in json.loads(sample.read_text(encoding="utf-8"))}
    assert len(notes) == 60
    first = notes.loc["66d5b40e000000001d0182be"]
    assert list(first.tags) == ["VC", "创业", "融资", "融资路演", "路演"]
    assert "[话题]" not in first.text and first.text.endswith("投资人就会很轻易的出手。")
    assert first.text.startswith("背景：LLM相关AI项目")
    assert (first.likes, first.collects, first.comments, first.shares) == (809, 873, 58, 155)
    assert first.author_id == _hash(raw["66d5b40e000000001d0182be"]["user_id"])
    assert first.published_at == pd.Timestamp(1725281294000, unit="ms", tz="UTC")
    # Markup in the title: the topics become tags and leave the title.
    titled = notes.loc["68b509e2000000001d00ca34"]
    assert titled.title == "创业者为什么要参加玄奘之路戈壁活动？"
    assert list(titled.tags) == ["玄奘之路", "科技创新", "庄老师辅导创新创业", "创新创业"]
    # Tabs, newlines and emoji survive; no text keeps markup.
    assert "加V\n\t\n2️⃣" in first.text
    assert not notes.text.str.contains("[话题]", regex=False).any()
    assert not notes.title.str.contains("[话题]", regex=False).any()
    assert set(notes.note_type) == {"image", "video"}
    assert notes.author_id.str.fullmatch(r"[0-9a-f]{16}").all()


def _land_fixture(tmp_path, name: str, platform: str, day: date = DAY):
    return drop(tmp_path, f"notes/{platform}/dt={day}/{name}", (NOTES / name).read_bytes())


def test_mediacrawler_xhs_2026_schema_jsonl(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_xhs_v2026.jsonl", "xiaohongshu")
    result = run(tmp_path)
    assert result.ingest_files.format.tolist() == ["mediacrawler_xhs_v2026_jsonl_utf8"]
    n = _notes(tmp_path).loc["6650a1b2000000001e00aa01"]
    assert n.author_id == "0123456789abcdef"  # creator_hash kept as is
    assert n.title == "周末装备清单"
    assert n.text == "带上挪客的帐篷就出发了⛺"
    assert list(n.tags) == ["露营", "装备", "户外"]  # exporter list, then markup topics, distinct
    assert (n.likes, n.collects, n.comments, n.shares) == (12000, 3000, 10, 0)
    assert n.note_type == "image"


def test_mediacrawler_douyin_json_old_schema(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_douyin.json", "douyin")
    run(tmp_path)
    notes = _notes(tmp_path)
    video, images = notes.loc["7320000000000000001"], notes.loc["7320000000000000002"]
    assert video.author_id == _hash("94000000001")
    assert (video.note_type, images.note_type) == ("video", "image")  # aweme_type 0 / 68
    assert video.likes == 23000
    assert video.published_at == pd.Timestamp("2024-01-06 04:00:00", tz="UTC")  # create_time in s


def test_mediacrawler_bili_csv_with_bom_and_multiline_field(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_bili.csv", "bilibili")
    result = run(tmp_path)
    assert result.ingest_files.format.tolist() == ["mediacrawler_bili_csv_utf8_bom"]
    notes = _notes(tmp_path)
    a, b = notes.loc["1050000001"], notes.loc["1050000002"]
    assert a.text == "一条\n带换行的简介"
    assert (a.likes, a.collects, a.comments, a.shares) == (1203, 310, 76, 22)
    assert (b.likes, b.collects) == (0, 0)  # "None" is a missing count
    # The second record starts on line 4: the first spans lines 2-3, rows are counted per record.
    assert notes.source_row.tolist() == [2, 3]


def test_mediacrawler_kuaishou_and_weibo(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_kuaishou.jsonl", "kuaishou")
    _land_fixture(tmp_path, "mediacrawler_weibo_v2026.json", "weibo")
    run(tmp_path)
    notes = _notes(tmp_path)
    ks, wb = notes.loc["3xabc0001"], notes.loc["5000000000000001"]
    assert ks.published_at == pd.Timestamp("2024-01-06 04:00:00", tz="UTC")  # create_time in ms
    assert (ks.likes, ks.note_type) == (34000, "video")
    # Weibo: from create_date_time (its create_time is 8 h off and ignored).
    assert wb.published_at == pd.Timestamp("2024-01-06 04:00:00", tz="UTC")
    assert (wb.title, wb.author_id, wb.comments, wb.shares) == ("", "a1b2c3d4e5f60718", 8, 3)


def test_mediacrawler_sqlite_store(tmp_path):
    db = tmp_path / "landing" / "notes" / "xiaohongshu" / f"dt={DAY}" / "mediacrawler.db"
    sqlite_from_sql(db, (NOTES / "mediacrawler_xhs_store.sql").read_text(encoding="utf-8"))
    result = run(tmp_path)
    assert result.ingest_files.format.tolist() == ["mediacrawler_xhs_sqlite"]
    n = _notes(tmp_path).loc["6650a1b2000000001e00dd01"]
    assert list(n.tags) == ["防晒", "夏天"]  # JSON-quoted tag_list
    assert n.text == "安耐晒yyds"
    assert n.author_id == _hash("5f0000000000000000000004")


def test_spider_xhs_info_json(tmp_path):
    drop(
        tmp_path,
        f"notes/xiaohongshu/dt={DAY}/露营_6650a1b2000000001e00bb01/info.json",
        (NOTES / "spider_xhs_info.json").read_bytes(),
    )
    result = run(tmp_path)
    assert result.ingest_files.format.tolist() == ["spider_xhs_json_object_utf8"]
    n = _notes(tmp_path).loc["6650a1b2000000001e00bb01"]
    assert n.title == ""  # 无标题 means no title
    assert list(n.tags) == ["露营", "户外生活"]
    assert (n.likes, n.collects, n.shares, n.note_type) == (11000, 2000, 10, "image")
    assert n.published_at == pd.Timestamp("2024-01-06 04:00:00", tz="UTC")  # local time


def test_xhs_downloader_sqlite_and_csv(tmp_path):
    db = tmp_path / "landing" / "notes" / "xiaohongshu" / f"dt={DAY}" / "ExploreData.db"
    sqlite_from_sql(db, (NOTES / "xhs_downloader_explore_data.sql").read_text(encoding="utf-8"))
    _land_fixture(tmp_path, "xhs_downloader.csv", "xiaohongshu")
    result = run(tmp_path)
    assert sorted(result.ingest_files.format) == [
        "xhs_downloader_csv_utf8_bom",
        "xhs_downloader_sqlite",
    ]
    assert reasons(result, "ExploreData.db") == {}
    notes = _notes(tmp_path)
    assert notes.loc["6650a1b2000000001e00cc03"].note_type == "unknown"  # 作品类型 未知
    a = notes.loc["6650a1b2000000001e00cc01"]
    assert a.published_at == pd.Timestamp(
        "2024-01-06 04:00:00", tz="UTC"
    )  # 2024-01-06_12:00:00 local
    assert list(a.tags) == ["露营", "装备", "好物"]
    assert (a.likes, a.collects, a.shares, a.note_type) == (
        22000,
        15000,
        0,
        "image",
    )  # 分享 -1: missing
    assert notes.loc["6650a1b2000000001e00cc02"].note_type == "video"
    c = notes.loc["6650a1b2000000001e00ee01"]
    assert c.text == "用了 的精华\n皮肤变好了" and list(c.tags) == ["护肤", "精华", "COSRX"]


def test_bad_note_rows_are_quarantined_with_reasons(tmp_path):
    good = json.loads(
        (NOTES / "mediacrawler_xhs_v2026.jsonl").read_text(encoding="utf-8").splitlines()[0]
    )
    lines = [
        json.dumps(good, ensure_ascii=False),  # 1 fine
        json.dumps({**good, "note_id": "n2", "liked_count": "一些"}, ensure_ascii=False),  # 2
        json.dumps({**good, "note_id": "n3", "comment_count": "-7"}, ensure_ascii=False),  # 3
        json.dumps({**good, "note_id": ""}, ensure_ascii=False),  # 4 missing id
        json.dumps({**good, "note_id": "n5", "time": "昨天"}, ensure_ascii=False),  # 5
        json.dumps({**good, "note_id": "n6", "platform": "douyin"}, ensure_ascii=False),  # 6
        json.dumps(
            {**good, "note_id": "n7", "creator_hash": "not-a-hash"}, ensure_ascii=False
        ),  # 7
        json.dumps(
            {**good, "note_id": "n8", "title": {"oops": 1}}, ensure_ascii=False
        ),  # 8 wrong type
        json.dumps({**good, "note_id": "n9"}, ensure_ascii=False)[:60],  # 9 truncated
        json.dumps({**good, "note_id": "n10", "platform": "xhs"}, ensure_ascii=False),  # 10 agrees
    ]
    drop(tmp_path, f"notes/xiaohongshu/dt={DAY}/search_contents.jsonl", "\n".join(lines) + "\n")
    result = run(tmp_path)
    assert reasons(result) == {
        2: "bad_count",
        3: "negative_count",
        4: "missing_required",
        5: "bad_timestamp",
        6: "platform_mismatch",
        7: "bad_type",
        8: "bad_type",
        9: "malformed_record",
    }
    truncated = result.quarantine.set_index("row_number").loc[9]
    assert truncated.raw == lines[8]
    assert "search_contents.jsonl row 9" in truncated.message
    assert set(_notes(tmp_path).index) == {"6650a1b2000000001e00aa01", "n10"}


def test_file_of_another_platform_or_unknown_shape(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_douyin.json", "xiaohongshu")
    drop(tmp_path, f"notes/weibo/dt={DAY}/orders.csv", "order_id,user_id\no1,u1\n")
    drop(tmp_path, f"notes/zhihu/dt={DAY}/answers.jsonl", '{"id": 1}\n')
    drop(tmp_path, f"notes/bilibili/dt={DAY}/empty.jsonl", "")
    result = run(tmp_path)
    q = result.quarantine.set_index("platform")
    assert q.loc["xiaohongshu"].reason == "platform_mismatch"
    assert q.loc["weibo"].reason == "wrong_shape"
    assert q.loc["zhihu"].reason == "unknown_platform"
    assert (result.quarantine.row_number == 0).all()
    assert len(result.errors) == 3
    empty = result.ingest_files.set_index("platform").loc["bilibili"]
    assert (empty.input_rows, empty.format) == (0, "empty")


def test_every_note_column_is_typed(tmp_path):
    for name, platform in [
        ("mediacrawler_douyin.json", "douyin"),
        ("mediacrawler_bili.csv", "bilibili"),
    ]:
        _land_fixture(tmp_path, name, platform)
    run(tmp_path)
    notes = lake.read_table(tmp_path / "lake", "notes")
    assert list(notes.columns) == schemas.NOTES.names
    assert schemas.to_arrow(schemas.NOTES, notes).schema == schemas.NOTES.arrow_schema()


# ---------------------------------------------------------------- exporter drift (EXPORTERS.md)

REAL = FIXTURES.parent / "real"


def test_real_phones_csv_export_ingests_whole(tmp_path):
    # the cleaned MediaCrawler CSV (its own column order, time_readable, crawl_date, blank fields)
    sample = REAL / "mediacrawler_xhs_notes_phones.csv"
    drop(tmp_path, f"notes/xiaohongshu/dt={REAL_DAY}/{sample.name}", sample.read_bytes())
    result = run(tmp_path, REAL_DAY)
    assert result.quarantine.empty, result.quarantine.message.tolist()[:3]
    assert result.ingest_files.accepted_rows.tolist() == [300]
    notes = _notes(tmp_path)
    assert notes.loc["61da29150000000021035f55"].title == "我的天，苹果13出bug了"
    assert list(notes.loc["61da29150000000021035f55"].tags) == ["苹果13bug", "苹果13"]


def test_csv_with_only_note_url_takes_the_id_from_the_url(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_xhs_url_only.csv", "xiaohongshu")
    result = run(tmp_path)
    assert result.quarantine.empty, result.quarantine.message.tolist()[:3]
    assert result.ingest_files.accepted_rows.tolist() == [20]
    assert result.ingest_files.format.tolist() == ["mediacrawler_xhs_csv_utf8_bom"]
    notes = _notes(tmp_path)
    # https://www.xiaohongshu.com/explore/61da2915...?xsec_token=...: the last path segment
    assert "61da29150000000021035f55" in notes.index
    assert notes.index.str.fullmatch(r"[0-9a-f]{24}").all()


def test_cleaned_export_with_author_id_and_extra_columns(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_xhs_cleaned.csv", "xiaohongshu")
    result = run(tmp_path)
    assert result.quarantine.empty, result.quarantine.message.tolist()[:3]
    assert result.ingest_files.accepted_rows.tolist() == [20]
    raw = pd.read_csv(NOTES / "mediacrawler_xhs_cleaned.csv", dtype=str).set_index("note_id")
    notes = _notes(tmp_path)
    first = raw.index[0]
    assert notes.loc[first].author_id == _hash(raw.loc[first, "author_id"])  # a raw id: hashed
    stored = lake.read_table(tmp_path / "lake", "notes")
    assert list(stored.columns) == schemas.NOTES.names  # brands, sentiment: not carried


def test_author_id_that_is_already_a_creator_hash_is_kept(tmp_path):
    raw = (NOTES / "mediacrawler_xhs_cleaned.csv").read_text(encoding="utf-8").splitlines()
    header = raw[0].split(",")
    at = header.index("author_id")
    cells = raw[1].split(",")
    cells[at] = "0123456789abcdef"
    drop(tmp_path, f"notes/xiaohongshu/dt={DAY}/hashed.csv", "\n".join([raw[0], ",".join(cells)]) + "\n")
    run(tmp_path)
    assert _notes(tmp_path).author_id.tolist() == ["0123456789abcdef"]


def test_unknown_douyin_type_codes_keep_the_note(tmp_path):
    _land_fixture(tmp_path, "mediacrawler_douyin_new_types.jsonl", "douyin")
    result = run(tmp_path)
    assert result.quarantine.empty, result.quarantine.message.tolist()
    types = _notes(tmp_path).note_type.to_dict()
    assert types == {
        "7320000000000000101": "video",
        "7320000000000000102": "image",
        "7320000000000000103": "unknown",  # 201: not in the exporter table yet
        "7320000000000000104": "unknown",
        "7320000000000000105": "image",
        "7320000000000000106": "unknown",
    }


def test_a_missing_type_is_still_quarantined(tmp_path):
    good = json.loads((NOTES / "mediacrawler_douyin_new_types.jsonl").read_text(encoding="utf-8").splitlines()[0])
    drop(tmp_path, f"notes/douyin/dt={DAY}/a.jsonl", json.dumps({**good, "aweme_type": ""}) + "\n")
    result = run(tmp_path)
    assert reasons(result) == {1: "missing_required"}


def test_every_delivered_note_of_the_real_samples_and_drift_fixtures_is_accepted(tmp_path):
    # issue 15: >= 99% of delivered notes accepted across the real samples and every drift shape
    for name in ("mediacrawler_xhs_notes.json", "mediacrawler_xhs_notes_phones.csv"):
        drop(tmp_path, f"notes/xiaohongshu/dt={REAL_DAY}/{name}", (REAL / name).read_bytes())
    for name, platform in [
        ("mediacrawler_xhs_url_only.csv", "xiaohongshu"),
        ("mediacrawler_xhs_cleaned.csv", "xiaohongshu"),
        ("mediacrawler_douyin_new_types.jsonl", "douyin"),
        ("mediacrawler_douyin.json", "douyin"),
        ("mediacrawler_bili.csv", "bilibili"),
        ("mediacrawler_kuaishou.jsonl", "kuaishou"),
        ("mediacrawler_weibo_v2026.json", "weibo"),
        ("mediacrawler_xhs_v2026.jsonl", "xiaohongshu"),
        ("xhs_downloader.csv", "xiaohongshu"),
    ]:
        _land_fixture(tmp_path, name, platform, REAL_DAY)
    files = run(tmp_path, REAL_DAY).ingest_files
    assert files.accepted_rows.sum() / files.input_rows.sum() >= 0.99
    assert files.accepted_rows.sum() == files.input_rows.sum()


def test_note_files_mapped_together_give_each_file_what_it_gets_alone():
    # A day's note files are mapped in one pass (notes.base.to_notes_many): every exporter,
    # platform and container at once, and values pandas judges column by column (a JSON object
    # among numbers, numbers among text) must be judged per file as when it is mapped alone.
    from pipelines.ingest.files import read_records
    from pipelines.ingest.notes import base
    from pipelines.ingest.notes.registry import detect
    from pipelines.ingest.quarantine import FileContext

    good = json.loads((NOTES / "mediacrawler_xhs_v2026.jsonl").read_text(encoding="utf-8").splitlines()[0])
    hostile = [
        {**good, "time": 1704513600000, "title": {"oops": 1}, "liked_count": 5},
        {**good, "note_id": "h2", "time": {"t": 1}, "collected_count": "一些", "platform": "dy"},
        {**good, "note_id": "h3", "comment_count": "-7", "share_count": "10,000", "type": "新类型"},
        {**good, "note_id": "", "creator_hash": "NOT-A-HASH", "tag_list": "#a[话题]#, b"},
    ]
    delivered = [(name, platform, (NOTES / name).read_bytes()) for name, platform in [
        ("mediacrawler_xhs_v2026.jsonl", "xiaohongshu"),
        ("mediacrawler_xhs_url_only.csv", "xiaohongshu"),
        ("mediacrawler_xhs_cleaned.csv", "xiaohongshu"),
        ("spider_xhs_info.json", "xiaohongshu"),
        ("xhs_downloader.csv", "xiaohongshu"),
        ("mediacrawler_douyin.json", "douyin"),
        ("mediacrawler_bili.csv", "bilibili"),
        ("mediacrawler_kuaishou.jsonl", "kuaishou"),
        ("mediacrawler_weibo_v2026.json", "weibo"),
    ]]
    # A title that is a number elsewhere in the day makes the day's titles "mixed-integer" to pandas.
    numbered = [{**good, "note_id": "n1", "title": 123}]
    for name, records in (("hostile.jsonl", hostile), ("numbered.jsonl", numbered)):
        lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
        delivered.append((name, "xiaohongshu", lines.encode()))
    files = []
    for name, platform, data in delivered:
        records = read_records(data)
        fmt = next(f for f in detect(records.frame.columns) if f.platform == platform)
        files.append((records, fmt, FileContext(DAY, "notes", platform, name)))

    together = base._map_files(files)
    assert together is not None  # mapped in one pass, not file by file
    for (frame, checks), (records, fmt, ctx) in zip(together, files, strict=True):
        alone, alone_checks = base.to_notes(records, fmt, ctx)
        pd.testing.assert_frame_equal(
            schemas.conform(schemas.NOTES, frame), schemas.conform(schemas.NOTES, alone)
        )
        assert frame["_pos"].tolist() == alone["_pos"].tolist()
        assert checks.reason.tolist() == alone_checks.reason.tolist(), ctx.source_file
        assert checks.detail.tolist() == alone_checks.detail.tolist(), ctx.source_file
    hostile_checks = together[-2][1].reason.tolist()
    assert hostile_checks == ["bad_type", "bad_type", "negative_count", "missing_required"]


def test_notes_mapped_in_the_worker_process_give_the_same_day(tmp_path, monkeypatch):
    """A delivery day whose notes are read, mapped and settled in the worker process (``workers``)
    is the day mapped here: the same lake partitions, quarantine records, file accounting and errors."""
    from pipelines import workers
    from pipelines.ingest import day as ingest

    good = json.loads((NOTES / "mediacrawler_xhs_v2026.jsonl").read_text(encoding="utf-8").splitlines()[0])
    hostile = [
        {**good, "time": 1704513600000, "title": {"oops": 1}, "liked_count": 5},
        {**good, "note_id": "h2", "time": {"t": 1}, "collected_count": "一些"},
        {**good, "note_id": "", "creator_hash": "NOT-A-HASH", "tag_list": "#a[话题]#, b"},
        {**good, "note_id": "n1", "title": 123},
    ]
    homes = {mode: tmp_path / mode for mode in ("here", "worker")}
    for home in homes.values():
        for name in ("mediacrawler_xhs_notes.json", "mediacrawler_xhs_notes_phones.csv"):
            drop(home, f"notes/xiaohongshu/dt={REAL_DAY}/{name}", (REAL / name).read_bytes())
        for name, platform in [
            ("mediacrawler_xhs_url_only.csv", "xiaohongshu"), ("mediacrawler_douyin_new_types.jsonl", "douyin"),
            ("mediacrawler_bili.csv", "bilibili"), ("mediacrawler_kuaishou.jsonl", "kuaishou"),
            ("mediacrawler_weibo_v2026.json", "weibo"), ("xhs_downloader.csv", "xiaohongshu"),
        ]:
            _land_fixture(home, name, platform, REAL_DAY)
        drop(home, f"notes/xiaohongshu/dt={REAL_DAY}/hostile.jsonl",
             "\n".join(json.dumps(r, ensure_ascii=False) for r in hostile) + "\n{not json\n")
        drop(home, f"notes/douyin/dt={REAL_DAY}/broken.json", b"\xff\xfe[{")
        drop(home, f"notes/myspace/dt={REAL_DAY}/unknown_platform.jsonl", json.dumps(good))
        sqlite_from_sql(home / "landing" / "notes" / "xiaohongshu" / f"dt={REAL_DAY}" / "mediacrawler.db",
                        (NOTES / "mediacrawler_xhs_store.sql").read_text(encoding="utf-8"))
        drop(home, f"searches/dt={REAL_DAY}/s.csv", "search_id,user_id,event_time,query\ns1,u1,1757462400,露营\n")

    mapped_here = []
    real_map = ingest._map_notes

    def counted(*args):
        mapped_here.append(1)
        return real_map(*args)

    monkeypatch.setattr(ingest, "_map_notes", counted)  # this process's module only, not the worker's
    results = {}
    for mode, home in homes.items():
        monkeypatch.setattr(workers, "running", lambda mode=mode: mode == "worker")
        results[mode] = ingest.ingest_day(Settings(home=home, landing=home / "landing"), REAL_DAY, run_id="same")
        assert_accounting(results[mode])
    here, there = results["here"], results["worker"]
    pd.testing.assert_frame_equal(here.quarantine, there.quarantine)
    pd.testing.assert_frame_equal(here.ingest_files, there.ingest_files)
    assert (here.written, here.collapsed, here.errors) == (there.written, there.collapsed, there.errors)
    for source in ("notes", "searches", "quarantine", "ingest_files"):
        pd.testing.assert_frame_equal(
            lake.read_table(homes["here"] / "lake", source), lake.read_table(homes["worker"] / "lake", source)
        )
    assert here.written["notes"] > 100 and len(here.quarantine) >= 5 and here.errors
    assert mapped_here == [1]  # mapped here once; the other time in the worker process
