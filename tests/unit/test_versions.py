"""A file's history in the catalog (`providers.catalog.versions`): every write keeps
a version row, the newest is the current content, and the old ones still read back
byte for byte (design: a version is a manifest, no bytes copied)."""

from __future__ import annotations

import hashlib
import time

from providers.catalog import Catalog, UserRecord
from providers.filestore import FileStore
from providers.operations import Actor, Operations
from providers.operations.retention import DAY, RetentionPolicy, thin_versions


def write(ops: Operations, user: UserRecord, name: str, data: bytes, mtime: float) -> int:
    """PUT `name` in the home (create or overwrite); the node's id."""
    actor = Actor(user)
    home = ops.view(actor).locate([])
    assert home is not None
    existing = ops.view(actor).locate([name])
    if existing is None:
        pending = ops.create_file(actor, home, name, announced=len(data))
    else:
        pending = ops.overwrite(actor, existing, announced=len(data))
    pending.writer.writelines([data])
    node = ops.commit(actor, pending, pending.writer.finish(), mtime=mtime)
    return node.id


def test_every_overwrite_keeps_the_previous_content(
    ops: Operations, catalog: Catalog, files: FileStore, alice: UserRecord
) -> None:
    bodies = [bytes([n]) * (5000 + n) for n in range(5)]
    for n, body in enumerate(bodies):
        node_id = write(ops, alice, "doc.txt", body, mtime=1000.0 + n)
    history = catalog.versions.history(node_id)
    assert [v.size for v in history] == [len(b) for b in reversed(bodies)]
    assert [v.mtime for v in history] == [1004.0, 1003.0, 1002.0, 1001.0, 1000.0]
    assert all(v.author_id == alice.id for v in history)
    node = catalog.tree.get(node_id)
    assert node is not None and history[0].content_id == node.content_id
    assert catalog.versions.old(node_id) == history[1:]
    for version, body in zip(history, reversed(bodies), strict=True):
        assert version.sha256 == hashlib.sha256(body).hexdigest()
        assert files.reader(version.content_id, version.size).readall() == body


def test_thinning_drops_what_retention_does_not_keep_and_gc_frees_it(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    for n in range(5):
        node_id = write(ops, alice, "doc.txt", bytes([n]) * (3000 + n), mtime=1.0)
    write(ops, alice, "other.txt", b"only one version", mtime=1.0)
    policy = RetentionPolicy(max_age=180 * DAY)
    assert thin_versions(catalog.versions, time.time(), policy) == 0  # all under a minute
    assert len(catalog.versions.old(node_id)) == 4
    assert thin_versions(catalog.versions, time.time() + 181 * DAY, policy) == 4
    assert [v.size for v in catalog.versions.history(node_id)] == [3004]  # current kept
    assert catalog.contents.purge_unreferenced_contents(dry_run=False) == 4


def test_a_restore_is_one_modified_entry_and_charges_the_difference(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    write(ops, alice, "doc.txt", b"x" * 100, mtime=5.0)
    node_id = write(ops, alice, "doc.txt", b"y" * 10, mtime=6.0)
    actor = Actor(alice)
    cursor = ops.feed.latest(actor)
    (old,) = catalog.versions.old(node_id)
    target = ops.view(actor).locate(["doc.txt"])
    assert target is not None
    restored = ops.restore_version(actor, target, old.id)
    assert (restored.size, restored.mtime) == (100, 5.0)
    entries = ops.feed.read(actor, cursor, 10).entries
    assert [(e.op, e.path, e.size, e.sha256) for e in entries] == [
        ("modified", "/doc.txt", 100, hashlib.sha256(b"x" * 100).hexdigest())
    ]
    user = catalog.users.by_id(alice.id)
    assert user is not None and user.used_bytes == 100


def _versions_bytes(ops: Operations, files: FileStore, user: UserRecord, name: str) -> list[bytes]:
    """The contents of file `name`'s history, newest (the current) first."""
    located = ops.view(Actor(user)).locate([name])
    assert located is not None and located.node is not None
    history = ops.catalog.versions.history(located.node.id)
    return [files.reader(v.content_id, v.size).readall() for v in history]


def test_a_move_over_a_file_keeps_what_it_replaced(
    ops: Operations, catalog: Catalog, files: FileStore, alice: UserRecord
) -> None:
    write(ops, alice, "target.txt", b"target 1", mtime=1.0)
    write(ops, alice, "target.txt", b"target 2", mtime=2.0)
    write(ops, alice, "source.txt", b"source", mtime=3.0)
    actor = Actor(alice)
    view = ops.view(actor)
    source, home = view.locate(["source.txt"]), view.locate([])
    assert source is not None and home is not None
    ops.move(actor, source, home, "target.txt")
    assert _versions_bytes(ops, files, alice, "target.txt") == [
        b"source",
        b"target 2",
        b"target 1",
    ]
    (item,) = catalog.trash.items(alice.id)  # the replaced file is in the trash too
    assert (item.path, item.size) == ("/target.txt", 8)


def test_a_copy_over_a_file_keeps_what_it_replaced(
    ops: Operations, catalog: Catalog, files: FileStore, alice: UserRecord
) -> None:
    write(ops, alice, "target.txt", b"old target", mtime=1.0)
    write(ops, alice, "source.txt", b"source", mtime=2.0)
    actor = Actor(alice)
    view = ops.view(actor)
    source, home = view.locate(["source.txt"]), view.locate([])
    assert source is not None and home is not None
    ops.copy(actor, source, home, "target.txt")
    assert _versions_bytes(ops, files, alice, "target.txt") == [b"source", b"old target"]
    assert _versions_bytes(ops, files, alice, "source.txt") == [b"source"]
    assert [item.path for item in catalog.trash.items(alice.id)] == ["/target.txt"]
