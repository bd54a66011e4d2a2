"""Helpers shared by the ingestion tests (a landing zone in tmp_path, one ingested day), and their tests."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from pipelines.ingest.day import DayIngestResult, ingest_day
from pipelines.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
DAY = date(2024, 1, 7)


def settings_for(home: Path) -> Settings:
    return Settings(home=home, landing=home / "landing")


def drop(home: Path, rel: str, content: bytes | str) -> Path:
    """Write one landing file (bytes as given, text as UTF-8)."""
    path = home / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def sqlite_from_sql(path: Path, sql: str) -> Path:
    """A SQLite file built from a SQL script (fixtures keep stores as readable SQL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.commit()
    con.close()
    return path


def run(home: Path, day: date = DAY) -> DayIngestResult:
    result = ingest_day(settings_for(home), day)
    assert_accounting(result)
    return result


def assert_accounting(result: DayIngestResult) -> None:
    """input = accepted + quarantined for every file; the quarantine holds each quarantined row
    (one record for all the rows of a refused file); the lake holds accepted - collapsed rows."""
    files = result.ingest_files
    assert (files.input_rows == files.accepted_rows + files.quarantined_rows).all(), files
    per_file = result.quarantine.groupby("source_file").size()
    for row in files.itertuples():
        records = row.quarantined_rows - row.refused_rows + (1 if row.refused_rows else 0)
        assert per_file.get(row.source_file, 0) == records, row
    stored = files.assign(rows=files.accepted_rows - files.collapsed_rows).groupby("source")["rows"].sum()
    for source, n in result.written.items():
        if source != "items":
            assert stored.get(source, 0) == n, (source, n, files)


def reasons(result: DayIngestResult, source_file_part: str = "") -> dict[int, str]:
    """row_number -> reason of the quarantined rows of the files whose name contains the text."""
    q = result.quarantine
    q = q[q.source_file.str.contains(source_file_part, regex=False)]
    return dict(zip(q.row_number.astype(int), q.reason, strict=True))


def test_accounting_check_catches_a_lost_row(tmp_path):
    import dataclasses

    import pytest

    drop(
        tmp_path,
        f"searches/dt={DAY}/s.csv",
        "search_id,user_id,event_time,query\ns1,u1,1704513600,a\ns2,,1,b\n",
    )
    result = run(tmp_path)
    assert reasons(result) == {3: "missing_required"}
    broken = dataclasses.replace(
        result, files=[dataclasses.replace(result.files[0], accepted_rows=2)]
    )
    with pytest.raises(AssertionError):
        assert_accounting(broken)
