"""The HTML report: rendered in headless Chromium, every chart states its numbers, the numbers equal
the warehouse tables, and text from the data (brand names, note titles, queries, messages) is text.
Each top note links to the evidence of its brand mentions in the lake (checked on the page's HTML).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import logging
import math
import shutil
import struct
import warnings
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from browser import chromium, offline

from pipelines import db, lake, runner, schemas, warehouse
from pipelines.report import FOLDER, NoDataError, build_report, charts, data, render
from pipelines.settings import Settings
from pipelines.simulate import simulate_world
from pipelines.text.normalize import normalize

START, DAYS = date(2026, 3, 1), 3
DAY = START + timedelta(days=DAYS - 1)
CHARTS = ("funnel", "search_back_rate", "uplift", "attribution_platform", "attribution_creator", "attribution_shares", "boost")
#: Charts drawn only when the window has spend (a world without spend files shows a sentence instead).
SPEND_CHARTS = ("cost_platform", "roi_curve")
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = {
    "script": "<script>alert(1)</script>",
    "img": '<img src=x onerror="document.title=\'pwned\'">',
    "break": '雅诗兰黛"></td></tr><tr id="pwned"><td>',
    "math": "$x^2$ {{ 7*7 }} {% if 1 %}jinja{% endif %}",
}

# Collects every number table of the page: {table: {row key: {column: data-value}}}.
READ_TABLES = """() => {
  const out = {};
  for (const t of document.querySelectorAll('table.numbers')) {
    const rows = {};
    for (const tr of t.querySelectorAll('tbody tr[data-key]')) {
      const cells = {};
      for (const td of tr.querySelectorAll('td[data-col]')) cells[td.dataset.col] = td.dataset.value;
      rows[tr.dataset.key] = cells;
    }
    out[t.dataset.table] = rows;
  }
  return out;
}"""
READ_CHARTS = """() => Array.from(document.querySelectorAll('figure.chart')).map(f => ({
  chart: f.dataset.chart,
  loaded: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 100,
  rows: f.querySelectorAll('table.numbers tbody tr[data-key]').length,
  src: f.querySelector('img').getAttribute('src'),
}))"""
PROBE = """() => ({
  scripts: document.querySelectorAll('script').length,
  pwned: document.querySelectorAll('#pwned').length,
  title: document.title,
  cells: Array.from(document.querySelectorAll('td[data-col]')).map(td => td.textContent),
  imgs: Array.from(document.querySelectorAll('img')).map(i => i.getAttribute('src').slice(0, 26)),
  header_background: getComputedStyle(document.querySelector('header')).backgroundColor,
  kpis_display: getComputedStyle(document.querySelector('.kpis')).display,
})"""


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small simulated world run through every stage; the last run wrote the report.

    Also returns what matplotlib warned or logged (at WARNING and above) while the report was drawn.
    """
    root = tmp_path_factory.mktemp("report")
    settings = Settings(
        home=root / "home", landing=root / "landing", warehouse_url=f"sqlite:///{root / 'w.sqlite'}"
    )
    simulate_world(settings.landing, users=500, days=DAYS, start=START, seed=21, seeds_dir=settings.seeds)
    logged = _Records()
    logging.getLogger("matplotlib").addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            summary = runner.run_days(settings, START, DAY)
    finally:
        logging.getLogger("matplotlib").removeHandler(logged)
    drawing = [str(w.message) for w in warned if "matplotlib" in w.filename] + logged.messages
    return settings, summary, drawing


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module's pages, with the network cut off per page."""
    with chromium() as b:
        yield b


def _open(browser, settings: Settings, path: Path, screenshot=None) -> dict:
    """Load ``path`` with the network cut off; the page may read files under the reports folder only."""
    with offline(browser, settings.reports, viewport={"width": 1300, "height": 900}) as visit:
        dialogs: list[str] = []
        visit.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        visit.page.goto(path.resolve().as_uri())
        visit.page.wait_for_load_state("load")
        if screenshot:
            visit.page.screenshot(path=str(screenshot), full_page=True)
        return {
            "tables": visit.page.evaluate(READ_TABLES),
            "charts": visit.page.evaluate(READ_CHARTS),
            "probe": visit.page.evaluate(PROBE),
            "problems": visit.problems,
            "dialogs": dialogs,
            "outside": visit.outside(),
            "blocked": visit.blocked,
            "requests": visit.requests,
        }


@pytest.fixture(scope="module")
def page(world, browser, tmp_path_factory):
    settings, _, _ = world
    shot = tmp_path_factory.mktemp("shots") / "report.png"
    return {**_open(browser, settings, settings.reports / FOLDER / f"{DAY}.html", shot), "shot": shot}


def _shown(text: str) -> str:
    """A label as the chart shows it: shortened by charts.label, its escaped ``$`` shown plain."""
    return charts.label(text).replace("\\$", "$")


def _svg_texts(src: str) -> list[str]:
    """The text elements of a chart's SVG data URI (parsed as XML: the image is well-formed)."""
    assert src.startswith("data:image/svg+xml;base64,")
    root = ET.fromstring(base64.b64decode(src.split(",", 1)[1]))
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _engine(settings):
    return warehouse.make_engine(settings.resolved_warehouse_url())


def _read(settings, name, where=None):
    engine = _engine(settings)
    try:
        return warehouse.read_table(engine, name, where(warehouse.TABLES[name]) if where else None)
    finally:
        engine.dispose()


def _num(value: str) -> float:
    return float("nan") if value == "" else float(value)


def test_the_run_writes_the_report_and_the_index(world):
    settings, summary, _ = world
    path = settings.reports / FOLDER / f"{DAY}.html"
    assert summary.days[-1].report == str(path) and path.stat().st_size > 50_000
    # Only the last day of a multi-day run writes a report (earlier days are rewritten by later runs).
    assert all(d.report is None for d in summary.days[:-1])
    assert ("report", str(path.resolve())) in summary.locations()
    index = (settings.reports / "index.html").read_text(encoding="utf-8")
    assert f'href="{FOLDER}/{DAY}.html"' in index and 'id="latest"' in index


def test_report_renders_in_chromium_without_errors(page):
    assert page["problems"] == [] and page["dialogs"] == []
    # A full-page screenshot of a real page (its size, not its bytes: those depend on the fonts).
    width, height = struct.unpack(">II", page["shot"].read_bytes()[16:24])
    assert width == 1300 and height > 3000
    found = {c["chart"]: c for c in page["charts"]}
    assert sorted(set(found) - set(SPEND_CHARTS)) == sorted(CHARTS)
    for name, c in found.items():
        assert c["loaded"], f"chart {name} did not render"
        assert c["rows"] > 0, f"chart {name} states no numbers"
    # Self-contained: every image is inline data, nothing is fetched.
    assert all(src.startswith("data:image/svg+xml;base64") for src in page["probe"]["imgs"])


def test_report_renders_fully_with_the_network_cut_off(page, world):
    settings, _, _ = world
    # The page's inline style sheet applied: the header's background and the headline row's flex box.
    assert page["probe"]["header_background"] == "rgb(246, 248, 250)"
    assert page["probe"]["kpis_display"] == "flex"
    # Nothing but the page itself was asked for; nothing tried to leave the machine.
    assert page["outside"] == [] and page["blocked"] == []
    assert page["requests"][0] == (settings.reports / FOLDER / f"{DAY}.html").resolve().as_uri()


