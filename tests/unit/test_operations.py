"""The operations layer (`providers.operations`): every mutation checks rights, names,
locks and quota, writes one change-log entry with the owner's path in its own
transaction (design invariant 5), and publishes one event after it; a refused one
changes nothing and says nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from providers.catalog import Catalog, UserRecord
from providers.catalog.schema import Change
from providers.dav.locks import MemberTokenLockManager
from providers.errors import Conflict, Forbidden, InvalidName, Locked, QuotaExceeded
from providers.operations import Actor, Event, InProcessEvents, Located, Operations, lock_url

Mutation = Callable[[Operations, Actor, Located], object]


@pytest.fixture
def carol(catalog: Catalog) -> UserRecord:
    return catalog.users.create("carol", "h")


@pytest.fixture
def proj(ops: Operations, alice: UserRecord, bob: UserRecord, carol: UserRecord) -> None:
    """alice's /proj with a.txt and sub/, shared read-write with bob, read with carol."""
    home = located(ops, Actor(alice), "")
    ops.mkdir(Actor(alice), home, "proj")
    folder = located(ops, Actor(alice), "proj")
    write(ops, Actor(alice), folder, "a.txt", b"alpha")
    ops.mkdir(Actor(alice), folder, "sub")
    ops.grant("alice", ["proj"], "bob", "rw")
    ops.grant("alice", ["proj"], "carol", "r")


def located(ops: Operations, actor: Actor, path: str) -> Located:
    found = ops.view(actor).locate([n for n in path.split("/") if n])
    assert found is not None, path
    return found


def write(ops: Operations, actor: Actor, parent: Located, name: str, data: bytes) -> None:
    pending = ops.create_file(actor, parent, name, announced=len(data))
    pending.writer.writelines([data])
    ops.commit(actor, pending, pending.writer.finish(), mtime=1.0)


def overwrite(ops: Operations, actor: Actor, target: Located, data: bytes) -> None:
    pending = ops.overwrite(actor, target, announced=len(data))
    pending.writer.writelines([data])
    ops.commit(actor, pending, pending.writer.finish(), mtime=2.0)


def changes(catalog: Catalog) -> list[tuple[int, str, str]]:
    with catalog.db.session() as s:
        rows = s.exec(select(Change.owner_id, Change.kind, Change.path).order_by(Change.seq))
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


def recorder(events: InProcessEvents) -> list[Event]:
    seen: list[Event] = []
    events.subscribe(seen.append)
    return seen


# what each mutation does to alice's /proj, as seen through `Shared/proj` (a grantee)
MUTATIONS: dict[str, tuple[Mutation, str, str]] = {
    "mkdir": (lambda ops, a, p: ops.mkdir(a, p, "made"), "mkdir", "/proj/made"),
    "new file": (lambda ops, a, p: write(ops, a, p, "new.txt", b"x"), "put", "/proj/new.txt"),
    "overwrite": (
        lambda ops, a, p: overwrite(ops, a, child(ops, a, p, "a.txt"), b"beta"),
        "put",
        "/proj/a.txt",
    ),
    "property": (
        lambda ops, a, p: ops.set_property(a, child(ops, a, p, "a.txt"), "{x:}c", "<c/>"),
        "prop",
        "/proj/a.txt",
    ),
    "mtime": (
        lambda ops, a, p: ops.set_mtime(a, child(ops, a, p, "a.txt"), 5.0),
        "prop",
        "/proj/a.txt",
    ),
    "move": (
        lambda ops, a, p: ops.move(a, child(ops, a, p, "a.txt"), child(ops, a, p, "sub"), "b"),
        "move",
        "/proj/sub/b",
    ),
    "copy": (
        lambda ops, a, p: ops.copy(a, child(ops, a, p, "a.txt"), p, "copy.txt"),
        "copy",
        "/proj/copy.txt",
    ),
    "delete": (lambda ops, a, p: ops.delete(a, child(ops, a, p, "sub")), "delete", "/proj/sub"),
}


# the change-log kind (the feed's op) of each mutation; events keep their own kinds
LOGGED = {
    "mkdir": "created",
    "new file": "created",
    "overwrite": "modified",
    "property": "modified",
    "mtime": "modified",
    "move": "moved",
    "copy": "created",
    "delete": "deleted",
}


