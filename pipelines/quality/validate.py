"""Run the committed suites on a day through GX Core; record, render and gate.

GX runs in an ephemeral context (nothing on disk but the Data Docs site): the suites come from
``expectations/``, the data from ``checks`` as pandas batches, thresholds from
``Settings.quality`` as suite parameters. Data Docs are rebuilt into ``settings.reports /
"data_docs"`` when asked for (and always for a blocked day), their CDN assets served from the site
itself (``data_docs.py``). Every result becomes a ``dq_results`` row (deterministic: no
timestamps, samples in key order). A critical failure blocks publishing (``QualityGateError``);
warnings are recorded and do not block.

GX is imported inside functions only: importing it takes seconds, DAG parsing must not pay that.
One process keeps one GX context, its data source, batch definitions, built suites and GX's plan
of each suite (``_gx_runtime``, ``_Plan``): a day's validation builds none of them again, only
resolves the metrics on its frames. Without Data Docs, a table whose suite ``fast`` proves to
pass on its Arrow rows is not handed to GX at all; every failure is judged by GX
(docs/quality.md, "What a validation costs").
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import shutil
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from .. import lake, schemas
from ..settings import Settings
from . import checks, data_docs, fast
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
    _add_site(ctx, settings)
    return ctx


def _add_site(ctx, settings: Settings) -> None:
    """The context's one Data Docs site, ``data_docs_dir(settings)`` (any other removed)."""
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


@dataclass
class _GxRuntime:
    """What one process keeps of GX between validations: the context (its Data Docs site is
    ``site``), one pandas data source, a batch definition per (suite, day) and the GX suite built
    from each suite definition."""

    gx: Any
    ctx: Any
    site: str
    source: Any
    assets: dict[str, Any] = field(default_factory=dict)
    batches: dict[tuple[str, str], Any] = field(default_factory=dict)
    suites: dict[str, tuple[str, Any]] = field(default_factory=dict)
    #: What GX plans for a suite before it computes anything (``_Plan``), by (suite, parameters,
    #: result format, batch id).
    plans: dict[tuple, _Plan] = field(default_factory=dict)

    def batch(self, name: str, day: date):
        """The batch definition of suite ``name`` on ``day`` (its dataframe is passed at run time)."""
        key = (name, day.isoformat())
        if key not in self.batches:
            if name not in self.assets:
                self.assets[name] = self.source.add_dataframe_asset(name)
            self.batches[key] = self.assets[name].add_batch_definition_whole_dataframe(key[1])
        return self.batches[key]

    @staticmethod
    def suite_digest(definition: dict) -> str:
        return json.dumps(definition, sort_keys=True, default=str)

    def suite(self, definition: dict):
        """The GX suite of ``definition``, built once per process (rebuilt when the file changes)."""
        digest = self.suite_digest(definition)
        have = self.suites.get(definition["name"])
        if have is None or have[0] != digest:
            have = self.suites[definition["name"]] = (digest, _gx_suite(definition))
        return have[1]

    def clear_stores(self) -> None:
        """Forget the suites, validation definitions and results a Data Docs run stored."""
        for vd in list(self.ctx.validation_definitions.all()):
            self.ctx.validation_definitions.delete(vd.name)
        for suite in list(self.ctx.suites.all()):
            self.ctx.suites.delete(suite.name)
        store = self.ctx.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)


@dataclass
class _Plan:
    """GX's plan of one suite on one batch id, parameters and result format: the expectations'
    metric graphs, their configurations (parameters substituted), the expectations themselves and
    the metrics each reads. It depends on none of the data, and GX spends about 5 ms per
    expectation building it (validation dependencies, configurations rebuilt while it plans the
    metrics): made once per process, then each validation only resolves the metrics on its frame."""

    graphs: list
    configs: list
    expectations: list
    dependencies: list


_RUNTIME: _GxRuntime | None = None
_RUNTIME_LOCK = threading.Lock()


