"""The ``seedfunnel`` command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from typer.core import TyperGroup

from .redact import redact_text, redact_url
from .settings import (
    AIRFLOW_CONN_ID,
    CONFIG_FILE,
    ENV_CONFIG,
    ENV_HOME,
    ENV_LANDING,
    ENV_SEEDS,
    ENV_WAREHOUSE_URL,
    Settings,
    SettingsError,
)

VERBOSE_FLAGS = ("-v", "--verbose")
#: Environment variables that may hold a URL with a password: scrubbed from any error shown.
SECRET_ENV = (ENV_WAREHOUSE_URL, "SEEDFUNNEL_BENCH_PG_URL", f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}")


class GuardedGroup(TyperGroup):
    """Every command's failure is one clear message and a non-zero exit, never a traceback;
    ``-v`` / ``--verbose`` anywhere on the command line shows the traceback too. Passwords of
    URLs given on the command line or in the environment are masked in both."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        cut = args.index("--") if "--" in args else len(args)
        ctx.meta["seedfunnel.verbose"] = any(a in VERBOSE_FLAGS for a in args[:cut])
        ctx.meta["seedfunnel.urls"] = [a.split("=", 1)[-1] for a in args if "://" in a]
        return super().parse_args(ctx, [a for a in args[:cut] if a not in VERBOSE_FLAGS] + args[cut:])

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # usage errors, exits: typer's own
            raise
        except Exception as e:  # the one place an unexpected error becomes a message
            urls = ctx.meta.get("seedfunnel.urls", []) + [os.environ.get(k) for k in SECRET_ENV]
            if ctx.meta.get("seedfunnel.verbose"):
                trace = "".join(traceback.format_exception(e))
                console.print(escape(redact_text(trace, *urls)), highlight=False, soft_wrap=True)
            hint = "" if ctx.meta.get("seedfunnel.verbose") else " (run with -v for the traceback)"
            console.print(
                f"[bold red]error:[/] {escape(redact_text(explain(e), *urls))}{hint}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None


def explain(e: BaseException) -> str:
    """One line a person can act on, for an error no command turned into a message itself."""
    if isinstance(e, PermissionError):
        return f"permission denied: {e.filename or e}. Pass a folder you can write to (--home, SEEDFUNNEL_HOME)."
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or e.__class__.__name__}: {e.filename}"
    text = str(e) or e.__class__.__name__
    known = ("SeedError", "LakeError", "QualityGateError", "ConnectionLookupError", "StaleRunError")
    return text if e.__class__.__name__ in known or isinstance(e, RuntimeError) else f"{e.__class__.__name__}: {text}"


app = typer.Typer(
    cls=GuardedGroup,
    name="seedfunnel",
    help=(
        "Measure cross-platform seeding (种草): note exposure -> search-back -> purchase.\n\n"
        "Typical use: `seedfunnel demo` simulates a world and runs every stage on it; "
        "`seedfunnel run --landing DIR --start D1 --end D2` processes real landing files day by day."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="On an error, show the traceback too (anywhere on the line)")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help=f"Settings file (before the command: `seedfunnel --config FILE run ...`) [env {ENV_CONFIG}; "
            f"default ./{CONFIG_FILE} when there is one]",
        ),
    ] = None,
) -> None:
    """Measure cross-platform seeding (种草): note exposure -> search-back -> purchase."""
    global _CONFIG
    _CONFIG = config


#: The settings file named by --config for this invocation (None: SEEDFUNNEL_CONFIG or ./seedfunnel.toml).
_CONFIG: Path | None = None

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help=f"Folder for the lake, reports and the default SQLite warehouse [env {ENV_HOME}; default .seedfunnel]",
    ),
]
SeedsOpt = Annotated[
    Path | None,
    typer.Option(
        "--seeds", help=f"Reference-data folder (brands, categories, creators) [env {ENV_SEEDS}; default seeds/]"
    ),
]
LandingOpt = Annotated[
    Path | None,
    typer.Option(
        "--landing",
        help=f"Landing zone laid out as SPEC section 1 [env {ENV_LANDING}; default HOME/landing]",
    ),
]
WarehouseOpt = Annotated[
    str | None,
    typer.Option(
        "--warehouse-url",
        help=f"SQLAlchemy URL of the warehouse [env {ENV_WAREHOUSE_URL}; default SQLite in HOME]",
    ),
]


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a day; write it as YYYY-MM-DD") from None


