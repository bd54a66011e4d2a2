"""The Airflow DAGs: they import cleanly, are wired as documented, and publish what the runner does.

Airflow reads its configuration once per process, so everything Airflow runs in a fresh interpreter
(``seedfunnel_ops.airflow_local``, as `seedfunnel demo` does) with its own AIRFLOW_HOME under tmp_path;
the test process never imports it.
"""

from __future__ import annotations

import ast
import hashlib
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import MODEL_ENV, fresh_pg_schema

from pipelines import runner, schemas, warehouse
from pipelines.settings import (
    ENV_BUCKETS,
    ENV_HOME,
    ENV_LANDING,
    ENV_RETRY_DELAY,
    ENV_WAREHOUSE_URL,
    TIMEZONE,
    Settings,
)
from pipelines.simulate import simulate_world
from seedfunnel_ops import airflow_local
from seedfunnel_ops.airflow_local import ATTRIBUTION, DAGS_FOLDER, INGEST, Driver, airflow_env

DAGS = DAGS_FOLDER
# `make test` runs --dist loadscope: one xdist worker per module, so each module-scoped Airflow
# fixture (the DagBag parse, the end-to-end DAG runs) runs once, not once per worker.
START, WORLD_DAYS, RUN_DAYS = date(2026, 3, 1), 4, 3


# ---------------------------------------------------------------- import, policies, structure

#: Libraries of the work, not of the wiring: a DAG file must not import them when it is parsed.
HEAVY = {"pandas", "great_expectations", "matplotlib", "duckdb", "psycopg", "sklearn", "scipy", "jieba", "ahocorasick"}


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("dagbag")
    # A database path in a folder that does not exist: any connection attempt at import fails.
    env = airflow_env(tmp / "airflow_home", metadata_url=f"sqlite:///{tmp / 'absent' / 'airflow.db'}")
    return Driver({"mode": "inspect"}, env, tmp / "inspect.log").wait(timeout=150)


def test_every_dag_file_imports_without_database_or_network(bag):
    files = sorted(p.name for p in DAGS.glob("*.py"))
    assert (DAGS / "seedfunnel_ops" / "airflow_local.py").is_file()
    assert bag["errors"] == {}
    # Only the DAG files: dags/.airflowignore keeps the tooling in dags/seedfunnel_ops unparsed.
    assert sorted(Path(f).name for f in bag["file_seconds"]) == files
    assert set(bag["dags"]) == {INGEST, ATTRIBUTION}
    # Wiring only: parsing the DAG files imports nothing of the project but its schemas (numpy and
    # pyarrow), none of the libraries that do the work; what a task needs it imports when it runs.
    project = {m for m in bag["imported"] if m.split(".")[0] == "pipelines"}
    assert project <= {"pipelines", "pipelines.schemas"}, sorted(project)
    heavy = {m.split(".")[0] for m in bag["imported"]} & HEAVY
    assert not heavy, f"parsing the DAG files imported {sorted(heavy)}"
    # And a budget far from Airflow's own (30 s) whatever the machine's speed; what it costs is
    # the imports above, measured where speed is measured (make bench), not here.
    slow = {f: s for f, s in bag["file_seconds"].items() if s > 10.0}
    assert not slow, f"DAG files too slow to import: {slow}"


def test_every_dag_follows_the_house_policies(bag):
    for dag_id, d in bag["dags"].items():
        assert d["tags"] and "seedfunnel" in d["tags"], dag_id
        assert d["max_active_runs"] == 1, dag_id
        assert d["catchup"] is False, dag_id
        assert d["doc_md"].strip().startswith(f"### {dag_id}"), dag_id
        # Asia/Shanghai days: 01:00 local, a one-day interval ending at the trigger.
        assert (d["timetable"], d["cron"], d["timezone"]) == (
            "CronTriggerTimetable",
            "0 1 * * *",
            TIMEZONE,
        )
        assert d["interval_s"] == 86400 and d["dag_timezone"] == TIMEZONE, dag_id
        assert d["params"]["day"] is None, dag_id
        for task_id, t in d["tasks"].items():
            assert t["retries"] >= 1 and t["retry_delay_s"] > 0, (dag_id, task_id)


