"""The command line: every command explains itself, errors say what to do, simulate is deterministic."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()
COMMANDS = ["simulate", "ingest", "run", "backfill", "report", "demo", "settings", "db"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and len(result.output.splitlines()) > 5


def test_missing_landing_folder_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["run", "--start", "2026-01-01", "--landing", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "--landing" in result.output


def test_bad_day_is_explained(tmp_path):
    result = runner.invoke(app, ["run", "--start", "01/02/2026", "--landing", str(tmp_path)])
    assert result.exit_code != 0 and "YYYY-MM-DD" in result.output


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_simulate_command_is_deterministic(tmp_path):
    args = ["simulate", "--users", "60", "--days", "2", "--start", "2026-02-01", "--seed", "5"]
    for name in ("a", "b"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert (tmp_path / "a" / "ground_truth.json").exists()


def test_ingest_command_accounts_for_every_row(tmp_path):
    sim = ["simulate", "--users", "60", "--days", "2", "--start", "2026-02-01", "--seed", "5"]
    assert runner.invoke(app, [*sim, "--out", str(tmp_path / "landing")]).exit_code == 0
    result = runner.invoke(
        app,
        ["ingest", "--end", "2026-02-01", "--landing", str(tmp_path / "landing"), "--home", str(tmp_path / "home")],
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("2026-02-01:"))
    numbers = [int(w.replace(",", "")) for w in line.split() if w.replace(",", "").isdigit()]
    assert numbers[0] == numbers[1] + numbers[2] and numbers[0] > 0, line


def test_db_upgrade_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    first = runner.invoke(app, ["db", "upgrade", "--warehouse-url", url])
    again = runner.invoke(app, ["db", "upgrade", "--warehouse-url", url])
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert first.output != again.output  # the second run says there was nothing to do


def test_db_upgrade_unreachable_server_says_what_to_check():
    result = runner.invoke(
        app, ["db", "upgrade", "--warehouse-url", "postgresql+psycopg://x@127.0.0.1:1/none?connect_timeout=2"]
    )
    assert result.exit_code == 2 and "SEEDFUNNEL_WAREHOUSE_URL" in result.output


UNREACHABLE = "postgresql+psycopg://x@127.0.0.1:1/none?connect_timeout=2"


def _landing_with_day(tmp_path, day="2026-01-01"):
    (tmp_path / "landing" / "searches" / f"dt={day}").mkdir(parents=True)
    return tmp_path / "landing"


def test_run_of_a_day_without_landing_files_names_the_days_it_has(tmp_path):
    landing = _landing_with_day(tmp_path)
    result = runner.invoke(app, ["run", "--start", "2026-02-01", "--landing", str(landing), "--home", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "no landing files for 2026-02-01" in result.output and "2026-01-01 .. 2026-01-01" in result.output


def test_run_with_an_unreachable_warehouse_fails_before_any_work(tmp_path):
    landing = _landing_with_day(tmp_path)
    result = runner.invoke(
        app,
        ["backfill", "--start", "2026-01-01", "--end", "2026-01-01", "--landing", str(landing),
         "--home", str(tmp_path / "home"), "--warehouse-url", UNREACHABLE],
    )
    assert result.exit_code == 2 and "SEEDFUNNEL_WAREHOUSE_URL" in result.output, result.output
    assert not (tmp_path / "home" / "lake").exists()


def test_backfill_with_end_before_start_says_swap(tmp_path):
    result = runner.invoke(app, ["backfill", "--start", "2026-01-02", "--end", "2026-01-01", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "swap" in result.output


def test_report_errors_say_what_to_do(tmp_path):
    unreachable = runner.invoke(app, ["report", "--date", "2026-01-01", "--warehouse-url", UNREACHABLE])
    assert unreachable.exit_code == 2 and "SEEDFUNNEL_WAREHOUSE_URL" in unreachable.output
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    never_run = runner.invoke(app, ["report", "--date", "2026-01-01", "--warehouse-url", url, "--home", str(tmp_path)])
    assert never_run.exit_code == 2 and "seedfunnel run --start 2026-01-01" in never_run.output
    assert runner.invoke(app, ["db", "upgrade", "--warehouse-url", url]).exit_code == 0
    empty = runner.invoke(app, ["report", "--date", "2026-01-01", "--warehouse-url", url, "--home", str(tmp_path)])
    assert empty.exit_code == 2 and "no funnel rows" in empty.output and "seedfunnel run" in empty.output


def test_run_prints_a_summary_with_the_report_and_report_rebuilds_it(tmp_path):
    landing, home = tmp_path / "landing", tmp_path / "home"
    sim = runner.invoke(app, ["simulate", "--out", str(landing), "--users", "150", "--days", "1", "--start", "2026-02-01"])
    assert sim.exit_code == 0, sim.output
    args = ["--landing", str(landing), "--home", str(home), "--warehouse-url", f"sqlite:///{tmp_path / 'w.sqlite'}"]
    result = runner.invoke(app, ["backfill", "--start", "2026-02-01", "--end", "2026-02-01", *args])
    assert result.exit_code == 0, result.output
    report = home / "reports" / "attribution" / "2026-02-01.html"
    for text in ("runs", "1 (2026-02-01 .. 2026-02-01)", "deliveries ingested", "rows accepted", "rows quarantined", "warehouse:"):
        assert text in result.output, text
    assert f"report: {report.resolve()}" in " ".join(result.output.split())
    assert "run: day 2026-02-01" in result.output  # progress lines when not on a terminal
    report.unlink()
    again = runner.invoke(app, ["report", "--date", "2026-02-01", *args[2:]])
    assert again.exit_code == 0, again.output
    assert report.exists() and str(report.resolve()) in again.stdout