def _settings(home=None, seeds=None, landing=None, warehouse_url=None, buckets=None) -> Settings:
    kw = {}
    if home is not None:
        kw["home"] = home
    if seeds is not None:
        kw["seeds"] = seeds
    if landing is not None:
        kw["landing"] = landing
    if warehouse_url is not None:
        kw["warehouse_url"] = warehouse_url
    if buckets is not None:
        kw["buckets"] = buckets
    if _CONFIG is not None:
        kw["config"] = _CONFIG
    try:
        return Settings(**kw)
    except SettingsError as e:
        _fail(str(e))


@contextmanager
def progress_bar(description: str):
    """A rich progress bar; yields ``update(message, fraction)``."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[msg]}"),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=1.0, msg="")

        def update(message: str, fraction: float) -> None:
            bar.update(task, completed=min(max(fraction, 0.0), 1.0), msg=message)
            if not console.is_terminal:
                console.print(f"  {description}: {message} ({fraction:.0%})", highlight=False)

        yield update
        bar.update(task, completed=1.0)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


# ---------------------------------------------------------------- what a command needs, checked first


def _require_writable(folder: Path, what: str, how: str) -> None:
    """Create ``folder`` if needed and prove a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".seedfunnel-write-check-"):
            pass
    except OSError as e:
        _fail(f"cannot write to {what} {folder} ({e.strerror or e}). {how}")


def _require_home(settings: Settings) -> None:
    _require_writable(
        settings.home,
        "the home folder",
        f"It holds the lake, the reports and the default SQLite warehouse: pass --home DIR or set "
        f"{ENV_HOME} to a folder you can write to.",
    )


def _require_seeds(settings: Settings) -> None:
    from .reference import SeedError, load_reference

    try:
        ref = load_reference(settings.seeds)
    except SeedError as e:
        _fail(f"{e} (pass --seeds DIR or set {ENV_SEEDS})")
    try:
        settings.funnel.check_categories(ref.categories["category_id"], str(Path(settings.seeds) / "categories.csv"))
    except SettingsError as e:
        _fail(f"{e} (from {settings.sources.get('funnel.category_windows', 'default')})")


def _require_warehouse(settings: Settings) -> None:
    from . import warehouse

    try:
        warehouse.check_connection(settings.resolved_warehouse_url())
    except RuntimeError as e:
        _fail(str(e))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the landing zone into")],
    users: Annotated[int, typer.Option(help="Number of on-platform users", min=1)] = 10_000,
    days: Annotated[int, typer.Option(help="Number of days", min=1)] = 20,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, byte-identical files")] = 7,
    seeds: SeedsOpt = None,
    in_order: Annotated[
        bool,
        typer.Option(
            "--in-order",
            help="Deliver everything on time and in order (no late notes or rows, one id_links batch, "
            "no order versions, re-sends or missed runs)",
        ),
    ] = False,
    confounding: Annotated[
        float,
        typer.Option(
            help="Confounding by engagement: active users are seeded more and buy more at baseline "
            "(p0 x (1 + this x activity band)); 0 plants none (docs/simulator.md)",
            min=0.0,
        ),
    ] = 0.0,
) -> None:
    """Write a simulated landing zone with planted, known effects (see docs/simulator.md).

    Notes come in every real exporter format, made messy on purpose; `ground_truth.json` records
    the planted effects and every injected defect. Files arrive late and out of order as real feeds
    do: the folder holds the final landing zone, `arrivals.json` when each file arrived, and
    `pipelines.simulate.materialize` rebuilds the landing zone as it stood on any day.
    """
    from .simulate import ArrivalParams, WorldParams, simulate_world

    settings = _settings(seeds=seeds)
    _require_seeds(settings)
    _require_writable(out, "the output folder", "Pass --out DIR with a folder you can write to.")
    t0 = time.perf_counter()
    with progress_bar("simulate") as update:
        summary = simulate_world(
            out, users=users, days=days, start=_day(start), seed=seed, seeds_dir=settings.seeds,
            progress=update, arrival=ArrivalParams.in_order() if in_order else None,
            params=WorldParams(confounding=confounding) if confounding else None,
        )
    elapsed = time.perf_counter() - t0
    console.print(f"wrote {out} in {elapsed:.1f}s")
    console.print_json(json.dumps(_jsonable(summary)))


