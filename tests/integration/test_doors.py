"""Every door x every mutation, against a locked target and a read-only right: each is
refused (423 locked, 403 read-only) and changes nothing.

The doors: WebDAV as a read-write grantee (`/dav/Shared/...`) and as the owner
without the lock's token (`/dav/...`), a share link's WebDAV (`/s/<t>/dav/`), its edit
endpoint (`POST /s/<t>/edit`) and its drop page's uploads (TUS, `/s/<t>/upload/`). The
locks are taken by the owner over `/dav/`, as a desktop client holding a file open
would. "Read-only" is a read-only grant at WebDAV and a `view` link at the link doors;
a `view` link offers no edit endpoint and no uploads at all, so those answer the link
site's one dead end, 404. After every cell the folder is compared with what it was,
as the owner sees it, and the owner's locks are still there.

alice owns one folder per cell, holding `a.txt`, `c.txt`, `sub/b.txt` and an empty
`dir/`; bob may write it, carol read it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.links import Link, make_link
from tests.support.servers import RunningServer, stack_settings, start_server

LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>desktop client</D:owner></D:lockinfo>"""
PROPPATCH_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test:"><D:set><D:prop>
<Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>"""


@dataclass
class Cell:
    """One request of the table: `base` is the cell's folder as the door names it
    (a URL ending in '/'), `session` who sends it."""

    server: RunningServer
    folder: str
    session: requests.Session
    base: str
    link: Link

    def send(self, method: str, rest: str, **kw: object) -> int:
        response = self.session.request(method, self.base + rest, timeout=30, **kw)  # type: ignore[arg-type]
        return response.status_code

    def destination(self, rest: str) -> dict[str, str]:
        return {"Destination": self.base + rest, "Overwrite": "T"}

    def edit(self, body: dict[str, str]) -> int:
        headers = {"X-Davserver-Edit": "1", "Content-Type": "application/json"}
        url = self.link.url + "/edit"
        return requests.post(url, data=json.dumps(body), headers=headers, timeout=30).status_code

    def drop(self, name: str, relative: str = "") -> int:
        """A TUS upload's creation (the check before any byte is sent)."""
        meta = f"filename {base64.b64encode(name.encode()).decode()}"
        if relative:
            meta += f",relativePath {base64.b64encode(relative.encode()).decode()}"
        headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "3", "Upload-Metadata": meta}
        return requests.post(self.link.url + "/upload/", headers=headers, timeout=30).status_code


# mutation: (what the owner locks in the cell's folder, the request)
WEBDAV: dict[str, tuple[str, Callable[[Cell], int]]] = {
    "PUT over a file": ("a.txt", lambda c: c.send("PUT", "a.txt", data=b"changed")),
    "PUT into a folder": ("dir/", lambda c: c.send("PUT", "dir/new.txt", data=b"new")),
    "MKCOL in a folder": ("dir/", lambda c: c.send("MKCOL", "dir/made")),
    "DELETE a file": ("a.txt", lambda c: c.send("DELETE", "a.txt")),
    "DELETE a folder holding a locked file": ("sub/b.txt", lambda c: c.send("DELETE", "sub/")),
    "MOVE a file": (
        "a.txt",
        lambda c: c.send("MOVE", "a.txt", headers=c.destination("renamed.txt")),
    ),
    "MOVE a folder holding a locked file": (
        "sub/b.txt",
        lambda c: c.send("MOVE", "sub/", headers=c.destination("sub2/")),
    ),
    "MOVE onto a file": (
        "a.txt",
        lambda c: c.send("MOVE", "c.txt", headers=c.destination("a.txt")),
    ),
    "COPY onto a file": (
        "a.txt",
        lambda c: c.send("COPY", "c.txt", headers=c.destination("a.txt")),
    ),
    "PROPPATCH a file": ("a.txt", lambda c: c.send("PROPPATCH", "a.txt", data=PROPPATCH_BODY)),
}
EDIT_PAGE: dict[str, tuple[str, Callable[[Cell], int]]] = {
    "delete a file": ("a.txt", lambda c: c.edit({"op": "delete", "path": "/a.txt"})),
    "delete a folder holding a locked file": (
        "sub/b.txt",
        lambda c: c.edit({"op": "delete", "path": "/sub"}),
    ),
    "rename a file": ("a.txt", lambda c: c.edit({"op": "rename", "path": "/a.txt", "name": "z"})),
    "rename a folder holding a locked file": (
        "sub/b.txt",
        lambda c: c.edit({"op": "rename", "path": "/sub", "name": "sub2"}),
    ),
    "new folder in a folder": (
        "dir/",
        lambda c: c.edit({"op": "mkdir", "path": "/dir", "name": "x"}),
    ),
}
DROP_PAGE: dict[str, tuple[str, Callable[[Cell], int]]] = {
    "upload into the shared folder": ("", lambda c: c.drop("new.txt")),
    "upload into a sub-folder": ("dir/", lambda c: c.drop("new.txt", "dir/new.txt")),
}
# door: (mutations, status when locked, status when read-only)
DOORS: dict[str, tuple[dict[str, tuple[str, Callable[[Cell], int]]], int, int]] = {
    "webdav grantee": (WEBDAV, 423, 403),
    "webdav owner without token": (WEBDAV, 423, 0),  # 0: no read-only case
    "link webdav": (WEBDAV, 423, 403),
    "link edit page": (EDIT_PAGE, 423, 404),
    "link drop page": (DROP_PAGE, 423, 404),
}
CELLS = [
    (door, mutation, condition)
    for door, (mutations, _locked, read_only) in DOORS.items()
    for mutation in mutations
    for condition in ("locked", "read-only")
    if condition == "locked" or read_only
]


