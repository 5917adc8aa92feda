"""The change feed over HTTP (`/api/v1/changes`), on both stacks: every door's
mutations (WebDAV PUT, MKCOL, PROPPATCH, COPY, MOVE, DELETE; a share link's edit
endpoint and drop uploads; the API's grants) appear once each, in order; replaying the
feed from empty gives the tree a PROPFIND walk finds; folder ETags move with what is
below them and `oc:fileid` survives a MOVE; bad, foreign and compacted cursors get
400, 403 and 410 (design invariants 15 and 16)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

import pytest
import requests

from tests.support.api import answer, api, error
from tests.support.links import make_link
from tests.support.servers import RunningServer, serving_with_users

OC = "http://owncloud.org/ns"
PROPS = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns"><D:prop><D:resourcetype/>
<D:getetag/><oc:fileid/><oc:id/></D:prop></D:propfind>"""
PROPPATCH = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test:"><D:set><D:prop>
<Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>"""
TUS = {"Tus-Resumable": "1.0.0"}

Tree = dict[str, tuple[str, str, str | None]]  # path -> (kind, id, etag of a file)


@pytest.fixture(params=["embedded", "full"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    yield from serving_with_users(request, tmp_path, ("alice", "bob"))


def read_all(server: RunningServer, user: str, cursor: str | None) -> tuple[list[Any], str]:
    """Every page of the feed from `cursor` (a bootstrap for None), 2 entries a page."""
    entries: list[Any] = []
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = answer(server.client(user).get(api(server, "changes"), params=params), 200)
        entries += page["changes"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return entries, page["cursor"]


def latest(server: RunningServer, user: str) -> str:
    return str(answer(server.client(user).get(api(server, "changes/latest")), 200)["cursor"])


def replay(tree: Tree, entries: list[Any]) -> Tree:
    """Apply entries as a sync client does (see `providers.operations.feed`)."""
    tree = dict(tree)

    def inside(path: str) -> list[str]:
        return [k for k in tree if k == path or k.startswith(path + "/")]

    for e in entries:
        value = (e["kind"], e["id"], e["etag"] if e["kind"] == "file" else None)
        if e["op"] == "moved":
            moving = {k: tree.pop(k) for k in inside(e["old_path"])}
            for key in inside(e["path"]):
                del tree[key]
            for key, old in moving.items():
                tree[e["path"] + key[len(e["old_path"]) :]] = old
            tree[e["path"]] = value
            continue
        if e["op"] in ("created", "deleted"):
            for key in inside(e["path"]):
                del tree[key]
        if e["op"] != "deleted":
            tree[e["path"]] = value
    return tree


def walk(server: RunningServer, user: str, path: str = "") -> Tree:
    """The user's tree by PROPFIND Depth 1, folder by folder."""
    found: Tree = {}
    response = server.client(user).request(
        "PROPFIND", server.url(path), data=PROPS, headers={"Depth": "1"}
    )
    assert response.status_code == 207, response.text
    for item in ElementTree.fromstring(response.content).iter("{DAV:}response"):
        href = unquote(item.findtext("{DAV:}href") or "")
        shown = href[len("/dav") :].rstrip("/")
        if shown == "/" + path.strip("/") or shown == "" and not path:
            continue
        is_dir = item.find(".//{DAV:}collection") is not None
        fileid = item.findtext(f".//{{{OC}}}fileid") or ""
        etag = None if is_dir else item.findtext(".//{DAV:}getetag")
        found[shown] = ("folder" if is_dir else "file", fileid, etag)
        if is_dir:
            found.update(walk(server, user, shown.lstrip("/")))
    return found


def prop(server: RunningServer, user: str, path: str, name: str) -> str:
    response = server.client(user).request(
        "PROPFIND", server.url(path), data=PROPS, headers={"Depth": "0"}
    )
    assert response.status_code == 207, response.text
    return ElementTree.fromstring(response.content).findtext(f".//{name}") or ""


def drop(link_url: str, name: str, data: bytes) -> None:
    """A whole TUS upload through a link's drop page."""
    meta = f"filename {base64.b64encode(name.encode()).decode()}"
    headers = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta}
    made = requests.post(f"{link_url}/upload/", headers=headers, timeout=30)
    assert made.status_code == 201, made.text
    url = urlsplit(link_url)._replace(path=made.headers["Location"]).geturl()
    piece = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert requests.patch(url, data=data, headers=piece, timeout=30).status_code == 204


