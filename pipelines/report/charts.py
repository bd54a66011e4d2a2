"""The report's charts: matplotlib figures rendered to SVG and embedded as data URIs.

Text stays text (``svg.fonttype = none``): labels are ``<text>`` elements the browser draws with
its own fonts, so Chinese brand names need no font on the machine that renders the report, stay
searchable and selectable, and an embedded image can run nothing whatever the labels say (labels
from data also have matplotlib's mathtext ``$`` escaped). The SVG asks the browser for
``BROWSER_FONTS``.

matplotlib still measures the text to lay the charts out. It measures with DejaVu Sans (shipped
with matplotlib) and, for every character DejaVu Sans lacks (Chinese, Japanese, Korean, emoji),
with ``FALLBACK``: a font of empty glyphs one em wide, built here with fontTools, as wide as an
ideograph in any CJK font. So the layout is the same on every machine, whatever fonts it has, and
matplotlib never reports a missing glyph.
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from .. import schemas  # noqa: E402

LATIN = "DejaVu Sans"
FALLBACK = "seedfunnel wide fallback"
FALLBACK_VERSION = 1  # bump when _write_fallback_font changes: the file is cached by name
# Code points the fallback covers: all of the BMP but the surrogates, emoji and symbols, and the
# CJK extension planes. DejaVu Sans is asked first, so the fallback serves only what it lacks.
FALLBACK_RANGES = ((0x0000, 0xD7FF), (0xE000, 0xFFFD), (0x1F000, 0x1FAFF), (0x20000, 0x3134F))
# What the SVG asks the browser for: DejaVu Sans (what matplotlib measured Latin text with), then
# the common CJK families of Linux, macOS and Windows, then the browser's own sans-serif.
BROWSER_FONTS = (
    "'DejaVu Sans', 'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', "
    "'Hiragino Sans GB', 'Microsoft YaHei', 'WenQuanYi Zen Hei', sans-serif"
)
MODEL_COLORS = dict(
    zip(schemas.ATTRIBUTION_MODELS, ("#1f6feb", "#8250df", "#1a7f37", "#bf8700", "#cf222e"), strict=True)
)
#: The data-driven models (SPEC 5.11): darker colours, and diamonds on a shaded band in ``shares``.
DATA_DRIVEN_COLORS = dict(zip(schemas.DATA_DRIVEN_MODELS, ("#0a3069", "#953800"), strict=True))
ALL_MODEL_COLORS = {**MODEL_COLORS, **DATA_DRIVEN_COLORS}
#: One colour per line of ``roi_curve`` (brands in rank order).
SERIES_COLORS = ("#1f6feb", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a3069", "#bc4c00", "#57606a")
PLATFORM_COLORS = dict(
    zip(schemas.PLATFORMS, ("#ff2442", "#111111", "#00a1d6", "#ff6a00", "#e6162d"), strict=True)
)
#: The figure's margin around its axes and labels, in font sizes (matplotlib's default is 1.08).
PAD = 1.4
INK = "#24292f"
MUTED = "#8c959f"
# Characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile(r"[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _write_fallback_font(path: Path, weight: int) -> None:
    """A TrueType font whose every glyph is empty and 1 em wide: widths for layout, no drawing."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import newTable
    from fontTools.ttLib.tables._c_m_a_p import CmapSubtable

    upm, ascent, descent = 1000, 880, -120  # the usual vertical metrics of a CJK font
    fb = FontBuilder(upm, isTTF=True)
    fb.setupGlyphOrder([".notdef", "wide"])
    # Format 13 maps whole ranges to one glyph: a few bytes however many code points.
    cmap = CmapSubtable.newSubtable(13)
    cmap.platformID, cmap.platEncID, cmap.language = 3, 10, 0
    cmap.cmap = {cp: "wide" for lo, hi in FALLBACK_RANGES for cp in range(lo, hi + 1)}
    fb.font["cmap"] = newTable("cmap")
    fb.font["cmap"].tableVersion = 0
    fb.font["cmap"].tables = [cmap]
    empty = TTGlyphPen(None).glyph()
    fb.setupGlyf({".notdef": empty, "wide": empty})
    fb.setupHorizontalMetrics({".notdef": (upm // 2, 0), "wide": (upm, 0)})
    fb.setupHorizontalHeader(ascent=ascent, descent=descent)
    fb.setupNameTable({"familyName": FALLBACK, "styleName": "Bold" if weight >= 700 else "Regular"})
    fb.setupOS2(
        sTypoAscender=ascent, sTypoDescender=descent, usWinAscent=ascent, usWinDescent=-descent,
        usWeightClass=weight,
    )
    fb.setupPost()
    fb.font["head"].created = fb.font["head"].modified = 0  # the same bytes on every build
    fb.save(str(path))


@lru_cache(maxsize=1)
def fallback_font() -> tuple[Path, ...]:
    """Build the fallback font once (regular and bold, in matplotlib's cache folder) and register it."""
    paths = []
    for weight in (400, 700):  # bold for titles: matplotlib warns when a weight is missing
        path = Path(matplotlib.get_cachedir()) / f"seedfunnel-wide-fallback-{weight}-v{FALLBACK_VERSION}.ttf"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            _write_fallback_font(tmp, weight)
            os.replace(tmp, path)  # atomic: parallel processes may build it at the same time
        font_manager.fontManager.addfont(str(path))
        paths.append(path)
    return tuple(paths)


def font_family() -> list[str]:
    """The families matplotlib measures text with, in fallback order."""
    fallback_font()
    return [LATIN, FALLBACK]


@contextmanager
def _style():
    rc = {
        "font.family": font_family(),
        "svg.fonttype": "none",
        "svg.hashsalt": "seedfunnel",  # stable ids: the same data renders the same bytes
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": MUTED,
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
        "axes.titleweight": "bold",
        "axes.titlesize": 11,
        "font.size": 9,
        "axes.unicode_minus": False,
    }
    with matplotlib.rc_context(rc):
        yield


def _subplots(*args, figsize, **kwargs):
    """``pyplot.subplots`` without pyplot: a Figure on an Agg canvas, never registered with
    pyplot's figure manager, so nothing has to close it (the same figure, drawn the same)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kwargs)


def layout(fig) -> None:
    """Fit the axes and their labels in the figure, with a margin the browser's own fonts can use.

    Once: ``tight_layout`` leaves a placeholder layout engine behind, and ``savefig`` draws a
    figure with any engine twice (once to lay it out again); without one it draws it once."""
    fig.tight_layout(pad=PAD)
    fig.set_layout_engine(None)


def label(text: object, limit: int = 28) -> str:
    """Data text made safe for a matplotlib label: no mathtext, bounded length, one line, and only
    characters XML allows (the label becomes text of the SVG)."""
    s = " ".join(_NOT_XML.sub("", str(text)).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def svg(fig) -> bytes:
    """The figure as SVG, its text as ``<text>`` in ``BROWSER_FONTS``."""
    buf = io.BytesIO()
    # The whole figure as laid out (``layout``), not its tight box: that would draw it twice.
    fig.savefig(buf, format="svg", metadata={"Date": None})
    # matplotlib names the fonts it measured with in each element's style; one rule in the SVG's
    # own style sheet (the first <style>, before any text) gives the browser the fonts to draw with.
    opening = b'<style type="text/css">'
    rule = b"text{font-family:" + BROWSER_FONTS.encode("ascii") + b" !important}"
    return buf.getvalue().replace(opening, opening + rule, 1)


def _data_uri(fig) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg(fig)).decode("ascii")


def _empty(ax, message: str = "no data in the window") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:,.0f}"


def funnel(rows: pd.DataFrame, labels: Sequence[str]) -> str:
    """Four panels sharing the brand axis: exposed users, search-back users, seeded orders, GMV."""
    panels = [
        ("exposed_users", "exposed users", "#1f6feb"),
        ("search_back_users", "search-back users", "#8250df"),
        ("seeded_orders", "seeded orders", "#1a7f37"),
        ("seeded_gmv_yuan", "seeded GMV (yuan)", "#bf8700"),
    ]
    with _style():
        fig, axes = _subplots(1, 4, figsize=(11, 0.32 * max(len(rows), 3) + 1.2), sharey=True)
        y = np.arange(len(rows))
        for ax, (col, title, color) in zip(axes, panels, strict=True):
            ax.set_title(title, fontsize=10)
            if rows.empty:
                _empty(ax)
                continue
            values = rows[col].to_numpy(dtype="float64")
            ax.barh(y, values, color=color, height=0.7)
            top = max(values.max(), 1.0)
            ax.set_xlim(0, top * 1.3)
            for yi, v in zip(y, values, strict=True):
                ax.text(v + top * 0.02, yi, _fmt(v), va="center", fontsize=8, color=INK)
            ax.set_xticks([])
            ax.spines["bottom"].set_visible(False)
        if not rows.empty:
            axes[0].set_yticks(y, [label(s) for s in labels])
            axes[0].invert_yaxis()
        layout(fig)
        return _data_uri(fig)


def search_back_rate(rate: pd.DataFrame) -> str:
    """Search-back rate per exposure day: all platforms bold, each platform thin; open markers = not final."""
    with _style():
        fig, ax = _subplots(figsize=(10, 3.6))
        if rate.empty:
            _empty(ax)
            return _data_uri(fig)
        for platform in (*schemas.PLATFORMS, schemas.ALL):
            d = rate[rate["platform"].eq(platform)].sort_values("dt")
            if d.empty:
                continue
            x = pd.to_datetime(d["dt"].astype(str))
            y = d["search_back_rate"].to_numpy(dtype="float64") * 100
            is_all = platform == schemas.ALL
            color = INK if is_all else PLATFORM_COLORS.get(platform, MUTED)
            ax.plot(x, y, color=color, lw=2.6 if is_all else 1.1, alpha=1 if is_all else 0.75,
                    label="all platforms" if is_all else platform, zorder=3 if is_all else 2)
            final = d["is_final"].to_numpy(dtype=bool)
            ax.scatter(x[final], y[final], color=color, s=22 if is_all else 10, zorder=4)
            ax.scatter(x[~final], y[~final], facecolor="white", edgecolor=color, s=22 if is_all else 10, zorder=4)
            if is_all:
                for xi, yi in zip(x, y, strict=True):
                    if np.isfinite(yi):
                        ax.annotate(f"{yi:.1f}%", (xi, yi), textcoords="offset points", xytext=(0, 7),
                                    ha="center", fontsize=8, color=INK)
        ax.set_ylabel("search-back rate (%)")
        ax.set_ylim(bottom=0, top=max(float(np.nanmax(rate["search_back_rate"].to_numpy(dtype="float64"), initial=0)) * 118, 1))
        days = pd.to_datetime(pd.Series(rate["dt"].unique()).astype(str))
        if len(days) == 1:  # matplotlib would widen a one-day axis to years of daily ticks
            ax.set_xlim(days.iloc[0] - pd.Timedelta(days=1), days.iloc[0] + pd.Timedelta(days=1))
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(days) // 15)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        ax.set_xlabel("exposure day")
        ax.legend(ncols=6, fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        layout(fig)
        return _data_uri(fig)


def forest(rows: pd.DataFrame, labels: Sequence[str], reference) -> str:
    """Uplift with 95% intervals (log axis), grouped, the engagement-adjusted figure as a hollow
    marker below each; the planted effect as lines only for a simulated world (never the claim)."""
    with _style():
        n = len(rows)
        fig, ax = _subplots(figsize=(9, 0.3 * max(n, 4) + 1.4))
        y = np.arange(n)
        ax.axvline(1.0, color=MUTED, lw=1, ls=":", label="no effect (1x)")
        lines = [1.0]
        if reference.source == "planted" and reference.value is not None:
            ax.axvline(reference.value, color="#cf222e", lw=1.6, ls="--",
                       label=f"planted effect (simulated world): vertical match {reference.value:g}x")
            lines.append(reference.value)
            if reference.mismatch is not None:
                ax.axvline(reference.mismatch, color="#cf222e", lw=1, ls=":", alpha=0.7,
                           label=f"planted effect: vertical mismatch {reference.mismatch:g}x")
                lines.append(reference.mismatch)
        if n and "adjusted_uplift" in rows.columns:
            a = rows["adjusted_uplift"].to_numpy(dtype="float64")
            alo = rows["adjusted_uplift_ci_low"].to_numpy(dtype="float64")
            ahi = rows["adjusted_uplift_ci_high"].to_numpy(dtype="float64")
            adj_ok = np.isfinite(a)
            ax.hlines(y[adj_ok] + 0.25, alo[adj_ok], ahi[adj_ok], color="#8250df", lw=1.0, alpha=0.8)
            ax.scatter(a[adj_ok], y[adj_ok] + 0.25, facecolors="none", edgecolors="#8250df", s=22, zorder=3,
                       label="engagement-adjusted (SPEC 5.10)")
            lines += [*alo[adj_ok], *ahi[adj_ok]]
        overall = np.flatnonzero(rows["group"].eq("overall").to_numpy()) if n else []
        if reference.source == "planted" and reference.realised is not None and len(overall):
            ax.scatter([reference.realised], [overall[0]], marker="x", color="#cf222e", s=40, zorder=4,
                       label=f"realised pooled uplift (simulated world) {reference.realised:.2f}x")
            lines.append(reference.realised)
        if n:
            u = rows["uplift"].to_numpy(dtype="float64")
            lo = rows["uplift_ci_low"].to_numpy(dtype="float64")
            hi = rows["uplift_ci_high"].to_numpy(dtype="float64")
            ok = np.isfinite(u)
            colors = np.where(rows["group"].eq("overall"), INK, "#1f6feb")
            ax.hlines(y[ok], lo[ok], hi[ok], color=colors[ok], lw=1.6)
            ax.scatter(u[ok], y[ok], color=colors[ok], s=np.where(rows["group"].eq("overall"), 60, 28)[ok], zorder=3)
            for yi, ui, li, hi_ in zip(y[ok], u[ok], lo[ok], hi[ok], strict=True):
                ax.annotate(f"{ui:.2f} [{li:.2f}, {hi_:.2f}]", (hi_, yi), textcoords="offset points",
                            xytext=(4, -3), fontsize=7.5, color=INK)
            for yi in y[~ok]:
                ax.text(1.0, yi, "  undefined (a count is 0)", va="center", fontsize=7.5, color=MUTED)
            ax.set_yticks(y, [label(s, 36) for s in labels])
            groups = rows["group"].to_numpy()
            for i in range(1, n):
                if groups[i] != groups[i - 1]:
                    ax.axhline(i - 0.5, color="#d0d7de", lw=0.8)
            ax.set_ylim(n - 0.5, -0.5)
            finite = np.concatenate([lo[ok], hi[ok], np.asarray(lines, dtype="float64")])
            finite = finite[np.isfinite(finite) & (finite > 0)]
            ax.set_xscale("log")
            ax.set_xlim(max(finite.min() / 1.5, 1e-3), finite.max() * 4)
        else:
            _empty(ax)
        ax.set_xlabel("times as likely to buy the seeded brand, seeded vs not seeded (log scale, 95% interval)")
        ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2)
        layout(fig)
        return _data_uri(fig)


def credits(wide: pd.DataFrame, labels: Sequence[str], title: str) -> str:
    """Attributed GMV (yuan) under each model side by side, one group of bars per row."""
    models = list(schemas.ATTRIBUTION_MODELS)
    with _style():
        n = len(wide)
        fig, ax = _subplots(figsize=(10, 0.5 * max(n, 3) + 1.2))
        if not n:
            _empty(ax)
            return _data_uri(fig)
        y = np.arange(n)
        h = 0.8 / len(models)
        top = max(float(wide[models].to_numpy().max()) / 100, 1.0)
        for i, m in enumerate(models):
            v = wide[m].to_numpy(dtype="float64") / 100
            ax.barh(y - 0.4 + h * (i + 0.5), v, height=h, color=MODEL_COLORS[m], label=m)
            for yi, vi in zip(y - 0.4 + h * (i + 0.5), v, strict=True):
                ax.text(vi + top * 0.01, yi, _fmt(vi), va="center", fontsize=6.5, color=INK)
        ax.set_yticks(y, [label(s, 32) for s in labels])
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.15)
        ax.set_xlabel(f"{title} (yuan)")
        ax.legend(ncols=5, fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        layout(fig)
        return _data_uri(fig)


def boost(hist: pd.DataFrame) -> str:
    """Histogram of brand boost scores as of the day, with the count on each bar."""
    with _style():
        fig, ax = _subplots(figsize=(9, 3.2))
        counts = hist["signals"].to_numpy(dtype="float64")
        if counts.sum() == 0:
            _empty(ax, "no boost signals for this day")
            return _data_uri(fig)
        left = hist["bin_low"].to_numpy(dtype="float64")
        width = (hist["bin_high"] - hist["bin_low"]).to_numpy(dtype="float64")
        ax.bar(left, counts, width=width * 0.92, align="edge", color="#8250df")
        for x, w, c in zip(left, width, counts, strict=True):
            ax.text(x + w / 2, c, f"{c:,.0f}", ha="center", va="bottom", fontsize=8, color=INK)
        ax.set_xlim(0, 1)
        ax.set_xticks(np.linspace(0, 1, len(left) + 1))
        ax.set_xlabel("score = 1 - exp(-raw)")
        ax.set_ylabel("(user, brand) signals")
        layout(fig)
        return _data_uri(fig)


def _interval(ax, y, value, low, high, color, *, marker="o", size=22, lw=1.4, label=None, zorder=3):
    """Points at ``value`` with their intervals [low, high] as horizontal error bars (capped).

    Drawn as lines, not ``errorbar``: a bootstrap percentile interval need not contain its point
    estimate, and errorbar refuses such negative lengths. A missing interval draws the point alone;
    a missing value draws nothing.
    """
    y, value, low, high = (np.asarray(a, dtype="float64") for a in (y, value, low, high))
    bar = np.isfinite(low) & np.isfinite(high) & np.isfinite(value)
    ax.hlines(y[bar], low[bar], high[bar], color=color, lw=lw, zorder=zorder - 1)
    ax.scatter(np.r_[low[bar], high[bar]], np.r_[y[bar], y[bar]], marker="|", color=color, s=size * 0.8,
               linewidths=lw, zorder=zorder - 1)
    ok = np.isfinite(value)
    ax.scatter(value[ok], y[ok], marker=marker, color=color, s=size, zorder=zorder, label=label,
               edgecolors="white", linewidths=0.5)


def shares(rows: pd.DataFrame, channels: Sequence[str], labels: Sequence[str] | None = None) -> str:
    """Each model's share of every channel (%, rows ``model``, ``channel``, ``share``,
    ``share_ci_low``, ``share_ci_high``) as a point with its 95% interval as an error bar: one band
    per channel, the models side by side in schemas.ALL_MODELS order, the data-driven ones as
    larger diamonds on a shaded strip."""
    models = list(schemas.ALL_MODELS) + sorted(set(rows["model"]) - set(schemas.ALL_MODELS)) if len(rows) else []
    with _style():
        n = len(channels)
        fig, ax = _subplots(figsize=(10, 0.95 * max(n, 3) + 1.3))
        if not n or rows.empty:
            _empty(ax, "no attribution snapshot as of this day")
            return _data_uri(fig)
        step = 0.84 / len(models)
        offset = {m: -0.42 + step * (i + 0.5) for i, m in enumerate(models)}
        row_of = {c: i for i, c in enumerate(channels)}
        driven = [m for m in models if m in DATA_DRIVEN_COLORS]
        if driven:
            lo = min(offset[m] for m in driven) - step / 2
            hi = max(offset[m] for m in driven) + step / 2
            for i in range(n):
                ax.axhspan(i + lo, i + hi, color="#f6f8fa", zorder=0, lw=0)
        top = 0.0
        for m in models:
            d = rows[rows["model"].eq(m) & rows["channel"].isin(row_of)]
            y = d["channel"].map(row_of).to_numpy(dtype="float64") + offset[m]
            v, lo_, hi_ = (d[c].to_numpy(dtype="float64") * 100 for c in ("share", "share_ci_low", "share_ci_high"))
            top = max(top, float(np.nanmax(np.r_[v, hi_, 0.0])))
            is_driven = m in DATA_DRIVEN_COLORS
            _interval(
                ax, y, v, lo_, hi_, ALL_MODEL_COLORS.get(m, MUTED),
                marker="D" if is_driven else "o", size=34 if is_driven else 16, lw=2.0 if is_driven else 1.0,
                label=f"{m} (data-driven)" if is_driven else m, zorder=4 if is_driven else 3,
            )
        for i in range(1, n):
            ax.axhline(i - 0.5, color="#d0d7de", lw=0.8)
        ax.set_yticks(np.arange(n), [label(s, 32) for s in (labels if labels is not None else channels)])
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlim(0, min(max(top * 1.12, 1.0), 100.0))
        ax.set_xlabel("share of the window's seeded GMV (%), 95% bootstrap interval over users")
        ax.legend(ncols=4, fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        layout(fig)
        return _data_uri(fig)


def cost(rows: pd.DataFrame, labels: Sequence[str]) -> str:
    """Per row (platform): spend (bars, yuan), ROAS and cost per seeded order (yuan), each a point
    with its 95% interval as an error bar."""
    with _style():
        n = len(rows)
        fig, axes = _subplots(1, 3, figsize=(11, 0.42 * max(n, 3) + 1.3), sharey=True)
        titles = ("spend (yuan)", "ROAS: attributed GMV / spend [95%]", "cost per seeded order (yuan) [95%]")
        for ax, title in zip(axes, titles, strict=True):
            ax.set_title(title, fontsize=10)
        if not n:
            for ax in axes:
                _empty(ax)
            return _data_uri(fig)
        y = np.arange(n)
        spend = rows["spend_fen"].to_numpy(dtype="float64") / 100
        top = max(float(np.nanmax(spend, initial=0.0)), 1.0)
        axes[0].barh(y, spend, color="#bf8700", height=0.7)
        for yi, v in zip(y, spend, strict=True):
            axes[0].text(v + top * 0.02, yi, _fmt(v), va="center", fontsize=8, color=INK)
        axes[0].set_xlim(0, top * 1.3)
        axes[0].set_xticks([])
        axes[0].spines["bottom"].set_visible(False)
        axes[1].axvline(1.0, color=MUTED, lw=1, ls=":")  # ROAS 1: GMV = spend
        for ax, col, scale, color in ((axes[1], "roas", 1.0, "#1a7f37"), (axes[2], "cost_per_seeded_order", 100.0, "#8250df")):
            v, lo, hi = (rows[c].to_numpy(dtype="float64") / scale for c in (col, f"{col}_ci_low", f"{col}_ci_high"))
            _interval(ax, y, v, lo, hi, color, size=28)
            for yi, vi in zip(y, v, strict=True):
                if np.isfinite(vi):
                    ax.annotate(f"{vi:,.2f}", (vi, yi), textcoords="offset points", xytext=(0, 6), ha="center",
                                fontsize=7.5, color=INK)
                else:
                    ax.text(0.02, yi, "undefined", va="center", fontsize=7.5, color=MUTED,
                            transform=ax.get_yaxis_transform())
            finite = np.r_[v, lo, hi, 1.0 if col == "roas" else 0.0]  # ROAS: the line at 1 in view
            finite = finite[np.isfinite(finite)]
            ax.set_xlim(0, float(finite.max()) * 1.15 if finite.max() > 0 else 1.0)
        axes[0].set_yticks(y, [label(s) for s in labels])
        axes[0].set_ylim(n - 0.5, -0.5)
        layout(fig)
        return _data_uri(fig)


def roi_curve(rows: pd.DataFrame, brands: Sequence[str], labels: Sequence[str]) -> str:
    """ROI(T+x) against x (log scale) as one line per brand of ``brands`` (rows ``brand_id``,
    ``x_days``, ``roi``, ``is_decision_cycle``, ``is_complete``): hollow markers where the cohort
    is not complete, a star at each brand's decision cycle, a dotted line at ROI 1."""
    with _style():
        fig, ax = _subplots(figsize=(10, 4.2))
        rows = rows[rows["brand_id"].isin(list(brands))]
        if rows.empty:
            _empty(ax, "no ROI: no spend in the cohorts")
            return _data_uri(fig)
        xs = sorted({int(x) for x in rows["x_days"]})
        ax.axhline(1.0, color=MUTED, lw=1, ls=":", label="ROI 1 (GMV = spend)")
        top = 1.0
        for i, (brand, name) in enumerate(zip(brands, labels, strict=True)):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            d = rows[rows["brand_id"].eq(brand)].sort_values("x_days", kind="stable")
            x = d["x_days"].to_numpy(dtype="float64")
            y = d["roi"].to_numpy(dtype="float64")
            top = max(top, float(np.nanmax(np.r_[y, 0.0])))
            ax.plot(x, y, color=color, lw=1.5, label=label(name, 24), zorder=2)
            complete = d["is_complete"].to_numpy(dtype=bool)
            ax.scatter(x[complete], y[complete], color=color, s=18, zorder=3)
            ax.scatter(x[~complete], y[~complete], facecolor="white", edgecolor=color, s=18, zorder=3)
            cycle = d["is_decision_cycle"].to_numpy(dtype=bool) & np.isfinite(y)
            ax.scatter(x[cycle], y[cycle], marker="*", s=150, facecolor=color, edgecolor=INK, linewidths=0.6, zorder=4)
        ax.scatter([], [], marker="*", s=110, facecolor="white", edgecolor=INK, label="decision cycle (category's seed window)")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"T+{x}" for x in xs])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(min(xs) / 1.25, max(xs) * 1.25)
        ax.set_ylim(0, top * 1.15)
        ax.set_xlabel("x: days after the touch an order may be paid to count (log scale)")
        ax.set_ylabel("ROI = GMV / spend")
        ax.legend(ncols=4, fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
        layout(fig)
        return _data_uri(fig)
