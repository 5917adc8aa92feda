"""WebDAV locks: WsgiDAV's lock manager, its storage, and the lock view over them.

One `MemberTokenLockManager` per process keeps every lock, in the catalog
(`CatalogLockStorage`) or in Redis (`RedisLockStorage`), either way seen by every
process and instance on the store; WsgiDAV's apps
(`/dav/`, each link's `/s/<token>/dav/`) take and release locks through it, and the
operations layer asks it through `WsgiDavLocks`, the `LockView` over the same manager,
before every mutation at any door.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from wsgidav.dav_error import (
    HTTP_LOCKED,
    DAVError,
    DAVErrorCondition,
    PRECONDITION_CODE_LockConflict,
)
from wsgidav.lock_man.lock_manager import LockManager, normalize_lock_root
from wsgidav.lock_man.lock_storage_redis import LockStorageRedis

from providers import redis_store
from providers.catalog import Catalog, CommitStep, Transaction
from providers.dav.errors import dav_error_context
from providers.dav.lock_storage import LEASE_TTL, CatalogLockStorage, Lock, ancestors
from providers.errors import Locked, Unavailable
from providers.operations import Actor, Place, lock_url
from providers.operations.locks import Depth

F = TypeVar("F", bound=Callable[..., Any])


class MemberTokenLockManager(LockManager):
    """WsgiDAV's lock manager, except that a lock on a member of a collection does not
    block a Depth-infinity write to the collection (a MOVE or DELETE of the folder) when
    the request comes from the lock's owner and submits its token in `If:`.

    RFC 4918 (7.4, 9.9.4) asks for exactly that: the tokens of locked members must be
    submitted, and then the request may proceed. WsgiDAV 4.4 counts every member lock
    as a conflict ("TODO: verify assumptions" in `check_write_permission`), so davfs2,
    which locks each file it has open for writing and sends those tokens with the MOVE,
    got 423 renaming a folder that held a file not yet uploaded: `mv` failed with EIO.

    On the catalog and on Redis the locks on the URL, its ancestors and (Depth
    infinity) its members come from one `locks_on_path` call instead of one per
    ancestor: every write asks.
    """

    def acquire(
        self,
        *,
        url: str,
        lock_type: str,
        lock_scope: str,
        lock_depth: str,
        lock_owner: bytes,
        timeout: float,
        principal: str,
        token_list: list[str],
    ) -> dict[str, Any]:
        """WsgiDAV's `acquire`, inside the storage's `exclusive()` when it is shared
        (catalog, Redis): processes sharing it take turns as threads of one process do,
        so two cannot both find a resource free and both lock it exclusively."""
        request = functools.partial(
            super().acquire,
            url=url,
            lock_type=lock_type,
            lock_scope=lock_scope,
            lock_depth=lock_depth,
            lock_owner=lock_owner,
            timeout=timeout,
            principal=principal,
            token_list=token_list,
        )
        if not isinstance(self.storage, CatalogLockStorage | RedisLockStorage):
            return request()
        with self.storage.exclusive():
            return request()

    def _get_write_conflicts(
        self, url: str, depth: str, token_list: list[str], principal: str
    ) -> Any:
        """What WsgiDAV's `_get_write_conflicts` decides, from one `locks_on_path` call
        (see `path_conflicts`); on a storage without it, WsgiDAV's walk of the URL
        and its ancestors, then the members as `path_conflicts` counts them."""
        if isinstance(self.storage, CatalogLockStorage | RedisLockStorage):
            return self.path_conflicts(self.storage, url, depth, token_list, principal)
        conflicts = super()._get_write_conflicts(url, "0", token_list, principal)
        if depth == "infinity":
            members = self.storage.get_lock_list(
                url, include_root=False, include_children=True, token_only=False
            )
            for lock in members:
                if lock["principal"] != principal or lock["token"] not in token_list:
                    conflicts.add_href(lock["root"])
        return conflicts

    def path_conflicts(
        self,
        storage: CatalogLockStorage | RedisLockStorage,
        url: str,
        depth: str,
        token_list: list[str],
        principal: str,
    ) -> DAVErrorCondition:
        """A lock on the URL, on an ancestor (only Depth infinity ones) or, for a
        Depth-infinity write, on a member conflicts unless the principal owns it and
        sent its token."""
        conflicts = DAVErrorCondition(PRECONDITION_CODE_LockConflict)
        above = set(ancestors(normalize_lock_root(url)))
        for lock in storage.locks_on_path(url, include_children=depth == "infinity"):
            if lock["root"] in above and lock["depth"] != "infinity":
                continue
            if lock["principal"] != principal or lock["token"] not in token_list:
                conflicts.add_href(lock["root"])
        return conflicts


class WsgiDavLocks:
    """The operations layer's `LockView` over a WsgiDAV lock manager."""

    def __init__(self, manager: LockManager) -> None:
        self.manager = manager

    def check(self, actor: Actor, place: Place, *, is_dir: bool, depth: Depth) -> None:
        try:
            self.manager.check_write_permission(
                url=lock_url(place, is_dir=is_dir),
                depth=depth,
                token_list=list(actor.lock_tokens),
                principal=actor.lock_owner,
            )
        except DAVError as e:
            if e.value != HTTP_LOCKED:
                raise Unavailable(f"lock store: {e.context_info or e.value}") from e
            raise _locked(e.err_condition) from e

    def check_step(
        self, actor: Actor, place: Place, *, is_dir: bool, depth: Depth
    ) -> CommitStep | None:
        """On the catalog's storage, `check` as a step of the commit's transaction: one
        transaction fewer per write, and atomic with the commit. It asks the storage
        without the manager's read-write lock: taken while the commit holds the
        catalog's writer lock, that lock would deadlock against a LOCK holding it and
        waiting for the writer lock, and the transaction orders the two anyway."""
        manager, storage = self.manager, self.manager.storage
        if not isinstance(manager, MemberTokenLockManager) or not isinstance(
            storage, CatalogLockStorage
        ):
            return None
        url, tokens = lock_url(place, is_dir=is_dir), list(actor.lock_tokens)

        def check_in(transaction: Transaction) -> None:
            try:
                conflicts = manager.path_conflicts(
                    storage.within(transaction), url, depth, tokens, actor.lock_owner
                )
            except DAVError as e:
                raise Unavailable(f"lock store: {e.context_info or e.value}") from e
            if conflicts.hrefs:
                raise _locked(conflicts)

        return check_in

    def release(self, place: Place, *, is_dir: bool) -> None:
        self.manager.remove_all_locks_from_url(lock_url(place, is_dir=is_dir), recursive=True)