def _gx_runtime(settings: Settings) -> _GxRuntime:
    """The process's GX runtime, made on first use; a validation for another home points its
    Data Docs site at that home (the context, data source, batch definitions and suites stay).
    Callers hold ``_RUNTIME_LOCK``."""
    global _RUNTIME
    site = str(data_docs_dir(settings).resolve())
    if _RUNTIME is None:
        gx = _import_gx()
        ctx = _context(settings)
        _RUNTIME = _GxRuntime(gx, ctx, site, ctx.data_sources.add_pandas("seedfunnel"))
    elif _RUNTIME.site != site:
        _add_site(_RUNTIME.ctx, settings)
        _RUNTIME.site = site
    return _RUNTIME


@contextmanager
def _without_batch_fingerprint():
    """GX fingerprints every pandas batch by hashing all its values (a quarter of a second for the
    1.7 million boost rows of a 20k-user day) for the batch markers of a stored result, which only
    Data Docs show. A validation that renders no Data Docs skips it; nothing in ``dq_results``
    comes from it."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    before = getattr(engine, "HASH_THRESHOLD", None)
    if before is None:  # a GX release without the switch: fingerprinting as it does
        yield
        return
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = before


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


def _observed(result: dict, exception: dict | None, frame: pd.DataFrame | None, kwargs: dict) -> str:
    """``frame``: the frame validated; None for a suite proven by ``fast`` (never one row)."""
    if exception and exception.get("raised_exception"):
        return f"error: {exception.get('exception_message')}"
    if frame is not None and len(frame) == 1 and kwargs.get("column") in frame.columns:
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


def _run(rt: _GxRuntime, batch, definition: dict, frame: pd.DataFrame, params: dict, fmt, gx_run, store: bool) -> dict:
    """Validate ``frame`` with one suite; returns the results by expectation id.

    ``store``: through a validation definition, the result kept in the context for Data Docs;
    otherwise GX's validator alone (the same results, nothing stored).
    """
    if store:
        suite = rt.ctx.suites.add(_gx_suite(definition))
        vd = rt.ctx.validation_definitions.add(rt.gx.ValidationDefinition(name=definition["name"], data=batch, suite=suite))
        outcome = vd.run(
            batch_parameters={"dataframe": frame}, expectation_parameters=params, result_format=fmt, run_id=gx_run
        )
        return {r.expectation_config.meta["id"]: r for r in outcome.results}
    from great_expectations.validator.v1_validator import Validator

    validator = Validator(batch_definition=batch, batch_parameters={"dataframe": frame}, result_format=fmt)
    try:
        results = _planned(rt, validator, definition, params, fmt)
    except Exception:  # noqa: BLE001 - GX's own path below reports what went wrong, as it always did
        log.debug("suite %s: validated without the kept plan", definition["name"], exc_info=True)
        results = None
    if results is None:
        results = validator.validate_expectation_suite(rt.suite(definition), params).results
    return {r.expectation_config.meta["id"]: r for r in results}


def _planned(rt: _GxRuntime, validator, definition: dict, params: dict, fmt) -> list | None:
    """GX's results of ``definition`` on the validator's batch, as ``Validator.graph_validate``
    computes them, with the plan (``_Plan``) kept in the process: only the metrics are resolved on
    the frame, and each expectation judged on them. None when GX reports an error while planning
    or resolving (it then validates the suite itself, reporting it as before)."""
    import copy

    from great_expectations.core.result_format import ResultFormat
    from great_expectations.expectations.expectation_configuration import parse_result_format

    if validator._include_rendered_content:  # GX Cloud renders each result: its own path
        return None
    wrapped = validator._wrapped_validator
    engine = wrapped._execution_engine
    runtime = {"result_format": copy.copy(fmt)}
    key = (
        rt.suite_digest(definition), json.dumps(params, sort_keys=True, default=str),
        json.dumps(fmt, sort_keys=True, default=str), wrapped.active_batch_id,
    )
    plan = rt.plans.get(key)
    if plan is None:
        configs = wrapped.process_expectations_for_validation(rt.suite(definition).expectation_configurations, params)
        graphs, errors, processed = wrapped._generate_metric_dependency_subgraphs_for_each_expectation_configuration(
            expectation_configurations=configs, processed_configurations=[], catch_exceptions=True,
            runtime_configuration=runtime,
        )
        if errors:
            return None
        expectations = [c.to_domain_obj() for c in processed]
        dependencies = [
            e.get_validation_dependencies(execution_engine=engine, runtime_configuration=copy.deepcopy(runtime))
            for e in expectations
        ]
        plan = rt.plans[key] = _Plan(graphs, processed, expectations, dependencies)
    graph = wrapped._generate_suite_level_graph_from_expectation_level_sub_graphs(plan.graphs)
    metrics, errors, _ = wrapped._resolve_suite_level_graph_and_process_metric_evaluation_errors(
        graph=graph, runtime_configuration=runtime, expectation_validation_graphs=plan.graphs, evrs=[],
        processed_configurations=list(plan.configs), show_progress_bars=False,
    )
    if errors:
        return None
    results = []
    for expectation, deps in zip(plan.expectations, plan.dependencies, strict=True):
        # Expectation.metrics_validate, its validation dependencies kept.
        config = copy.deepcopy(runtime)
        config["result_format"] = deps.result_format
        if parse_result_format(config["result_format"]).get("result_format") == ResultFormat.BOOLEAN_ONLY:
            return None
        provided = {name: metrics[m.id] for name, m in deps.metric_configurations.items()}
        raw = expectation._validate(metrics=provided, runtime_configuration=config, execution_engine=engine)
        results.append(expectation._build_evr(raw_response=raw))
    return results


@dataclass
class _Proven:
    """The result of an expectation ``fast.suite_passes`` proved, shaped as GX's."""

    result: dict
    success: bool = True
    exception_info: dict | None = None


