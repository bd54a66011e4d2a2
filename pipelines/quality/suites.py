"""The expectation suites, built from the schema declaration plus the semantic rules.

``python -m pipelines.quality.suites`` writes them to ``expectations/`` (one JSON file per suite,
GX's suite format without generated ids, so they are stable and reviewable);
``--check`` fails when a committed file differs from what the declaration generates.

Table suites (one per canonical input table and per published table) say, from ``schemas``:
the declared columns in order; the key not null and unique; enums; ranges
(money > 0 through ``min_exclusive``, rates within [0, 1]). Semantic rules that need more than
one column are column-pair expectations (uplift inside its interval, conversions <= pairs).
Check suites validate the derived frames of ``pipelines.quality.checks`` (credit sums, ingestion
reconciliation, freshness, feed rates). Thresholds are GX suite parameters (``$PARAMETER``)
filled from ``Settings.quality`` at run time, so the files do not change with the settings.

Every expectation carries ``severity`` (GX's own field, and in ``meta``), a stable ``meta.id``
and the table it speaks for (``meta.table``): that triple is what lands in ``dq_results``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .. import schemas
from ..settings import PROJECT_ROOT, QualityParams
from . import checks

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
CRITICAL, WARNING = "critical", "warning"
SEVERITIES = (CRITICAL, WARNING)
GENERATOR = "python -m pipelines.quality.suites"

#: Tables validated with a table suite, and their stored keys: declared in checks (what the frames are); named here too for the suites' readers.
VALIDATED_TABLES = checks.VALIDATED_TABLES
STORED_KEY = checks.STORED_KEY

#: (larger, smaller) column pairs that must hold row by row where both are present.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (
    ("uplift", "uplift_ci_low"),
    ("uplift_ci_high", "uplift"),
    ("adjusted_uplift", "adjusted_uplift_ci_low"),
    ("adjusted_uplift_ci_high", "adjusted_uplift"),
    ("seeded_pairs", "seeded_conversions"),
    ("baseline_pairs", "baseline_conversions"),
    ("exposed_users", "searched_back_users"),
    # SPEC 5.11: bootstrap intervals (percentile intervals need not contain the point estimate)
    *((f"{name}_ci_high", f"{name}_ci_low") for name in (
        "share", "cost_per_touch", "cost_per_search_back_user", "cost_per_seeded_order", "roas"
    )),
)


def _param(name: str) -> dict:
    if name not in {f.name for f in fields(QualityParams)}:
        raise KeyError(f"{name!r} is not a QualityParams field")
    return {"$PARAMETER": name}


def _target(kwargs: dict) -> str:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return "table"


def expectation(
    type_: str, severity: str, table: str, *, why: str | None = None, shaped_by: tuple[str, ...] = (), **kwargs
) -> dict:
    """One expectation in GX's suite-file shape, with our id, severity and table in ``meta``.

    ``shaped_by``: QualityParams fields that shape the observed value (not thresholds of the
    expectation), named with the thresholds wherever a failure is reported (``governing``).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    target = ",".join(kwargs["column_list"]) if type_ == "expect_compound_columns_to_be_unique" else _target(kwargs)
    meta = {"id": f"{type_}({target})", "severity": severity, "table": table}
    if why:
        meta["why"] = why
    known = {f.name for f in fields(QualityParams)}
    unknown = sorted(set(shaped_by) - known)
    if unknown:
        raise KeyError(f"{unknown} are not QualityParams fields")
    if shaped_by:
        meta["shaped_by"] = list(shaped_by)
    return {"type": type_, "kwargs": kwargs, "meta": meta, "severity": severity}


def governing(e: dict) -> list[str]:
    """The settings an expectation depends on: its thresholds, then what shapes its observed value."""
    named = [v["$PARAMETER"] for v in e["kwargs"].values() if isinstance(v, dict) and "$PARAMETER" in v]
    return named + [n for n in e["meta"].get("shaped_by", []) if n not in named]


def _range_kwargs(c: schemas.Column) -> dict:
    kw: dict = {"column": c.name}
    if c.min is not None:
        kw["min_value"] = c.min
        if c.min_exclusive:
            kw["strict_min"] = True
    if c.max is not None:
        kw["max_value"] = c.max
    return kw