def _folder(door: str, mutation: str, condition: str) -> str:
    return re.sub(r"[^a-z]+", "-", f"{door} {mutation} {condition}".lower())


@pytest.fixture(scope="module", params=["embedded", "full"])
def table_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per stack with every cell's folder made and shared with bob (rw) and
    carol (r)."""
    data_dir: Path = tmp_path_factory.mktemp("doors")
    settings = stack_settings(request, data_dir, request.param)
    server = start_server(settings)
    for user in ("alice", "bob", "carol"):
        server.add_user(user, f"pw-{user}")
    alice = server.client("alice")
    for cell in CELLS:
        folder = _folder(*cell)
        for made in (folder, f"{folder}/sub", f"{folder}/dir"):
            assert alice.request("MKCOL", server.url(made)).status_code == 201
        for name, body in (("a.txt", b"alpha"), ("c.txt", b"copy me"), ("sub/b.txt", b"beta")):
            assert alice.put(server.url(f"{folder}/{name}"), data=body).status_code == 201
        server.services.ops.grant("alice", [folder], "bob", "rw")
        server.services.ops.grant("alice", [folder], "carol", "r")
    yield server
    server.stop()


def _cell(server: RunningServer, door: str, mutation: str, condition: str) -> Cell:
    folder = _folder(door, mutation, condition)
    perm = "view" if condition == "read-only" else ("upload" if "drop" in door else "edit")
    link = make_link(server, folder, perm, owner="alice")
    if door.startswith("webdav"):
        user = "alice" if "owner" in door else ("carol" if condition == "read-only" else "bob")
        base = server.url(folder + "/" if user == "alice" else f"Shared/{folder}/")
        return Cell(server, folder, server.client(user), base, link)
    return Cell(server, folder, requests.Session(), link.dav, link)


def _lock(server: RunningServer, folder: str, target: str) -> str:
    """alice locks `target` in the folder over /dav/ (Depth 0); the lock token."""
    url = server.url(f"{folder}/{target}")
    response = server.client("alice").request(
        "LOCK", url, data=LOCK_BODY, headers={"Depth": "0", "Timeout": "Second-600"}
    )
    assert response.status_code == 200, (target, response.status_code)
    return response.headers["Lock-Token"]


def _owner_view(server: RunningServer, folder: str) -> dict[str, str]:
    """Everything alice sees of the cell's folder: each path with its ETag (files) or
    '' (folders), and a.txt's dead properties."""
    alice, seen = server.client("alice"), {}
    pending = [folder + "/"]
    while pending:
        path = pending.pop()
        response = alice.request("PROPFIND", server.url(path), headers={"Depth": "1"})
        assert response.status_code == 207
        for href, body in re.findall(
            r"<D:href>([^<]*)</D:href>(.*?)</D:response>", response.text, re.S
        ):
            rel = urlsplit(href).path.split("/dav/", 1)[1]
            etag = re.search(r"<D:getetag>([^<]*)</D:getetag>", body)
            seen[rel] = etag.group(1) if etag else ""
            if rel.endswith("/") and rel != path:
                pending.append(rel)
    props = alice.request("PROPFIND", server.url(f"{folder}/a.txt"), headers={"Depth": "0"})
    seen["a.txt props"] = "red" if "urn:test:" in props.text else ""
    return seen


def _locked(server: RunningServer, folder: str, target: str, token: str) -> bool:
    """Whether alice's lock `token` is still on `target`."""
    url = server.url(f"{folder}/{target}")
    response = server.client("alice").request("PROPFIND", url, headers={"Depth": "0"})
    return token.strip("<>") in response.text


@pytest.mark.parametrize(("door", "mutation", "condition"), CELLS)
def test_door_mutation_table(
    table_server: RunningServer, door: str, mutation: str, condition: str
) -> None:
    mutations, locked_status, read_only_status = DOORS[door]
    target, request = mutations[mutation]
    folder = _folder(door, mutation, condition)
    cell = _cell(table_server, door, mutation, condition)
    token = _lock(table_server, folder, target) if condition == "locked" else ""
    before = _owner_view(table_server, folder)
    status = request(cell)
    expected = locked_status if condition == "locked" else read_only_status
    assert status == expected, f"{door}: {mutation} ({condition}): {status}, not {expected}"
    assert _owner_view(table_server, folder) == before, "a refused request changed data"
    if token:
        assert _locked(table_server, folder, target, token), "the lock was lost"


def test_the_lock_owner_with_its_token_may(table_server: RunningServer) -> None:
    """The same lock lets its owner through when the token is submitted (the refusals
    above are the lock's, not a blanket ban), and a link delete of an unlocked file
    works after the lock is released."""
    folder = _folder(*CELLS[0])
    token = _lock(table_server, folder, "c.txt")
    alice = table_server.client("alice")
    url = table_server.url(f"{folder}/c.txt")
    assert alice.put(url, data=b"mine").status_code == 423
    assert alice.put(url, data=b"mine", headers={"If": f"({token})"}).status_code == 204
    assert alice.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    link = make_link(table_server, folder, "edit", owner="alice")
    cell = Cell(table_server, folder, requests.Session(), link.dav, link)
    assert cell.edit({"op": "delete", "path": "/c.txt"}) == 204
    assert alice.get(url).status_code == 404
