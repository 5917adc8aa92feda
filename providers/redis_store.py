"""Redis, for everything shared between instances: the one module that imports `redis`.

`connect(url)` makes a client from any URL redis-py understands, through `from_url`:
`redis://[[user]:password@]host:port/db`, `rediss://` for TLS (certificate options as
query arguments, e.g. `?ssl_ca_certs=/etc/ssl/ca.pem`), `unix://`. Every Redis error
becomes `providers.errors.Unavailable` where it is raised (`translated`), so callers
never see redis' own exception types. Users: WebDAV lock storage
(`providers.dav.locks`), failed-login counters (`Counters`, for the login limiter).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from providers.errors import Unavailable

CONNECT_TIMEOUT = 3.0  # seconds: fail fast when Redis is down, never hang a request
TIMEOUT = 5.0


def connect(url: str, *, timeout: float = TIMEOUT) -> Any:
    """A client for `url` (see the module docstring); it connects on first use.
    `Unavailable` for a URL redis-py cannot use."""
    with translated("redis"):
        try:
            return redis.Redis.from_url(
                url, socket_connect_timeout=min(CONNECT_TIMEOUT, timeout), socket_timeout=timeout
            )
        except ValueError as e:
            raise Unavailable(f"redis: bad URL: {e}") from e


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise `Unavailable` ("`what` unavailable") for any Redis error in the block."""
    try:
        yield
    except redis.RedisError as e:
        raise Unavailable(f"{what} unavailable: {e}") from e


def ping(url: str) -> None:
    """`Unavailable` unless Redis at `url` answers (and accepts the credentials)."""
    client = connect(url, timeout=CONNECT_TIMEOUT)
    try:
        with translated("redis"):
            client.ping()
    finally:
        client.close()


class Counters:
    """Counters that expire, shared by every instance (failed logins per subject).

    `read` gives each key's count and milliseconds left; `bump` adds one to each key,
    starting a key at 0 with a lifetime of `window` seconds when it does not exist
    (in one MULTI/EXEC, so the lifetime and the count land together).
    """

    def __init__(self, url: str, prefix: str, *, timeout: float = 2.0) -> None:
        self._client = connect(url, timeout=timeout)
        self._prefix = prefix

    def read(self, keys: Sequence[str]) -> list[tuple[int, int]]:
        """(count, ms left) per key; (0, 0) for a key that is not there."""
        with translated("redis"):
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.get(self._prefix + key)
                pipe.pttl(self._prefix + key)
            replies = pipe.execute()
        counts = []
        for i in range(len(keys)):
            count, ttl = replies[2 * i], replies[2 * i + 1]
            counts.append((int(count or 0), max(0, int(ttl))))
        return counts

    def bump(self, keys: Sequence[str], window: int) -> None:
        with translated("redis"):
            pipe = self._client.pipeline(transaction=True)
            for key in keys:
                pipe.set(self._prefix + key, 0, ex=window, nx=True)
                pipe.incr(self._prefix + key)
            pipe.execute()

    def close(self) -> None:
        self._client.close()
