"""The one declaration of every table seedfunnel reads, keeps or publishes.

Readers, lake writers, warehouse DDL, expectations and docs derive from here; no other module
writes a column list. Each table states its grain and key next to its columns.

Logical types: ``str``, ``int64``, ``float64``, ``bool``, ``ts`` (aware UTC timestamp, microseconds),
``date``, ``list<str>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pyarrow as pa

PLATFORMS: tuple[str, ...] = ("xiaohongshu", "douyin", "bilibili", "kuaishou", "weibo")
EXPOSURE_KINDS: tuple[str, ...] = ("impression", "read", "like", "collect", "comment", "share")
NOTE_TYPES: tuple[str, ...] = ("image", "video", "unknown")
ORDER_STATUSES: tuple[str, ...] = ("paid", "refunded")
#: SPEC 5.11 spend: a fee paid to a creator (per note, or per creator), or a paid boost of a note.
SPEND_TYPES: tuple[str, ...] = ("creator_fee", "paid_boost")
ATTRIBUTION_MODELS: tuple[str, ...] = (
    "last_touch",
    "first_touch",
    "linear",
    "time_decay",
    "position_based",
)
#: SPEC 5.11: the data-driven models, split over channels; published beside ATTRIBUTION_MODELS.
DATA_DRIVEN_MODELS: tuple[str, ...] = ("markov", "shapley")
CHANNEL_KINDS: tuple[str, ...] = ("platform", "vertical", "creator")
COST_LEVELS: tuple[str, ...] = ("platform", "creator", "brand")
ROI_DAYS: tuple[int, ...] = (1, 3, 7, 15, 30)
ALL = "all"  # the platform / slice value that means "every platform together"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    min: float | None = None  # inclusive lower bound
    max: float | None = None  # inclusive upper bound
    min_exclusive: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    grain: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    layer: str  # "input" (lake, canonical), "derived" (lake, computed), "seed", "warehouse"
    doc: str = ""
    partition: str | None = "dt"
    extra: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in self.columns]
        )


_ARROW = {
    "str": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "ts": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "list<str>": pa.list_(pa.string()),
}


def arrow_type(logical: str) -> pa.DataType:
    return _ARROW[logical]


def C(name: str, type: str, doc: str, **kw) -> Column:  # noqa: N802 - short on purpose
    return Column(name, type, doc, **kw)


# Columns shared by many tables: one definition each.
DT_DELIVERY = C("dt", "date", "Delivery day: the landing folder's dt (Asia/Shanghai calendar day)")
PLATFORM = C("platform", "str", "Platform the note lives on", enum=PLATFORMS)
NOTE_ID = C("note_id", "str", "Note id on its platform")
EXT_USER_ID = C("ext_user_id", "str", "User id on the external (note) platform")
USER_ID = C("user_id", "str", "On-platform (e-commerce) user id")
BRAND_ID = C("brand_id", "str", "Brand id from seeds/brands.csv")
CATEGORY_ID = C("category_id", "str", "Category id from seeds/categories.csv")
AUTHOR_ID = C(
    "author_id",
    "str",
    "Note author: first 16 hex of sha256 of the platform user id (MediaCrawler's creator_hash)",
)
RUN_ID = C("run_id", "str", "Run that wrote the row")
SOURCE_FILE = C("source_file", "str", "Landing-zone file the row came from, relative to the landing root")
#: Bounds on numbers (issue 17, SPEC 3): an amount is 0 < fen <= 10^12; a count is 0..10^12 - 1.
#: Ingestion quarantines a value outside them (``out_of_range``); the suites check them too.
MAX_AMOUNT_FEN = 10**12
MAX_COUNT = 10**12 - 1
#: A nullable integer is float64 in memory (pyarrow's ``to_pandas``): exact up to 2^53.
MAX_NULLABLE_INT = 2**53
COUNT = dict(type="int64", min=0, max=MAX_COUNT)
AMOUNT = dict(type="int64", min=0, min_exclusive=True, max=MAX_AMOUNT_FEN)


def _count(name: str, doc: str) -> Column:
    return Column(name, doc=doc, **COUNT)


# ---------------------------------------------------------------- canonical inputs (SPEC 3)

NOTES = Table(
    "notes",
    grain="one note version as delivered",
    key=("platform", "note_id"),
    layer="input",
    doc="External seeding notes from every exporter. The record from the latest delivery wins, "
    "within a file the last one (resolved when the lake is read).",
    columns=(
        PLATFORM,
        NOTE_ID,
        AUTHOR_ID,
        C("published_at", "ts", "When the note was published"),
        C("title", "str", "Title, topic markup removed"),
        C("text", "str", "Body text, topic markup removed"),
        C("tags", "list<str>", "Topic tags: the exporter's tag list plus inline #topic[话题]# markup"),
        _count("likes", "Likes"),
        _count("collects", "Collects (favourites)"),
        _count("comments", "Comments"),
        _count("shares", "Shares"),
        C("note_type", "str", "image, video, or unknown (an exporter type code not known yet)", enum=NOTE_TYPES),
        SOURCE_FILE,
        C("source_row", "int64", "1-based record number inside source_file", min=1),
        DT_DELIVERY,
    ),
)

EXPOSURES = Table(
    "exposures",
    grain="one exposure event",
    key=("platform", "note_id", "ext_user_id", "event_time", "kind", "dwell_ms"),
    layer="input",
    doc="Who saw or engaged with which note, when. Exact duplicate rows collapse to one.",
    columns=(
        PLATFORM,
        NOTE_ID,
        EXT_USER_ID,
        C("event_time", "ts", "When the exposure happened"),
        C("kind", "str", "Exposure kind", enum=EXPOSURE_KINDS),
        C("dwell_ms", "int64", "Dwell time in milliseconds", nullable=True, min=0, max=MAX_COUNT),
        DT_DELIVERY,
    ),
)

ID_LINKS = Table(
    "id_links",
    grain="one link claim as delivered",
    key=("platform", "ext_user_id"),
    layer="input",
    doc="External user id -> on-platform user id. Per (platform, ext_user_id) only the claims of "
    "the latest delivery naming it count (a link can be corrected, or revoked with confidence 0); "
    "among them the highest confidence wins, ties to the smallest user_id.",
    columns=(
        PLATFORM,
        EXT_USER_ID,
        USER_ID,
        C("confidence", "float64", "Link confidence", min=0, max=1),
        DT_DELIVERY,
    ),
)

SEARCHES = Table(
    "searches",
    grain="one search",
    key=("search_id",),
    layer="input",
    doc="On-platform search log. A later delivery of a search_id is a new version of it: the "
    "latest delivery wins, every version stays in the lake (resolved when the lake is read).",
    columns=(
        C("search_id", "str", "Search id"),
        USER_ID,
        C("event_time", "ts", "When the search was made"),
        C("query", "str", "The query as typed"),
        DT_DELIVERY,
    ),
)

ORDERS = Table(
    "orders",
    grain="one order",
    key=("order_id",),
    layer="input",
    doc="On-platform orders. A later delivery of an order_id is a new version of it (a refund, a "
    "corrected amount): the latest delivery wins, every version stays in the lake (resolved when "
    "the lake is read). Only orders whose latest version is paid count; a brand's category is the "
    "one in brands.csv.",
    columns=(
        C("order_id", "str", "Order id"),
        USER_ID,
        C("item_id", "str", "Item id"),
        BRAND_ID,
        CATEGORY_ID,
        C("amount_fen", doc="Paid amount in fen (1/100 yuan), 0 < amount <= 10^12", **AMOUNT),
        C("paid_at", "ts", "When the order was paid"),
        C("status", "str", "paid or refunded", enum=ORDER_STATUSES),
        DT_DELIVERY,
    ),
)

#: What identifies a payment when the spend file carries no spend_id: the derived spend_id joins
#: these (typed and canonical: platform name, author_id as creator_hash, spent_at in UTC) with "|".
SPEND_ID_FROM: tuple[str, ...] = ("platform", "author_id", "note_id", "spend_type", "spent_at")

SPEND = Table(
    "spend",
    grain="one spend (a payment) as delivered",
    key=("spend_id",),
    layer="input",
    doc="Money paid to seed notes (SPEC 5.11): a creator's fee for one note, or for the creator as a "
    "whole (note_id empty), and paid boosts of a note (Xiaohongshu 薯条, Douyin DOU+, ...). "
    "Optional: a day without a spend folder has no spend. spend_id is the file's own when it has "
    "one, else derived from platform|author_id|note_id|spend_type|spent_at, so a re-sent file "
    "names the same spends. A later delivery of a spend_id is a new version of it (a corrected "
    "amount): the latest delivery wins, every version stays in the lake (resolved when the lake is "
    "read: lake.read_spend).",
    columns=(
        C(
            "spend_id",
            "str",
            "Spend id: the file's spend_id, else platform|author_id|note_id|spend_type|spent_at "
            "(spent_at as YYYY-MM-DDTHH:MM:SS.ffffffZ, note_id empty for a fee per creator)",
        ),
        replace(PLATFORM, doc="Platform of the creator (and note) paid for"),
        replace(
            AUTHOR_ID,
            doc="Creator paid, or whose note was boosted: 16-hex creator_hash (a raw platform user id "
            "in the file is hashed on load, as in creators.csv)",
        ),
        replace(NOTE_ID, doc="Note paid for or boosted; empty for a fee paid per creator", nullable=True),
        C(
            "spend_type",
            "str",
            "creator_fee (paid to the creator) or paid_boost (paid to the platform to promote the "
            "note); creator_fee when the file names none",
            enum=SPEND_TYPES,
        ),
        C("amount_fen", doc="Amount paid in fen (1/100 yuan), 0 < amount <= 10^12", **AMOUNT),
        C("spent_at", "ts", "When the money was paid"),
        DT_DELIVERY,
    ),
)

ITEMS = Table(
    "items",
    grain="one item in the latest catalog snapshot",
    key=("item_id",),
    layer="input",
    partition=None,
    doc="Item catalog snapshot: fills an order's brand when the order file omits it.",
    columns=(
        C("item_id", "str", "Item id"),
        BRAND_ID,
        CATEGORY_ID,
        C("title", "str", "Item title", nullable=True),
    ),
)

# ---------------------------------------------------------------- reference data (seeds/)

BRANDS = Table(
    "brands",
    grain="one brand",
    key=("brand_id",),
    layer="seed",
    partition=None,
    columns=(
        BRAND_ID,
        C("name", "str", "Display name (Chinese where the brand has one)"),
        C("aliases", "str", "|-separated aliases: Chinese, Latin/pinyin, Traditional variants"),
        CATEGORY_ID,
        C(
            "context_aliases",
            "str",
            "|-separated subset of aliases that are also everyday words, acronyms or another "
            "company's name: in notes they count only in context (SPEC 4); optional, may be empty",
            nullable=True,
        ),
    ),
)

CATEGORIES = Table(
    "categories",
    grain="one category",
    key=("category_id",),
    layer="seed",
    partition=None,
    columns=(
        CATEGORY_ID,
        C("name", "str", "Display name"),
        C("keywords", "str", "|-separated query keywords"),
    ),
)

CREATORS = Table(
    "creators",
    grain="one creator",
    key=("platform", "author_id"),
    layer="seed",
    partition=None,
    columns=(
        PLATFORM,
        C(
            "author_id",
            "str",
            "Creator id: raw platform user id or its 16-hex creator_hash (raw ids are hashed on load)",
        ),
        C("vertical", "str", "The creator's vertical: a category_id"),
    ),
)

# ---------------------------------------------------------------- derived lake tables (matching)

NOTE_BRANDS = Table(
    "note_brands",
    grain="one (note, brand) mention in the winning note version",
    key=("platform", "note_id", "brand_id"),
    layer="derived",
    partition=None,
    columns=(PLATFORM, NOTE_ID, BRAND_ID),
)

NOTE_BRAND_EVIDENCE = Table(
    "note_brand_evidence",
    grain="one match of a brand alias in one field of the winning note version",
    key=("platform", "note_id", "brand_id", "field", "field_index", "position"),
    layer="derived",
    partition=None,
    doc="Why a note mentions a brand (SPEC 4): every alias match, counted or not. note_brands holds "
    "the (note, brand) pairs of the counted rows.",
    columns=(
        PLATFORM,
        NOTE_ID,
        BRAND_ID,
        C("field", "str", "Field matched", enum=("title", "text", "tags")),
        C("field_index", "int64", "0-based index of the tag (tags); 0 for title and text", min=0),
        C("position", "int64", "0-based character offset of the match in the normalised field", min=0),
        C("alias", "str", "The alias as matched (normalised: NFKC, case-folded, Simplified)"),
        C("rule", "str", "plain alias, or context alias (counts only with context)", enum=("plain", "context")),
        C("is_counted", "bool", "Whether the match makes the note mention the brand"),
        C(
            "context",
            "str",
            "For a counted context match: the category keyword or plain alias that confirmed it",
            nullable=True,
        ),
    ),
)

SEARCH_CATEGORIES = Table(
    "search_categories",
    grain="one (search, category) pair",
    key=("search_id", "category_id"),
    layer="derived",
    partition=None,
    columns=(C("search_id", "str", "Search id"), CATEGORY_ID),
)

# ---------------------------------------------------------------- ingestion bookkeeping

QUARANTINE = Table(
    "quarantine",
    grain="one rejected input row (or one unreadable file, row_number 0)",
    key=("run_id", "source_file", "row_number"),
    layer="warehouse",
    doc="Every input row that could not be accepted, with its reason. Never dropped.",
    columns=(
        C("dt", "date", "Delivery day"),
        C("source", "str", "Input table the file was meant for (notes, exposures, ...)"),
        C("platform", "str", "Platform folder, where the source has one", nullable=True),
        SOURCE_FILE,
        C("row_number", "int64", "1-based line (CSV/JSONL), element (JSON) or row (Parquet/SQLite); 0 = whole file", min=0),
        C("reason", "str", "Reason code"),
        C("message", "str", "Human-readable explanation"),
        C("raw", "str", "The raw content of the row, as text"),
        RUN_ID,
    ),
)

INGEST_FILES = Table(
    "ingest_files",
    grain="one landing file ingested by one run",
    key=("run_id", "source_file"),
    layer="warehouse",
    doc="Row accounting: input_rows = accepted_rows + quarantined_rows for every file, each "
    "counted on its own; the day's lake partition holds accepted_rows - collapsed_rows rows of "
    "the source, and its quarantine quarantined_rows - refused_rows records plus one per refused "
    "file.",
    columns=(
        C("dt", "date", "Delivery day"),
        C("source", "str", "Input table"),
        C("platform", "str", "Platform folder", nullable=True),
        SOURCE_FILE,
        C("format", "str", "Detected format (e.g. mediacrawler_json_v2026, csv_gb18030; symlink, not_a_file for refused entries)"),
        _count("input_rows", "Rows read: records for a file read record by record, refused_rows for a refused file"),
        _count("accepted_rows", "Rows that reached the lake partition (exact duplicates included)"),
        _count("quarantined_rows", "Rows sent to quarantine (a refused file's rows included)"),
        C(
            "file_bytes",
            "int64",
            "Size of the file in bytes; null when it was not opened (a link or a special file) "
            "or logged before 0.4.0",
            nullable=True,
            min=0,
            max=MAX_NULLABLE_INT,
        ),
        C(
            "refused_rows",
            "int64",
            "Rows of a file refused as a whole (one quarantine record, row 0, stands for them): "
            "the records read before it was refused, else the non-blank lines it holds (Parquet: "
            "its row count), at least 1; 0 for a file read record by record; null before 0.4.0",
            nullable=True,
            min=0,
            max=MAX_COUNT,
        ),
        C(
            "collapsed_rows",
            "int64",
            "Accepted rows equal in every column to an earlier accepted row of the delivery: "
            "stored once; null before 0.4.0",
            nullable=True,
            min=0,
            max=MAX_COUNT,
        ),
        RUN_ID,
    ),
)

# ---------------------------------------------------------------- warehouse (SPEC 6)

DT_EVENT = C("dt", "date", "Business day (Asia/Shanghai) the row belongs to")
IS_FINAL = C("is_final", "bool", "True once every window that feeds the row has closed")

FCT_TOUCHES = Table(
    "fct_touches",
    grain="one touch: a linked, brand-bearing exposure of a touch kind, per brand",
    key=("platform", "note_id", "ext_user_id", "touch_at", "kind", "brand_id"),
    layer="warehouse",
    columns=(
        DT_EVENT,
        USER_ID,
        BRAND_ID,
        C("touch_at", "ts", "Exposure time"),
        PLATFORM,
        NOTE_ID,
        AUTHOR_ID,
        EXT_USER_ID,
        C("kind", "str", "Exposure kind", enum=EXPOSURE_KINDS[1:]),
        C("vertical", "str", "Author's vertical (category_id), if known", nullable=True),
        RUN_ID,
    ),
)

FCT_SEARCH_PAIRS = Table(
    "fct_search_pairs",
    grain="one (search, category) pair",
    key=("search_id", "category_id"),
    layer="warehouse",
    columns=(
        DT_EVENT,
        C("search_id", "str", "Search id"),
        USER_ID,
        C("searched_at", "ts", "Search time"),
        CATEGORY_ID,
        C("seeded_brand_ids", "str", "|-joined sorted brands of the category the pair is seeded for"),
        C("converted_brand_ids", "str", "|-joined sorted brands of the category with a paid order in the conversion window"),
        C("is_seeded", "bool", "Seeded for at least one brand (a search-back, 回搜)"),
        C("is_converted", "bool", "Converts at category level"),
        C("last_touch_platform", "str", "Platform of the latest touch for any seeded brand before the search", nullable=True),
        IS_FINAL,
        RUN_ID,
    ),
)

FCT_SEEDED_ORDERS = Table(
    "fct_seeded_orders",
    grain="one seeded order",
    key=("order_id",),
    layer="warehouse",
    columns=(
        C("dt", "date", "Payment day"),
        C("order_id", "str", "Order id"),
        USER_ID,
        BRAND_ID,
        CATEGORY_ID,
        C("amount_fen", doc="Paid amount in fen", **AMOUNT),
        C("paid_at", "ts", "Payment time"),
        C("anchor_search_id", "str", "Latest seeded search of the brand's category in the conversion window"),
        C("anchor_searched_at", "ts", "Anchor search time"),
        C("touch_count", "int64", "Eligible touches", min=1),
        C("last_touch_platform", "str", "Platform of the last eligible touch", enum=PLATFORMS),
        C("is_vertical_match", "bool", "The last eligible touch's author vertical equals the brand's category"),
        RUN_ID,
    ),
)

FCT_ATTRIBUTION_CREDITS = Table(
    "fct_attribution_credits",
    grain="one (order, eligible touch, model)",
    key=("order_id", "model", "touch_seq"),
    layer="warehouse",
    columns=(
        C("dt", "date", "Payment day"),
        C("order_id", "str", "Order id"),
        C("model", "str", "Attribution model", enum=ATTRIBUTION_MODELS),
        C("touch_seq", "int64", "1-based position of the touch in (time, platform, note_id, kind, ext_user_id) order", min=1),
        USER_ID,
        BRAND_ID,
        C("touch_at", "ts", "Touch time"),
        PLATFORM,
        NOTE_ID,
        AUTHOR_ID,
        C("credit_fen", "float64", "Share of the order amount credited to the touch", min=0),
        RUN_ID,
    ),
)

_UPLIFT_COLUMNS = (
    _count("seeded_pairs", "Pairs seeded for the subject"),
    _count("seeded_conversions", "Seeded pairs that convert"),
    _count("baseline_pairs", "Pairs not seeded for the subject (shared by every platform)"),
    _count("baseline_conversions", "Baseline pairs that convert"),
    C("cvr_seeded", "float64", "seeded_conversions / seeded_pairs", nullable=True, min=0, max=1),
    C("cvr_baseline", "float64", "baseline_conversions / baseline_pairs", nullable=True, min=0, max=1),
    C("uplift", "float64", "cvr_seeded / cvr_baseline; null when any count is zero", nullable=True, min=0),
    C("uplift_ci_low", "float64", "95% interval, log method", nullable=True, min=0),
    C("uplift_ci_high", "float64", "95% interval, log method", nullable=True, min=0),
)

AGG_BRAND_FUNNEL_DAILY = Table(
    "agg_brand_funnel_daily",
    grain="one (day, brand, platform or 'all'); dense over the run's days and the brands",
    key=("dt", "brand_id", "platform"),
    layer="warehouse",
    columns=(
        DT_EVENT,
        BRAND_ID,
        C("platform", "str", "Platform, or 'all'", enum=PLATFORMS + (ALL,)),
        _count("exposed_users", "Distinct users with a touch for the brand that day"),
        _count("searched_back_users", "Of exposed_users, those with a seeded search within seed_window after their first touch that day"),
        C("search_back_rate", "float64", "searched_back_users / exposed_users (回搜率)", nullable=True, min=0, max=1),
        _count("search_back_users", "Distinct users with a pair seeded for the brand that day"),
        *_UPLIFT_COLUMNS,
        _count("seeded_orders", "Seeded orders of the brand paid that day"),
        _count("seeded_gmv_fen", "Their amount"),
        *(
            C(f"attributed_gmv_{m}_fen", "float64", f"Credits under {m}, by the touch's platform", min=0)
            for m in ATTRIBUTION_MODELS
        ),
        IS_FINAL,
        RUN_ID,
    ),
)

_UPLIFT_SUBJECT = (
    C("dt", "date", "Search day"),
    C("level", "str", "brand, category or all", enum=("brand", "category", "all")),
    C("subject_id", "str", "brand_id, category_id or 'all'"),
    C("slice", "str", "all, platform or vertical_match", enum=("all", "platform", "vertical_match")),
    C("slice_value", "str", "'all'; a platform; 'match' or 'mismatch'"),
)

AGG_CONVERSION_UPLIFT = Table(
    "agg_conversion_uplift",
    grain="one (search day, level, subject, slice, slice value); windows are sums of daily counts",
    key=("dt", "level", "subject_id", "slice", "slice_value"),
    layer="warehouse",
    doc="SPEC 5.7's naive uplift and SPEC 5.10's engagement-adjusted uplift side by side. Levels: "
    "brand, units (s, c(b)) of one brand b; all, those units of every brand pooled (how much more "
    "likely a seeded user is to buy the brand they were seeded with: the headline); category, "
    "pairs (s, c) seeded for any brand of c and converting at category level (another estimand). "
    "Over a window, sum the counts (naive) or the strata counts of agg_uplift_strata (adjusted) "
    "over its days and recompute.",
    columns=(
        *_UPLIFT_SUBJECT,
        *_UPLIFT_COLUMNS,
        C(
            "adjusted_uplift",
            "float64",
            "Engagement-adjusted uplift: Mantel-Haenszel risk ratio over the strata of "
            "agg_uplift_strata; null when either of its sums is 0",
            nullable=True,
            min=0,
        ),
        C(
            "adjusted_uplift_ci_low",
            "float64",
            "95% interval, Greenland-Robins variance (units of one user are not independent: "
            "too narrow)",
            nullable=True,
            min=0,
        ),
        C("adjusted_uplift_ci_high", "float64", "95% interval, Greenland-Robins variance", nullable=True, min=0),
        IS_FINAL,
        RUN_ID,
    ),
)

#: SPEC 5.10's activity bands: a user's searches in the activity window, banded. Each label starts
#: with the band's lowest count; a band runs up to the next one's.
ACTIVITY_BANDS: tuple[str, ...] = ("0", "1-2", "3-5", "6-10", "11+")


def activity_band_lows() -> tuple[int, ...]:
    """The lowest count of each band of ACTIVITY_BANDS ("3-5" -> 3, "11+" -> 11)."""
    return tuple(int(label.split("-")[0].rstrip("+")) for label in ACTIVITY_BANDS)


AGG_UPLIFT_STRATA = Table(
    "agg_uplift_strata",
    grain="one (search day, level, subject, slice, slice value, stratum) with at least one unit",
    key=("dt", "level", "subject_id", "slice", "slice_value", "stratum_id", "activity", "has_recent_order"),
    layer="warehouse",
    doc="The counts behind agg_conversion_uplift's adjusted figures (SPEC 5.10), so anyone can "
    "recompute them. A unit's stratum: its brand (its category at level category), the searching "
    "user's activity band and whether they have a recent paid order in the category. On a slice "
    "row the seeded counts are the slice's, the baseline counts the subject's whole baseline.",
    columns=(
        *_UPLIFT_SUBJECT,
        C("stratum_id", "str", "The unit's brand_id (levels brand and all) or category_id (level category)"),
        C(
            "activity",
            "str",
            "The user's distinct searches in [t_s - activity_window, t_s) (14 days by default), banded",
            enum=ACTIVITY_BANDS,
        ),
        C(
            "has_recent_order",
            "bool",
            "The user has a paid order (latest version) of the pair's category in that window",
        ),
        _count("seeded_pairs", "Seeded units of the stratum in the slice (n1)"),
        _count("seeded_conversions", "Of them, those that convert (a)"),
        _count("baseline_pairs", "Baseline units of the stratum, the subject's whole baseline (n0)"),
        _count("baseline_conversions", "Of them, those that convert (c)"),
        IS_FINAL,
        RUN_ID,
    ),
)

BRAND_BOOST_SIGNALS = Table(
    "brand_boost_signals",
    grain="one (as-of day, user, brand) among the user's 50 highest scores",
    key=("as_of_dt", "user_id", "brand_id"),
    layer="warehouse",
    partition="as_of_dt",
    columns=(
        C("as_of_dt", "date", "Signals as of the end of this day (next day 00:00 Asia/Shanghai)"),
        USER_ID,
        BRAND_ID,
        C("raw", "float64", "Sum of decayed kind weights", min=0),
        C("score", "float64", "1 - exp(-raw)", min=0, max=1),
        C("rank", "int64", "1 = highest score; ties to the smaller brand_id", min=1, max=50),
        RUN_ID,
    ),
)

#: Equal bins of agg_boost_scores over [0, 1]: [k/10, (k+1)/10), the last one [0.9, 1].
BOOST_SCORE_BINS = 10

AGG_BOOST_SCORES = Table(
    "agg_boost_scores",
    grain="one (as-of day, score bin) of brand_boost_signals",
    key=("as_of_dt", "bin_low"),
    layer="warehouse",
    partition="as_of_dt",
    doc="The distribution of a day's brand_boost_signals scores: how many signals fall in each of "
    "ten equal bins over [0, 1], with the day's signals, users and median score on every row. Derived "
    "from the day's whole snapshot whenever it is restated, so search and ads teams (and the report) "
    "read the shape of a day's boost without scanning its millions of rows.",
    columns=(
        C("as_of_dt", "date", "Signals as of the end of this day, as in brand_boost_signals"),
        C("bin_low", "float64", "Lower edge of the score bin (included)", min=0, max=1),
        C("bin_high", "float64", "Upper edge of the score bin (excluded; the last bin includes 1)", min=0, max=1),
        _count("signals", "The day's (user, brand) signals whose score falls in the bin"),
        _count("day_signals", "All of the day's (user, brand) signals"),
        _count("day_users", "Users with signals on the day (the rows of rank 1)"),
        C("day_median_score", "float64", "Median score of the day's signals (the mean of the middle two for an even count)", min=0, max=1),
        RUN_ID,
    ),
)

# ---------------------------------------------------------------- models over a reporting window (SPEC 5.11)

AS_OF_DT = C("as_of_dt", "date", "Snapshot as of the end of this day, fitted over the model_window days up to it")
WINDOW_START = C("window_start_dt", "date", "First day of the reporting window the snapshot covers")
ALL_MODELS = ATTRIBUTION_MODELS + DATA_DRIVEN_MODELS


def _interval(name: str, doc: str, **kw) -> tuple[Column, ...]:
    """A float figure with its 95% bootstrap interval (users resampled), all nullable."""
    return (
        C(name, "float64", doc, nullable=True, **kw),
        C(f"{name}_ci_low", "float64", f"95% bootstrap interval of {name}, users resampled", nullable=True, **kw),
        C(f"{name}_ci_high", "float64", f"95% bootstrap interval of {name}, users resampled", nullable=True, **kw),
    )


AGG_ATTRIBUTION_CHANNELS = Table(
    "agg_attribution_channels",
    grain="one (as-of day, model, channel kind, channel) over the reporting window",
    key=("as_of_dt", "model", "channel_kind", "channel"),
    layer="warehouse",
    partition="as_of_dt",
    doc="Every model's split of the seeded GMV of the reporting window (seeded orders paid in it) over "
    "channels: the five heuristic models of SPEC 5.6 and the data-driven Markov and Shapley models of "
    "5.11, with 95% intervals from a bootstrap over users (docs/attribution.md).",
    columns=(
        AS_OF_DT,
        WINDOW_START,
        C("model", "str", "Attribution model", enum=ALL_MODELS),
        C("channel_kind", "str", "platform, vertical (the author's) or creator", enum=CHANNEL_KINDS),
        C("channel", "str", "A platform; a vertical (category_id, or 'unknown'); a creator as platform:author_id ('(other)' pools the creators beyond max_creators)"),
        C("credit_fen", "float64", "Seeded GMV of the window credited to the channel", min=0),
        *_interval("share", "credit_fen / the model's credit over every channel of the kind", min=0, max=1),
        C("tied_with", "str", "Platforms and verticals: the channels of the same model and kind whose share cannot be told apart from this one (the bootstrap interval of the difference contains 0), |-joined; null for creators", nullable=True),
        C("markov_order", "int64", "Markov rows: the chain order k chosen on held-out users", nullable=True, min=1, max=3),
        RUN_ID,
    ),
)

AGG_COST = Table(
    "agg_cost",
    grain="one (as-of day, model, level, subject) over the reporting window",
    key=("as_of_dt", "model", "level", "subject_id"),
    layer="warehouse",
    partition="as_of_dt",
    doc="Spend of the reporting window against what it bought, per model: cost per touch, per "
    "search-back user and per seeded order, and ROAS, with 95% intervals from a bootstrap over "
    "users (docs/attribution.md says how spend and orders are assigned to a subject).",
    columns=(
        AS_OF_DT,
        WINDOW_START,
        C("model", "str", "Attribution model that assigns orders and GMV to subjects", enum=ALL_MODELS),
        C("level", "str", "platform, creator or brand", enum=COST_LEVELS),
        C("subject_id", "str", "A platform, a creator as platform:author_id ('(other)' pools the creators beyond max_creators) or a brand_id"),
        C("spend_fen", "float64", "Spend of the window assigned to the subject", min=0),
        C("touches", "float64", "Touches on the subject's notes in the window", min=0),
        C("search_back_users", "float64", "Distinct users with a seeded pair in the window whose last touch is the subject's", min=0),
        C("seeded_orders", "float64", "Seeded orders of the window credited to the subject (fractions of orders)", min=0),
        C("attributed_gmv_fen", "float64", "Seeded GMV of the window credited to the subject", min=0),
        *_interval("cost_per_touch", "spend_fen / touches; null without touches or spend", min=0),
        *_interval("cost_per_search_back_user", "spend_fen / search_back_users", min=0),
        *_interval("cost_per_seeded_order", "spend_fen / seeded_orders", min=0),
        *_interval("roas", "attributed_gmv_fen / spend_fen; null without spend", min=0),
        RUN_ID,
    ),
)

AGG_ROI_CURVE = Table(
    "agg_roi_curve",
    grain="one (as-of day, category, brand, x days)",
    key=("as_of_dt", "category_id", "brand_id", "x_days"),
    layer="warehouse",
    partition="as_of_dt",
    doc="ROI(T+x) per brand, as Xiaohongshu's AIPS measures return: a cohort of model_window touch "
    "and spend days ending x days before the as-of day, so every touch of it had x whole days to "
    "convert; its GMV is the linear-model credit of its touches from orders paid within x days of "
    "the touch, over the brand's spend of the cohort days. x in 1, 3, 7, 15, 30 and the category's "
    "own decision cycle (its seed window, rounded up).",
    columns=(
        AS_OF_DT,
        CATEGORY_ID,
        BRAND_ID,
        C("x_days", "int64", "Days after the touch an order may be paid to count", min=1),
        C("cohort_start_dt", "date", "First touch and spend day of the cohort"),
        C("cohort_end_dt", "date", "Last touch and spend day of the cohort: as_of_dt - x_days"),
        C("is_decision_cycle", "bool", "x_days is the category's own seed window (rounded up)"),
        C("is_complete", "bool", "The cohort lies within the data: it starts on or after the first data day"),
        C("gmv_fen", "float64", "Linear-model credit of the cohort's touches from orders paid within x_days of the touch", min=0),
        C("spend_fen", "float64", "The brand's spend of the cohort days", min=0),
        C("roi", "float64", "gmv_fen / spend_fen; null without spend", nullable=True, min=0),
        RUN_ID,
    ),
)

DQ_RESULTS = Table(
    "dq_results",
    grain="one validation result per (run, table, expectation)",
    key=("run_id", "table_name", "expectation"),
    layer="warehouse",
    columns=(
        C("dt", "date", "Day validated"),
        C("table_name", "str", "Table validated"),
        C("expectation", "str", "Expectation id"),
        C("severity", "str", "critical or warning", enum=("critical", "warning")),
        C("success", "bool", "Whether it passed"),
        C("observed", "str", "Observed value, as text", nullable=True),
        C("details", "str", "Details (JSON)", nullable=True),
        RUN_ID,
    ),
)

RESTATEMENTS = Table(
    "restatements",
    grain="one (run, funnel table, day) the run wrote: the day's rows before and after, and why",
    key=("run_id", "table_name", "dt"),
    layer="warehouse",
    doc=(
        "Every funnel-table day a run (re)wrote, so consumers know what to reprocess. A day is written "
        "only when its rows changed (SPEC 5, Arrival). Grows only."
    ),
    columns=(
        C("dt", "date", "The day (dt or as_of_dt) of table_name that was written"),
        C("table_name", "str", "Funnel table written"),
        _count("rows_before", "Rows the day held before the run (0 for a new day)"),
        _count("rows_after", "Rows the day holds after the run"),
        _count("rows_changed", "Rows removed plus rows added, all columns but run_id compared"),
        C("was_final", "bool", "Whether the day was already final before this run (a final row was restated)"),
        C(
            "caused_by",
            "str",
            "What changed: deliveries as source/dt=YYYY-MM-DD (space-separated), 'reference' (seeds), "
            "'settings' (funnel parameters), 'window' (a new latest delivery day: new days, rows turning final)",
        ),
        C("through_dt", "date", "W, the latest delivery day ingested when the run computed"),
        RUN_ID,
    ),
)

INPUT_TABLES = (NOTES, EXPOSURES, ID_LINKS, SEARCHES, ORDERS, SPEND, ITEMS)
#: Inputs a delivery may lack with nothing missing (money is paid when it is paid): no
#: freshness expectation on them (docs/quality.md).
OPTIONAL_INPUTS = (SPEND,)
SEED_TABLES = (BRANDS, CATEGORIES, CREATORS)
DERIVED_TABLES = (NOTE_BRANDS, NOTE_BRAND_EVIDENCE, SEARCH_CATEGORIES)
FUNNEL_TABLES = (
    FCT_TOUCHES,
    FCT_SEARCH_PAIRS,
    FCT_SEEDED_ORDERS,
    FCT_ATTRIBUTION_CREDITS,
    AGG_BRAND_FUNNEL_DAILY,
    AGG_CONVERSION_UPLIFT,
    AGG_UPLIFT_STRATA,
    BRAND_BOOST_SIGNALS,
)
#: SPEC 5.11 snapshots fitted over the reporting window from the funnel tables (and spend).
MODEL_TABLES = (AGG_ATTRIBUTION_CHANNELS, AGG_COST, AGG_ROI_CURVE)
#: Summaries derived from a funnel table's whole day as the marts hold it (after a scoped restatement too).
SUMMARY_TABLES = (AGG_BOOST_SCORES,)
#: Per-user funnel tables a run may restate for some users of a day only (SPEC 5, Arrival: a late
#: exposure, id link or note moves the boost snapshots of its users alone): table -> user column.
RESTATED_BY_USER = {BRAND_BOOST_SIGNALS.name: "user_id"}
#: Logs: they only grow. A run appends its own rows (replacing only rows of its own run_id).
LOG_TABLES = (DQ_RESULTS, QUARANTINE, INGEST_FILES, RESTATEMENTS)
#: Every table a run computes, restates, validates and publishes.
COMPUTED_TABLES = FUNNEL_TABLES + SUMMARY_TABLES + MODEL_TABLES
WAREHOUSE_TABLES = COMPUTED_TABLES + LOG_TABLES
TABLES: dict[str, Table] = {
    t.name: t for t in INPUT_TABLES + SEED_TABLES + DERIVED_TABLES + WAREHOUSE_TABLES
}


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}") from None


# ---------------------------------------------------------------- frames <-> Arrow
# In memory a table is a pandas DataFrame as ``pyarrow.Table.to_pandas()`` makes it by default
# (pandas 3: ``str`` strings, ``datetime64[us, UTC]``, dates as ``datetime.date`` objects).
# At every boundary (lake, warehouse, bucket files) it is conformed to its declaration here.


def _as(t: Table | str) -> Table:
    return t if isinstance(t, Table) else table(t)


def to_arrow(t: Table | str, df) -> pa.Table:
    """The frame as an Arrow table with exactly the declared columns, order and types.

    Raises ``ValueError`` naming the table and the columns when some are missing.
    """
    t = _as(t)
    missing = [n for n in t.names if n not in df.columns]
    if missing:
        raise ValueError(f"{t.name}: frame lacks column(s) {missing}; it has {list(df.columns)}")
    arrays = []
    for c in t.columns:
        col = df[c.name]
        typ = arrow_type(c.type)
        try:
            arr = pa.array(col, from_pandas=True)
            if not arr.type.equals(typ):
                arr = arr.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"{t.name}.{c.name}: cannot store as {c.type}: {e}") from e
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=t.arrow_schema())


def empty_frame(t: Table | str):
    """A frame with no rows and the declared columns."""
    return _as(t).arrow_schema().empty_table().to_pandas()


def conform(t: Table | str, df):
    """Round-trip through Arrow: declared columns, order and in-memory types."""
    return to_arrow(t, df).to_pandas()