@app.command()
def ingest(
    end: Annotated[str, typer.Option(help="Delivery day, YYYY-MM-DD: every delivery up to it not yet ingested is ingested")],
    landing: LandingOpt = None,
    home: HomeOpt = None,
) -> None:
    """Ingest every delivery up to END that is new or changed into the lake; bad rows go to quarantine.

    Deliveries already ingested with the same files are skipped. The next `run` computes what the
    ingested deliveries changed (SPEC 5, Arrival).
    """
    from .runner import stage_ingest

    settings = _settings(home=home, landing=landing)
    d = _day(end)
    _require_landing(settings)
    _require_home(settings)
    with progress_bar("ingest") as update:
        result = stage_ingest(settings, d, say=lambda msg: update(msg, 0.5))
    delivered = result["deliveries"]
    console.print(f"ingested {len(delivered)} deliveries" + (f": {', '.join(delivered)}" if delivered else " (all up to date)"))
    _print_ingest(d, result)


@app.command()
def run(
    start: Annotated[str, typer.Option(help="First delivery day, YYYY-MM-DD (only checked to hold files, and the first of --each-day)")],
    end: Annotated[str | None, typer.Option(help="Delivery day to bring the warehouse up to (default: start)")] = None,
    landing: LandingOpt = None,
    seeds: SeedsOpt = None,
    home: HomeOpt = None,
    warehouse_url: WarehouseOpt = None,
    buckets: Annotated[int | None, typer.Option(help="User buckets for the funnel step", min=1)] = None,
    engine: Annotated[str, typer.Option(help="Funnel engine: pandas, or duckdb (the SQL reference)")] = "pandas",
    each_day: Annotated[bool, typer.Option("--each-day", help="One run per day START..END, as a daily schedule would (same result)")] = False,
) -> None:
    """Bring the warehouse up to delivery day END: ingest, match, funnel, validate, publish, report.

    A run ingests every delivery up to END not yet ingested (or whose files changed), whatever day
    it was delivered, recomputes only the days those deliveries can change, and publishes only the
    days that did change, each recorded in the `restatements` table (SPEC 5, Arrival). The same
    stages the Airflow DAG runs, for people without a scheduler. Runs on one home take turns (a run
    that has to wait says so). The HTML report is written under HOME/reports (`seedfunnel report`).
    """
    settings = _settings(home=home, seeds=seeds, landing=landing, warehouse_url=warehouse_url, buckets=buckets)
    d1 = _day(start)
    _run_days(settings, d1, _day(end) if end else d1, engine, each_day)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First day to process, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="Last day to process, YYYY-MM-DD")],
    landing: LandingOpt = None,
    seeds: SeedsOpt = None,
    home: HomeOpt = None,
    warehouse_url: WarehouseOpt = None,
    buckets: Annotated[int | None, typer.Option(help="User buckets for the funnel step", min=1)] = None,
    engine: Annotated[str, typer.Option(help="Funnel engine: pandas, or duckdb (the SQL reference)")] = "pandas",
) -> None:
    """Bring the warehouse up to END in one computation (the same as `run --start START --end END`).

    Deliveries up to END that are new or changed are ingested; the funnel is computed once over the
    days they affect; the tables then equal one computation over everything ingested (SPEC 5).
    """
    settings = _settings(home=home, seeds=seeds, landing=landing, warehouse_url=warehouse_url, buckets=buckets)
    _run_days(settings, _day(start), _day(end), engine)


