"""Render the report: figures -> number tables and charts -> one self-contained HTML file.

Jinja2 with autoescaping renders the page, so every string from the data (brand names, note titles,
queries, creator ids, quarantine messages) is escaped text. Every chart sits next to a table of
the numbers it draws; each cell carries its raw value in ``data-value`` (integers as integers,
floats at full precision, empty for null), which tests compare with the warehouse.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .. import schemas, workers
from . import charts
from .data import (
    COST_MODEL,
    TOP_BRANDS,
    TOP_COST_BRANDS,
    TOP_ROI_BRANDS,
    TOP_VERTICALS,
    VERTICAL_MODELS,
    ReportData,
    channel_order,
    model_order,
    roi_brands,
    tied_pairs,
    top_cost_brands,
    top_verticals,
)

TEMPLATE = "template.html"


@dataclass
class Col:
    key: str
    header: str
    kind: str = "int"  # int, count, float, pct, yuan, text, list, date, bool, snippet
    link: str | None = None  # the row's column holding the cell's link target (an in-page anchor)

    @property
    def cls(self) -> str:
        return "text" if self.kind in ("text", "list", "date", "bool", "snippet") else "num"


@dataclass
class NumberTable:
    name: str
    columns: list[Col]
    rows: list[dict] = field(default_factory=list)


def _raw(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if kind == "int":
        return str(int(value))
    if kind in ("float", "pct", "yuan", "count"):
        return repr(float(value))
    if kind == "bool":
        return "true" if bool(value) else "false"
    return str(value)


def _text(value, kind: str) -> str:
    raw = _raw(value, kind)
    if raw == "":
        return "—"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "count":  # a count that may hold fractions (of orders, of users)
        v = float(value)
        return f"{int(v):,}" if v.is_integer() else f"{v:,.2f}"
    if kind == "list":  # |-joined names (the raw value stays as stored)
        return ", ".join(part for part in raw.split("|") if part) or "—"
    if kind == "float":
        return f"{float(value):.3f}"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "yuan":  # the raw value stays in fen
        return f"¥{float(value) / 100:,.2f}"
    if kind == "bool":
        return "yes" if value else "no"
    return raw


def _present(value) -> bool:
    return not (value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)))


def _cell(rec: dict, c: Col) -> dict:
    """One cell: its raw value and text; a link target when the column links; for a snippet, the
    text before the match, the match and the text after it (``before``, ``match``, ``after``)."""
    if c.kind == "snippet":
        parts = [rec.get(k) for k in ("before", "match", "after")]
        if not _present(parts[1]):
            return {"col": c.key, "value": "", "text": "—", "cls": c.cls}
        parts = [p if _present(p) else "" for p in parts]
        return {"col": c.key, "value": "".join(parts), "text": "".join(parts), "cls": c.cls, "parts": parts}
    cell = {"col": c.key, "value": _raw(rec.get(c.key), c.kind), "text": _text(rec.get(c.key), c.kind), "cls": c.cls}
    if c.link and _present(rec.get(c.link)):
        cell["href"] = str(rec[c.link])
    return cell


def number_table(name: str, df: pd.DataFrame, columns: list[Col], key: str) -> dict:
    rows = []
    for rec in df.to_dict("records"):
        rows.append({"key": str(rec[key]), "cells": [_cell(rec, c) for c in columns]})
    return {
        "name": name,
        "columns": [{"key": c.key, "header": c.header, "cls": c.cls} for c in columns],
        "rows": rows,
    }


def _brand(names: dict[str, str], brand_id: str) -> str:
    return names.get(brand_id, brand_id)


def _uplift_label(row, names: dict[str, str]) -> str:
    group = row["group"]
    if group == "overall":
        return "all brands, pooled"
    if group == "platform":
        return f"platform: {row['slice_value']}"
    if group == "vertical_match":
        return f"vertical {row['slice_value']}"
    return f"brand: {_brand(names, row['subject_id'])}"


def _creator_label(row) -> str:
    vertical = row.get("vertical")
    tail = f" · {vertical}" if isinstance(vertical, str) and vertical else ""
    return f"{row['platform']} {row['author_id'][:8]}{tail}"


def context(data: ReportData, report_path: Path, reports_root: Path) -> dict:
    """Everything the template shows: the headline figures and one entry per report section.

    The sections are drawn in the order their figures are read (``data.reading``: the small
    snapshot reads first), and shown in page order.
    """
    models = models_section(data)
    rate = search_back_rate_section(data)
    quality = data_quality_section(data, report_path, reports_root)
    up = uplift_section(data)
    attribution = attribution_section(data)
    content = content_section(data)
    funnel = funnel_section(data)
    boost = boost_section(data)
    return {
        "day": data.day.isoformat(),
        "start": data.start.isoformat(),
        "window_days": (data.day - data.start).days + 1,
        "warehouse_url": data.warehouse_url,
        "kpis": kpis(data),
        # The charts were drawn in the worker process meanwhile (``workers``): their data URIs, here.
        "sections": workers.settled([funnel, rate, up, attribution, models, content, boost, quality]),
        "index_href": _href(reports_root / "index.html", report_path),
    }


def _href(target: Path, report_path: Path) -> str:
    return os.path.relpath(target, report_path.parent).replace(os.sep, "/")


def _funnel(data: ReportData) -> pd.DataFrame:
    """Per brand over the window, with the brand's name and GMV in yuan for the chart."""
    funnel = data.funnel.copy()
    funnel["brand_name"] = funnel["brand_id"].map(lambda b: _brand(data.brand_names, b))
    funnel["seeded_gmv_yuan"] = funnel["seeded_gmv_fen"] / 100
    funnel["search_back_share"] = funnel["search_back_users"] / funnel["exposed_users"].where(funnel["exposed_users"] > 0)
    return funnel


