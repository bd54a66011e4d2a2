"""Generate ``docs/tables.md`` from ``pipelines/schemas.py``: every table, column and view.

``python -m pipelines.docs_gen`` writes the file; ``--check`` exits 1 when the committed file is
stale. A test asserts the committed file equals ``render_tables_md()``, so the docs cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import schemas, warehouse
from .migrations import views

TABLES_MD = Path(__file__).resolve().parent.parent / "docs" / "tables.md"

LAYERS: dict[str, tuple[str, str]] = {
    "input": (
        "Canonical inputs (lake)",
        "What ingestion keeps after parsing, normalising and validating the landing zone (SPEC 3): "
        "typed Parquet under `lake/<table>/`, partitioned by delivery day.",
    ),
    "seed": (
        "Reference data (seeds)",
        "CSV files in `seeds/` (or the folder a run names), read as they are on every run.",
    ),
    "derived": (
        "Derived lake tables",
        "Computed from the inputs and the reference data (text matching, SPEC 4).",
    ),
    "warehouse": (
        "Warehouse tables",
        "The downstream contract (SPEC 6), in SQLite or PostgreSQL, created by the migrations "
        "(`seedfunnel db upgrade`). Names, grains and keys change only with a migration and a "
        "CHANGELOG.md entry. Every row carries the `run_id` that wrote it. A run replaces whole "
        "days of a funnel table's partition column, only the days whose rows changed, and logs "
        "each in `restatements` (see [Reprocessing](#reprocessing)). The exception is "
        "`brand_boost_signals` before the newest days: a late exposure, id link or note moves "
        "the snapshots of the users it concerns only, so a run recomputes and replaces those "
        "users' rows of such a day and leaves the rest of it as it was. The logs (`dq_results`, "
        "`quarantine`, `ingest_files`, `restatements`) only grow: a run appends its rows, "
        "replacing only rows of its own `run_id`, so a re-run of a day appends instead of "
        "replacing it.",
    ),
}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def constraints(c: schemas.Column) -> str:
    """The column's declared constraints in words: enum values and bounds."""
    parts = []
    if c.enum:
        parts.append("one of " + _code(c.enum))
    if c.min is not None:
        parts.append(f"{'>' if c.min_exclusive else '>='} {_num(c.min)}")
    if c.max is not None:
        parts.append(f"<= {_num(c.max)}")
    return "; ".join(parts)


def _columns_table(t: schemas.Table) -> list[str]:
    lines = ["| column | type | nullable | constraints | meaning |", "|---|---|---|---|---|"]
    for c in t.columns:
        cells = (f"`{c.name}`", f"`{c.type}`", "yes" if c.nullable else "no", constraints(c), c.doc)
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def _partition(t: schemas.Table) -> str:
    if t.partition is None:
        return "none (one snapshot, replaced whole)"
    if t in schemas.LOG_TABLES:
        return f"`{t.partition}` (indexed; a log: a run appends its rows, replacing only rows of its own `run_id`)"
    if t.layer == "warehouse":
        return f"`{t.partition}` (a run replaces whole days of it)"
    return f"`{t.partition}` (`{t.partition}=YYYY-MM-DD` folders)"


def _table_section(t: schemas.Table) -> list[str]:
    out = [f"### `{t.name}`", ""]
    if t.doc:
        out += [t.doc, ""]
    out += [
        f"- **Grain:** {t.grain}",
        f"- **Key:** {_code(t.key)}",
        f"- **Partition:** {_partition(t)}",
        "",
        *_columns_table(t),
        "",
    ]
    return out


def _view_section(v: views.View) -> list[str]:
    return [
        f"### `{v.name}`",
        "",
        v.doc,
        "",
        f"- **Grain:** {v.grain}",
        f"- **Key:** {_code(v.key)}",
        f"- **Columns:** those of [`{v.source}`](#{v.source}), in the same order",
        "",
        "```sql",
        v.create_sql(sep="\n"),
        "```",
        "",
    ]


