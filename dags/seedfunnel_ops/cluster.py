"""The production profile on one machine: Airflow 3 with CeleryExecutor, PostgreSQL and Redis.

``Cluster`` starts, as separate process groups, an API server, a scheduler, a DAG processor and
Celery workers (each with its own worker name), all configured by environment variables only:

- metadata DB: a dedicated PostgreSQL database (``[database] sql_alchemy_conn``, psycopg 3);
- executor: ``CeleryExecutor``, broker Redis (``[celery] broker_url``), results in the metadata DB
  (``[celery] result_backend = db+postgresql+psycopg://...``), a queue of its own;
- the workers reach the API server at ``[core] execution_api_server_url``; every process shares
  one ``[api_auth] jwt_secret``;
- a worker reports ``SEEDFUNNEL_WORKER_NAME`` as its hostname (``[core] hostname_callable =
  pipelines.settings.worker_hostname``), so TaskInstance.hostname tells workers apart on one host;
- seedfunnel itself: ``SEEDFUNNEL_HOME`` / ``SEEDFUNNEL_LANDING`` (the shared filesystem),
  ``SEEDFUNNEL_BUCKETS``, and the warehouse as the Airflow connection ``seedfunnel_warehouse``.

The DAGs and runner stages are the ones every other run uses; only settings differ. Every
process logs to ``<folder>/logs/<process>.log`` (task logs under ``<folder>/airflow/logs``);
``Cluster.stop`` (also on errors, via the context manager) ends every process it started,
including the task processes Airflow puts in process groups of their own.

``demo`` is ``seedfunnel cluster-demo`` / ``make cluster-demo``; ``tests/test_cluster.py`` drives
the same functions. See docs/scaling.md.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pipelines.redact import redact_text, redact_url
from pipelines.settings import (
    AIRFLOW_CONN_ID,
    ENV_BUCKETS,
    ENV_HOME,
    ENV_LANDING,
    ENV_RETRY_DELAY,
    ENV_SEEDS,
    ENV_WORKER_NAME,
    PROJECT_ROOT,
    Settings,
)

from .airflow_local import AirflowError, migrate
from .airflow_local import tail_log as _tail

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
INGEST, ATTRIBUTION = "seedfunnel_ingest", "seedfunnel_attribution"
API_USER = "seedfunnel"

Echo = Callable[[str], None]


class ClusterError(RuntimeError):
    """A cluster process died or did not become ready; the message carries its log tail."""


@dataclass
class ClusterSpec:
    """Where the cluster lives and how it is tuned. Every field ends up as an environment variable."""

    folder: Path
    settings: Settings
    pg_url: str = DEFAULT_PG_URL
    redis_url: str = DEFAULT_REDIS_URL
    metadata_db: str = "seedfunnel_airflow"
    warehouse_db: str = "seedfunnel_warehouse"
    workers: tuple[str, ...] = ("worker-a", "worker-b")
    concurrency: int = 4
    #: Seconds without a task heartbeat before the scheduler fails (and retries) the task.
    heartbeat_timeout: int = 20
    retry_delay_seconds: int = 2
    #: Copy the metadata DB from a migrated template database (made once per Airflow version).
    template: bool = True
    #: Extra environment for every process (AIRFLOW__SECTION__KEY=...).
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).resolve()
        self.token = secrets.token_hex(4)
        self.queue = f"seedfunnel-{self.token}"

    def db_url(self, database: str) -> str:
        return database_url(self.pg_url, database)

    @property
    def warehouse_url(self) -> str:
        return self.db_url(self.warehouse_db)


# ---------------------------------------------------------------- databases


def database_url(pg_url: str, database: str) -> str:
    """``pg_url`` with another database name."""
    from sqlalchemy.engine import make_url

    return make_url(pg_url).set(database=database).render_as_string(hide_password=False)


def _admin_engine(pg_url: str):
    import sqlalchemy as sa

    return sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")


def create_database(pg_url: str, name: str, template: str | None = None) -> None:
    """(Re)create database ``name`` on the server of ``pg_url``: empty, or a copy of ``template``."""
    engine = _admin_engine(pg_url)
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    finally:
        engine.dispose()


def drop_database(pg_url: str, name: str) -> None:
    engine = _admin_engine(pg_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


def services_problem(pg_url: str, redis_url: str) -> str | None:
    """Why PostgreSQL or Redis cannot be used (None when both answer)."""
    import redis
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(pg_url)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except Exception as e:
        first = redact_text(str(e).splitlines()[0] if str(e) else "", pg_url)
        return f"PostgreSQL at {redact_url(pg_url)} unreachable ({e.__class__.__name__}: {first})"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as e:
        return (
            f"Redis at {redact_url(redis_url)} unreachable "
            f"({e.__class__.__name__}: {redact_text(str(e), redis_url)})"
        )
    return None


# ---------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_tree(pid: int) -> list:
    """The process and its descendants (psutil objects, safe against pid reuse)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_tree(procs: list, sig: int) -> None:
    """Signal every process group in ``procs`` (Airflow runs each task in a group of its own)."""
    import psutil

    own = os.getpgid(0)
    groups = set()
    for p in procs:
        try:
            groups.add(os.getpgid(p.pid))
        except (ProcessLookupError, PermissionError):
            pass
    for g in groups - {own}:
        try:
            os.killpg(g, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    killed: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None


class Cluster:
    """An Airflow 3 CeleryExecutor deployment of seedfunnel, as local processes. Use as a context manager."""

    def __init__(self, spec: ClusterSpec, echo: Echo | None = None):
        self.spec = spec
        self.echo = echo or (lambda message: None)
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, Proc] = {}
        #: Every process seen under a cluster process (psutil objects), for ``strays``.
        self.seen: list = []
        self._password = secrets.token_urlsafe(16)
        # One signing key for every process (64 bytes, as RFC 7518 asks of HS512 keys).
        self._jwt_secret = secrets.token_urlsafe(64)
        self._secret_key = secrets.token_urlsafe(32)
        self._token: str | None = None
        self.logs = spec.folder / "logs"
        self.airflow_home = spec.folder / "airflow"

    # ------------------------------------------------------------ configuration

    def env(self) -> dict[str, str]:
        """The environment of every process: the whole production profile, as settings."""
        spec, s = self.spec, self.spec.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEEDFUNNEL_"))}
        metadata = spec.db_url(spec.metadata_db)
        warehouse = spec.warehouse_url.replace("postgresql+psycopg://", "postgresql://", 1)
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "pipelines.settings.worker_hostname",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.airflow_home / "passwords.json"
                ),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": self._secret_key,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__CELERY__BROKER_URL": spec.redis_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(spec.concurrency),
                "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": spec.queue,
                # Runs are triggered with a day; the cron timetable would add runs for today.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(spec.heartbeat_timeout),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                # Requeues a task a dead worker had received but not started (default 600 s).
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(
                    max(1, min(5, spec.heartbeat_timeout // 4))
                ),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}": warehouse,
                ENV_HOME: str(Path(s.home).resolve()),
                ENV_LANDING: str(Path(s.landing).resolve()),
                ENV_SEEDS: str(Path(s.seeds).resolve()),
                ENV_BUCKETS: str(s.buckets),
                ENV_RETRY_DELAY: str(spec.retry_delay_seconds),
                "PYTHONUNBUFFERED": "1",
                **self._metadata_env(metadata),
            }
        )
        env.update(spec.extra_env)
        return env

    # ------------------------------------------------------------ life cycle

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 420) -> None:
        spec = self.spec
        if self.logs.exists():
            shutil.rmtree(self.logs)
        self.logs.mkdir(parents=True)
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        (self.airflow_home / "passwords.json").write_text(json.dumps({API_USER: self._password}))
        env = self.env()

        t = time.perf_counter()
        self.echo(
            f"creating databases {spec.metadata_db} (Airflow metadata), {spec.warehouse_db} (warehouse)"
        )
        create_database(spec.pg_url, spec.warehouse_db)
        if spec.template:
            template = self._copy_template(env, timeout)
            self.echo(f"  metadata DB copied from the migrated template {template}")
        else:
            create_database(spec.pg_url, spec.metadata_db)
            self._migrate(env, timeout)
        self.echo(f"  databases ready in {time.perf_counter() - t:.0f} s")

        airflow = [sys.executable, "-m", "airflow"]
        self._spawn(
            "api-server",
            [
                *airflow,
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env,
        )
        self._spawn("scheduler", [*airflow, "scheduler"], env)
        self._spawn("dag-processor", [*airflow, "dag-processor"], env)
        for name in spec.workers:
            worker_env = {**env, ENV_WORKER_NAME: name}
            self._spawn(
                name,
                [
                    *airflow, "celery", "worker",
                    "--celery-hostname", self.celery_name(name),
                    "--queues", spec.queue,
                    "--concurrency", str(spec.concurrency),
                    "--pid", str(self.airflow_home / f"{name}.pid"),
                    "--skip-serve-logs",
                ],
                worker_env,
            )  # fmt: skip
        self.echo(f"started {', '.join(self.procs)}; waiting for them to be ready")
        deadline = time.monotonic() + timeout
        self._wait(lambda: self._health() is not None, deadline, "the API server to answer")
        self._login()
        self._wait(self._components_healthy, deadline, "the scheduler and DAG processor heartbeats")
        self._wait(
            lambda: self._dags_parsed([INGEST, ATTRIBUTION]), deadline, "the DAGs to be parsed"
        )
        for dag_id in (INGEST, ATTRIBUTION):
            self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        self._wait(self._workers_ready, deadline, "the Celery workers to answer a ping")
        self.echo(
            f"cluster ready in {time.perf_counter() - t:.0f} s (UI and REST API on {self.base_url})"
        )

    def _migrate(self, env: dict[str, str], timeout: float) -> None:
        self.echo("airflow db migrate")
        try:
            migrate(env, self.logs / "migrate.log", timeout)
        except AirflowError as e:
            raise ClusterError(str(e)) from e

    def _copy_template(self, env: dict[str, str], timeout: float) -> str:
        """Create the metadata DB as a copy of a template migrated once per Airflow version.

        The template is built under a temporary name and renamed when complete; building and
        copying hold an advisory lock, so concurrent clusters neither see a half-migrated template,
        nor migrate twice, nor copy while another session is connected to the template.
        """
        from importlib.metadata import version

        name = "seedfunnel_airflow_template_" + version("apache-airflow").replace(".", "_")
        engine = _admin_engine(self.spec.pg_url)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_advisory_lock(hashtext('seedfunnel cluster template'))"
                )
                try:
                    exists = conn.exec_driver_sql(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                    ).first()
                    if not exists:
                        building = f"{name}_building"
                        create_database(self.spec.pg_url, building)
                        self._migrate(
                            {**env, **self._metadata_env(self.spec.db_url(building))}, timeout
                        )
                        conn.exec_driver_sql(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
                    create_database(self.spec.pg_url, self.spec.metadata_db, template=name)
                finally:
                    conn.exec_driver_sql(
                        "SELECT pg_advisory_unlock(hashtext('seedfunnel cluster template'))"
                    )
        finally:
            engine.dispose()
        return name

    @staticmethod
    def _metadata_env(url: str) -> dict[str, str]:
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            # psycopg 3 is async too (Airflow would otherwise derive an asyncpg URL).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{url}",
        }

    def celery_name(self, worker: str) -> str:
        return f"{worker}@{self.spec.token}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.logs / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, signalled as one
            )
        self.procs[name] = Proc(name, popen, log)

    def check_alive(self) -> None:
        """Raise with the log tail of any process that exited on its own."""
        for p in self.procs.values():
            if not p.killed and not p.alive():
                raise ClusterError(
                    f"{p.name} exited with code {p.popen.returncode}; last lines of {p.log}:\n{_tail(p.log)}"
                )

    def _wait(
        self, ready: Callable[[], bool], deadline: float, what: str, every: float = 0.5
    ) -> None:
        while True:
            self.check_alive()
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}\n{self.log_tails()}")
            time.sleep(every)

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {p.log} (last {lines} lines)\n{_tail(p.log, lines)}" for p in self.procs.values()
        )

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL a worker with everything under it, as if its machine died; returns the pids."""
        proc = self.procs[name]
        tree = _process_tree(proc.popen.pid)
        self.seen.extend(tree)
        proc.killed = True
        _signal_tree(tree, signal.SIGKILL)
        proc.popen.wait(timeout=30)
        return [p.pid for p in tree]

    def stop(self, grace: float = 30) -> None:
        """End every process started here: SIGTERM, then SIGKILL whatever is left after ``grace`` s."""
        import psutil

        trees = {name: _process_tree(p.popen.pid) for name, p in self.procs.items()}
        for tree in trees.values():
            self.seen.extend(tree)
            _signal_tree(tree, signal.SIGTERM)
        everything = [p for tree in trees.values() for p in tree]
        _, alive = psutil.wait_procs(everything, timeout=grace)
        if alive:
            self.echo(f"killing {len(alive)} processes still running after {grace:.0f} s")
            _signal_tree(alive, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=10)
        for p in self.procs.values():
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._cleanup_queue()

    def strays(self) -> list[str]:
        """Processes seen under this cluster that still run (empty after ``stop``)."""
        out = []
        for p in self.seen:
            try:
                if p.is_running() and p.status() != "zombie":
                    out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except Exception:
                pass
        return out

    def _cleanup_queue(self) -> None:
        """Drop this cluster's queue from Redis (messages a killed worker held included)."""
        try:
            import redis

            r = redis.Redis.from_url(self.spec.redis_url, socket_connect_timeout=3)
            r.delete(self.spec.queue)
            for tag, raw in r.hscan_iter("unacked"):
                try:
                    routing_key = json.loads(raw)[2]
                except (ValueError, IndexError, TypeError):
                    continue
                if routing_key == self.spec.queue:
                    r.hdel("unacked", tag)
                    r.zrem("unacked_index", tag)
        except Exception as e:  # best effort: a stopped cluster must not fail on this
            self.echo(f"could not clean queue {self.spec.queue} in Redis: {e}")

    # ------------------------------------------------------------ REST API

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:2000]
            raise ClusterError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def _health(self) -> dict | None:
        req = urllib.request.Request(self.base_url + "/api/v2/monitor/health")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def _login(self) -> None:
        out = self.api("POST", "/auth/token", {"username": API_USER, "password": self._password})
        self._token = out["access_token"]

    def _components_healthy(self) -> bool:
        health = self._health() or {}
        return all(
            health.get(c, {}).get("status") == "healthy"
            for c in ("metadatabase", "scheduler", "dag_processor")
        )

    def _dags_parsed(self, dag_ids: list[str]) -> bool:
        for dag_id in dag_ids:
            try:
                self.api("GET", f"/api/v2/dags/{dag_id}", timeout=10)
            except ClusterError:
                return False
        return True

    def _workers_ready(self) -> bool:
        from celery import Celery

        app = Celery(broker=self.spec.redis_url)
        try:
            names = [self.celery_name(w) for w in self.spec.workers]
            replies = app.control.ping(destination=names, timeout=1.0)
        finally:
            app.close()
        return {name for reply in replies for name in reply} >= set(names)

    def trigger(self, dag_id: str, day: date, **conf) -> str:
        run_id = f"cluster__{day.isoformat()}__{secrets.token_hex(3)}"
        body = {
            "dag_run_id": run_id,
            "logical_date": None,
            "conf": {"day": day.isoformat(), **conf},
        }
        self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        out = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
        return out["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return self.api("GET", path)["task_instances"]

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 600,
        on_poll: Callable[[list[dict]], None] | None = None,
        every: float = 0.5,
    ) -> str:
        """Poll until the run ends; ``on_poll`` sees the task instances at every poll."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if on_poll:
                on_poll(self.task_instances(dag_id, run_id))
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{dag_id} run {run_id} still {state} after {timeout:.0f} s\n{self.log_tails()}"
                )
            time.sleep(every)

    def failure_report(self, dag_id: str, run_id: str) -> str:
        lines = [f"{dag_id} run {run_id} failed; task instances:"]
        for ti in self.task_instances(dag_id, run_id):
            lines.append(
                f"  {ti['task_id']}[{ti['map_index']}] {ti['state']} try {ti['try_number']} on {ti['hostname']}"
            )
        task_logs = sorted(
            (self.airflow_home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime
        )
        for path in task_logs[-3:]:
            lines.append(f"--- task log {path}\n{_tail(path)}")
        return "\n".join(lines) + "\n" + self.log_tails()


# ---------------------------------------------------------------- running days


@dataclass
class Kill:
    """Kill ``worker`` during the run of ``day``, once it holds a running funnel_bucket task."""

    worker: str
    day: date
    #: Filled in: map indexes of the bucket tasks the worker was running, and the pids killed.
    buckets: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


def run_attribution(
    cluster: Cluster, days: list[date], kill: Kill | None = None, timeout: float = 600
) -> list[dict]:
    """Trigger the attribution DAG for each day in order and wait for success; one record per run."""
    runs = []
    for day in days:
        t = time.perf_counter()
        run_id = cluster.trigger(ATTRIBUTION, day)
        on_poll = None
        if kill is not None and kill.day == day:

            def on_poll(tis: list[dict], kill: Kill = kill) -> None:
                if kill.pids:
                    return
                buckets = [ti for ti in tis if ti["task_id"] == "funnel_bucket"]
                held = [
                    ti["map_index"]
                    for ti in buckets
                    if ti["state"] == "running" and ti["hostname"] == kill.worker
                ]
                # Wait until no bucket waits in a queue: every message the worker took is running.
                waiting = [ti for ti in buckets if ti["state"] in (None, "scheduled", "queued")]
                if held and buckets and not waiting:
                    kill.buckets = sorted(held)
                    kill.pids = cluster.kill_worker(kill.worker)
                    cluster.echo(
                        f"  killed {kill.worker} (SIGKILL, {len(kill.pids)} processes) holding buckets {kill.buckets}"
                    )

        state = cluster.wait_run(ATTRIBUTION, run_id, timeout=timeout, on_poll=on_poll, every=0.3)
        if state != "success":
            raise ClusterError(cluster.failure_report(ATTRIBUTION, run_id))
        tis = cluster.task_instances(ATTRIBUTION, run_id)
        buckets = sorted(
            (
                {
                    "bucket": ti["map_index"],
                    "hostname": ti["hostname"],
                    "try_number": ti["try_number"],
                    "state": ti["state"],
                    "seconds": ti["duration"],
                }
                for ti in tis
                if ti["task_id"] == "funnel_bucket"
            ),
            key=lambda r: r["bucket"],
        )
        for b in buckets:
            if b["try_number"] > 1:
                b["tries"] = [
                    {
                        "try_number": tr["try_number"],
                        "hostname": tr["hostname"],
                        "state": tr["state"],
                    }
                    for tr in cluster.tries(ATTRIBUTION, run_id, "funnel_bucket", b["bucket"])
                ]
        runs.append(
            {"day": day, "run_id": run_id, "seconds": time.perf_counter() - t, "buckets": buckets}
        )
        cluster.echo(
            f"  {day}: success in {runs[-1]['seconds']:.0f} s; buckets per worker "
            f"{_per_worker(buckets)}"
        )
    return runs


def _per_worker(buckets: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in buckets:
        out[b["hostname"]] = out.get(b["hostname"], 0) + 1
    return dict(sorted(out.items()))


def ingest_days(settings: Settings, days: list[date]) -> None:
    """Ingest the days in-process (the ingest DAG runs the same stage)."""
    from pipelines import runner

    for day in days:
        runner.stage_ingest(settings, day)


# ---------------------------------------------------------------- the demo


def demo(
    folder: Path,
    *,
    users: int = 2000,
    days: int = 2,
    buckets: int = 8,
    start: date = date(2026, 3, 1),
    pg_url: str = DEFAULT_PG_URL,
    redis_url: str = DEFAULT_REDIS_URL,
    kill_worker: str | None = None,
    echo: Echo = print,
) -> dict:
    """Simulate a world, ingest it, run the attribution DAG on the cluster day by day, stop.

    Returns the runs (bucket tasks with the worker that ran them) and the warehouse row counts.
    The databases are left in place for inspection.
    """
    from pipelines import warehouse
    from pipelines.simulate import simulate_world

    problem = services_problem(pg_url, redis_url)
    if problem:
        raise ClusterError(f"{problem}; start it or pass another URL")
    folder = Path(folder).resolve()
    if folder.exists():
        shutil.rmtree(folder)
    settings = Settings(home=folder / "home", landing=folder / "landing", buckets=buckets)
    world_days = [start + timedelta(days=i) for i in range(days)]
    echo(f"simulating {users} users over {days} days into {settings.landing}")
    simulate_world(
        settings.landing, users=users, days=days, start=start, seed=7, seeds_dir=settings.seeds
    )
    echo("ingesting the days into the lake (runner.stage_ingest)")
    ingest_days(settings, world_days)
    spec = ClusterSpec(folder=folder, settings=settings, pg_url=pg_url, redis_url=redis_url)
    kill = Kill(kill_worker, world_days[-1]) if kill_worker else None
    if kill and kill_worker not in spec.workers:
        raise ClusterError(
            f"no worker named {kill_worker!r}; the workers are {', '.join(spec.workers)}"
        )
    with Cluster(spec, echo=echo) as cluster:
        echo(
            f"running {ATTRIBUTION} for {world_days[0]} .. {world_days[-1]} with {buckets} buckets"
        )
        runs = run_attribution(cluster, world_days, kill=kill)
    engine = warehouse.make_engine(spec.warehouse_url)
    try:
        counts = {t: len(warehouse.read_table(engine, t)) for t in warehouse_tables()}
    finally:
        engine.dispose()
    return {
        "runs": runs,
        "rows": counts,
        "warehouse_url": spec.warehouse_url,
        "logs": str(cluster.logs),
        "kill": kill,
    }


def warehouse_tables() -> list[str]:
    from pipelines import schemas

    return [t.name for t in schemas.WAREHOUSE_TABLES]