def test_chinese_brand_names_render(page, world):
    """Brand names are text in the chart SVG, drawn by the browser: no CJK font needed to render them."""
    _, _, drawing = world
    names = [r["brand_name"] for r in page["tables"]["funnel"].values()][: data.TOP_BRANDS]
    chinese = [n for n in names if any("\u4e00" <= ch <= "\u9fff" for ch in n)]
    assert chinese, names
    chart = {c["chart"]: c for c in page["charts"]}["funnel"]
    texts = _svg_texts(chart["src"])
    assert set(names) <= set(texts), sorted(set(names) - set(texts))
    svg = base64.b64decode(chart["src"].split(",", 1)[1]).decode("utf-8")
    assert "DejaVuSans-" not in svg  # no glyph outlines: text stays text
    assert "font-family:'DejaVu Sans', 'Noto Sans CJK SC'" in svg
    # matplotlib measured every label: no "Glyph ... missing from font(s)" warning, no findfont log.
    assert drawing == []


def test_chart_text_is_text_whatever_the_labels(caplog):
    """Chinese, emoji, Thai, markup and control characters: the SVG is well-formed XML, every label
    is text in it, and measuring them warns about nothing."""
    labels = ["雅诗兰黛", "SK-II 💄", "ภาษาไทย 한국어", '<b onclick="x">&$1$</b>', "bell\x07 nul\x00 \ud800"]
    rows = pd.DataFrame({"exposed_users": [9, 7, 5, 3, 1], "search_back_users": [4, 3, 2, 1, 0],
                         "seeded_orders": [2, 1, 1, 0, 0], "seeded_gmv_yuan": [20.0, 10.0, 5.0, 0.0, 0.0]})
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib"):
        warnings.simplefilter("error")
        src = charts.funnel(rows, labels)
    assert caplog.records == []
    texts = _svg_texts(src)
    assert {_shown(s) for s in labels} <= set(texts)
    assert '<b onclick="x">&$1$</b>' in texts  # parsed back from XML as this text; no mathtext
    assert "bell nul" in texts  # characters XML forbids are dropped, the rest stays


def test_funnel_equals_the_warehouse(page, world):
    settings, _, _ = world

    def in_window(t):
        return t.c.dt.between(START, DAY)

    touches = _read(settings, "fct_touches", in_window)
    pairs = _read(settings, "fct_search_pairs", in_window)
    orders = _read(settings, "fct_seeded_orders", in_window)
    seeded = pairs[pairs["is_seeded"]].assign(brand_id=lambda d: d["seeded_brand_ids"].str.split("|")).explode("brand_id")
    want = pd.DataFrame({
        "exposed_users": touches.groupby("brand_id")["user_id"].nunique(),
        "search_back_users": seeded.groupby("brand_id")["user_id"].nunique(),
        "seeded_orders": orders.groupby("brand_id").size(),
        "seeded_gmv_fen": orders.groupby("brand_id")["amount_fen"].sum(),
    }).fillna(0).astype("int64")
    got = pd.DataFrame.from_dict(page["tables"]["funnel"], orient="index")[list(want.columns)].astype(float).astype("int64")
    assert len(want) > 10 and want["seeded_orders"].sum() > 0
    pd.testing.assert_frame_equal(got.sort_index(), want.sort_index(), check_names=False)


