"""The `FlowStore` contract (`davserver.nextcloud.flow_store`), on both stores: in
process, and in Redis (a real Valkey server) where every instance shares the flows of
Login Flow v2."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from davserver.nextcloud.flow_store import FlowStore, MemoryFlowStore, build_flow_store
from tests.services.redis import RedisService


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[FlowStore]:
    if request.param == "memory":
        made: FlowStore = MemoryFlowStore()
    else:
        service: RedisService = request.getfixturevalue("redis_service")
        made = build_flow_store(service.url)
    yield made
    made.close()


def fresh() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_a_value_is_read_until_taken_and_taken_once(store: FlowStore) -> None:
    key = fresh()
    assert store.get(key) is None and store.take(key) is None
    store.put(key, b"flow", 60)
    assert store.get(key) == b"flow"
    assert store.get(key) == b"flow"  # reading leaves it
    assert store.take(key) == b"flow"
    assert store.take(key) is None
    assert store.get(key) is None


def test_put_replaces_and_keys_are_separate(store: FlowStore) -> None:
    first, second = fresh(), fresh()
    store.put(first, b"one", 60)
    store.put(first, b"two", 60)
    store.put(second, b"other", 60)
    assert store.take(first) == b"two"
    assert store.get(second) == b"other"


def test_a_value_expires(store: FlowStore) -> None:
    key = fresh()
    store.put(key, b"flow", 1)
    assert store.get(key) == b"flow"
    time.sleep(1.3)
    assert store.get(key) is None
    assert store.take(key) is None


def test_of_concurrent_takers_exactly_one_gets_the_value(store: FlowStore) -> None:
    key = fresh()
    store.put(key, b"password", 60)
    got: list[bytes | None] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        got.append(store.take(key))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got, key=lambda v: v or b"") == [None] * 7 + [b"password"]


def test_memory_store_stays_bounded() -> None:
    store = MemoryFlowStore(max_entries=20)
    for i in range(100):
        store.put(f"k{i}", b"v", 60)
    kept = [i for i in range(100) if store.get(f"k{i}") is not None]
    assert len(kept) <= 20
    assert 99 in kept  # the newest flow always gets in
