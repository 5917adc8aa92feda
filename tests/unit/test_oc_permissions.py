"""`oc:permissions` (`providers.dav.oc_props`): the letters the Nextcloud and ownCloud
clients decide with, from the caller's place, and the exact right of a listed member
under a received share."""

from __future__ import annotations

import pytest

from providers.catalog import Catalog, UserRecord
from providers.dav.oc_props import oc_permissions, permission_letters
from providers.operations import Access, Actor, Operations, Place
from providers.operations.access import home_place, shared_place


@pytest.mark.parametrize(
    ("place", "is_dir", "received", "letters"),
    [
        (home_place(1, ["a.txt"]), False, False, "RGDNVW"),
        (home_place(1, ["docs"]), True, False, "RGDNVCK"),
        (home_place(1, []), True, False, "RGCK"),  # the home: never deleted or renamed
        (shared_place(1), True, False, "G"),  # the virtual Shared/: read-only
        (Place(2, ("proj",), Access.READ, fixed=True), True, True, "SG"),
        (Place(2, ("proj", "a.txt"), Access.READ), False, True, "SG"),
        (Place(2, ("proj",), Access.WRITE, fixed=True), True, True, "SGCK"),
        (Place(2, ("proj", "a.txt"), Access.WRITE), False, True, "SGDNVW"),
        (Place(2, ("proj", "sub"), Access.WRITE), True, True, "SGDNVCK"),
        (Place(2, ("drop",), Access.ADD, fixed=True), True, False, "GCK"),  # upload link
        (Place(2, ("drop", "f"), Access.ADD), False, False, "G"),
    ],
)
def test_letters_follow_the_rights(
    place: Place, is_dir: bool, received: bool, letters: str
) -> None:
    assert permission_letters(place, is_dir=is_dir, received=received) == letters


def test_a_nested_read_write_grant_widens_a_listed_member(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    owner = Actor(alice)
    home = ops.locate_path(owner, "/")
    proj = ops.mkdir(owner, home, "proj")
    ops.mkdir(owner, ops.locate_path(owner, "/proj"), "sub")
    assert proj.is_dir
    catalog.grants.grant("alice", ["proj"], "bob", "r")
    catalog.grants.grant("alice", ["proj", "sub"], "bob", "rw")
    ops.shares.invalidate()
    reader = Actor(bob)
    shared_proj = ops.locate_path(reader, "/Shared/proj")
    sub = catalog.tree.resolve(shared_proj.node.id if shared_proj.node else 0, ["sub"])
    assert sub is not None
    listed = shared_proj.child(sub)  # as a listing of proj places it: proj's right
    assert listed.place.access == Access.READ
    assert oc_permissions(reader, shared_proj.place, ops.shares, is_dir=True) == "SG"
    assert oc_permissions(reader, listed.place, ops.shares, is_dir=True) == "SGDNVCK"
    assert oc_permissions(owner, home_place(alice.id, ["proj"]), ops.shares, is_dir=True) == (
        "RGDNVCK"
    )
