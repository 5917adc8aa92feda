"""Versions and trash in their Nextcloud form (`/remote.php/dav/versions/<user>/...`,
`/remote.php/dav/trashbin/<user>/...`) on both stacks: the versions of a file by its
`oc:fileid`, a version's bytes (and a range of them), restore by MOVE (one change in
the feed, the replaced content kept as a version); the trash with its `nc:trashbin-*`
properties, a trashed file's bytes, a trashed folder's content, restore by MOVE,
purge, empty; what is not the caller's is 404, and every other method 403."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote

import requests

from tests.support.api import answer, api
from tests.support.dav import LOCK_BODY, put
from tests.support.servers import RunningServer

NC = "{http://nextcloud.org/ns}"
OC = "{http://owncloud.org/ns}"
D = "{DAV:}"
VERSION_PROPS = ("getcontentlength", "getlastmodified", "getetag", "getcontenttype")
TRASH_PROPS = (
    '<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"'
    ' xmlns:nc="http://nextcloud.org/ns"><d:prop><nc:trashbin-filename/>'
    "<nc:trashbin-original-location/><nc:trashbin-deletion-time/><d:getcontentlength/>"
    "<oc:size/><d:resourcetype/><oc:fileid/></d:prop></d:propfind>"
)
VERSIONS_BODY = (
    '<d:propfind xmlns:d="DAV:" xmlns:nc="http://nextcloud.org/ns"><d:prop>'
    + "".join(f"<d:{name}/>" for name in VERSION_PROPS)
    + "<nc:version-author/></d:prop></d:propfind>"
)
FILEID_BODY = (
    '<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
    "<d:prop><oc:fileid/></d:prop></d:propfind>"
)
DTD_BODY = (
    '<?xml version="1.0"?><!DOCTYPE d:propfind [<!ENTITY x "x">]>'
    '<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>'
)


def remote(server: RunningServer, path: str) -> str:
    return f"{server.base}/remote.php/dav/{path.lstrip('/')}"


def listing(
    session: requests.Session, url: str, body: str = "", depth: str = "1"
) -> dict[str, dict[str, Any]]:
    """PROPFIND: {href: {tag: text, or the element for a resourcetype}} of the 200
    propstats."""
    response = session.request("PROPFIND", url, data=body.encode(), headers={"Depth": depth})
    assert response.status_code == 207, (response.status_code, response.text[:300])
    found: dict[str, dict[str, Any]] = {}
    for item in ET.fromstring(response.content).iter(f"{D}response"):
        props: dict[str, Any] = {}
        for propstat in item.iter(f"{D}propstat"):
            if " 200 " in (propstat.findtext(f"{D}status") or ""):
                for prop in propstat.iter(f"{D}prop"):
                    props.update({child.tag: child.text or child for child in prop})
        found[unquote(item.findtext(f"{D}href") or "")] = props
    return found


def members(found: dict[str, dict[str, Any]], collection: str) -> dict[str, dict[str, Any]]:
    """A Depth 1 listing without the collection itself."""
    return {href: props for href, props in found.items() if href.rstrip("/") != collection}


def file_id(session: requests.Session, server: RunningServer, path: str) -> str:
    body = FILEID_BODY
    (props,) = listing(session, server.url(path), body, depth="0").values()
    return str(props[f"{OC}fileid"])


def feed_after(server: RunningServer, cursor: str) -> list[Any]:
    page = answer(server.client().get(api(server, "changes"), params={"cursor": cursor}), 200)
    return list(page["changes"])


def latest(server: RunningServer) -> str:
    return str(answer(server.client().get(api(server, "changes/latest")), 200)["cursor"])


def test_versions_list_get_and_restore_by_move(server: RunningServer) -> None:
    admin = server.client()
    capabilities = requests.get(f"{server.base}/ocs/v1.php/cloud/capabilities?format=json")
    files = capabilities.json()["ocs"]["data"]["capabilities"]["files"]
    assert files["versioning"] is True and files["undelete"] is True
    bodies = [f"version {n}\n".encode() * (n + 5) for n in range(3)]
    for n, body in enumerate(bodies):
        put(admin, server.url("doc.txt"), body, **{"X-OC-Mtime": str(1_700_000_000 + n)})
    fid = file_id(admin, server, "doc.txt")
    base = f"/remote.php/dav/versions/admin/versions/{fid}"
    found = listing(admin, remote(server, f"versions/admin/versions/{fid}"), VERSIONS_BODY)
    old = list(members(found, base).items())
    assert len(old) == 2  # the current content is not a version
    assert [int(p[f"{D}getcontentlength"]) for _h, p in old] == [len(bodies[1]), len(bodies[0])]
    assert old[0][1][f"{D}getlastmodified"] == "Tue, 14 Nov 2023 22:13:21 GMT"
    assert {p[f"{NC}version-author"] for _h, p in old} == {"admin"}
    assert all(p[f"{D}getcontenttype"] == "text/plain" for _h, p in old)
    href = old[1][0]
    assert href.startswith(base + "/") and href[len(base) + 1 :].isdigit()
    version_url = server.base + quote(href)
    got = admin.get(version_url)
    assert got.status_code == 200 and got.content == bodies[0]
    assert got.headers["ETag"].strip('"') == old[1][1][f"{D}getetag"].strip('"')
    ranged = admin.get(version_url, headers={"Range": "bytes=2-6"})
    assert ranged.status_code == 206 and ranged.content == bodies[0][2:7]

    cursor = latest(server)
    target = remote(server, "versions/admin/restore/target")
    moved = admin.request("MOVE", version_url, headers={"Destination": target})
    assert moved.status_code == 201, moved.text
    assert admin.get(server.url("doc.txt")).content == bodies[0]
    changes = feed_after(server, cursor)
    assert [(c["op"], c["path"]) for c in changes] == [("modified", "/doc.txt")]
    after = listing(admin, remote(server, f"versions/admin/versions/{fid}"), VERSIONS_BODY)
    sizes = [int(p[f"{D}getcontentlength"]) for p in members(after, base).values()]
    assert sizes[0] == len(bodies[2])  # the replaced content is the newest version
    assert len(sizes) == 3

    # a locked file is restored only with the lock's token, tagged with the file's URL
    # (design invariant 12)
    locked = admin.request("LOCK", server.url("doc.txt"), data=LOCK_BODY)
    token = locked.headers["Lock-Token"]
    refused = admin.request("MOVE", version_url, headers={"Destination": target})
    assert refused.status_code == 423
    with_token = {"Destination": target, "If": f"<{server.url('doc.txt')}> ({token})"}
    assert admin.request("MOVE", version_url, headers=with_token).status_code == 201


def test_versions_of_what_the_caller_does_not_see_are_not_found(server: RunningServer) -> None:
    admin = server.client()
    put(admin, server.url("mine.txt"), b"one")
    put(admin, server.url("mine.txt"), b"two")
    fid = file_id(admin, server, "mine.txt")
    server.add_user("bob", "bob-pass")
    bob = server.client("bob")
    for path in (
        f"versions/bob/versions/{fid}",
        f"versions/admin/versions/{fid}",
        "versions/bob/versions/999999",
        "versions/bob/versions/nonsense",
    ):
        response = bob.request("PROPFIND", remote(server, path), headers={"Depth": "1"})
        assert response.status_code == 404, (path, response.status_code)
    (href,) = [
        h for h in listing(admin, remote(server, f"versions/admin/versions/{fid}")) if h[-1] != "/"
    ]
    assert bob.get(server.base + quote(href)).status_code == 404
    restore = remote(server, "versions/bob/restore/target")
    moved = bob.request("MOVE", server.base + quote(href), headers={"Destination": restore})
    assert moved.status_code == 404
    assert admin.get(server.url("mine.txt")).content == b"two"
    # every write but MOVE and DELETE is refused, and a MOVE elsewhere than restore/
    assert admin.put(server.base + quote(href), data=b"x").status_code == 403
    assert admin.delete(server.base + quote(href)).status_code == 403
    elsewhere = admin.request(
        "MOVE", server.base + quote(href), headers={"Destination": remote(server, "versions/x")}
    )
    assert elsewhere.status_code == 403
    allow = admin.options(remote(server, f"versions/admin/versions/{fid}")).headers["Allow"]
    assert "PUT" not in allow and "MOVE" in allow and "PROPFIND" in allow
    dtd = admin.request("PROPFIND", remote(server, "versions/admin/"), data=DTD_BODY)
    assert dtd.status_code == 400

    # a grantee reads the versions of a file shared with it, restores only with write
    grant = {"path": "/mine.txt", "to": "bob", "perm": "r"}
    answer(admin.post(api(server, "grants"), json=grant), 201)
    shared = listing(bob, remote(server, f"versions/bob/versions/{fid}"))
    (bob_href,) = members(shared, f"/remote.php/dav/versions/bob/versions/{fid}")
    assert bob.get(server.base + quote(bob_href)).content == b"one"
    moved = bob.request("MOVE", server.base + quote(bob_href), headers={"Destination": restore})
    assert moved.status_code == 403


def test_trash_list_get_restore_purge_and_empty(server: RunningServer) -> None:
    admin = server.client()
    files = remote(server, "files/admin/")
    assert admin.request("MKCOL", files + "proj").status_code == 201
    put(admin, files + "proj/a.txt", b"alpha")
    assert admin.request("MKCOL", files + "proj/sub").status_code == 201
    put(admin, files + "proj/sub/b.txt", b"bravo!")
    put(admin, files + "notes one.txt", b"some notes")
    put(admin, server.url("gone.txt"), b"gone")
    before = time.time()
    for path in ("proj", "notes one.txt", "gone.txt"):
        assert admin.delete(files + quote(path)).status_code == 204

    trash = remote(server, "trashbin/admin/trash")
    found = listing(admin, trash, TRASH_PROPS)
    listed = members(found, "/remote.php/dav/trashbin/admin/trash").items()
    items = {props[f"{NC}trashbin-filename"]: (href, props) for href, props in listed}
    assert set(items) == {"proj", "notes one.txt", "gone.txt"}
    href, props = items["proj"]
    assert props[f"{NC}trashbin-original-location"] == "proj"
    assert props[f"{OC}size"] == str(len(b"alpha") + len(b"bravo!"))
    assert props[f"{D}resourcetype"].find(f"{D}collection") is not None
    assert abs(int(props[f"{NC}trashbin-deletion-time"]) - before) < 60
    assert href.endswith(f"/proj.d{props[f'{OC}fileid']}/")
    inside = listing(admin, server.base + quote(href), TRASH_PROPS)
    locations = {p[f"{NC}trashbin-original-location"] for p in inside.values()}
    assert locations == {"proj", "proj/a.txt", "proj/sub"}
    notes_href, notes = items["notes one.txt"]
    assert notes[f"{D}getcontentlength"] == str(len(b"some notes"))
    assert admin.get(server.base + quote(notes_href)).content == b"some notes"
    assert admin.get(server.base + quote(href) + "sub/b.txt").content == b"bravo!"
    assert admin.delete(server.base + quote(href) + "sub/b.txt").status_code == 403

    server.add_user("bob", "bob-pass")
    bob = server.client("bob")
    assert bob.request("PROPFIND", trash, headers={"Depth": "1"}).status_code == 404
    assert bob.get(server.base + quote(notes_href)).status_code == 404
    assert bob.delete(server.base + quote(notes_href)).status_code == 404

    cursor = latest(server)
    restore = remote(server, "trashbin/admin/restore/proj")
    moved = admin.request("MOVE", server.base + quote(href), headers={"Destination": restore})
    assert moved.status_code == 201, moved.text
    assert admin.get(server.url("proj/sub/b.txt")).content == b"bravo!"
    assert [(c["op"], c["path"]) for c in feed_after(server, cursor)][0] == ("created", "/proj")
    assert admin.delete(server.base + quote(notes_href)).status_code == 204
    left = [h for h in listing(admin, trash) if "gone.txt" in h]
    assert len(left) == 1 and len(listing(admin, trash)) == 2
    assert admin.delete(trash).status_code == 204
    assert len(listing(admin, trash)) == 1  # the trash itself, empty
    assert answer(admin.get(api(server, "trash")), 200)["items"] == []