def test_search_back_rate_equals_the_warehouse(page, world):
    settings, _, _ = world
    daily = _read(settings, "agg_brand_funnel_daily", lambda t: t.c.dt.between(START, DAY))
    shown = page["tables"]["search_back_rate"]
    assert sorted(shown) == [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
    for platform in (schemas.ALL, *schemas.PLATFORMS):
        sums = daily[daily["platform"].eq(platform)].groupby("dt")[["exposed_users", "searched_back_users"]].sum()
        for dt, row in sums.iterrows():
            col = "search_back_rate" if platform == schemas.ALL else f"rate_{platform}"
            assert _num(shown[dt.isoformat()][col]) == pytest.approx(row["searched_back_users"] / row["exposed_users"], rel=1e-12)
            if platform == schemas.ALL:
                assert int(shown[dt.isoformat()]["exposed_users"]) == row["exposed_users"]
                assert int(shown[dt.isoformat()]["searched_back_users"]) == row["searched_back_users"]


def test_uplift_equals_the_warehouse_counts_and_spec_formula(page, world):
    settings, _, _ = world
    up = _read(settings, "agg_conversion_uplift", lambda t: t.c.dt.between(START, DAY))
    shown = page["tables"]["uplift"]
    assert {"overall:all", "vertical_match:match", "vertical_match:mismatch"} <= set(shown)
    assert {f"platform:{p}" for p in schemas.PLATFORMS} <= set(shown)
    assert any(k.startswith("brand:") for k in shown)
    for key, row in shown.items():
        group, value = key.split(":", 1)
        if group == "brand":
            rows = up[up["level"].eq("brand") & up["subject_id"].eq(value) & up["slice"].eq("all")]
        else:
            slice_ = "all" if group == "overall" else group
            rows = up[up["level"].eq("all") & up["slice"].eq(slice_) & up["slice_value"].eq(value)]
        x1, n1, x2, n2 = (int(rows[c].sum()) for c in ("seeded_conversions", "seeded_pairs", "baseline_conversions", "baseline_pairs"))
        assert [int(row[c]) for c in ("seeded_conversions", "seeded_pairs", "baseline_conversions", "baseline_pairs")] == [x1, n1, x2, n2]
        if min(x1, n1, x2, n2) == 0:
            assert row["uplift"] == ""
            continue
        u = (x1 / n1) / (x2 / n2)
        half = 1.96 * math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
        assert _num(row["uplift"]) == pytest.approx(u, rel=1e-12)
        assert _num(row["uplift_ci_low"]) == pytest.approx(u * math.exp(-half), rel=1e-12)
        assert _num(row["uplift_ci_high"]) == pytest.approx(u * math.exp(half), rel=1e-12)
    # The reference lines are the planted effect of this simulated world; the market's claim is a
    # number in the table, never a line.
    ref = page["tables"]["uplift_reference"]["planted"]
    assert _num(ref["value"]) == 2.7 and _num(ref["mismatch"]) == 1.3 and _num(ref["claim"]) == 2.7


def _mantel_haenszel(strata: pd.DataFrame) -> tuple[float, float, float] | None:
    """SPEC 5.10 as written, on strata rows already summed per stratum."""
    a, n1, c, n0 = (strata[k].astype(float) for k in ("seeded_conversions", "seeded_pairs", "baseline_conversions", "baseline_pairs"))
    big_n = n1 + n0
    r, s_ = float((a * n0 / big_n).sum()), float((c * n1 / big_n).sum())
    if r == 0 or s_ == 0:
        return None
    var = float((((a + c) * n1 * n0 - a * c * big_n) / big_n**2).sum()) / (r * s_)
    rr, half = r / s_, 1.96 * math.sqrt(var)
    return rr, rr * math.exp(-half), rr * math.exp(half)


def test_adjusted_uplift_equals_the_warehouse_strata_and_spec_formula(page, world):
    settings, _, _ = world
    strata = _read(settings, "agg_uplift_strata", lambda t: t.c.dt.between(START, DAY))
    shown = page["tables"]["uplift"]
    stratum = ["stratum_id", "activity", "has_recent_order"]
    checked = 0
    for key, row in shown.items():
        group, value = key.split(":", 1)
        if group == "brand":
            rows = strata[strata["level"].eq("brand") & strata["subject_id"].eq(value) & strata["slice"].eq("all")]
        else:
            slice_ = "all" if group == "overall" else group
            rows = strata[strata["level"].eq("all") & strata["slice"].eq(slice_) & strata["slice_value"].eq(value)]
        # A window's strata: each stratum's counts summed over the days.
        want = _mantel_haenszel(rows.groupby(stratum)[["seeded_conversions", "seeded_pairs", "baseline_conversions", "baseline_pairs"]].sum())
        if want is None:
            assert row["adjusted_uplift"] == ""
            continue
        got = [_num(row[c]) for c in ("adjusted_uplift", "adjusted_uplift_ci_low", "adjusted_uplift_ci_high")]
        assert got == pytest.approx(list(want), rel=1e-9)
        checked += 1
    assert checked >= 3


def test_the_headline_is_the_pooled_figure_and_says_what_it_estimates(page, world):
    settings, summary, _ = world
    html = Path(summary.days[-1].report).read_text(encoding="utf-8")
    overall = page["tables"]["uplift"]["overall:all"]
    card = html.split('data-kpi="uplift">', 1)[1].split("</div></div>", 1)[0]
    figure = f"{_num(overall['uplift']):.2f}x [{_num(overall['uplift_ci_low']):.2f}, {_num(overall['uplift_ci_high']):.2f}]"
    assert figure in card
    assert "seeded users buy the brand they were seeded with" in card and "all brands pooled" in card
    adjusted = html.split('data-kpi="adjusted_uplift">', 1)[1].split("</div></div>", 1)[0]
    assert "engagement-adjusted" in adjusted
    # The level all rows are the brand rows pooled (SPEC 5.7): summed counts.
    up = _read(settings, "agg_conversion_uplift", lambda t: t.c.dt.between(START, DAY))
    brand = up[up["level"].eq("brand") & up["slice"].eq("all")]
    assert int(overall["seeded_pairs"]) == int(brand["seeded_pairs"].sum())
    assert int(overall["baseline_pairs"]) == int(brand["baseline_pairs"].sum())
    # The estimand in words, the claim labelled unverified, the planted lines named as such.
    assert "how much more likely a user seeded with a brand is to buy that brand" in html
    assert "2.7x often quoted for seeding is an unverified market claim" in html
    assert "simulated world (ground_truth.json)" in html


def test_without_ground_truth_there_is_no_reference_line(tmp_path):
    ref = data.reference_line(tmp_path)  # a landing zone with no ground_truth.json
    assert ref.source == "none" and ref.value is None and ref.claim == 2.7
    from pipelines.report.render import reference_note

    note = reference_note(ref)
    assert "no reference line" in note and "unverified market claim" in note
    rows = pd.DataFrame(
        {"group": ["overall"], "uplift": [1.5], "uplift_ci_low": [1.2], "uplift_ci_high": [1.9],
         "adjusted_uplift": [1.3], "adjusted_uplift_ci_low": [1.0], "adjusted_uplift_ci_high": [1.7]}
    )
    chart = base64.b64decode(charts.forest(rows, ["all brands, pooled"], ref).split(",", 1)[1]).decode()
    assert "planted" not in chart and "claim" not in chart and "engagement-adjusted" in chart


def test_attribution_equals_the_warehouse_and_every_model_spends_the_gmv(page, world):
    settings, _, _ = world
    credits = _read(settings, "fct_attribution_credits", lambda t: t.c.dt.between(START, DAY))
    orders = _read(settings, "fct_seeded_orders", lambda t: t.c.dt.between(START, DAY))
    by_platform = pd.DataFrame.from_dict(page["tables"]["attribution_platform"], orient="index")
    want = credits.pivot_table(index="platform", columns="model", values="credit_fen", aggfunc="sum", fill_value=0.0)
    for platform, row in by_platform.iterrows():
        for m in schemas.ATTRIBUTION_MODELS:
            expected = float(want.loc[platform, m]) if platform in want.index else 0.0
            assert _num(row[m]) == pytest.approx(expected, rel=1e-12, abs=1e-9)
    gmv = float(orders["amount_fen"].sum())
    assert gmv > 0
    for m in schemas.ATTRIBUTION_MODELS:
        assert by_platform[m].map(_num).sum() == pytest.approx(gmv, rel=1e-9)
    creators = page["tables"]["attribution_creator"]
    top = credits[credits["model"].eq("last_touch")].groupby(["platform", "author_id"])["credit_fen"].sum()
    for key, row in creators.items():
        platform, author = key.split(":")
        assert _num(row["last_touch"]) == pytest.approx(top[(platform, author)], rel=1e-12)
    # The creators shown are the top ones by last-touch credit.
    shown = sorted((_num(r["last_touch"]) for r in creators.values()), reverse=True)
    assert shown == pytest.approx(sorted(top, reverse=True)[: len(shown)])


def test_boost_histogram_equals_the_warehouse(page, world):
    settings, summary, _ = world
    boost = _read(settings, "brand_boost_signals", lambda t: t.c.as_of_dt == DAY)
    scores = boost["score"].to_numpy()
    shown = page["tables"]["boost"]
    counts, _ = np.histogram(scores, bins=np.arange(len(shown) + 1) / len(shown))  # bins [k/10, (k+1)/10)
    got = [int(r["signals"]) for r in sorted(shown.values(), key=lambda r: _num(r["bin_low"]))]
    assert got == counts.tolist() and sum(got) == len(scores) > 0
    # The section's sentence: signals, distinct users (counted as the rows of rank 1) and the median.
    text = html.unescape(Path(summary.days[-1].report).read_text(encoding="utf-8"))
    assert (
        f"{len(scores):,} (user, brand) signals for {boost['user_id'].nunique():,} users (each user's top 50), "
        f"median score {np.median(scores):.3f}."
    ) in text


def test_the_big_tables_are_read_once_and_only_for_the_days_shown(world):
    """fct_touches is read only through its indexed day column, the window's seeded search pairs
    once for the funnel and the top queries, and the day's boost scores not at all: their
    distribution is published (agg_boost_scores, read once for the day)."""
    settings, _, _ = world
    engine = _engine(settings)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, stmt, *rest: statements.append(stmt))
    try:
        data.collect(settings, engine, DAY)
    finally:
        engine.dispose()
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    for table, day_column in (("fct_touches", "dt"), ("agg_boost_scores", "as_of_dt")):
        mine = [s for s in reads if f"FROM {table}" in s]
        assert mine, table
        for s in mine:
            assert f"{table}.{day_column}" in s.split("WHERE", 1)[-1], s
    assert len([s for s in reads if "FROM fct_search_pairs" in s]) == 1
    assert not [s for s in reads if "FROM brand_boost_signals" in s]
    assert len([s for s in reads if "FROM agg_boost_scores" in s]) == 1


