"""The access table: every WebDAV method x (owner, read grantee, read-write grantee,
group member, stranger, anonymous), with the status each must get.

alice owns one folder per (method, role) cell, holding `a.txt` and `sub/`, and shares
it with carol (`r`), bob (`rw`) and group `team` (`rw`, member gina). The owner works
on `/<folder>/...`; everyone else on `/Shared/<folder>/...`, the only way to name
another user's files. A stranger (dave) must get exactly what a path that does not
exist gets (404, or 409 where the method would create something under a missing
parent, RFC 4918 9.7.1), never a hint that the folder exists. After each cell the
outcome is checked, not just the status: a refused write changed nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.servers import RunningServer, stack_settings, start_server

ROLES = ["owner", "read", "rw", "group", "stranger", "anonymous"]
USERS = {"owner": "alice", "read": "carol", "rw": "bob", "group": "gina", "stranger": "dave"}
LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>table</D:owner></D:lockinfo>"""
PROPPATCH_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test:"><D:set><D:prop>
<Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>"""


@dataclass
class Cell:
    """One request of the table: `base` is the folder as the role names it."""

    server: RunningServer
    session: requests.Session
    base: str
    folder: str
    user: str | None

    def url(self, rest: str = "") -> str:
        return self.server.url(self.base + rest)

    def send(self, method: str, rest: str = "", **kw: object) -> requests.Response:
        return self.session.request(method, self.url(rest), timeout=30, **kw)  # type: ignore[arg-type]

    def own(self, name: str) -> str:
        """A URL in the role's own home (for COPY/MOVE destinations and sources)."""
        return self.server.url(f"{self.folder}-{name}")


def _lock_token(response: requests.Response) -> str:
    assert response.status_code in (200, 201), response.status_code
    return response.headers["Lock-Token"]


def copy_out(c: Cell) -> int:
    dest = c.own("copy.txt")
    return c.send("COPY", "a.txt", headers={"Destination": dest}).status_code


def copy_in(c: Cell) -> int:
    source = c.own("src.txt")
    if c.user:
        c.session.put(source, data=b"mine")
    dest = c.url("in.txt")
    return c.session.request("COPY", source, headers={"Destination": dest}).status_code


def move_inside(c: Cell) -> int:
    return c.send("MOVE", "a.txt", headers={"Destination": c.url("renamed.txt")}).status_code


def move_out(c: Cell) -> int:
    return c.send("MOVE", "a.txt", headers={"Destination": c.own("moved.txt")}).status_code


def unlock_owners_lock(c: Cell) -> int:
    owner = c.server.client("alice")
    token = _lock_token(owner.request("LOCK", c.server.url(f"{c.folder}/a.txt"), data=LOCK_BODY))
    return c.send("UNLOCK", "a.txt", headers={"Lock-Token": token}).status_code


def unlock_own_lock(c: Cell) -> int:
    locked = c.send("LOCK", "a.txt", data=LOCK_BODY)
    if locked.status_code not in (200, 201):
        return locked.status_code
    return c.send("UNLOCK", "a.txt", headers={"Lock-Token": _lock_token(locked)}).status_code


# method: (request, expected status per role in ROLES order)
TABLE: dict[str, tuple[Callable[[Cell], int], list[int]]] = {
    "GET": (lambda c: c.send("GET", "a.txt").status_code, [200, 200, 200, 200, 404, 401]),
    "HEAD": (lambda c: c.send("HEAD", "a.txt").status_code, [200, 200, 200, 200, 404, 401]),
    "PROPFIND file": (
        lambda c: c.send("PROPFIND", "a.txt", headers={"Depth": "0"}).status_code,
        [207, 207, 207, 207, 404, 401],
    ),
    "PROPFIND folder": (
        lambda c: c.send("PROPFIND", "", headers={"Depth": "1"}).status_code,
        [207, 207, 207, 207, 404, 401],
    ),
    "PUT overwrite": (
        lambda c: c.send("PUT", "a.txt", data=b"changed").status_code,
        [204, 403, 204, 204, 409, 401],
    ),
    "PUT new": (
        lambda c: c.send("PUT", "new.txt", data=b"new").status_code,
        [201, 403, 201, 201, 409, 401],
    ),
    "DELETE": (lambda c: c.send("DELETE", "a.txt").status_code, [204, 403, 204, 204, 404, 401]),
    "DELETE share root": (
        lambda c: c.send("DELETE", "").status_code,
        [204, 403, 403, 403, 404, 401],
    ),
    "MKCOL": (lambda c: c.send("MKCOL", "made").status_code, [201, 403, 201, 201, 409, 401]),
    "COPY out of the share": (copy_out, [201, 201, 201, 201, 404, 401]),
    "COPY into the share": (copy_in, [201, 403, 201, 201, 409, 401]),
    "MOVE inside the share": (move_inside, [201, 403, 201, 201, 404, 401]),
    "MOVE out of the share": (move_out, [201, 403, 201, 201, 404, 401]),
    "PROPPATCH": (
        lambda c: c.send("PROPPATCH", "a.txt", data=PROPPATCH_BODY).status_code,
        [207, 403, 207, 207, 404, 401],
    ),
    "LOCK": (
        lambda c: c.send("LOCK", "a.txt", data=LOCK_BODY).status_code,
        [200, 403, 200, 200, 409, 401],
    ),
    "LOCK new name": (
        lambda c: c.send("LOCK", "locked-new.txt", data=LOCK_BODY).status_code,
        [201, 403, 201, 201, 409, 401],
    ),
    "UNLOCK own lock": (unlock_own_lock, [204, 403, 204, 204, 409, 401]),
    "UNLOCK the owner's lock": (unlock_owners_lock, [204, 403, 403, 403, 404, 401]),
}


