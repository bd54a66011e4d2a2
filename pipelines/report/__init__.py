"""The attribution report: one self-contained HTML page per day, read from the warehouse tables.

``build_report(settings, day)`` writes ``<reports>/attribution/YYYY-MM-DD.html`` and refreshes
``<reports>/index.html`` (every report, newest first, the latest linked at the top). See docs/report.md.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ..settings import Settings

FOLDER = "attribution"

__all__ = ["FOLDER", "NoDataError", "WINDOW_DAYS", "build_report", "report_path"]


def __getattr__(name: str):
    # ``data`` (SQLAlchemy, the warehouse) only when asked for: the worker process that draws
    # the charts imports ``charts`` without it.
    if name in ("WINDOW_DAYS", "NoDataError"):
        from . import data

        return getattr(data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def report_path(settings: Settings, day: date) -> Path:
    return settings.reports / FOLDER / f"{day.isoformat()}.html"


def build_report(settings: Settings, day: date, *, days: int | None = None) -> Path:
    """Write the report of ``day`` (a window of ``days`` ending there, ``WINDOW_DAYS`` when not
    given) and the index; returns its path.

    Raises NoDataError when the warehouse holds no funnel rows for ``day``.
    """
    from .. import warehouse
    from . import data, render

    days = data.WINDOW_DAYS if days is None else days
    path = report_path(settings, day)
    engine = warehouse.make_engine(settings.resolved_warehouse_url())
    try:
        with data.reading(settings, engine, day, days) as figures:  # drawn while still being read
            page = render.render(figures, path, settings.reports)
    finally:
        engine.dispose()
    render.write_atomic(path, page)
    render.write_atomic(settings.reports / "index.html", render.render_index(settings.reports, FOLDER))
    return path