def _rate_all_platforms(data: ReportData) -> pd.DataFrame:
    """The search-back rate rows over all platforms, indexed by exposure day."""
    return data.rate[data.rate["platform"].eq(schemas.ALL)].set_index("dt")


def _dq(data: ReportData) -> pd.DataFrame:
    """The day's dq_results with a status (pass, FAIL = critical failure, warn) and a row key."""
    dq = data.dq.copy()
    dq["status"] = [("pass" if s else ("FAIL" if sev == "critical" else "warn")) for s, sev in zip(dq["success"], dq["severity"], strict=True)]
    dq["key"] = dq["table_name"].astype(str) + ":" + dq["expectation"].astype(str) + ":" + dq["run_id"].astype(str)
    return dq


def funnel_section(data: ReportData) -> dict:
    funnel = _funnel(data)
    top = funnel.head(TOP_BRANDS)
    return {
        "id": "funnel",
        "title": "Funnel per brand",
        "lede": (
            f"Exposed users (distinct users with a touch, fct_touches) -> search-back users (distinct users "
            f"with a search pair seeded for the brand, fct_search_pairs) -> seeded orders and GMV "
            f"(fct_seeded_orders, by payment day), over {data.start} .. {data.day}. The chart shows the "
            f"{len(top)} brands with the most exposed users; the table lists every brand with activity."
        ),
        "blocks": [{
            "chart": "funnel",
            "src": workers.call(charts.funnel, top, top["brand_name"].tolist()),
            "alt": "Bar charts of exposed users, search-back users, seeded orders and GMV per brand",
            "table": number_table("funnel", funnel, [
                Col("brand_name", "brand", "text"), Col("brand_id", "brand_id", "text"),
                Col("exposed_users", "exposed users"), Col("search_back_users", "search-back users"),
                Col("search_back_share", "search-back / exposed", "pct"),
                Col("seeded_orders", "seeded orders"), Col("seeded_gmv_fen", "seeded GMV", "yuan"),
            ], "brand_id"),
        }],
    }


def search_back_rate_section(data: ReportData) -> dict:
    rate = data.rate
    wide = rate.pivot_table(index="dt", columns="platform", values="search_back_rate", aggfunc="first")
    all_rows = _rate_all_platforms(data)
    table = pd.DataFrame({"dt": sorted(rate["dt"].unique())})
    if len(table):
        table["exposed_users"] = table["dt"].map(all_rows["exposed_users"])
        table["searched_back_users"] = table["dt"].map(all_rows["searched_back_users"])
        table["search_back_rate"] = table["dt"].map(all_rows["search_back_rate"])
        table["is_final"] = table["dt"].map(all_rows["is_final"])
        for p in schemas.PLATFORMS:
            table[f"rate_{p}"] = table["dt"].map(wide[p]) if p in wide else float("nan")
    return {
        "id": "search-back-rate",
        "title": "Search-back rate (回搜率) over time",
        "lede": (
            "Per exposure day: of the (user, brand) pairs with a touch that day, the share followed by a "
            "search seeded for the brand within seed_window after the first touch (agg_brand_funnel_daily, "
            "summed over brands). Open markers: the day is not final yet (its seed window is still open)."
        ),
        "blocks": [{
            "chart": "search_back_rate",
            "src": workers.call(charts.search_back_rate, rate),
            "alt": "Line chart of the search-back rate per day and platform",
            "table": number_table("search_back_rate", table, [
                Col("dt", "exposure day", "date"), Col("exposed_users", "exposed (user, brand)"),
                Col("searched_back_users", "searched back"), Col("search_back_rate", "rate, all platforms", "pct"),
                *(Col(f"rate_{p}", p, "pct") for p in schemas.PLATFORMS), Col("is_final", "final", "bool"),
            ], "dt"),
        }],
    }


