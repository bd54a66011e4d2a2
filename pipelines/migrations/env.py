"""Alembic environment: runs on the connection ``pipelines.db`` hands over, or offline to SQL.

SQLite cannot ALTER most things in place, so there every revision runs in batch mode
(``render_as_batch``): the same revision file works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic import context

from pipelines import warehouse

config = context.config


def _run_offline() -> None:
    """Render the revisions as SQL for ``config.attributes['dialect_name']``."""
    dialect = config.attributes.get("dialect_name", "postgresql")
    context.configure(
        dialect_name=dialect,
        target_metadata=warehouse.metadata,
        literal_binds=True,
        render_as_batch=dialect == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    """Migrate on the caller's connection (one transaction, opened and committed by the caller)."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run the warehouse migrations through pipelines.db.upgrade(url) or "
            "`seedfunnel db upgrade`, which pass the connection in"
        )
    context.configure(
        connection=connection,
        target_metadata=warehouse.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
