"""RFC 6578 sync-collection over HTTP, on both stacks: an initial sync lists the tree
and later syncs give exactly the members that changed (PUT, MKCOL, MOVE, COPY,
DELETE, PROPPATCH), with the properties PROPFIND gives them and 404 for the removed;
applying the answers to a copy reproduces what a PROPFIND walk finds, at sync-level
infinite and 1, on a home, a folder and a folder shared with the caller; limits page
both kinds of sync; tokens of others, of other collections, garbage, compacted or
outrun by a replaced folder are `DAV:valid-sync-token`; `DAV:sync-token` is a
property of every collection."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest
import requests

from tests.support.api import answer, api
from tests.support.links import make_link
from tests.support.servers import RunningServer, serving_with_users

D, OC = "{DAV:}", "{http://owncloud.org/ns}"
PROPS = (
    "<D:getetag/><D:getcontentlength/><D:getlastmodified/><D:resourcetype/>"
    '<D:displayname/><oc:fileid/><D:getcontenttype/><Z:color xmlns:Z="urn:z"/>'
)
SYNC = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<D:sync-collection xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns">'
    "<D:sync-token>{token}</D:sync-token><D:sync-level>{level}</D:sync-level>{limit}"
    "<D:prop>{props}</D:prop></D:sync-collection>"
)
PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:" '
    'xmlns:oc="http://owncloud.org/ns"><D:prop>{props}</D:prop></D:propfind>'
)
COLOR = (
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
    b"<Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>"
)
Props = dict[str, str]  # property -> its XML, for one member (200 ones)
Tree = dict[str, Props]  # path ('/a/b') -> props


@pytest.fixture(params=["embedded", "full"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    yield from serving_with_users(request, tmp_path, ("alice", "bob"))


@dataclass
class Answer:
    """A 207 sync answer: path -> props (None: 404), the token, whether truncated."""

    members: dict[str, Props | None]
    token: str
    truncated: bool


def report(
    server: RunningServer,
    user: str,
    path: str = "",
    token: str = "",
    level: str = "infinite",
    limit: int | None = None,
    **headers: str,
) -> requests.Response:
    nresults = "" if limit is None else f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>"
    body = SYNC.format(token=token, level=level, limit=nresults, props=PROPS)
    return server.client(user).request("REPORT", server.url(path), data=body, headers=headers)


def shown(href: str) -> str:
    """The user's path of an href (`/dav/a%20b/` -> `/a b`)."""
    assert href.startswith("/dav/"), href
    return unquote(href[len("/dav") :]).rstrip("/") or "/"


def props_of(item: ElementTree.Element) -> Props:
    """The properties of a `<D:response>` with status 200 (each as its XML); the
    404 ones must be those no resource has here (and a folder's length and type, and
    the ids of the virtual `Shared/`)."""
    missing = {"{urn:z}color", f"{D}getcontentlength", f"{D}getcontenttype"}
    if shown(item.findtext(f"{D}href") or "") == "/Shared":
        missing |= {f"{D}getetag", f"{OC}fileid"}
    found: Props = {}
    for propstat in item.findall(f"{D}propstat"):
        status = propstat.findtext(f"{D}status")
        for prop in propstat.find(f"{D}prop") or []:
            if status == "HTTP/1.1 200 OK":
                found[prop.tag] = ElementTree.tostring(prop, encoding="unicode")
            else:
                assert status == "HTTP/1.1 404 Not Found", status
                assert prop.tag in missing, prop.tag
    return found


def sync(server: RunningServer, user: str, path: str = "", **options: Any) -> Answer:
    response = report(server, user, path, **options)
    assert response.status_code == 207, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ElementTree.fromstring(response.content)
    assert root[-1].tag == f"{D}sync-token"
    members: dict[str, Props | None] = {}
    truncated = False
    for item in root.findall(f"{D}response"):
        href = item.findtext(f"{D}href") or ""
        status = item.findtext(f"{D}status")
        if status == "HTTP/1.1 507 Insufficient Storage":
            assert shown(href) == "/" + path.strip("/") and not truncated
            assert item.find(f"{D}error/{D}number-of-matches-within-limits") is not None
            truncated = True
            continue
        assert shown(href) not in members, f"{href} twice"
        gone = status == "HTTP/1.1 404 Not Found"
        assert gone or status is None, status
        if not gone:
            assert href.endswith("/") == (item.find(f".//{D}collection") is not None), href
        members[shown(href)] = None if gone else props_of(item)
    return Answer(members, root.findtext(f"{D}sync-token") or "", truncated)


