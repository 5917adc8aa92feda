"""The connect page and the `/dav/` folder pages in a real browser (headless Chromium
through Playwright): the per-system sections are visible, a copy button puts its
command on the clipboard and says so, and a signed-in user sees davserver's listing
with working links. Screenshots are saved under the test's tmp_path and checked to be
real PNG images.

The embedded stack is enough: what is tested is what the browser makes of the pages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ADMIN_PASSWORD, RunningServer
from tests.support.share_tree import build_tree

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def saved_png(page: Any, path: Path) -> tuple[int, int]:
    """Save a full-page screenshot at `path`; its (width, height), checked to be a
    real, non-trivial PNG."""
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 300 and len(data) > 10_000, (width, height, len(data))
    return width, height


@pytest.fixture
def embedded(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server("embedded")


@pytest.fixture
def context(browser: Any, embedded: RunningServer) -> Iterator[Any]:
    """A browser context that may use the clipboard and signs in as admin."""
    opened = browser.new_context(
        viewport={"width": 1000, "height": 800},
        permissions=["clipboard-read", "clipboard-write"],
        http_credentials={"username": "admin", "password": ADMIN_PASSWORD},
    )
    yield opened
    opened.close()


def test_connect_page_in_a_browser(context: Any, embedded: RunningServer, tmp_path: Path) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(embedded.base + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "Connect to davserver"
    dav = f"http://127.0.0.1:{embedded.port}/dav/"
    assert page.locator("code", has_text=dav).first.is_visible()
    for system in ("Windows", "macOS", "Linux", "rclone", "cadaver"):
        assert page.get_by_role("heading", level=2, name=system).is_visible(), system
    assert page.locator("link[rel=stylesheet]").evaluate("l => l.sheet.cssRules.length") > 10
    saved_png(page, tmp_path / "connect.png")

    button = page.get_by_role("button", name="Copy the rclone config command")
    button.click()
    page.wait_for_function(
        "b => b.textContent === 'Copied'", arg=button.element_handle(), timeout=5000
    )
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"rclone config create mydav webdav url={dav} vendor=other")
    assert copied.endswith("pass=$(rclone obscure -- 'PASSWORD')")
    page.get_by_role("button", name="Copy the davfs2 commands").click()
    davfs = page.evaluate("navigator.clipboard.readText()")
    assert davfs.splitlines()[-1].startswith(f"sudo mount -t davfs {dav} /mnt/dav")
    # no CSP violation or script error, and no file of the page missing (the browser's
    # own favicon probe, a 404 reported to the console only, is no file of the page)
    assert failed == []
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []


def test_dav_folder_page_in_a_browser(
    context: Any, embedded: RunningServer, tmp_path: Path
) -> None:
    build_tree(embedded)
    page = context.new_page()
    page.goto(embedded.dav)
    assert page.get_by_role("heading", level=1).inner_text() == "Home"
    assert "WsgiDAV" not in page.content()
    page.get_by_role("link", name="folder/").click()
    page.wait_for_url(embedded.dav + "folder/")
    rows = page.locator("tbody tr td.name").all_inner_texts()
    assert rows[:2] == ["sub/", "zeta/"] and "a.txt" in rows
    assert page.get_by_role("link", name="<img src=x onerror=alert(1)>.txt").count() == 1
    assert "WsgiDAV" not in page.content()
    saved_png(page, tmp_path / "dav-folder.png")
    page.get_by_role("link", name="sub/").click()
    page.wait_for_url(embedded.dav + "folder/sub/")
    assert page.get_by_role("link", name="deep.txt").is_visible()
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="folder").click()
    page.wait_for_url(embedded.dav + "folder/")
    page.get_by_role("link", name="How to connect").click()
    page.wait_for_url(embedded.base + "/")
