"""Baseline: the 0.1.0 warehouse contract, frozen — ten tables with their day indexes, two views.

Frozen when 0.2.0 added ``restatements`` (``0002_restatements``): the tables and views below are
stated literally, never derived from ``pipelines/schemas.py``, so this revision creates exactly the
0.1.0 contract whatever the declaration says later, and a fresh warehouse walks 0.1.0 -> 0.2.0 ->
... like every warehouse made at 0.1.0. It renders the same DDL as the 0.1.0 release did
(``pipelines.db.render_sql(dialect, "0001_baseline")``). ``contract`` is the 0.1.0 fingerprint:
``pipelines.db.fingerprint(TABLES, VIEWS)`` of the statement below equals it (a test enforces it).

A warehouse made before migrations existed (``warehouse.create_all``) is adopted: a table that
already exists with exactly the stated columns is kept, any other difference is an error.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Col, Table, View

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None
contract: str = "c3bf3b16101a2046"
RELEASE = "0.1.0"

FCT_TOUCHES = Table(
    "fct_touches",
    grain="one touch: a linked, brand-bearing exposure of a touch kind, per brand",
    key=("platform", "note_id", "ext_user_id", "touch_at", "kind", "brand_id"),
    columns=(
        Col("dt", "date", "Business day (Asia/Shanghai) the row belongs to"),
        Col("user_id", "str", "On-platform (e-commerce) user id"),
        Col("brand_id", "str", "Brand id from seeds/brands.csv"),
        Col("touch_at", "ts", "Exposure time"),
        Col("platform", "str", "Platform the note lives on"),
        Col("note_id", "str", "Note id on its platform"),
        Col("author_id", "str", "Note author: first 16 hex of sha256 of the platform user id (MediaCrawler's creator_hash)"),
        Col("ext_user_id", "str", "User id on the external (note) platform"),
        Col("kind", "str", "Exposure kind"),
        Col("vertical", "str", "Author's vertical (category_id), if known", nullable=True),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

FCT_SEARCH_PAIRS = Table(
    "fct_search_pairs",
    grain="one (search, category) pair",
    key=("search_id", "category_id"),
    columns=(
        Col("dt", "date", "Business day (Asia/Shanghai) the row belongs to"),
        Col("search_id", "str", "Search id"),
        Col("user_id", "str", "On-platform (e-commerce) user id"),
        Col("searched_at", "ts", "Search time"),
        Col("category_id", "str", "Category id from seeds/categories.csv"),
        Col("seeded_brand_ids", "str", "|-joined sorted brands of the category the pair is seeded for"),
        Col("converted_brand_ids", "str", "|-joined sorted brands of the category with a paid order in the conversion window"),
        Col("is_seeded", "bool", "Seeded for at least one brand (a search-back, 回搜)"),
        Col("is_converted", "bool", "Converts at category level"),
        Col("last_touch_platform", "str", "Platform of the latest touch for any seeded brand before the search", nullable=True),
        Col("is_final", "bool", "True once every window that feeds the row has closed"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

FCT_SEEDED_ORDERS = Table(
    "fct_seeded_orders",
    grain="one seeded order",
    key=("order_id",),
    columns=(
        Col("dt", "date", "Payment day"),
        Col("order_id", "str", "Order id"),
        Col("user_id", "str", "On-platform (e-commerce) user id"),
        Col("brand_id", "str", "Brand id from seeds/brands.csv"),
        Col("category_id", "str", "Category id from seeds/categories.csv"),
        Col("amount_fen", "int64", "Paid amount in fen"),
        Col("paid_at", "ts", "Payment time"),
        Col("anchor_search_id", "str", "Latest seeded search of the brand's category in the conversion window"),
        Col("anchor_searched_at", "ts", "Anchor search time"),
        Col("touch_count", "int64", "Eligible touches"),
        Col("last_touch_platform", "str", "Platform of the last eligible touch"),
        Col("is_vertical_match", "bool", "The last eligible touch's author vertical equals the brand's category"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

FCT_ATTRIBUTION_CREDITS = Table(
    "fct_attribution_credits",
    grain="one (order, eligible touch, model)",
    key=("order_id", "model", "touch_seq"),
    columns=(
        Col("dt", "date", "Payment day"),
        Col("order_id", "str", "Order id"),
        Col("model", "str", "Attribution model"),
        Col("touch_seq", "int64", "1-based position of the touch in (time, platform, note_id, kind, ext_user_id) order"),
        Col("user_id", "str", "On-platform (e-commerce) user id"),
        Col("brand_id", "str", "Brand id from seeds/brands.csv"),
        Col("touch_at", "ts", "Touch time"),
        Col("platform", "str", "Platform the note lives on"),
        Col("note_id", "str", "Note id on its platform"),
        Col("author_id", "str", "Note author: first 16 hex of sha256 of the platform user id (MediaCrawler's creator_hash)"),
        Col("credit_fen", "float64", "Share of the order amount credited to the touch"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

AGG_BRAND_FUNNEL_DAILY = Table(
    "agg_brand_funnel_daily",
    grain="one (day, brand, platform or 'all'); dense over the run's days and the brands",
    key=("dt", "brand_id", "platform"),
    columns=(
        Col("dt", "date", "Business day (Asia/Shanghai) the row belongs to"),
        Col("brand_id", "str", "Brand id from seeds/brands.csv"),
        Col("platform", "str", "Platform, or 'all'"),
        Col("exposed_users", "int64", "Distinct users with a touch for the brand that day"),
        Col("searched_back_users", "int64", "Of exposed_users, those with a seeded search within seed_window after their first touch that day"),
        Col("search_back_rate", "float64", "searched_back_users / exposed_users (回搜率)", nullable=True),
        Col("search_back_users", "int64", "Distinct users with a pair seeded for the brand that day"),
        Col("seeded_pairs", "int64", "Pairs seeded for the subject"),
        Col("seeded_conversions", "int64", "Seeded pairs that convert"),
        Col("baseline_pairs", "int64", "Pairs not seeded for the subject (shared by every platform)"),
        Col("baseline_conversions", "int64", "Baseline pairs that convert"),
        Col("cvr_seeded", "float64", "seeded_conversions / seeded_pairs", nullable=True),
        Col("cvr_baseline", "float64", "baseline_conversions / baseline_pairs", nullable=True),
        Col("uplift", "float64", "cvr_seeded / cvr_baseline; null when any count is zero", nullable=True),
        Col("uplift_ci_low", "float64", "95% interval, log method", nullable=True),
        Col("uplift_ci_high", "float64", "95% interval, log method", nullable=True),
        Col("seeded_orders", "int64", "Seeded orders of the brand paid that day"),
        Col("seeded_gmv_fen", "int64", "Their amount"),
        Col("attributed_gmv_last_touch_fen", "float64", "Credits under last_touch, by the touch's platform"),
        Col("attributed_gmv_first_touch_fen", "float64", "Credits under first_touch, by the touch's platform"),
        Col("attributed_gmv_linear_fen", "float64", "Credits under linear, by the touch's platform"),
        Col("attributed_gmv_time_decay_fen", "float64", "Credits under time_decay, by the touch's platform"),
        Col("attributed_gmv_position_based_fen", "float64", "Credits under position_based, by the touch's platform"),
        Col("is_final", "bool", "True once every window that feeds the row has closed"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

AGG_CONVERSION_UPLIFT = Table(
    "agg_conversion_uplift",
    grain="one (search day, level, subject, slice, slice value); windows are sums of daily counts",
    key=("dt", "level", "subject_id", "slice", "slice_value"),
    columns=(
        Col("dt", "date", "Search day"),
        Col("level", "str", "brand, category or all"),
        Col("subject_id", "str", "brand_id, category_id or 'all'"),
        Col("slice", "str", "all, platform or vertical_match"),
        Col("slice_value", "str", "'all'; a platform; 'match' or 'mismatch'"),
        Col("seeded_pairs", "int64", "Pairs seeded for the subject"),
        Col("seeded_conversions", "int64", "Seeded pairs that convert"),
        Col("baseline_pairs", "int64", "Pairs not seeded for the subject (shared by every platform)"),
        Col("baseline_conversions", "int64", "Baseline pairs that convert"),
        Col("cvr_seeded", "float64", "seeded_conversions / seeded_pairs", nullable=True),
        Col("cvr_baseline", "float64", "baseline_conversions / baseline_pairs", nullable=True),
        Col("uplift", "float64", "cvr_seeded / cvr_baseline; null when any count is zero", nullable=True),
        Col("uplift_ci_low", "float64", "95% interval, log method", nullable=True),
        Col("uplift_ci_high", "float64", "95% interval, log method", nullable=True),
        Col("is_final", "bool", "True once every window that feeds the row has closed"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

BRAND_BOOST_SIGNALS = Table(
    "brand_boost_signals",
    grain="one (as-of day, user, brand) among the user's 50 highest scores",
    key=("as_of_dt", "user_id", "brand_id"),
    partition="as_of_dt",
    columns=(
        Col("as_of_dt", "date", "Signals as of the end of this day (next day 00:00 Asia/Shanghai)"),
        Col("user_id", "str", "On-platform (e-commerce) user id"),
        Col("brand_id", "str", "Brand id from seeds/brands.csv"),
        Col("raw", "float64", "Sum of decayed kind weights"),
        Col("score", "float64", "1 - exp(-raw)"),
        Col("rank", "int64", "1 = highest score; ties to the smaller brand_id"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

DQ_RESULTS = Table(
    "dq_results",
    grain="one validation result per (run, table, expectation)",
    key=("run_id", "table_name", "expectation"),
    columns=(
        Col("dt", "date", "Day validated"),
        Col("table_name", "str", "Table validated"),
        Col("expectation", "str", "Expectation id"),
        Col("severity", "str", "critical or warning"),
        Col("success", "bool", "Whether it passed"),
        Col("observed", "str", "Observed value, as text", nullable=True),
        Col("details", "str", "Details (JSON)", nullable=True),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

QUARANTINE = Table(
    "quarantine",
    grain="one rejected input row (or one unreadable file, row_number 0)",
    key=("run_id", "source_file", "row_number"),
    columns=(
        Col("dt", "date", "Delivery day"),
        Col("source", "str", "Input table the file was meant for (notes, exposures, ...)"),
        Col("platform", "str", "Platform folder, where the source has one", nullable=True),
        Col("source_file", "str", "Landing-zone file the row came from, relative to the landing root"),
        Col("row_number", "int64", "1-based line (CSV/JSONL), element (JSON) or row (Parquet/SQLite); 0 = whole file"),
        Col("reason", "str", "Reason code"),
        Col("message", "str", "Human-readable explanation"),
        Col("raw", "str", "The raw content of the row, as text"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

INGEST_FILES = Table(
    "ingest_files",
    grain="one landing file ingested by one run",
    key=("run_id", "source_file"),
    columns=(
        Col("dt", "date", "Delivery day"),
        Col("source", "str", "Input table"),
        Col("platform", "str", "Platform folder", nullable=True),
        Col("source_file", "str", "Landing-zone file the row came from, relative to the landing root"),
        Col("format", "str", "Detected format (e.g. mediacrawler_json_v2026, csv_gb18030)"),
        Col("input_rows", "int64", "Rows read"),
        Col("accepted_rows", "int64", "Rows accepted into the lake"),
        Col("quarantined_rows", "int64", "Rows sent to quarantine"),
        Col("run_id", "str", "Run that wrote the row"),
    ),
)

TABLES: tuple[Table, ...] = (
    FCT_TOUCHES,
    FCT_SEARCH_PAIRS,
    FCT_SEEDED_ORDERS,
    FCT_ATTRIBUTION_CREDITS,
    AGG_BRAND_FUNNEL_DAILY,
    AGG_CONVERSION_UPLIFT,
    BRAND_BOOST_SIGNALS,
    DQ_RESULTS,
    QUARANTINE,
    INGEST_FILES,
)

VIEWS: tuple[View, ...] = (
    View(
        "v_brand_boost_latest",
        BRAND_BOOST_SIGNALS,
        where='"as_of_dt" = (SELECT MAX("as_of_dt") FROM "brand_boost_signals")',
    ),
    # A bare boolean column is a predicate on both backends (SQLite stores booleans as 0/1).
    View("v_brand_funnel_final", AGG_BRAND_FUNNEL_DAILY, where='"is_final"'),
)


def upgrade() -> None:
    """Create (or adopt) the 0.1.0 tables with their indexes, then the consumer views."""
    ddl.create_tables(TABLES, RELEASE)
    ddl.create_views(VIEWS)


def downgrade() -> None:
    """Drop the views, then the tables (their indexes go with them)."""
    ddl.drop_views(VIEWS)
    ddl.drop_tables(TABLES)
