"""The lake: atomic partition replacement, reading back typed, resolving note versions."""

from __future__ import annotations

import os
from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from test_ingest_helpers import DAY, drop, run

from pipelines import lake, schemas

HEADER = "search_id,user_id,event_time,query\n"


def _searches(tmp_path, days=None) -> pd.DataFrame:
    return lake.read_table(tmp_path / "lake", "searches", days)


def test_reingesting_a_day_replaces_it(tmp_path):
    f = drop(
        tmp_path, f"searches/dt={DAY}/s.csv", HEADER + "s1,u1,1704513600,a\ns2,u2,1704513600,b\n"
    )
    run(tmp_path)
    f.write_text(HEADER + "s3,u3,1704513600,c\n", encoding="utf-8")
    run(tmp_path)
    assert _searches(tmp_path).search_id.tolist() == ["s3"]
    assert len(lake.read_table(tmp_path / "lake", "ingest_files")) == 1


@pytest.mark.parametrize("setting", [None, "1", "0"])
def test_writes_are_fsynced_unless_turned_off(tmp_path, monkeypatch, setting):
    """The file and both folders of a partition swap, and the state file, reach the disk before
    the write returns; ``SEEDFUNNEL_FSYNC=0`` (the suite's own setting) turns that off."""
    from pipelines import arrival
    from pipelines.settings import ENV_FSYNC, Settings

    if setting is None:
        monkeypatch.delenv(ENV_FSYNC, raising=False)
    else:
        monkeypatch.setenv(ENV_FSYNC, setting)
    synced = []
    real = os.fsync
    monkeypatch.setattr(lake.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    frame = schemas.conform("searches", pd.DataFrame({"search_id": ["s1"], "user_id": ["u1"], "event_time": [pd.Timestamp("2024-01-06", tz="UTC")], "query": ["q"], "dt": [DAY]}))
    lake.write_partition(tmp_path / "lake", "searches", DAY, frame)
    arrival.State().save(Settings(home=tmp_path))
    assert len(synced) == (0 if setting == "0" else 4)  # file, staged folder, parent folder, state
    assert lake.read_table(tmp_path / "lake", "searches")["search_id"].tolist() == ["s1"]


def test_crash_mid_write_leaves_previous_partition(tmp_path, monkeypatch):
    drop(tmp_path, f"searches/dt={DAY}/s.csv", HEADER + "s1,u1,1704513600,a\n")
    run(tmp_path)
    drop(tmp_path, f"searches/dt={DAY}/s.csv", HEADER + "s9,u9,1704513600,z\n")
    real_replace = os.replace

    def crash_after_temp_file(src, dst):
        if ".tmp-" in os.path.basename(str(src)) and "searches" in str(src):
            raise OSError("disk died right after the temporary file was written")
        return real_replace(src, dst)

    monkeypatch.setattr(lake.os, "replace", crash_after_temp_file)
    with pytest.raises(OSError, match="disk died"):
        run(tmp_path)
    monkeypatch.undo()
    assert _searches(tmp_path).search_id.tolist() == ["s1"]
    leftovers = sorted(p.name for p in (tmp_path / "lake" / "searches").iterdir())
    assert (
        leftovers[0].startswith(f".dt={DAY}.new-") and leftovers[1] == f"dt={DAY}"
    )  # readers skip hidden ones
    run(tmp_path)  # the next write cleans up and replaces
    assert _searches(tmp_path).search_id.tolist() == ["s9"]
    assert [p.name for p in (tmp_path / "lake" / "searches").iterdir()] == [f"dt={DAY}"]


def test_crash_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    frame = schemas.conform(
        "searches",
        pd.DataFrame(
            {
                "search_id": ["s1"],
                "user_id": ["u"],
                "event_time": [pd.Timestamp("2024-01-06", tz="UTC")],
                "query": ["q"],
                "dt": [DAY],
            }
        ),
    )
    lake.write_partition(tmp_path, "searches", DAY, frame)
    real_replace = os.replace
    calls = []

    def crash_on_swap_in(src, dst):
        calls.append(src)
        if ".new-" in os.path.basename(str(src)):
            raise OSError("power cut during the swap")
        return real_replace(src, dst)

    monkeypatch.setattr(lake.os, "replace", crash_on_swap_in)
    with pytest.raises(OSError):
        lake.write_partition(tmp_path, "searches", DAY, frame.assign(search_id="s2"))
    monkeypatch.undo()
    assert lake.partitions(tmp_path, "searches") == []  # the old one is parked under a hidden name
    lake.write_partition(
        tmp_path, "searches", DAY + timedelta(days=1), frame
    )  # other partitions unaffected
    lake._recover(lake.partition_path(tmp_path, "searches", DAY))
    assert lake.read_table(tmp_path, "searches", [DAY]).search_id.tolist() == ["s1"]


def test_read_table_by_days_and_typed(tmp_path):
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    for i, d in enumerate(days):
        drop(tmp_path, f"searches/dt={d}/s.csv", HEADER + f"s{i},u{i},1704513600,q\n")
        run(tmp_path, d)
    assert _searches(tmp_path, [days[0], days[2]]).search_id.tolist() == ["s0", "s2"]
    assert _searches(tmp_path, [date(2020, 1, 1)]).empty
    all_rows = _searches(tmp_path)
    assert list(all_rows.columns) == schemas.SEARCHES.names
    assert str(all_rows.event_time.dtype) == "datetime64[us, UTC]"
    assert lake.read_table(tmp_path / "lake", "orders").empty  # written empty each day
    assert (
        lake.read_table(tmp_path / "elsewhere", "orders").columns.tolist() == schemas.ORDERS.names
    )


def test_resolve_notes_latest_delivery_then_file_then_record(tmp_path):
    def note(note_id, title, day, file, row):
        return {
            "platform": "xiaohongshu",
            "note_id": note_id,
            "author_id": "0123456789abcdef",
            "published_at": pd.Timestamp("2024-01-06", tz="UTC"),
            "title": title,
            "text": "",
            "tags": [],
            "likes": 0,
            "collects": 0,
            "comments": 0,
            "shares": 0,
            "note_type": "image",
            "source_file": file,
            "source_row": row,
            "dt": day,
        }

    later = DAY + timedelta(days=1)
    notes = schemas.conform(
        "notes",
        pd.DataFrame(
            [
                note("a", "a-later-day", later, "notes/x/dt=2024-01-08/a.json", 1),
                note("a", "a-earlier-day", DAY, "notes/x/dt=2024-01-07/z.json", 9),
                note("b", "b-file-a", DAY, "notes/x/dt=2024-01-07/a.json", 5),
                note("b", "b-file-b", DAY, "notes/x/dt=2024-01-07/b.json", 1),
                note("c", "c-row-2", DAY, "notes/x/dt=2024-01-07/a.json", 2),
                note("c", "c-row-7", DAY, "notes/x/dt=2024-01-07/a.json", 7),
            ]
        ),
    )
    resolved = lake.resolve_notes(notes).set_index("note_id").title.to_dict()
    assert resolved == {"a": "a-later-day", "b": "b-file-b", "c": "c-row-7"}


def test_a_partition_read_in_batches_is_the_partition_in_order(tmp_path):
    rows = pd.DataFrame(
        {
            "dt": DAY,
            "search_id": [f"s{i:03d}" for i in range(250)],
            "user_id": [f"u{i % 7}" for i in range(250)],
            "event_time": pd.Timestamp("2024-01-06", tz="UTC") + pd.to_timedelta(range(250), unit="s"),
            "query": [f"q{i % 11}" for i in range(250)],
        }
    )
    lake.write_partition(tmp_path, "searches", DAY, schemas.conform("searches", rows))
    whole = lake.read_arrow(tmp_path, "searches", [DAY])
    batches = list(lake.iter_arrow(tmp_path, "searches", DAY, batch_rows=100))
    assert [b.num_rows for b in batches] == [100, 100, 50]
    assert all(b.schema.equals(schemas.SEARCHES.arrow_schema()) for b in batches)
    assert pa.concat_tables(batches).equals(whole)
    assert list(lake.iter_arrow(tmp_path, "searches", DAY + timedelta(days=1))) == []

    path = lake.partition_path(tmp_path, "searches", DAY) / lake.PART
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(lake.LakeError, match="damaged"):
        list(lake.iter_arrow(tmp_path, "searches", DAY))
