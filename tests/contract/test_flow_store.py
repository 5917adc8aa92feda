"""The `FlowStore` contract (`davserver.nextcloud.flow_store`), on every store: Redis
(a real Valkey server) and the catalog on SQLite and on PostgreSQL, where every process
shares the flows of Login Flow v2. Takers race from threads on two store objects (a
second worker process has its own), and from a second process on the same database."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from davserver.nextcloud.flow_store import PREFIX, FlowStore, build_flow_store
from providers.catalog import Catalog
from providers.catalog import ExpiringValues as ExpiringCatalogValues
from providers.redis_store import ExpiringValues
from tests.support.catalogs import DATABASES, catalog_url, open_catalog

KINDS = ["redis", *(f"sql-{database}" for database in DATABASES)]


@dataclass
class Shared:
    """Two store objects on one store, as two worker processes have."""

    first: FlowStore
    second: FlowStore
    kind: str
    url: str  # the Redis URL or the catalog's


def open_store(kind: str, url: str, stack: ExitStack) -> FlowStore:
    """A store object on the store at `url` (as the server builds it), closed with `stack`."""
    if kind == "redis":
        made: FlowStore = ExpiringValues(url, PREFIX)
    else:
        catalog = Catalog(url)
        stack.callback(catalog.close)
        made = build_flow_store("", catalog)
    stack.callback(made.close)
    return made


@pytest.fixture(params=KINDS)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shared]:
    kind: str = request.param
    with ExitStack() as stack:
        if kind == "redis":
            url: str = request.getfixturevalue("redis_service").url
        else:
            url = catalog_url(request, tmp_path, kind.removeprefix("sql-"))
            stack.enter_context(open_catalog(url))  # creates the schema
        yield Shared(open_store(kind, url, stack), open_store(kind, url, stack), kind, url)


@pytest.fixture
def store(shared: Shared) -> FlowStore:
    return shared.first


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


def test_of_concurrent_takers_exactly_one_gets_the_value(shared: Shared) -> None:
    key = fresh()
    shared.first.put(key, b"password", 60)
    got: list[bytes | None] = []
    start = threading.Barrier(8)

    def take(store: FlowStore) -> None:
        start.wait()
        got.append(store.take(key))

    threads = [
        threading.Thread(target=take, args=(shared.first if i % 2 else shared.second,))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got, key=lambda v: v or b"") == [None] * 7 + [b"password"]


def test_a_value_put_by_one_store_object_is_read_and_taken_by_another(shared: Shared) -> None:
    key = fresh()
    shared.first.put(key, b"flow", 60)
    assert shared.second.get(key) == b"flow"
    assert shared.second.take(key) == b"flow"
    assert shared.first.get(key) is None


def _take_all(kind: str, url: str, keys: list[str], start: Any, results: Any) -> None:
    """In another process: take every key, report which ones this process got."""
    with ExitStack() as stack:
        store = open_store(kind, url, stack)
        start.wait()
        results.put([key for key in keys if store.take(key) is not None])


def test_two_processes_taking_the_same_values_get_each_once(shared: Shared) -> None:
    keys = [fresh() for _ in range(40)]
    for key in keys:
        shared.first.put(key, b"v", 60)
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(2), spawn.Queue()
    other = spawn.Process(target=_take_all, args=(shared.kind, shared.url, keys, start, results))
    other.start()
    start.wait(timeout=60)
    mine = [key for key in reversed(keys) if shared.second.take(key) is not None]
    theirs = results.get(timeout=60)
    other.join(timeout=30)
    assert sorted(mine + theirs) == sorted(keys)


def test_the_catalog_store_stays_bounded(tmp_path: Path) -> None:
    with open_catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        store = ExpiringCatalogValues(catalog.db, PREFIX, max_values=20)
        for i in range(100):
            store.put(f"k{i}", b"v", 60 + i)
        kept = [i for i in range(100) if store.get(f"k{i}") is not None]
    assert len(kept) <= 20
    assert 99 in kept  # the newest flow always gets in
