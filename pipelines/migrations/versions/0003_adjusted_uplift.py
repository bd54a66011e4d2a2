"""0.3.0: engagement-adjusted uplift (SPEC 5.10): three columns of ``agg_conversion_uplift`` and the
table ``agg_uplift_strata``.

``agg_conversion_uplift`` gains ``adjusted_uplift``, ``adjusted_uplift_ci_low`` and
``adjusted_uplift_ci_high`` (nullable) after ``uplift_ci_high``. The table is rebuilt so the
columns keep their declared order on both backends: its rows are copied, the new columns null until
the next run restates them (the funnel parameters gained ``activity_window``, so that run restates
every day). ``agg_uplift_strata`` holds the stratum counts behind the adjusted figures. No key or
grain changes; no view reads either table.

Revision ID: 0003_adjusted_uplift
Revises: 0002_restatements
Create Date: 2026-12-01
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Col, Table

revision: str = "0003_adjusted_uplift"
down_revision: str | None = "0002_restatements"
branch_labels: str | None = None
depends_on: str | None = None
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = "989c8e3c48232f01"
RELEASE = "0.3.0"

_SUBJECT = (
    Col("dt", "date", "Search day"),
    Col("level", "str", "brand, category or all"),
    Col("subject_id", "str", "brand_id, category_id or 'all'"),
    Col("slice", "str", "all, platform or vertical_match"),
    Col("slice_value", "str", "'all'; a platform; 'match' or 'mismatch'"),
)
_NAIVE = (
    Col("seeded_pairs", "int64", "Pairs seeded for the subject"),
    Col("seeded_conversions", "int64", "Seeded pairs that convert"),
    Col("baseline_pairs", "int64", "Pairs not seeded for the subject (shared by every platform)"),
    Col("baseline_conversions", "int64", "Baseline pairs that convert"),
    Col("cvr_seeded", "float64", "seeded_conversions / seeded_pairs", nullable=True),
    Col("cvr_baseline", "float64", "baseline_conversions / baseline_pairs", nullable=True),
    Col("uplift", "float64", "cvr_seeded / cvr_baseline; null when any count is zero", nullable=True),
    Col("uplift_ci_low", "float64", "95% interval, log method", nullable=True),
    Col("uplift_ci_high", "float64", "95% interval, log method", nullable=True),
)
_TAIL = (
    Col("is_final", "bool", "True once every window that feeds the row has closed"),
    Col("run_id", "str", "Run that wrote the row"),
)
_GRAIN = "one (search day, level, subject, slice, slice value); windows are sums of daily counts"
_KEY = ("dt", "level", "subject_id", "slice", "slice_value")

#: agg_conversion_uplift as 0.1.0 and 0.2.0 have it (what a downgrade restores).
AGG_CONVERSION_UPLIFT_0_2 = Table("agg_conversion_uplift", grain=_GRAIN, key=_KEY, columns=(*_SUBJECT, *_NAIVE, *_TAIL))

AGG_CONVERSION_UPLIFT = Table(
    "agg_conversion_uplift",
    grain=_GRAIN,
    key=_KEY,
    columns=(
        *_SUBJECT,
        *_NAIVE,
        Col(
            "adjusted_uplift",
            "float64",
            "Engagement-adjusted uplift: Mantel-Haenszel risk ratio over the strata of "
            "agg_uplift_strata; null when either of its sums is 0",
            nullable=True,
        ),
        Col(
            "adjusted_uplift_ci_low",
            "float64",
            "95% interval, Greenland-Robins variance (units of one user are not independent: "
            "too narrow)",
            nullable=True,
        ),
        Col("adjusted_uplift_ci_high", "float64", "95% interval, Greenland-Robins variance", nullable=True),
        *_TAIL,
    ),
)

AGG_UPLIFT_STRATA = Table(
    "agg_uplift_strata",
    grain="one (search day, level, subject, slice, slice value, stratum) with at least one unit",
    key=("dt", "level", "subject_id", "slice", "slice_value", "stratum_id", "activity", "has_recent_order"),
    columns=(
        *_SUBJECT,
        Col("stratum_id", "str", "The unit's brand_id (levels brand and all) or category_id (level category)"),
        Col(
            "activity",
            "str",
            "The user's distinct searches in [t_s - activity_window, t_s) (14 days by default), banded",
        ),
        Col(
            "has_recent_order",
            "bool",
            "The user has a paid order (latest version) of the pair's category in that window",
        ),
        Col("seeded_pairs", "int64", "Seeded units of the stratum in the slice (n1)"),
        Col("seeded_conversions", "int64", "Of them, those that convert (a)"),
        Col("baseline_pairs", "int64", "Baseline units of the stratum, the subject's whole baseline (n0)"),
        Col("baseline_conversions", "int64", "Of them, those that convert (c)"),
        *_TAIL,
    ),
)

TABLES: tuple[Table, ...] = (AGG_UPLIFT_STRATA,)


def upgrade() -> None:
    """Rebuild agg_conversion_uplift with the adjusted columns; create (or adopt) agg_uplift_strata."""
    ddl.recreate_table(AGG_CONVERSION_UPLIFT_0_2, AGG_CONVERSION_UPLIFT)
    ddl.create_tables(TABLES, RELEASE)


def downgrade() -> None:
    """Drop agg_uplift_strata; rebuild agg_conversion_uplift without the adjusted columns."""
    ddl.drop_tables(TABLES)
    ddl.recreate_table(AGG_CONVERSION_UPLIFT, AGG_CONVERSION_UPLIFT_0_2)