def test_scheduling_arguments_are_written_out_not_left_to_defaults():
    # Airflow's defaults (catchup from airflow.cfg, a cron string's zero-length interval) would
    # silently change which day a run processes, so each @dag call spells them out.
    required = {
        "dag_id",
        "schedule",
        "start_date",
        "catchup",
        "max_active_runs",
        "default_args",
        "params",
        "doc_md",
        "tags",
    }
    for path in sorted(DAGS.glob("*.py")):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dag"
        ]
        assert len(calls) == 1, path.name
        assert required <= {k.arg for k in calls[0].keywords}, (
            path.name,
            required - {k.arg for k in calls[0].keywords},
        )


def test_dag_structure(bag):
    ingest = bag["dags"][INGEST]["tasks"]
    assert {k: v["upstream"] for k, v in ingest.items()} == {
        "resolve_day": [],
        "ingest": ["resolve_day"],
    }
    lake_tables = [t.name for t in schemas.INPUT_TABLES] + [
        schemas.QUARANTINE.name,
        schemas.INGEST_FILES.name,
    ]
    assert ingest["ingest"]["outlets"] == sorted(f"seedfunnel://lake/{n}" for n in lake_tables)

    funnel = bag["dags"][ATTRIBUTION]["tasks"]
    assert {k: v["upstream"] for k, v in funnel.items()} == {
        "resolve_day": [],
        "plan": ["resolve_day"],
        "buckets": [],
        "funnel_bucket": ["buckets", "plan"],
        "reduce": ["funnel_bucket", "plan"],
        "validate": ["plan", "reduce"],
        "publish": ["plan", "validate"],
        "report": ["publish", "resolve_day"],
        "cleanup": ["funnel_bucket", "report"],
    }
    assert [k for k, v in funnel.items() if v["mapped"]] == ["funnel_bucket"]
    assert funnel["plan"]["inlets"] == sorted(f"seedfunnel://lake/{t.name}" for t in schemas.INPUT_TABLES)
    published = [t.name for t in schemas.COMPUTED_TABLES] + [
        t.name for t in schemas.LOG_TABLES if t is not schemas.DQ_RESULTS
    ]
    assert funnel["publish"]["outlets"] == sorted(f"seedfunnel://warehouse/{n}" for n in published)
    assert bag["dags"][ATTRIBUTION]["params"]["engine"] in runner.ENGINES


# ---------------------------------------------------------------- end to end, on both warehouses

#: (warehouse, buckets) of each DAG process; every one is compared with the in-process runner at 1
#: bucket on SQLite, so 4 buckets on PostgreSQL equal 1 bucket on SQLite, table for table.
BACKENDS = {"sqlite": 1, "postgresql": 4}


def _days() -> list[date]:
    return [START + timedelta(days=i) for i in range(RUN_DAYS)]


def _runs(*, with_no_day: bool) -> list[list]:
    days = _days()
    runs: list[list] = [[INGEST, None, None]] if with_no_day else []  # no day at all: must fail
    runs += airflow_local.day_runs(days[:-1])  # the day from the data interval
    # The last day from the param, in a run that has no data interval at all.
    runs += [[INGEST, None, {"day": days[-1].isoformat()}], [ATTRIBUTION, None, {"day": days[-1].isoformat()}]]
    # Then the last day again, as scheduled: the rerun.
    return runs + airflow_local.day_runs(days[-1:])


def _tables(url: str) -> dict[str, pd.DataFrame]:
    engine = warehouse.make_engine(url)
    try:
        out = {}
        for t in schemas.WAREHOUSE_TABLES:
            frame = warehouse.read_table(engine, t.name)
            out[t.name] = frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)
        return out
    finally:
        engine.dispose()


