"""Where Login Flow v2 keeps its flows (`davserver.nextcloud.login_flow`): one small
interface, two implementations.

A flow lives about 20 minutes and is touched by three requests that a load balancer
(or the kernel, between the worker processes of one server) may send to three
processes (the app's start, the browser's pages, the app's polls), so the state is
shared: in Redis when `redis_url` is set (`providers.redis_store.ExpiringValues`),
else in the catalog (`providers.catalog.ExpiringValues`, the `ephemeral` table).

Keys and values are opaque to the store; the login flow uses SHA-256 digests of its
tokens as keys, so whoever reads the store cannot act with what they read.
"""

from __future__ import annotations

from typing import Protocol

from providers.catalog import Catalog
from providers.redis_store import ExpiringValues

PREFIX = "davserver:login-flow:"


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


def build_flow_store(redis_url: str, catalog: Catalog) -> FlowStore:
    """Redis when `redis_url` is set, else the catalog: every process sees every flow."""
    if redis_url:
        return ExpiringValues(redis_url, PREFIX)
    return catalog.values(PREFIX)
