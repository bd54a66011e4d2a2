"""Run the committed suites on a day through GX Core; record, render and gate.

GX runs in an ephemeral context (nothing on disk but the Data Docs site): the suites come from
``expectations/``, the data from ``checks`` as pandas batches, thresholds from
``Settings.quality`` as suite parameters. Data Docs are rebuilt every run into
``settings.reports / "data_docs"``, their CDN assets served from the site itself
(``data_docs.py``). Every result becomes a ``dq_results`` row (deterministic:
no timestamps, samples in key order). A critical failure blocks publishing (``QualityGateError``);
warnings are recorded and do not block.

GX is imported inside functions only: importing it takes seconds, DAG parsing must not pay that.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from .. import lake, schemas
from ..settings import Settings
from . import checks, data_docs
from .suites import CRITICAL, EXPECTATIONS_DIR, WARNING, governing, load

DATA_DOCS_SITE = "seedfunnel"
SAMPLE_ROWS = 5

log = logging.getLogger(__name__)


class QualityGateError(RuntimeError):
    """A critical expectation failed: the day must not be published."""


def data_docs_dir(settings: Settings) -> Path:
    return settings.reports / "data_docs"


def data_docs_index(settings: Settings) -> Path:
    return data_docs_dir(settings) / "index.html"


@dataclass
class DayValidation:
    """The outcome of validating one day: one ``dq_results`` row per expectation."""

    day: date
    run_id: str
    results: pd.DataFrame
    samples: dict[tuple[str, str], list] = field(default_factory=dict)
    data_docs: Path | None = None

    @property
    def failed(self) -> pd.DataFrame:
        return self.results.loc[~self.results["success"].astype(bool)]

    @property
    def blocked(self) -> bool:
        return bool(self.failed["severity"].eq(CRITICAL).any())

    def counts(self) -> dict[str, object]:
        failed = self.failed
        return {
            "expectations": len(self.results),
            "failed_critical": int(failed["severity"].eq(CRITICAL).sum()),
            "failed_warning": int(failed["severity"].eq(WARNING).sum()),
            "data_docs": str(self.data_docs) if self.data_docs else "",
        }

    def message(self) -> str:
        """What failed, on which table, with sample rows: the text of the gate's exception."""
        crit = self.failed[self.failed["severity"].eq(CRITICAL)]
        lines = [
            f"data quality gate failed for {self.day} (run {self.run_id}): {len(crit)} critical "
            "expectation(s) failed, so the day was not published and the warehouse keeps its "
            "previous data. All results are in the warehouse table dq_results"
            + (f" and in Data Docs at {self.data_docs}" if self.data_docs else "")
            + "."
        ]
        for r in crit.itertuples(index=False):
            lines.append(f"- table {r.table_name}: {r.expectation} failed; observed {r.observed}{governed(r.details)}")
            sample = self.samples.get((r.table_name, r.expectation))
            if sample:
                lines.append("  sample rows: " + "; ".join(json.dumps(s, default=str, ensure_ascii=False) for s in sample))
        lines.append(
            "Fix the input (or, for a deliberate change, the setting named: [quality] in seedfunnel.toml or "
            "SEEDFUNNEL_QUALITY__<KEY>, docs/settings.md) and re-run the day."
        )
        return "\n".join(lines)


def governed(details: str | None) -> str:
    """``; setting quality.x = v, ...`` from a dq_results details JSON ("" when no setting governs it)."""
    try:
        named = json.loads(details or "{}").get("settings") or {}
    except ValueError:
        return ""
    return "; setting " + ", ".join(f"{k} = {v}" for k, v in named.items()) if named else ""


def _resolve(value, params: dict):
    if isinstance(value, dict) and "$PARAMETER" in value:
        return params[value["$PARAMETER"]]
    return value