def _digests(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """One hash per table over its sorted rows."""
    return {
        name: hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
        for name, frame in tables.items()
    }


@pytest.fixture(scope="module")
def pg_schema_url(request):
    """A schema of its own on the real server for the module's DAG runs (as conftest's ``pg_url``)."""
    try:
        server = request.getfixturevalue("pg_server_url")
    except pytest.skip.Exception as e:  # PG absent outside CI: only the PostgreSQL cases skip
        yield pytest.skip.Exception(str(e))
        return
    with fresh_pg_schema(server, prefix="t_dags_") as url:
        yield url


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, pg_schema_url) -> dict:
    """A simulated world run by the DAGs on each warehouse (in parallel) and by the runner."""
    tmp = tmp_path_factory.mktemp("e2e")
    landing = tmp / "landing"
    simulate_world(
        landing, users=300, days=WORLD_DAYS, start=START, seed=7, seeds_dir=Settings().seeds
    )
    urls = {"sqlite": f"sqlite:///{tmp / 'dag-sqlite' / 'warehouse.sqlite'}", "postgresql": pg_schema_url}
    skipped = {k: u for k, u in urls.items() if isinstance(u, BaseException)}

    t = time.perf_counter()
    template = tmp / "airflow.db"
    airflow_local.migrate(
        airflow_env(tmp / "migrate_home", metadata_url=f"sqlite:///{template}"), tmp / "migrate.log"
    )
    migrate_seconds = time.perf_counter() - t

    drivers, runs = {}, {}
    for backend, buckets in BACKENDS.items():
        if backend in skipped:
            continue
        db = tmp / f"airflow-{backend}.db"
        db.write_bytes(template.read_bytes())
        env = airflow_env(
            tmp / f"airflow_home-{backend}",
            metadata_url=f"sqlite:///{db}",
            extra={
                ENV_HOME: str(tmp / f"dag-{backend}"),
                ENV_LANDING: str(landing),
                ENV_BUCKETS: str(buckets),
                ENV_WAREHOUSE_URL: urls[backend],
                ENV_RETRY_DELAY: "1",
                **MODEL_ENV,
            },
        )
        runs[backend] = _runs(with_no_day=backend == "sqlite")
        # Pause before the rerun (the last two runs) to take the warehouse's digest.
        job = {"mode": "run", "runs": runs[backend], "asset_events": True, "pause_after": [len(runs[backend]) - 3]}
        drivers[backend] = Driver(job, env, tmp / f"driver-{backend}.log")

    before_rerun, results = {}, {}
    try:
        t = time.perf_counter()
        reference = Settings(home=tmp / "runner", landing=landing)
        runner.run_days(reference, START, START + timedelta(days=RUN_DAYS - 1))
        runner_seconds = time.perf_counter() - t
        for backend, driver in drivers.items():
            for event in driver.events():
                if event["event"] == "paused":
                    before_rerun[backend] = _digests(_tables(urls[backend]))
                    driver.resume()
            results[backend] = driver.wait(timeout=600)
    finally:
        for driver in drivers.values():
            driver.stop()
    return {
        "urls": urls,
        "skipped": skipped,
        "runs": runs,
        "results": results,
        "before_rerun": before_rerun,
        "homes": {b: tmp / f"dag-{b}" for b in BACKENDS},
        "reference": _tables(reference.resolved_warehouse_url()),
        "migrate_seconds": migrate_seconds,
        "runner_seconds": runner_seconds,
    }


@pytest.fixture(params=list(BACKENDS))
def backend(request, e2e) -> str:
    if request.param in e2e["skipped"]:
        raise e2e["skipped"][request.param]
    return request.param


def test_dag_runs_succeed_and_a_run_without_a_day_fails_fast(e2e, backend):
    result = e2e["results"][backend]
    runs = result["runs"]
    assert [[r["dag_id"]] for r in runs] == [[r[0]] for r in e2e["runs"][backend]]
    if backend == "sqlite":
        no_day, *runs = runs
        assert no_day["state"] == "failed"
        assert no_day["tasks"] == {"resolve_day": ["failed"], "ingest": ["upstream_failed"]}
    assert [r["state"] for r in runs] == ["success"] * len(runs), runs
    for r in runs:
        assert {s for states in r["tasks"].values() for s in states} == {"success"}, r["tasks"]
        if r["dag_id"] == ATTRIBUTION:
            assert r["tasks"]["funnel_bucket"] == ["success"] * BACKENDS[backend]
            computed = r["xcom"]["plan"]["start"] is not None  # the re-run finds nothing to do
            assert (r["xcom"]["publish"]["fct_touches"] > 0) == computed
        else:
            ingested = r["xcom"]["ingest"]
            if ingested["deliveries"]:  # the re-run of an unchanged day ingests nothing
                assert ingested["totals"]["exposures"]["accepted_rows"] > 0


