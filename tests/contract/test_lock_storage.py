"""The lock storage contract (WsgiDAV's interface, as `LockStorageDict` and
`LockStorageRedis` define it), on every storage a server may use: in process (WsgiDAV's
dict, for tests), in Redis (a real Valkey server) and in the catalog on SQLite and on
PostgreSQL. Each case also gets a second storage object on the same store, as a second
worker process has: what one takes, the other sees."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wsgidav.dav_error import DAVError
from wsgidav.lock_man.lock_storage import LockStorageDict

from providers.catalog import Catalog
from providers.dav.lock_storage import TIMEOUT_MAX, CatalogLockStorage
from providers.dav.locks import MemberTokenLockManager, RedisLockStorage
from tests.services.redis import RedisService
from tests.support.catalogs import catalog_url, open_catalog

KINDS = ["dict", "redis", "sql-sqlite", "sql-postgres"]
Pair = tuple[Any, Any]  # a storage, and another on the same store


@pytest.fixture(params=KINDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    kind = request.param
    if kind == "dict":
        storage = LockStorageDict()
        storage.open()
        yield storage, storage  # one process: there is no second view
    elif kind == "redis":
        service: RedisService = request.getfixturevalue("redis_service")
        url = service.url.rsplit("/", 1)[0] + "/14"
        first, second = RedisLockStorage(url), RedisLockStorage(url)
        first.open()
        second.open()
        first.clear()
        yield first, second
        first.clear()
    else:
        url = catalog_url(request, tmp_path, kind.removeprefix("sql-"))
        with open_catalog(url) as one, open_catalog(url) as other:
            yield CatalogLockStorage(one), CatalogLockStorage(other)


def new_lock(depth: str = "0", timeout: float = 600, principal: str = "alice") -> dict[str, Any]:
    return {
        "type": "write",
        "scope": "exclusive",
        "depth": depth,
        "owner": b"<owner>\xc3\xa9 \xff</owner>",  # XML bytes, not necessarily UTF-8
        "timeout": timeout,
        "principal": principal,
    }


def roots(locks: list[dict[str, Any]]) -> list[str]:
    return sorted(lock["root"] for lock in locks)


def test_create_get_refresh_delete(pair: Pair) -> None:
    storage, _ = pair
    lock = storage.create("/dav/alice/docs/", new_lock(depth="infinity"))
    token = lock["token"]
    assert token.startswith("opaquelocktoken:") and lock["root"] == "/dav/alice/docs"
    assert lock["timeout"] == 600 and lock["expire"] == pytest.approx(time.time() + 600, abs=5)
    got = storage.get(token)
    assert got is not None
    assert got == lock and got["owner"] == b"<owner>\xc3\xa9 \xff</owner>"
    expire = lock["expire"]  # the dict storage hands out its own dictionaries
    refreshed = storage.refresh(token, timeout=1200)
    assert refreshed["timeout"] == 1200 and refreshed["expire"] > expire
    assert storage.get(token)["expire"] == pytest.approx(refreshed["expire"])
    assert storage.refresh(token, timeout=-1)["timeout"] == TIMEOUT_MAX
    assert storage.delete(token) is True
    assert storage.get(token) is None
    assert storage.delete(token) is False
    assert storage.get_lock_list("/dav/alice/docs", **ROOT_ONLY) == []


def test_timeouts_are_capped(pair: Pair) -> None:
    storage, _ = pair
    for asked in (-1, TIMEOUT_MAX * 2):
        lock = storage.create("/a", new_lock(timeout=asked))
        assert lock["timeout"] == TIMEOUT_MAX


def test_an_expired_lock_is_gone(pair: Pair) -> None:
    storage, peer = pair
    short = storage.create("/a/short", new_lock(timeout=1))
    kept = storage.create("/a/kept", new_lock())
    assert storage.get(short["token"]) is not None
    time.sleep(1.3)
    assert peer.get_lock_list("/a/short", **ROOT_ONLY) == []
    assert storage.get_lock_list("/a/kept", **ROOT_ONLY) == [kept]
    assert storage.get(short["token"]) is None and peer.get(short["token"]) is None
    # Listed last: WsgiDAV's dict storage fails listing children while an expired one
    # is still among them (it purges the dictionary it iterates); `get` removed it.
    assert storage.get_lock_list("/a", **WITH_CHILDREN) == [kept]


ROOT_ONLY = {"include_root": True, "include_children": False, "token_only": False}
CHILDREN = {"include_root": False, "include_children": True, "token_only": False}
WITH_CHILDREN = {"include_root": True, "include_children": True, "token_only": False}


def test_lock_lists_of_a_root_and_its_children(pair: Pair) -> None:
    storage, _ = pair
    tree = ["/a", "/a/b", "/a/b", "/a/bc", "/a/b/c/d", "/a/b%20x/e", "/x", "/"]
    # (Children of "/" are left out: WsgiDAV's Redis storage finds none. No DAV
    # request asks: every resource lies under /dav/ or /s/.)
    made = {}
    for path in tree:
        lock = storage.create(path, new_lock())
        made[lock["token"]] = path
    assert roots(storage.get_lock_list("/a/b", **ROOT_ONLY)) == ["/a/b", "/a/b"]
    assert roots(storage.get_lock_list("/a/b/", **ROOT_ONLY)) == ["/a/b", "/a/b"]
    assert roots(storage.get_lock_list("/a/b", **CHILDREN)) == ["/a/b/c/d"]
    assert roots(storage.get_lock_list("/a/b/", **WITH_CHILDREN)) == ["/a/b", "/a/b", "/a/b/c/d"]
    assert roots(storage.get_lock_list("/a", **CHILDREN)) == [
        "/a/b",
        "/a/b",
        "/a/b%20x/e",
        "/a/b/c/d",
        "/a/bc",
    ]
    assert roots(storage.get_lock_list("/", **ROOT_ONLY)) == ["/"]
    tokens = storage.get_lock_list("/a/b", **dict(ROOT_ONLY, token_only=True))
    assert sorted(tokens) == sorted(t for t, p in made.items() if p == "/a/b")
    assert storage.get_lock_list("/a/b/c", **ROOT_ONLY) == []


@pytest.mark.parametrize("pair", [k for k in KINDS if k != "dict"], indirect=True)
def test_locks_on_a_path_are_those_of_each_level(pair: Pair) -> None:
    """`locks_on_path` (the catalog's and Redis's one-call answer to every write's
    question) gives what `get_lock_list` gives for the path and each ancestor, and
    with children what it gives below the path; a token whose lock is gone is left out."""
    storage, peer = pair  # (WsgiDAV's dict storage has no such call)
    for path in ["/", "/dav", "/dav/a", "/dav/a", "/dav/a/b/f", "/dav/ab", "/dav/a/c", "/x"]:
        storage.create(path, new_lock())
    gone = storage.create("/dav/a/b", new_lock())
    storage.delete(gone["token"])
    levels = ["/dav/a/b", "/dav/a", "/dav", "/"]
    each = [lock for level in levels for lock in peer.get_lock_list(level, **ROOT_ONLY)]
    assert roots(peer.locks_on_path("/dav/a/b/", include_children=False)) == roots(each)
    assert roots(each) == ["/", "/dav", "/dav/a", "/dav/a"]
    below = peer.get_lock_list("/dav/a/b", **CHILDREN)
    assert roots(peer.locks_on_path("/dav/a/b", include_children=True)) == roots(each + below)
    assert roots(below) == ["/dav/a/b/f"]


def test_a_lock_taken_through_one_storage_is_seen_through_another(pair: Pair) -> None:
    storage, peer = pair
    lock = storage.create("/dav/bob/f.txt", new_lock(principal="bob"))
    assert peer.get(lock["token"]) == lock
    assert peer.get_lock_list("/dav/bob", **CHILDREN) == [lock]
    refreshed = peer.refresh(lock["token"], timeout=900)
    assert storage.get(lock["token"])["expire"] == pytest.approx(refreshed["expire"])
    assert peer.delete(lock["token"]) is True
    assert storage.get(lock["token"]) is None
    assert storage.get_lock_list("/dav/bob/f.txt", **ROOT_ONLY) == []


def test_clear_removes_every_lock(pair: Pair) -> None:
    storage, peer = pair
    storage.create("/a", new_lock())
    storage.create("/b/c", new_lock())
    storage.clear()
    assert peer.get_lock_list("/", **WITH_CHILDREN) == []


@pytest.mark.parametrize("depth", ["0", "infinity"])
def test_write_conflicts_through_the_lock_manager(pair: Pair, depth: str) -> None:
    """Ancestors count with Depth infinity only, members for a Depth-infinity write;
    the owner passes with the token (the catalog answers from one query)."""
    storage, peer = pair
    if isinstance(storage, LockStorageDict):
        storage.close()  # the lock manager opens its storage itself
    other = MemberTokenLockManager(peer)
    folder = storage.create("/dav/a/proj", new_lock(depth=depth))
    member = storage.create("/dav/a/proj/sub/f.txt", new_lock())
    storage.create("/dav/a/projects/g.txt", new_lock())  # a neighbour, never in the way

    def conflicts(manager: MemberTokenLockManager, url: str, d: str, tokens: list[str]) -> set:
        try:
            manager.check_write_permission(url=url, depth=d, token_list=tokens, principal="alice")
        except DAVError as e:
            return set(e.err_condition.hrefs)  # type: ignore[union-attr]
        return set()

    inside = "/dav/a/proj/sub/new.txt"
    expected_inside = {"/dav/a/proj"} if depth == "infinity" else set()
    assert conflicts(other, inside, "0", []) == expected_inside
    assert conflicts(other, inside, "0", [folder["token"]]) == set()
    assert conflicts(other, "/dav/a/proj/", "0", []) == {"/dav/a/proj"}
    assert conflicts(other, "/dav/a/proj/", "infinity", []) == {
        "/dav/a/proj",
        "/dav/a/proj/sub/f.txt",
    }
    assert conflicts(other, "/dav/a/proj/", "infinity", [folder["token"], member["token"]]) == set()
    assert conflicts(other, "/dav/b/", "infinity", []) == set()


@pytest.mark.parametrize("kind", ["redis", "sql"])
def test_a_store_that_is_down_answers_503(kind: str, tmp_path: Path) -> None:
    if kind == "redis":
        storage: Any = RedisLockStorage("redis://127.0.0.1:1/0")
        storage.open()
    else:
        catalog = Catalog(f"postgresql+psycopg://u:p@127.0.0.1:1/db-{uuid.uuid4().hex[:6]}")
        storage = CatalogLockStorage(catalog)
    for call in (
        lambda: storage.get("opaquelocktoken:0x1"),
        lambda: storage.create("/a", new_lock()),
        lambda: storage.delete("opaquelocktoken:0x1"),
        lambda: storage.get_lock_list("/a", **WITH_CHILDREN),
    ):
        with pytest.raises(DAVError) as caught:
            call()
        assert caught.value.value == 503


def race(managers: list[MemberTokenLockManager], url: str, takers: int) -> list[str]:
    """`takers` threads, alternating between the managers, lock `url` exclusively at
    once; the URLs granted (the others were refused with 423)."""
    start = threading.Barrier(takers)
    granted: list[str] = []

    def take(manager: MemberTokenLockManager) -> None:
        start.wait()
        try:
            manager.acquire(
                url=url, lock_type="write", lock_scope="exclusive", lock_depth="0",
                lock_owner=b"<o/>", timeout=60, principal="alice", token_list=[],
            )  # fmt: skip
            granted.append(url)
        except DAVError as e:
            assert e.value == 423

    threads = [threading.Thread(target=take, args=(managers[i % 2],)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return granted


def test_of_racing_exclusive_locks_on_two_storages_one_wins(pair: Pair) -> None:
    """Two managers (two processes' worth) lock one file at once, eight times: each
    time exactly one exclusive lock is granted."""
    storage, peer = pair
    if isinstance(storage, LockStorageDict):
        storage.close()  # the lock manager opens its storage itself
    managers = [MemberTokenLockManager(storage)]
    managers.append(managers[0] if peer is storage else MemberTokenLockManager(peer))
    for round_ in range(8):
        url = f"/dav/a/race-{round_}.txt"
        assert race(managers, url, 6) == [url]
        assert len(peer.get_lock_list(url, **ROOT_ONLY)) == 1