def _locked(conflicts: DAVErrorCondition | None) -> Locked:
    roots = conflicts.hrefs if conflicts is not None else []
    return Locked("locked: the target or a folder above it holds a lock", roots)


def _answers_503(method: F) -> F:
    """Run a storage method with Redis errors answered 503 (a `DAVError`, since
    WsgiDAV calls storages itself and would turn anything else into a 500)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with dav_error_context(), redis_store.translated("lock store"):
            return method(*args, **kwargs)

    return cast(F, wrapper)


class RedisLockStorage(LockStorageRedis):
    """WsgiDAV's Redis lock storage on a client made from `url` by
    `providers.redis_store.connect` (TLS, user names, any URL form)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    def open(self) -> None:
        self._redis = redis_store.connect(self._url)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the Redis lock `davserver:dav-lock` for the block (waiting for it up to
        `LEASE_TTL`, then 503): see `CatalogLockStorage.exclusive`."""
        with dav_error_context(), redis_store.translated("lock store"):
            mutex = self._redis.lock(
                "davserver:dav-lock", timeout=LEASE_TTL, blocking_timeout=LEASE_TTL
            )
            if not mutex.acquire():
                raise Unavailable("lock store: busy (davserver:dav-lock)")
        try:
            yield
        finally:
            with dav_error_context(), redis_store.translated("lock store"):
                mutex.release()

    def locks_on_path(self, path: str, *, include_children: bool) -> list[Lock]:
        """The locks on `path` and on each of its ancestors (and, with
        `include_children`, below it), as `get_lock_list` finds them level by level,
        in two round trips (every level's token list, then the locks they name) instead
        of one or more per level (the URL and each ancestor up to the root): every
        write asks, a PUT twice."""
        root = normalize_lock_root(path)
        with dav_error_context(), redis_store.translated("lock store"):
            lists = self._pipelined(
                "lrange",
                [(self._redis_url2token_prefix.format(r), 0, -1) for r in [root, *ancestors(root)]],
            )
            tokens = [token.decode("utf-8") for found in lists for token in found]
            stored = self._pipelined("get", [(self._redis_lock_prefix.format(t),) for t in tokens])
        locks: list[Lock] = [pickle.loads(lock) for lock in stored if lock]
        if include_children:
            locks += self.get_lock_list(
                root, include_root=False, include_children=True, token_only=False
            )
        return locks

    def _pipelined(self, command: str, calls: list[tuple[Any, ...]]) -> list[Any]:
        """`command` once per argument tuple, all in one round trip."""
        if not calls:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for args in calls:
            getattr(pipe, command)(*args)
        return list(pipe.execute())

    get = _answers_503(LockStorageRedis.get)
    create = _answers_503(LockStorageRedis.create)
    refresh = _answers_503(LockStorageRedis.refresh)
    delete = _answers_503(LockStorageRedis.delete)
    get_lock_list = _answers_503(LockStorageRedis.get_lock_list)


def lock_storage(redis_url: str, catalog: Catalog) -> Any:
    """Lock storage in Redis at `redis_url`, or in `catalog` when it is empty: either
    way shared by every process on the store."""
    return RedisLockStorage(redis_url) if redis_url else CatalogLockStorage(catalog)