def sync_all(server: RunningServer, user: str, path: str = "", **options: Any) -> Answer:
    """Syncs from `token` until an answer is not truncated: what they said, merged."""
    merged: dict[str, Props | None] = {}
    while True:
        got = sync(server, user, path, **options)
        merged.update(got.members)
        options["token"] = got.token
        if not got.truncated:
            return Answer(merged, got.token, False)


def apply(tree: Tree, members: dict[str, Props | None]) -> Tree:
    """A client's copy after an answer: a 404 drops a path with what is below it."""
    tree = dict(tree)
    for path, props in members.items():
        if props is None:
            for key in [k for k in tree if k == path or k.startswith(path + "/")]:
                del tree[key]
        else:
            tree[path] = props
    return tree


def walk(server: RunningServer, user: str, path: str = "", depth: int = 99) -> Tree:
    """What PROPFIND Depth 1 finds below `path`, folder by folder, `depth` levels."""
    found: Tree = {}
    response = server.client(user).request(
        "PROPFIND", server.url(path), data=PROPFIND.format(props=PROPS), headers={"Depth": "1"}
    )
    assert response.status_code == 207, response.text
    here = "/" + path.strip("/") if path.strip("/") else "/"
    for item in ElementTree.fromstring(response.content).iter(f"{D}response"):
        member = shown(item.findtext(f"{D}href") or "")
        if member == here:
            continue
        found[member] = props_of(item)
        if depth > 1 and item.find(f".//{D}collection") is not None:
            found.update(walk(server, user, member, depth - 1))
    return found


def token_of(server: RunningServer, user: str, path: str) -> str:
    body = PROPFIND.format(props="<D:sync-token/>")
    response = server.client(user).request(
        "PROPFIND", server.url(path), data=body, headers={"Depth": "0"}
    )
    assert response.status_code == 207, response.text
    return ElementTree.fromstring(response.content).findtext(f".//{D}sync-token") or ""


