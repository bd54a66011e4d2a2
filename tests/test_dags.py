"""The Airflow DAGs: they import cleanly, are wired as documented, and publish what the runner does.

Airflow reads its configuration once per process, so everything Airflow runs in a fresh interpreter
(``DRIVER`` below) with its own AIRFLOW_HOME under tmp_path; the test process never imports it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipelines import runner, schemas, warehouse
from pipelines.settings import (
    ENV_BUCKETS,
    ENV_HOME,
    ENV_LANDING,
    ENV_WAREHOUSE_URL,
    TIMEZONE,
    Settings,
)
from pipelines.simulate import simulate_world

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
START, WORLD_DAYS, RUN_DAYS = date(2026, 3, 1), 4, 3
INGEST, ATTRIBUTION = "seedfunnel_ingest", "seedfunnel_attribution"

# Runs in a fresh interpreter. argv[1] is a JSON job: {"mode": "inspect"} parses the DAG folder
# with sockets disabled; {"mode": "run", "runs": [[dag_id, logical_date or null, conf], ...]}
# runs each with dag.test() against the metadata DB of AIRFLOW_HOME. Prints one JSON line.
DRIVER = r"""
import json, socket, sys, time
job = json.loads(sys.argv[1])
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
airflow_import = time.perf_counter() - t0

def inspect():
    def no_network(*args, **kwargs):
        raise OSError("network access while importing a DAG file")
    socket.socket.connect = socket.create_connection = socket.getaddrinfo = no_network
    t = time.perf_counter()
    bag = DagBag(dag_folder=job["dags"])
    parse = time.perf_counter() - t
    dags = {}
    for dag in bag.dags.values():
        dags[dag.dag_id] = {
            "tags": sorted(dag.tags),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "doc_md": dag.doc_md or "",
            "timetable": type(dag.timetable).__name__,
            "cron": dag.timetable.expression,
            "timezone": str(dag.timetable.timezone),
            "interval_s": dag.timetable.interval.total_seconds(),
            "dag_timezone": str(dag.timezone),
            "params": {k: dag.params.get_param(k).value for k in dag.params},
            "tasks": {
                t.task_id: {
                    "upstream": sorted(t.upstream_task_ids),
                    "mapped": bool(getattr(t, "is_mapped", False)),
                    "retries": t.retries,
                    "retry_delay_s": t.retry_delay.total_seconds(),
                    "outlets": sorted(a.uri for a in t.outlets),
                    "inlets": sorted(a.uri for a in t.inlets),
                }
                for t in dag.tasks
            },
        }
    stats = {s.file: s.duration.total_seconds() for s in bag.dagbag_stats}
    return {"errors": {str(k): v for k, v in bag.import_errors.items()}, "dags": dags,
            "file_seconds": stats, "parse_seconds": parse, "airflow_import_seconds": airflow_import}

