"""Secrets (issue 17): one redaction helper for every URL shown; a canary password never appears in
any command's output or any file the project writes; an Airflow connection that cannot be read
stops the run instead of falling back to a local SQLite file."""

from __future__ import annotations

import ast
import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO, fresh_pg_schema, load_bench
from typer.main import get_command
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.redact import redact_text, redact_url
from pipelines.settings import ENV_WAREHOUSE_URL, ConnectionLookupError, Settings
from seedfunnel_ops import airflow_local, cluster

CANARY = "CanaryPw7f3a9c"
DAY = date(2026, 2, 1)
runner = CliRunner()


def _with_password(url: str, password: str = CANARY) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


def test_redact_masks_the_password_and_keeps_the_rest():
    url = f"postgresql+psycopg://etl:{CANARY}@db.internal:5432/warehouse?sslmode=require"
    assert redact_url(url) == "postgresql+psycopg://etl:***@db.internal:5432/warehouse?sslmode=require"
    assert redact_url("redis://:s3cr%40t@cache:6379/3") == "redis://:***@cache:6379/3"
    assert redact_url("sqlite:////tmp/w.sqlite") == "sqlite:////tmp/w.sqlite"
    text = f"could not connect to {url}: password {CANARY} rejected; also s3cr@t"
    assert CANARY not in redact_text(text, url) and "s3cr@t" not in redact_text(text, "redis://:s3cr%40t@cache")
    # A URL nobody named (a driver's or a secrets backend's message) loses its password too.
    assert redact_text(f"at https://vault:{CANARY}@vault.internal/v1") == "at https://vault:***@vault.internal/v1"


def test_there_is_one_redaction_helper():
    # Every password-hiding or redacting function lives in pipelines/redact.py; nothing else
    # renders a URL with its password hidden on its own.
    offenders = []
    for path in sorted([*(REPO / "pipelines").rglob("*.py"), *(REPO / "bench").glob("*.py"), *(REPO / "dags").rglob("*.py")]):
        if path == REPO / "pipelines" / "redact.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and ("redact" in node.name or "password" in node.name):
                offenders.append(f"{path.relative_to(REPO)}: def {node.name}")
            if isinstance(node, ast.keyword) and node.arg == "hide_password" and getattr(node.value, "value", None) is True:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: hide_password=True")
    assert not offenders, offenders


def _all_commands() -> set[str]:
    root = get_command(app)
    out = set()
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        out |= {f"{name} {s}" for s in subs} if subs else {name}
    return out


def _grep_files(root: Path) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and CANARY.encode() in p.read_bytes()
    ]