def test_data_quality_section_equals_the_warehouse_and_links_data_docs(page, world):
    settings, _, _ = world
    files = _read(settings, "ingest_files", lambda t: t.c.dt == DAY)
    want = files.groupby("source")[["input_rows", "accepted_rows", "quarantined_rows"]].sum()
    shown = page["tables"]["ingest"]
    assert sorted(shown) == sorted(want.index)
    for source, row in want.iterrows():
        assert [int(shown[source][c]) for c in want.columns] == row.tolist()
    dq = _read(settings, "dq_results", lambda t: t.c.dt == DAY)
    assert sum(int(r["checks"]) for r in page["tables"]["dq_summary"].values()) == len(dq)
    html = (settings.reports / FOLDER / f"{DAY}.html").read_text(encoding="utf-8")
    assert 'href="../data_docs/index.html" data-link="data_docs"' in html


class _Page(HTMLParser):
    """The rendered page as a tree of elements (tag, attributes, children: elements and text),
    with every element that has an id, for tests that need no browser."""

    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root: dict = {"tag": "", "attrs": {}, "children": []}
        self.ids: dict[str, dict] = {}
        self._open = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "children": []}
        self._open[-1]["children"].append(element)
        if "id" in element["attrs"]:
            assert element["attrs"]["id"] not in self.ids, f"duplicate id {element['attrs']['id']}"
            self.ids[element["attrs"]["id"]] = element
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        while len(self._open) > 1:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, text):
        self._open[-1]["children"].append(text)

    @staticmethod
    def find(element: dict, tag: str, **attrs) -> list[dict]:
        """Every descendant ``tag`` whose attributes include ``attrs`` (``data_x`` for ``data-x``)."""
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        out = []
        for child in element["children"]:
            if isinstance(child, dict):
                if child["tag"] == tag and all(child["attrs"].get(k) == v for k, v in want.items()):
                    out.append(child)
                out += _Page.find(child, tag, **attrs)
        return out

    @staticmethod
    def text(element: dict) -> str:
        return "".join(c if isinstance(c, str) else _Page.text(c) for c in element["children"])

    def table(self, name: str) -> dict[str, dict[str, dict]]:
        """{row key: {column: its td element}} of the number table ``name``."""
        (table,) = self.find(self.root, "table", data_table=name)
        return {
            tr["attrs"]["data-key"]: {td["attrs"]["data-col"]: td for td in self.find(tr, "td")}
            for tr in self.find(table, "tr")
            if "data-key" in tr["attrs"]
        }


EVIDENCE_SHOWN = ("alias", "field", "field_index", "position", "rule", "is_counted", "context")


def _evidence_rows(block: dict) -> pd.DataFrame:
    """The rows of an evidence block's table, by data-value, with the snippet's marked text."""
    (table,) = _Page.find(block, "table")
    rows = []
    for tr in _Page.find(table, "tr"):
        if "data-key" not in tr["attrs"]:
            continue  # the header, or the "no rows" line
        cells = {td["attrs"]["data-col"]: td for td in _Page.find(tr, "td")}
        row = {c: cells[c]["attrs"]["data-value"] for c in (*EVIDENCE_SHOWN, "brand_id", "snippet")}
        marks = _Page.find(cells["snippet"], "mark")
        row["mark"] = _Page.text(marks[0]) if marks else None
        rows.append(row)
    return pd.DataFrame(rows, columns=[*EVIDENCE_SHOWN, "brand_id", "snippet", "mark"])


def _as_shown(evidence: pd.DataFrame) -> pd.DataFrame:
    """Lake evidence rows as the page states them (data-value strings), in the page's order."""
    order = evidence.assign(_f=evidence["field"].map({"title": 0, "text": 1, "tags": 2}))
    order = order.sort_values(["_f", "field_index", "position", "brand_id"], ignore_index=True)
    shown = pd.DataFrame({
        "alias": order["alias"], "field": order["field"], "field_index": order["field_index"].astype(str),
        "position": order["position"].astype(str), "rule": order["rule"],
        "is_counted": order["is_counted"].map({True: "true", False: "false"}),
        "context": order["context"].fillna(""), "brand_id": order["brand_id"],
    })
    return shown


def _field_of(note: dict, field: str, index: int) -> str:
    return note["tags"][index] if field == "tags" else note[field]


def test_each_top_note_links_to_the_evidence_of_its_brand_mentions(world):
    """The "what seeded" section: every top note's row links to an in-page block that lists each
    alias match of the lake's note_brand_evidence for it (alias, field, position, rule), with the
    note's normalised text around the match."""
    settings, _, _ = world
    page = _Page((settings.reports / FOLDER / f"{DAY}.html").read_text(encoding="utf-8"))
    # The top notes are the warehouse's: most last-touch credit in the window.
    credits = _read(settings, "fct_attribution_credits", lambda t: t.c.dt.between(START, DAY))
    credits = credits[credits["model"].eq("last_touch")]
    top = (
        credits.groupby(["platform", "note_id"], as_index=False)["credit_fen"].sum()
        .sort_values(["credit_fen", "platform", "note_id"], ascending=[False, True, True]).head(data.TOP_NOTES)
    )
    rows = page.table("top_notes")
    assert list(rows) == [f"{p}:{n}" for p, n in zip(top["platform"], top["note_id"], strict=True)]
    assert len(rows) >= 3
    # Read back independently: the whole evidence table and every note version of the lake.
    evidence = lake.read_table(settings.lake, "note_brand_evidence")
    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes")).set_index(["platform", "note_id"])
    names = pd.read_csv(settings.seeds / "brands.csv", dtype=str, keep_default_na=False).set_index("brand_id")["name"]
    snippets = 0
    for key, cells in rows.items():
        platform, note_id = key.split(":", 1)
        (link,) = _Page.find(cells["brands"], "a")
        href = link["attrs"]["href"]
        assert href.startswith("#")
        block = page.ids[href[1:]]  # the anchor exists on the page
        assert block["attrs"]["class"] == "evidence" and block["attrs"]["data-note"] == key
        assert note_id in _Page.text(block)  # the block says which note it explains
        mine = evidence[evidence["platform"].eq(platform) & evidence["note_id"].eq(note_id)]
        assert len(mine) and mine["is_counted"].any(), key  # a credited note mentions a brand
        shown = _evidence_rows(block)
        pd.testing.assert_frame_equal(shown[[*EVIDENCE_SHOWN, "brand_id"]], _as_shown(mine), obj=key)
        # The row names the brands the evidence counts, and the link text is that list.
        counted = list(dict.fromkeys(mine.sort_values(["field", "position"])["brand_id"][mine["is_counted"]]))
        assert set(_Page.text(link).split(", ")) == {names[b] for b in counted}
        # The snippet marks the alias where the evidence says, in the note's normalised field.
        note = notes.loc[(platform, note_id)]
        for r in shown.itertuples(index=False):
            field = normalize(_field_of(note, r.field, int(r.field_index)))
            assert field[int(r.position):int(r.position) + len(r.alias)] == r.alias
            assert r.mark == r.alias, (key, r)
            assert r.snippet.strip("…") in field
            snippets += 1
    assert snippets >= len(rows)
    # Both rules are explained in the section's words.
    (content,) = page.find(page.root, "section", id="content")
    assert "context alias" in _Page.text(content) and "confirmed by" in _Page.text(content)