def table_suite(t: schemas.Table) -> dict:
    """The suite of one table, derived from its declaration."""
    name = t.name
    ex = [
        expectation(
            "expect_table_columns_to_match_ordered_list",
            CRITICAL,
            name,
            column_list=t.names,
            why="the declared columns, in order (pipelines/schemas.py)",
        )
    ]
    key = STORED_KEY.get(name, t.key)
    if key:
        if len(key) == 1:
            ex.append(expectation("expect_column_values_to_be_unique", CRITICAL, name, column=key[0], why="key"))
        else:
            ex.append(
                expectation(
                    "expect_compound_columns_to_be_unique",
                    CRITICAL,
                    name,
                    column_list=list(key),
                    why="key" if key == t.key else "stored row identity",
                )
            )
    for c in t.columns:
        # Other non-nullable columns need no expectation: the typed Parquet lake refuses to write
        # a null into a non-nullable column (schemas.to_arrow), so every frame read has none.
        if not c.nullable and c.name in t.key:
            ex.append(expectation("expect_column_values_to_not_be_null", CRITICAL, name, column=c.name))
        if c.enum:
            ex.append(
                expectation("expect_column_values_to_be_in_set", CRITICAL, name, column=c.name, value_set=list(c.enum))
            )
        if c.min is not None or c.max is not None:
            ex.append(expectation("expect_column_values_to_be_between", CRITICAL, name, **_range_kwargs(c)))
    for a, b in ORDERED_PAIRS:
        if a in t.names and b in t.names:
            ex.append(
                expectation(
                    "expect_column_pair_values_a_to_be_greater_than_b",
                    CRITICAL,
                    name,
                    column_A=a,
                    column_B=b,
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                )
            )
    index = list(STORED_KEY.get(name, t.key) or t.key)
    return _suite(name, name, "table", index, ex, f"{t.name}: {t.grain}")


def _suite(name: str, table: str, kind: str, index: list[str], ex: list[dict], doc: str) -> dict:
    return {
        "name": name,
        "meta": {
            "table": table,
            "kind": kind,
            "index_columns": index,
            "doc": doc,
            "generated_by": GENERATOR,
        },
        "expectations": ex,
    }


def check_suites() -> dict[str, dict]:
    """Suites of the derived check frames (``pipelines.quality.checks``)."""
    out: dict[str, dict] = {}

    credits = schemas.FCT_ATTRIBUTION_CREDITS.name
    out[checks.CREDIT_SUMS] = _suite(
        checks.CREDIT_SUMS,
        credits,
        "check",
        ["order_id", "model"],
        [
            expectation(
                "expect_column_values_to_be_between",
                CRITICAL,
                credits,
                column="abs_diff_fen",
                min_value=0,
                max_value=_param("credit_tolerance_fen"),
                why="for every model the credits of a seeded order sum to its amount (SPEC 5.6)",
            )
        ],
        "one row per (seeded order, model): amount_fen, the sum of its credits and their difference",
    )

    ingest_files = schemas.INGEST_FILES.name
    out[checks.RECONCILIATION] = _suite(
        checks.RECONCILIATION,
        ingest_files,
        "check",
        ["source"],
        [
            expectation(
                "expect_column_values_to_be_between",
                CRITICAL,
                ingest_files,
                column="unaccounted_rows",
                min_value=0,
                max_value=0,
                why="input_rows = accepted_rows + quarantined_rows, each counted on its own",
            ),
            expectation(
                "expect_column_pair_values_to_be_equal",
                CRITICAL,
                ingest_files,
                column_A="lake_rows",
                column_B="stored_rows",
                ignore_row_if="either_value_is_missing",
                why="the lake partition holds exactly accepted_rows - collapsed_rows rows: every "
                "accepted row, exact duplicates once",
            ),
            expectation(
                "expect_column_pair_values_to_be_equal",
                CRITICAL,
                ingest_files,
                column_A="quarantine_lake_rows",
                column_B="quarantine_records",
                why="every quarantined row is in the quarantine partition (a refused file: one record)",
            ),
        ],
        "one row per input source of the day: ingest_files accounting against lake partition rows",
    )

    fresh: list[dict] = []
    for source in checks.FRESH_SOURCES:
        event = source in checks.EVENT_TIME
        fresh.append(
            expectation(
                "expect_column_values_to_be_between",
                CRITICAL if event else WARNING,
                source,
                column=checks.age_column(source),
                min_value=0,
                max_value=_param("max_event_delivery_age_days" if event else "max_dimension_delivery_age_days"),
                why="days since the latest day with a delivered file of the source",
            )
        )
        if event:
            fresh.append(
                expectation(
                    "expect_column_values_to_be_between",
                    WARNING,
                    source,
                    column=checks.lag_column(source),
                    max_value=_param("max_event_lag_hours"),
                    why="hours from the latest event of the day's delivery to the end of the day",
                )
            )
    out[checks.FRESHNESS] = _suite(
        checks.FRESHNESS, "sources", "check", ["dt"], fresh, "one row: delivery age and event lag of every source"
    )

    # Feed rates (docs/quality.md, "Feed rates"): critical only on a sudden drop against the feed's
    # own trailing history; the absolute floors and a missing history only warn.
    floors = {
        "id_link_rate": (_param("min_id_link_rate"), 1, "share of the settled cohort's external ids with an id link"),
        "orphan_exposure_rate": (0, _param("max_orphan_exposure_rate"), "share of the settled cohort's exposures of notes never delivered"),
        "unknown_brand_rate": (0, _param("max_unknown_brand_rate"), "share of the day's orders whose brand is not in brands.csv"),
        "quarantine_rate": (0, _param("max_quarantine_rate"), "quarantined rows / input rows of the day"),
    }
    settled = {"id_link_rate": ("link_settle_days",), "orphan_exposure_rate": ("note_settle_days",)}
    feed: list[dict] = []
    for rate, table, _ in checks.FEEDS:
        lo, hi, why = floors[rate]
        shaped = settled.get(rate, ())
        feed += [
            expectation(
                "expect_column_values_to_be_between",
                CRITICAL,
                table,
                column=checks.vs_history_column(rate),
                min_value=_param("feed_drop_ratio"),
                shaped_by=("feed_history_days", "feed_min_history_days", *shaped),
                why="the feed's working share against the median of its trailing history: a sudden drop",
            ),
            expectation(
                "expect_column_values_to_be_between",
                WARNING,
                table,
                column=checks.history_days_column(rate),
                min_value=_param("feed_min_history_days"),
                shaped_by=("feed_history_days", *shaped),
                why="days of trailing history: with fewer, a drop cannot be judged yet",
            ),
            expectation(
                "expect_column_values_to_be_between",
                WARNING,
                table,
                column=rate,
                min_value=lo,
                max_value=hi,
                shaped_by=shaped,
                why=why,
            ),
        ]
    # Counted shares of the day's delivery (docs/quality.md, "Unknown note types"): a ceiling that
    # only warns; the note is kept and counted, the day is published.
    ceilings = {
        "unknown_note_type_rate": (
            _param("max_unknown_note_type_rate"),
            "share of the day's delivered notes whose type code no exporter table lists (note_type "
            "unknown; the notes are kept): add the code to the exporter's type table",
        ),
    }
    for rate, (table, _, _) in checks.COUNTED_RATES.items():
        hi, why = ceilings[rate]
        feed.append(
            expectation("expect_column_values_to_be_between", WARNING, table, column=rate, min_value=0, max_value=hi, why=why)
        )
    out[checks.FEED_RATES] = _suite(
        checks.FEED_RATES,
        "sources",
        "check",
        ["dt"],
        feed,
        "one row: the day's feed rates, each with its days of history and its working share against them; "
        "the share of the day's notes of an unknown type, with its count",
    )
    return out


