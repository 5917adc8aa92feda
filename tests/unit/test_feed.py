"""The change feed's read side (`providers.operations.feed`) over the operations layer:
each mutation is one entry (a folder copy one per created node), in commit order, at
the reader's paths (`Shared/...` included); replaying the feed reproduces the tree a
bootstrap lists; cursors resume exactly, are bound to their user, and expire with
compaction (design invariants 15 and 16)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from providers.catalog import Catalog, UserRecord
from providers.errors import BadCursor, CursorExpired, Forbidden
from providers.operations import Actor, Located, Operations
from providers.operations.feed import FeedEntry

Tree = dict[str, tuple[str, str, Any]]  # path -> (kind, id, etag of a file)


def at(ops: Operations, user: UserRecord, path: str) -> Located:
    found = ops.view(Actor(user)).locate([n for n in path.split("/") if n])
    assert found is not None, path
    return found


def put(ops: Operations, user: UserRecord, folder: str, name: str, data: bytes) -> None:
    actor, parent = Actor(user), at(ops, user, folder)
    existing = ops.view(actor).locate([*parent.shown, name])
    if existing is not None:
        pending = ops.overwrite(actor, existing, announced=len(data))
    else:
        pending = ops.create_file(actor, parent, name, announced=len(data))
    pending.writer.writelines([data])
    ops.commit(actor, pending, pending.writer.finish(), mtime=1.0)


def read_all(
    ops: Operations, user: UserRecord, cursor: str | None, limit: int = 1000, path: str = "/"
) -> tuple[list[FeedEntry], str]:
    """Every page from `cursor` (a bootstrap for None): the entries and the last cursor."""
    entries: list[FeedEntry] = []
    while True:
        page = ops.feed.read(Actor(user), cursor, limit, path)
        entries += page.entries
        cursor = page.cursor
        if not page.has_more:
            return entries, cursor


def replay(tree: Tree, entries: list[FeedEntry]) -> Tree:
    """Apply entries as a sync client does (see `providers.operations.feed`)."""
    tree = dict(tree)

    def inside(path: str) -> list[str]:
        return [k for k in tree if k == path or k.startswith(path + "/")]

    def drop(path: str) -> None:
        for key in inside(path):
            del tree[key]

    for e in entries:
        value = (e.kind, e.id, e.etag if e.kind == "file" else None)
        if e.op in ("created", "modified"):
            if e.op == "created":
                drop(e.path)
            tree[e.path] = value
        elif e.op == "deleted":
            drop(e.path)
        elif e.op == "moved":
            assert e.old_path is not None and e.old_path in tree, e
            moving = {
                k: v for k, v in tree.items() if k == e.old_path or k.startswith(e.old_path + "/")
            }
            drop(e.old_path)
            drop(e.path)
            for key, old in moving.items():
                tree[e.path + key[len(e.old_path) :]] = old
            if e.mtime is not None:  # a `Shared/` entry's rename carries no fields
                tree[e.path] = value
    return tree


def listed(ops: Operations, user: UserRecord, path: str = "/") -> Tree:
    """The tree a bootstrap lists now."""
    entries, _cursor = read_all(ops, user, None, path=path)
    assert {e.op for e in entries} <= {"created"}
    return replay({}, entries)


def ops_summary(entries: list[FeedEntry]) -> list[tuple[str, str, str | None]]:
    return [(e.op, e.path, e.old_path) for e in entries]


def test_each_mutation_is_one_entry_in_order(ops: Operations, alice: UserRecord) -> None:
    start = ops.feed.latest(Actor(alice))
    actor, home = Actor(alice), at(ops, alice, "")
    ops.mkdir(actor, home, "docs")
    put(ops, alice, "docs", "a.txt", b"alpha")
    put(ops, alice, "docs", "a.txt", b"beta")
    ops.set_property(actor, at(ops, alice, "docs/a.txt"), "{x:}c", "<c xmlns='x:'/>")
    ops.mkdir(actor, at(ops, alice, "docs"), "sub")
    put(ops, alice, "docs/sub", "b.txt", b"b")
    ops.copy(actor, at(ops, alice, "docs"), home, "copy")
    ops.move(actor, at(ops, alice, "docs"), home, "moved")
    ops.delete(actor, at(ops, alice, "copy"))
    entries, _cursor = read_all(ops, alice, start)
    assert ops_summary(entries) == [
        ("created", "/docs", None),
        ("created", "/docs/a.txt", None),
        ("modified", "/docs/a.txt", None),
        ("modified", "/docs/a.txt", None),
        ("created", "/docs/sub", None),
        ("created", "/docs/sub/b.txt", None),
        ("created", "/copy", None),
        ("created", "/copy/a.txt", None),
        ("created", "/copy/sub", None),
        ("created", "/copy/sub/b.txt", None),
        ("moved", "/moved", "/docs"),
        ("deleted", "/copy", None),
    ]
    a = next(e for e in entries if e.path == "/docs/a.txt" and e.op == "modified")
    assert (a.kind, a.size, a.etag) == ("file", 4, at(ops, alice, "moved/a.txt").node.digest)  # type: ignore[union-attr]


def test_file_entries_carry_the_sha256_of_their_content(ops: Operations, alice: UserRecord) -> None:
    """Every entry of a file that exists (written, changed, copied, moved, bootstrapped)
    names the SHA-256 of its whole content; folders and deletions name none."""
    actor, home = Actor(alice), at(ops, alice, "")
    start = ops.feed.latest(actor)
    ops.mkdir(actor, home, "d")
    put(ops, alice, "d", "a.txt", b"alpha")
    ops.set_property(actor, at(ops, alice, "d/a.txt"), "{x:}c", "<c xmlns='x:'/>")
    ops.copy(actor, at(ops, alice, "d"), home, "e")
    ops.move(actor, at(ops, alice, "e/a.txt"), home, "b.txt")
    ops.delete(actor, at(ops, alice, "b.txt"))
    alpha = hashlib.sha256(b"alpha").hexdigest()
    logged, _cursor = read_all(ops, alice, start)
    assert [(e.op, e.path, e.sha256) for e in logged] == [
        ("created", "/d", None),
        ("created", "/d/a.txt", alpha),
        ("modified", "/d/a.txt", alpha),
        ("created", "/e", None),
        ("created", "/e/a.txt", alpha),
        ("moved", "/b.txt", alpha),
        ("deleted", "/b.txt", None),
    ]
    listing, _cursor = read_all(ops, alice, None)
    assert {(e.path, e.sha256) for e in listing} == {
        ("/d", None),
        ("/d/a.txt", alpha),
        ("/e", None),
    }


def test_replay_from_empty_reproduces_the_tree(ops: Operations, alice: UserRecord) -> None:
    actor, home = Actor(alice), at(ops, alice, "")
    entries, cursor = read_all(ops, alice, None)
    tree = replay({}, entries)
    ops.mkdir(actor, home, "p")
    ops.mkdir(actor, at(ops, alice, "p"), "q")
    put(ops, alice, "p/q", "x.bin", b"x" * 10)
    put(ops, alice, "p", "y.bin", b"y")
    ops.move(actor, at(ops, alice, "p/q"), home, "q2")
    ops.copy(actor, at(ops, alice, "q2"), at(ops, alice, "p"), "y.bin")  # replaces a file
    ops.move(actor, at(ops, alice, "p/y.bin/x.bin"), home, "x.bin")
    ops.delete(actor, at(ops, alice, "p"))
    entries, _cursor = read_all(ops, alice, cursor)
    assert replay(tree, entries) == listed(ops, alice)


def test_a_path_feed_keeps_to_its_subtree_and_replays_it(
    ops: Operations, alice: UserRecord
) -> None:
    """With `path`, only that subtree: a move across its edge is a creation (with what
    a folder holds) or a deletion, and replaying the pages gives the subtree's listing."""
    actor, home = Actor(alice), at(ops, alice, "")
    ops.mkdir(actor, home, "sub")
    ops.mkdir(actor, home, "out")
    ops.mkdir(actor, at(ops, alice, "out"), "f")
    put(ops, alice, "out/f", "x.txt", b"x")
    ops.mkdir(actor, at(ops, alice, "out/f"), "deep")
    put(ops, alice, "out/f/deep", "y.txt", b"y")
    put(ops, alice, "sub", "kept.txt", b"k")
    boot, cursor = read_all(ops, alice, None, path="/sub")
    assert [e.path for e in boot] == ["/sub", "/sub/kept.txt"]
    put(ops, alice, "sub", "a.txt", b"a")
    put(ops, alice, "out", "elsewhere.txt", b"e")
    ops.move(actor, at(ops, alice, "out/f"), at(ops, alice, "sub"), "f")
    put(ops, alice, "sub/f", "z.txt", b"z")
    ops.move(actor, at(ops, alice, "sub/a.txt"), at(ops, alice, "out"), "a.txt")
    entries, _cursor = read_all(ops, alice, cursor, limit=2, path="/sub")
    assert ops_summary(entries) == [
        ("created", "/sub/a.txt", None),
        ("created", "/sub/f", None),
        ("created", "/sub/f/deep", None),  # what the folder holds now, parents first
        ("created", "/sub/f/x.txt", None),
        ("created", "/sub/f/z.txt", None),  # listed with the folder, then its own row
        ("created", "/sub/f/deep/y.txt", None),
        ("created", "/sub/f/z.txt", None),
        ("deleted", "/sub/a.txt", None),
    ]
    assert replay(replay({}, boot), entries) == listed(ops, alice, "/sub")


