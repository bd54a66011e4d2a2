"""Scale-out on a real distributed executor: Airflow 3 CeleryExecutor, PostgreSQL metadata, Redis.

One cluster for the module (seedfunnel_ops.cluster: API server, scheduler, DAG processor and two
Celery workers, separate process groups) runs the attribution DAG with 8 user buckets over a small
simulated world. During the run one worker is SIGKILLed (with its task processes) while it runs
bucket tasks: those tasks must be retried on the other worker, and the published tables must
equal those of the one-bucket in-process run (runner.run_days into another warehouse), nothing
lost or duplicated. One run covers both claims, since a run on Airflow costs minutes on a loaded
2-core machine; clean n-bucket runs are compared with one bucket in test_dags.py and
test_buckets.py. Needs PostgreSQL and Redis: skipped with the reason when either is absent, a
failure under CI=true.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import date, timedelta

import pandas as pd
import pytest
from conftest import MODEL_ENV

from pipelines import runner, schemas, warehouse
from pipelines.settings import Settings
from pipelines.simulate import simulate_world
from seedfunnel_ops import cluster

START, DAYS, USERS, BUCKETS = date(2026, 3, 1), 1, 400, 8
WORKERS = ("worker-a", "worker-b")
VICTIM, SURVIVOR = WORKERS[1], WORKERS[0]
REDIS_URL = os.environ.get("SEEDFUNNEL_TEST_REDIS_URL", cluster.DEFAULT_REDIS_URL)
#: Compared after every day: every funnel table plus the ingestion accounting.
COMPARED = [t.name for t in schemas.COMPUTED_TABLES] + [
    schemas.QUARANTINE.name,
    schemas.INGEST_FILES.name,
]


def _tables(url: str) -> dict[str, pd.DataFrame]:
    engine = warehouse.make_engine(url)
    try:
        out = {}
        for name in COMPARED:
            frame = warehouse.read_table(engine, name)
            out[name] = frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)
        return out
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def services(pg_server_url: str) -> str:
    """The PostgreSQL server URL, once Redis answers too."""
    problem = cluster.services_problem(pg_server_url, REDIS_URL)
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the scale-out test needs PostgreSQL and Redis under CI=true: {problem}")
        pytest.skip(f"{problem}; set SEEDFUNNEL_TEST_PG_URL / SEEDFUNNEL_TEST_REDIS_URL")
    return pg_server_url


@pytest.fixture(scope="module")
def scaled(services: str, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("cluster")
    token = uuid.uuid4().hex[:8]
    landing = tmp / "landing"
    days = [START + timedelta(days=i) for i in range(DAYS)]
    simulate_world(
        landing, users=USERS, days=DAYS, start=START, seed=11, seeds_dir=Settings().seeds
    )

    # The one-bucket local run, in a thread while the cluster starts (other processes do the work).
    ref_db = f"sf_test_ref_{token}"
    ref_url = cluster.database_url(services, ref_db)
    cluster.create_database(services, ref_db)
    reference: dict = {}

    def run_reference() -> None:
        try:
            ref = Settings(
                home=tmp / "reference", landing=landing, warehouse_url=ref_url, buckets=1
            )
            runner.run_days(ref, days[0], days[-1])
            reference.update(_tables(ref_url))
        except BaseException as e:  # reported by the test, not lost in the thread
            reference["error"] = e

    settings = Settings(home=tmp / "cluster-home", landing=landing, buckets=BUCKETS)
    cluster.ingest_days(settings, days)
    spec = cluster.ClusterSpec(
        folder=tmp / "cluster",
        settings=settings,
        pg_url=services,
        redis_url=REDIS_URL,
        metadata_db=f"sf_test_airflow_{token}",
        warehouse_db=f"sf_test_dwh_{token}",
        workers=WORKERS,
        concurrency=BUCKETS // len(WORKERS),
        extra_env=MODEL_ENV,
    )
    reference_thread = threading.Thread(target=run_reference)
    reference_thread.start()
    published: dict = {}
    kill = cluster.Kill(VICTIM, days[-1])
    t0 = time.perf_counter()
    c = cluster.Cluster(spec)
    try:
        with c:
            started = time.perf_counter() - t0
            runs = cluster.run_attribution(c, days, kill=kill, timeout=900)
            published.update(_tables(spec.warehouse_url))
            health = c._health()
    finally:
        reference_thread.join()
        for db in (spec.metadata_db, spec.warehouse_db, ref_db):
            cluster.drop_database(services, db)
    if "error" in reference:
        raise reference["error"]
    print(f"cluster: ready in {started:.0f} s, total {time.perf_counter() - t0:.0f} s")
    return {
        "runs": runs,
        "kill": kill,
        "published": published,
        "reference": reference,
        "strays": c.strays(),
        "logs": c.logs,
        "health": health,
        "seconds": {"start": started, "total": time.perf_counter() - t0},
        "days": days,
    }


def test_every_bucket_ran_and_both_workers_took_bucket_tasks(scaled):
    (run,) = scaled["runs"]
    assert [b["bucket"] for b in run["buckets"]] == list(range(BUCKETS))
    assert {b["state"] for b in run["buckets"]} == {"success"}
    # TaskInstance.hostname is the worker name ([core] hostname_callable); every try counts.
    hosts = [t["hostname"] for b in run["buckets"] for t in b.get("tries", [b])]
    assert set(hosts) == set(WORKERS), hosts


def test_published_tables_equal_the_one_bucket_local_run(scaled):
    got, want = scaled["published"], scaled["reference"]
    assert len(want["fct_touches"]) > 0 and len(want["agg_brand_funnel_daily"]) > 0
    for name in COMPARED:
        # Equal in all but run_id (SPEC 5, Arrival): run ids number each lake's own runs.
        pd.testing.assert_frame_equal(_content(got[name]), _content(want[name]), obj=name)


def _content(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns="run_id")
    return frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)


def test_a_killed_workers_bucket_tasks_are_retried_on_the_other_worker(scaled):
    kill, run = scaled["kill"], scaled["runs"][-1]
    assert kill.pids, f"{VICTIM} never held a running bucket task during the run of {kill.day}"
    assert kill.buckets
    buckets = {b["bucket"]: b for b in run["buckets"]}
    assert sorted(buckets) == list(range(BUCKETS))
    for bucket in kill.buckets:
        b = buckets[bucket]
        assert (b["state"], b["hostname"]) == ("success", SURVIVOR), b
        tries = [(t["try_number"], t["hostname"], t["state"]) for t in b["tries"]]
        # The killed try failed on the victim (heartbeat timeout), the retry succeeded elsewhere.
        assert tries[0][:2] == (1, VICTIM) and tries[0][2] in ("failed", "up_for_retry"), tries
        assert tries[-1] == (b["try_number"], SURVIVOR, "success"), tries
    # Buckets the victim was not running were untouched: one try each, all on the survivor.
    others = [b for i, b in buckets.items() if i not in kill.buckets]
    assert all(b["hostname"] == SURVIVOR and b["state"] == "success" for b in others), others
    # Nothing lost or duplicated: the tables equal the reference (above) and have unique keys.
    for name in [t.name for t in schemas.COMPUTED_TABLES]:
        frame = scaled["published"][name]
        key = list(schemas.table(name).key)
        assert not frame.duplicated(key).any(), name


def test_the_cluster_stops_every_process_it_started(scaled):
    assert scaled["strays"] == []
    # Every process logged to its own file under the cluster folder.
    logs = {p.name for p in scaled["logs"].glob("*.log")}
    assert {"api-server.log", "scheduler.log", "dag-processor.log"} | {
        f"{w}.log" for w in WORKERS
    } <= logs
    assert scaled["health"]["scheduler"]["status"] == "healthy"


def test_the_profile_is_settings_only(tmp_path, monkeypatch):
    """Every process gets one environment; workers differ only by their name."""
    from pipelines.settings import ENV_WORKER_NAME, PROJECT_ROOT, worker_hostname

    spec = cluster.ClusterSpec(
        folder=tmp_path, settings=Settings(home=tmp_path / "home", buckets=BUCKETS)
    )
    env = cluster.Cluster(spec).env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(PROJECT_ROOT / "dags")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert (
        env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64
    assert env["SEEDFUNNEL_BUCKETS"] == str(BUCKETS)
    # The hostname callable is importable without Airflow and names the worker.
    module, _, name = env["AIRFLOW__CORE__HOSTNAME_CALLABLE"].rpartition(".")
    assert (module, name) == ("pipelines.settings", worker_hostname.__name__)
    monkeypatch.setenv(ENV_WORKER_NAME, "worker-z")
    assert worker_hostname() == "worker-z"
    monkeypatch.delenv(ENV_WORKER_NAME)
    assert worker_hostname()  # the machine's name
