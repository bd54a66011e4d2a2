"""Run the Airflow DAGs on this machine: a local Airflow home, ``dag.test()`` per run, no scheduler.

Airflow reads its configuration once per process, so the DAGs run in a fresh interpreter
(``python -m seedfunnel_ops.airflow_local JOB``, the *driver*) whose environment names everything:

- ``AIRFLOW_HOME`` (a folder of its own, e.g. ``<seedfunnel home>/airflow``), the DAG folder
  (``dags/`` of this repository), ``load_examples = False``, and the metadata database
  (SQLite ``<AIRFLOW_HOME>/airflow.db`` unless given);
- the seedfunnel settings of the caller (``SEEDFUNNEL_HOME``, ``..._LANDING``, ``..._SEEDS``,
  ``..._BUCKETS``, ``..._WAREHOUSE_URL``, and ``SEEDFUNNEL_CONFIG`` naming a ``seedfunnel.toml``
  in the Airflow home with every resolved value), so the tasks see the same ``Settings`` as the
  caller, funnel parameters and quality thresholds included.

The driver runs each requested DAG run with ``dag.test()`` (tasks in-process, in dependency order,
mapped tasks included) and reports every run on a pipe of its own as one JSON line, so the caller
shows progress while Airflow's own log goes to a file. The calling process never imports Airflow.

``seedfunnel demo`` uses ``run_days``; tests/test_dags.py uses ``Driver`` directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pipelines.redact import redact_url
from pipelines.settings import (
    CONFIG_FILE,
    ENV_BUCKETS,
    ENV_CONFIG,
    ENV_HOME,
    ENV_LANDING,
    ENV_RETRY_DELAY,
    ENV_SEEDS,
    ENV_WAREHOUSE_URL,
    PROJECT_ROOT,
    Settings,
)

DAGS_FOLDER = PROJECT_ROOT / "dags"
INGEST, ATTRIBUTION = "seedfunnel_ingest", "seedfunnel_attribution"
#: A local run retries a failed task after this many seconds (the DAGs' default is 5 minutes).
LOCAL_RETRY_DELAY_SECONDS = 2

Progress = Callable[[str, float], None]


class AirflowError(RuntimeError):
    """Airflow is missing, could not migrate its database, or a DAG run did not succeed."""


def logical_date(day: date) -> str:
    """The logical date whose one-day data interval starts on ``day`` (01:00 of the next day)."""
    return f"{day + timedelta(days=1)}T01:00:00+08:00"


def day_runs(days: list[date]) -> list[list]:
    """``[dag_id, logical date, conf]`` for each day, ingestion then attribution, as scheduled."""
    return [[dag_id, logical_date(d), None] for d in days for dag_id in (INGEST, ATTRIBUTION)]


def require_airflow() -> None:
    """Raise AirflowError saying what to do when Airflow is not importable here."""
    if importlib.util.find_spec("airflow") is None or importlib.util.find_spec("airflow.sdk") is None:
        raise AirflowError(
            f"Apache Airflow is not installed in this Python ({sys.executable}). Run `make setup` "
            "(it syncs .venv from uv.lock, which pins apache-airflow 3.3) and use .venv/bin/seedfunnel; "
            "or run the same stages without Airflow: `seedfunnel run --landing DIR --start D1 --end D2`."
        )


def settings_env(settings: Settings, config: Path | None = None) -> dict[str, str]:
    """The environment under which ``Settings()`` in a task equals ``settings`` (absolute paths).

    ``config``: a settings file holding the caller's resolved values (``write_settings_file``),
    named by SEEDFUNNEL_CONFIG, so the tasks also get its funnel parameters and quality thresholds.
    """
    env = {
        ENV_HOME: str(Path(settings.home).resolve()),
        ENV_LANDING: str(Path(settings.landing).resolve()),
        ENV_SEEDS: str(Path(settings.seeds).resolve()),
        ENV_BUCKETS: str(settings.buckets),
        ENV_WAREHOUSE_URL: settings.resolved_warehouse_url(),
    }
    if config is not None:
        env[ENV_CONFIG] = str(Path(config).resolve())
    return env


def write_settings_file(settings: Settings, folder: Path) -> Path:
    """``folder/seedfunnel.toml`` with every resolved value of ``settings`` (no warehouse URL: it
    may hold a password and travels as SEEDFUNNEL_WAREHOUSE_URL)."""
    path = Path(folder) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings.to_toml(), encoding="utf-8")
    return path


def airflow_env(
    airflow_home: Path,
    *,
    metadata_url: str | None = None,
    dags_folder: Path = DAGS_FOLDER,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """A clean environment for a local Airflow: nothing inherited from AIRFLOW_* / SEEDFUNNEL_*.

    The metadata database defaults to SQLite ``<airflow_home>/airflow.db``; ``extra`` adds the rest
    (``settings_env``, or test overrides).
    """
    airflow_home = Path(airflow_home).resolve()
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEEDFUNNEL_"))}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(Path(dags_folder).resolve()),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url or f"sqlite:///{airflow_home / 'airflow.db'}",
    )
    env.update(extra or {})
    return env


def tail_log(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def migrate(env: dict[str, str], log: Path, timeout: float = 600) -> float:
    """``airflow db migrate`` for the metadata DB of ``env``; returns the seconds it took."""
    require_airflow()
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as out:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    if done.returncode != 0:
        raise AirflowError(
            f"`airflow db migrate` failed (exit {done.returncode}) for the metadata DB "
            f"{env.get('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN')}; its log is {log}:\n{tail_log(log)}"
        )
    return time.perf_counter() - t0


class Driver:
    """One driver process. ``job`` is ``{"mode": "run", "runs": [[dag_id, logical, conf], ...]}``
    (options: ``"migrate": true`` migrates the metadata DB first, ``"stop_on_failure": true``,
    ``"asset_events": true`` returns every asset event, ``"pause_after": [i, ...]`` waits after
    run ``i`` until ``resume()``, e.g. to look at the warehouse between runs) or
    ``{"mode": "inspect"}`` (parse the DAG folder with the network disabled and describe each
    DAG). Airflow's output goes to ``log``.
    """

    def __init__(self, job: dict, env: dict[str, str], log: Path):
        require_airflow()
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        job = {"dags": env.get("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER)), **job, "events_fd": write_fd}
        with log.open("a", encoding="utf-8") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seedfunnel_ops.airflow_local", json.dumps(job)],
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        self._events = os.fdopen(read_fd, "r", encoding="utf-8")
        self.result: dict | None = None

    def stop(self) -> None:
        """Kill the driver if it is still running (e.g. the caller failed)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._events.closed:
            self._events.close()

    def resume(self) -> None:
        """Let a driver paused by ``pause_after`` go on."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def events(self) -> Iterator[dict]:
        """Every event the driver reports, as it comes; the last is ``{"event": "result", ...}``."""
        if self._events.closed:
            return
        for line in self._events:
            event = json.loads(line)
            if event["event"] == "result":
                self.result = event
            yield event
        self._events.close()

    def wait(self, timeout: float | None = None) -> dict:
        """Drain the events and return the result; AirflowError (with the log tail) if none came.

        After ``timeout`` seconds the driver is killed and the error says so.
        """
        import threading

        timer = threading.Timer(timeout, self.proc.kill) if timeout else None
        if timer:
            timer.start()
        if self.proc.stdin:
            self.proc.stdin.close()  # a driver waiting in ``pause_after`` goes on
        try:
            for _ in self.events():
                pass
            self.proc.wait()
        finally:
            if timer:
                timer.cancel()
        if self.proc.returncode != 0 or self.result is None:
            why = f"was killed after {timeout:.0f}s" if timeout and self.proc.returncode == -9 else "failed"
            raise AirflowError(
                f"the Airflow driver {why} (exit {self.proc.returncode}); log {self.log}:\n{tail_log(self.log, 60)}"
            )
        return self.result


# ---------------------------------------------------------------- seedfunnel demo


@dataclass
class AirflowRunSummary:
    """What ``run_days`` did, in the shape ``seedfunnel``'s summary printer takes."""

    settings: Settings
    airflow_home: Path
    log: Path
    runs: list[dict] = field(default_factory=list)
    migrate_seconds: float = 0.0
    seconds: float = 0.0

    def as_rows(self) -> list[tuple[str, object]]:
        ingest = [r for r in self.runs if r["dag_id"] == INGEST]
        attribution = [r for r in self.runs if r["dag_id"] == ATTRIBUTION]
        totals = [t for r in ingest for t in (r["xcom"].get("ingest") or {}).get("totals", {}).values()]
        days = sorted({r["day"] for r in self.runs})
        rows: list[tuple[str, object]] = [
            ("days processed", f"{len(days)} ({days[0]} .. {days[-1]})" if days else 0),
            ("Airflow DAG runs", f"{len(self.runs)} succeeded ({len(ingest)} {INGEST}, "
                                 f"{len(attribution)} {ATTRIBUTION})"),
            ("seconds", f"{self.seconds:.0f} (metadata DB migration {self.migrate_seconds:.0f})"),
            ("rows accepted", f"{sum(t.get('accepted_rows', 0) for t in totals):,}"),
            ("rows quarantined", f"{sum(t.get('quarantined_rows', 0) for t in totals):,}"),
            ("unreadable files", sum((r["xcom"].get("ingest") or {}).get("unreadable_files", 0) for r in ingest)),
        ]
        if attribution:
            for name, n in (attribution[-1]["xcom"].get("publish") or {}).items():
                rows.append((f"published by the last run: {name}", f"{n:,} rows"))
        return rows

    def locations(self) -> list[tuple[str, str]]:
        """Where the outputs are."""
        reports = Path(self.settings.reports).resolve()
        return [
            ("lake (Parquet)", str(Path(self.settings.lake).resolve())),
            ("warehouse", redact_url(self.settings.resolved_warehouse_url())),
            ("rejected rows", "warehouse table `quarantine` (reason, file, row, raw content)"),
            ("reports", str(reports) if reports.is_dir() else f"{reports} (none written)"),
            ("Airflow home", f"{self.airflow_home} (SQLite metadata DB airflow.db: runs, task states, XComs)"),
            ("Airflow output", f"{self.log} (every task's log)"),
        ]