def run():
    import pendulum
    from sqlalchemy import select
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    bag = DagBag(dag_folder=job["dags"])
    out = []
    for dag_id, logical, conf in job["runs"]:
        t = time.perf_counter()
        dr = bag.dags[dag_id].test(
            logical_date=pendulum.parse(logical) if logical else None, run_conf=conf
        )
        tis = {}
        for ti in dr.get_task_instances():
            tis.setdefault(ti.task_id, []).append(str(ti.state))
        out.append({"dag_id": dag_id, "state": str(dr.state), "tasks": tis,
                    "seconds": time.perf_counter() - t})
    with create_session() as session:
        events = session.execute(
            select(AssetModel.uri, AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        ).all()
    return {"runs": out, "asset_events": [[uri, extra] for uri, extra in events]}

print("RESULT " + json.dumps(inspect() if job["mode"] == "inspect" else run(), default=str))
"""


def _airflow_env(home: Path, db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEEDFUNNEL_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}",
        **extra,
    )
    home.mkdir(parents=True, exist_ok=True)
    return env


def _start(job: dict, env: dict[str, str]) -> subprocess.Popen:
    job = {"dags": str(DAGS), **job}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(job)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _result(proc: subprocess.Popen, timeout: float = 150) -> dict:
    output, _ = proc.communicate(timeout=timeout)
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"Airflow driver failed:\n{output[-6000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------- import, policies, structure


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("dagbag")
    # A database path in a folder that does not exist: any connection attempt at import fails.
    env = _airflow_env(tmp / "airflow_home", tmp / "absent" / "airflow.db")
    return _result(_start({"mode": "inspect"}, env))


def test_every_dag_file_imports_without_database_or_network(bag):
    files = sorted(p.name for p in DAGS.glob("*.py"))
    assert bag["errors"] == {}
    assert sorted(Path(f).name for f in bag["file_seconds"]) == files
    assert set(bag["dags"]) == {INGEST, ATTRIBUTION}
    # Wiring only: a DAG file parses in well under a second (Airflow's own budget is 30 s).
    slow = {f: s for f, s in bag["file_seconds"].items() if s > 1.0}
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
        "wait_for_ingest": ["resolve_day"],
        "plan": ["wait_for_ingest"],
        "funnel_bucket": ["plan", "resolve_day"],
        "reduce": ["funnel_bucket", "resolve_day"],
        "publish": ["reduce", "resolve_day"],
        "cleanup": ["funnel_bucket", "publish"],
    }
    assert [k for k, v in funnel.items() if v["mapped"]] == ["funnel_bucket"]
    assert funnel["wait_for_ingest"]["inlets"] == sorted(
        f"seedfunnel://lake/{t.name}" for t in schemas.INPUT_TABLES
    )
    published = [t.name for t in schemas.FUNNEL_TABLES] + [
        schemas.QUARANTINE.name,
        schemas.INGEST_FILES.name,
    ]
    assert funnel["publish"]["outlets"] == sorted(f"seedfunnel://warehouse/{n}" for n in published)
    assert bag["dags"][ATTRIBUTION]["params"]["engine"] in runner.ENGINES


# ---------------------------------------------------------------- end to end


def _logical(day: date) -> str:
    """The logical date whose one-day interval starts on ``day`` (01:00 of the next day)."""
    return f"{day + timedelta(days=1)}T01:00:00+08:00"


def _runs() -> list[list]:
    days = [START + timedelta(days=i) for i in range(RUN_DAYS)]
    runs: list[list] = [[INGEST, None, None]]  # no logical date and no day param: must fail
    for day in days[:-1]:  # the day from the data interval
        runs += [[INGEST, _logical(day), None], [ATTRIBUTION, _logical(day), None]]
    # The last day from the param, in a run that has no data interval at all.
    runs += [
        [INGEST, None, {"day": days[-1].isoformat()}],
        [ATTRIBUTION, None, {"day": days[-1].isoformat()}],
    ]
    return runs


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    engine = warehouse.make_engine(Settings(home=home).resolved_warehouse_url())
    try:
        out = {}
        for t in schemas.WAREHOUSE_TABLES:
            frame = warehouse.read_table(engine, t.name)
            out[t.name] = frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)
        return out
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> dict:
    """A simulated world run by the DAGs (1 and 4 buckets, in parallel) and by the runner."""
    tmp = tmp_path_factory.mktemp("e2e")
    landing = tmp / "landing"
    simulate_world(
        landing, users=300, days=WORLD_DAYS, start=START, seed=7, seeds_dir=Settings().seeds
    )

    t = time.perf_counter()
    template = tmp / "airflow.db"
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=_airflow_env(tmp / "migrate_home", template),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    migrate_seconds = time.perf_counter() - t

    procs = {}
    for buckets in (1, 4):
        db = tmp / f"airflow-{buckets}.db"
        shutil.copy(template, db)
        env = _airflow_env(
            tmp / f"airflow_home-{buckets}",
            db,
            **{
                ENV_HOME: str(tmp / f"dag-{buckets}"),
                ENV_LANDING: str(landing),
                ENV_BUCKETS: str(buckets),
            },
        )
        env.pop(ENV_WAREHOUSE_URL, None)
        procs[buckets] = _start({"mode": "run", "runs": _runs()}, env)

    t = time.perf_counter()
    reference = Settings(home=tmp / "runner", landing=landing)
    runner.run_days(reference, START, START + timedelta(days=RUN_DAYS - 1))
    runner_seconds = time.perf_counter() - t
    results = {b: _result(p) for b, p in procs.items()}
    return {
        "results": results,
        "homes": {b: tmp / f"dag-{b}" for b in procs},
        "reference": _tables(reference.home),
        "migrate_seconds": migrate_seconds,
        "runner_seconds": runner_seconds,
    }


def test_dag_runs_succeed_and_a_run_without_a_day_fails_fast(e2e):
    for buckets, result in e2e["results"].items():
        no_day, *runs = result["runs"]
        assert no_day["state"] == "failed"
        assert no_day["tasks"] == {"resolve_day": ["failed"], "ingest": ["upstream_failed"]}
        assert [r["state"] for r in runs] == ["success"] * len(runs), runs
        for r in runs:
            if r["dag_id"] == ATTRIBUTION:
                assert r["tasks"]["funnel_bucket"] == ["success"] * buckets, buckets


def test_ingestion_emits_one_asset_event_per_lake_table_and_day(e2e):
    days = {(START + timedelta(days=i)).isoformat() for i in range(RUN_DAYS)}
    for result in e2e["results"].values():
        events = pd.DataFrame(result["asset_events"], columns=["uri", "extra"])
        events["day"] = events["extra"].map(lambda e: e["day"])
        lake = events[events["uri"].str.startswith("seedfunnel://lake/")]
        assert set(lake["uri"]) == {f"seedfunnel://lake/{t.name}" for t in schemas.INPUT_TABLES} | {
            "seedfunnel://lake/quarantine",
            "seedfunnel://lake/ingest_files",
        }
        assert lake.groupby("uri")["day"].apply(set).map(days.__eq__).all()
        exposures = lake[lake["uri"].eq("seedfunnel://lake/exposures")]
        assert exposures["extra"].map(lambda e: e["accepted_rows"]).gt(0).all()
        published = events[events["uri"].eq("seedfunnel://warehouse/fct_touches")]
        assert set(published["day"]) == days
        assert published["extra"].map(lambda e: e["rows"]).gt(0).all()


@pytest.mark.parametrize("buckets", [1, 4])
def test_dag_runs_publish_the_runners_warehouse_tables(e2e, buckets):
    got = _tables(e2e["homes"][buckets])
    want = e2e["reference"]
    assert len(want["fct_touches"]) > 0 and len(want["agg_brand_funnel_daily"]) > 0
    for name, frame in want.items():
        # Same deterministic run ids (runner.default_run_id), so run_id is compared too.
        pd.testing.assert_frame_equal(got[name], frame, obj=f"{name} ({buckets} buckets)")
    # The mapped outputs were scratch space: cleanup removed them.
    assert not [p for p in Settings(home=e2e["homes"][buckets]).work.rglob("*") if p.is_file()]
