"""The command line: every command explains itself, errors say what to do, simulate is deterministic."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()
COMMANDS = ["simulate", "ingest", "run", "demo", "settings", "db"]


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