def run_days(
    settings: Settings,
    start: date,
    end: date,
    *,
    airflow_home: Path | None = None,
    progress: Progress | None = None,
) -> AirflowRunSummary:
    """Run ``seedfunnel_ingest`` then ``seedfunnel_attribution`` for each day, oldest first.

    The Airflow home defaults to ``<settings.home>/airflow`` (SQLite metadata DB inside); it is
    migrated first (a no-op when already current) and kept, so the runs can be browsed later with
    ``airflow standalone`` under the same environment. Stops at the first run that does not
    succeed and raises AirflowError naming the failed tasks and the log.
    """
    t0 = time.perf_counter()
    home = Path(airflow_home or Path(settings.home) / "airflow").resolve()
    log = home / "logs" / "seedfunnel-local.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    config = write_settings_file(settings, home)
    env = airflow_env(
        home,
        extra={**settings_env(settings, config), ENV_RETRY_DELAY: str(LOCAL_RETRY_DELAY_SECONDS)},
    )
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    runs = day_runs(days)
    summary = AirflowRunSummary(settings, home, log)
    report = progress or (lambda message, fraction: None)
    report("starting Airflow, migrating its metadata DB", 0.0)
    driver = Driver({"mode": "run", "runs": runs, "migrate": True, "stop_on_failure": True}, env, log)
    try:
        _follow(driver, runs, days, summary, report)
        driver.wait()
    finally:
        driver.stop()  # on Ctrl-C or an error here, the driver does not run on alone
    summary.seconds = time.perf_counter() - t0

    failed = [r for r in summary.runs if r["state"] != "success"]
    if failed:
        r = failed[0]
        bad = sorted(t for t, states in r["tasks"].items() if set(states) - {"success", "skipped"})
        raise AirflowError(
            f"DAG run {r['dag_id']} for {r['day']} ended {r['state']}; tasks not successful: "
            f"{', '.join(bad) or 'none'}. Airflow's output, every task's log included, is in {log}. "
            f"Fix the cause and run the command again (published days are replaced, not duplicated)."
        )
    report("done", 1.0)
    return summary