def refused(response: requests.Response, status: int, condition: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    error = ElementTree.fromstring(response.content)
    assert error.tag == f"{D}error" and error.find(f"{D}{condition}") is not None


def build(server: RunningServer, user: str) -> None:
    alice = server.client(user)
    for folder in ("d", "d/sub", "d/sub/deep", "e", "a b"):
        assert alice.request("MKCOL", server.url(folder)).status_code == 201
    for name in ("d/one.txt", "d/sub/two.txt", "d/sub/deep/three.txt", "e/x.txt", "a b/ü &.txt"):
        assert alice.put(server.url(name), data=name.encode()).status_code == 201


def test_syncs_give_exactly_what_changed_and_replay_to_the_propfind_walk(
    server: RunningServer,
) -> None:
    build(server, "alice")
    first = sync(server, "alice")
    assert not first.truncated and all(props is not None for props in first.members.values())
    tree = apply({}, first.members)
    assert tree == walk(server, "alice")
    alice = server.client("alice")
    assert alice.put(server.url("d/sub/deep/three.txt"), data=b"new").status_code == 204
    assert alice.put(server.url("e/new.txt"), data=b"n").status_code == 201
    assert alice.request("MKCOL", server.url("e/made")).status_code == 201
    move = {"Destination": server.url("moved")}
    assert alice.request("MOVE", server.url("d/sub"), headers=move).status_code == 201
    copy = {"Destination": server.url("e/copy")}
    assert alice.request("COPY", server.url("moved"), headers=copy).status_code == 201
    assert alice.delete(server.url("d/one.txt")).status_code == 204
    assert alice.request("PROPPATCH", server.url("a b/ü &.txt"), data=COLOR).status_code == 207
    second = sync(server, "alice", token=first.token)
    assert {path for path, props in second.members.items() if props is None} == {
        "/d/sub",
        "/d/one.txt",
    }
    assert set(second.members) == {
        "/d",
        "/d/sub",
        "/d/one.txt",
        "/e",
        "/e/new.txt",
        "/e/made",
        "/e/copy",
        "/e/copy/two.txt",
        "/e/copy/deep",
        "/e/copy/deep/three.txt",
        "/moved",
        "/moved/two.txt",
        "/moved/deep",
        "/moved/deep/three.txt",
        "/a b",
        "/a b/ü &.txt",
    }
    assert "{urn:z}color" in (second.members["/a b/ü &.txt"] or {})
    tree = apply(tree, second.members)
    assert tree == walk(server, "alice")
    quiet = sync(server, "alice", token=second.token)
    assert quiet.members == {} and quiet.token == second.token


def test_level_1_gives_the_direct_members_whose_etag_moved(server: RunningServer) -> None:
    build(server, "alice")
    root, folder = sync(server, "alice", level="1"), sync(server, "alice", "d", level="1")
    assert set(root.members) == {"/d", "/e", "/a b"}
    assert set(folder.members) == {"/d/sub", "/d/one.txt"}
    alice = server.client("alice")
    assert alice.put(server.url("d/sub/deep/new.txt"), data=b"x").status_code == 201
    assert alice.delete(server.url("e/x.txt")).status_code == 204
    assert alice.request("MOVE", server.url("e"), headers={"Destination": server.url("f")}).ok
    later = sync(server, "alice", level="1", token=root.token)
    assert later.members.keys() == {"/d", "/e", "/f"} and later.members["/e"] is None
    assert apply(apply({}, root.members), later.members) == walk(server, "alice", depth=1)
    inside = sync(server, "alice", "d", level="1", token=folder.token)
    assert set(inside.members) == {"/d/sub"}
    assert apply(apply({}, folder.members), inside.members) == walk(server, "alice", "d", 1)


def test_moves_across_a_collections_edge_bring_or_drop_whole_folders(
    server: RunningServer,
) -> None:
    build(server, "alice")
    before = sync(server, "alice", "d")
    alice = server.client("alice")
    move_in = {"Destination": server.url("d/e")}
    assert alice.request("MOVE", server.url("e"), headers=move_in).status_code == 201
    move_out = {"Destination": server.url("out")}
    assert alice.request("MOVE", server.url("d/sub"), headers=move_out).status_code == 201
    after = sync(server, "alice", "d", token=before.token)
    assert after.members.keys() == {"/d/e", "/d/e/x.txt", "/d/sub"}
    assert after.members["/d/sub"] is None
    assert apply(apply({}, before.members), after.members) == walk(server, "alice", "d")


def test_limits_page_an_initial_sync_and_the_changes(server: RunningServer) -> None:
    build(server, "alice")
    whole = sync(server, "alice")
    pages = [sync(server, "alice", limit=2)]
    while pages[-1].truncated:
        assert len(pages[-1].members) == 2
        pages.append(sync(server, "alice", limit=2, token=pages[-1].token))
    assert len(pages) == 1 + (len(whole.members) - 1) // 2
    assert apply({}, {k: v for page in pages for k, v in page.members.items()}) == walk(
        server, "alice"
    )
    alice = server.client("alice")
    for n in range(5):
        assert alice.put(server.url(f"e/n{n}.txt"), data=b"n").status_code == 201
    assert alice.delete(server.url("d")).status_code == 204
    first = sync(server, "alice", limit=3, token=pages[-1].token)
    assert first.truncated and len(first.members) <= 3
    rest = sync_all(server, "alice", limit=3, token=first.token)
    replay = apply(apply(apply({}, whole.members), first.members), rest.members)
    assert replay == walk(server, "alice")
    moved = {"Destination": server.url("d2")}
    assert alice.request("MOVE", server.url("e"), headers=moved).status_code == 201
    refused(
        report(server, "alice", limit=3, token=rest.token), 507, "number-of-matches-within-limits"
    )
    assert set(sync(server, "alice", limit=9, token=rest.token).members) >= {"/e", "/d2"}


def test_refused_tokens_are_valid_sync_token(server: RunningServer) -> None:
    build(server, "alice")
    alice_root = sync(server, "alice").token
    assert server.client("bob").request("MKCOL", server.url("d")).status_code == 201
    refused(report(server, "bob", token=alice_root), 403, "valid-sync-token")
    refused(report(server, "alice", "d", token=alice_root), 403, "valid-sync-token")
    for garbage in ("garbage", "http://davserver/ns/sync/v1.bad.cursor", alice_root + "x"):
        refused(report(server, "alice", token=garbage), 403, "valid-sync-token")
    shown_token = token_of(server, "alice", "d")
    assert sync(server, "alice", "d", token=shown_token).members == {}
    alice = server.client("alice")
    assert alice.delete(server.url("d/sub")).status_code == 204
    assert alice.request("MKCOL", server.url("d/sub")).status_code == 201
    refused(report(server, "alice", token=alice_root), 403, "valid-sync-token")
    assert set(sync(server, "alice", level="1", token=alice_root).members) == {"/d"}
    assert alice.delete(server.url("e")).status_code == 204
    assert server.services.catalog.changes.compact(time.time() + 1) >= 1
    refused(report(server, "alice", "d", token=shown_token), 403, "valid-sync-token")
    assert sync(server, "alice", "d").members.keys() == {"/d/sub", "/d/one.txt"}


def test_a_grantee_syncs_what_was_shared_with_them(server: RunningServer) -> None:
    build(server, "alice")
    grant = {"path": "/d", "to": "bob", "perm": "rw"}
    answer(server.client("alice").post(api(server, "grants"), json=grant), 201)
    first = sync(server, "bob", "Shared/d")
    assert apply({}, first.members) == walk(server, "bob", "Shared/d")
    home = sync(server, "bob", level="1")
    assert set(home.members) == {"/Shared"}
    alice, bob = server.client("alice"), server.client("bob")
    assert alice.put(server.url("d/sub/fresh.txt"), data=b"f").status_code == 201
    assert bob.delete(server.url("Shared/d/one.txt")).status_code == 204
    later = sync(server, "bob", "Shared/d", token=first.token)
    assert set(later.members) == {"/Shared/d/sub", "/Shared/d/sub/fresh.txt", "/Shared/d/one.txt"}
    assert apply(apply({}, first.members), later.members) == walk(server, "bob", "Shared/d")
    assert set(sync(server, "bob", level="1", token=home.token).members) == {"/Shared"}


def test_sync_token_property_options_and_refusals(server: RunningServer) -> None:
    build(server, "alice")
    token = token_of(server, "alice", "d")
    assert token.startswith("http://davserver/ns/sync/")
    assert token_of(server, "alice", "d/one.txt") == ""
    alice = server.client("alice")
    names = alice.request(
        "PROPFIND",
        server.url("d"),
        headers={"Depth": "1"},
        data=b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    )
    assert names.status_code == 207 and "sync-token" not in names.text
    listed = alice.request(
        "PROPFIND",
        server.url("d"),
        headers={"Depth": "1"},
        data=PROPFIND.format(props="<D:sync-token/><D:supported-report-set/>").encode(),
    )
    assert len(re.findall(r"<D:sync-token>http://davserver/ns/sync/", listed.text)) == 2
    assert listed.text.count("<D:sync-collection/>") == 2
    allow = alice.request("OPTIONS", server.url("d")).headers["Allow"]
    assert "REPORT" in allow.split(", ")
    assert "REPORT" not in alice.request("OPTIONS", server.url("d/one.txt")).headers["Allow"]
    refused(report(server, "alice", "d/one.txt"), 403, "supported-report")
    other = b'<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"/>'
    refused(alice.request("REPORT", server.url("d"), data=other), 403, "supported-report")
    depth = report(server, "alice", "d", Depth="1")
    assert depth.status_code == 400 and "Depth" in depth.text and "Traceback" not in depth.text
    assert report(server, "alice", "nothing").status_code == 404
    assert report(server, "bob", "d").status_code == 404
    link = make_link(server, "/d", "view", owner="alice")
    body = SYNC.format(token="", level="1", limit="", props=PROPS)
    refused(requests.request("REPORT", link.dav, data=body, timeout=30), 403, "supported-report")
