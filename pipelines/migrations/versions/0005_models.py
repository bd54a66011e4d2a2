"""0.5.0: the models over a reporting window (SPEC 5.11): three new tables.

``agg_attribution_channels`` (every model's split of the window's seeded GMV over platforms,
verticals and creators, with bootstrap intervals), ``agg_cost`` (spend per touch, search-back user
and seeded order, and ROAS, with intervals) and ``agg_roi_curve`` (ROI(T+x) per brand), each a
snapshot per ``as_of_dt`` with its index on that day. No existing table changes.

Revision ID: 0005_models
Revises: 0004_ingest_accounting
Create Date: 2026-11-28
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Col, Table

revision: str = "0005_models"
down_revision: str | None = "0004_ingest_accounting"
branch_labels: str | None = None
depends_on: str | None = None
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = "28642c9f14682c14"
RELEASE = "0.5.0"


AGG_ATTRIBUTION_CHANNELS = Table(
    "agg_attribution_channels",
    grain="one (as-of day, model, channel kind, channel) over the reporting window",
    key=("as_of_dt", "model", "channel_kind", "channel"),
    partition="as_of_dt",
    columns=(
        Col(
            "as_of_dt",
            "date",
            "Snapshot as of the end of this day, fitted over the model_window days up to it",
        ),
        Col("window_start_dt", "date", "First day of the reporting window the snapshot covers"),
        Col("model", "str", "Attribution model"),
        Col("channel_kind", "str", "platform, vertical (the author's) or creator"),
        Col(
            "channel",
            "str",
            "A platform; a vertical (category_id, or 'unknown'); a creator as platform:author_id ('(other)' pools the creators beyond max_creators)",
        ),
        Col("credit_fen", "float64", "Seeded GMV of the window credited to the channel"),
        Col(
            "share",
            "float64",
            "credit_fen / the model's credit over every channel of the kind",
            nullable=True,
        ),
        Col(
            "share_ci_low",
            "float64",
            "95% bootstrap interval of share, users resampled",
            nullable=True,
        ),
        Col(
            "share_ci_high",
            "float64",
            "95% bootstrap interval of share, users resampled",
            nullable=True,
        ),
        Col(
            "tied_with",
            "str",
            "Platforms and verticals: the channels of the same model and kind whose share cannot be told apart from this one (the bootstrap interval of the difference contains 0), |-joined; null for creators",
            nullable=True,
        ),
        Col(
            "markov_order",
            "int64",
            "Markov rows: the chain order k chosen on held-out users",
            nullable=True,
        ),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)


AGG_COST = Table(
    "agg_cost",
    grain="one (as-of day, model, level, subject) over the reporting window",
    key=("as_of_dt", "model", "level", "subject_id"),
    partition="as_of_dt",
    columns=(
        Col(
            "as_of_dt",
            "date",
            "Snapshot as of the end of this day, fitted over the model_window days up to it",
        ),
        Col("window_start_dt", "date", "First day of the reporting window the snapshot covers"),
        Col("model", "str", "Attribution model that assigns orders and GMV to subjects"),
        Col("level", "str", "platform, creator or brand"),
        Col(
            "subject_id",
            "str",
            "A platform, a creator as platform:author_id ('(other)' pools the creators beyond max_creators) or a brand_id",
        ),
        Col("spend_fen", "float64", "Spend of the window assigned to the subject"),
        Col("touches", "float64", "Touches on the subject's notes in the window"),
        Col(
            "search_back_users",
            "float64",
            "Distinct users with a seeded pair in the window whose last touch is the subject's",
        ),
        Col(
            "seeded_orders",
            "float64",
            "Seeded orders of the window credited to the subject (fractions of orders)",
        ),
        Col("attributed_gmv_fen", "float64", "Seeded GMV of the window credited to the subject"),
        Col(
            "cost_per_touch",
            "float64",
            "spend_fen / touches; null without touches or spend",
            nullable=True,
        ),
        Col(
            "cost_per_touch_ci_low",
            "float64",
            "95% bootstrap interval of cost_per_touch, users resampled",
            nullable=True,
        ),
        Col(
            "cost_per_touch_ci_high",
            "float64",
            "95% bootstrap interval of cost_per_touch, users resampled",
            nullable=True,
        ),
        Col("cost_per_search_back_user", "float64", "spend_fen / search_back_users", nullable=True),
        Col(
            "cost_per_search_back_user_ci_low",
            "float64",
            "95% bootstrap interval of cost_per_search_back_user, users resampled",
            nullable=True,
        ),
        Col(
            "cost_per_search_back_user_ci_high",
            "float64",
            "95% bootstrap interval of cost_per_search_back_user, users resampled",
            nullable=True,
        ),
        Col("cost_per_seeded_order", "float64", "spend_fen / seeded_orders", nullable=True),
        Col(
            "cost_per_seeded_order_ci_low",
            "float64",
            "95% bootstrap interval of cost_per_seeded_order, users resampled",
            nullable=True,
        ),
        Col(
            "cost_per_seeded_order_ci_high",
            "float64",
            "95% bootstrap interval of cost_per_seeded_order, users resampled",
            nullable=True,
        ),
        Col("roas", "float64", "attributed_gmv_fen / spend_fen; null without spend", nullable=True),
        Col(
            "roas_ci_low",
            "float64",
            "95% bootstrap interval of roas, users resampled",
            nullable=True,
        ),
        Col(
            "roas_ci_high",
            "float64",
            "95% bootstrap interval of roas, users resampled",
            nullable=True,
        ),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)


AGG_ROI_CURVE = Table(
    "agg_roi_curve",
    grain="one (as-of day, category, brand, x days)",
    key=("as_of_dt", "category_id", "brand_id", "x_days"),
    partition="as_of_dt",
    columns=(
        Col(
            "as_of_dt",
            "date",
            "Snapshot as of the end of this day, fitted over the model_window days up to it",
        ),
        Col("category_id", "str", "Category id from seeds/categories.csv"),
        Col("brand_id", "str", "Brand id from seeds/brands.csv"),
        Col("x_days", "int64", "Days after the touch an order may be paid to count"),
        Col("cohort_start_dt", "date", "First touch and spend day of the cohort"),
        Col("cohort_end_dt", "date", "Last touch and spend day of the cohort: as_of_dt - x_days"),
        Col("is_decision_cycle", "bool", "x_days is the category's own seed window (rounded up)"),
        Col(
            "is_complete",
            "bool",
            "The cohort lies within the data: it starts on or after the first data day",
        ),
        Col(
            "gmv_fen",
            "float64",
            "Linear-model credit of the cohort's touches from orders paid within x_days of the touch",
        ),
        Col("spend_fen", "float64", "The brand's spend of the cohort days"),
        Col("roi", "float64", "gmv_fen / spend_fen; null without spend", nullable=True),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)


TABLES: tuple[Table, ...] = (AGG_ATTRIBUTION_CHANNELS, AGG_COST, AGG_ROI_CURVE)


def upgrade() -> None:
    """Create (or adopt) the three tables with their as_of_dt indexes."""
    ddl.create_tables(TABLES, RELEASE)


def downgrade() -> None:
    """Drop the three tables (their indexes go with them)."""
    ddl.drop_tables(TABLES)
