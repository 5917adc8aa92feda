"""Snapshots (`providers.operations.snapshots`) on a real catalog: the home as it was
before a cutoff, from the tree, the trash, the change log undone and the versions;
and `Operations.restore_snapshot`, which brings a subtree back as it was."""

from __future__ import annotations

import time

import pytest

from providers.catalog import Catalog, UserRecord
from providers.errors import NotFound
from providers.filestore import FileStore
from providers.operations import Actor, Operations
from providers.operations.snapshots import SnapshotState, moment_name, parse_moment


def put(ops: Operations, user: UserRecord, path: str, data: bytes) -> None:
    actor, names = Actor(user), path.strip("/").split("/")
    target = ops.view(actor).locate(names)
    if target is not None:
        pending = ops.overwrite(actor, target, announced=len(data))
    else:
        parent = ops.view(actor).locate(names[:-1])
        assert parent is not None
        pending = ops.create_file(actor, parent, names[-1], announced=len(data))
    pending.writer.writelines([data])
    ops.commit(actor, pending, pending.writer.finish(), mtime=1000.0 + len(data))


def mkdir(ops: Operations, user: UserRecord, path: str) -> None:
    actor, names = Actor(user), path.strip("/").split("/")
    parent = ops.view(actor).locate(names[:-1])
    assert parent is not None
    ops.mkdir(actor, parent, names[-1])


def delete(ops: Operations, user: UserRecord, path: str) -> None:
    target = ops.view(Actor(user)).locate(path.strip("/").split("/"))
    assert target is not None
    ops.delete(Actor(user), target)


def move(ops: Operations, user: UserRecord, path: str, to: str) -> None:
    view, names = ops.view(Actor(user)), to.strip("/").split("/")
    source, parent = view.locate(path.strip("/").split("/")), view.locate(names[:-1])
    assert source is not None and parent is not None
    ops.move(Actor(user), source, parent, names[-1])


def now() -> float:
    """A cutoff between two operations (the log's times are time.time())."""
    moment = time.time()
    time.sleep(0.002)
    return moment


def files_of(state: SnapshotState, files: FileStore) -> dict[str, bytes | None]:
    """path -> bytes (None for folders) of a snapshot, read through its contents."""
    found: dict[str, bytes | None] = {}
    home = state.locate([])
    assert home is not None
    for node, names in state.walk(home):
        if not names:
            continue
        path = "/" + "/".join(names)
        if node.is_dir:
            found[path] = None
        else:
            found[path] = files.reader(node.content_id, node.size).readall()
    return found


def test_moments_are_utc_seconds_and_cover_their_whole_second() -> None:
    assert parse_moment("2026-12-01T10:00:00Z") == 1796119201.0
    assert moment_name(1796119200.9) == "2026-12-01T10:00:00Z"
    for bad in ("2026-12-01T10:00:00", "yesterday", "2026-13-01T10:00:00Z", ""):
        assert parse_moment(bad) is None