def _reprocessing_section() -> list[str]:
    """How downstream consumers follow ``restatements`` (SPEC 5, Arrival)."""
    return [
        "## Reprocessing",
        "",
        "Late, re-sent or corrected deliveries change days that were already published, final ones",
        "included. A run rewrites a day of a funnel table only when the day's rows changed, and logs",
        "every day it wrote in [`restatements`](#restatements), published in the same transaction as",
        "the days themselves. A consumer that copies or aggregates the funnel tables keeps the set of",
        "`run_id`s it has processed and, after each run:",
        "",
        "1. selects the rows of `restatements` whose `run_id` it has not seen yet. Keep the set, not a",
        "   high-water mark: run ids carry no order to rely on, and a run whose publish was held back",
        "   (a failed quality gate) has its rows published by a later run;",
        "2. re-reads each listed (`table_name`, `dt`) day whole (the day is the table's partition",
        "   column: `dt`, or `as_of_dt` for `brand_boost_signals`) and replaces its copy of that day;",
        "   `rows_after` 0 means the day is now empty. A day listed by several new runs is read once:",
        "   the table holds its latest rows;",
        "3. adds those `run_id`s to the set.",
        "",
        "```sql",
        "SELECT DISTINCT table_name, dt FROM restatements",
        "WHERE run_id NOT IN ('run-2026-03-01-00001', 'run-2026-03-02-00002')  -- the runs already seen",
        "ORDER BY table_name, dt",
        "```",
        "",
        "- `was_final` true: the day was already final before the run, so figures consumers treat as",
        "  settled (`is_final` rows, `v_brand_funnel_final`) were restated; these rows are also in",
        "  [`v_final_restatements`](#v_final_restatements).",
        "- `caused_by` says why: the deliveries that changed (`source/dt=YYYY-MM-DD`, space-separated),",
        "  `reference` (seeds), `settings` (funnel parameters), or `window` (a new latest delivery day:",
        "  new days, rows turning final).",
        "- `rows_before`, `rows_after` and `rows_changed` size the change; `through_dt` is W, the latest",
        "  delivery day the run had ingested.",
        "- A run that changed no funnel day adds no rows.",
        "- `brand_boost_signals`: an older day may be restated for some users only (their rows",
        "  replaced, the others untouched); the day as the table holds it is complete either way, so",
        "  step 2 holds. A consumer keyed by user may re-read only the users whose rows changed:",
        "  `rows_changed` counts them, and the run_id column marks them.",
        "",
    ]


def _sql_type(logical: str, dialect: sa.engine.Dialect) -> str:
    """How the warehouse stores a logical type on ``dialect`` (from the DDL itself)."""
    for t in schemas.WAREHOUSE_TABLES:
        for c in t.columns:
            if c.type == logical:
                sql = warehouse.TABLES[t.name].c[c.name].type.compile(dialect=dialect)
                return f"`{sql}`"
    return "(lake only)"


def _types_legend() -> list[str]:
    lines = [
        "| logical type | lake (Arrow) | PostgreSQL | SQLite |",
        "|---|---|---|---|",
    ]
    pg, lite = postgresql.dialect(), sqlite.dialect()
    used = dict.fromkeys(c.type for t in schemas.TABLES.values() for c in t.columns)
    for logical in used:
        cells = (
            f"`{logical}`",
            f"`{schemas.arrow_type(logical)}`",
            _sql_type(logical, pg),
            _sql_type(logical, lite),
        )
        lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    return lines


def _group() -> dict[str, list[schemas.Table]]:
    groups: dict[str, list[schemas.Table]] = {layer: [] for layer in LAYERS}
    for t in schemas.TABLES.values():
        if t.layer not in groups:
            raise ValueError(
                f"schemas table {t.name!r} has layer {t.layer!r}; docs_gen knows {list(LAYERS)}: "
                "add the layer to pipelines/docs_gen.py LAYERS"
            )
        groups[t.layer].append(t)
    return groups


def render_tables_md() -> str:
    """The full text of ``docs/tables.md``."""
    from . import db

    groups = _group()
    out = [
        "# Tables",
        "",
        "<!-- Generated by `python -m pipelines.docs_gen` from `pipelines/schemas.py`; do not edit. -->",
        "",
        "Every table seedfunnel reads, keeps or publishes, as declared in `pipelines/schemas.py`,",
        "and the consumer views over the warehouse. A test fails when this page and the",
        "declaration disagree: regenerate it with `python -m pipelines.docs_gen`.",
        f"Warehouse contract: migration head `{db.head()}` (see `CHANGELOG.md`).",
        "",
        "## Contents",
        "",
    ]
    for layer, (title, _) in LAYERS.items():
        out.append(f"- {title}: " + ", ".join(f"[`{t.name}`](#{t.name})" for t in groups[layer]))
    out.append("- [Reprocessing](#reprocessing): following `restatements` downstream")
    out.append("- Consumer views: " + ", ".join(f"[`{v.name}`](#{v.name})" for v in views.VIEWS))
    out += [
        "",
        "## Types",
        "",
        "Timestamps (`ts`) are aware UTC with microseconds; a business day (`date`) is an",
        "Asia/Shanghai calendar date. `list<str>` is stored in the warehouse as JSON text.",
        "",
        *_types_legend(),
        "",
    ]
    for layer, (title, intro) in LAYERS.items():
        out += [f"## {title}", "", intro, ""]
        for t in groups[layer]:
            out += _table_section(t)
    out += _reprocessing_section()
    out += [
        "## Consumer views",
        "",
        "Created by the migrations on SQLite and PostgreSQL alike; read these rather than",
        "filtering the tables yourself.",
        "",
    ]
    for v in views.VIEWS:
        out += _view_section(v)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    """Write docs/tables.md, or with ``--check`` report whether it is current."""
    text = render_tables_md()
    if "--check" in argv:
        current = TABLES_MD.read_text(encoding="utf-8") if TABLES_MD.exists() else ""
        if current != text:
            print(f"{TABLES_MD.name} is stale: run python -m pipelines.docs_gen", file=sys.stderr)
            return 1
        return 0
    TABLES_MD.write_text(text, encoding="utf-8")
    print(f"wrote {TABLES_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
