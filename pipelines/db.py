"""Warehouse migrations, run from code: ``upgrade(url)``, ``current(url)``, ``seedfunnel db upgrade``.

The Alembic environment lives inside the package (``pipelines/migrations``), so no alembic.ini is
needed anywhere. An upgrade is one transaction on the caller's warehouse: on PostgreSQL (which
has transactional DDL) under an advisory lock, so concurrent upgrades serialise and the later one
finds the work done; on SQLite under ``BEGIN IMMEDIATE`` (``warehouse.make_engine``), with every
revision run in batch mode. Upgrading a warehouse already at the target is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from . import schemas, warehouse
from .migrations import views
from .redact import redact_text, redact_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = zlib.crc32(b"seedfunnel:migrations") & 0x7FFFFFFF
# Alembic's ``op`` and ``context`` are process-global proxies: two migrations running at once in
# one process would share them, so in-process runs take turns (across processes the database
# serialises them: the advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite).
_IN_PROCESS = threading.Lock()


def _config(**attributes) -> Config:
    """An Alembic config pointing at the in-package environment; nothing read from disk."""
    cfg = Config(output_buffer=attributes.pop("output_buffer", None))
    # ConfigParser interpolates '%': a path holding one must be escaped.
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    cfg.attributes.update(attributes)
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The newest revision id (the contract this code publishes)."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the warehouse migrations must have one head, found {heads}: merge them")
    return heads[0]


def revision_module(revision: str):
    """The loaded module of a revision (its ``contract``, and ``TABLES`` / ``VIEWS`` when stated)."""
    return _script().get_revision(revision).module


def revision_contract(revision: str) -> str:
    """The contract fingerprint a revision module records in its ``contract`` attribute."""
    return getattr(revision_module(revision), "contract", "")


def fingerprint(tables: Iterable, views_: Iterable) -> str:
    """A short hash of what the DDL depends on: tables, columns, types, nullability, keys, views.

    ``tables`` have ``name``, ``key``, ``partition`` and ``columns`` (each with ``name``, logical
    ``type`` and ``nullable``); ``views_`` have ``name``, ``source`` and ``where``: the declaration
    (``schemas.Table``, ``views.View``) or a revision's frozen statement (``migrations.ddl``).
    Released revisions record this value: the payload must never change.
    """
    payload = {
        "tables": [
            [t.name, list(t.key), t.partition, [[c.name, c.type, c.nullable] for c in t.columns]]
            for t in tables
        ],
        "views": [[v.name, v.source, v.where] for v in views_],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def contract_fingerprint() -> str:
    """The fingerprint of the declared warehouse (``schemas.WAREHOUSE_TABLES``, ``views.VIEWS``):
    the head revision's ``contract`` must equal it, so a change to the declaration without a
    revision fails the tests."""
    return fingerprint(schemas.WAREHOUSE_TABLES, views.VIEWS)


def revisions() -> list[str]:
    """Every revision id, oldest first (the order an upgrade from nothing applies them)."""
    return [r.revision for r in reversed(list(_script().walk_revisions()))]


def _missing_sqlite_file(url: str) -> bool:
    u = sa.make_url(url)
    return (
        u.get_backend_name() == "sqlite"
        and u.database not in (None, "", ":memory:")
        and not Path(u.database).exists()
    )


def current(url: str) -> str | None:
    """The warehouse's current revision; None when it was never migrated (or does not exist)."""
    if _missing_sqlite_file(url):
        return None  # connecting would create an empty file as a side effect
    warehouse.check_connection(url)
    engine = warehouse.make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _migrate(url: str, revision: str, fn) -> str | None:
    """Run ``fn(config, revision)`` in one transaction on ``url``; returns the revision after it."""
    warehouse.check_connection(url)
    engine = warehouse.make_engine(url)
    try:
        with _IN_PROCESS, engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            try:
                fn(_config(connection=conn), revision)
            except CommandError as e:
                raise RuntimeError(
                    f"cannot migrate the warehouse {redact_url(url)} to {revision!r}: {redact_text(str(e), url)}. "
                    f"Known revisions: {', '.join(revisions())}."
                ) from e
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the warehouse at ``url`` up to ``revision``; returns its revision afterwards."""
    after = _migrate(url, revision, command.upgrade)
    assert after is not None  # an upgrade always leaves a revision behind
    return after


def downgrade(url: str, revision: str = "base") -> str | None:
    """Take the warehouse down to ``revision`` (``base``: drop everything the migrations made)."""
    return _migrate(url, revision, command.downgrade)


def render_sql(dialect: str = "postgresql", revision: str = "head") -> str:
    """The DDL of the upgrade from nothing to ``revision``, for ``sqlite`` or ``postgresql``."""
    buf = io.StringIO()
    with _IN_PROCESS:
        command.upgrade(_config(output_buffer=buf, dialect_name=dialect), revision, sql=True)
    return buf.getvalue()


def db_upgrade_command(url: str) -> str:
    """``seedfunnel db upgrade``: upgrade to head and return the line the CLI prints."""
    before = current(url)
    after = upgrade(url)
    where = redact_url(url)
    if before == after:
        return f"warehouse {where} already at revision {after} (head); nothing to do"
    return f"warehouse {where} upgraded from {before or 'an empty warehouse'} to revision {after} (head)"

