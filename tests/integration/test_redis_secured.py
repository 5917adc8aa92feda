"""Redis as production runs it: over TLS (`rediss://`) and as an ACL user, the default
user switched off. WebDAV locks, shared between two instances, and the failed-login
limiter both work through it: every Redis connection is made from the URL by
`providers.redis_store.connect`, which keeps the scheme, the user name and the TLS
options (a hand-parsed URL once dropped the first two)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from tests.services.postgres import PostgresService
from tests.services.redis import RedisService
from tests.services.s3 import S3Service
from tests.support.servers import RunningServer, full_settings, two_instances
from tests.support.tls import make_certificate, tls_terminator

USER, PASSWORD = "davserver", "s3cret pass/word"
LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>tls</D:owner></D:lockinfo>"""


@pytest.fixture(scope="module")
def secured_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`rediss://davserver:...@127.0.0.1:PORT/3?ssl_ca_certs=...` of a Valkey server
    that refuses anyone but the ACL user, behind TLS."""
    service = RedisService(env_url="")  # its own server: the default user goes off
    service.start()
    admin = redis.Redis.from_url(service.url)
    admin.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    admin.execute_command("ACL", "SETUSER", "default", "off")
    admin.close()
    folder: Path = tmp_path_factory.mktemp("redis-tls")
    cert, key = make_certificate(folder)
    try:
        with tls_terminator(service.port, cert, key) as port:
            auth = f"{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
            yield f"rediss://{auth}@127.0.0.1:{port}/3?ssl_ca_certs={quote(str(cert))}"
    finally:
        service.stop()


@pytest.fixture
def servers(
    secured_url: str,
    tmp_path: Path,
    s3_service: S3Service,
    postgres_service: PostgresService,
    redis_service: RedisService,
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two instances on one PostgreSQL, one bucket and the secured Redis."""
    settings = full_settings(tmp_path / "data", s3_service, postgres_service, redis_service)
    settings = settings.replace(redis_url=secured_url, login_failures_per_user=2)
    with two_instances(settings) as both:
        yield both


def test_plain_connections_and_the_default_user_are_refused(secured_url: str) -> None:
    """The server really demands TLS and the user: otherwise this test proves nothing."""
    without_user = secured_url.replace(f"{quote(USER, safe='')}:", ":", 1)
    with pytest.raises(redis.RedisError):
        redis.Redis.from_url(without_user, socket_timeout=5).ping()
    plain = secured_url.replace("rediss://", "redis://", 1).split("?")[0]
    with pytest.raises(redis.RedisError):
        redis.Redis.from_url(plain, socket_timeout=5).ping()
    assert redis.Redis.from_url(secured_url, socket_timeout=5).ping()


def test_locks_are_shared_over_tls_as_the_acl_user(
    servers: tuple[RunningServer, RunningServer], secured_url: str
) -> None:
    first, second = servers
    admin_one, admin_two = first.client(), second.client()
    assert admin_one.put(first.url("doc.txt"), data=b"v1").status_code == 201
    locked = admin_one.request("LOCK", first.url("doc.txt"), data=LOCK_BODY)
    assert locked.status_code == 200, locked.text
    token = locked.headers["Lock-Token"]
    # the other instance sees the lock (it is in Redis), for WebDAV and for the API alike
    assert admin_two.put(second.url("doc.txt"), data=b"v2").status_code == 423
    with_token = {"If": f"({token})"}
    assert admin_two.put(second.url("doc.txt"), data=b"v2", headers=with_token).status_code == 204
    stored = redis.Redis.from_url(secured_url, socket_timeout=5)
    assert stored.keys("wsgidav-lock:*")
    unlocked = admin_two.request("UNLOCK", second.url("doc.txt"), headers={"Lock-Token": token})
    assert unlocked.status_code == 204
    assert not stored.keys("wsgidav-lock:*")


def test_failed_logins_are_counted_in_the_secured_redis(
    servers: tuple[RunningServer, RunningServer], secured_url: str
) -> None:
    first, second = servers
    for _ in range(2):
        response = first.client().get(first.url(""), auth=("admin", "wrong"))
        assert response.status_code == 401
    blocked = second.client().get(second.url(""), auth=("admin", "wrong"))
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    stored = redis.Redis.from_url(secured_url, socket_timeout=5)
    assert stored.keys("davserver:login:*")