def _import_gx():
    """GX, imported on first use, with usage statistics off (no network)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def _context(settings: Settings):
    """An ephemeral context: in-memory stores, no project folder, one Data Docs site of ours."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.config.analytics_enabled = False
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(ctx.list_data_docs_sites()):
        ctx.delete_data_docs_site(site)
    ctx.add_data_docs_site(
        DATA_DOCS_SITE,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(data_docs_dir(settings).resolve()),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return ctx


def _gx_suite(definition: dict):
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    suite = ExpectationSuite(name=definition["name"], meta=dict(definition.get("meta", {})))
    for e in definition["expectations"]:
        suite.add_expectation_configuration(
            ExpectationConfiguration(
                type=e["type"], kwargs=dict(e["kwargs"]), meta=dict(e["meta"]), severity=e["meta"]["severity"]
            )
        )
    return suite


def _format(v) -> str:
    if isinstance(v, float):
        return "null" if math.isnan(v) else f"{v:.6g}"
    return json.dumps(v, default=str, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)


def _observed(result: dict, exception: dict | None, frame: pd.DataFrame, kwargs: dict) -> str:
    if exception and exception.get("raised_exception"):
        return f"error: {exception.get('exception_message')}"
    if len(frame) == 1 and kwargs.get("column") in frame.columns:
        # One-row check frames (freshness, feed rates): the value itself says most.
        column = kwargs["column"]
        v = frame[column].iloc[0]
        shown = _format(float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else v)
        rate = column.removesuffix("_vs_history")
        if rate != column and {rate, f"{rate}_history_median"} <= set(frame.columns):
            # A feed rate against its history: say what the ratio compares.
            today, median = (float(frame[c].iloc[0]) for c in (rate, f"{rate}_history_median"))
            shown += f" ({rate} {_format(today)} against its trailing median {_format(median)})"
        if column in checks.COUNTED_RATES:
            # A counted share: how many of how many.
            _, count, base = checks.COUNTED_RATES[column]
            if {count, base} <= set(frame.columns):
                shown += f" ({int(frame[count].iloc[0])} {count} of {int(frame[base].iloc[0])} {base})"
        return shown
    if "observed_value" in result:
        return _format(result["observed_value"])
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected"
    return ""


def _sample(result: dict) -> list:
    rows = result.get("partial_unexpected_index_list") or result.get("partial_unexpected_list") or []
    return [r if isinstance(r, dict) else {"value": r} for r in rows[:SAMPLE_ROWS]]


def _run(ctx, gx, batch, definition: dict, name: str, frame: pd.DataFrame, params: dict, fmt, gx_run) -> dict:
    """Validate ``frame`` with one suite; returns the results by expectation id."""
    suite = ctx.suites.add(_gx_suite({**definition, "name": name}))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    outcome = vd.run(
        batch_parameters={"dataframe": frame}, expectation_parameters=params, result_format=fmt, run_id=gx_run
    )
    return {r.expectation_config.meta["id"]: r for r in outcome.results}


def validate_day(
    settings: Settings,
    day: date,
    run_id: str | None = None,
    *,
    suites_dir: Path = EXPECTATIONS_DIR,
    data_docs: bool = True,
) -> DayValidation:
    """Run every committed suite on ``day``'s frames; returns the results (does not gate)."""
    run_id = run_id or f"validate-{day.isoformat()}"
    tables = checks.table_frames(settings, day)
    frames = {**tables, **checks.check_frames(settings, day, tables)}
    suites = load(suites_dir)
    unknown = sorted(set(suites) - set(frames))
    if unknown:
        raise ValueError(
            f"{suites_dir}: suite file(s) {unknown} match no table or check frame; regenerate the "
            "suites with `python -m pipelines.quality.suites`"
        )

    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    ctx = _context(settings)
    source = ctx.data_sources.add_pandas("seedfunnel")
    params = settings.quality.parameters()
    gx_run = RunIdentifier(run_name=run_id)

    def governed_by(e: dict) -> dict[str, object]:
        return {f"quality.{n}": getattr(settings.quality, n) for n in governing(e)}

    rows: list[dict] = []
    samples: dict[tuple[str, str], list] = {}
    for name in sorted(suites):
        definition = suites[name]
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(day.isoformat())
        by_id = _run(ctx, gx, batch, definition, name, frames[name], params, "BASIC", gx_run)
        failed = [e for e in definition["expectations"] if not by_id[e["meta"]["id"]].success]
        if failed:
            # Sample rows cost GX several times more: fetched for the failed expectations only,
            # as a second validation ("<suite>__failed_rows") Data Docs show next to the first.
            index = [c for c in definition["meta"].get("index_columns", []) if c in frames[name].columns]
            fmt = {"result_format": "SUMMARY", "unexpected_index_column_names": index,
                   "partial_unexpected_count": SAMPLE_ROWS}
            subset = {**definition, "name": f"{name}__failed_rows", "expectations": failed}
            by_id.update(_run(ctx, gx, batch, subset, subset["name"], frames[name], params, fmt, gx_run))
        for e in definition["expectations"]:
            meta = e["meta"]
            r = by_id[meta["id"]]
            result = r.result or {}
            kwargs = {k: _resolve(v, params) for k, v in e["kwargs"].items()}
            sample = _sample(result) if not r.success else []
            if sample:
                samples[(meta["table"], f"{name}/{meta['id']}")] = sample
            rows.append(
                {
                    "dt": day,
                    "table_name": meta["table"],
                    "expectation": f"{name}/{meta['id']}",
                    "severity": meta["severity"],
                    "success": bool(r.success),
                    "observed": _observed(result, r.exception_info, frames[name], e["kwargs"]),
                    "details": json.dumps(
                        {"suite": name, "kwargs": kwargs, "settings": governed_by(e), "sample": sample},
                        default=str,
                        ensure_ascii=False,
                        sort_keys=True,
                    ),
                    "run_id": run_id,
                }
            )
    docs = _build_data_docs(settings, ctx) if data_docs else None
    results = schemas.conform(schemas.DQ_RESULTS, pd.DataFrame(rows))
    outcome = DayValidation(day, run_id, results, samples, docs)
    if docs is not None:
        _add_offline_summary(outcome)
    return outcome


def _build_data_docs(settings: Settings, ctx) -> Path:
    """Render the site afresh, its CDN assets served from the site itself; returns its index."""
    site = data_docs_dir(settings)
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True, exist_ok=True)
    ctx.build_data_docs(site_names=[DATA_DOCS_SITE])
    remote = data_docs.localize(site)
    if remote:  # a GX release that links an asset data_docs.CDN_FILES does not know yet
        log.warning("Data Docs still load %d address(es) from the network, e.g. %s in %s", len(remote), remote[0][1], remote[0][0])
    return data_docs_index(settings)


