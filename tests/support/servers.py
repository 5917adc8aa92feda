"""Start a real davserver (the same `build_services`/`build_app` as `davserver serve`) on a
loopback port in a thread, in one of two stacks:

- `embedded`: SQLite + local blob directory + in-process locks (the zero-config default);
- `full`: PostgreSQL + S3 (SeaweedFS) + Redis locks, from the session's real services.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from davserver.app import Services, build_app, build_services, ensure_admin
from davserver.auth.domain import account_secrets
from davserver.server import BackgroundServer
from davserver.settings import Settings

ADMIN_PASSWORD = "admin-secret"
_redis_db = itertools.count(1)


@dataclass
class RunningServer:
    """A live server: `base` is http://127.0.0.1:PORT, `dav` the WebDAV root URL."""

    settings: Settings
    services: Services
    background: BackgroundServer
    port: int
    users: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dav(self) -> str:
        return f"{self.base}/dav/"

    def url(self, path: str) -> str:
        return self.dav + path.lstrip("/")

    def client(self, user: str = "admin") -> requests.Session:
        session = requests.Session()
        session.auth = (user, self.users[user])
        return session

    def add_user(self, name: str, password: str) -> None:
        """Create a user as `davserver user add` does (with the Digest secret)."""
        digest = self.settings.digest_auth
        self.services.catalog.users.create(name, *account_secrets(name, password, digest=digest))
        self.users[name] = password

    def blob_bytes(self) -> int:
        """Total size of every object in the blob store."""
        return sum(info.size for info in self.services.blobs.iter_keys(""))

    def stored_bytes(self) -> int:
        """Every byte stored for chunks: the blob store's objects and the bodies of the
        chunks kept in the catalog (design invariant 27). A file's last chunk can be
        small enough to be kept so, whatever the file's size: a test of what an upload
        stored or freed counts both."""
        census = self.services.catalog.locators.census()
        kept = sum(
            stored for codec, _key, _n, _plain, stored in census if codec.startswith("inline:")
        )
        return self.blob_bytes() + kept

    def stop(self) -> None:
        self.background.stop()
        self.services.close()


def embedded_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, admin_password=ADMIN_PASSWORD, **extra)


def full_settings(data_dir: Path, s3: Any, postgres: Any, redis: Any, **extra: Any) -> Settings:
    """Settings for the production stack on fresh database, bucket and Redis db."""
    redis_url = redis.url.rsplit("/", 1)[0] + f"/{next(_redis_db) % 16}"
    return Settings(
        data_dir=data_dir,
        admin_password=ADMIN_PASSWORD,
        database_url=postgres.create_database(),
        s3_endpoint=s3.endpoint,
        s3_access_key=s3.access_key,
        s3_secret_key=s3.secret_key,
        s3_bucket=f"dav-{uuid.uuid4().hex[:16]}",
        redis_url=redis_url,
        **extra,
    )


def stack_settings(
    request: pytest.FixtureRequest, data_dir: Path, stack: str, **extra: Any
) -> Settings:
    """Settings of `stack` (`embedded`, or `full` on the session's services), with
    `extra` settings."""
    if stack == "embedded":
        return embedded_settings(data_dir, **extra)
    return full_settings(
        data_dir,
        request.getfixturevalue("s3_service"),
        request.getfixturevalue("postgres_service"),
        request.getfixturevalue("redis_service"),
        **extra,
    )


@contextlib.contextmanager
def two_instances(settings: Settings) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two servers on the same settings (one database, bucket and Redis db), as two
    instances behind a load balancer; both stopped afterwards."""
    first = start_server(settings)
    try:
        second = start_server(settings, flush_redis=False)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def serving_with_users(
    request: pytest.FixtureRequest, tmp_path: Path, names: tuple[str, ...]
) -> Iterator[RunningServer]:
    """For a fixture parametrized by stack: a server on `request.param` with an
    account per name (password `<name>-pass`), stopped after."""
    running = start_server(stack_settings(request, tmp_path / "davdata", request.param))
    for name in names:
        running.add_user(name, f"{name}-pass")
    try:
        yield running
    finally:
        running.stop()


def start_server(
    settings: Settings, *, threads: int = 16, flush_redis: bool = True
) -> RunningServer:
    """Build the app exactly as `davserver serve` does and serve it on a free port.

    The Redis db is flushed first unless `flush_redis` is false: a second instance on
    the same settings must keep the locks the first one holds.
    """
    services = build_services(settings)
    if settings.redis_url and flush_redis:
        _flush_redis(settings.redis_url)
    ensure_admin(services)
    app = build_app(services)
    background = BackgroundServer(
        app,
        threads=threads,
        max_threads=threads + settings.push_waiters,
        on_stop=services.stop_waiters,
    )
    port = background.start()
    if services.notify_push is not None:  # as `davserver serve` does, on a free port
        services.notify_push.start("127.0.0.1", 0)
    listening = getattr(services.ops.events, "wait_listening", None)
    if listening is not None and not listening(10):  # other instances' events reach it
        background.stop()
        services.close()
        raise RuntimeError("the server's events channel did not subscribe")
    return RunningServer(settings, services, background, port, {"admin": ADMIN_PASSWORD})


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()
