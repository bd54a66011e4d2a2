"""The ``seedfunnel`` command line. Heavy modules are imported inside commands so --help is fast."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from .settings import ENV_HOME, ENV_LANDING, ENV_SEEDS, ENV_WAREHOUSE_URL, Settings

app = typer.Typer(
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
    return Settings(**kw)


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
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the landing zone into")],
    users: Annotated[int, typer.Option(help="Number of on-platform users", min=1)] = 10_000,
    days: Annotated[int, typer.Option(help="Number of days", min=1)] = 20,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = "2026-01-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, byte-identical files")] = 7,
    seeds: SeedsOpt = None,
) -> None:
    """Write a simulated landing zone with planted, known effects (see docs/simulator.md).

    Notes come in every real exporter format, made messy on purpose; `ground_truth.json` records
    the planted effects and every injected defect.
    """
    from .simulate import simulate_world

    settings = _settings(seeds=seeds)
    t0 = time.perf_counter()
    with progress_bar("simulate") as update:
        summary = simulate_world(
            out, users=users, days=days, start=_day(start), seed=seed, seeds_dir=settings.seeds,
            progress=update,
        )
    elapsed = time.perf_counter() - t0
    console.print(f"wrote {out} in {elapsed:.1f}s")
    console.print_json(json.dumps(_jsonable(summary)))


@app.command()
def ingest(
    start: Annotated[str, typer.Option(help="First delivery day, YYYY-MM-DD")],
    end: Annotated[str | None, typer.Option(help="Last delivery day (default: start)")] = None,
    landing: LandingOpt = None,
    home: HomeOpt = None,
) -> None:
    """Ingest landing files of the given delivery days into the lake; bad rows go to quarantine."""
    from .ingest.day import ingest_day
    from .timeutil import days

    settings = _settings(home=home, landing=landing)
    _require_landing(settings)
    d1 = _day(start)
    d2 = _day(end) if end else d1
    with progress_bar("ingest") as update:
        for i, d in enumerate(days(d1, d2)):
            update(f"{d}", i / max(1, (d2 - d1).days + 1))
            result = ingest_day(settings, d)
            _print_ingest(d, result)


@app.command()
def run(
    start: Annotated[str, typer.Option(help="First day to process, YYYY-MM-DD")],
    end: Annotated[str | None, typer.Option(help="Last day (default: start)")] = None,
    landing: LandingOpt = None,
    seeds: SeedsOpt = None,
    home: HomeOpt = None,
    warehouse_url: WarehouseOpt = None,
    buckets: Annotated[int | None, typer.Option(help="User buckets for the funnel step", min=1)] = None,
    engine: Annotated[str, typer.Option(help="Funnel engine: pandas, or duckdb (the SQL reference)")] = "pandas",
) -> None:
    """Run every stage in-process, day by day: ingest, match, funnel, publish.

    The same tasks the Airflow DAG runs, for people without a scheduler.
    """
    from .runner import run_days

    settings = _settings(home=home, seeds=seeds, landing=landing, warehouse_url=warehouse_url, buckets=buckets)
    _require_landing(settings)
    d1 = _day(start)
    d2 = _day(end) if end else d1
    with progress_bar("run") as update:
        summary = run_days(settings, d1, d2, engine=engine, progress=update)
    _print_summary(summary)


@app.command()
def demo(
    users: Annotated[int, typer.Option(help="Users in the simulated world", min=1)] = 5_000,
    days: Annotated[int, typer.Option(help="Days in the simulated world", min=1)] = 10,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
    home: HomeOpt = None,
    landing: LandingOpt = None,
) -> None:
    """Simulate a world (unless --landing names real data) and run every stage over its days."""
    from .runner import run_days
    from .simulate import simulate_world
    from .timeutil import parse_day

    settings = _settings(home=home, landing=landing)
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
    with progress_bar("run") as update:
        summary = run_days(settings, d1, d2, progress=update)
    _print_summary(summary)


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


@app.command("settings")
def show_settings(home: HomeOpt = None, seeds: SeedsOpt = None, landing: LandingOpt = None) -> None:
    """Print the resolved settings: folders, warehouse URL and funnel parameters."""
    s = _settings(home=home, seeds=seeds, landing=landing)
    out = s.describe()
    out["funnel"] = _jsonable(s.funnel)
    sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False, default=str) + "\n")


def _require_landing(settings: Settings) -> None:
    if not settings.landing.is_dir():
        _fail(
            f"landing folder {settings.landing} does not exist. Pass --landing DIR (laid out as in "
            f"SPEC section 1), set {ENV_LANDING}, or create a simulated one with "
            f"`seedfunnel simulate --out {settings.landing}`."
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
    console.print(
        f"{day}: {result.input_rows} rows in, {result.accepted_rows} accepted, "
        f"{result.quarantined_rows} quarantined"
    )
    for err in getattr(result, "errors", [])[:20]:
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
