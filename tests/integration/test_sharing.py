"""Sharing between users beyond the access table: locks, quotas, ownership, names.

Runs on both stacks (`server` fixture). Grants are made through the catalog, as the
CLI does, and the server's cache of them reloads within half a second (`settle`).
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import pytest
import requests

from tests.support.dav import LOCK_BODY
from tests.support.servers import RunningServer


def settle() -> None:
    time.sleep(0.7)  # > SharedSpace's poll interval (0.5 s)


@pytest.fixture
def people(server: RunningServer) -> RunningServer:
    for name in ("alice", "bob", "carol"):
        server.add_user(name, f"pw-{name}")
    return server


def lock(session: requests.Session, url: str) -> requests.Response:
    return session.request("LOCK", url, data=LOCK_BODY, headers={"Timeout": "Second-600"})


def entries(session: requests.Session, url: str) -> list[str]:
    response = session.request("PROPFIND", url, headers={"Depth": "1"})
    assert response.status_code == 207, response.status_code
    hrefs = re.findall(r"<D:href>([^<]*)</D:href>", response.text)
    return sorted(unquote(h.rstrip("/").rsplit("/", 1)[-1]) for h in hrefs[1:])


def test_same_path_in_two_homes_does_not_share_locks(people: RunningServer) -> None:
    """alice's /doc.txt and bob's /doc.txt are different files: a lock on one must
    not block the other (locks are keyed by the node's place in its owner's tree)."""
    alice, bob = people.client("alice"), people.client("bob")
    assert alice.put(people.url("doc.txt"), data=b"a").status_code == 201
    assert bob.put(people.url("doc.txt"), data=b"b").status_code == 201
    assert lock(alice, people.url("doc.txt")).status_code == 200
    assert bob.put(people.url("doc.txt"), data=b"b2").status_code == 204
    assert alice.put(people.url("doc.txt"), data=b"a2").status_code == 423


def test_a_lock_through_a_share_binds_the_owner_and_back(people: RunningServer) -> None:
    alice, bob = people.client("alice"), people.client("bob")
    assert alice.request("MKCOL", people.url("proj")).status_code == 201
    assert alice.put(people.url("proj/a.txt"), data=b"a").status_code == 201
    assert alice.put(people.url("proj/b.txt"), data=b"b").status_code == 201
    people.services.catalog.grants.grant("alice", ["proj"], "bob", "rw")
    settle()
    taken = lock(bob, people.url("Shared/proj/a.txt"))
    assert taken.status_code == 200
    assert alice.put(people.url("proj/a.txt"), data=b"x").status_code == 423
    assert alice.delete(people.url("proj")).status_code == 423
    token = taken.headers["Lock-Token"]
    discovered = alice.request("PROPFIND", people.url("proj/a.txt"), headers={"Depth": "0"})
    assert "/dav/proj/a.txt" in discovered.text  # the lock root, as alice names it
    assert (
        bob.request(
            "UNLOCK", people.url("Shared/proj/a.txt"), headers={"Lock-Token": token}
        ).status_code
        == 204
    )
    assert lock(alice, people.url("proj/b.txt")).status_code == 200
    assert bob.put(people.url("Shared/proj/b.txt"), data=b"y").status_code == 423


def test_writes_into_a_share_count_against_the_owner(people: RunningServer) -> None:
    alice, bob = people.client("alice"), people.client("bob")
    users = people.services.catalog.users
    assert alice.request("MKCOL", people.url("drop")).status_code == 201
    people.services.catalog.grants.grant("alice", ["drop"], "bob", "rw")
    users.set_quota("alice", 100_000)
    settle()
    assert bob.put(people.url("Shared/drop/f.bin"), data=b"x" * 60_000).status_code == 201
    assert users.get("alice").used_bytes == 60_000  # type: ignore[union-attr]
    assert users.get("bob").used_bytes == 0  # type: ignore[union-attr]
    assert bob.put(people.url("Shared/drop/g.bin"), data=b"y" * 60_000).status_code == 507
    assert bob.put(people.url("mine.bin"), data=b"z" * 60_000).status_code == 201  # bob has room

    moved = bob.request(
        "MOVE", people.url("Shared/drop/f.bin"), headers={"Destination": people.url("f.bin")}
    )
    assert moved.status_code == 201
    assert users.get("alice").used_bytes == 0  # type: ignore[union-attr]
    assert users.get("bob").used_bytes == 120_000  # type: ignore[union-attr]
    assert alice.get(people.url("drop/f.bin")).status_code == 404
    assert bob.get(people.url("f.bin")).content == b"x" * 60_000


def test_clashing_entry_names_are_told_apart_by_owner(people: RunningServer) -> None:
    alice, bob, carol = (people.client(n) for n in ("alice", "bob", "carol"))
    grants = people.services.catalog.grants
    for owner, session in (("alice", alice), ("bob", bob)):
        assert session.request("MKCOL", people.url("photos")).status_code == 201
        assert session.put(people.url("photos/who.txt"), data=owner.encode()).status_code == 201
        grants.grant(owner, ["photos"], "carol", "r")
    settle()
    assert entries(carol, people.url("Shared/")) == ["photos (alice)", "photos (bob)"]
    assert carol.get(people.url("Shared/photos (bob)/who.txt")).content == b"bob"
    assert carol.get(people.url("Shared/photos (alice)/who.txt")).content == b"alice"


def test_group_grants_follow_membership_and_revocation(people: RunningServer) -> None:
    alice, bob = people.client("alice"), people.client("bob")
    catalog = people.services.catalog
    catalog.groups.create("team")
    assert alice.request("MKCOL", people.url("plans")).status_code == 201
    catalog.grants.grant("alice", ["plans"], "@team", "r")
    settle()
    assert bob.get(people.url("Shared/plans/")).status_code == 404
    catalog.groups.add_member("team", "bob")
    settle()
    assert entries(bob, people.url("Shared/")) == ["plans"]
    catalog.grants.grant("alice", ["plans"], "bob", "rw")  # a direct grant widens the group's
    settle()
    assert bob.put(people.url("Shared/plans/x.txt"), data=b"x").status_code == 201
    catalog.grants.revoke("alice", ["plans"], "bob")
    settle()
    assert bob.put(people.url("Shared/plans/y.txt"), data=b"y").status_code == 403
    catalog.groups.remove_member("team", "bob")
    settle()
    assert bob.get(people.url("Shared/plans/x.txt")).status_code == 404


def test_deleting_the_shared_node_or_the_grantee_drops_the_grants(people: RunningServer) -> None:
    alice = people.client("alice")
    catalog = people.services.catalog
    for name in ("one", "two"):
        assert alice.request("MKCOL", people.url(name)).status_code == 201
        catalog.grants.grant("alice", [name], "bob", "r")
        catalog.grants.grant("alice", [name], "carol", "r")
    assert alice.delete(people.url("one")).status_code == 204
    assert [(g.path, g.grantee) for g in catalog.grants.of_owner("alice")] == [
        ("/two", "bob"),
        ("/two", "carol"),
    ]
    catalog.users.remove("bob")
    assert [(g.path, g.grantee) for g in catalog.grants.of_owner("alice")] == [("/two", "carol")]


def test_shared_is_reserved_at_the_home_root(people: RunningServer) -> None:
    alice = people.client("alice")
    assert alice.request("MKCOL", people.url("Shared")).status_code == 403
    assert alice.put(people.url("Shared"), data=b"x").status_code == 403
    assert alice.put(people.url("a.txt"), data=b"a").status_code == 201
    moved = alice.request(
        "MOVE", people.url("a.txt"), headers={"Destination": people.url("Shared")}
    )
    assert moved.status_code == 403
    assert alice.request("MKCOL", people.url("sub")).status_code == 201
    assert alice.request("MKCOL", people.url("sub/Shared")).status_code == 201  # only at the root
