"""Old versions through the API (`GET /api/v1/versions`) on both stacks: each
overwrite by WebDAV keeps the previous content, listed newest first with its size,
SHA-256, mtime and author; a grantee sees the versions of a shared file; folders,
missing paths and other users' files are refused."""

from __future__ import annotations

import hashlib
import random

from tests.support.api import answer, api, error
from tests.support.dav import put
from tests.support.servers import RunningServer


def test_overwrites_are_listed_newest_first(server: RunningServer) -> None:
    admin = server.client()
    bodies = [f"version {n}\n".encode() * (n + 1) for n in range(3)]
    for n, body in enumerate(bodies):
        put(admin, server.url("doc.txt"), body, **{"X-OC-Mtime": str(1_700_000_000 + n)})
    listed = answer(admin.get(api(server, "versions?path=/doc.txt")), 200)["versions"]
    assert [(v["size"], v["sha256"]) for v in listed] == [
        (len(b), hashlib.sha256(b).hexdigest()) for b in reversed(bodies[:2])
    ]
    assert [v["mtime"] for v in listed] == [1_700_000_001, 1_700_000_000]
    assert {v["author"] for v in listed} == {"admin"}
    assert listed[0]["created"] >= listed[1]["created"] and len({v["id"] for v in listed}) == 2

    server.add_user("bob", "bob-pass")
    bob = server.client("bob")
    assert error(bob.get(api(server, "versions?path=/doc.txt")), 404)
    grant = {"path": "/doc.txt", "to": "bob", "perm": "r"}
    answer(admin.post(api(server, "grants"), json=grant), 201)
    shared = answer(bob.get(api(server, "versions?path=/Shared/doc.txt")), 200)["versions"]
    assert shared == listed


def test_folders_and_missing_paths_are_refused(server: RunningServer) -> None:
    admin = server.client()
    assert admin.request("MKCOL", server.url("folder")).status_code == 201
    assert "no versions" in error(admin.get(api(server, "versions?path=/folder")), 409)
    assert error(admin.get(api(server, "versions?path=/nothing.txt")), 404)
    assert "path is required" in error(admin.get(api(server, "versions")), 400)


LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>"""


def test_each_version_restores_byte_for_byte(server: RunningServer) -> None:
    admin = server.client()
    bodies = [random.Random(n).randbytes(40_000 + n) for n in range(5)]
    for body in bodies:
        put(admin, server.url("doc.bin"), body)
    old = answer(admin.get(api(server, "versions?path=/doc.bin")), 200)["versions"]
    assert len(old) == 4
    for version, body in zip(old, reversed(bodies[:4]), strict=True):
        restore = {"path": "/doc.bin", "id": version["id"]}
        done = answer(admin.post(api(server, "versions/restore"), json=restore), 200)
        assert done["size"] == len(body)
        assert admin.get(server.url("doc.bin")).content == body
    after = answer(admin.get(api(server, "versions?path=/doc.bin")), 200)["versions"]
    assert len(after) == 8  # each replaced content became a version
    assert after[0]["sha256"] == hashlib.sha256(bodies[1]).hexdigest()


def test_restore_needs_write_rights_no_foreign_lock_and_a_real_version(
    server: RunningServer,
) -> None:
    admin = server.client()
    put(admin, server.url("doc.txt"), b"one")
    put(admin, server.url("doc.txt"), b"two")
    (old,) = answer(admin.get(api(server, "versions?path=/doc.txt")), 200)["versions"]
    url = api(server, "versions/restore")
    assert error(admin.post(url, json={"path": "/doc.txt", "id": "999999"}), 404)
    assert error(admin.post(url, json={"path": "/doc.txt"}), 400)
    server.add_user("bob", "bob-pass")
    bob = server.client("bob")
    answer(
        admin.post(api(server, "grants"), json={"path": "/doc.txt", "to": "bob", "perm": "r"}), 201
    )
    assert error(bob.post(url, json={"path": "/Shared/doc.txt", "id": old["id"]}), 403)
    locked = admin.request(
        "LOCK", server.url("doc.txt"), data=LOCK_BODY, headers={"Timeout": "Second-60"}
    )
    assert locked.status_code == 200
    assert error(bob.post(url, json={"path": "/Shared/doc.txt", "id": old["id"]}), 403)
    assert error(admin.post(url, json={"path": "/doc.txt", "id": old["id"]}), 423)
    assert admin.get(server.url("doc.txt")).content == b"two"  # nothing changed