#: What every uplift figure of the report measures, in words (SPEC 5.7, level all; SPEC 5.10).
ESTIMAND = (
    "how much more likely a user seeded with a brand is to buy that brand within the conversion "
    "window after a search of its category than a user not seeded with it: units are (search, "
    "category, brand of the category), seeded when a touch for the brand came in the seed window "
    "before the search, converted by a paid order of that brand"
)


def reference_note(ref) -> str:
    """The reference of the uplift chart in words: planted lines only for a simulated world; the
    market's claim only as a labelled, unverified claim."""
    claim = (
        f"The {ref.claim:g}x often quoted for seeding is an unverified market claim, not a measurement "
        "of these data: no line is drawn for it."
    )
    if ref.source != "planted":
        return f"No ground truth is known for these data, so the chart has no reference line. {claim}"
    return (
        f"This is a simulated world (ground_truth.json): the dashed line is the planted effect for a vertical "
        f"match ({ref.value:g}x)"
        + (f", the dotted one for a mismatch ({ref.mismatch:g}x)" if ref.mismatch is not None else "")
        + (f"; the world's realised pooled uplift (final pairs) is {ref.realised:.2f}x" if ref.realised is not None else "")
        + f". {claim}"
    )


def uplift_section(data: ReportData) -> dict:
    up = data.uplift.copy()
    up["label"] = [_uplift_label(r, data.brand_names) for r in up.to_dict("records")]
    ref = data.reference
    return {
        "id": "uplift",
        "title": "Conversion uplift, seeded vs not seeded",
        "lede": (
            f"Each figure is {ESTIMAND}: cvr seeded / cvr not seeded, with the 95% interval by the log "
            "method (SPEC 5.7), over the window (the daily counts of agg_conversion_uplift summed over "
            "search days, then the ratio recomputed). The first row pools every brand's units (level all, "
            "the headline); then by platform of the last touch, by vertical match, and the brands with "
            "the most seeded pairs (defined uplift only). Engagement-adjusted: the same comparison within "
            "strata of the user's recent search activity and recent orders of the category "
            "(Mantel-Haenszel, SPEC 5.10; hollow markers), which removes the part of the naive figure "
            "owed to seeded users being more active shoppers. Units of one user are not independent, so "
            "both intervals are narrower than they should be. " + reference_note(ref)
        ),
        "blocks": [{
            "chart": "uplift",
            "src": workers.call(charts.forest, up, up["label"].tolist(), ref),
            "alt": "Forest plot of conversion uplift, naive and engagement-adjusted, with 95% intervals",
            "table": number_table("uplift", up, [
                Col("label", "row", "text"), Col("seeded_pairs", "seeded pairs"),
                Col("seeded_conversions", "seeded conv."), Col("baseline_pairs", "baseline pairs"),
                Col("baseline_conversions", "baseline conv."), Col("cvr_seeded", "cvr seeded", "pct"),
                Col("cvr_baseline", "cvr baseline", "pct"), Col("uplift", "uplift", "float"),
                Col("uplift_ci_low", "95% low", "float"), Col("uplift_ci_high", "95% high", "float"),
                Col("adjusted_uplift", "adjusted", "float"), Col("adjusted_uplift_ci_low", "adj. 95% low", "float"),
                Col("adjusted_uplift_ci_high", "adj. 95% high", "float"),
            ], "key"),
            "link": None,
        }, {
            "table": number_table("uplift_reference", pd.DataFrame([{
                "source": ref.source, "value": ref.value, "mismatch": ref.mismatch, "realised": ref.realised,
                "claim": ref.claim,
            }]), [Col("source", "reference", "text"), Col("value", "planted match (line)", "float"),
                  Col("mismatch", "planted mismatch (line)", "float"),
                  Col("realised", "realised pooled (simulated)", "float"),
                  Col("claim", "market claim (unverified, no line)", "float")],
                "source"),
        }],
    }


def attribution_section(data: ReportData) -> dict:
    cp = data.credit_platform.copy()
    cc = data.credit_creator.copy()
    cc["creator"] = [_creator_label(r) for r in cc.to_dict("records")] if len(cc) else []
    cc["key"] = cc["platform"].astype(str) + ":" + cc["author_id"].astype(str) if len(cc) else []
    model_cols = [Col(m, m, "yuan") for m in schemas.ATTRIBUTION_MODELS]
    return {
        "id": "attribution",
        "title": "Attribution by platform and by creator, every model side by side",
        "lede": (
            "Seeded GMV paid in the window split over the orders' eligible touches by each attribution model "
            "(fct_attribution_credits, credit_fen summed by the touch's platform and author). Every model "
            "distributes the same total; the differences show who opens and who closes."
        ),
        "blocks": [{
            "subtitle": "By platform",
            "chart": "attribution_platform",
            "src": workers.call(charts.credits, cp, cp["platform"].tolist(), "attributed GMV by platform"),
            "alt": "Grouped bars of attributed GMV per platform and model",
            "table": number_table("attribution_platform", cp, [Col("platform", "platform", "text"), *model_cols], "platform"),
        }, {
            "subtitle": f"Top {len(cc)} creators (by last-touch credit)",
            "chart": "attribution_creator",
            "src": workers.call(charts.credits, cc, cc["creator"].tolist() if len(cc) else [], "attributed GMV by creator"),
            "alt": "Grouped bars of attributed GMV per creator and model",
            "table": number_table("attribution_creator", cc, [
                Col("platform", "platform", "text"), Col("author_id", "author_id", "text"),
                Col("vertical", "vertical", "text"), *model_cols,
            ], "key") if len(cc) else number_table("attribution_creator", cc, [Col("platform", "platform", "text")], "platform"),
        }],
    }