def _run_suites(
    rt: _GxRuntime, day: date, run_id: str, suites: dict, frames, params: dict, *, store: bool,
    proofs: dict[str, dict | None] | None = None,
) -> tuple[dict, set[str]]:
    """Every suite on its frame: GX's results by suite, then by expectation id; and the suites
    proven to pass by ``fast`` (``proofs``: ``_prove``'s results, without Data Docs only)."""
    from great_expectations.core.run_identifier import RunIdentifier

    gx_run = RunIdentifier(run_name=run_id)
    # Counts and observed values; the unexpected values of a failed expectation come from the second
    # validation below, so without Data Docs to show them GX need not list them here.
    first = "BASIC" if store else {"result_format": "BASIC", "partial_unexpected_count": 0}
    if store:
        rt.clear_stores()  # Data Docs show this validation only
    out: dict[str, dict] = {}
    proven: set[str] = set()
    for name in sorted(suites):
        definition = suites[name]
        passed = (proofs or {}).get(name)
        if passed is not None:
            out[name] = {i: _Proven(r) for i, r in passed.items()}
            proven.add(name)
            continue
        batch = rt.batch(name, day)
        by_id = _run(rt, batch, {**definition, "name": name}, frames[name], params, first, gx_run, store)
        failed = [e for e in definition["expectations"] if not by_id[e["meta"]["id"]].success]
        if failed:
            # Sample rows cost GX several times more: fetched for the failed expectations only,
            # as a second validation ("<suite>__failed_rows") Data Docs show next to the first,
            # on the frame in key order (the first rows that fail, by key).
            frame = checks.in_key_order(name, frames[name])
            index = [c for c in definition["meta"].get("index_columns", []) if c in frame.columns]
            fmt = {"result_format": "SUMMARY", "unexpected_index_column_names": index,
                   "partial_unexpected_count": SAMPLE_ROWS}
            subset = {**definition, "name": f"{name}__failed_rows", "expectations": failed}
            by_id.update(_run(rt, batch, subset, frame, params, fmt, gx_run, store))
        out[name] = by_id
    return out, proven


