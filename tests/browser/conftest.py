"""Browser tests: headless Debian Chromium (/usr/bin/chromium) driven by Playwright for Python.

Playwright is only the driver here: it never downloads a browser (`.ci/services.sh` installs
Debian's `chromium`). A missing Chromium or Playwright is `unavailable` (tests/support/missing.py):
a skip with one line locally, a failure under CI=true, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.missing import require, unavailable

CHROMIUM = os.environ.get("WORKCLAIM_CHROMIUM", "/usr/bin/chromium")
# The flags the machine's probe found necessary: no sandbox as root, and no background traffic
# to hosts this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "bench-results" / "browser"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module. Not per session: Playwright's sync API keeps an
    event loop on the main thread while it runs, and later tests call `asyncio.run`."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    playwright = require("playwright.sync_api", "playwright is not installed (make install)")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own sessionStorage) and page; fails the test on a page error
    such as a Content-Security-Policy violation or an uncaught exception."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], errors


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (bench-results/browser/, kept out of git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
