"""What the revisions are written in: tables and views stated literally, created or adopted.

A released revision must do the same thing forever, whatever ``pipelines/schemas.py`` says later,
so revisions never derive their tables from the declaration: each states the tables and views it
creates with ``Table``, ``Col`` and ``View`` below (logical types, as in ``schemas``), and these
helpers turn them into DDL. Their output is part of every released revision: never change what
an existing helper emits; add a new one instead.

A table is "adopted" when it already exists with exactly the stated columns (a warehouse made by
``warehouse.create_all`` before migrations existed); any other difference is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from alembic import context, op

#: Logical type -> SQLAlchemy type, as the warehouse stores it (frozen: a type change is a revision).
_TYPES = {
    "str": sa.Text,
    "int64": sa.BigInteger,
    "float64": sa.Double,
    "bool": sa.Boolean,
    "ts": lambda: sa.DateTime(timezone=True),
    "date": sa.Date,
    "list<str>": sa.Text,  # JSON text
}


@dataclass(frozen=True)
class Col:
    name: str
    type: str  # a logical type of ``schemas``
    comment: str
    nullable: bool = False

    def column(self) -> sa.Column:
        return sa.Column(self.name, _TYPES[self.type](), nullable=self.nullable, comment=self.comment)


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[Col, ...]
    partition: str | None = "dt"  # the indexed day column

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def comment(self) -> str:
        return f"{self.grain}. Key: {', '.join(self.key)}"

    @property
    def index(self) -> str | None:
        return f"ix_{self.name}_{self.partition}" if self.partition else None


@dataclass(frozen=True)
class Index:
    """A secondary index of a table, beyond its day index: an access path a query needs (a revision
    states its name and columns literally, like its tables)."""

    name: str
    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class View:
    """A consumer view: every stated column of ``table``, rows filtered by ``where``."""

    name: str
    table: Table
    where: str  # SQL predicate, portable across SQLite and PostgreSQL

    @property
    def source(self) -> str:
        return self.table.name

    def create_sql(self) -> str:
        cols = ", ".join(q(n) for n in self.table.names)
        return f"CREATE VIEW {q(self.name)} AS SELECT {cols} FROM {q(self.table.name)} WHERE {self.where}"

    def drop_sql(self) -> str:
        return f"DROP VIEW IF EXISTS {q(self.name)}"


def q(identifier: str) -> str:
    """Quote an identifier the SQL-standard way (both backends; e.g. ``rank`` is a keyword)."""
    return '"' + identifier.replace('"', '""') + '"'


def existing_tables() -> set[str]:
    """Tables already in the warehouse (none when rendering SQL offline)."""
    if context.is_offline_mode():
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def create_tables(tables: tuple[Table, ...], release: str) -> None:
    """Create each table (by name order) with its comment and day index, or adopt it."""
    existing = existing_tables()
    for t in sorted(tables, key=lambda t: t.name):
        if t.name in existing:
            check_adoptable(t, release)
            continue
        op.create_table(t.name, *(c.column() for c in t.columns), comment=t.comment)
        if t.index:
            op.create_index(t.index, t.name, [t.partition], unique=False)


def drop_tables(tables: tuple[Table, ...]) -> None:
    """Drop the tables (their indexes go with them)."""
    for t in sorted(tables, key=lambda t: t.name, reverse=True):
        op.drop_table(t.name)


def recreate_table(old: Table, new: Table) -> None:
    """Replace ``old`` by ``new`` (same name), copying the rows of their common columns.

    Columns added in the middle of a table keep the declared order on both backends this way
    (``ALTER TABLE ADD COLUMN`` would append them); new columns of copied rows are null. The day
    index is recreated; views on the table must be dropped before and recreated after.
    """
    if old.name != new.name:
        raise ValueError(f"recreate_table keeps the name: {old.name} != {new.name}")
    staged = f"{new.name}__new"
    op.create_table(staged, *(c.column() for c in new.columns), comment=new.comment)
    common = ", ".join(q(n) for n in new.names if n in old.names)
    op.execute(f"INSERT INTO {q(staged)} ({common}) SELECT {common} FROM {q(old.name)}")
    op.drop_table(old.name)
    op.rename_table(staged, new.name)
    if new.index:
        op.create_index(new.index, new.name, [new.partition], unique=False)


def create_indexes(indexes: tuple[Index, ...], release: str) -> None:
    """Create each secondary index, or adopt it when it already exists on exactly those columns.

    ``recreate_table`` rebuilds only a table's day index: a later revision that recreates a table
    with secondary indexes must create them again.
    """
    offline = context.is_offline_mode()
    for ix in indexes:
        if not offline:
            found = {i["name"]: i["column_names"] for i in sa.inspect(op.get_bind()).get_indexes(ix.table)}
            if ix.name in found:
                if found[ix.name] == list(ix.columns):
                    continue
                raise RuntimeError(
                    f"warehouse index {ix.name!r} on {ix.table!r} exists on columns {found[ix.name]}, not "
                    f"{list(ix.columns)}; it was not made by seedfunnel {release}. Drop it, then upgrade again."
                )
        op.create_index(ix.name, ix.table, list(ix.columns), unique=False)


def drop_indexes(indexes: tuple[Index, ...]) -> None:
    for ix in reversed(indexes):
        op.drop_index(ix.name, table_name=ix.table)


def create_views(views: tuple[View, ...]) -> None:
    for v in views:
        op.execute(v.create_sql())


def drop_views(views: tuple[View, ...]) -> None:
    for v in reversed(views):
        op.execute(v.drop_sql())


def check_adoptable(t: Table, release: str) -> None:
    """Accept a pre-existing table only when its columns are exactly the stated ones."""
    found = [c["name"] for c in sa.inspect(op.get_bind()).get_columns(t.name)]
    if sorted(found) != sorted(t.names):
        missing = sorted(set(t.names) - set(found))
        unexpected = sorted(set(found) - set(t.names))
        raise RuntimeError(
            f"warehouse table {t.name!r} exists but differs from the declaration "
            f"(missing {missing}, unexpected {unexpected}); it was not made by seedfunnel {release}. "
            "Rename or drop it, or point the run at an empty warehouse, then upgrade again."
        )
