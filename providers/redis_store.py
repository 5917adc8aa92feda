"""Redis, for everything shared between instances: the one module that imports `redis`.

`connect(url)` makes a client from any URL redis-py understands, through `from_url`:
`redis://[[user]:password@]host:port/db`, `rediss://` for TLS (certificate options as
query arguments, e.g. `?ssl_ca_certs=/etc/ssl/ca.pem`), `unix://`. Every Redis error
becomes `providers.errors.Unavailable` where it is raised (`translated`), so callers
never see redis' own exception types. Users: WebDAV lock storage
(`providers.dav.locks`), failed-login counters (`Counters`, for the login limiter), the
events channel that wakes other instances (`Channel`, for
`providers.operations.events.ChannelEvents`), short-lived values taken once
(`ExpiringValues`, for the Nextcloud Login Flow v2's state).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from providers.errors import Unavailable

log = logging.getLogger(__name__)

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


class ExpiringValues:
    """Values that expire, shared by every instance; `take` hands a value out at most
    once.

    `put(key, value, ttl)` stores `value` (bytes) for `ttl` seconds (at least 1),
    replacing what was there; `get(key)` reads it (None when absent or expired);
    `take(key)` reads and deletes it in one MULTI/EXEC, so of concurrent takers on any
    instances exactly one gets the value.
    """

    def __init__(self, url: str, prefix: str, *, timeout: float = 2.0) -> None:
        self._client = connect(url, timeout=timeout)
        self._prefix = prefix

    def put(self, key: str, value: bytes, ttl: float) -> None:
        with translated("redis"):
            self._client.set(self._prefix + key, value, px=max(1000, int(ttl * 1000)))

    def get(self, key: str) -> bytes | None:
        with translated("redis"):
            value = self._client.get(self._prefix + key)
        return None if value is None else bytes(value)

    def take(self, key: str) -> bytes | None:
        with translated("redis"):
            pipe = self._client.pipeline(transaction=True)
            pipe.get(self._prefix + key)
            pipe.delete(self._prefix + key)
            value, _deleted = pipe.execute()
        return None if value is None else bytes(value)

    def close(self) -> None:
        self._client.close()


def _db_of(client: Any) -> int:
    """The database number `client` uses (0 unless the URL names one)."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


class Channel:
    """One pub/sub channel shared by every instance on the same Redis database.

    Redis delivers a message to whoever is subscribed when it is published, and to no
    one else: a subscriber that was disconnected misses what was sent meanwhile. So
    `listen` reports each (re)subscription after a lost connection (`on_gap`), and
    callers must treat pub/sub as a hint, never as a record. Channels are global to a
    Redis server, not per database, so the name carries the database number: two
    deployments (or test runs) on one Redis with different databases do not hear each
    other.
    """

    RETRY_MIN, RETRY_MAX = 0.1, 5.0  # seconds between reconnection attempts

    def __init__(self, url: str, name: str) -> None:
        self._client = connect(url)
        self.name = f"davserver:{_db_of(self._client)}:{name}"
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._confirmed = False  # a subscription was confirmed once: later ones are gaps
        self._thread: threading.Thread | None = None

    def publish(self, message: bytes) -> int:
        """Send `message` to every current subscriber (this process's too); the number
        of subscribers reached. `Unavailable` when Redis cannot be reached."""
        with translated("redis"):
            return int(self._client.publish(self.name, message))

    def listen(self, on_message: Callable[[bytes], None], on_gap: Callable[[], None]) -> None:
        """Start a daemon thread that calls `on_message` with each message received,
        and `on_gap` after every re-subscription that follows a lost connection (what
        was published in between is lost). Retries forever, with backoff, until
        `close`. Once only."""
        if self._thread is not None:
            raise RuntimeError("already listening")
        self._thread = threading.Thread(
            target=self._run, args=(on_message, on_gap), name="redis-listen", daemon=True
        )
        self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        """True once the listener is subscribed (Redis confirmed it), within `timeout`."""
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        """Stop listening (within a second) and close the connections."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()

    def _run(self, on_message: Callable[[bytes], None], on_gap: Callable[[], None]) -> None:
        pause = self.RETRY_MIN
        while not self._stopping.is_set():
            try:
                self._receive(on_message, on_gap)
                return
            except redis.RedisError as e:
                if self._subscribed.is_set():  # it was working: a new outage
                    log.warning("redis channel %s: connection lost, reconnecting: %s", self.name, e)
                    pause = self.RETRY_MIN
                self._subscribed.clear()
                self._stopping.wait(pause)
                pause = min(pause * 2, self.RETRY_MAX)

    def _receive(self, on_message: Callable[[bytes], None], on_gap: Callable[[], None]) -> None:
        """Subscribe and deliver until `close`; a Redis error ends it (raised). Every
        subscription confirmed after the first is a gap, whether this loop made it
        after an error or redis-py's own retry reconnected and subscribed again."""
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(self.name)
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    if self._confirmed:
                        log.info("redis channel %s: subscribed again", self.name)
                        _call(on_gap)
                    self._confirmed = True
                    self._subscribed.set()
                elif message["type"] == "message":
                    _call(on_message, message["data"])
        finally:
            pubsub.close()


def _call(function: Callable[..., None], *args: Any) -> None:
    """Call a listener; its failure is logged, never allowed to end the listening."""
    try:
        function(*args)
    except Exception:
        log.exception("redis channel listener %r failed", function)
