"""The `LockView` contract (`providers.operations.locks`), on each lock storage: in
process (WsgiDAV's dict), in Redis (a real Valkey server) and in the catalog (SQLite,
PostgreSQL). Locks are taken the way WebDAV takes them
(WsgiDAV's lock manager, keyed by `lock_url`), then checked through the view, as the
operations layer checks every door's writes. On the catalog the view also offers the
check as a step of a commit's transaction (`check_step`): every refusal here is asked
both ways, and both must answer alike."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from wsgidav.lock_man.lock_storage import LockStorageDict

from providers.catalog import Catalog, UserRecord
from providers.dav.locks import (
    MemberTokenLockManager,
    RedisLockStorage,
    WsgiDavLocks,
    lock_storage,
)
from providers.errors import Locked
from providers.operations import Access, Actor, Place, lock_url
from providers.operations.locks import Depth
from tests.services.redis import RedisService
from tests.support.catalogs import catalog_url, open_catalog

OWNER = UserRecord(1, "alice", "", 1, None, 0)
OTHER = UserRecord(2, "bob", "", 2, None, 0)
FOLDER = Place(1, ("proj",), Access.OWNER)
FILE = FOLDER.child("a.txt")
CATALOGS: dict[int, Catalog] = {}  # the catalog each manager keeps its locks in


@contextmanager
def on_a_catalog(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> Iterator[tuple[MemberTokenLockManager, Catalog]]:
    """A lock manager keeping its locks in a fresh catalog on `backend`, registered in
    `CATALOGS` for the block."""
    with open_catalog(catalog_url(request, tmp_path, backend)) as catalog:
        made = MemberTokenLockManager(lock_storage("", catalog))
        CATALOGS[id(made)] = catalog
        try:
            yield made, catalog
        finally:
            del CATALOGS[id(made)]


@pytest.fixture(params=["memory", "redis", "sql-sqlite", "sql-postgres"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemberTokenLockManager]:
    if request.param == "memory":
        yield MemberTokenLockManager(LockStorageDict())
        return
    if request.param.startswith("sql-"):
        with on_a_catalog(request, tmp_path, request.param.removeprefix("sql-")) as (made, _):
            yield made
        return
    service: RedisService = request.getfixturevalue("redis_service")
    url = service.url.rsplit("/", 1)[0] + "/15"
    made = MemberTokenLockManager(RedisLockStorage(url))
    made.storage.clear()
    yield made
    made.storage.clear()


def lock(manager: MemberTokenLockManager, place: Place, *, is_dir: bool, depth: str) -> str:
    """alice's exclusive write lock on `place`; its token."""
    taken = manager.acquire(
        url=lock_url(place, is_dir=is_dir),
        lock_type="write",
        lock_scope="exclusive",
        lock_depth=depth,
        lock_owner=b"<owner>alice</owner>",
        timeout=600,
        principal=OWNER.name,
        token_list=[],
    )
    return str(taken["token"])


def refused(view: WsgiDavLocks, actor: Actor, place: Place, *, is_dir: bool, depth: Depth) -> bool:
    """Whether `view` refuses the write; on the catalog, its commit step (run in a
    write transaction of the catalog) must refuse exactly when `check` does."""
    by_check = raises_locked(lambda: view.check(actor, place, is_dir=is_dir, depth=depth))
    step = view.check_step(actor, place, is_dir=is_dir, depth=depth)
    catalog = CATALOGS.get(id(view.manager))
    assert (step is None) == (catalog is None), "a step exactly on the catalog's storage"
    if step is not None and catalog is not None:
        assert raises_locked(lambda: catalog.db.run_core(step)) == by_check
    return by_check


def raises_locked(call: Callable[[], object]) -> bool:
    try:
        call()
    except Locked:
        return True
    return False


def test_a_lock_binds_everyone_but_its_owner_with_the_token(
    manager: MemberTokenLockManager,
) -> None:
    view = WsgiDavLocks(manager)
    token = lock(manager, FILE, is_dir=False, depth="0")
    assert refused(view, Actor(OTHER), FILE, is_dir=False, depth="0")
    assert refused(view, Actor(OWNER), FILE, is_dir=False, depth="0")  # no token sent
    assert not refused(view, Actor(OWNER, lock_tokens=(token,)), FILE, is_dir=False, depth="0")
    assert refused(view, Actor(OTHER, lock_tokens=(token,)), FILE, is_dir=False, depth="0")
    assert not refused(view, Actor(OTHER), FILE.parent().child("b.txt"), is_dir=False, depth="0")


