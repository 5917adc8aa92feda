"""Self-test of the test-suite services: embedded PostgreSQL and Redis (Valkey).

Each service starts once for this module. A missing or broken server binary makes these tests
fail, never skip. Only stop/restart checks are skipped when an external server is configured
(``DAVSERVER_TEST_DB_URL`` / ``DAVSERVER_TEST_REDIS_URL``), because those cannot be stopped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from wsgidav.lock_man.lock_storage_redis import LockStorageRedis

from tests.services.postgres import PostgresService
from tests.services.redis import RedisService

FAIL_FAST_SECONDS = 5.0


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresService]:
    service = PostgresService()
    try:
        service.start()
    except Exception as exc:  # missing binary, initdb failure, ... must fail, not skip
        service.stop()
        pytest.fail(f"PostgresService did not start: {exc}")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def redis_service() -> Iterator[RedisService]:
    service = RedisService()
    try:
        service.start()
    except Exception as exc:
        service.stop()
        pytest.fail(f"RedisService did not start: {exc}")
    yield service
    service.stop()


def _scalar(url: str, query: str) -> Any:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


# -- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_url_works_with_sqlalchemy_psycopg(postgres: PostgresService) -> None:
    assert postgres.url.startswith("postgresql+psycopg://")
    if not postgres.external:
        assert f"@127.0.0.1:{postgres.port}/" in postgres.url
    engine = sa.create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_postgres_create_database_gives_separate_fresh_databases(
    postgres: PostgresService,
) -> None:
    url_a = postgres.create_database()
    url_b = postgres.create_database()
    assert url_a != url_b
    name_a = _scalar(url_a, "select current_database()")
    name_b = _scalar(url_b, "select current_database()")
    assert name_a != name_b

    engine = sa.create_engine(url_a, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("create table marker (x int)"))
    engine.dispose()
    assert _scalar(url_a, "select count(*) from pg_tables where tablename = 'marker'") == 1
    assert _scalar(url_b, "select count(*) from pg_tables where tablename = 'marker'") == 0

    # Asking again for the same name gives an empty database.
    assert postgres.create_database(name_a) == url_a
    assert _scalar(url_a, "select count(*) from pg_tables where tablename = 'marker'") == 0


def test_postgres_stop_temporarily_fails_fast_and_restart_recovers(
    postgres: PostgresService,
) -> None:
    if postgres.external:
        pytest.fail("an external DAVSERVER_TEST_DB_URL server cannot be stopped; unset it")
    url = postgres.create_database("restart_check")
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (x int)"))
            conn.execute(sa.text("insert into t values (42)"))
        port_before = postgres.port

        postgres.stop_temporarily()
        assert not postgres.running
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < FAIL_FAST_SECONDS

        postgres.restart()
        assert postgres.running
        assert postgres.port == port_before
        with engine.connect() as conn:
            assert conn.execute(sa.text("select x from t")).scalar_one() == 42
    finally:
        engine.dispose()
        if not postgres.running:
            postgres.restart()  # leave the module fixture usable for later tests


# -- Redis -----------------------------------------------------------------------------------


def test_redis_ping_and_round_trip(redis_service: RedisService) -> None:
    if not redis_service.external:
        assert redis_service.url == f"redis://127.0.0.1:{redis_service.port}/0"
    client = redis.Redis.from_url(redis_service.url)
    try:
        assert client.ping() is True
        key = f"davserver-test:{uuid.uuid4()}"
        client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
        client.delete(key)
    finally:
        client.close()


def test_redis_stop_temporarily_fails_fast_and_restart_recovers(
    redis_service: RedisService,
) -> None:
    if redis_service.external:
        pytest.fail("an external DAVSERVER_TEST_REDIS_URL server cannot be stopped; unset it")
    client = redis.Redis.from_url(redis_service.url, socket_connect_timeout=FAIL_FAST_SECONDS)
    try:
        client.set("survives-restart", b"yes")
        port_before = redis_service.port

        redis_service.stop_temporarily()
        assert not redis_service.running
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert time.monotonic() - started < FAIL_FAST_SECONDS

        redis_service.restart()
        assert redis_service.running
        assert redis_service.port == port_before
        assert client.ping() is True
        assert client.get("survives-restart") == b"yes"
    finally:
        client.close()
        if not redis_service.running:
            redis_service.restart()


def test_wsgidav_lock_storage_redis_create_and_get(redis_service: RedisService) -> None:
    storage = LockStorageRedis(
        host=redis_service.host,
        port=redis_service.port,
        db=redis_service.db,
        password=redis_service.password,
    )
    storage.open()
    try:
        path = f"/davserver-test/{uuid.uuid4().hex}/file.txt"
        lock = storage.create(
            path,
            {
                "type": "write",
                "scope": "exclusive",
                "depth": "0",
                "owner": b"<D:href>tester</D:href>",
                "timeout": 60,
                "principal": "tester",
            },
        )
        token = lock["token"]
        fetched = storage.get(token)
        assert fetched is not None
        assert fetched["root"] == path
        assert fetched["principal"] == "tester"
        listed = storage.get_lock_list(
            path, include_root=True, include_children=False, token_only=True
        )
        assert listed == [token]
        assert storage.delete(token) is True
        assert storage.get(token) is None
    finally:
        storage.close()