def build_suites() -> dict[str, dict]:
    """Every suite by name: table suites, then check suites."""
    suites = {t.name: table_suite(t) for t in VALIDATED_TABLES}
    suites.update(check_suites())
    for s in suites.values():
        ids = [e["meta"]["id"] for e in s["expectations"]]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"suite {s['name']}: duplicate expectation ids {sorted(dup)}")
    return suites


def render(suite: dict) -> str:
    return json.dumps(suite, indent=2, ensure_ascii=False) + "\n"


def suite_path(name: str, folder: Path = EXPECTATIONS_DIR) -> Path:
    return Path(folder) / f"{name}.json"


def write(folder: Path = EXPECTATIONS_DIR) -> list[Path]:
    """Write every suite file (and remove stale ones); returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suites = build_suites()
    for stale in folder.glob("*.json"):
        if stale.stem not in suites:
            stale.unlink()
    paths = []
    for name, s in suites.items():
        p = suite_path(name, folder)
        p.write_text(render(s), encoding="utf-8")
        paths.append(p)
    return paths


def stale_files(folder: Path = EXPECTATIONS_DIR) -> list[str]:
    """Suite files that differ from, are missing from, or are not in the generated set."""
    folder = Path(folder)
    suites = build_suites()
    out = [
        suite_path(n, folder).name
        for n, s in suites.items()
        if not suite_path(n, folder).exists() or suite_path(n, folder).read_text(encoding="utf-8") != render(s)
    ]
    out += [p.name for p in folder.glob("*.json") if p.stem not in suites]
    return sorted(out)


def load(folder: Path = EXPECTATIONS_DIR) -> dict[str, dict]:
    """The committed suites, by name (what validation runs)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no suites in {folder}; generate them with `{GENERATOR}`")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=GENERATOR, description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    ap.add_argument("--out", type=Path, default=EXPECTATIONS_DIR, help="folder of the suite files")
    args = ap.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        if stale:
            print(f"stale suite files in {args.out}: {', '.join(stale)}; run `{GENERATOR}`", file=sys.stderr)
            return 1
        return 0
    paths = write(args.out)
    print(f"wrote {len(paths)} suites to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