def test_a_delete_is_undone_and_a_later_file_is_absent(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    mkdir(ops, alice, "/docs")
    put(ops, alice, "/docs/a.txt", b"alpha")
    before = now()
    delete(ops, alice, "/docs")
    put(ops, alice, "/new.txt", b"later")
    snap = ops.snapshots.state(alice.id, before)
    assert files_of(snap, files) == {"/docs": None, "/docs/a.txt": b"alpha"}
    assert files_of(ops.snapshots.state(alice.id, time.time() + 1), files) == {"/new.txt": b"later"}


def test_a_renamed_and_moved_folder_is_back_at_its_old_path(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    mkdir(ops, alice, "/a")
    mkdir(ops, alice, "/a/b")
    put(ops, alice, "/a/b/f.txt", b"in b")
    mkdir(ops, alice, "/z")
    before = now()
    move(ops, alice, "/a/b", "/z/renamed")
    move(ops, alice, "/a", "/a2")
    expected = {"/a": None, "/a/b": None, "/a/b/f.txt": b"in b", "/z": None}
    assert files_of(ops.snapshots.state(alice.id, before), files) == expected
    between = ops.snapshots.state(alice.id, now())
    assert files_of(between, files) == {
        "/a2": None,
        "/z": None,
        "/z/renamed": None,
        "/z/renamed/f.txt": b"in b",
    }


def test_a_file_deleted_inside_a_folder_later_deleted_comes_back_inside_it(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    mkdir(ops, alice, "/d")
    put(ops, alice, "/d/keep.txt", b"keep")
    put(ops, alice, "/d/gone.txt", b"gone")
    first = now()
    delete(ops, alice, "/d/gone.txt")
    second = now()
    delete(ops, alice, "/d")
    assert files_of(ops.snapshots.state(alice.id, first), files) == {
        "/d": None,
        "/d/keep.txt": b"keep",
        "/d/gone.txt": b"gone",
    }
    assert files_of(ops.snapshots.state(alice.id, second), files) == {
        "/d": None,
        "/d/keep.txt": b"keep",
    }


def test_a_restore_from_the_trash_is_undone(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    put(ops, alice, "/f.txt", b"one")
    delete(ops, alice, "/f.txt")
    deleted = now()
    (item,) = ops.trash_items(Actor(alice))
    ops.restore_trashed(Actor(alice), item.id, "/back.txt")
    assert files_of(ops.snapshots.state(alice.id, deleted), files) == {}
    assert files_of(ops.snapshots.state(alice.id, now()), files) == {"/back.txt": b"one"}


def test_an_overwrite_shows_the_old_bytes_size_and_etag(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    put(ops, alice, "/f.txt", b"old bytes")
    before = now()
    put(ops, alice, "/f.txt", b"new and longer bytes")
    old = ops.snapshots.state(alice.id, before).locate(["f.txt"])
    assert old is not None
    assert (old.size, old.mtime) == (9, 1009.0)
    assert files.reader(old.content_id, old.size).readall() == b"old bytes"
    current = ops.view(Actor(alice)).locate(["f.txt"])
    assert current is not None and current.node is not None
    assert old.digest != current.node.digest and old.id == current.node.id


def test_a_purged_item_is_absent(ops: Operations, files: FileStore, alice: UserRecord) -> None:
    put(ops, alice, "/p.txt", b"purge me")
    put(ops, alice, "/q.txt", b"keep me")
    before = now()
    delete(ops, alice, "/p.txt")
    delete(ops, alice, "/q.txt")
    purged = next(i for i in ops.trash_items(Actor(alice)) if i.path == "/p.txt")
    ops.purge_trashed(Actor(alice), purged.id)
    assert files_of(ops.snapshots.state(alice.id, before), files) == {"/q.txt": b"keep me"}


def test_days_and_the_window(ops: Operations, catalog: Catalog, alice: UserRecord) -> None:
    put(ops, alice, "/f.txt", b"x")
    (day,) = ops.snapshots.days(alice.id)
    assert day <= time.time()
    assert ops.snapshots.available(day + 1)
    assert not ops.snapshots.available(time.time() + 10)
    between = now()
    put(ops, alice, "/g.txt", b"y")
    assert ops.snapshots.available(between)
    catalog.changes.compact(time.time() + 1)  # all but the newest row
    assert not ops.snapshots.available(between)
    assert ops.snapshots.available(time.time() + 1)


def test_restore_brings_back_a_deleted_folder_and_an_overwritten_file(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    mkdir(ops, alice, "/w")
    mkdir(ops, alice, "/w/sub")
    put(ops, alice, "/w/sub/a.txt", b"a0")
    put(ops, alice, "/w/b.txt", b"b0")
    before = now()
    put(ops, alice, "/w/b.txt", b"b1 changed")
    put(ops, alice, "/w/later.txt", b"made after")
    delete(ops, alice, "/w/sub")
    used = ops.catalog.users.by_id(alice.id)
    report = ops.restore_snapshot(Actor(alice), "/w", before)
    assert (report.folders, report.files, report.unchanged, report.skipped) == (1, 2, 0, [])
    now_state = files_of(ops.snapshots.state(alice.id, now()), files)
    assert now_state == {
        "/w": None,
        "/w/sub": None,
        "/w/sub/a.txt": b"a0",
        "/w/b.txt": b"b0",
        "/w/later.txt": b"made after",
    }
    (b,) = [n for n in ops.catalog.tree.children(now_node(ops, alice, "/w")) if n.name == "b.txt"]
    assert [v.size for v in ops.catalog.versions.history(b.id)] == [2, 10, 2]
    after = ops.catalog.users.by_id(alice.id)
    assert used is not None and after is not None
    assert after.used_bytes == used.used_bytes - 10 + 2 + 2
    again = ops.restore_snapshot(Actor(alice), "/w", before, to="/copy")
    assert (again.folders, again.files) == (2, 2)
    with pytest.raises(NotFound):
        ops.restore_snapshot(Actor(alice), "/w/later.txt", before)


def now_node(ops: Operations, user: UserRecord, path: str) -> int:
    found = ops.view(Actor(user)).locate(path.strip("/").split("/"))
    assert found is not None and found.node is not None
    return found.node.id


def test_a_folder_moved_into_another_owners_share_is_back_in_the_snapshot(
    ops: Operations, files: FileStore, alice: UserRecord, bob: UserRecord
) -> None:
    mkdir(ops, bob, "/team")
    ops.grant("bob", ["team"], "alice", "rw")
    mkdir(ops, alice, "/mine")
    put(ops, alice, "/mine/f.txt", b"mine")
    before = now()
    move(ops, alice, "/mine", "/Shared/team/mine")
    assert files_of(ops.snapshots.state(alice.id, before), files) == {
        "/mine": None,
        "/mine/f.txt": b"mine",
    }
    assert files_of(ops.snapshots.state(alice.id, now()), files) == {}


def test_an_editors_save_by_move_over_the_file_keeps_the_old_file_at_its_moment(
    ops: Operations, files: FileStore, alice: UserRecord
) -> None:
    put(ops, alice, "/f.txt", b"v1")
    first = now()
    put(ops, alice, "/f.tmp", b"v2 saved")
    second = now()
    move(ops, alice, "/f.tmp", "/f.txt")
    assert files_of(ops.snapshots.state(alice.id, first), files) == {"/f.txt": b"v1"}
    assert files_of(ops.snapshots.state(alice.id, second), files) == {
        "/f.txt": b"v1",
        "/f.tmp": b"v2 saved",
    }
    assert files_of(ops.snapshots.state(alice.id, now()), files) == {"/f.txt": b"v2 saved"}