def test_pages_and_entry_cursors_resume_exactly(ops: Operations, alice: UserRecord) -> None:
    start = ops.feed.latest(Actor(alice))
    ops.mkdir(Actor(alice), at(ops, alice, ""), "d")
    for n in range(5):
        put(ops, alice, "d", f"f{n}", bytes([n]))
    ops.copy(Actor(alice), at(ops, alice, "d"), at(ops, alice, ""), "e")
    whole, _ = read_all(ops, alice, start)
    paged, _ = read_all(ops, alice, start, limit=1)
    assert ops_summary(paged) == ops_summary(whole) and len(whole) == 12
    for n, entry in enumerate(whole):
        rest, _ = read_all(ops, alice, entry.cursor, limit=3)
        assert ops_summary(rest) == ops_summary(whole[n + 1 :])
    assert not ops.feed.has_changes_after(Actor(alice), whole[-1].cursor)
    assert ops.feed.has_changes_after(Actor(alice), whole[-2].cursor)


def test_grants_reach_the_grantee_under_shared(
    ops: Operations, alice: UserRecord, bob: UserRecord
) -> None:
    actor, home = Actor(alice), at(ops, alice, "")
    ops.mkdir(actor, home, "proj")
    put(ops, alice, "proj", "a.txt", b"a")
    ops.mkdir(actor, home, "other")
    put(ops, alice, "other", "o.txt", b"o")
    entries, cursor = read_all(ops, bob, None)
    bob_tree = replay({}, entries)
    ops.grant("alice", ["proj"], "bob", "rw")
    put(ops, alice, "proj", "b.txt", b"b")
    put(ops, alice, "other", "p.txt", b"p")  # not shared: not bob's
    ops.move(actor, at(ops, alice, "other"), at(ops, alice, "proj"), "other")  # moves in
    ops.move(actor, at(ops, alice, "proj"), home, "project")  # the shared root renamed
    put(ops, bob, "Shared/project", "by-bob.txt", b"bob")
    entries, cursor = read_all(ops, bob, cursor)
    assert ops_summary(entries) == [
        ("created", "/Shared/proj", None),
        ("created", "/Shared/proj/a.txt", None),
        ("created", "/Shared/proj/b.txt", None),
        ("created", "/Shared/proj/other", None),
        ("created", "/Shared/proj/other/o.txt", None),
        ("created", "/Shared/proj/other/p.txt", None),
        ("moved", "/Shared/project", "/Shared/proj"),
        ("created", "/Shared/project/by-bob.txt", None),
    ]
    bob_tree = replay(bob_tree, entries)
    assert bob_tree == listed(ops, bob)
    shared_root = next(e for e in entries if e.path == "/Shared/proj")
    assert shared_root.id == str(at(ops, alice, "project").node.id)  # type: ignore[union-attr]
    ops.revoke("alice", ["project"], "bob")
    entries, cursor = read_all(ops, bob, cursor)
    assert ops_summary(entries) == [("deleted", "/Shared/project", None)]
    assert replay(bob_tree, entries) == listed(ops, bob) == {}