def _run_days(settings: Settings, d1: date, d2: date, engine: str, each_day: bool = False) -> None:
    """Check what a user can get wrong before any work, then run the days with progress and a summary."""
    from .runner import ENGINES, run_days

    if d2 < d1:
        _fail(f"--end {d2} is before --start {d1}; swap them.")
    if engine not in ENGINES:
        _fail(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    _require_landing(settings)
    _require_landing_days(settings.landing, d1, d2)
    _require_home(settings)  # the lake, and the default SQLite warehouse, live there
    _require_seeds(settings)
    _require_warehouse(settings)
    from .quality.validate import QualityGateError

    try:
        with progress_bar("run") as update:
            summary = run_days(settings, d1, d2, engine=engine, progress=update, each_day=each_day)
    except QualityGateError as e:
        _fail(str(e), code=1)
    _print_summary(summary)


@app.command()
def report(
    date_: Annotated[str, typer.Option("--date", help="Day of the report, YYYY-MM-DD")],
    days: Annotated[int | None, typer.Option(help="Days the report covers, ending at --date [default 30]", min=1)] = None,
    home: HomeOpt = None,
    seeds: SeedsOpt = None,
    landing: LandingOpt = None,
    warehouse_url: WarehouseOpt = None,
) -> None:
    """(Re)build the day's HTML attribution report from the warehouse (docs/report.md).

    Writes HOME/reports/attribution/YYYY-MM-DD.html (self-contained: open it offline) and
    HOME/reports/index.html (every report, newest first). Prints the report's path.
    """
    from .report import WINDOW_DAYS, NoDataError, build_report

    settings = _settings(home=home, seeds=seeds, landing=landing, warehouse_url=warehouse_url)
    day = _day(date_)
    _require_home(settings)
    _require_seeds(settings)
    _require_warehouse(settings)
    try:
        path = build_report(settings, day, days=days or WINDOW_DAYS)
    except NoDataError as e:
        _fail(str(e))
    console.print(f"index of every report: {(settings.reports / 'index.html').resolve()}", highlight=False, soft_wrap=True)
    sys.stdout.write(f"{path.resolve()}\n")


@app.command()
def validate(
    date_: Annotated[str, typer.Option("--date", help="Day to validate, YYYY-MM-DD (already run into the lake)")],
    home: HomeOpt = None,
    seeds: SeedsOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="List every expectation, not only the failed ones")] = False,
) -> None:
    """Run the data-quality suites (expectations/) on a day now and print the results.

    Validates what the day's run wrote to the lake (its inputs and the tables it publishes) and
    rebuilds Data Docs (HOME/reports/data_docs/index.html). Read-only for the warehouse. Exit
    code 1 when a critical expectation fails (docs/quality.md).
    """
    from . import lake
    from .quality.validate import governed, validate_day

    settings = _settings(home=home, seeds=seeds)
    day = _day(date_)
    _require_home(settings)
    _require_seeds(settings)
    if day not in lake.partitions(settings.lake, "ingest_files"):
        _fail(f"{day} was never ingested into {settings.lake}; run `seedfunnel run --start {day}` first.")
    outcome = validate_day(settings, day)
    rows = outcome.results if all_ else outcome.failed
    t = RichTable(title=f"data quality {day}: {outcome.counts()['expectations']} expectations")
    for col in ("table", "expectation", "severity", "result", "observed", "setting"):
        t.add_column(col)
    for r in rows.itertuples(index=False):
        setting = escape(governed(r.details).removeprefix("; setting "))
        t.add_row(r.table_name, r.expectation, r.severity, "pass" if r.success else "[red]FAIL[/]", r.observed, setting)
    console.print(t)
    counts = outcome.counts()
    console.print(
        f"{counts['failed_critical']} critical and {counts['failed_warning']} warning failure(s); "
        f"Data Docs: {outcome.data_docs}",
        highlight=False,
        soft_wrap=True,
    )
    if outcome.blocked:
        raise typer.Exit(1)


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="Users in the simulated world", min=1)] = 5_000,
    days: Annotated[int, typer.Option(help="Days in the simulated world", min=1)] = 10,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
    home: HomeOpt = None,
    landing: LandingOpt = None,
    buckets: Annotated[int | None, typer.Option(help="User buckets for the funnel step", min=1)] = None,
) -> None:
    """Simulate a world (unless --landing names real data) and run the Airflow DAGs over its days.

    Each day runs `seedfunnel_ingest` then `seedfunnel_attribution` with `dag.test()` in a local
    Airflow (home `HOME/airflow`, SQLite metadata DB there, no scheduler); the warehouse is
    SQLite in HOME unless SEEDFUNNEL_WAREHOUSE_URL names another.
    """
    from seedfunnel_ops import airflow_local

    from .simulate import simulate_world
    from .timeutil import parse_day

    settings = _settings(home=home, landing=landing, buckets=buckets)
    _require_home(settings)
    _require_seeds(settings)
    try:
        airflow_local.require_airflow()
    except airflow_local.AirflowError as e:
        _fail(str(e))
    if landing is None:
        start = parse_day("2026-01-01")
        with progress_bar("simulate") as update:
            simulate_world(
                settings.landing, users=users, days=days, start=start, seed=seed,
                seeds_dir=settings.seeds, progress=update,
            )
        d1, d2 = start, date.fromordinal(start.toordinal() + days - 1)
    else:
        _require_landing(settings)
        d1, d2 = _landing_days(settings.landing)
    try:
        with progress_bar("airflow") as update:
            summary = airflow_local.run_days(settings, d1, d2, progress=update)
    except airflow_local.AirflowError as e:
        _fail(str(e), code=1)
    _print_summary(summary)