def test_ingestion_emits_one_asset_event_per_lake_table_and_day(e2e, backend):
    days = {d.isoformat() for d in _days()}
    events = pd.DataFrame(e2e["results"][backend]["asset_events"], columns=["uri", "extra"])
    events["day"] = events["extra"].map(lambda e: e["day"])
    lake = events[events["uri"].str.startswith("seedfunnel://lake/")]
    assert set(lake["uri"]) == {f"seedfunnel://lake/{t.name}" for t in schemas.INPUT_TABLES} | {
        "seedfunnel://lake/quarantine",
        "seedfunnel://lake/ingest_files",
    }
    assert lake.groupby("uri")["day"].apply(set).map(days.__eq__).all()
    exposures = lake[lake["uri"].eq("seedfunnel://lake/exposures")]
    fresh = exposures["extra"].map(lambda e: bool(e["deliveries"]))
    assert exposures.loc[fresh, "extra"].map(lambda e: e["accepted_rows"]).gt(0).all()
    assert fresh.sum() == len(days)  # each delivery ingested once; the re-run found nothing new
    published = events[events["uri"].eq("seedfunnel://warehouse/fct_touches")]
    assert set(published["day"]) == days
    rows = published["extra"].map(lambda e: e["rows"])
    # Every day's run published touches; the last one, a re-run of an unchanged day, published none.
    assert rows.iloc[:-1].gt(0).all() and rows.iloc[-1] == 0


def test_dag_runs_publish_the_runners_warehouse_tables(e2e, backend):
    got = _tables(e2e["urls"][backend])
    want = e2e["reference"]
    assert len(want["fct_touches"]) > 0 and len(want["agg_brand_funnel_daily"]) > 0
    # The runner reached the last day in one run, the DAGs day by day: the funnel tables are equal
    # (SPEC 5, Arrival) and every delivery was ingested once, with the same quarantined rows.
    for name in [t.name for t in schemas.COMPUTED_TABLES] + [schemas.QUARANTINE.name, schemas.INGEST_FILES.name]:
        pd.testing.assert_frame_equal(
            _without_run_id(got[name]), _without_run_id(want[name]),
            obj=f"{name} ({backend}, {BACKENDS[backend]} buckets)",
        )
    # The mapped outputs were scratch space: cleanup removed them.
    assert not [p for p in Settings(home=e2e["homes"][backend]).work.rglob("*") if p.is_file()]
    # Every run wrote its day's report (docs/report.md).
    reports = Settings(home=e2e["homes"][backend]).reports
    for i in range(RUN_DAYS):
        assert (reports / "attribution" / f"{START + timedelta(days=i)}.html").stat().st_size > 10_000
    assert (reports / "index.html").exists()


def _without_run_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns="run_id")
    return frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)


def test_rerunning_a_day_through_the_dags_leaves_every_table_identical(e2e, backend):
    before = e2e["before_rerun"][backend]
    after = _digests(_tables(e2e["urls"][backend]))
    assert set(before) == {t.name for t in schemas.WAREHOUSE_TABLES}
    # The re-run's checks are appended to dq_results (a log); nothing else moved.
    changed = {name for name in before if after[name] != before[name]}
    assert changed <= {schemas.DQ_RESULTS.name}


def test_demo_without_airflow_says_what_to_do(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    real = airflow_local.importlib.util.find_spec
    monkeypatch.setattr(
        airflow_local.importlib.util,
        "find_spec",
        lambda name, *a: None if name.split(".")[0] == "airflow" else real(name, *a),
    )
    result = CliRunner().invoke(app, ["demo", "--home", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "Airflow is not installed" in result.output and "make setup" in result.output
    assert "seedfunnel run" in result.output
    assert not (tmp_path / "landing").exists()  # nothing simulated before the check
