"""A real headless Chromium for the share-link tests: Debian's `/usr/bin/chromium`,
driven by Playwright through `executable_path` (Playwright never downloads a browser
here). Screenshots go to `test-artifacts/screenshots/` (CI keeps that folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def chromium_path() -> str:
    """Debian's chromium; a missing browser fails the test (a skip fails in CI anyway)."""
    found = os.environ.get("DAVSERVER_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("chromium is missing (apt-get install chromium)", pytrace=False)
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own cookies) that accepts downloads, in a phone-friendly size."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1000, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