def test_every_door_is_in_the_feed_once_in_order_and_replay_gives_the_tree(
    server: RunningServer,
) -> None:
    alice = server.client("alice")
    start = latest(server, "alice")
    assert alice.request("MKCOL", server.url("d")).status_code == 201
    assert alice.put(server.url("d/a.txt"), data=b"one").status_code == 201
    assert alice.put(server.url("d/a.txt"), data=b"two").status_code == 204
    assert alice.request("PROPPATCH", server.url("d/a.txt"), data=PROPPATCH).status_code == 207
    copy = {"Destination": server.url("d2")}
    assert alice.request("COPY", server.url("d"), headers=copy).status_code == 201
    move = {"Destination": server.url("d3")}
    assert alice.request("MOVE", server.url("d2"), headers=move).status_code == 201
    edit = make_link(server, "/d", "edit", owner="alice")
    body = json.dumps({"op": "rename", "path": "/a.txt", "name": "b.txt"})
    headers = {"X-Davserver-Edit": "1", "Content-Type": "application/json"}
    assert requests.post(edit.url + "/edit", data=body, headers=headers).status_code == 201
    drop(make_link(server, "/d", "upload", owner="alice").url, "dropped.txt", b"drop")
    assert alice.delete(server.url("d3")).status_code == 204
    grant = {"path": "/d", "to": "bob", "perm": "r"}
    answer(alice.post(api(server, "grants"), json=grant), 201)
    entries, _cursor = read_all(server, "alice", start)
    assert [(e["op"], e["path"], e.get("old_path")) for e in entries] == [
        ("created", "/d", None),
        ("created", "/d/a.txt", None),
        ("modified", "/d/a.txt", None),
        ("modified", "/d/a.txt", None),
        ("created", "/d2", None),
        ("created", "/d2/a.txt", None),
        ("moved", "/d3", "/d2"),
        ("moved", "/d/b.txt", "/d/a.txt"),
        ("created", "/d/dropped.txt", None),
        ("deleted", "/d3", None),
    ]
    assert {e["kind"] for e in entries} == {"file", "folder"}
    full, _ = read_all(server, "alice", None)
    assert replay({}, full) == walk(server, "alice")
    shared, _ = read_all(server, "bob", None)
    bob_tree = walk(server, "bob")
    del bob_tree["/Shared"]  # the virtual folder itself: the feed lists its entries
    assert replay({}, shared) == bob_tree
    assert {e["path"] for e in shared} == {"/Shared/d", "/Shared/d/b.txt", "/Shared/d/dropped.txt"}


def test_folder_etags_move_at_depth_and_file_ids_survive_a_move(server: RunningServer) -> None:
    alice = server.client("alice")
    path = ""
    for n in range(10):
        path += f"l{n}/"
        assert alice.request("MKCOL", server.url(path)).status_code == 201
    folders = [path[: path.index(f"l{n}/") + 3] for n in range(10)]
    before = {f: prop(server, "alice", f, "{DAV:}getetag") for f in ["", *folders]}
    assert alice.put(server.url(path + "f.txt"), data=b"x").status_code == 201
    after = {f: prop(server, "alice", f, "{DAV:}getetag") for f in ["", *folders]}
    assert all(after[f] and after[f] != before[f] for f in before)
    file_etag = prop(server, "alice", path + "f.txt", "{DAV:}getetag")
    fileid = prop(server, "alice", path + "f.txt", f"{{{OC}}}fileid")
    move = {"Destination": server.url("moved.txt")}
    assert alice.request("MOVE", server.url(path + "f.txt"), headers=move).status_code == 201
    assert prop(server, "alice", "moved.txt", f"{{{OC}}}fileid") == fileid
    assert prop(server, "alice", "moved.txt", "{DAV:}getetag") == file_etag
    assert prop(server, "alice", "moved.txt", f"{{{OC}}}id").startswith(f"{int(fileid):08d}")
    assert prop(server, "alice", folders[0], "{DAV:}getetag") != after[folders[0]]


def test_cursors_of_others_bad_or_compacted_are_refused(server: RunningServer) -> None:
    cursor = latest(server, "alice")
    changes = api(server, "changes")
    bob = server.client("bob")
    assert error(bob.get(changes, params={"cursor": cursor}), 403)
    assert error(bob.get(changes, params={"cursor": "v1.bad.cursor"}), 400)
    assert error(bob.get(changes, params={"limit": "0"}), 400)
    assert error(bob.get(changes, params={"since": "1"}), 400)
    alice = server.client("alice")
    for name in ("x", "y"):
        assert alice.request("MKCOL", server.url(name)).status_code == 201
    assert server.services.catalog.changes.compact(time.time() + 1) >= 1
    assert error(alice.get(changes, params={"cursor": cursor}), 410) == "reset"