def test_a_lock_in_a_folder_guards_deleting_or_moving_the_folder(
    manager: MemberTokenLockManager,
) -> None:
    view = WsgiDavLocks(manager)
    token = lock(manager, FILE, is_dir=False, depth="0")
    assert refused(view, Actor(OTHER), FOLDER, is_dir=True, depth="infinity")
    assert not refused(view, Actor(OTHER), FOLDER, is_dir=True, depth="0")
    owner = Actor(OWNER, lock_tokens=(token,))
    assert not refused(view, owner, FOLDER, is_dir=True, depth="infinity")


def test_a_folder_lock_guards_its_members_list_and_depth_infinity_its_members(
    manager: MemberTokenLockManager,
) -> None:
    view = WsgiDavLocks(manager)
    lock(manager, FOLDER, is_dir=True, depth="0")
    assert refused(view, Actor(OTHER), FOLDER, is_dir=True, depth="0")  # adding a member
    assert not refused(view, Actor(OTHER), FILE, is_dir=False, depth="0")  # writing one
    deep = FOLDER.parent().child("deep")
    lock(manager, deep, is_dir=True, depth="infinity")
    assert refused(view, Actor(OTHER), deep.child("x.txt"), is_dir=False, depth="0")


def test_locks_are_keyed_by_the_owners_tree_whoever_looks(
    manager: MemberTokenLockManager,
) -> None:
    """bob reaching alice's file through a grant has a place with other rights but the
    same key: alice's lock binds him there."""
    view = WsgiDavLocks(manager)
    lock(manager, FILE, is_dir=False, depth="0")
    through_a_grant = Place(1, ("proj", "a.txt"), Access.WRITE, fixed=False)
    assert refused(view, Actor(OTHER), through_a_grant, is_dir=False, depth="0")
    bobs_own = Place(2, ("proj", "a.txt"), Access.OWNER)
    assert not refused(view, Actor(OTHER), bobs_own, is_dir=False, depth="0")


def test_release_drops_every_lock_at_and_below_a_place(manager: MemberTokenLockManager) -> None:
    view = WsgiDavLocks(manager)
    lock(manager, FILE, is_dir=False, depth="0")
    lock(manager, FOLDER.child("sub"), is_dir=True, depth="infinity")
    elsewhere = Place(1, ("other.txt",), Access.OWNER)
    lock(manager, elsewhere, is_dir=False, depth="0")
    view.release(FOLDER, is_dir=True)
    assert not refused(view, Actor(OTHER), FOLDER, is_dir=True, depth="infinity")
    assert refused(view, Actor(OTHER), elsewhere, is_dir=False, depth="0")
    view.release(FOLDER, is_dir=True)  # idempotent


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_manager(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[MemberTokenLockManager, Catalog]]:
    with on_a_catalog(request, tmp_path, request.param) as pair:
        yield pair


def test_commit_steps_and_lock_requests_side_by_side_both_finish(
    catalog_manager: tuple[MemberTokenLockManager, Catalog],
) -> None:
    """A commit's step reads the lock rows while its transaction holds the catalog's
    writer lock; a LOCK holds the manager's lock while it writes rows. Were the step to
    take the manager's lock too, the two would wait for each other for ever."""
    manager, catalog = catalog_manager
    view = WsgiDavLocks(manager)
    step = view.check_step(Actor(OTHER), FILE, is_dir=False, depth="0")
    assert step is not None
    outcomes: list[bool] = []

    def locking() -> None:
        for _ in range(40):
            manager.release(lock(manager, FILE, is_dir=False, depth="0"))

    def committing() -> None:
        for _ in range(40):
            outcomes.append(raises_locked(lambda: catalog.db.run_core(step)))

    threads = [threading.Thread(target=locking), threading.Thread(target=committing)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert len(outcomes) == 40
    assert not refused(view, Actor(OTHER), FILE, is_dir=False, depth="0")  # all released
