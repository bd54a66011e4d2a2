"""Careless operators (issue 17): every command checks what it needs (a writable home, the seeds,
the warehouse) before any work; each problem is one clear message and a non-zero exit, never a
traceback; ``-v`` shows the traceback."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()
DAY = date(2026, 2, 1)


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    folder = landing / "searches" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "s.csv").write_text("search_id,user_id,event_time,query\ns1,u1,2026-02-01 10:00:00,露营\n")
    return landing


def _one_message(result, *needles: str) -> str:
    out = " ".join(result.output.split())
    assert result.exit_code != 0, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out, out
    assert out.count("error:") == 1, out
    for n in needles:
        assert n in out, (n, out)
    return out


def _unwritable_home(tmp_path: Path) -> Path:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    return blocker / "home"  # a folder inside a regular file cannot be made, even by root


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--start", str(DAY)],
        ["backfill", "--start", str(DAY), "--end", str(DAY)],
        ["ingest", "--end", str(DAY)],
        ["report", "--date", str(DAY)],
        ["validate", "--date", str(DAY)],
        ["demo"],
    ],
)
def test_an_unwritable_home_is_one_message_before_any_work(tmp_path, command):
    landing = _landing(tmp_path)
    home = _unwritable_home(tmp_path)
    extra = ["--landing", str(landing)] if command[0] in ("run", "backfill", "ingest", "demo") else []
    result = runner.invoke(app, [*command, *extra, "--home", str(home)])
    _one_message(result, "cannot write to the home folder", str(home), "--home")
    assert result.exit_code == 2


def test_a_sqlite_warehouse_in_an_unwritable_folder_does_not_say_check_the_server(tmp_path):
    home = _unwritable_home(tmp_path)
    result = runner.invoke(app, ["db", "upgrade", "--warehouse-url", f"sqlite:///{home / 'w.sqlite'}"])
    out = _one_message(result, "SQLite warehouse file lives in", "write to it")
    assert "server is up" not in out


def test_windows_of_an_unknown_category_stop_the_run_before_anything_is_ingested(tmp_path):
    landing = _landing(tmp_path)
    home = tmp_path / "home"
    config = tmp_path / "seedfunnel.toml"
    config.write_text("[funnel.category_windows.cat_babby]\nseed_window_days = 70\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["--config", str(config), "run", "--start", str(DAY), "--landing", str(landing), "--home", str(home),
         "--warehouse-url", f"sqlite:///{tmp_path / 'w.sqlite'}"],
    )
    _one_message(result, "funnel.category_windows names category 'cat_babby'", "categories.csv", "did you mean 'cat_baby'", str(config))
    assert not (home / "lake").exists()


def test_missing_seeds_stop_the_run_before_anything_is_ingested(tmp_path):
    landing = _landing(tmp_path)
    home = tmp_path / "home"
    result = runner.invoke(
        app,
        ["run", "--start", str(DAY), "--landing", str(landing), "--home", str(home),
         "--seeds", str(tmp_path / "no_seeds"), "--warehouse-url", f"sqlite:///{tmp_path / 'w.sqlite'}"],
    )
    _one_message(result, "seeds folder not found", "--seeds")
    assert not (home / "lake").exists()
    simulate = runner.invoke(app, ["simulate", "--out", str(tmp_path / "w"), "--seeds", str(tmp_path / "no_seeds")])
    _one_message(simulate, "seeds folder not found")


def test_a_corrupt_lake_partition_is_one_message_and_v_shows_the_traceback(tmp_path):
    landing = _landing(tmp_path)
    home = tmp_path / "home"
    ingest = runner.invoke(app, ["ingest", "--end", str(DAY), "--landing", str(landing), "--home", str(home)])
    assert ingest.exit_code == 0, ingest.output
    part = home / "lake" / "searches" / f"dt={DAY}" / "part-0.parquet"
    part.write_bytes(b"PAR1 this is no longer a parquet file PAR1")
    args = ["run", "--start", str(DAY), "--landing", str(landing), "--home", str(home),
            "--warehouse-url", f"sqlite:///{tmp_path / 'w.sqlite'}"]
    result = runner.invoke(app, args)
    out = _one_message(result, "cannot be read", "damaged", "searches", "-v")
    assert result.exit_code == 1 and "rebuild" in out
    verbose = runner.invoke(app, [*args, "-v"])
    assert verbose.exit_code == 1 and "Traceback (most recent call last)" in verbose.output
    assert "damaged" in verbose.output
    before = runner.invoke(app, ["--verbose", *args])
    assert "Traceback (most recent call last)" in before.output


def test_a_damaged_lake_state_file_is_one_message(tmp_path):
    landing = _landing(tmp_path)
    home = tmp_path / "home"
    assert runner.invoke(app, ["ingest", "--end", str(DAY), "--landing", str(landing), "--home", str(home)]).exit_code == 0
    (home / "lake" / "_state.json").write_text("{not json")
    result = runner.invoke(app, ["ingest", "--end", str(DAY), "--landing", str(landing), "--home", str(home)])
    _one_message(result, "_state.json", "damaged")
