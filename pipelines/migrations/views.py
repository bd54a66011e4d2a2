"""The consumer views over the warehouse tables: plain SQL that SQLite and PostgreSQL both run.

Each view selects the declared columns of its source table (derived from ``schemas``, never
written out) and filters rows. This is the declaration, as ``schemas`` is for tables: the contract
fingerprint and ``docs_gen`` read it, and a test checks the SQL the revisions run (each states its
views literally, ``migrations.ddl.View``) is exactly ``create_sql()`` of these. A revision that
changes a source table's columns recreates its views in the same revision.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines import schemas


@dataclass(frozen=True)
class View:
    name: str
    source: str  # the schemas table the view reads
    grain: str
    key: tuple[str, ...]
    doc: str
    where: str  # SQL predicate over the source table, portable across SQLite and PostgreSQL

    def create_sql(self, sep: str = " ") -> str:
        """CREATE VIEW selecting every declared column of the source, filtered by ``where``."""
        t = schemas.table(self.source)
        cols = ", ".join(_q(n) for n in t.names)
        return sep.join(
            (f"CREATE VIEW {_q(self.name)} AS", f"SELECT {cols}", f"FROM {_q(t.name)}", f"WHERE {self.where}")
        )

    def drop_sql(self) -> str:
        """DROP VIEW statement (a no-op when the view is absent)."""
        return f"DROP VIEW IF EXISTS {_q(self.name)}"


def _q(identifier: str) -> str:
    """Quote an identifier the SQL-standard way (both backends; e.g. ``rank`` is a keyword)."""
    return '"' + identifier.replace('"', '""') + '"'


V_BRAND_BOOST_LATEST = View(
    "v_brand_boost_latest",
    source=schemas.BRAND_BOOST_SIGNALS.name,
    grain="one (user, brand) among the user's 50 highest scores, as of the latest published day",
    key=("user_id", "brand_id"),
    doc="The rows of brand_boost_signals with the latest as_of_dt: what search ranking reads. "
    "Empty while brand_boost_signals is empty.",
    where=f"{_q('as_of_dt')} = (SELECT MAX({_q('as_of_dt')}) "
    f"FROM {_q(schemas.BRAND_BOOST_SIGNALS.name)})",
)

V_BRAND_FUNNEL_FINAL = View(
    "v_brand_funnel_final",
    source=schemas.AGG_BRAND_FUNNEL_DAILY.name,
    grain="one (day, brand, platform or 'all') whose windows have all closed",
    key=("dt", "brand_id", "platform"),
    doc="The rows of agg_brand_funnel_daily with is_final true: figures later runs no longer change.",
    # A bare boolean column is a predicate on both backends (SQLite stores booleans as 0/1).
    where=_q("is_final"),
)

V_FINAL_RESTATEMENTS = View(
    "v_final_restatements",
    source=schemas.RESTATEMENTS.name,
    grain="one (run, funnel table, day) a run rewrote although the day was already final",
    key=("run_id", "table_name", "dt"),
    doc="The rows of restatements with was_final true: days whose final figures a run changed "
    "(a late or corrected delivery, new reference data or settings). Consumers that keep only "
    "final figures (v_brand_funnel_final, is_final rows) re-read these days.",
    where=_q("was_final"),
)

VIEWS: tuple[View, ...] = (V_BRAND_BOOST_LATEST, V_BRAND_FUNNEL_FINAL, V_FINAL_RESTATEMENTS)
