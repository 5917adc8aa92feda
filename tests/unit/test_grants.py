"""Grants in the catalog and the access module over them (SQLite catalog)."""

from __future__ import annotations

import pytest

from providers.catalog import Catalog, NodeRecord, ReceivedGrant
from providers.errors import Conflict, InvalidName, NotFound
from providers.operations.access import Access, SharedSpace, entry_names


@pytest.fixture
def people(catalog: Catalog) -> Catalog:
    for name in ("alice", "bob", "carol"):
        catalog.users.create(name, "hash")
    alice = catalog.users.get("alice")
    assert alice is not None
    proj = catalog.tree.mkdir(alice.home_id, "proj", alice.id, "/proj")
    catalog.tree.mkdir(proj.id, "sub", alice.id, "/proj/sub")
    catalog.groups.create("team")
    catalog.groups.add_member("team", "carol")
    return catalog


def user_id(catalog: Catalog, name: str) -> int:
    user = catalog.users.get(name)
    assert user is not None
    return user.id


def test_grant_lists_and_regrants_change_the_permission(people: Catalog) -> None:
    first = people.grants.grant("alice", ["proj"], "bob", "r")
    again = people.grants.grant("alice", ["proj"], "bob", "rw")
    assert (again.id, again.perm, again.path, again.grantee) == (first.id, "rw", "/proj", "bob")
    people.grants.grant("alice", ["proj", "sub"], "@team", "r")
    listed = [(g.owner, g.path, g.grantee, g.perm) for g in people.grants.of_owner("alice")]
    assert listed == [("alice", "/proj", "bob", "rw"), ("alice", "/proj/sub", "@team", "r")]
    assert people.grants.of_owner("bob") == []


@pytest.mark.parametrize(
    ("names", "to", "perm", "error"),
    [
        (["proj"], "bob", "x", InvalidName),
        (["nope"], "bob", "r", NotFound),
        (["proj"], "nobody", "r", NotFound),
        (["proj"], "@nogroup", "r", NotFound),
        (["proj"], "alice", "r", Conflict),
        ([], "bob", "r", Conflict),
    ],
)
def test_bad_grants_are_refused(
    people: Catalog, names: list[str], to: str, perm: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        people.grants.grant("alice", names, to, perm)
    assert people.grants.of_owner() == []


def test_received_merges_direct_and_group_grants(people: Catalog) -> None:
    people.grants.grant("alice", ["proj"], "@team", "r")
    people.grants.grant("alice", ["proj"], "carol", "rw")
    received = people.grants.received(user_id(people, "carol"))
    assert [(r.node.name, r.owner, r.owner_path, r.perm) for r in received] == [
        ("proj", "alice", ("proj",), "rw")
    ]
    assert people.grants.received(user_id(people, "bob")) == []
    people.groups.remove_member("team", "carol")
    people.grants.revoke("alice", ["proj"], "carol")
    assert people.grants.received(user_id(people, "carol")) == []


def test_every_change_moves_the_generation(people: Catalog) -> None:
    seen = [people.grants.generation()]

    def moved() -> bool:
        seen.append(people.grants.generation())
        return seen[-1] != seen[-2]

    people.grants.grant("alice", ["proj"], "@team", "r")
    assert moved()
    people.groups.add_member("team", "bob")
    assert moved()
    people.groups.remove_member("team", "bob")
    assert moved()
    assert people.grants.revoke("alice", ["proj"], "@team")
    assert moved()
    assert not people.grants.revoke("alice", ["proj"], "@team")
    assert not moved()


def _received(name: str, owner: str, node_id: int) -> ReceivedGrant:
    node = NodeRecord(node_id, 1, name, "dir", 1, 0, 0.0, 0.0, None, None, None)
    return ReceivedGrant(node, owner, (name,), "r")


def test_entry_names_tell_clashes_apart() -> None:
    received = [
        _received("photos", "alice", 1),
        _received("photos", "bob", 2),
        _received("docs", "alice", 3),
        _received("photos", "bob", 4),
    ]
    names = [e.name for e in entry_names(received)]
    assert names == ["photos (alice)", "photos (bob)", "docs", "photos (bob) 2"]


def test_shared_space_resolves_and_widens_by_nested_grants(people: Catalog) -> None:
    people.grants.grant("alice", ["proj"], "bob", "r")
    people.grants.grant("alice", ["proj", "sub"], "bob", "rw")
    space = SharedSpace(people, poll=0)
    bob, alice = user_id(people, "bob"), user_id(people, "alice")
    assert sorted(space.entries(bob)) == ["proj", "sub"]
    found = space.locate(bob, ["proj"])
    assert found is not None and found[2].access == Access.READ and found[2].fixed
    nested = space.locate(bob, ["proj", "sub"])
    assert nested is not None and nested[2].access == Access.WRITE and not nested[2].fixed
    assert nested[1] == ["Shared", "proj", "sub"]
    assert nested[2].lock_path == space.locate(bob, ["sub"])[2].lock_path  # type: ignore[index]
    assert space.locate(bob, ["nothing"]) is None
    assert space.locate(user_id(people, "carol"), []) is None  # no Shared/ without grants
    assert space.view_names(bob, alice, ["proj", "sub", "f"]) == ["Shared", "proj", "sub", "f"]
    assert space.view_names(bob, alice, []) == ["Shared", "proj"]  # above: nearest entry
    assert space.view_names(user_id(people, "carol"), alice, ["proj"]) == []