def test_evidence_blocks_show_context_matches_and_notes_without_evidence(world, tmp_path):
    """Top notes replaced by chosen ones: a note matched only through a context alias shows the
    rule and the keyword that confirmed it; a note with no match says so; a note whose text
    changed since the evidence was computed shows no snippet rather than a wrong one."""
    settings, _, _ = world
    evidence = lake.read_table(settings.lake, "note_brand_evidence")
    notes = lake.resolve_notes(lake.read_table(settings.lake, "notes"))
    context = evidence[evidence["rule"].eq("context") & evidence["is_counted"]].iloc[0]
    matched = set(zip(evidence["platform"], evidence["note_id"], strict=True))
    bare = notes[[(p, n) not in matched for p, n in zip(notes["platform"], notes["note_id"], strict=True)]].iloc[0]
    chosen = pd.DataFrame({
        "platform": [context["platform"], bare["platform"]], "note_id": [context["note_id"], bare["note_id"]],
        "author_id": "a", "credit_fen": [200.0, 100.0], "title": "",
    })
    engine = _engine(settings)
    try:
        figures = data.collect(settings, engine, DAY)
    finally:
        engine.dispose()
    figures = dataclasses.replace(figures, top_notes=chosen, evidence=data.note_evidence(settings, chosen))
    path = tmp_path / "attribution" / f"{DAY}.html"
    page = _Page(render.render(figures, path, tmp_path))
    rows = page.table("top_notes")
    first, second = (f"{p}:{n}" for p, n in zip(chosen["platform"], chosen["note_id"], strict=True))
    block = page.ids[_Page.find(rows[first]["brands"], "a")[0]["attrs"]["href"][1:]]
    shown = _evidence_rows(block).set_index(["field", "field_index", "position"])
    row = shown.loc[(context["field"], str(context["field_index"]), str(context["position"]))]
    assert (row["alias"], row["rule"], row["is_counted"], row["context"]) == (
        context["alias"], "context", "true", context["context"]
    )
    assert row["mark"] == context["alias"]
    # No match recorded: the row says so and its block lists nothing.
    assert _Page.text(rows[second]["brands"]) == "no match recorded"
    empty = page.ids[_Page.find(rows[second]["brands"], "a")[0]["attrs"]["href"][1:]]
    assert _evidence_rows(empty).empty and "no rows" in _Page.text(empty)

    # The note's latest version no longer holds the alias there (evidence not recomputed yet).
    name, day = "notes", max(lake.partitions(settings.lake, "notes"))
    later = notes[notes["platform"].eq(context["platform"]) & notes["note_id"].eq(context["note_id"])].copy()
    if context["field"] == "tags":
        later["tags"] = [[] for _ in range(len(later))]
    else:
        later[context["field"]] = "xxx"
    later = later.assign(dt=day, source_file="zz-later.jsonl")
    stale = settings.with_(home=tmp_path / "home")
    shutil.copytree(settings.lake, stale.lake)
    lake.write_partition(stale.lake, name, day, pd.concat([lake.read_table(stale.lake, name, [day]), later], ignore_index=True))
    snippet = data.note_evidence(stale, chosen)
    changed = snippet[snippet["field"].eq(context["field"]) & snippet["position"].eq(context["position"])]
    assert len(changed) and changed["match"].isna().all()


def test_report_of_a_day_without_data_says_what_to_do(world):
    settings, _, _ = world
    with pytest.raises(NoDataError, match=r"seedfunnel run --start 2027-01-01"):
        build_report(settings, date(2027, 1, 1))


def _hostile_home(settings: Settings, root) -> Settings:
    """A copy of the world whose brand names, note titles, queries and DQ messages are hostile."""
    shutil.copytree(settings.home, root / "home")
    source = Path(settings.resolved_warehouse_url().removeprefix("sqlite:///"))
    for part in source.parent.glob(source.name + "*"):  # the database and its WAL
        shutil.copy(part, root / part.name.replace(source.stem, "w", 1))
    seeds = root / "seeds"
    shutil.copytree(settings.seeds, seeds)
    brands = pd.read_csv(seeds / "brands.csv", dtype=str, keep_default_na=False)
    values = list(HOSTILE.values())
    brands["name"] = [values[i % len(values)] for i in range(len(brands))]
    brands.to_csv(seeds / "brands.csv", index=False)
    hostile = settings.with_(home=root / "home", seeds=seeds, warehouse_url=f"sqlite:///{root / 'w.sqlite'}")
    for name, column in (("notes", "title"), ("searches", "query")):
        for d in lake.partitions(hostile.lake, name):
            frame = lake.read_table(hostile.lake, name, [d])
            frame[column] = [values[i % len(values)] for i in range(len(frame))]
            lake.write_partition(hostile.lake, name, d, frame)
    dq = pd.DataFrame({
        "dt": [DAY] * len(values), "table_name": values, "expectation": [f"e{i}" for i in range(len(values))],
        "severity": "critical", "success": False, "observed": values, "details": values, "run_id": "hostile",
    })
    engine = _engine(hostile)
    try:
        db.upgrade(hostile.resolved_warehouse_url())
        warehouse.publish(engine, {"dq_results": dq}, {"dq_results": [DAY]})
    finally:
        engine.dispose()
    return hostile


def test_hostile_text_is_shown_as_text_and_runs_nothing(world, browser, tmp_path):
    settings, _, _ = world
    hostile = _hostile_home(settings, tmp_path)
    path = build_report(hostile, DAY)
    seen = _open(browser, hostile, path, tmp_path / "hostile.png")
    tables, found, problems, dialogs, probe = (seen[k] for k in ("tables", "charts", "problems", "dialogs", "probe"))
    assert problems == [] and dialogs == [] and seen["outside"] == []
    assert probe["scripts"] == 0 and probe["pwned"] == 0 and probe["title"] != "pwned"
    assert {c["chart"] for c in found} - set(SPEND_CHARTS) == set(CHARTS) and all(c["loaded"] for c in found)
    cells = set(probe["cells"])
    for text in HOSTILE.values():  # each shows verbatim, as text
        assert text in cells, text
    assert {r["brand_name"] for r in tables["funnel"].values()} <= set(HOSTILE.values())
    assert {r["title"] for r in tables["top_notes"].values()} <= set(HOSTILE.values())
    assert {r["query"] for r in tables["top_queries"].values()} <= set(HOSTILE.values())
    # (the world's own failures of the day are warnings of a young feed: no week of history yet)
    assert len([k for k in tables["dq_failures"] if k.endswith(":hostile")]) == len(HOSTILE)
    # In the charts, the hostile brand names are text of a well-formed SVG image.
    funnel_texts = _svg_texts({c["chart"]: c for c in found}["funnel"]["src"])
    assert {_shown(v) for v in HOSTILE.values()} & set(funnel_texts)