#: What the models section says when the window has no spend (SPEC 5.11: spend is optional).
NO_SPEND = "no spend delivered in the window (spend/dt=* landing files)"
SHARE_COLUMNS = [
    Col("model", "model", "text"), Col("channel", "channel", "text"), Col("share", "share", "pct"),
    Col("share_ci_low", "95% low", "pct"), Col("share_ci_high", "95% high", "pct"),
    Col("tied_with", "cannot be told apart from", "list"), Col("markov_order", "Markov chain order (k)"),
]
COST_COLUMNS = [
    Col("spend_fen", "spend", "yuan"), Col("touches", "touches", "count"),
    Col("search_back_users", "search-back users", "count"), Col("seeded_orders", "seeded orders", "count"),
    Col("attributed_gmv_fen", "attributed GMV", "yuan"),
    *(
        Col(f"{name}{end}", f"{header}{suffix}", "yuan")
        for name, header in (("cost_per_touch", "cost / touch"), ("cost_per_search_back_user", "cost / search-back user"),
                             ("cost_per_seeded_order", "cost / seeded order"))
        for end, suffix in (("", ""), ("_ci_low", " 95% low"), ("_ci_high", " 95% high"))
    ),
    Col("roas", "ROAS", "float"), Col("roas_ci_low", "ROAS 95% low", "float"), Col("roas_ci_high", "ROAS 95% high", "float"),
]


