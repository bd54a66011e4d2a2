"""0.7.0: ``agg_boost_scores``, the distribution of each day's brand boost scores.

One row per (as-of day, score bin): the signals in each of ten equal bins over [0, 1], with the
day's signals, users and median score, derived from the day's whole ``brand_boost_signals``
snapshot whenever a run restates it. Readers (the daily report, monitoring of the boost) get a
day's shape from a dozen rows instead of scanning its millions. No existing table changes.

Revision ID: 0007_boost_scores
Revises: 0006_report_indexes
Create Date: 2026-11-29
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Col, Table

revision: str = "0007_boost_scores"
down_revision: str | None = "0006_report_indexes"
branch_labels: str | None = None
depends_on: str | None = None
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = "0b96ab742fbc93cb"
RELEASE = "0.7.0"


AGG_BOOST_SCORES = Table(
    "agg_boost_scores",
    grain="one (as-of day, score bin) of brand_boost_signals",
    key=("as_of_dt", "bin_low"),
    partition="as_of_dt",
    columns=(
        Col("as_of_dt", "date", "Signals as of the end of this day, as in brand_boost_signals"),
        Col("bin_low", "float64", "Lower edge of the score bin (included)"),
        Col("bin_high", "float64", "Upper edge of the score bin (excluded; the last bin includes 1)"),
        Col("signals", "int64", "The day's (user, brand) signals whose score falls in the bin"),
        Col("day_signals", "int64", "All of the day's (user, brand) signals"),
        Col("day_users", "int64", "Users with signals on the day (the rows of rank 1)"),
        Col(
            "day_median_score",
            "float64",
            "Median score of the day's signals (the mean of the middle two for an even count)",
        ),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

TABLES = (AGG_BOOST_SCORES,)


def upgrade() -> None:
    """Create (or adopt) the table with its as_of_dt index."""
    ddl.create_tables(TABLES, RELEASE)


def downgrade() -> None:
    """Drop the table (its index goes with it)."""
    ddl.drop_tables(TABLES)