@pytest.mark.postgres
def test_postgres_warehouse_gives_the_same_figures(world, pg_url):
    """The SQL aggregations return the same figures on PostgreSQL as on SQLite."""
    settings, _, _ = world
    pg = settings.with_(warehouse_url=pg_url)
    db.upgrade(pg_url)
    source, target = _engine(settings), _engine(pg)
    try:
        names = [t.name for t in schemas.WAREHOUSE_TABLES]
        frames = {n: warehouse.read_table(source, n) for n in names}
        warehouse.publish(target, frames, {})
        got, want = data.collect(pg, target, DAY), data.collect(settings, source, DAY)
    finally:
        source.dispose()
        target.dispose()
    for field in ("funnel", "rate", "uplift", "credit_platform", "credit_creator", "boost", "ingest", "quarantine", "top_notes",
                  "top_queries", "channels", "cost", "roi"):
        pd.testing.assert_frame_equal(
            getattr(got, field).reset_index(drop=True), getattr(want, field).reset_index(drop=True),
            check_dtype=False, obj=field,
        )
    assert got.boost_stats == want.boost_stats  # signals, users and the median, as SQL finds them


def test_window_queries_agree_with_read_table(world):
    """available_days / window read the same span read_table sees."""
    settings, _, _ = world
    engine = _engine(settings)
    try:
        daily = warehouse.read_table(engine, "agg_brand_funnel_daily")
        assert data.available_days(engine) == (daily["dt"].min(), daily["dt"].max())
        assert data.window(engine, DAY, days=2) == DAY - timedelta(days=1)
        assert data.window(engine, DAY) == START
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from agg_brand_funnel_daily")).scalar_one() == len(daily)
    finally:
        engine.dispose()


def test_the_demo_worlds_headline_covers_its_realised_pooled_uplift(tmp_path):
    # The world `make demo` simulates (seedfunnel demo: 5,000 users, 10 days from 2026-01-01,
    # seed 7, unconfounded), run by the runner (the DAGs publish the same tables).
    import json
    import re

    start = date(2026, 1, 1)
    settings = Settings(home=tmp_path / "home", landing=tmp_path / "landing", warehouse_url=f"sqlite:///{tmp_path / 'w.sqlite'}")
    simulate_world(settings.landing, users=5_000, days=10, start=start, seed=7, seeds_dir=settings.seeds)
    summary = runner.run_days(settings, start, start + timedelta(days=9))
    html = Path(summary.days[-1].report).read_text(encoding="utf-8")
    card = html.split('data-kpi="uplift">', 1)[1].split("</div></div>", 1)[0]
    uplift, low, high = (float(x) for x in re.search(r"([\d.]+)x \[([\d.]+), ([\d.]+)\]", card).groups())
    realised = json.loads((settings.landing / "ground_truth.json").read_text())["estimand"]["realised_uplift"]["seeded"]
    assert low <= realised <= high, (uplift, low, high, realised)


# ---------------------------------------------------------------- SPEC 5.11 snapshots (models section)
# The model tables are written directly (as the hostile home writes dq_results): a warehouse holding
# one funnel row for DAY (so the day has a report) and the snapshot rows each test chooses.

PREVIOUS = DAY - timedelta(days=1)
STALE = 0.987654321  # a share / spend only rows of the day before hold: never on DAY's page
VERTICALS = [f"cat_v{i:02d}" for i in range(12)]
MARKOV_TIES = {"douyin": "weibo", "weibo": "douyin", "bilibili": "kuaishou", "kuaishou": "bilibili"}
INTERVALS = ("cost_per_touch", "cost_per_search_back_user", "cost_per_seeded_order", "roas")


def _funnel_row(day: date) -> dict:
    row = {c.name: 0 for c in schemas.AGG_BRAND_FUNNEL_DAILY.columns}
    row.update(
        dt=day, brand_id="b_x", platform=schemas.ALL, search_back_rate=None, cvr_seeded=None, cvr_baseline=None,
        uplift=None, uplift_ci_low=None, uplift_ci_high=None, is_final=False, run_id="models",
        **{f"attributed_gmv_{m}_fen": 0.0 for m in schemas.ATTRIBUTION_MODELS},
    )
    return row


def _share(model: str, kind: str, i: int, day: date) -> float:
    """A distinct share per (model, channel), exactly representable as stored."""
    if day != DAY:
        return STALE
    return round(0.01 * (i + 1) + 0.001 * schemas.ALL_MODELS.index(model) + (0.0001 if kind == "vertical" else 0.0), 6)


def _channel_rows(day: date) -> list[dict]:
    rows = []
    kinds = [("platform", list(schemas.PLATFORMS)), ("vertical", VERTICALS), ("creator", ["douyin:abc", "(other)"])]
    for model in schemas.ALL_MODELS:
        for kind, channels in kinds:
            for i, channel in enumerate(channels):
                share = _share(model, kind, i, day)
                tied = MARKOV_TIES.get(channel) if (model == "markov" and kind == "platform") else None
                rows.append({
                    "as_of_dt": day, "window_start_dt": day - timedelta(days=27), "model": model,
                    "channel_kind": kind, "channel": channel, "credit_fen": share * 1e6, "share": share,
                    "share_ci_low": share / 2, "share_ci_high": share * 1.5, "tied_with": tied,
                    "markov_order": 2 if model == "markov" else None, "run_id": "models",
                })
    return rows


def _cost_row(day: date, model: str, level: str, subject: str, spend: float) -> dict:
    row = {
        "as_of_dt": day, "window_start_dt": day - timedelta(days=27), "model": model, "level": level,
        "subject_id": subject, "spend_fen": spend, "touches": 1000.0, "search_back_users": 40.0,
        "seeded_orders": 12.5, "attributed_gmv_fen": 2.5 * spend if spend else 30_000.0, "run_id": "models",
    }
    for name in INTERVALS:
        value = None if not spend else (2.5 if name == "roas" else spend / 1000.0)
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (
            (value, value * 0.8, value * 1.2) if value is not None else (None, None, None)
        )
    return row


def _cost_rows(day: date, brands: pd.DataFrame, spend: bool = True) -> list[dict]:
    rows = []
    for model in ("shapley", "linear"):  # only shapley is shown
        for i, p in enumerate(schemas.PLATFORMS):
            amount = (STALE if day != DAY or model != "shapley" else 10_000.0 * (i + 1)) if spend else 0.0
            rows.append(_cost_row(day, model, "platform", p, amount))
        for i, b in enumerate(brands["brand_id"][:14]):
            amount = (STALE if day != DAY or model != "shapley" else 1_000.0 * (i + 1)) if spend else 0.0
            rows.append(_cost_row(day, model, "brand", b, amount))
        rows.append(_cost_row(day, model, "creator", "douyin:abc", 5.0 if spend else 0.0))
    return rows


