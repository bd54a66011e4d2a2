"""Data Docs that open offline: no page of the site asks the network for anything.

GX Core's page templates load Bootstrap, bootstrap-table, the datepicker, Font Awesome, jQuery,
Popper and Vega from public CDNs, and GX's logo from its web-assets bucket. The same files (same
packages and versions) are vendored from their npm packages in ``data_docs_vendor/`` (its README
says where each comes from, with its license); ``localize`` copies them into the site's
``static/vendor/`` and points every such address in the site's HTML and CSS at them, relative to
the page. Links a reader may follow (GX's website) stay as they are: following one is the reader's
choice, not something opening a page does.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

VENDOR_DIR = Path(__file__).with_name("data_docs_vendor")
SITE_VENDOR = Path("static", "vendor")
SITE_IMAGES = Path("static", "images")  # GX writes its own images there

# Each address GX's templates write -> the vendored file serving it (under VENDOR_DIR).
CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    # The minified build of the same stylesheet.
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # GX links this extension's stylesheet from 1.19.0; 1.19.1's differs only in its version comment.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/dist/umd/popper.min.js",
    # The CDN serves the newest release of the major version; the vendored one is pinned.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}
# GX's logo from its bucket (with a cache-busting query) -> the copy GX writes into the site.
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}

_URL = re.compile(r"https?://[^\s\"'()<>]+")
# A tag that loads what its src/href names (a plain <a href> is a link, not a load).
_LOADING_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(https?://[^'\")\s]+)\1\s*\)", re.IGNORECASE)
# Subresource integrity and CORS mode make a browser refuse a script read from a file.
_SRI = re.compile(r"\s+(?:integrity|crossorigin)=\"[^\"]*\"", re.IGNORECASE)


def _target(url: str) -> Path | None:
    """The site-relative file that serves ``url``, or None for an address we do not serve."""
    if url in CDN_FILES:
        return SITE_VENDOR / CDN_FILES[url]
    if url.startswith(GX_ASSETS):
        name = url[len(GX_ASSETS):].split("?", 1)[0]
        if name in GX_IMAGES:
            return SITE_IMAGES / GX_IMAGES[name]
    return None


def _rewrite(text: str, site: Path, page: Path) -> str:
    def relative(url: str) -> str | None:
        target = _target(url)
        if target is None:
            return None
        return os.path.relpath(site / target, page.parent).replace(os.sep, "/")

    def tag(m: re.Match) -> str:
        rewritten = False

        def one(u: re.Match) -> str:
            nonlocal rewritten
            local = relative(u.group(0))
            rewritten |= local is not None
            return local or u.group(0)

        out = _URL.sub(one, m.group(0))
        return _SRI.sub("", out) if rewritten else out

    def css(m: re.Match) -> str:
        local = relative(m.group(2))
        return f"url('{local}')" if local else m.group(0)

    return _CSS_URL.sub(css, _LOADING_TAG.sub(tag, text))


def external_resources(site: Path) -> list[tuple[str, str]]:
    """(page, address) of everything a page of ``site`` would still load from the network."""
    found = []
    for page in sorted(site.rglob("*")):
        if page.suffix not in (".html", ".css"):
            continue
        text = page.read_text(encoding="utf-8")
        urls = [u for m in _LOADING_TAG.finditer(text) for u in _URL.findall(m.group(0))]
        urls += [m.group(2) for m in _CSS_URL.finditer(text)]
        found += [(str(page.relative_to(site)), u) for u in urls]
    return found


def localize(site: Path) -> list[tuple[str, str]]:
    """Serve the site's CDN assets from ``site/static/vendor``; returns what still loads remotely."""
    shutil.copytree(VENDOR_DIR, site / SITE_VENDOR, dirs_exist_ok=True)
    for page in site.rglob("*"):
        if page.suffix in (".html", ".css") and not page.is_relative_to(site / SITE_VENDOR):
            text = page.read_text(encoding="utf-8")
            new = _rewrite(text, site, page)
            if new != text:
                page.write_text(new, encoding="utf-8")
    return external_resources(site)
