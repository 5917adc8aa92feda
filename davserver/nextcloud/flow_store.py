"""Where Login Flow v2 keeps its flows (`davserver.nextcloud.login_flow`): one small
interface, two implementations.

A flow lives about 20 minutes and is touched by three requests that a load balancer
may send to three instances (the app's start, the browser's pages, the app's polls),
so with `redis_url` set the state is in Redis (`providers.redis_store.ExpiringValues`),
shared by every instance; without it (the embedded stack: one process) it is in
process memory (`MemoryFlowStore`). The catalog is not used: flows are short-lived,
and no schema change was wanted for them.

Keys and values are opaque to the store; the login flow uses SHA-256 digests of its
tokens as keys, so whoever reads the store cannot act with what they read.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from providers.redis_store import ExpiringValues

MAX_ENTRIES = 10_000  # in memory: anyone may start flows, so the table is bounded


class FlowStore(Protocol):
    """Values that expire, shared by whoever serves the flow (see the module docstring).

    `put(key, value, ttl)` stores `value` for `ttl` seconds (Redis rounds a shorter
    life up to 1 s: a value carrying its own end time must be checked against it),
    replacing what was there;
    `get(key)` reads it (None when absent or expired); `take(key)` reads and removes it
    at once: of concurrent takers exactly one gets the value, the others None. Errors
    of the storage are `providers.errors.Unavailable`."""

    def put(self, key: str, value: bytes, ttl: float) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def take(self, key: str) -> bytes | None: ...

    def close(self) -> None: ...


class MemoryFlowStore:
    """`FlowStore` in this process, with at most `max_entries` values: when full,
    expired ones are dropped first, then the ones closest to expiring (a flood of new
    flows must not grow memory forever; it can only end other unfinished flows)."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._values: dict[str, tuple[bytes, float]] = {}  # key -> (value, expiry)
        self._lock = threading.Lock()

    def put(self, key: str, value: bytes, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            if key not in self._values and len(self._values) >= self._max:
                self._make_room(now)
            self._values[key] = (value, now + ttl)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._values.get(key)
        return entry[0] if entry and entry[1] > time.monotonic() else None

    def take(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._values.pop(key, None)
        return entry[0] if entry and entry[1] > time.monotonic() else None

    def close(self) -> None:
        with self._lock:
            self._values.clear()

    def _make_room(self, now: float) -> None:
        """Drop expired values, then the earliest-expiring tenth if still full (lock held)."""
        self._values = {k: v for k, v in self._values.items() if v[1] > now}
        if len(self._values) >= self._max:
            by_expiry = sorted(self._values, key=lambda k: self._values[k][1])
            for key in by_expiry[: max(1, self._max // 10)]:
                del self._values[key]


def build_flow_store(redis_url: str) -> FlowStore:
    """Redis when `redis_url` is set (every instance sees every flow), else memory."""
    if redis_url:
        return ExpiringValues(redis_url, "davserver:login-flow:")
    return MemoryFlowStore()