def _prove(pool: ThreadPoolExecutor, suites: dict, rows: dict[str, checks.TableRows], params: dict) -> dict[str, Future]:
    """``fast.suite_passes`` of every suite whose table was read as Arrow parts, on ``pool``: per
    suite, the results GX would give when it certainly passes, else None (GX validates it)."""
    out = {}
    for name in sorted(suites):
        table = rows.get(name)
        if table is not None and table.parts is not None and table.num_rows >= fast.MIN_ROWS:
            out[name] = pool.submit(
                fast.suite_passes, suites[name], table.parts, table.table.names, table.table.partition, params
            )
    return out


class _Frames(Mapping):
    """Suite name -> frame: check frames, then tables (a table's frame made when asked for)."""

    def __init__(self, tables: checks.TableFrames, checked: dict[str, pd.DataFrame]):
        self.tables, self.checked = tables, checked

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.checked[name] if name in self.checked else self.tables[name]

    def __iter__(self):
        return iter([*self.tables, *self.checked])

    def __len__(self) -> int:
        return len(self.tables) + len(self.checked)


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
    # Unsorted: only a suite with a failure needs its frame in key order (for its sample rows).
    # Without Data Docs the day's inputs and unpublished marts days are read as Arrow: a table
    # whose suite is proven to pass (``fast``) never becomes a pandas frame.
    suites = load(suites_dir)
    params = settings.quality.parameters()
    rows = checks.table_rows(settings, day, suites=None if data_docs else suites, params=params)
    tables = checks.TableFrames(rows)
    with ThreadPoolExecutor(max_workers=checks.READERS, thread_name_prefix="validate-prove") as pool:
        # Suites are proven in Arrow (``fast``) on threads while the check frames are made here.
        proofs = {} if data_docs else _prove(pool, suites, rows, params)
        checked = checks.check_frames(settings, day, tables)
        proofs = {name: p.result() for name, p in proofs.items()}
    unknown = sorted(set(suites) - set(rows) - set(checked))
    if unknown:
        raise ValueError(
            f"{suites_dir}: suite file(s) {unknown} match no table or check frame; regenerate the "
            "suites with `python -m pipelines.quality.suites`"
        )

    frames = _Frames(tables, checked)
    with _RUNTIME_LOCK:
        rt = _gx_runtime(settings)
        with nullcontext() if data_docs else _without_batch_fingerprint():
            by_suite, proven = _run_suites(rt, day, run_id, suites, frames, params, store=data_docs, proofs=proofs)
        docs = _build_data_docs(settings, rt.ctx) if data_docs else None

    def governed_by(e: dict) -> dict[str, object]:
        return {f"quality.{n}": getattr(settings.quality, n) for n in governing(e)}

    results: list[dict] = []
    samples: dict[tuple[str, str], list] = {}
    for name in sorted(suites):
        definition, by_id = suites[name], by_suite[name]
        for e in definition["expectations"]:
            meta = e["meta"]
            r = by_id[meta["id"]]
            result = r.result or {}
            kwargs = {k: _resolve(v, params) for k, v in e["kwargs"].items()}
            sample = _sample(result) if not r.success else []
            if sample:
                samples[(meta["table"], f"{name}/{meta['id']}")] = sample
            results.append(
                {
                    "dt": day,
                    "table_name": meta["table"],
                    "expectation": f"{name}/{meta['id']}",
                    "severity": meta["severity"],
                    "success": bool(r.success),
                    "observed": _observed(
                        result, r.exception_info, None if name in proven else frames[name], e["kwargs"]
                    ),
                    "details": json.dumps(
                        {"suite": name, "kwargs": kwargs, "settings": governed_by(e), "sample": sample},
                        default=str,
                        ensure_ascii=False,
                        sort_keys=True,
                    ),
                    "run_id": run_id,
                }
            )
    outcome = DayValidation(day, run_id, schemas.conform(schemas.DQ_RESULTS, pd.DataFrame(results)), samples, docs)
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
