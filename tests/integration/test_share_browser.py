"""The share-link pages in a real browser (headless Chromium through Playwright):
navigate a folder link, see an image preview decoded, download a file and a zip with
the page's own buttons, unlock a password link through its form, and drive the edit
controls' script. Every page visited is saved under test-artifacts/screenshots/.

The embedded stack is enough here: what is tested is what the browser makes of the
pages; both stacks serve them identically (test_share_pages.py runs on both).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from davserver.auth.passwords import hash_password
from tests.support.browser import screenshot
from tests.support.links import make_link
from tests.support.servers import RunningServer
from tests.support.share_tree import TREE, build_tree, png_bytes


@pytest.fixture
def shared(make_server: Callable[..., RunningServer]) -> RunningServer:
    server = make_server("embedded")
    build_tree(server)
    return server


def test_browse_preview_and_download(shared: RunningServer, page: Any) -> None:
    link = make_link(shared, "folder")
    page.goto(link.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "folder"
    assert page.get_by_role("link", name="<img src=x onerror=alert(1)>.txt").count() == 1
    screenshot(page, "share-listing")

    page.get_by_role("link", name="sub/").click()
    page.wait_for_url(f"{link.url}/browse/sub/")
    assert page.get_by_role("link", name="deep.txt").is_visible()
    screenshot(page, "share-subfolder")
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="folder").click()
    page.wait_for_url(f"{link.url}/")

    page.get_by_role("link", name="photo.png").click()
    page.wait_for_url(f"{link.url}/browse/photo.png")
    image = page.locator(".preview img")
    image.wait_for()
    page.wait_for_function("document.querySelector('.preview img').complete")
    assert image.evaluate("img => img.naturalWidth") == 40
    screenshot(page, "share-image-preview")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download", exact=True).click()
    download = info.value
    assert download.suggested_filename == "photo.png"
    assert Path(download.path()).read_bytes() == png_bytes()

    page.goto(f"{link.url}/browse/hello.py")
    assert 'return f"Hello, {name}!"' in page.locator(".preview pre").inner_text()
    screenshot(page, "share-text-preview")

    page.goto(link.url + "/")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download all (zip)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes()))
    assert info.value.suggested_filename == "folder.zip"
    assert sorted(archive.namelist()) == sorted(TREE)
    for name, (data, _mtime) in TREE.items():
        if not name.endswith("/"):
            assert archive.read(name) == data, name


def test_listing_fits_a_phone(shared: RunningServer, page: Any) -> None:
    link = make_link(shared, "folder")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(link.url + "/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling
    assert not page.locator("th.modified").is_visible()  # the date column gives way
    screenshot(page, "share-listing-phone")


def test_password_form_unlocks(shared: RunningServer, page: Any) -> None:
    link = make_link(shared, "folder", password_hash=hash_password("correct horse"))
    page.goto(link.url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "This link is protected"
    screenshot(page, "share-password-form")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Open").click()
    assert page.get_by_role("alert").inner_text() == "Wrong password."
    screenshot(page, "share-password-wrong")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Open").click()
    page.wait_for_url(f"{link.url}/")
    assert page.get_by_role("heading", level=1).inner_text() == "folder"
    assert page.get_by_role("link", name="a.txt").is_visible()


def test_dead_link_page(shared: RunningServer, page: Any) -> None:
    response = page.goto(f"{shared.base}/s/not-a-token/")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    screenshot(page, "share-not-found")


def test_edit_controls_call_the_edit_endpoint(shared: RunningServer, page: Any) -> None:
    """The edit endpoint itself belongs to share_uploads; here the browser's requests
    are caught on their way to it, to check what the page's script sends."""
    link = make_link(shared, "folder", "edit")
    sent: list[tuple[dict[str, Any], dict[str, str]]] = []

    def edit_endpoint(route: Any) -> None:
        sent.append((json.loads(route.request.post_data), route.request.headers))
        route.fulfill(status=200, content_type="application/json", body="{}")

    page.route(f"{link.url}/edit", edit_endpoint)
    page.on("dialog", lambda dialog: dialog.accept("renamed.txt"))
    page.goto(link.url + "/")
    screenshot(page, "share-edit-listing")
    _rename_delete_and_mkdir(page)
    assert [body for body, _headers in sent] == [
        {"op": "rename", "path": "/a.txt", "name": "renamed.txt"},
        {"op": "delete", "path": "/<img src=x onerror=alert(1)>.txt"},
        {"op": "mkdir", "path": "/", "name": "new & <folder>"},
    ]
    for _body, headers in sent:
        assert headers["content-type"] == "application/json"
        assert headers["x-davserver-edit"] == "1"


def _rename_delete_and_mkdir(page: Any) -> None:
    """Rename a.txt (the dialog handler answers the new name), delete the markup-named
    file, make a folder `new & <folder>`, through the listing's controls."""
    with page.expect_navigation():  # the script reloads the page after each change
        page.get_by_role("button", name="Rename a.txt").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Delete <img src=x onerror=alert(1)>.txt").click()
    page.get_by_label("New folder name").fill("new & <folder>")
    with page.expect_navigation():
        page.get_by_role("button", name="New folder").click()


def test_edit_controls_change_the_folder(shared: RunningServer, page: Any) -> None:
    """The same controls against the real edit endpoint (share_uploads): the folder
    changes, and a refused change is explained in an alert."""
    link = make_link(shared, "folder", "edit")
    messages: list[str] = []

    def answer(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept("renamed.txt")

    page.on("dialog", answer)
    page.goto(link.url + "/")
    _rename_delete_and_mkdir(page)
    rows = page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert "renamed.txt" in rows and "a.txt" not in rows
    assert "new & <folder>" in rows and "<img src=x onerror=alert(1)>.txt" not in rows
    screenshot(page, "share-edit-after-changes")
    page.get_by_label("New folder name").fill("sub")
    with page.expect_event("dialog"):  # "sub" exists: refused, and said so
        page.get_by_role("button", name="New folder").click()
    assert messages[-1].startswith("Could not mkdir: ") and "exists" in messages[-1]