def _with_key(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``df`` with a ``key`` column: the given columns joined by ``:`` (the table's row key)."""
    df = df.copy()
    df["key"] = df[list(columns)].astype(str).agg(":".join, axis=1) if len(df) else pd.Series(dtype=object)
    return df


def _by(df: pd.DataFrame, *orders) -> pd.DataFrame:
    """``df`` sorted by (column, key function) pairs, stably."""
    if df.empty:
        return df
    keys = [df[c].map(f) for c, f in orders]
    idx = sorted(range(len(df)), key=lambda i: tuple(k.iloc[i] for k in keys))
    return df.iloc[idx].reset_index(drop=True)


def _window_of(data: ReportData) -> str | None:
    """The model window of the snapshot: its first day .. the report's day, or None without rows."""
    starts = [d for frame in (data.channels, data.cost) for d in frame["window_start_dt"] if d is not None]
    return f"{min(starts)} .. {data.day}" if starts else None


def tied_sentence(channels: pd.DataFrame) -> str:
    """Which platform pairs the data-driven models cannot tell apart (from ``tied_with``), in words."""
    platform = channels[channels["channel_kind"].eq("platform")]
    models = [m for m in schemas.DATA_DRIVEN_MODELS if platform["model"].eq(m).any()]
    if not models:
        return "The snapshot holds no data-driven (" + ", ".join(schemas.DATA_DRIVEN_MODELS) + ") platform shares."
    pairs = {m: tied_pairs(channels, m) for m in models}
    named = " and ".join(models)
    if not any(pairs.values()):
        return (
            f"The data-driven models ({named}) tell every platform apart from every other: no bootstrap "
            "interval of a difference of two platforms' shares contains 0."
        )
    parts = [_tied_words(m, pairs[m], platform["model"].eq(m).sum()) for m in models]
    return (
        "Which platforms the data-driven models cannot tell apart (the bootstrap interval of the difference "
        "of their shares contains 0): " + "; ".join(parts) + "."
    )


def _tied_words(model: str, pairs: list[tuple[str, str]], channels: int) -> str:
    """One model's ties in words: none, every pair (said once), or the pairs one by one."""
    if not pairs:
        return f"{model} tells every platform apart"
    if channels > 2 and len(pairs) == channels * (channels - 1) // 2:
        return f"{model} cannot tell any two of the {channels} platforms apart"
    return f"{model} cannot tell " + _and(f"{a} from {b}" for a, b in pairs)


def _and(items) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _markov_sentence(channels: pd.DataFrame) -> str:
    orders = sorted({int(k) for k in channels.loc[channels["model"].eq("markov"), "markov_order"] if pd.notna(k)})
    if not orders:
        return ""
    return f" The Markov chain has order k = {', '.join(map(str, orders))} (chosen on held-out users)."


def _shares_block(data: ReportData) -> dict:
    platform = data.channels[data.channels["channel_kind"].eq("platform")]
    rows = _with_key(_by(platform, ("model", model_order), ("channel", channel_order)), "model", "channel")
    channels = sorted(set(platform["channel"]), key=channel_order)
    return {
        "subtitle": "Channel shares with 95% intervals",
        "lede": (
            f"Each model's share of the window's seeded GMV per platform (agg_attribution_channels, as_of_dt = "
            f"{data.day}, channel_kind platform): the five heuristic models (circles) and the data-driven "
            "Markov and Shapley models (diamonds on the shaded strips). Intervals come from a bootstrap over "
            "users: the users are drawn again with replacement, every model is refitted on each draw, and "
            "the 95% interval holds the middle 95% of the shares the draws give. Markov splits every order by "
            "the platforms' removal effects, which grow with their volume; Shapley splits each order by the "
            "platforms' own lift in conversion, so where the two differ, Shapley is the one that follows "
            "incremental effect (docs/attribution.md). "
            + tied_sentence(data.channels) + _markov_sentence(platform)
        ),
        "chart": "attribution_shares",
        "src": workers.call(charts.shares, rows, channels),
        "alt": "Each model's share per platform with its 95% bootstrap interval; data-driven models as diamonds",
        "table": number_table("attribution_shares", rows, SHARE_COLUMNS, "key"),
    }


def _verticals_block(data: ReportData) -> dict:
    rows = _with_key(top_verticals(data.channels, TOP_VERTICALS), "model", "channel")
    n = rows["channel"].nunique()
    return {
        "subtitle": "Channel shares by vertical",
        "lede": (
            f"The author's vertical (a category_id; 'unknown' when the author has none) as the channel, "
            f"models {', '.join(VERTICAL_MODELS)} only, for the {n} vertical{'s' if n != 1 else ''} with the "
            f"largest Shapley share (agg_attribution_channels, as_of_dt = {data.day}, channel_kind vertical). "
            "Intervals: the same bootstrap over users; a vertical is told apart only from verticals of the same model."
        ),
        "table": number_table("attribution_verticals", rows, SHARE_COLUMNS, "key"),
    }


def _cost_blocks(data: ReportData) -> list[dict]:
    cost = data.cost
    platform = _by(cost[cost["level"].eq("platform")], ("subject_id", channel_order))
    table = number_table("cost_platform", platform, [Col("subject_id", "platform", "text"), *COST_COLUMNS], "subject_id")
    source = f"agg_cost, as_of_dt = {data.day}, model {COST_MODEL}"
    if not (platform["spend_fen"] > 0).any():
        return [{
            "subtitle": "Cost and ROAS by platform",
            "lede": (
                f"{NO_SPEND}: every cost and ROAS is undefined. Touches, search-back users and seeded orders "
                f"per platform ({source}, level platform):"
            ),
            "table": table,
        }]
    brands = top_cost_brands(cost, TOP_COST_BRANDS).copy()
    brands["brand_name"] = brands["subject_id"].map(lambda b: _brand(data.brand_names, b))
    return [{
        "subtitle": "Cost and ROAS by platform",
        "lede": (
            f"Spend of the model window against what it bought, per platform ({source}, level platform: "
            "orders and GMV assigned by the Shapley model): spend, touches on the platform's notes, "
            "search-back users (last touch on the platform), seeded orders (fractions of orders) and "
            "attributed GMV; cost per touch, per search-back user and per seeded order, and ROAS (attributed "
            "GMV / spend), each with its 95% interval from the same bootstrap over users."
        ),
        "chart": "cost_platform",
        "src": workers.call(charts.cost, platform, platform["subject_id"].tolist()),
        "alt": "Spend, ROAS and cost per seeded order per platform, with 95% intervals",
        "table": table,
    }, {
        "subtitle": f"Top {len(brands)} brands by spend",
        "lede": f"The same figures per brand ({source}, level brand), the brands with the most spend.",
        "table": number_table("cost_brand", brands, [
            Col("brand_name", "brand", "text"), Col("subject_id", "brand_id", "text"), *COST_COLUMNS,
        ], "subject_id"),
    }]


def _roi_block(data: ReportData) -> dict:
    roi = data.roi
    x, ranked = roi_brands(roi)
    base = {"subtitle": "ROI(T+x) by brand"}
    source = f"agg_roi_curve, as_of_dt = {data.day}"
    if x is None:
        return {
            **base,
            "lede": (
                "No spend delivered in the cohorts' days (spend/dt=* landing files): ROI(T+x) is undefined "
                f"without spend ({source})."
            ),
        }
    rank = {b: i for i, b in enumerate(ranked)}
    rows = roi[roi["brand_id"].isin(rank)].copy()
    rows["_r"] = rows["brand_id"].map(rank)
    rows = rows.sort_values(["_r", "x_days"], kind="stable", ignore_index=True).drop(columns="_r")
    rows["brand_name"] = rows["brand_id"].map(lambda b: _brand(data.brand_names, b))
    rows = _with_key(rows, "category_id", "brand_id", "x_days")
    shown = ranked[:TOP_ROI_BRANDS]
    return {
        **base,
        "lede": (
            f"Return on spend as Xiaohongshu's AIPS measures it ({source}): for each x, a cohort of touch and "
            f"spend days ending x days before {data.day} (cohort start .. end in the table), its GMV the "
            "linear-model credit of orders paid within x days of the touch, over the brand's spend of those "
            f"days. One line per brand for the {len(shown)} brands with the most spend in the cohort of T+{x}; "
            "the star marks the brand's decision cycle (x = its category's seed window, rounded up); hollow "
            "markers: the cohort starts before the first data day (not complete). The table lists every brand "
            "with spend."
        ),
        "chart": "roi_curve",
        "src": workers.call(charts.roi_curve, rows, shown, [_brand(data.brand_names, b) for b in shown]),
        "alt": "ROI against days after the touch, one line per brand, decision cycles starred",
        "table": number_table("roi_curve", rows, [
            Col("brand_name", "brand", "text"), Col("brand_id", "brand_id", "text"),
            Col("category_id", "category", "text"), Col("x_days", "x (days)"),
            Col("cohort_start_dt", "cohort start", "date"), Col("cohort_end_dt", "cohort end", "date"),
            Col("is_decision_cycle", "decision cycle", "bool"), Col("is_complete", "complete", "bool"),
            Col("gmv_fen", "GMV", "yuan"), Col("spend_fen", "spend", "yuan"), Col("roi", "ROI", "float"),
        ], "key"),
    }


def models_section(data: ReportData) -> dict:
    """SPEC 5.11's snapshots as of the day: data-driven attribution beside the heuristic models,
    cost and ROAS, and ROI(T+x) per brand."""
    window = _window_of(data)
    empty = data.channels.empty and data.cost.empty and data.roi.empty
    return {
        "id": "models",
        "title": "Data-driven attribution, cost and ROI",
        "lede": (
            f"The models fitted over a reporting window, as of the end of {data.day} (the snapshot with as_of_dt = "
            f"{data.day}" + (f", window {window}" if window else "") + "): the data-driven Markov chain and "
            "Shapley attribution beside the five heuristic models, what the spend bought, and ROI(T+x) per "
            "brand. Read from agg_attribution_channels, agg_cost and agg_roi_curve."
            + (
                f" No snapshot as of {data.day} in these tables: they hold the one fitted as of the latest "
                "delivery day ingested (W, SPEC 5.11), and W is not this day, or the models have not run."
                if empty
                else ""
            )
        ),
        "blocks": [_shares_block(data), _verticals_block(data), *_cost_blocks(data), _roi_block(data)],
    }


def evidence_anchor(platform: str, note_id: str) -> str:
    """The in-page id of a top note's evidence block (a hash: note ids are data, ids must be safe)."""
    return "evidence-" + hashlib.sha256(f"{platform}\x00{note_id}".encode()).hexdigest()[:12]


def _evidence_blocks(data: ReportData, notes: pd.DataFrame) -> list[dict]:
    """One block per top note: every alias match note_brand_evidence holds for it."""
    evidence = data.evidence.copy()
    evidence["brand_name"] = evidence["brand_id"].map(lambda b: _brand(data.brand_names, b))
    evidence["key"] = (
        evidence["brand_id"].astype(str) + ":" + evidence["field"].astype(str) + ":"
        + evidence["field_index"].astype(str) + ":" + evidence["position"].astype(str)
    )
    columns = [
        Col("brand_name", "brand", "text"), Col("brand_id", "brand_id", "text"), Col("alias", "alias matched", "text"),
        Col("field", "field", "text"), Col("field_index", "tag index"), Col("position", "position"),
        Col("rule", "rule", "text"), Col("is_counted", "counts", "bool"), Col("context", "confirmed by", "text"),
        Col("snippet", "text around the match (normalised)", "snippet"),
    ]
    blocks = []
    for note in notes.to_dict("records"):
        mine = evidence[evidence["platform"].eq(note["platform"]) & evidence["note_id"].eq(note["note_id"])]
        blocks.append({
            "anchor": note["evidence_href"][1:],
            "key": note["key"],
            "heading": f"{note['platform']} {note['note_id']}" + (f" · {note['title']}" if note["title"] else ""),
            "table": number_table(f"evidence:{note['key']}", mine, columns, "key"),
        })
    return blocks


def content_section(data: ReportData) -> dict:
    """Top notes and search-back queries: text from the lake, shown as written; each top note
    linked to why it counts as mentioning its brands (note_brand_evidence)."""
    notes = data.top_notes.copy()
    if len(notes):
        notes["key"] = notes["platform"].astype(str) + ":" + notes["note_id"].astype(str)
        notes["evidence_href"] = ["#" + evidence_anchor(p, n) for p, n in zip(notes["platform"], notes["note_id"], strict=True)]
        counted = data.evidence[data.evidence["is_counted"].astype(bool)]
        brands = counted.groupby(["platform", "note_id"], sort=False)["brand_id"].agg(
            lambda b: ", ".join(_brand(data.brand_names, x) for x in dict.fromkeys(b))
        )
        notes["brands"] = [brands.get((p, n), "no match recorded") for p, n in zip(notes["platform"], notes["note_id"], strict=True)]
    return {
        "id": "content",
        "title": "What seeded: top notes and search-back queries",
        "lede": "Notes with the most last-touch credit in the window (titles from the lake's notes), and the most "
        "frequent queries of seeded searches (queries from the lake's searches). Text is shown as written.",
        "blocks": [{
            "subtitle": "Top notes",
            "table": number_table("top_notes", notes, [
                Col("platform", "platform", "text"), Col("note_id", "note_id", "text"),
                Col("title", "title", "text"), Col("author_id", "author_id", "text"),
                Col("credit_fen", "last-touch credit", "yuan"),
                Col("brands", "brands mentioned (evidence)", "text", link="evidence_href"),
            ], "key") if len(notes) else number_table("top_notes", notes, [Col("title", "title", "text")], "title"),
        }, {
            "subtitle": "Why each top note counts as mentioning its brands",
            "lede": (
                "Every match of a brand alias in the note (the lake's note_brand_evidence, SPEC 4): the alias as "
                "matched, the field (title, text or a tag, by its index), the character position in the "
                "normalised field (NFKC, case-folded, Simplified) and the rule. A plain alias counts; a context "
                "alias (an everyday word, an acronym or another company's name) counts only when the note also "
                "holds a keyword of the brand's category or another alias of the brand, named under "
                "'confirmed by'. The snippet is the normalised field around the match ('—' when the note's "
                "latest version no longer holds it there)."
            ),
            "evidence": _evidence_blocks(data, notes) if len(notes) else [],
        }, {
            "subtitle": "Top search-back queries",
            "table": number_table("top_queries", data.top_queries, [
                Col("query", "query", "text"), Col("searches", "seeded searches"),
            ], "query"),
        }],
    }


def boost_section(data: ReportData) -> dict:
    boost = data.boost.copy()
    boost["bin"] = [f"[{lo:.1f}, {hi:.1f}{']' if i == len(boost) - 1 else ')'}" for i, (lo, hi) in enumerate(zip(boost["bin_low"], boost["bin_high"], strict=True))]
    st = data.boost_stats
    return {
        "id": "boost",
        "title": "Brand boost scores",
        "lede": (
            f"Distribution of brand_boost_signals scores as of the end of {data.day}: {st['signals']:,} "
            f"(user, brand) signals for {st['users']:,} users (each user's top 50)"
            + (f", median score {st['median']:.3f}." if st["signals"] else ".")
        ),
        "blocks": [{
            "chart": "boost",
            "src": workers.call(charts.boost, boost),
            "alt": "Histogram of boost scores",
            "table": number_table("boost", boost, [
                Col("bin", "score bin", "text"), Col("bin_low", "from", "float"), Col("bin_high", "to", "float"),
                Col("signals", "signals"),
            ], "bin"),
        }],
    }


def data_quality_section(data: ReportData, report_path: Path, reports_root: Path) -> dict:
    """The day's validation by table and its failures, a link to Data Docs, ingestion and quarantine."""
    docs_index = reports_root / "data_docs" / "index.html"
    dq = _dq(data)
    if len(dq):
        summary = dq.groupby("table_name").agg(
            checks=("success", "size"), passed=("success", "sum"),
            failed_critical=("status", lambda s: int((s == "FAIL").sum())), failed_warning=("status", lambda s: int((s == "warn").sum())),
        ).reset_index()
        summary["passed"] = summary["passed"].astype("int64")
    else:
        summary = pd.DataFrame(columns=["table_name", "checks", "passed", "failed_critical", "failed_warning"])
    failed = dq[~dq["success"].astype(bool)]
    q = data.quarantine.copy()
    q["key"] = q["source"].astype(str) + ":" + q["reason"].astype(str) if len(q) else []
    return {
        "id": "data-quality",
        "title": "Data quality",
        "lede": (
            f"Validation results of {data.day} (dq_results): "
            + (f"{len(dq)} checks, {int((dq['status'] == 'FAIL').sum())} critical failures, "
               f"{int((dq['status'] == 'warn').sum())} warnings." if len(dq) else "no validation results recorded for this day.")
            + " Ingestion of the day's delivery (ingest_files) and the reasons rows were quarantined (quarantine)."
        ),
        "blocks": [{
            "subtitle": "Validation by table",
            "table": number_table("dq_summary", summary, [
                Col("table_name", "table", "text"), Col("checks", "checks"), Col("passed", "passed"),
                Col("failed_critical", "failed (critical)"), Col("failed_warning", "failed (warning)"),
            ], "table_name"),
            "link": {
                "href": _href(docs_index, report_path),
                "kind": "data_docs",
                "text": "Open the Data Docs (every expectation, with its observed values)",
                "note": "" if docs_index.exists() else "(not built yet for this home)",
            },
        }, {
            "subtitle": "Failed checks",
            "table": number_table("dq_failures", failed, [
                Col("table_name", "table", "text"), Col("expectation", "expectation", "text"),
                Col("severity", "severity", "text"), Col("observed", "observed", "text"), Col("details", "details", "text"),
            ], "key"),
        }, {
            "subtitle": "Ingestion",
            "table": number_table("ingest", data.ingest, [
                Col("source", "source", "text"), Col("files", "files"), Col("input_rows", "rows in"),
                Col("accepted_rows", "accepted"), Col("quarantined_rows", "quarantined"),
            ], "source"),
        }, {
            "subtitle": "Quarantine reasons",
            "table": number_table("quarantine", q, [
                Col("source", "source", "text"), Col("reason", "reason", "text"), Col("rows", "rows"),
                Col("example", "example message", "text"),
            ], "key") if len(q) else number_table("quarantine", q, [Col("reason", "reason", "text")], "reason"),
        }],
    }


def kpis(data: ReportData) -> list[dict]:
    """The headline figures above the sections."""
    funnel = data.funnel
    overall = data.uplift[data.uplift["group"].eq("overall")]
    all_rows = _rate_all_platforms(data)
    day_rate = all_rows["search_back_rate"].get(data.day) if len(all_rows) else None
    dq = _dq(data)
    return [
        {"key": "seeded_orders", "label": "seeded orders in the window", "text": f"{int(funnel['seeded_orders'].sum()):,}"},
        {"key": "seeded_gmv", "label": "seeded GMV in the window", "text": _text(float(funnel["seeded_gmv_fen"].sum()), "yuan")},
        {"key": "uplift", "label": "seeded users buy the brand they were seeded with: this many times as likely "
                                    "as users not seeded with it (all brands pooled) [95%]", "text": _ratio(overall, "uplift")},
        {"key": "adjusted_uplift", "label": "the same, engagement-adjusted (within strata of recent search "
                                             "activity and orders) [95%]", "text": _ratio(overall, "adjusted_uplift")},
        {"key": "search_back_rate", "label": f"search-back rate of {data.day} (open)", "text": _text(day_rate, "pct")},
        {"key": "dq", "label": "data-quality failures (critical)", "text": str(int((dq["status"] == "FAIL").sum())) if len(dq) else "not validated"},
    ]


def _ratio(rows: pd.DataFrame, column: str) -> str:
    """``2.71x [2.55, 2.88]`` of the first row's figure and interval, or a dash when undefined."""
    if not len(rows) or pd.isna(rows[column].iloc[0]):
        return "—"
    r = rows.iloc[0]
    return f"{r[column]:.2f}x [{r[f'{column}_ci_low']:.2f}, {r[f'{column}_ci_high']:.2f}]"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment (one per process: it keeps the compiled page template)."""
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(data: ReportData, report_path: Path, reports_root: Path) -> str:
    return environment().get_template(TEMPLATE).render(**context(data, report_path, reports_root))


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_index(reports_root: Path, folder: str) -> str:
    """The list of every report under ``reports_root/folder``, newest first."""
    days = sorted((p.stem for p in (reports_root / folder).glob("*.html") if _is_day(p.stem)), reverse=True)
    return _index_template().render(days=days, folder=folder, data_docs=(reports_root / "data_docs" / "index.html").exists())


@lru_cache(maxsize=1)
def _index_template():
    return environment().from_string(INDEX_TEMPLATE)


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


INDEX_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>seedfunnel reports</title>
<style>body{font:14px/1.5 system-ui,sans-serif;margin:32px;color:#24292f}a{color:#0969da}li{margin:2px 0}.latest{font-weight:600}</style>
</head><body>
<h1>seedfunnel reports</h1>
{% if days %}<p>Latest: <a class="latest" id="latest" href="{{ folder }}/{{ days[0] }}.html">{{ days[0] }}</a></p>{% else %}<p>No reports yet.</p>{% endif %}
<p><a href="data_docs/index.html">Data Docs</a>{% if not data_docs %} (not built yet){% endif %}</p>
<h2>Attribution reports</h2>
<ul>{% for d in days %}<li><a href="{{ folder }}/{{ d }}.html">{{ d }}</a></li>{% endfor %}</ul>
</body></html>
"""
