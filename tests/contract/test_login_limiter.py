"""The login limiter contract (`davserver.auth.ratelimit`), on every limiter: in process
(`MemoryLimiter`), and shared by every process (`SharedLimiter`) in Redis (a real
Valkey server) and in the catalog on SQLite and on PostgreSQL. Shared cases get two
limiter objects on one store, as two worker processes have."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from davserver.auth.ratelimit import (
    PREFIX,
    LoginLimiter,
    MemoryLimiter,
    SharedLimiter,
    build_limiter,
)
from providers.catalog import Catalog
from providers.redis_store import Counters
from tests.support.catalogs import DATABASES, catalog_url, open_catalog

KINDS = ["memory", "redis", *(f"sql-{database}" for database in DATABASES)]
LIMITS = {"user": 2, "addr": 3, "link": 10}


@pytest.fixture(params=KINDS)
def limiters(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[LoginLimiter, LoginLimiter]]:
    """Two limiters on one store (the same object twice in process memory)."""
    kind: str = request.param
    with ExitStack() as stack:
        if kind == "memory":
            one: LoginLimiter = MemoryLimiter(LIMITS, window=1)
            yield one, one
            return
        if kind == "redis":
            url = request.getfixturevalue("redis_service").url
            made = [SharedLimiter(Counters(url, PREFIX), LIMITS, 1) for _ in "12"]
        else:
            url = catalog_url(request, tmp_path, kind.removeprefix("sql-"))
            catalogs = [stack.enter_context(open_catalog(url)) for _ in "12"]
            made = [build_limiter("", catalog, LIMITS, 1) for catalog in catalogs]
        for limiter in made:
            stack.callback(limiter.close)
        yield made[0], made[1]


def subjects() -> tuple[tuple[str, str], tuple[str, str]]:
    """A user and an address no other test uses (Redis keeps keys between tests)."""
    return ("user", f"bob-{uuid.uuid4().hex}"), ("addr", f"10.0.{uuid.uuid4().int % 250}.7")


def test_limits_and_windows(limiters: tuple[LoginLimiter, LoginLimiter]) -> None:
    limiter, _ = limiters
    bob, addr = subjects()
    amy = ("user", f"amy-{uuid.uuid4().hex}")
    assert limiter.blocked_for([bob, addr]) == 0
    limiter.failed([bob, addr])
    assert limiter.blocked_for([bob]) == 0
    limiter.failed([bob, addr])
    assert limiter.blocked_for([bob]) == 1  # rounded up to whole seconds
    assert limiter.blocked_for([amy, addr]) == 0
    limiter.failed([amy, addr])
    assert limiter.blocked_for([amy, addr]) == 1
    time.sleep(1.2)
    assert limiter.blocked_for([bob, addr]) == 0
    limiter.failed([bob])  # a new window starts from one failure
    assert limiter.blocked_for([bob]) == 0


def test_failures_counted_by_one_limiter_block_at_another(
    limiters: tuple[LoginLimiter, LoginLimiter],
) -> None:
    first, second = limiters
    bob, _addr = subjects()
    first.failed([bob])
    second.failed([bob])
    assert first.blocked_for([bob]) == 1 and second.blocked_for([bob]) == 1


def test_concurrent_failures_are_all_counted(
    limiters: tuple[LoginLimiter, LoginLimiter],
) -> None:
    """Ten threads on two limiters count one failure each against a limit of ten: the
    subject is blocked only if not one failure was lost."""
    first, second = limiters
    link = ("link", uuid.uuid4().hex)
    start = threading.Barrier(10)

    def fail(limiter: LoginLimiter) -> None:
        start.wait()
        limiter.failed([link])

    threads = [threading.Thread(target=fail, args=(first if i % 2 else second,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.blocked_for([link]) == 1


@pytest.mark.parametrize("kind", ["redis", "sql"])
def test_a_store_that_is_down_lets_logins_through(kind: str) -> None:
    if kind == "redis":
        limiter = SharedLimiter(Counters("redis://127.0.0.1:1/0", PREFIX), {"user": 1}, 60)
    else:
        catalog = Catalog(f"postgresql+psycopg://u:p@127.0.0.1:1/db{uuid.uuid4().hex[:6]}")
        limiter = SharedLimiter(catalog.counters(PREFIX), {"user": 1}, 60)
    try:
        limiter.failed([("user", "bob")])  # logged, not raised
        assert limiter.blocked_for([("user", "bob")]) == 0
    finally:
        limiter.close()


def test_the_catalog_forgets_expired_counts(tmp_path: Path) -> None:
    with open_catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        counters = catalog.counters(PREFIX)
        counters.bump(["old"], 0.2)
        time.sleep(0.3)
        for i in range(counters.PURGE_EVERY):
            counters.bump([f"k{i}"], 60)
        assert counters.read(["old", "k0"]) == [(0, 0), (1, pytest.approx(60_000, abs=2000))]
        with catalog.db.connection() as conn:
            left = conn.exec_driver_sql("SELECT key FROM expiring_count").scalars().all()
    assert f"{PREFIX}old" not in left and len(left) == counters.PURGE_EVERY
