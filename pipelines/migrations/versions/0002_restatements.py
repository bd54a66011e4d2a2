"""0.2.0: the table ``restatements`` (with its day index) and the view ``v_final_restatements``.

Every funnel-table day a run (re)writes is logged in ``restatements``, one row per (run_id,
table_name, dt), so consumers know which days to re-read (docs/tables.md, "Reprocessing").
No existing table changes: ``quarantine``, ``ingest_files`` and ``dq_results`` keep their columns
and become append-only logs keyed by ``run_id``, which is how runs write them, not DDL.

A warehouse made by ``warehouse.create_all`` already holds ``restatements``: it is adopted when its
columns are exactly the stated ones, like the baseline's tables.

Revision ID: 0002_restatements
Revises: 0001_baseline
Create Date: 2026-11-28
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Col, Table, View

revision: str = "0002_restatements"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = "7cbcf5e3b0478174"
RELEASE = "0.2.0"

RESTATEMENTS = Table(
    "restatements",
    grain="one (run, funnel table, day) the run wrote: the day's rows before and after, and why",
    key=("run_id", "table_name", "dt"),
    columns=(
        Col("dt", "date", "The day (dt or as_of_dt) of table_name that was written"),
        Col("table_name", "str", "Funnel table written"),
        Col("rows_before", "int64", "Rows the day held before the run (0 for a new day)"),
        Col("rows_after", "int64", "Rows the day holds after the run"),
        Col("rows_changed", "int64", "Rows removed plus rows added, all columns but run_id compared"),
        Col("was_final", "bool", "Whether the day was already final before this run (a final row was restated)"),
        Col(
            "caused_by",
            "str",
            "What changed: deliveries as source/dt=YYYY-MM-DD (space-separated), 'reference' (seeds), "
            "'settings' (funnel parameters), 'window' (a new latest delivery day: new days, rows turning final)",
        ),
        Col("through_dt", "date", "W, the latest delivery day ingested when the run computed"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

TABLES: tuple[Table, ...] = (RESTATEMENTS,)

VIEWS: tuple[View, ...] = (
    # A bare boolean column is a predicate on both backends (SQLite stores booleans as 0/1).
    View("v_final_restatements", RESTATEMENTS, where='"was_final"'),
)


def upgrade() -> None:
    """Create (or adopt) restatements with its index on dt, then its view."""
    ddl.create_tables(TABLES, RELEASE)
    ddl.create_views(VIEWS)


def downgrade() -> None:
    """Drop the view, then restatements (its index goes with it); the 0.1.0 tables stay."""
    ddl.drop_views(VIEWS)
    ddl.drop_tables(TABLES)
