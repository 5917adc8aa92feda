"""The trash through WebDAV and the API on both stacks: DELETE keeps what it deletes
(a folder of many files comes back byte for byte), restore finds a free name, a
grantee's delete lands in the owner's trash, purge and empty free it for GC."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from tests.support.api import answer, api, error
from tests.support.dav import put
from tests.support.servers import RunningServer


def test_a_deleted_folder_comes_back_byte_for_byte(server: RunningServer) -> None:
    """1,000 files in 10 folders: deleted and restored as one item each way."""
    admin = server.client()
    for folder in ["project", *(f"project/d{d}" for d in range(10))]:
        assert admin.request("MKCOL", server.url(folder)).status_code == 201
    bodies = {
        f"project/d{n % 10}/f{n}.bin": random.Random(n).randbytes(200 + n) for n in range(1000)
    }
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: put(admin, server.url(item[0]), item[1]), bodies.items()))
    assert admin.delete(server.url("project")).status_code == 204
    assert admin.get(server.url("project/d1/f1.bin")).status_code == 404
    (item,) = answer(admin.get(api(server, "trash")), 200)["items"]
    assert (item["path"], item["kind"], item["deleted_by"]) == ("/project", "folder", "admin")
    assert item["size"] == sum(len(b) for b in bodies.values())
    restored = answer(admin.post(api(server, "trash/restore"), json={"id": item["id"]}), 200)
    assert restored == {"path": "/project"}
    with ThreadPoolExecutor(8) as pool:
        got = dict(pool.map(lambda path: (path, admin.get(server.url(path)).content), bodies))
    assert got == bodies
    assert answer(admin.get(api(server, "trash")), 200) == {"items": []}


def test_restore_takes_a_free_name_or_the_one_given(server: RunningServer) -> None:
    admin = server.client()
    put(admin, server.url("a.txt"), b"first")
    assert admin.delete(server.url("a.txt")).status_code == 204
    put(admin, server.url("a.txt"), b"second")
    (item,) = answer(admin.get(api(server, "trash")), 200)["items"]
    url = api(server, "trash/restore")
    taken = {"id": item["id"], "to": "/a.txt"}
    assert "exists" in error(admin.post(url, json=taken), 409)
    assert answer(admin.post(url, json={"id": item["id"]}), 200) == {"path": "/a (restored).txt"}
    assert admin.get(server.url("a (restored).txt")).content == b"first"
    assert admin.get(server.url("a.txt")).content == b"second"
    assert error(admin.post(url, json={"id": item["id"]}), 404)  # not in the trash now


def test_a_grantees_delete_goes_to_the_owners_trash(server: RunningServer) -> None:
    admin = server.client()
    assert admin.request("MKCOL", server.url("team")).status_code == 201
    put(admin, server.url("team/plan.txt"), b"the plan")
    server.add_user("bob", "bob-pass")
    bob = server.client("bob")
    answer(
        admin.post(api(server, "grants"), json={"path": "/team", "to": "bob", "perm": "rw"}), 201
    )
    assert bob.delete(server.url("Shared/team/plan.txt")).status_code == 204
    assert answer(bob.get(api(server, "trash")), 200) == {"items": []}
    (item,) = answer(admin.get(api(server, "trash")), 200)["items"]
    assert (item["path"], item["deleted_by"]) == ("/team/plan.txt", "bob")
    assert error(bob.delete(api(server, f"trash/{item['id']}")), 404)
    answer(admin.post(api(server, "trash/restore"), json={"id": item["id"]}), 200)
    assert bob.get(server.url("Shared/team/plan.txt")).content == b"the plan"


def test_purge_and_empty(server: RunningServer) -> None:
    admin = server.client()
    for name in ("x.txt", "y.txt", "z.txt"):
        put(admin, server.url(name), name.encode())
        assert admin.delete(server.url(name)).status_code == 204
    items = answer(admin.get(api(server, "trash")), 200)["items"]
    assert [i["path"] for i in items] == ["/z.txt", "/y.txt", "/x.txt"]
    assert admin.delete(api(server, f"trash/{items[0]['id']}")).status_code == 204
    assert answer(admin.delete(api(server, "trash")), 200) == {"purged": 2}
    assert answer(admin.get(api(server, "trash")), 200) == {"items": []}
    me = answer(admin.get(api(server, "me")), 200)
    assert me["used_bytes"] == 0
