"""The trash in the catalog (`providers.catalog.trash`): a deleted subtree is one row
moved out of the home, listed with its path, size and deleter; restored whole (and
the feed tells a restore as the creation of everything it brings back); purged with
its bytes refunded; shares inside it withdrawn."""

from __future__ import annotations

import hashlib
import time

import pytest

from providers.catalog import Catalog, UserRecord
from providers.errors import Conflict, NotFound
from providers.operations import Actor, Operations


def put(ops: Operations, user: UserRecord, names: list[str], data: bytes) -> None:
    actor = Actor(user)
    parent = ops.view(actor).locate(names[:-1])
    assert parent is not None
    pending = ops.create_file(actor, parent, names[-1], announced=len(data))
    pending.writer.writelines([data])
    ops.commit(actor, pending, pending.writer.finish(), mtime=1.0)


def tree_of(ops: Operations, user: UserRecord) -> dict[str, str | None]:
    """path -> content digest (None for folders), by walking the home."""
    found: dict[str, str | None] = {}
    pending = [(user.home_id, "")]
    while pending:
        folder, path = pending.pop()
        for node in ops.catalog.tree.children(folder):
            found[f"{path}/{node.name}"] = node.digest
            if node.is_dir:
                pending.append((node.id, f"{path}/{node.name}"))
    return found


@pytest.fixture
def project(ops: Operations, alice: UserRecord) -> int:
    """/project with 30 files in three folders; its node id."""
    actor = Actor(alice)
    home = ops.view(actor).locate([])
    assert home is not None
    made = ops.mkdir(actor, home, "project")
    for d in range(3):
        folder = ops.view(actor).locate(["project"])
        assert folder is not None
        ops.mkdir(actor, folder, f"d{d}")
        for f in range(10):
            put(ops, alice, ["project", f"d{d}", f"f{f}.txt"], f"{d}-{f}".encode() * 50)
    return made.id


def test_trash_and_restore_bring_back_every_byte(
    ops: Operations, catalog: Catalog, alice: UserRecord, project: int
) -> None:
    before = tree_of(ops, alice)
    used = catalog.users.by_id(alice.id)
    assert used is not None
    catalog.trash.put(project, "/project", alice.id)
    assert not any(path.startswith("/project") for path in tree_of(ops, alice))
    (item,) = catalog.trash.items(alice.id)
    assert (item.id, item.path, item.kind, item.deleted_by) == (
        project,
        "/project",
        "dir",
        alice.id,
    )
    assert item.size == sum(len(f"{d}-{f}".encode() * 50) for d in range(3) for f in range(10))
    cursor = ops.feed.latest(Actor(alice))
    catalog.trash.restore(alice.id, project, alice.home_id, "project", "/project")
    assert tree_of(ops, alice) == before and catalog.trash.items(alice.id) == []
    entries = ops.feed.read(Actor(alice), cursor, 100).entries
    assert {e.op for e in entries} == {"created"} and len(entries) == 1 + 3 + 30
    assert entries[0].path == "/project"
    sample = next(e for e in entries if e.path == "/project/d1/f2.txt")
    assert sample.sha256 == hashlib.sha256(b"1-2" * 50).hexdigest()
    after = catalog.users.by_id(alice.id)
    assert after is not None and after.used_bytes == used.used_bytes


def test_purge_refunds_and_restore_refuses_a_taken_name(
    ops: Operations, catalog: Catalog, alice: UserRecord, project: int
) -> None:
    catalog.trash.put(project, "/project", alice.id)
    catalog.tree.mkdir(alice.home_id, "project", alice.id, "/project")
    with pytest.raises(Conflict):
        catalog.trash.restore(alice.id, project, alice.home_id, "project", "/project")
    catalog.trash.purge(alice.id, project)
    assert catalog.trash.items(alice.id) == []
    user = catalog.users.by_id(alice.id)
    assert user is not None and user.used_bytes == 0
    with pytest.raises(NotFound):
        catalog.trash.purge(alice.id, project)


def test_another_users_item_is_not_found(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord, project: int
) -> None:
    catalog.trash.put(project, "/project", alice.id)
    with pytest.raises(NotFound):
        catalog.trash.restore(bob.id, project, bob.home_id, "project", "/project")
    with pytest.raises(NotFound):
        catalog.trash.purge(bob.id, project)
    assert len(catalog.trash.items(alice.id)) == 1


def test_shares_inside_a_trashed_folder_are_withdrawn(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord, project: int
) -> None:
    ops.grant("alice", ["project", "d1"], "bob", "r")
    assert ops.view(Actor(bob)).locate(["Shared", "d1"]) is not None
    catalog.trash.put(project, "/project", alice.id)
    ops.shares.invalidate()
    assert ops.view(Actor(bob)).locate(["Shared", "d1"]) is None


def test_expired_items_are_named_oldest_first(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord, project: int
) -> None:
    catalog.trash.put(project, "/project", alice.id)
    put(ops, bob, ["b.txt"], b"bob's")
    b_txt = ops.view(Actor(bob)).locate(["b.txt"])
    assert b_txt is not None and b_txt.node is not None
    catalog.trash.put(b_txt.node.id, "/b.txt", bob.id)
    assert catalog.trash.expired(time.time() - 60) == []
    later = time.time() + 1
    assert catalog.trash.expired(later) == [(alice.id, project), (bob.id, b_txt.node.id)]
