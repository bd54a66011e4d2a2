"""0.6.0: a secondary index the daily report reads through; no table, column or view changes.

``fct_touches (brand_id, user_id, dt)``: the report counts the window's distinct exposed users per
brand walking this index in order (no sort, no table row read). Indexes on
``brand_boost_signals`` (score, rank) were measured and left out: a day's publish of its million
rows in user order took several times longer with them.

Revision ID: 0006_report_indexes
Revises: 0005_models
Create Date: 2026-11-28
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Index

revision: str = "0006_report_indexes"
down_revision: str | None = "0005_models"
branch_labels: str | None = None
depends_on: str | None = None
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = "28642c9f14682c14"
RELEASE = "0.6.0"

INDEXES: tuple[Index, ...] = (
    Index("ix_fct_touches_brand_id_user_id_dt", "fct_touches", ("brand_id", "user_id", "dt")),
)


def upgrade() -> None:
    """Create (or adopt) the index."""
    ddl.create_indexes(INDEXES, RELEASE)


def downgrade() -> None:
    """Drop the index."""
    ddl.drop_indexes(INDEXES)
