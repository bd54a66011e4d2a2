"""Data quality: a clean simulated world passes every suite; injected defects fail exactly the
expectations they should; a critical failure blocks publishing and the warehouse keeps its data.

One small world (simulated, run through the runner for two days) is built once and shared by the
xdist workers (a file lock); each defect test mutates its own copy.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from browser import chromium, offline
from typer.testing import CliRunner

from pipelines import arrival, lake, runner, schemas, warehouse
from pipelines.cli import app
from pipelines.quality import checks, data_docs, suites
from pipelines.quality.validate import QualityGateError, data_docs_index, gate, validate_day
from pipelines.settings import QualityParams, Settings
from pipelines.simulate import simulate_world
from pipelines.simulate.arrival import ArrivalParams

START, RUN_DAYS, WORLD_DAYS, USERS = date(2026, 3, 1), 3, 4, 400
DAY = START + timedelta(days=RUN_DAYS - 1)  # the last day run, the one defects are planted in
EXPECTATIONS = sum(len(s["expectations"]) for s in suites.build_suites().values())


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """Landing zone of WORLD_DAYS days and a home where the first RUN_DAYS were run (built once)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if base.name.startswith("popen-gw") else base) / "quality_world"
    root.mkdir(exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            # In order: a clean baseline the defects below are planted in (test_arrival covers late data).
            simulate_world(
                root / "landing", users=USERS, days=WORLD_DAYS, start=START, seed=5, seeds_dir=Settings().seeds,
                arrival=ArrivalParams.in_order(),
            )
            runner.run_days(_settings(root), START, DAY, each_day=True)
            (root / "done").touch()
    return root


#: A four-day world has no week of feed history: its feeds are measured on their own day (links and
#: notes all arrive on the first day here) and a short history is not a warning. The defaults, and
#: a realistic world with weekly link batches, are tested in tests/test_gates.py.
SHORT_WORLD = QualityParams(link_settle_days=0, note_settle_days=0, feed_min_history_days=0)


def _settings(root: Path, home: Path | None = None, landing: Path | None = None) -> Settings:
    home = home or root / "home"
    # The SQLite file inside home, whatever SEEDFUNNEL_WAREHOUSE_URL says: copies must not share it.
    url = f"sqlite:///{home / 'warehouse.sqlite'}"
    return Settings(home=home, landing=landing or root / "landing", warehouse_url=url, quality=SHORT_WORLD)


def _copy(world: Path, tmp_path: Path) -> Settings:
    """A private copy of the world's home (lake, SQLite warehouse, reports)."""
    shutil.copytree(world / "home", tmp_path / "home")
    return _settings(world, home=tmp_path / "home")


def _copy_with_landing(world: Path, tmp_path: Path) -> tuple[Settings, Path]:
    """A private copy of the world's home and of its landing zone (to add a day's delivery to)."""
    landing = tmp_path / "landing"
    shutil.copytree(world / "landing", landing)
    return _copy(world, tmp_path).with_(landing=landing), landing


def _failed(outcome) -> set[tuple[str, str]]:
    f = outcome.failed
    return set(zip(f["table_name"], f["expectation"], strict=True))


def _warehouse(settings: Settings) -> dict[str, pd.DataFrame]:
    engine = warehouse.make_engine(settings.resolved_warehouse_url())
    try:
        return {t.name: warehouse.read_table(engine, t.name) for t in schemas.WAREHOUSE_TABLES}
    finally:
        engine.dispose()


def _assert_untouched(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> None:
    for name, frame in before.items():
        if name != schemas.DQ_RESULTS.name:
            pd.testing.assert_frame_equal(after[name], frame, obj=name)


# ---------------------------------------------------------------- suites are generated, not written


def test_committed_suites_equal_the_generated_ones():
    assert suites.stale_files() == [], "expectations/ is stale: run python -m pipelines.quality.suites"


def test_suites_follow_the_schema_declaration():
    built = suites.build_suites()
    assert set(built) == {t.name for t in suites.VALIDATED_TABLES} | set(checks.CHECKS)
    for t in suites.VALIDATED_TABLES:
        ex = {e["meta"]["id"]: e for e in built[t.name]["expectations"]}
        assert ex["expect_table_columns_to_match_ordered_list(table)"]["kwargs"]["column_list"] == t.names
        for c in t.columns:
            if c.enum:
                assert ex[f"expect_column_values_to_be_in_set({c.name})"]["kwargs"]["value_set"] == list(c.enum)
            if c.min is not None or c.max is not None:
                kw = ex[f"expect_column_values_to_be_between({c.name})"]["kwargs"]
                assert (kw.get("min_value"), kw.get("max_value"), kw.get("strict_min", False)) == (
                    c.min,
                    c.max,
                    c.min_exclusive,
                )
        key = suites.STORED_KEY.get(t.name, t.key)
        if key:
            for k in key if key == t.key else ():
                assert (f"expect_column_values_to_not_be_null({k})" in ex) == (not t.column(k).nullable)
            unique = "expect_column_values_to_be_unique" if len(key) == 1 else "expect_compound_columns_to_be_unique"
            assert f"{unique}({','.join(key)})" in ex
    # Money > 0, strictly; every expectation has a severity GX and dq_results both read.
    orders = {e["meta"]["id"]: e for e in built["orders"]["expectations"]}
    assert orders["expect_column_values_to_be_between(amount_fen)"]["kwargs"] == {
        "column": "amount_fen",
        "min_value": 0,
        "strict_min": True,
        "max_value": 10**12,  # SPEC 3: 0 < amount <= 10^12 fen
    }
    for s in built.values():
        for e in s["expectations"]:
            assert e["severity"] == e["meta"]["severity"] in suites.SEVERITIES
            assert e["meta"]["table"]


def test_thresholds_come_from_settings():
    used = {
        v["$PARAMETER"]
        for s in suites.build_suites().values()
        for e in s["expectations"]
        for v in e["kwargs"].values()
        if isinstance(v, dict)
    }
    assert used == set(Settings().quality.parameters())


# ---------------------------------------------------------------- a clean world


def test_a_clean_world_passes_every_suite_and_every_result_is_published(world):
    settings = _settings(world)
    dq = _warehouse(settings)[schemas.DQ_RESULTS.name]
    days = [START + timedelta(days=i) for i in range(RUN_DAYS)]
    assert sorted(dq["dt"].unique()) == days
    assert dq.groupby("dt").size().eq(EXPECTATIONS).all()
    bad = dq[~dq["success"]]
    assert bad.empty, bad[["dt", "table_name", "expectation", "observed"]].to_string()
    assert set(dq["severity"]) == {"critical", "warning"}
    # Real numbers, not vacuous passes: the day's frames have rows and the rates are observed.
    last = dq[dq["dt"].eq(DAY)].set_index("expectation")
    assert last.loc["check_feed_rates/expect_column_values_to_be_between(id_link_rate)", "observed"] != "null"
    tables = checks.table_frames(settings, DAY)
    for name in ("exposures", "orders", "fct_touches", "fct_attribution_credits", "agg_brand_funnel_daily"):
        assert len(tables[name]) > 0, name
    rates = checks.feed_rates(settings, DAY, tables).iloc[0]
    assert 0.5 < rates["id_link_rate"] < 1 and rates["orphan_exposure_rate"] == 0
    # The simulator writes known note type codes only: the notes delivered are counted, none unknown.
    delivered = tables["notes"][["platform", "note_id"]].drop_duplicates()
    assert (rates["delivered_notes"], rates["unknown_note_types"]) == (len(delivered), 0)
    assert rates["unknown_note_type_rate"] == (0 if len(delivered) else rates["unknown_note_type_rate"])


# ---------------------------------------------------------------- injected defects


def test_a_duplicated_key_fails_uniqueness_and_the_ingestion_reconciliation(world, tmp_path):
    settings = _copy(world, tmp_path)
    orders = lake.read_table(settings.lake, "orders", [DAY])
    assert len(orders) > 0
    lake.write_partition(settings.lake, "orders", DAY, pd.concat([orders, orders.iloc[[0]]], ignore_index=True))

    outcome = validate_day(settings, DAY, data_docs=False)
    assert _failed(outcome) == {
        ("orders", "orders/expect_column_values_to_be_unique(order_id)"),
        (
            "ingest_files",
            "check_ingest_reconciliation/expect_column_pair_values_to_be_equal(lake_rows,stored_rows)",
        ),
    }
    assert outcome.blocked
    row = outcome.results.set_index("expectation").loc["orders/expect_column_values_to_be_unique(order_id)"]
    assert row["observed"] == f"2 of {len(orders) + 1} rows unexpected"
    assert json.loads(row["details"])["sample"][0]["order_id"] == orders["order_id"].iloc[0]


def test_a_broken_id_link_feed_fails_the_drop_check_against_its_history(world, tmp_path):
    # The next day's delivery re-sends every link claim with its confidence in another unit (a
    # hundredth): each still arrives and is accepted, none clears min_link_confidence any more.
    settings, landing = _copy_with_landing(world, tmp_path)
    day = DAY + timedelta(days=1)
    claims = lake.read_table(settings.lake, "id_links")
    for platform, group in claims.groupby("platform"):
        folder = landing / "id_links" / platform / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        broken = group.assign(confidence=group["confidence"] / 100)[["platform", "ext_user_id", "user_id", "confidence"]]
        broken.to_json(folder / "links.jsonl", orient="records", lines=True, force_ascii=False)
    before = _warehouse(settings)

    with pytest.raises(QualityGateError) as err:
        runner.run_day(settings, day, report=False)
    drop = "check_feed_rates/expect_column_values_to_be_between(id_link_rate_vs_history)"
    floor = "check_feed_rates/expect_column_values_to_be_between(id_link_rate)"
    message = str(err.value)
    # The message names the check, the observed value and the settings that govern it.
    assert f"table id_links: {drop} failed; observed 0 (id_link_rate 0 against its trailing median 0." in message
    assert "setting quality.feed_drop_ratio = 0.5, quality.feed_history_days = 7" in message
    assert "quality.link_settle_days = 0" in message
    after = _warehouse(settings)
    _assert_untouched(before, after)
    dq = after[schemas.DQ_RESULTS.name]
    today = dq[dq["dt"].eq(day)]
    bad = today[~today["success"]]
    # The absolute floor only warns; the drop against the feed's own history blocks.
    assert set(zip(bad["table_name"], bad["expectation"], bad["severity"], strict=True)) == {
        ("id_links", drop, "critical"),
        ("id_links", floor, "warning"),
    }
    settings_of_floor = json.loads(bad.set_index("expectation").loc[floor, "details"])["settings"]
    assert settings_of_floor == {"quality.min_id_link_rate": 0.25, "quality.link_settle_days": 0}


#: Six Douyin notes in MediaCrawler's layout; three carry aweme_type codes no table lists yet.
UNKNOWN_TYPES = Path(__file__).resolve().parent / "fixtures" / "ingest" / "notes" / "mediacrawler_douyin_new_types.jsonl"


def test_notes_of_an_unknown_type_are_counted_as_a_warning_and_the_day_is_published(world, tmp_path):
    # The next day's delivery holds, besides the world's own files, an export of six notes, three
    # with type codes no exporter table lists: ingestion keeps them (note_type unknown).
    settings, landing = _copy_with_landing(world, tmp_path)
    day = DAY + timedelta(days=1)
    folder = landing / "notes" / "douyin" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(UNKNOWN_TYPES, folder / UNKNOWN_TYPES.name)
    before = _warehouse(settings)

    summary = runner.run_day(settings, day, report=False)  # the gate does not block

    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes", [day]))
    fixture = notes[notes["source_file"].str.endswith(UNKNOWN_TYPES.name)].set_index("note_id")["note_type"]
    assert fixture.to_dict() == {
        "7320000000000000101": "video", "7320000000000000102": "image", "7320000000000000103": "unknown",
        "7320000000000000104": "unknown", "7320000000000000105": "image", "7320000000000000106": "unknown",
    }
    unknown, delivered = int(notes["note_type"].eq("unknown").sum()), len(notes)
    assert unknown == 3 and delivered >= 6
    after = _warehouse(settings)
    dq = after[schemas.DQ_RESULTS.name]
    today = dq[dq["dt"].eq(day)]
    assert len(today) == EXPECTATIONS and today["run_id"].nunique() == 1
    bad = today[~today["success"]]
    check = "check_feed_rates/expect_column_values_to_be_between(unknown_note_type_rate)"
    # The one failure of the day: a warning on the notes, with the count and the rate.
    assert set(zip(bad["table_name"], bad["expectation"], bad["severity"], strict=True)) == {("notes", check, "warning")}
    row = bad.iloc[0]
    rate = unknown / delivered
    assert row["observed"] == f"{rate:.6g} ({unknown} unknown_note_types of {delivered} delivered_notes)"
    details = json.loads(row["details"])
    assert details["kwargs"] == {"column": "unknown_note_type_rate", "min_value": 0, "max_value": 0.0}
    assert details["settings"] == {"quality.max_unknown_note_type_rate": 0.0}
    frame = checks.feed_rates(settings, day).iloc[0]
    assert (frame["unknown_note_types"], frame["delivered_notes"]) == (unknown, delivered)
    assert frame["unknown_note_type_rate"] == pytest.approx(rate)
    # The day was published: its figures reached the warehouse with the warning.
    assert summary.published[schemas.DQ_RESULTS.name] == EXPECTATIONS
    assert summary.published[schemas.AGG_BRAND_FUNNEL_DAILY.name] > 0
    assert day in set(after[schemas.AGG_BRAND_FUNNEL_DAILY.name]["dt"])
    assert len(after[schemas.DQ_RESULTS.name]) == len(before[schemas.DQ_RESULTS.name]) + EXPECTATIONS
    # Validated on demand (what `seedfunnel validate` does): the same warning, not blocking, and
    # Data Docs show it in the feed-rate validation.
    outcome = validate_day(settings, day)
    assert not outcome.blocked and set(outcome.failed["expectation"]) == {check}
    html = data_docs_index(settings).read_text(encoding="utf-8")
    assert re.search(r">check_feed_rates</a></td><td>[^<]*\bnotes\b[^<]*</td><td>FAILED: 0 critical, 1 warning</td>", html)
    # A ceiling above the day's rate (a setting, no code change) passes the same day.
    loose = settings.with_(quality=dataclasses.replace(SHORT_WORLD, max_unknown_note_type_rate=0.9))
    outcome = validate_day(loose, day, data_docs=False)
    assert outcome.results.set_index("expectation").loc[check, "success"] and outcome.failed.empty


def test_credits_that_do_not_sum_block_publishing_and_keep_the_warehouse(world, tmp_path):
    settings = _copy(world, tmp_path)
    marts = settings.lake / runner.MARTS
    name = schemas.FCT_ATTRIBUTION_CREDITS.name
    d = max(p for p in lake.partitions(marts, name) if len(lake.read_table(marts, name, [p])))
    credits = lake.read_table(marts, name, [d])
    broken = credits.copy()
    broken.loc[0, "credit_fen"] += 100.0
    lake.write_partition(marts, name, d, broken)
    before = _warehouse(settings)

    with pytest.raises(QualityGateError) as err:
        gate(settings, DAY)
    failed_id = "check_credit_sums/expect_column_values_to_be_between(abs_diff_fen)"
    message = str(err.value)
    assert f"table fct_attribution_credits: {failed_id} failed" in message
    assert "sample rows" in message and credits.loc[0, "order_id"] in message
    after = _warehouse(settings)
    _assert_untouched(before, after)
    dq = after[schemas.DQ_RESULTS.name]
    old_runs = set(before[schemas.DQ_RESULTS.name]["run_id"])
    blocked = dq[~dq["run_id"].isin(old_runs)]
    assert len(blocked) == EXPECTATIONS and set(blocked["dt"]) == {DAY}
    assert set(blocked.loc[~blocked["success"], "expectation"]) == {failed_id}
    # dq_results is a log: every earlier run's results stay as they were.
    key = list(schemas.DQ_RESULTS.key)
    earlier = [f[f["run_id"].isin(old_runs)].sort_values(key, ignore_index=True) for f in (dq, before[schemas.DQ_RESULTS.name])]
    assert len(earlier[0]) == RUN_DAYS * EXPECTATIONS
    pd.testing.assert_frame_equal(*earlier)


def test_a_day_of_missing_orders_stops_run_day_before_publish(world, tmp_path):
    settings = _copy(world, tmp_path)
    landing = tmp_path / "landing"
    shutil.copytree(world / "landing", landing)
    day = DAY + timedelta(days=1)
    shutil.rmtree(landing / "orders" / f"dt={day}")
    settings = settings.with_(landing=landing)
    before = _warehouse(settings)

    with pytest.raises(QualityGateError) as err:
        runner.run_day(settings, day)
    failed_id = "check_freshness/expect_column_values_to_be_between(orders_delivery_age_days)"
    assert f"table orders: {failed_id} failed; observed 1; setting quality.max_event_delivery_age_days = 0\n" in str(err.value)
    after = _warehouse(settings)
    _assert_untouched(before, after)
    dq = after[schemas.DQ_RESULTS.name]
    today = dq[dq["dt"].eq(day)]
    bad = today[~today["success"]]
    assert set(zip(bad["table_name"], bad["expectation"], strict=True)) == {("orders", failed_id)}
    assert len(today) == EXPECTATIONS
    # The blocked day is rendered: Data Docs show its failed validation.
    html = (data_docs_index(settings)).read_text(encoding="utf-8")
    assert "check_freshness" in html and f"run-{day}" in html


# ---------------------------------------------------------------- on demand, and Data Docs


def test_cli_validate_prints_the_results_and_exits_1_on_a_critical_failure(world, tmp_path, monkeypatch):
    from pipelines import cli

    monkeypatch.setattr(cli.console, "_width", 250)  # the table must not fold the expectation ids
    settings = _copy(world, tmp_path)
    orders = lake.read_table(settings.lake, "orders", [DAY])
    lake.write_partition(settings.lake, "orders", DAY, orders.assign(amount_fen=0))
    # The world's quality settings, as a settings file (no code).
    config = tmp_path / "seedfunnel.toml"
    config.write_text(
        "[quality]\n" + "".join(f"{k} = {getattr(SHORT_WORLD, k)}\n" for k in ("link_settle_days", "note_settle_days", "feed_min_history_days")),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app, ["--config", str(config), "validate", "--date", DAY.isoformat(), "--home", str(settings.home)]
    )
    assert result.exit_code == 1, result.output
    assert "orders/expect_column_values_to_be_between(amount_fen)" in result.output
    assert "1 critical and 0 warning failure(s)" in result.output
    assert data_docs_index(settings).exists()


def test_data_docs_load_nothing_from_the_network_and_vendor_what_gx_asked_for(world):
    site = data_docs_index(_settings(world)).parent
    assert data_docs.external_resources(site) == []
    # Every address GX writes is served by a vendored file, shipped with its package's license.
    for url, file in data_docs.CDN_FILES.items():
        assert (site / data_docs.SITE_VENDOR / file).is_file(), url
        package = data_docs.VENDOR_DIR / Path(file).parts[0]
        assert list(package.glob("LICENSE*")), f"{package.name} ships no license"
    # The files are the ones GX asked for: where its templates pin a hash (subresource integrity),
    # the vendored file has it.
    gx = Path(importlib.util.find_spec("great_expectations").submodule_search_locations[0])  # not imported: slow
    templates = gx / "render" / "view" / "templates"
    pinned = re.findall(r'src="([^"]+)" integrity="(sha384-[^"]+)"', (templates / "js_script_imports.j2").read_text())
    assert len(pinned) >= 2
    for url, integrity in pinned:
        digest = hashlib.sha384((data_docs.VENDOR_DIR / data_docs.CDN_FILES[url]).read_bytes()).digest()
        assert "sha384-" + base64.b64encode(digest).decode() == integrity, url


# Bootstrap, bootstrap-table (scripted), Font Awesome and Vega, as a page of the site shows them.
DATA_DOCS_PROBE = """async () => {
  await document.fonts.ready;
  const style = (sel, prop) => { const e = document.querySelector(sel); return e && getComputedStyle(e)[prop]; };
  return {
    navbar: style('nav.navbar', 'display'),
    container: style('.container-fluid', 'paddingLeft'),
    tables: document.querySelectorAll('div.bootstrap-table').length,
    icons: document.fonts.check('900 16px "Font Awesome 6 Free"'),
    vega: typeof vegaEmbed,
    logo: Array.from(document.images).every(i => i.complete && i.naturalWidth > 0),
  };
}"""


def test_data_docs_render_styled_offline_and_show_the_latest_validation(world):
    settings = _settings(world)
    engine = warehouse.make_engine(settings.resolved_warehouse_url())
    try:
        dq = warehouse.read_table(engine, schemas.DQ_RESULTS.name)
    finally:
        engine.dispose()
    today = dq[dq["dt"].eq(DAY)]
    (run_id,) = today["run_id"].unique()
    failed = today[~today["success"]]
    index = data_docs_index(settings)
    with chromium() as browser, offline(browser, index.parent) as visit:
        page = visit.page
        page.goto(index.resolve().as_uri())
        # The summary is static HTML above GX's scripted list.
        summary = page.locator("#seedfunnel-latest-validation")
        assert f"Latest validation: {DAY} ({run_id})" in summary.inner_text()
        assert (
            f"{EXPECTATIONS} expectations, {failed['severity'].eq('critical').sum()} critical and "
            f"{failed['severity'].eq('warning').sum()} warning failure(s)"
        ) in summary.inner_text()
        links = summary.locator("a")
        assert sorted(links.all_inner_texts()) == sorted(suites.build_suites())
        styled = {"navbar": "flex", "container": "48px", "icons": True, "vega": "function", "logo": True}
        shown = page.evaluate(DATA_DOCS_PROBE)
        assert {k: shown[k] for k in styled} == styled and shown["tables"] >= 1
        # GX's own list of validations, filled in by bootstrap-table from the page's data.
        assert page.locator("div.bootstrap-table tbody tr").count() >= 10

        summary.locator("a", has_text="check_credit_sums").click()
        page.wait_for_load_state("load")
        body = page.inner_text("body")
        assert "Succeeded" in body and "abs_diff_fen" in body
        shown = page.evaluate(DATA_DOCS_PROBE)
        assert {k: shown[k] for k in styled} == styled and shown["tables"] >= 1
    # Both pages read files of the site only; nothing tried to leave the machine, nothing failed.
    assert len(visit.requests) > 20
    assert visit.outside() == [] and visit.blocked == [] and visit.failed == []
    assert visit.problems == []


def test_cli_validate_explains_itself_and_a_day_never_run(tmp_path):
    help_ = CliRunner().invoke(app, ["validate", "--help"])
    assert help_.exit_code == 0 and "Data Docs" in help_.output
    never = CliRunner().invoke(app, ["validate", "--date", "2026-01-01", "--home", str(tmp_path)])
    assert never.exit_code == 2 and "never ingested" in never.output and "seedfunnel run" in never.output


def test_a_lake_partition_short_of_one_row_fails_the_exact_reconciliation(world, tmp_path):
    # The lake holds exactly accepted - collapsed rows; a bound (lake <= accepted) let a partition
    # that kept one row of a million pass.
    settings = _copy(world, tmp_path)
    exposures = lake.read_table(settings.lake, "exposures", [DAY])
    assert len(exposures) > 10
    lake.write_partition(settings.lake, "exposures", DAY, exposures.iloc[1:])

    outcome = validate_day(settings, DAY, data_docs=False)
    assert _failed(outcome) == {
        ("ingest_files", "check_ingest_reconciliation/expect_column_pair_values_to_be_equal(lake_rows,stored_rows)")
    }
    assert outcome.blocked


def test_a_row_lost_inside_ingestion_fails_input_equals_accepted_plus_quarantined(world, tmp_path, monkeypatch):
    # accepted_rows is counted from the rows that reach the partition, so the check can fail.
    from pipelines.ingest import day as ingest

    settings = _copy(world, tmp_path)
    original = ingest._quarantine_rows

    def lossy(out, frame, checks, run_id):
        original(out, frame, checks, run_id)
        if out.ctx.source == "exposures" and len(out.accepted):
            out.accepted = out.accepted.iloc[1:]

    monkeypatch.setattr(ingest, "_quarantine_rows", lossy)
    ingest.ingest_day(settings, DAY)
    outcome = validate_day(settings, DAY, data_docs=False)
    assert _failed(outcome) == {
        ("ingest_files", "check_ingest_reconciliation/expect_column_values_to_be_between(unaccounted_rows)")
    }


# ---------------------------------------------------------------- the warm path


def test_one_gx_context_per_process_and_samples_in_key_order_whatever_the_lake_order(world, tmp_path):
    from pipelines.quality import validate

    settings = _copy(world, tmp_path)
    first = validate_day(settings, DAY, data_docs=False)
    runtime = validate._RUNTIME
    assert runtime is not None and first.failed.empty
    # The same day again: the same context, data source and batch definitions, the same results.
    again = validate_day(settings, DAY, data_docs=False)
    assert validate._RUNTIME is runtime and validate._RUNTIME.ctx is runtime.ctx
    pd.testing.assert_frame_equal(again.results, first.results)

    # Frames are validated in the lake's order; a failing suite's rows are sampled in key order.
    orders = lake.read_table(settings.lake, "orders", [DAY])
    twice = sorted(orders["order_id"])[:2]
    reversed_ = pd.concat([orders, orders[orders["order_id"].isin(twice)]], ignore_index=True).iloc[::-1]
    lake.write_partition(settings.lake, "orders", DAY, reversed_.reset_index(drop=True))
    outcome = validate_day(settings, DAY, data_docs=False)
    row = outcome.results.set_index("expectation").loc["orders/expect_column_values_to_be_unique(order_id)"]
    assert not row["success"] and row["observed"] == f"4 of {len(orders) + 2} rows unexpected"
    assert [s["order_id"] for s in json.loads(row["details"])["sample"]] == [twice[0], twice[0], twice[1], twice[1]]
    assert validate._RUNTIME is runtime
    # GX's batch fingerprint, skipped while validating without Data Docs, is back on.
    from great_expectations.execution_engine import pandas_execution_engine

    assert pandas_execution_engine.HASH_THRESHOLD > 0


def test_feed_rates_measured_once_per_process_until_a_file_they_read_changes(world, tmp_path):
    settings = _copy(world, tmp_path)
    days = [START + timedelta(days=i) for i in range(RUN_DAYS)]
    measured = checks.daily_feed_rates(settings, days)
    assert checks.daily_feed_rates(settings, days).equals(measured)
    # A changed partition (an order of a brand brands.csv does not know) is measured again.
    orders = lake.read_table(settings.lake, "orders", [DAY])
    orders.loc[orders.index[0], "brand_id"] = "b_nobody_knows"
    lake.write_partition(settings.lake, "orders", DAY, orders)
    after = checks.daily_feed_rates(settings, days)
    assert after.loc[DAY, "unknown_brand_rate"] == pytest.approx(measured.loc[DAY, "unknown_brand_rate"] + 1 / len(orders))
    assert after.drop(index=DAY).equals(measured.drop(index=DAY))
    checks._MEASURED_RATES.clear()
    assert checks.daily_feed_rates(settings, days).equals(after)


# ---------------------------------------------------------------- proofs of a pass (fast.py)


def _gx_results(settings: Settings, name: str, frame: pd.DataFrame) -> dict:
    """GX's own results of suite ``name`` on ``frame``, by expectation id (counts, no samples)."""
    from pipelines.quality import validate

    definition = {**suites.load()[name], "name": name}
    fmt = {"result_format": "BASIC", "partial_unexpected_count": 0}
    with validate._RUNTIME_LOCK:
        rt = validate._gx_runtime(settings)
        with validate._without_batch_fingerprint():
            return validate._run(rt, rt.batch(name, DAY), definition, frame, settings.quality.parameters(), fmt, None, False)


def _proof(settings: Settings, name: str, frame: pd.DataFrame, folder: Path) -> dict | None:
    """``fast.suite_passes`` on ``frame`` written as the lake writes it (one Parquet file per day)
    and read back as validation reads it (``checks._file_parts``; past ``checks.STREAM_ROWS``, a
    file when the proof comes to it)."""
    from pipelines.quality import fast

    t = schemas.table(name)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    days = sorted(set(frame[t.partition])) if t.partition else [None]
    for d in days:
        rows = frame[frame[t.partition].eq(d)] if d is not None else frame
        path = folder / f"{d}.parquet"
        data = pa.Table.from_arrays(schemas.to_arrow(t, rows).columns, names=t.names)  # nulls allowed: planted
        pq.write_table(data, path, row_group_size=max(2, len(rows) // 2))  # several row groups and dictionaries
        files.append((d, path, None))
    definition = suites.load()[name]
    parts = checks._file_parts(t, files, definition, settings.quality.parameters())
    assert parts is not None
    return fast.suite_passes(definition, parts, t.names, t.partition, settings.quality.parameters())


def _plant(frame: pd.DataFrame, defect: str, t: schemas.Table) -> pd.DataFrame:
    out = frame.copy()
    key = checks.stored_key(t)
    if defect == "clean":
        return out
    if defect == "repeated key":
        return pd.concat([out, out.iloc[[len(out) // 2]]], ignore_index=True)
    if defect == "null key":
        out[key[-1]] = out[key[-1]].astype(object)
        out.loc[out.index[1], key[-1]] = None
        return out
    if defect == "out of range":
        c = next(c for c in t.columns if c.max is not None or c.min is not None)
        out[c.name] = out[c.name].astype("float64") if c.type == "float64" else out[c.name]
        out.loc[out.index[0], c.name] = (c.max + 1) if c.max is not None else (c.min - 1)
        return out
    if defect == "outside the set":
        c = next(c for c in t.columns if c.enum)
        out[c.name] = out[c.name].astype(object)
        out.loc[out.index[0], c.name] = "no_such_value"
        return out
    raise AssertionError(defect)


PROVED_TABLES = ("brand_boost_signals", "exposures", "agg_brand_funnel_daily", "fct_touches", "agg_cost", "orders")
PLANTED = [
    (name, defect)
    for name in PROVED_TABLES
    for defect, applies in (
        ("clean", True),
        ("repeated key", True),
        ("null key", True),
        ("out of range", any(c.min is not None or c.max is not None for c in schemas.table(name).columns)),
        ("outside the set", any(c.enum for c in schemas.table(name).columns)),
    )
    if applies
]


@pytest.mark.parametrize(
    ("name", "defect", "streamed"),
    [(*p, False) for p in PLANTED] + [(*p, True) for p in PLANTED if p[0] in ("brand_boost_signals", "fct_touches")],
)
def test_a_pass_is_proven_only_where_gx_passes_with_the_same_results(world, tmp_path, monkeypatch, name, defect, streamed):
    # ``streamed``: every table read a file at a time, when the proof comes to it (a table of
    # more than ``checks.STREAM_ROWS`` rows).
    monkeypatch.setattr(checks, "STREAM_ROWS", 0 if streamed else checks.STREAM_ROWS)
    settings = _settings(world)
    t = schemas.table(name)
    frame = checks.table_frames(settings, DAY)[name]
    if len(frame) < 4:
        frame = lake.read_table(settings.lake / runner.MARTS if t in schemas.COMPUTED_TABLES else settings.lake, name)
    assert len(frame) >= 4, name
    planted = _plant(frame, defect, t)
    proof = _proof(settings, name, planted, tmp_path / "files")
    try:
        as_read = schemas.conform(t, planted)
    except ValueError:  # a null the lake would refuse: GX judges the frame as planted
        as_read = planted
    gx = _gx_results(settings, name, as_read)
    if defect == "clean":
        assert proof is not None, "a clean frame is proven to pass"
    if proof is None:
        assert defect != "clean"
        assert not all(r.success for r in gx.values()), "a frame GX passes could not be proven"
        return
    # Proven: GX passes every expectation, with the same element counts and observed values.
    assert set(proof) == set(gx)
    for i, r in gx.items():
        assert r.success, i
        assert {k: r.result[k] for k in proof[i]} == proof[i], i


def test_fast_proofs_and_the_kept_gx_plans_give_gx_s_own_results(world, tmp_path, monkeypatch):
    from pipelines.quality import fast, validate

    # The next day computed and reduced, not yet validated nor published: its restated marts days
    # (boost snapshots scoped to the users they restate) are what the gate reads.
    settings, _ = _copy_with_landing(world, tmp_path)
    day = DAY + timedelta(days=1)
    plan = runner.stage_plan(settings, day)
    runner.stage_reduce(
        settings, plan, [runner.stage_funnel_bucket(settings, plan, b, settings.buckets) for b in range(settings.buckets)]
    )
    state = arrival.State.load(settings)
    rows = checks.table_rows(settings, day, suites=suites.load(), params=settings.quality.parameters())
    for t in schemas.COMPUTED_TABLES:
        if state.unpublished_days(t.name):  # read as Arrow parts: the rows publish writes, no more
            assert rows[t.name].num_rows == len(arrival.read_unpublished(settings.lake, state, t.name)), t.name
    assert state.unpublished_days(schemas.BRAND_BOOST_SIGNALS.name)
    proven = []
    real = fast.suite_passes

    def counted(definition, *args, **kwargs):
        out = real(definition, *args, **kwargs)
        proven.append((definition.get("name"), out is not None))
        return out

    monkeypatch.setattr(fast, "suite_passes", counted)
    quick = validate_day(settings, day, data_docs=False)
    assert quick.failed.empty
    assert dict(proven).get(schemas.BRAND_BOOST_SIGNALS.name) and sum(ok for _, ok in proven) >= 10, proven
    assert validate._RUNTIME.plans, "GX's plans are kept"
    again = validate_day(settings, day, data_docs=False)  # plans reused
    pd.testing.assert_frame_equal(again.results, quick.results)
    # Every table read a file at a time, when its proof comes to it (as a table of more than
    # STREAM_ROWS rows is): the same rows, the boost still proven.
    monkeypatch.setattr(checks, "STREAM_ROWS", 0)
    proven.clear()
    pd.testing.assert_frame_equal(validate_day(settings, day, data_docs=False).results, quick.results)
    assert dict(proven).get(schemas.BRAND_BOOST_SIGNALS.name), proven
    # GX alone (no proofs, no kept plans): the same rows.
    monkeypatch.setattr(fast, "suite_passes", lambda *a, **k: None)
    monkeypatch.setattr(validate, "_planned", lambda *a, **k: None)
    pd.testing.assert_frame_equal(validate_day(settings, day, data_docs=False).results, quick.results)
    # With Data Docs every suite runs through GX's stores: the same rows again.
    pd.testing.assert_frame_equal(validate_day(settings, day, data_docs=True).results, quick.results)
    # A planted failure in a restated day: nothing is proven, GX finds it and samples its rows,
    # exactly as GX alone does.
    monkeypatch.undo()
    name = schemas.BRAND_BOOST_SIGNALS.name
    published = arrival.read_unpublished(settings.lake, state, name)
    row = published.iloc[[len(published) // 2]]
    d = row["as_of_dt"].iloc[0]
    marts = settings.lake / runner.MARTS
    lake.write_partition(marts, name, d, pd.concat([lake.read_table(marts, name, [d]), row], ignore_index=True))
    planted = validate_day(settings, day, data_docs=False)
    failed = f"{name}/expect_compound_columns_to_be_unique(as_of_dt,user_id,brand_id)"
    assert set(planted.failed["expectation"]) == {failed}
    assert planted.results.set_index("expectation").loc[failed, "observed"] == f"2 of {len(published) + 1} rows unexpected"
    assert [s["user_id"] for s in json.loads(planted.failed.iloc[0]["details"])["sample"]] == [row["user_id"].iloc[0]] * 2
    monkeypatch.setattr(checks, "STREAM_ROWS", 0)
    pd.testing.assert_frame_equal(validate_day(settings, day, data_docs=False).results, planted.results)
    monkeypatch.setattr(fast, "suite_passes", lambda *a, **k: None)
    monkeypatch.setattr(validate, "_planned", lambda *a, **k: None)
    pd.testing.assert_frame_equal(validate_day(settings, day, data_docs=False).results, planted.results)


def test_another_home_keeps_the_gx_context_and_renders_its_own_data_docs(world, tmp_path):
    from pipelines.quality import validate

    first = _copy(world, tmp_path / "one")
    validate_day(first, DAY, data_docs=False)
    ctx = validate._RUNTIME.ctx
    second = _copy(world, tmp_path / "two")
    outcome = validate_day(second, DAY, data_docs=True)
    assert validate._RUNTIME.ctx is ctx
    assert outcome.data_docs == data_docs_index(second) and data_docs_index(second).exists()
    assert not data_docs_index(first).exists() or data_docs_index(first).stat().st_mtime < data_docs_index(second).stat().st_mtime
