"""Baseline: the 0.1.0 warehouse contract — every table of ``warehouse.metadata`` and the views.

The tables are built from the declaration (``pipelines/schemas.py`` through ``warehouse.TABLES``),
never from a second column list, so this revision is exactly the declaration as long as the
declaration is the 0.1.0 contract. ``contract`` pins that: the head revision's fingerprint must
equal ``pipelines.db.contract_fingerprint()`` (a test enforces it).

Later schema changes get their own explicit revision (and a CHANGELOG.md entry), because
warehouse names, grains and keys are a public interface that consumers depend on. The first such
change also freezes this baseline: replace the derived creation below by the DDL that
``pipelines.db.render_sql`` renders for this revision, so that a fresh warehouse still walks
0.1.0 -> the new revision instead of being created at the new contract and then altered twice.

A warehouse made before migrations existed (``warehouse.create_all``) is adopted: a table that
already exists with exactly the declared columns is kept, any other difference is an error.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from pipelines import warehouse
from pipelines.migrations import views

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None
contract: str = "c3bf3b16101a2046"


def upgrade() -> None:
    """Create the warehouse tables with their indexes, then the consumer views."""
    existing = set() if context.is_offline_mode() else set(sa.inspect(op.get_bind()).get_table_names())
    for t in warehouse.metadata.sorted_tables:
        if t.name in existing:
            _check_adoptable(t)
            continue
        op.create_table(
            t.name,
            *(sa.Column(c.name, c.type, nullable=c.nullable, comment=c.comment) for c in t.columns),
            comment=t.comment,
        )
        for ix in sorted(t.indexes, key=lambda i: i.name):
            op.create_index(ix.name, t.name, [c.name for c in ix.columns], unique=ix.unique)
    for v in views.VIEWS:
        op.execute(v.create_sql())


def downgrade() -> None:
    """Drop the views, then the tables (their indexes go with them)."""
    for v in reversed(views.VIEWS):
        op.execute(v.drop_sql())
    for t in reversed(warehouse.metadata.sorted_tables):
        op.drop_table(t.name)


def _check_adoptable(t: sa.Table) -> None:
    """Accept a pre-existing table only when its columns are exactly the declared ones."""
    found = [c["name"] for c in sa.inspect(op.get_bind()).get_columns(t.name)]
    declared = [c.name for c in t.columns]
    if sorted(found) != sorted(declared):
        missing = sorted(set(declared) - set(found))
        unexpected = sorted(set(found) - set(declared))
        raise RuntimeError(
            f"warehouse table {t.name!r} exists but differs from the declaration "
            f"(missing {missing}, unexpected {unexpected}); it was not made by seedfunnel 0.1.0. "
            "Rename or drop it, or point the run at an empty warehouse, then upgrade again."
        )