def _roi_rows(day: date, brands: pd.DataFrame, spend: bool = True) -> list[dict]:
    """11 brands: the first 10 with spend (the 10th only at T+1), the 11th without any."""
    rows = []
    for i, (b, c) in enumerate(zip(brands["brand_id"][:11], brands["category_id"][:11], strict=True)):
        for x in (*schemas.ROI_DAYS, 10):
            has = spend and i < 10 and (i < 9 or x == 1)
            amount = 100.0 * (i + 1) * x if has else 0.0
            rows.append({
                "as_of_dt": day, "category_id": c, "brand_id": b, "x_days": x,
                "cohort_start_dt": day - timedelta(days=x + 27), "cohort_end_dt": day - timedelta(days=x),
                "is_decision_cycle": x == 10, "is_complete": x <= 15, "gmv_fen": 50.0 * x * (i + 1),
                "spend_fen": amount, "roi": (50.0 * x * (i + 1)) / amount if amount else None, "run_id": "models",
            })
    return rows


def _models_home(tmp_path: Path, *, today: bool = True, spend: bool = True) -> Settings:
    """A warehouse with one funnel row of DAY, snapshot rows of the day before (never shown) and,
    when ``today``, snapshot rows of DAY (with spend or without)."""
    settings = Settings(home=tmp_path / "home", landing=tmp_path / "landing", warehouse_url=f"sqlite:///{tmp_path / 'w.sqlite'}")
    brands = pd.read_csv(settings.seeds / "brands.csv", dtype=str, keep_default_na=False)
    days = [PREVIOUS, DAY] if today else [PREVIOUS]
    frames = {
        "agg_brand_funnel_daily": pd.DataFrame([_funnel_row(DAY)]),
        "agg_attribution_channels": pd.DataFrame([r for d in days for r in _channel_rows(d)]),
        "agg_cost": pd.DataFrame([r for d in days for r in _cost_rows(d, brands, spend)]),
        "agg_roi_curve": pd.DataFrame([r for d in days for r in _roi_rows(d, brands, spend)]),
    }
    db.upgrade(settings.resolved_warehouse_url())
    engine = _engine(settings)
    try:
        warehouse.publish(engine, frames, {name: [DAY, PREVIOUS] for name in frames})
    finally:
        engine.dispose()
    return settings


def _models_page(settings: Settings) -> tuple[_Page, str, str]:
    """The report of DAY parsed, its HTML, and the models section's text (entities decoded)."""
    source = build_report(settings, DAY).read_text(encoding="utf-8")
    page = _Page(source)
    (section,) = page.find(page.root, "section", id="models")
    return page, source, " ".join(_Page.text(section).split())


def _values(page: _Page, table: str) -> dict[str, dict[str, str]]:
    return {k: {c: td["attrs"]["data-value"] for c, td in row.items()} for k, row in page.table(table).items()}


def _chart_texts(page: _Page, name: str) -> list[str]:
    (figure,) = page.find(page.root, "figure", data_chart=name)
    (img,) = page.find(figure, "img")
    return _svg_texts(img["attrs"]["src"])


def test_models_section_shows_the_snapshot_of_the_day(tmp_path):
    settings = _models_home(tmp_path)
    page, source, text = _models_page(settings)
    # Placed right after the attribution section, and reachable from the header.
    order = [s["attrs"]["id"] for s in page.find(page.root, "section")]
    assert order[order.index("attribution") + 1] == "models"
    assert 'href="#models"' in source
    assert str(STALE) not in source and "douyin:abc" not in source  # the day before; creator rows

    # Block 1: every model's platform shares, intervals, ties and the Markov order, as stored.
    shares = _values(page, "attribution_shares")
    assert set(shares) == {f"{m}:{p}" for m in schemas.ALL_MODELS for p in schemas.PLATFORMS}
    for m in schemas.ALL_MODELS:
        for i, p in enumerate(schemas.PLATFORMS):
            row, share = shares[f"{m}:{p}"], _share(m, "platform", i, DAY)
            assert (_num(row["share"]), _num(row["share_ci_low"]), _num(row["share_ci_high"])) == (share, share / 2, share * 1.5)
            assert row["tied_with"] == (MARKOV_TIES.get(p, "") if m == "markov" else "")
            assert row["markov_order"] == ("2" if m == "markov" else "")
    assert "intervals come from a bootstrap over users" in text.lower()
    assert (
        "Which platforms the data-driven models cannot tell apart (the bootstrap interval of the difference of "
        "their shares contains 0): markov cannot tell douyin from weibo and bilibili from kuaishou; shapley tells "
        "every platform apart."
    ) in text
    assert "The Markov chain has order k = 2" in text
    shown = _chart_texts(page, "attribution_shares")
    assert set(schemas.PLATFORMS) <= set(shown) and "markov (data-driven)" in shown and "shapley (data-driven)" in shown

    # Block 2: the 10 verticals with the largest Shapley share, markov, shapley and last_touch only.
    verticals = _values(page, "attribution_verticals")
    top = sorted(VERTICALS, key=lambda v: -_share("shapley", "vertical", VERTICALS.index(v), DAY))[: data.TOP_VERTICALS]
    assert list(verticals) == [f"{m}:{v}" for v in top for m in data.VERTICAL_MODELS]
    for key, row in verticals.items():
        m, v = key.split(":")
        assert _num(row["share"]) == _share(m, "vertical", VERTICALS.index(v), DAY)

    # Block 3: agg_cost of the Shapley model per platform, and the 10 brands with the most spend.
    names = pd.read_csv(settings.seeds / "brands.csv", dtype=str, keep_default_na=False).set_index("brand_id")["name"]
    cost = _values(page, "cost_platform")
    assert list(cost) == list(schemas.PLATFORMS)
    for i, p in enumerate(schemas.PLATFORMS):
        want = _cost_row(DAY, "shapley", "platform", p, 10_000.0 * (i + 1))
        for c in ("spend_fen", "touches", "search_back_users", "seeded_orders", "attributed_gmv_fen",
                  *(f"{n}{e}" for n in INTERVALS for e in ("", "_ci_low", "_ci_high"))):
            assert _num(cost[p][c]) == pytest.approx(want[c], rel=1e-15), (p, c)
    assert render.NO_SPEND not in text
    by_spend = _values(page, "cost_brand")
    assert len(by_spend) == data.TOP_COST_BRANDS
    assert [_num(r["spend_fen"]) for r in by_spend.values()] == [1_000.0 * i for i in range(14, 4, -1)]
    assert all(r["brand_name"] == names[b] for b, r in by_spend.items())
    assert "¥140.00" in text  # the top brand's spend in yuan (14,000 fen)
    assert {"spend (yuan)", "ROAS: attributed GMV / spend [95%]"} <= set(_chart_texts(page, "cost_platform"))

    # Block 4: ROI(T+x) of every brand with spend; the chart's lines: the 8 with the most spend at T+30.
    roi = _values(page, "roi_curve")
    brands = list(dict.fromkeys(k.split(":")[1] for k in roi))
    ranked = pd.read_csv(settings.seeds / "brands.csv", dtype=str, keep_default_na=False)["brand_id"][:10].tolist()
    assert brands == [*ranked[:9][::-1], ranked[9]]  # most spend at T+30 first; the 10th has spend at T+1 only
    for key, row in roi.items():
        _, b, x = key.split(":")
        i, x = ranked.index(b), int(x)
        assert row["brand_name"] == names[b] and row["x_days"] == str(x)
        assert _num(row["gmv_fen"]) == 50.0 * x * (i + 1)
        assert row["is_decision_cycle"] == ("true" if x == 10 else "false")
        assert row["cohort_end_dt"] == (DAY - timedelta(days=x)).isoformat()
        spend = _num(row["spend_fen"])
        assert (_num(row["roi"]) == 50.0 * x * (i + 1) / spend) if spend else row["roi"] == ""
    legend = _chart_texts(page, "roi_curve")
    assert {_shown(names[b]) for b in brands[: data.TOP_ROI_BRANDS]} <= set(legend)
    assert not {_shown(names[b]) for b in brands[data.TOP_ROI_BRANDS:]} & set(legend)
    assert "T+10" in legend and "decision cycle (category's seed window)" in legend
    # Each lede names its table.
    for table in ("agg_attribution_channels", "agg_cost", "agg_roi_curve"):
        assert f"{table}, as_of_dt = {DAY}" in text