def _folder(method: str, role: str) -> str:
    return re.sub(r"[^a-z]+", "-", method.lower()) + role


@pytest.fixture(scope="module", params=["embedded", "full"])
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per stack with every cell's folder created and shared."""
    data_dir: Path = tmp_path_factory.mktemp("access")
    settings = stack_settings(request, data_dir, request.param)
    server = start_server(settings)
    for user in USERS.values():
        server.add_user(user, f"pw-{user}")
    catalog = server.services.catalog
    catalog.groups.create("team")
    catalog.groups.add_member("team", "gina")
    alice = server.client("alice")
    for method in TABLE:
        for role in ROLES:
            folder = _folder(method, role)
            assert alice.request("MKCOL", server.url(folder)).status_code == 201
            assert alice.request("MKCOL", server.url(f"{folder}/sub")).status_code == 201
            assert alice.put(server.url(f"{folder}/a.txt"), data=b"alpha").status_code == 201
            for grantee, perm in (("carol", "r"), ("bob", "rw"), ("@team", "rw")):
                catalog.grants.grant("alice", [folder], grantee, perm)
    time.sleep(1.0)  # the servers' caches of received grants reload within 0.5 s
    yield server
    server.stop()


def _cell(server: RunningServer, method: str, role: str) -> Cell:
    folder = _folder(method, role)
    user = USERS.get(role)
    session = server.client(user) if user else requests.Session()
    base = f"{folder}/" if role == "owner" else f"Shared/{folder}/"
    return Cell(server, session, base, folder, user)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", list(TABLE))
def test_access_table(shared_server: RunningServer, method: str, role: str) -> None:
    request, expected = TABLE[method]
    cell = _cell(shared_server, method, role)
    before = _owner_view(shared_server, cell.folder)
    status = request(cell)
    assert status == expected[ROLES.index(role)], f"{method} as {role}: got {status}"
    if status >= 400 and method != "UNLOCK the owner's lock":
        assert _owner_view(shared_server, cell.folder) == before, "a refused request changed data"


def _owner_view(server: RunningServer, folder: str) -> tuple[int, bytes]:
    """What alice sees of the cell's folder: its listing size and `a.txt`'s bytes."""
    alice = server.client("alice")
    listing = alice.request("PROPFIND", server.url(folder + "/"), headers={"Depth": "1"})
    body = alice.get(server.url(f"{folder}/a.txt")).content
    return listing.text.count("<D:response>"), body


def test_listings_show_only_what_may_be_seen(shared_server: RunningServer) -> None:
    """A grantee's home lists their own files and `Shared/`; `Shared/` lists exactly
    the grants; a stranger has no `Shared/`; nothing of alice leaks elsewhere."""
    alice = shared_server.client("alice")
    assert alice.put(shared_server.url("private.txt"), data=b"secret").status_code == 201

    def names(user: str, path: str) -> set[str]:
        session = shared_server.client(user)
        response = session.request("PROPFIND", shared_server.url(path), headers={"Depth": "1"})
        assert response.status_code == 207
        hrefs = re.findall(r"<D:href>([^<]*)</D:href>", response.text)
        return {h.rstrip("/").rsplit("/", 1)[-1] for h in hrefs[1:]}

    folders = {_folder(method, role) for method in TABLE for role in ROLES}
    dave_home = names("dave", "")
    assert not dave_home & (folders | {"private.txt", "Shared"})
    dave = shared_server.client("dave")
    missing = dave.request("PROPFIND", shared_server.url("Shared/"), headers={"Depth": "1"})
    assert missing.status_code == 404
    shared_with_carol = names("carol", "Shared/")
    assert shared_with_carol <= folders and "private.txt" not in shared_with_carol
    assert "private.txt" not in names("bob", "")
    assert shared_server.client("dave").get(shared_server.url("private.txt")).status_code == 404
