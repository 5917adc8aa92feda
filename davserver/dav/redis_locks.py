"""WsgiDAV lock storage in Redis, shared by every instance (the one user of `redis`).

`RedisLockStorage` is WsgiDAV's `LockStorageRedis` built from a URL, with Redis
failures translated into 503 answers instead of 500s.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlparse

import redis
from wsgidav.dav_error import DAVError
from wsgidav.lock_man.lock_storage_redis import LockStorageRedis

HTTP_SERVICE_UNAVAILABLE = 503


def _unavailable_on_redis_error(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as e:
            raise DAVError(HTTP_SERVICE_UNAVAILABLE, context_info="lock store unavailable") from e

    return wrapper


class RedisLockStorage(LockStorageRedis):
    """Locks in Redis at `url` (redis://[:password@]host:port/db)."""

    def __init__(self, url: str) -> None:
        parts = urlparse(url)
        db = int(parts.path.strip("/") or 0)
        super().__init__(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=db,
            password=parts.password,
        )

    def open(self) -> None:
        # Fail fast when Redis is down instead of hanging a request thread.
        self._redis: redis.Redis | None = redis.Redis(
            host=self._redis_host,
            port=self._redis_port,
            db=self._redis_db,
            password=self._redis_password,
            socket_connect_timeout=3,
            socket_timeout=5,
        )

    get = _unavailable_on_redis_error(LockStorageRedis.get)
    create = _unavailable_on_redis_error(LockStorageRedis.create)
    refresh = _unavailable_on_redis_error(LockStorageRedis.refresh)
    delete = _unavailable_on_redis_error(LockStorageRedis.delete)
    get_lock_list = _unavailable_on_redis_error(LockStorageRedis.get_lock_list)


def check(url: str) -> None:
    """Raise `ConnectionError` if Redis at `url` does not answer PING."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as e:
        raise ConnectionError(f"redis unavailable: {e}") from e