def test_models_section_without_spend_says_so(tmp_path):
    page, source, text = _models_page(_models_home(tmp_path, spend=False))
    assert "no spend delivered in the window (spend/dt=* landing files)" in text
    charts_shown = {f["attrs"]["data-chart"] for f in page.find(page.root, "figure")}
    assert "attribution_shares" in charts_shown and not {"cost_platform", "roi_curve"} & charts_shown
    # The platform table still states what the window bought; costs and ROAS are undefined.
    cost = _values(page, "cost_platform")
    assert list(cost) == list(schemas.PLATFORMS)
    assert all(r["touches"] == "1000.0" and r["roas"] == "" and r["cost_per_touch"] == "" for r in cost.values())
    assert 'data-table="cost_brand"' not in source and 'data-table="roi_curve"' not in source
    assert "ROI(T+x) is undefined without spend" in text


def test_models_section_with_an_empty_snapshot_renders(tmp_path):
    """No snapshot as of the day (the models did not run): the section says so, nothing fails."""
    page, source, text = _models_page(_models_home(tmp_path, today=False))
    assert f"No snapshot as of {DAY} in these tables" in text
    assert str(STALE) not in source
    assert _values(page, "attribution_shares") == {} and _values(page, "attribution_verticals") == {}
    assert _values(page, "cost_platform") == {}
    assert "The snapshot holds no data-driven (markov, shapley) platform shares." in text
    assert "no spend delivered in the window (spend/dt=* landing files)" in text
    assert "no attribution snapshot as of this day" in _chart_texts(page, "attribution_shares")


def test_models_section_is_the_same_bytes_in_every_process(tmp_path):
    """The page is deterministic: two processes with different hash seeds write the same bytes."""
    import os
    import subprocess
    import sys

    settings = _models_home(tmp_path)
    script = (
        "import sys\nfrom datetime import date\nfrom pathlib import Path\n"
        "from pipelines.settings import Settings\nfrom pipelines.report import build_report\n"
        "home, url, out = sys.argv[1:4]\n"
        "s = Settings(home=Path(home), landing=Path(home) / 'landing', warehouse_url=url)\n"
        "p = build_report(s, date.fromisoformat(sys.argv[4]))\nPath(out).write_bytes(p.read_bytes())\n"
    )
    pages = []
    for seed in ("1", "2"):
        out = tmp_path / f"page-{seed}.html"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", script, str(settings.home), settings.resolved_warehouse_url(), str(out), DAY.isoformat()],
            check=True, env=env, cwd=Path(__file__).resolve().parent.parent,
        )
        pages.append(out.read_bytes())
    assert pages[0] == pages[1]
    assert b'<section id="models">' in pages[0]


def test_the_snapshot_tables_are_read_once_for_the_day(tmp_path):
    settings = _models_home(tmp_path)
    engine = _engine(settings)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, stmt, *rest: statements.append(stmt))
    try:
        figures = data.collect(settings, engine, DAY)
    finally:
        engine.dispose()
    for table in ("agg_attribution_channels", "agg_cost", "agg_roi_curve"):
        mine = [s for s in statements if f"FROM {table}" in s]
        assert len(mine) == 1, (table, mine)
        assert f"{table}.as_of_dt = " in mine[0].split("WHERE", 1)[-1], mine[0]
    # Only the rows shown come back: no creator rows, no other model's cost, no other day.
    assert set(figures.channels["channel_kind"]) == {"platform", "vertical"}
    assert set(figures.channels.loc[figures.channels["channel_kind"].eq("vertical"), "model"]) == set(data.VERTICAL_MODELS)
    assert set(figures.cost["model"]) == {"shapley"} and set(figures.cost["level"]) == {"platform", "brand"}
    assert len(figures.roi) == 11 * 6


def test_model_charts_draw_any_labels_without_warnings(caplog):
    """The new charts measure labels as the others do (no system font needed, nothing warned)."""
    labels = ["雅诗兰黛", "SK-II 💄", '<b onclick="x">&$1$</b>']
    shares = pd.DataFrame({
        "model": ["markov", "last_touch", "shapley"], "channel": labels,
        "share": [0.5, 0.3, 0.2], "share_ci_low": [0.55, np.nan, 0.1], "share_ci_high": [0.6, np.nan, 0.3],
    })
    roi = pd.DataFrame({
        "brand_id": ["a", "a", "b", "b"], "x_days": [1, 7, 1, 7], "roi": [0.5, 1.5, np.nan, 2.0],
        "is_decision_cycle": [False, True, False, True], "is_complete": [True, False, True, True],
    })
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib"):
        warnings.simplefilter("error")
        drawn = [charts.shares(shares, labels), charts.roi_curve(roi, ["a", "b"], labels[:2])]
        drawn.append(charts.shares(shares.iloc[:0], []))
        drawn.append(charts.roi_curve(roi.iloc[:0], [], []))
    assert caplog.records == []
    assert {_shown(s) for s in labels} <= set(_svg_texts(drawn[0]))
    assert {_shown(s) for s in labels[:2]} <= set(_svg_texts(drawn[1]))
    assert "no ROI: no spend in the cohorts" in _svg_texts(drawn[3])


def test_tied_sentence_names_the_pairs_in_plain_words():
    def rows(ties: dict[str, dict[str, str]]) -> pd.DataFrame:
        return pd.DataFrame([
            {"model": m, "channel_kind": "platform", "channel": p, "tied_with": ties.get(m, {}).get(p)}
            for m in schemas.DATA_DRIVEN_MODELS for p in schemas.PLATFORMS
        ])

    every = {p: "|".join(q for q in schemas.PLATFORMS if q != p) for p in schemas.PLATFORMS}
    said = render.tied_sentence(rows({"markov": every, "shapley": {"weibo": "douyin"}}))
    assert "markov cannot tell any two of the 5 platforms apart; shapley cannot tell douyin from weibo." in said
    assert "tell every platform apart from every other" in render.tied_sentence(rows({}))
    assert "no data-driven" in render.tied_sentence(rows({}).iloc[:0])