def _add_offline_summary(outcome: DayValidation) -> None:
    """Put a static summary of the validation at the top of the Data Docs index.

    The day's verdict and one row and link per suite, in plain HTML above GX's own (scripted) list
    of validations.
    """
    import html
    from urllib.parse import quote

    assert outcome.data_docs is not None
    root = outcome.data_docs.parent
    pages = {p.relative_to(root / "validations").parts[0]: p for p in sorted((root / "validations").rglob("*.html"))}
    res = outcome.results.assign(suite=outcome.results["expectation"].str.split("/").str[0])
    counts = outcome.counts()
    verdict = "blocked: not published" if outcome.blocked else "passed the gate"
    rows = []
    for suite, page in sorted(pages.items()):
        mine = res[res["suite"].eq(suite.removesuffix("__failed_rows"))]
        failed = mine[~mine["success"]]
        if suite.endswith("__failed_rows"):
            status = "sample rows of the failed expectations"
        elif failed.empty:
            status = "passed"
        else:
            status = f"FAILED: {failed['severity'].eq(CRITICAL).sum()} critical, {failed['severity'].eq(WARNING).sum()} warning"
        tables = ", ".join(sorted(set(mine["table_name"])))
        link = quote(str(page.relative_to(root)))
        rows.append(
            f'<tr><td><a href="{link}">{html.escape(suite)}</a></td><td>{html.escape(tables)}</td>'
            f"<td>{html.escape(status)}</td><td>{len(mine)}</td></tr>"
        )
    section = (
        '<section id="seedfunnel-latest-validation" style="margin:1rem 2rem">'
        f"<h2>Latest validation: {outcome.day} ({html.escape(outcome.run_id)})</h2>"
        f"<p>{counts['expectations']} expectations, {counts['failed_critical']} critical and "
        f"{counts['failed_warning']} warning failure(s); the day {verdict}. Every result is also in "
        "the warehouse table <code>dq_results</code>.</p>"
        '<table class="table table-sm"><tr><th>suite</th><th>table(s)</th><th>status</th>'
        "<th>expectations</th></tr>" + "".join(rows) + "</table></section>"
    )
    index = outcome.data_docs
    text = index.read_text(encoding="utf-8")
    index.write_text(text.replace("<body>", "<body>\n" + section, 1), encoding="utf-8")


def publish_results_only(settings: Settings, day: date, results: pd.DataFrame) -> int:
    """Write the day's dq_results alone, in its own transaction (the day is blocked)."""
    from .. import db, warehouse

    url = settings.resolved_warehouse_url()
    warehouse.check_connection(url)
    db.upgrade(url)
    engine = warehouse.make_engine(url)
    try:
        name = schemas.DQ_RESULTS.name
        return warehouse.publish(engine, {name: results}, {name: [day]})[name]
    finally:
        engine.dispose()


def gate(settings: Settings, day: date, run_id: str | None = None, *, data_docs: bool = True) -> dict[str, object]:
    """Validate ``day``, keep its results in the lake for publishing, and stop on critical failures.

    Blocked: the results are published alone (the other warehouse tables stay as they were) and
    ``QualityGateError`` names each failed expectation, its table and sample rows.
    """
    outcome = validate_day(settings, day, run_id, data_docs=data_docs)
    if outcome.blocked and not data_docs:  # a blocked day is always rendered
        outcome = validate_day(settings, day, run_id, data_docs=True)
    lake.write_partition(settings.lake, schemas.DQ_RESULTS.name, day, outcome.results)
    if outcome.blocked:
        publish_results_only(settings, day, outcome.results)
        raise QualityGateError(outcome.message())
    return outcome.counts()