def test_a_group_member_joining_later_gets_the_share(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    ops.mkdir(Actor(alice), at(ops, alice, ""), "team")
    put(ops, alice, "team", "t.txt", b"t")
    catalog.groups.create("crew")
    ops.grant("alice", ["team"], "@crew", "r")
    cursor = ops.feed.latest(Actor(bob))
    catalog.groups.add_member("crew", "bob")
    entries, cursor = read_all(ops, bob, cursor)
    assert ops_summary(entries) == [
        ("created", "/Shared/team", None),
        ("created", "/Shared/team/t.txt", None),
    ]
    catalog.groups.remove_member("crew", "bob")
    entries, cursor = read_all(ops, bob, cursor)
    assert ops_summary(entries) == [("deleted", "/Shared/team", None)]


def test_cursors_are_bound_to_their_user_and_expire(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    cursor = ops.feed.latest(Actor(alice))
    with pytest.raises(Forbidden):
        ops.feed.read(Actor(bob), cursor, 10)
    # one signature character changed: the last one carries bits a decoder drops, and
    # a signature may already end in "AA" (about 1 run in 256), so change another
    tampered = cursor[:-5] + ("B" if cursor[-5] == "A" else "A") + cursor[-4:]
    for bad in ("", "v1.x.y", tampered, "v2" + cursor[2:]):
        with pytest.raises(BadCursor):
            ops.feed.read(Actor(alice), bad, 10)
    with pytest.raises(BadCursor):
        ops.feed.read(Actor(alice), cursor, 10, path="/elsewhere")
    ops.mkdir(Actor(alice), at(ops, alice, ""), "old")
    ops.mkdir(Actor(alice), at(ops, alice, ""), "older")
    assert catalog.changes.compact(time.time() + 1) >= 1  # all but the newest row
    with pytest.raises(CursorExpired):
        ops.feed.read(Actor(alice), cursor, 10)
    fresh = ops.feed.latest(Actor(alice))
    ops.mkdir(Actor(alice), at(ops, alice, ""), "new")
    assert ops_summary(read_all(ops, alice, fresh)[0]) == [("created", "/new", None)]


def test_compaction_keeps_live_shares(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    ops.mkdir(Actor(alice), at(ops, alice, ""), "a")
    ops.mkdir(Actor(alice), at(ops, alice, "a"), "proj")
    ops.grant("alice", ["a", "proj"], "bob", "r")
    ops.move(Actor(alice), at(ops, alice, "a"), at(ops, alice, ""), "b")  # moves the root
    catalog.changes.compact(time.time() + 1)
    cursor = ops.feed.latest(Actor(bob))
    put(ops, alice, "b/proj", "new.txt", b"n")
    entries, _ = read_all(ops, bob, cursor)
    assert ops_summary(entries) == [("created", "/Shared/proj/new.txt", None)]
    assert set(listed(ops, bob)) == {"/Shared/proj", "/Shared/proj/new.txt"}


def test_folder_etags_move_at_any_depth_and_file_etags_with_content_only(
    ops: Operations, alice: UserRecord
) -> None:
    actor, path = Actor(alice), ""
    for n in range(10):
        ops.mkdir(actor, at(ops, alice, path), f"d{n}")
        path = f"{path}/d{n}".lstrip("/")
    put(ops, alice, path, "f.txt", b"one")
    chain = ["", *["/".join(f"d{i}" for i in range(n + 1)) for n in range(10)]]
    before = {p: at(ops, alice, p).node.rev for p in chain}  # type: ignore[union-attr]
    file_before = at(ops, alice, f"{path}/f.txt").node
    ops.move(actor, at(ops, alice, f"{path}/f.txt"), at(ops, alice, path), "g.txt")
    after = {p: at(ops, alice, p).node.rev for p in chain}  # type: ignore[union-attr]
    assert all(after[p] > before[p] for p in chain)
    moved = at(ops, alice, f"{path}/g.txt").node
    assert moved is not None and file_before is not None
    assert (moved.id, moved.digest) == (file_before.id, file_before.digest)


def test_a_move_into_another_owners_share_is_a_delete_and_creations(
    ops: Operations, alice: UserRecord, bob: UserRecord
) -> None:
    ops.mkdir(Actor(alice), at(ops, alice, ""), "proj")
    ops.grant("alice", ["proj"], "bob", "rw")
    ops.mkdir(Actor(bob), at(ops, bob, ""), "mine")
    put(ops, bob, "mine", "m.txt", b"m")
    alice_cursor, bob_cursor = ops.feed.latest(Actor(alice)), ops.feed.latest(Actor(bob))
    alice_tree, bob_tree = listed(ops, alice), listed(ops, bob)
    ops.move(Actor(bob), at(ops, bob, "mine"), at(ops, bob, "Shared/proj"), "mine")
    bob_entries, _ = read_all(ops, bob, bob_cursor)
    assert ops_summary(bob_entries) == [
        ("deleted", "/mine", None),
        ("created", "/Shared/proj/mine", None),
        ("created", "/Shared/proj/mine/m.txt", None),
    ]
    alice_entries, _ = read_all(ops, alice, alice_cursor)
    assert ops_summary(alice_entries) == [
        ("created", "/proj/mine", None),
        ("created", "/proj/mine/m.txt", None),
    ]
    assert replay(bob_tree, bob_entries) == listed(ops, bob)
    assert replay(alice_tree, alice_entries) == listed(ops, alice)


def test_a_name_clash_under_shared_renames_the_first_entry(
    ops: Operations, catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    carol = catalog.users.create("carol", "h")
    for owner in (alice, carol):
        ops.mkdir(Actor(owner), at(ops, owner, ""), "docs")
    cursor = ops.feed.latest(Actor(bob))
    ops.grant("alice", ["docs"], "bob", "r")
    tree = listed(ops, bob)
    entries, cursor = read_all(ops, bob, cursor)
    ops.grant("carol", ["docs"], "bob", "r")
    entries, cursor = read_all(ops, bob, cursor)
    assert ops_summary(entries) == [
        ("moved", "/Shared/docs (alice)", "/Shared/docs"),
        ("created", "/Shared/docs (carol)", None),
    ]
    assert replay(tree, entries) == listed(ops, bob)
    assert set(ops.shares.entries(bob.id)) == {"docs (alice)", "docs (carol)"}


def test_interest_and_watch_name_the_users_whose_rows_reach_a_feed(
    ops: Operations, alice: UserRecord, bob: UserRecord
) -> None:
    assert ops.feed.interest(Actor(bob)) == {bob.id}
    mark, _nobody = ops.feed.watch(None)
    ops.mkdir(Actor(alice), at(ops, alice, ""), "proj")
    ops.grant("alice", ["proj"], "bob", "r")
    assert ops.feed.interest(Actor(bob)) == {bob.id, alice.id}
    now, users = ops.feed.watch(mark)
    assert now > mark and users == {alice.id, bob.id}  # alice's mkdir, bob's grant rows
    assert ops.feed.watch(now)[1] == set()
