"""What the Nextcloud-form versions and trash rely on: a file id found in the caller's
view (`Operations.locate_id`: its own home, `Shared/` with the grant's rights, never a
trashed or foreign node), and the names of trash items (`<name>.d<item id>`)."""

from __future__ import annotations

import pytest

from providers.catalog import TrashItemRecord, UserRecord
from providers.dav.trashbin import item_id_of, item_name
from providers.errors import NotFound
from providers.operations import Access, Actor, Operations
from tests.unit.test_trash import put


def node_id(ops: Operations, user: UserRecord, names: list[str]) -> int:
    found = ops.view(Actor(user)).locate(names)
    assert found is not None and found.node is not None
    return found.node.id


def test_a_file_id_is_found_where_the_caller_sees_it(
    ops: Operations, alice: UserRecord, bob: UserRecord
) -> None:
    home = ops.view(Actor(alice)).locate([])
    assert home is not None
    ops.mkdir(Actor(alice), home, "proj")
    put(ops, alice, ["proj", "a.txt"], b"alpha")
    put(ops, alice, ["private.txt"], b"mine")
    shared_id = node_id(ops, alice, ["proj", "a.txt"])
    private_id = node_id(ops, alice, ["private.txt"])

    mine = ops.locate_id(Actor(alice), shared_id)
    assert mine.shown == ("proj", "a.txt") and mine.place.access == Access.OWNER
    for wanted in (shared_id, private_id, 999_999):
        with pytest.raises(NotFound):
            ops.locate_id(Actor(bob), wanted)

    ops.grant("alice", ["proj"], "bob", "r")
    seen = ops.locate_id(Actor(bob), shared_id)
    assert seen.shown == ("Shared", "proj", "a.txt") and seen.place.access == Access.READ
    with pytest.raises(NotFound):
        ops.locate_id(Actor(bob), private_id)

    ops.delete(Actor(alice), ops.locate_id(Actor(alice), private_id))
    with pytest.raises(NotFound):
        ops.locate_id(Actor(alice), private_id)  # in the trash now


@pytest.mark.parametrize("name", ["notes.txt", "x.d5", "report.d", "été .md", "a.d12.d"])
def test_trash_item_names_give_back_their_id(name: str) -> None:
    item = TrashItemRecord(42, f"/some/{name}", "file", 3, 1.0, None)
    assert item_name(item) == f"{name}.d42"
    assert item_id_of(item_name(item)) == 42


@pytest.mark.parametrize("name", ["notes.txt", "notes.d", "notes.dx1", "notes.d١٢", "d42"])
def test_other_names_give_no_id(name: str) -> None:
    assert item_id_of(name) is None
