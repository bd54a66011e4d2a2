"""Headless Chromium with the network cut off, for the report and Data Docs tests.

``offline(browser, folder)`` opens pages the way a reader in an air-gapped network would: every
request to a network address is aborted (and host names resolve to nothing), and every request
the pages make is recorded, so a test can show both that the page rendered and that nothing but
files under ``folder`` was asked for.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Belt and braces under the request interception: no host name resolves.
NO_DNS = "--host-resolver-rules=MAP * ~NOTFOUND"


@contextlib.contextmanager
def chromium():
    """One headless Chromium (skips the test when Playwright is not installed)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[NO_DNS])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Offline:
    """A page whose every request is recorded; requests that would leave the machine are aborted."""

    page: object
    folder: Path
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Every request for something other than a file under ``folder`` (or inline data)."""
        root = self.folder.resolve().as_uri() + "/"
        return [u for u in self.requests if not (u.startswith(root) or u.startswith("data:"))]


@contextlib.contextmanager
def offline(browser, folder: Path, **page_options):
    context = browser.new_context(**page_options)
    page = context.new_page()
    visit = Offline(page, folder)
    page.on("request", lambda r: visit.requests.append(r.url))
    page.on("requestfailed", lambda r: visit.failed.append(r.url))
    page.on("console", lambda m: visit.problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: visit.problems.append(str(e)))

    def block(route):
        visit.blocked.append(route.request.url)
        route.abort("internetdisconnected")

    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else block(route))
    try:
        yield visit
    finally:
        context.close()
