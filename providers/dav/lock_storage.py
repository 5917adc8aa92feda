"""WebDAV locks in the catalog: WsgiDAV's lock storage interface over
`providers.catalog.DavLockRows`, so every process on the store (the workers of one
server, a second server, the CLI) sees the same locks without Redis.

It behaves as WsgiDAV's `LockStorageDict` and `LockStorageRedis` do: `create`
normalises the root ("/a/b", no trailing '/') and the timeout (at most four weeks),
sets `expire` (epoch seconds) and a fresh token; an expired lock is invisible and is
removed by whoever reads it; `get_lock_list` gives the locks on a path and/or below it.
`locks_on_path` (not in WsgiDAV's interface) also gives the locks on every ancestor
in the same query: `MemberTokenLockManager` checks every write with it, and takes
locks inside `exclusive()` (the catalog lease `dav-lock`), so that two processes
cannot both find a resource free and both lock it exclusively. Database
errors come out as a `DAVError` 503, since WsgiDAV calls storages itself and would
turn anything else into a 500.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wsgidav import util
from wsgidav.lock_man.lock_manager import generate_lock_token, normalize_lock_root, validate_lock
from wsgidav.lock_man.lock_storage import LockStorageDict

from providers.catalog import Catalog, Transaction
from providers.dav.errors import dav_error_context, dav_errors
from providers.errors import Unavailable

Lock = dict[str, Any]
TIMEOUT_DEFAULT = LockStorageDict.LOCK_TIME_OUT_DEFAULT
TIMEOUT_MAX = LockStorageDict.LOCK_TIME_OUT_MAX
LEASE = "dav-lock"
LEASE_TTL = 30.0  # seconds: far longer than a check and an insert take


def _to_json(lock: Lock) -> str:
    # `owner` is XML bytes; surrogateescape keeps any bytes and leaves UTF-8 readable.
    data = dict(lock, owner=lock["owner"].decode("utf-8", "surrogateescape"))
    return json.dumps(data, sort_keys=True)


def _from_json(text: str) -> Lock:
    lock: Lock = json.loads(text)
    lock["owner"] = lock["owner"].encode("utf-8", "surrogateescape")
    return lock


def _expired(expire: float, now: float) -> bool:
    return 0 <= expire < now


def ancestors(path: str) -> list[str]:
    """The normalised roots of `path`'s ancestors, nearest first, ending with "/"."""
    found = []
    parent = util.get_uri_parent(path)
    while parent:
        found.append(normalize_lock_root(parent))
        parent = util.get_uri_parent(parent)
    return found


class CatalogLockStorage:
    """WsgiDAV lock storage in the catalog (see the module docstring)."""

    def __init__(self, catalog: Catalog) -> None:
        self._rows = catalog.dav_locks
        self._leases = catalog.leases

    def __repr__(self) -> str:
        return self.__class__.__name__

    def within(self, transaction: Transaction) -> CatalogLockStorage:
        """This storage reading and writing its rows in `transaction`, an open catalog
        transaction (`DavLockRows.within`), instead of in transactions of its own."""
        bound = copy.copy(self)
        bound._rows = self._rows.within(transaction)
        return bound

    def open(self) -> None:
        """Nothing to open: the catalog owns the connections."""

    def close(self) -> None:
        """Nothing to close (see `open`)."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the catalog lease `dav-lock` for the block (waiting for it up to
        `LEASE_TTL`, then 503): what WsgiDAV's manager does under its lock within one
        process (check for conflicts, then create) takes turns across processes too."""
        holder = f"{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(4)}"
        deadline, pause = time.monotonic() + LEASE_TTL, 0.002
        with dav_error_context():
            while self._leases.acquire(LEASE, holder, LEASE_TTL).holder != holder:
                if time.monotonic() > deadline:
                    raise Unavailable("lock store: busy (lease dav-lock)")
                time.sleep(pause)
                pause = min(2 * pause, 0.05)
        try:
            yield
        finally:
            with dav_error_context():
                self._leases.release(LEASE, holder)

    @dav_errors
    def cleanup(self) -> None:
        """Delete the expired locks."""
        self._rows.remove_expired(time.time())

    @dav_errors
    def clear(self) -> None:
        """Delete every lock."""
        self._rows.remove_all()

    @dav_errors
    def get(self, token: str) -> Lock | None:
        """The lock of `token`; None if there is none or it has expired (then it is
        removed)."""
        row = self._rows.get(token)
        if row is None:
            return None
        if _expired(row[1], time.time()):
            self._rows.remove([token])
            return None
        return _from_json(row[2])

    @dav_errors
    def create(self, path: str, lock: Lock) -> Lock:
        """Store a new lock on `path` and return it (the same dictionary, with `root`,
        `timeout`, `expire` and `token` set as WsgiDAV's storages set them)."""
        assert lock.get("token") is None
        assert lock.get("expire") is None, "Use timeout instead of expire"
        assert path and "/" in path
        lock["root"] = normalize_lock_root(path)
        raw = lock.get("timeout")
        timeout = TIMEOUT_DEFAULT if raw is None else float(raw)
        if timeout < 0 or timeout > TIMEOUT_MAX:
            timeout = TIMEOUT_MAX
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        self._rows.add(lock["token"], lock["root"], lock["expire"], _to_json(lock))
        return lock

    @dav_errors
    def refresh(self, token: str, *, timeout: float) -> Lock:
        """Give the lock of `token` a new lifetime of `timeout` seconds (-1: the
        longest allowed); ValueError if there is no such lock."""
        assert timeout == -1 or timeout > 0
        if timeout < 0 or timeout > TIMEOUT_MAX:
            timeout = TIMEOUT_MAX
        row = self._rows.get(token)
        if row is None:
            raise ValueError(f"no lock {token}")
        lock = _from_json(row[2])
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        if not self._rows.update(token, lock["expire"], _to_json(lock)):
            raise ValueError(f"no lock {token}")
        return lock

    @dav_errors
    def delete(self, token: str) -> bool:
        """Remove the lock; False if there was none."""
        return self._rows.remove([token]) > 0

    @dav_errors
    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        """The unexpired locks on `path` (`include_root`) and below it
        (`include_children`): dictionaries, or their tokens with `token_only`."""
        assert path and path.startswith("/")
        assert include_root or include_children
        root = normalize_lock_root(path)
        locks = self._live([root] if include_root else [], root if include_children else None)
        return [lock["token"] for lock in locks] if token_only else locks

    @dav_errors
    def locks_on_path(self, path: str, *, include_children: bool) -> list[Lock]:
        """The unexpired locks on `path`, on each of its ancestors, and (with
        `include_children`) below it: one query."""
        root = normalize_lock_root(path)
        return self._live([root, *ancestors(root)], root if include_children else None)

    def _live(self, roots: list[str], below: str | None) -> list[Lock]:
        """The locks of `on_path`, with the expired ones removed (a write only when
        there are some)."""
        now = time.time()
        rows = self._rows.on_path(roots, below=below)
        expired = [token for token, expire, _lock in rows if _expired(expire, now)]
        if expired:
            self._rows.remove(expired)
        return [_from_json(lock) for _token, expire, lock in rows if not _expired(expire, now)]