def test_a_canary_password_appears_in_no_output_and_no_written_file(pg_server_url, tmp_path, monkeypatch, capsys):
    with fresh_pg_schema(pg_server_url) as url:
        # The server trusts local connections, so a password in the URL is sent and ignored:
        # every command really works with it.
        secret_url = _with_password(url)
        unreachable = f"postgresql+psycopg://etl:{CANARY}@127.0.0.1:1/none?connect_timeout=2"
        monkeypatch.setenv(ENV_WAREHOUSE_URL, secret_url)
        landing, home = tmp_path / "landing", tmp_path / "home"
        common = ["--landing", str(landing), "--home", str(home)]
        outputs: dict[str, str] = {}

        def cli(name: str, *args: str, ok: bool = True) -> None:
            result = runner.invoke(app, [*name.split(), *args])
            if ok:
                assert result.exit_code == 0, (name, result.output)
            outputs[name] = outputs.get(name, "") + result.output

        cli("simulate", "--out", str(landing), "--users", "80", "--days", "1", "--start", str(DAY))
        cli("settings", "--home", str(home))
        cli("db upgrade")
        cli("ingest", "--end", str(DAY), *common)
        cli("run", "--start", str(DAY), *common)
        cli("backfill", "--start", str(DAY), "--end", str(DAY), *common)
        cli("report", "--date", str(DAY), "--home", str(home))
        cli("validate", "--date", str(DAY), "--home", str(home), ok=False)
        cli("seeds lint", ok=False)
        # An unreachable server: the error names it, without its password.
        cli("run", "--start", str(DAY), *common, "--warehouse-url", unreachable, ok=False)
        cli("db upgrade", "--warehouse-url", unreachable, ok=False)
        assert "127.0.0.1:1" in outputs["db upgrade"] and "***" in outputs["db upgrade"]

        # The helpers around Airflow: their summaries print the warehouse they published to.
        monkeypatch.setattr(airflow_local, "require_airflow", lambda: None)
        monkeypatch.setattr(
            airflow_local,
            "run_days",
            lambda settings, d1, d2, progress=None: airflow_local.AirflowRunSummary(
                settings, home / "airflow", home / "airflow" / "run.log"
            ),
        )
        cli("demo", *common)
        cli("cluster-demo", "--folder", str(tmp_path / "cluster"), "--pg-url", unreachable, ok=False)
        assert "unreachable" in outputs["cluster-demo"]
        monkeypatch.setattr(
            cluster, "demo", lambda *a, **k: {"runs": [{"buckets": []}], "rows": {}, "warehouse_url": secret_url, "logs": "x"}
        )
        cli("cluster-demo", "--folder", str(tmp_path / "cluster"))
        assert "warehouse: postgresql+psycopg://postgres:***@" in " ".join(outputs["cluster-demo"].split())

        # The benchmark: PostgreSQL unreachable is noted in results.json, the URL without password.
        bench = _bench_module()
        opts = bench.Options(
            sizes=[], repeats=1, work=tmp_path / "bench", out=tmp_path / "bench_out", docs=None,
            pg_url=unreachable, exposures=2_000, queries=1_000,
        )
        bench.run(opts, progress=lambda msg, frac: print(msg))
        notes = json.loads((tmp_path / "bench_out" / "results.json").read_text())["notes"]
        assert "not reachable" in notes[0] and "***" in notes[0]
        outputs["bench"] = capsys.readouterr().out + runner.invoke(app, ["bench", "--sizes", "lots"]).output

    assert set(outputs) >= _all_commands(), sorted(_all_commands() - set(outputs))
    leaked = {name: out for name, out in outputs.items() if CANARY in out}
    assert not leaked, leaked
    assert "run" in outputs and "warehouse: postgresql+psycopg://postgres:***@" in " ".join(outputs["run"].split())
    assert _grep_files(tmp_path) == []


def _bench_module():
    return load_bench("run", "bench_run_secrets")


# ---------------------------------------------------------------- the Airflow connection


@pytest.fixture
def in_airflow_task(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_WAREHOUSE_URL, raising=False)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "seedfunnel_attribution")
    from airflow.sdk import BaseHook

    return lambda error: monkeypatch.setattr(BaseHook, "get_connection", classmethod(_raiser(error)))


def _raiser(error: Exception):
    def get_connection(cls, conn_id):
        raise error

    return get_connection


def test_a_connection_that_is_not_defined_falls_back_to_sqlite(in_airflow_task, tmp_path):
    from airflow.sdk.exceptions import AirflowNotFoundException

    in_airflow_task(AirflowNotFoundException("The conn_id `seedfunnel_warehouse` isn't defined"))
    assert Settings(home=tmp_path).resolved_warehouse_url().startswith("sqlite:///")


def test_any_other_connection_lookup_failure_is_an_error(in_airflow_task, tmp_path):
    in_airflow_task(ConnectionError(f"secrets backend unreachable at https://vault:{CANARY}@vault.internal"))
    with pytest.raises(ConnectionLookupError, match="refusing to fall back") as e:
        Settings(home=tmp_path).resolved_warehouse_url()
    assert "seedfunnel_warehouse" in str(e.value) and "SEEDFUNNEL_WAREHOUSE_URL" in str(e.value)
    assert CANARY not in str(e.value)
    result = runner.invoke(app, ["settings", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "refusing to fall back" in result.output, result.output
    assert "Traceback" not in result.output