def _follow(driver: Driver, runs: list[list], days: list[date], summary: AirflowRunSummary, report: Progress) -> None:
    """Report each run as the driver starts and finishes it; record finished runs in ``summary``."""
    for event in driver.events():
        if event["event"] == "migrated":
            summary.migrate_seconds = event["seconds"]
        elif event["event"] == "start":
            i = event["index"]
            report(f"{runs[i][0]} for {days[i // 2]} ...", i / len(runs))
        elif event["event"] == "run":
            i = event["index"]
            run = {**event, "day": days[i // 2].isoformat()}
            summary.runs.append(run)
            report(f"{run['dag_id']} for {run['day']}: {run['state']} ({run['seconds']:.1f}s)", (i + 1) / len(runs))


# ---------------------------------------------------------------- the driver (fresh interpreter)


def _inspect(job: dict) -> dict:
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access while importing a DAG file")

    socket.socket.connect = socket.create_connection = socket.getaddrinfo = no_network
    from airflow.dag_processing.dagbag import DagBag

    before = set(sys.modules)
    t = time.perf_counter()
    bag = DagBag(dag_folder=job["dags"])
    parse = time.perf_counter() - t
    imported = sorted(set(sys.modules) - before)
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
    return {
        "errors": {str(k): v for k, v in bag.import_errors.items()},
        "dags": dags,
        "file_seconds": stats,
        "parse_seconds": parse,
        "imported": imported,
    }


def _run(job: dict, emit: Callable[..., None]) -> dict:
    if job.get("migrate"):
        t = time.perf_counter()
        from airflow.utils.db import upgradedb

        upgradedb()
        emit("migrated", seconds=time.perf_counter() - t)

    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=job["dags"])
    if bag.import_errors:
        raise RuntimeError(f"DAG files failed to import: {bag.import_errors}")
    out = []
    for i, (dag_id, logical, conf) in enumerate(job["runs"]):
        emit("start", index=i, dag_id=dag_id)
        t = time.perf_counter()
        dr = bag.dags[dag_id].test(logical_date=pendulum.parse(logical) if logical else None, run_conf=conf)
        tis: dict[str, list[str]] = {}
        for ti in dr.get_task_instances():
            tis.setdefault(ti.task_id, []).append(str(ti.state))
        with create_session() as session:
            rows = session.scalars(
                XComModel.get_many(run_id=dr.run_id, dag_ids=dag_id, key="return_value", map_indexes=-1)
            ).all()
            xcom = {r.task_id: XComModel.deserialize_value(r) for r in rows}
        run = {
            "index": i,
            "dag_id": dag_id,
            "run_id": dr.run_id,
            "state": str(dr.state),
            "tasks": tis,
            "xcom": xcom,
            "seconds": time.perf_counter() - t,
        }
        out.append(run)
        emit("run", **run)
        if job.get("stop_on_failure") and run["state"] != "success":
            break
        if i in job.get("pause_after", ()):
            emit("paused", index=i)
            sys.stdin.readline()
    result: dict = {"runs": out}
    if job.get("asset_events"):
        with create_session() as session:
            events = session.execute(
                select(AssetModel.uri, AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            ).all()
        result["asset_events"] = [[uri, extra] for uri, extra in events]
    return result


def _main(argv: list[str]) -> int:
    job = json.loads(argv[1])
    channel = os.fdopen(job["events_fd"], "w", encoding="utf-8", buffering=1)

    def emit(event: str, **data) -> None:
        channel.write(json.dumps({"event": event, **data}, default=str) + "\n")

    t0 = time.perf_counter()
    import airflow  # noqa: F401  (configures Airflow from the environment)

    emit("airflow_imported", seconds=time.perf_counter() - t0)
    result = _inspect(job) if job["mode"] == "inspect" else _run(job, emit)
    emit("result", **result)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
