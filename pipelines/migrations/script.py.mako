"""${message}

Contract changes (a column, a table, a key, a view) each get an explicit revision and a
CHANGELOG.md entry: warehouse names, grains and keys are a public interface. State what the
revision creates literally (``pipelines.migrations.ddl``: ``Table``, ``Col``, ``View``, or plain
``op`` calls), never derived from ``pipelines/schemas.py``: a released revision must not change.

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = ${repr(branch_labels)}
depends_on: str | None = ${repr(depends_on)}
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = ""


def upgrade() -> None:
    """${message}"""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Undo: ${message}"""
    ${downgrades if downgrades else "pass"}