def child(ops: Operations, actor: Actor, parent: Located, name: str) -> Located:
    found = ops.view(actor).locate([*parent.shown, name])
    assert found is not None
    return found


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_each_mutation_logs_the_owners_path_and_publishes_once(
    name: str,
    ops: Operations,
    catalog: Catalog,
    events: InProcessEvents,
    alice: UserRecord,
    bob: UserRecord,
    proj: None,
) -> None:
    mutate, kind, path = MUTATIONS[name]
    actor = Actor(bob)
    folder = located(ops, actor, "Shared/proj")
    before, seen = changes(catalog), recorder(events)
    mutate(ops, actor, folder)
    assert changes(catalog)[len(before) :] == [(alice.id, LOGGED[name], path)]
    assert [(e.kind, e.owner_id, e.path, e.actor) for e in seen] == [(kind, alice.id, path, "bob")]


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_read_only_grantee_is_refused_and_nothing_changes(
    name: str, ops: Operations, catalog: Catalog, events: InProcessEvents, carol: UserRecord,
    proj: None,
) -> None:  # fmt: skip
    mutate, _kind, _path = MUTATIONS[name]
    actor = Actor(carol)
    folder = located(ops, actor, "Shared/proj")
    before, seen = changes(catalog), recorder(events)
    with pytest.raises(Forbidden):
        mutate(ops, actor, folder)
    assert changes(catalog) == before and seen == []


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_lock_refuses_every_mutation_without_its_token(
    name: str, ops: Operations, catalog: Catalog, lock_manager: MemberTokenLockManager,
    alice: UserRecord, bob: UserRecord, proj: None,
) -> None:  # fmt: skip
    """alice locks /proj (Depth infinity): bob's every change inside is refused, and so
    is hers unless she submits the token."""
    mutate, _kind, _path = MUTATIONS[name]
    token = lock_manager.acquire(
        url=lock_url(located(ops, Actor(alice), "proj").place, is_dir=True),
        lock_type="write", lock_scope="exclusive", lock_depth="infinity",
        lock_owner=b"", timeout=600, principal="alice", token_list=[],
    )["token"]  # fmt: skip
    before = changes(catalog)
    for actor, shown in ((Actor(bob), "Shared/proj"), (Actor(alice), "proj")):
        with pytest.raises(Locked):
            mutate(ops, actor, located(ops, actor, shown))
    assert changes(catalog) == before
    holder = Actor(alice, lock_tokens=(token,))
    mutate(ops, holder, located(ops, holder, "proj"))
    assert len(changes(catalog)) == len(before) + 1


def test_an_upload_link_adds_and_never_changes(
    ops: Operations, catalog: Catalog, alice: UserRecord, proj: None
) -> None:
    actor = Actor(alice, catalog.links.create("alice", ["proj"], "upload"))
    root = located(ops, actor, "")
    write(ops, actor, root, "dropped.txt", b"hello")
    ops.mkdir(actor, root, "folder")
    for refused in ("overwrite", "property", "move", "copy", "delete"):
        with pytest.raises(Forbidden):
            MUTATIONS[refused][0](ops, actor, root)
    with pytest.raises(Forbidden):  # the link's own folder is fixed
        ops.delete(Actor(alice, catalog.links.create("alice", ["proj"], "edit")), root)


def test_names_and_the_reserved_shared_are_checked(ops: Operations, alice: UserRecord) -> None:
    home = located(ops, Actor(alice), "")
    with pytest.raises(Forbidden):
        ops.mkdir(Actor(alice), home, "Shared")
    for bad in ("", "a/b", "x\x00", "é" * 200):
        with pytest.raises(InvalidName):
            ops.mkdir(Actor(alice), home, bad)
    ops.mkdir(Actor(alice), home, "dir")
    with pytest.raises(Conflict):
        ops.mkdir(Actor(alice), home, "dir")


def test_the_quota_refuses_an_announced_size_before_any_byte(
    ops: Operations, catalog: Catalog, alice: UserRecord
) -> None:
    catalog.users.set_quota("alice", 100)
    actor = Actor(catalog.users.get("alice") or alice)
    home = located(ops, actor, "")
    with pytest.raises(QuotaExceeded):
        ops.create_file(actor, home, "big.bin", announced=101)
    write(ops, actor, home, "fits.bin", b"x" * 100)


def test_a_failing_listener_does_not_fail_the_operation(
    ops: Operations, events: InProcessEvents, alice: UserRecord
) -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("listener bug")

    events.subscribe(broken)
    ops.mkdir(Actor(alice), located(ops, Actor(alice), ""), "still made")
    assert ops.view(Actor(alice)).locate(["still made"]) is not None


def test_sharing_reloads_this_processs_view_at_once(
    ops: Operations, alice: UserRecord, bob: UserRecord
) -> None:
    ops.mkdir(Actor(alice), located(ops, Actor(alice), ""), "docs")
    assert ops.view(Actor(bob)).locate(["Shared", "docs"]) is None
    ops.grant("alice", ["docs"], "bob", "r")
    assert ops.view(Actor(bob)).locate(["Shared", "docs"]) is not None
    with pytest.raises(Forbidden):  # only the owner shares: Shared/ is someone else's
        ops.grant("bob", ["Shared", "docs"], "alice", "r")