@app.command()
def bench(
    sizes: Annotated[str, typer.Option(help="Users per simulated world, comma-separated")] = "10k,100k,1M",
    days: Annotated[int, typer.Option(help="Days per world", min=1)] = 20,
    repeats: Annotated[int, typer.Option(help="Repeats per measurement (medians)", min=1)] = 3,
    repeats_large: Annotated[int, typer.Option(help="Repeats for worlds of 1M users or more", min=1)] = 1,
    work: Annotated[Path | None, typer.Option(help="Where worlds are cached [default HOME/bench]")] = None,
    pg_url: Annotated[str | None, typer.Option(help="PostgreSQL server for publish; 'off' to skip")] = None,
    home: HomeOpt = None,
) -> None:
    """Benchmarks of issue 8: ingest, funnel (pandas vs DuckDB) and publish per world size.

    Writes bench/out/results.json and the generated table of docs/benchmarks.md.
    """
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "bench" / "run.py"
    if not script.exists():
        _fail(f"{script} not found: `seedfunnel bench` runs from a source checkout of seedfunnel")
    spec = importlib.util.spec_from_file_location("seedfunnel_bench", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    try:
        parsed = [module.parse_size(s) for s in sizes.split(",") if s.strip()]
    except ValueError as e:
        _fail(str(e))
    opts = module.Options(
        sizes=parsed, days=days, repeats=repeats, repeats_large=repeats_large,
        work=work or _settings(home=home).home / "bench", pg_url=pg_url,
    )
    _require_writable(opts.work, "the benchmark folder", f"Pass --work DIR, --home DIR or set {ENV_HOME}.")
    _require_writable(opts.out, "the results folder", "Run from a checkout you can write to.")
    with progress_bar("bench") as update:
        results = module.run(opts, progress=update)
    console.print(f"wrote {opts.out / 'results.json'} and {opts.docs}")
    console.print_json(json.dumps(results["summary"], default=str))


@app.command("cluster-demo")
def cluster_demo(
    users: Annotated[int, typer.Option(help="Users in the simulated world", min=1)] = 2_000,
    days: Annotated[int, typer.Option(help="Days in the simulated world", min=1)] = 2,
    buckets: Annotated[int, typer.Option(help="User buckets (mapped funnel tasks per day)", min=1)] = 8,
    folder: Annotated[Path | None, typer.Option(help="Cluster folder: world, lake, logs [default HOME/cluster]")] = None,
    pg_url: Annotated[str | None, typer.Option(help="PostgreSQL server (databases are created on it)")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis for the Celery broker")] = None,
    kill_worker: Annotated[
        str | None, typer.Option(help="SIGKILL this worker (worker-a or worker-b) mid-run on the last day")
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Airflow 3 with CeleryExecutor on this machine: API server, scheduler, DAG processor, 2 workers.

    Simulates a world, ingests it, runs `seedfunnel_attribution` day by day on the cluster (metadata
    in PostgreSQL database seedfunnel_airflow, warehouse in seedfunnel_warehouse, broker Redis),
    shows which worker ran each bucket, and stops every process. See docs/scaling.md.
    """
    import signal

    from seedfunnel_ops import cluster

    def _terminate(signum, frame):  # SIGTERM too ends every process the demo started
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    settings = _settings(home=home)
    target = folder or settings.home / "cluster"
    _require_writable(target.parent, "the cluster folder's parent", "Pass --folder DIR or --home DIR.")
    _require_seeds(settings)
    try:
        out = cluster.demo(
            target, users=users, days=days, buckets=buckets, pg_url=pg_url or cluster.DEFAULT_PG_URL,
            redis_url=redis_url or cluster.DEFAULT_REDIS_URL, kill_worker=kill_worker,
            echo=lambda m: console.print(m, highlight=False, soft_wrap=True),
        )
    except cluster.ClusterError as e:
        _fail(str(e), code=1)
    table = RichTable(title="funnel_bucket tasks of the last day: the worker that ran each")
    for col in ("bucket", "worker", "try", "seconds", "earlier tries"):
        table.add_column(col)
    for b in out["runs"][-1]["buckets"]:
        earlier = ", ".join(f"#{t['try_number']} {t['hostname']} {t['state']}" for t in b.get("tries", [])[:-1])
        table.add_row(str(b["bucket"]), b["hostname"], str(b["try_number"]), f"{b['seconds']:.1f}", earlier)
    console.print(table)
    console.print(f"warehouse: {redact_url(out['warehouse_url'])}", highlight=False, soft_wrap=True)
    rows = RichTable(title="warehouse rows")
    rows.add_column("table")
    rows.add_column("rows", justify="right")
    for name, n in out["rows"].items():
        rows.add_row(name, f"{n:,}")
    console.print(rows)
    console.print(f"process logs: {out['logs']}", highlight=False, soft_wrap=True)


db_app = typer.Typer(help="The warehouse schema: migrations (Alembic) and consumer views.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(home: HomeOpt = None, warehouse_url: WarehouseOpt = None) -> None:
    """Create or migrate the warehouse tables and views to the current contract (idempotent)."""
    from . import db, warehouse

    url = _settings(home=home, warehouse_url=warehouse_url).resolved_warehouse_url()
    try:
        warehouse.check_connection(url)
    except RuntimeError as e:
        _fail(str(e))
    console.print(db.db_upgrade_command(url), highlight=False, soft_wrap=True)


seeds_app = typer.Typer(help="Reference data (brands, categories, creators): checks.", no_args_is_help=True)
app.add_typer(seeds_app, name="seeds")


@seeds_app.command("lint")
def seeds_lint(
    seeds: SeedsOpt = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list flagged aliases that are already context aliases")
    ] = False,
) -> None:
    """Flag brand aliases that are likely ambiguous in notes (everyday words, acronyms, pieces of
    other words), from general Chinese and English word-frequency vocabularies.

    A flagged alias belongs in `context_aliases` of brands.csv (SPEC 4). Exits 1 when one is not
    there, 0 when every flagged alias already is.
    """
    from .reference import SeedError, load_reference
    from .text.lint import lint

    try:
        brands = load_reference(_settings(seeds=seeds).seeds).brands
    except SeedError as e:
        _fail(str(e))
    found = lint(brands)
    open_ = found[~found["is_context"]]
    shown = found if show_all else open_
    if len(shown):
        t = RichTable(title=f"likely ambiguous aliases ({len(open_)} not in context_aliases)")
        for col in ("brand_id", "alias", "reason", "detail", "context alias"):
            t.add_column(col)
        for r in shown.itertuples(index=False):
            t.add_row(r.brand_id, r.alias, r.reason, r.detail, "yes" if r.is_context else "[bold red]no[/]")
        out = Console()
        (out if out.is_terminal else Console(width=200)).print(t)
    if not len(open_):
        console.print(f"all {found['alias'].nunique()} flagged aliases are context aliases", highlight=False)
    else:
        console.print(
            f"{open_['alias'].nunique()} alias(es) flagged but not in context_aliases: add each to its "
            "brand's context_aliases in brands.csv, or drop the alias",
            highlight=False, soft_wrap=True,
        )
        raise typer.Exit(1)


@app.command("settings")
def show_settings(
    home: HomeOpt = None,
    seeds: SeedsOpt = None,
    landing: LandingOpt = None,
    warehouse_url: WarehouseOpt = None,
    as_toml: Annotated[
        bool, typer.Option("--toml", help=f"Print the resolved values as a {CONFIG_FILE} to start from")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print setting -> {value, source} as JSON")] = False,
) -> None:
    """Print every resolved setting with where it came from: argument, env VAR, file PATH or default.

    Folders, warehouse URL (password masked), buckets, funnel parameters (SPEC 5; windows per
    category: `[funnel.category_windows.<category_id>]`) and quality thresholds. Each resolves as:
    command-line flag > environment variable > settings file (`--config`, `SEEDFUNNEL_CONFIG`, or
    ./seedfunnel.toml) > default (docs/settings.md).
    """
    s = _settings(home=home, seeds=seeds, landing=landing, warehouse_url=warehouse_url)
    if as_toml:
        sys.stdout.write(s.to_toml())
        return
    rows = s.listing()
    if as_json:
        out = {key: {"value": value, "source": source} for key, value, source in rows}
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return
    t = RichTable(title="seedfunnel settings", title_justify="left")
    for col in ("setting", "value", "source"):
        t.add_column(col, overflow="fold")
    for key, value, source in rows:
        t.add_row(escape(key), escape(value), escape(source))
    Console(width=max(Console().width, 140)).print(t)


def _require_landing(settings: Settings) -> None:
    if not settings.landing.is_dir():
        _fail(
            f"landing folder {settings.landing} does not exist. Pass --landing DIR (laid out as in "
            f"SPEC section 1), set {ENV_LANDING}, or create a simulated one with "
            f"`seedfunnel simulate --out {settings.landing}`."
        )


def _require_landing_days(landing: Path, d1: date, d2: date) -> None:
    """Fail when no requested day has landing files; warn about the ones that have none."""
    from .timeutil import days

    found = {p.name[3:] for p in landing.rglob("dt=*") if p.is_dir()}
    wanted = [d.isoformat() for d in days(d1, d2)]
    missing = [d for d in wanted if d not in found]
    if len(missing) == len(wanted):
        held = f"it holds {min(found)} .. {max(found)}" if found else "it holds no dt=YYYY-MM-DD folders at all"
        _fail(
            f"no landing files for {d1}{f' .. {d2}' if d2 != d1 else ''} under {landing} ({held}). "
            "Pick days the landing zone holds, or point --landing at the right folder."
        )
    if missing:
        console.print(
            f"[yellow]warning:[/] no landing files for {len(missing)} of the {len(wanted)} days "
            f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); they run on earlier deliveries only.",
            highlight=False, soft_wrap=True,
        )


def _landing_days(landing: Path) -> tuple[date, date]:
    found = sorted({p.name[3:] for p in landing.rglob("dt=*") if p.is_dir()})
    if not found:
        _fail(f"no dt=YYYY-MM-DD folders under {landing}; is it a landing zone (SPEC section 1)?")
    return _day(found[0]), _day(found[-1])


def _jsonable(obj):
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        return json.loads(json.dumps(asdict(obj), default=str))
    return json.loads(json.dumps(obj, default=str))


def _print_ingest(day: date, result) -> None:
    totals = result["totals"] if isinstance(result, dict) else result.totals
    rows = {k: sum(t[k] for t in totals.values()) for k in ("input_rows", "accepted_rows", "quarantined_rows")}
    console.print(
        f"{day}: {rows['input_rows']:,} rows in, {rows['accepted_rows']:,} accepted, "
        f"{rows['quarantined_rows']:,} quarantined"
    )
    for err in (result["errors"] if isinstance(result, dict) else result.errors)[:20]:
        console.print(f"  [yellow]{err}[/]")


def _print_summary(summary) -> None:
    t = RichTable(title="seedfunnel run")
    t.add_column("what")
    t.add_column("value")
    for k, v in summary.as_rows():
        t.add_row(k, str(v))
    console.print(t)
    for k, v in summary.locations():
        console.print(f"{k}: {v}", highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
