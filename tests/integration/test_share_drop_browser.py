"""The drop page in a real headless Chromium (embedded stack): files chosen with the
file input (and one dropped on the zone) go up through TUS in 8 MiB pieces, a failed
piece is resumed, every progress bar reaches 100 %, a clashing name is shown as
renamed, and the server holds the exact bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from davserver.links.signer import LinkSigner
from tests.support.browser import screenshot
from tests.support.servers import RunningServer

ALL_SENT = """() => {
  const items = [...document.querySelectorAll("#drop-list li")];
  return items.length === %d && items.every((li) => li.classList.contains("done")
    && li.querySelector("progress").value === 100);
}"""


def upload_link(server: RunningServer) -> str:
    client = server.client()
    client.request("MKCOL", server.url("inbox"))
    client.put(server.url("inbox/notes.txt"), data=b"the owner's notes")
    link = server.services.catalog.links.create("admin", ["inbox"], "upload")
    key = server.services.catalog.users.get_setting("share_link_key")
    assert key is not None
    return f"{server.base}/s/{LinkSigner(bytes.fromhex(key)).token(link.id)}"


def test_drop_page_sends_files_in_pieces(make_server: Any, page: Any, tmp_path: Path) -> None:
    server: RunningServer = make_server("embedded")
    base = upload_link(server)
    contents = {
        "big video.bin": os.urandom(19 * 1024 * 1024 + 4321),  # three pieces
        "notes.txt": b"a visitor's notes",  # taken: becomes "notes (2).txt"
        "été.jpg": os.urandom(70_000),
        "empty.txt": b"",
    }
    paths = []
    for name, data in contents.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    patches: list[str] = []

    def flaky(route: Any) -> None:
        """Drop the second PATCH on the floor: the page must HEAD and resume."""
        if route.request.method == "PATCH":
            patches.append(route.request.url)
            if len(patches) == 2:
                route.abort()
                return
        route.continue_()

    page.route("**/upload/*", flaky)
    page.goto(f"{base}/")
    assert page.locator("h1").inner_text() == "Send files to “inbox”"
    assert "notes.txt" not in page.content()  # nothing of the folder is shown
    screenshot(page, "drop-page-empty")

    page.set_input_files("#drop-input", [str(p) for p in paths])
    page.wait_for_function(ALL_SENT % len(paths), timeout=120_000)
    dropped = page.evaluate_handle(
        """() => { const data = new DataTransfer();
        data.items.add(new File(["dropped, not chosen"], "dropped.txt")); return data; }"""
    )
    page.dispatch_event("#drop .zone", "drop", {"dataTransfer": dropped})
    contents["dropped.txt"] = b"dropped, not chosen"
    page.wait_for_function(ALL_SENT % len(contents), timeout=30_000)
    states = page.locator("#drop-list .state").all_inner_texts()
    assert states == ["Sent", "Sent as “notes (2).txt”", "Sent", "Sent", "Sent"]
    bars = page.get_by_role("progressbar")
    assert bars.count() == len(contents)
    assert bars.first.get_attribute("aria-label") == "Progress of big video.bin"
    assert page.locator("#drop-summary").inner_text() == "5 of 5 sent"
    assert len(patches) >= 5  # big video.bin took 3 pieces plus the retried one
    screenshot(page, "drop-page-sent")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "drop-page-sent-phone")
    assert problems == ["Failed to load resource: net::ERR_FAILED"]  # only the dropped PATCH

    client = server.client()
    for name, data in contents.items():
        stored = "notes (2).txt" if name == "notes.txt" else name
        answer = client.get(server.url(f"inbox/{stored}"))
        assert answer.status_code == 200 and answer.content == data, name
    assert client.get(server.url("inbox/notes.txt")).content == b"the owner's notes"
