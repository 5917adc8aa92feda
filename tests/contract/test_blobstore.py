"""The BlobStore contract (see `providers.blobstore.base`), run against every store.

The last section checks the S3 store against a real server that goes away and comes
back: calls raise `Unavailable` meanwhile and the data is there afterwards.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from providers.blobstore.base import BlobStore, chunk_key
from providers.blobstore.s3 import S3BlobStore
from providers.buffers import BufferPool
from providers.errors import BlobNotFound, InvalidName, Unavailable
from tests.services.s3 import S3Service

MiB = 1024 * 1024
THREADS = 8


def key_for(data: bytes, prefix: str = "") -> str:
    """The content-addressed key of `data`, as the file store names chunks."""
    return chunk_key(hashlib.sha256(data).hexdigest(), prefix)


def keys_of(store: BlobStore, prefix: str = "") -> set[str]:
    return {info.key for info in store.iter_keys(prefix)}


@pytest.mark.parametrize("size", [0, 1, 5 * MiB], ids=["empty", "1B", "5MiB"])
def test_put_get_round_trip(blobstore: BlobStore, size: int) -> None:
    data = os.urandom(size)
    key = key_for(data)
    blobstore.put(key, data)
    assert blobstore.get(key) == data
    assert blobstore.exists(key)


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, MiB + 5])
def test_put_from_a_reused_page_aligned_buffer(blobstore: BlobStore, size: int) -> None:
    """The upload pipeline puts views of its page-aligned batch buffers and reuses the
    buffer as soon as `put` returns: the object holds the bytes as they were then."""
    buffer = BufferPool(2 * MiB, keep=1).acquire()
    data = os.urandom(size)
    buffer[:size] = data
    key = key_for(data)
    blobstore.put(key, buffer[:size])
    buffer[:size] = bytes(size)
    assert blobstore.get(key) == data


def test_put_same_key_again_is_idempotent(blobstore: BlobStore) -> None:
    data = os.urandom(1000)
    key = key_for(data)
    blobstore.put(key, data)
    blobstore.put(key, data)
    assert blobstore.get(key) == data
    assert keys_of(blobstore) == {key}


def test_put_replaces_whole_object(blobstore: BlobStore) -> None:
    blobstore.put("misc/obj", b"a longer first value")
    blobstore.put("misc/obj", b"short")
    assert blobstore.get("misc/obj") == b"short"


def test_get_missing_raises_blob_not_found(blobstore: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blobstore.get(key_for(b"never stored"))


def test_stat_reports_size_and_plausible_mtime(blobstore: BlobStore) -> None:
    data = os.urandom(1234)
    key = key_for(data)
    before = time.time()
    blobstore.put(key, data)
    after = time.time()
    info = blobstore.stat(key)
    assert info is not None
    assert (info.key, info.size) == (key, len(data))
    # S3 Last-Modified has one-second resolution.
    assert before - 2 <= info.mtime <= after + 2


def test_stat_missing_is_none(blobstore: BlobStore) -> None:
    key = key_for(b"missing")
    assert blobstore.stat(key) is None
    assert not blobstore.exists(key)


def test_delete_then_get_raises(blobstore: BlobStore) -> None:
    data = b"to be collected"
    key = key_for(data)
    blobstore.put(key, data)
    blobstore.delete(key)
    with pytest.raises(BlobNotFound):
        blobstore.get(key)
    assert blobstore.stat(key) is None
    assert keys_of(blobstore) == set()


def test_delete_missing_is_a_no_op(blobstore: BlobStore) -> None:
    blobstore.delete(key_for(b"never stored"))
    blobstore.delete("no/such/dir/at/all")


def test_iter_keys_with_and_without_prefix(blobstore: BlobStore) -> None:
    blobs = [f"blob {i}".encode() * (i + 1) for i in range(4)]
    tenant_a = {key_for(data, "a/"): data for data in blobs}
    tenant_b = {key_for(data, "b/"): data for data in blobs[:2]}
    for key, data in {**tenant_a, **tenant_b}.items():
        blobstore.put(key, data)
    sizes = {key: len(data) for key, data in {**tenant_a, **tenant_b}.items()}
    assert {info.key: info.size for info in blobstore.iter_keys()} == sizes
    assert keys_of(blobstore, "a/") == set(tenant_a)
    assert keys_of(blobstore, "b/chunks/") == set(tenant_b)
    one = next(iter(tenant_a))
    partial = one[: len("a/chunks/") + 1]  # ends inside a directory name
    assert {k for k in tenant_a if k.startswith(partial)} == keys_of(blobstore, partial)
    assert keys_of(blobstore, one) == {one}
    assert keys_of(blobstore, "c/") == set()


BAD_KEYS = ["../x", "a/../b", "/abs", "a//b", "a/", "", "x" * 600, "bad key", "a/./b", "é"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_raise_invalid_name(blobstore: BlobStore, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: blobstore.put(key, b"x"),
        lambda: blobstore.get(key),
        lambda: blobstore.stat(key),
        lambda: blobstore.exists(key),
        lambda: blobstore.delete(key),
    ]
    for call in calls:
        with pytest.raises(InvalidName):
            call()


@pytest.mark.parametrize("prefix", ["", "dav/"])
def test_probe_writes_reads_and_leaves_nothing(blobstore: BlobStore, prefix: str) -> None:
    blobstore.probe(prefix)
    blobstore.probe(prefix)
    assert keys_of(blobstore) == set()


def test_probe_of_an_unreachable_s3_endpoint_is_unavailable() -> None:
    store = S3BlobStore("127.0.0.1:1", "key", "secret", "davserver")
    started = time.monotonic()
    with pytest.raises(Unavailable):
        store.probe()
    assert time.monotonic() - started < 15
    store.close()


def test_concurrent_puts_of_same_key(blobstore: BlobStore) -> None:
    data = os.urandom(256 * 1024)
    key = key_for(data)
    barrier = threading.Barrier(THREADS)

    def put() -> None:
        barrier.wait()
        blobstore.put(key, data)

    _run_in_threads([put] * THREADS)
    assert blobstore.get(key) == data
    assert keys_of(blobstore) == {key}


def test_readers_see_whole_objects_during_concurrent_overwrites(blobstore: BlobStore) -> None:
    values = [bytes([i]) * (64 * 1024) for i in range(THREADS)]
    blobstore.put("misc/contended", values[0])
    stop = threading.Event()
    seen: list[bytes] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(blobstore.get("misc/contended"))

    with ThreadPoolExecutor(1) as pool:
        reader = pool.submit(read)
        try:
            _run_in_threads([partial(blobstore.put, "misc/contended", v) for v in values])
        finally:
            stop.set()
        reader.result()
    assert seen
    assert all(value in values for value in seen)
    assert blobstore.get("misc/contended") in values


def test_concurrent_puts_of_different_keys(blobstore: BlobStore) -> None:
    blobs = [os.urandom(100 * 1024) for _ in range(THREADS)]
    _run_in_threads([partial(blobstore.put, key_for(d), d) for d in blobs])
    assert keys_of(blobstore) == {key_for(d) for d in blobs}
    for data in blobs:
        assert blobstore.get(key_for(data)) == data


def _run_in_threads(calls: list[Callable[[], None]]) -> None:
    """Run each call on its own thread; re-raise the first failure."""
    with ThreadPoolExecutor(len(calls)) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


# --- S3 outage: the real server stops and starts again ------------------------------


def _assert_all_unavailable(store: S3BlobStore, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get(key),
        lambda: store.put(key, b"during outage"),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: list(store.iter_keys()),
        store.check,
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            call()
        assert caught.value.__cause__ is not None
        assert time.monotonic() - started < 10


def test_s3_outage_raises_unavailable_then_recovers(
    s3_service: S3Service, s3_store_factory: Callable[[], S3BlobStore]
) -> None:
    if s3_service.external:
        pytest.fail("DAVSERVER_TEST_S3_URL points at a server this test cannot stop; unset it")
    store = s3_store_factory()
    data = os.urandom(4096)
    key = key_for(data)
    store.put(key, data)
    s3_service.stop_temporarily()
    try:
        late = s3_store_factory()  # built while the server is down: must not fail yet
        _assert_all_unavailable(store, key)
        _assert_all_unavailable(late, key)
    finally:
        s3_service.restart()
    assert _once_served(store, key) == data
    store.check()
    late.put(key, data)
    assert keys_of(late) == {key}


def _once_served(store: BlobStore, key: str, wait: float = 60.0) -> bytes:
    """The object, once the restarted server serves data: weed answers HTTP before its
    volume server is back, with 500s meanwhile (seen on a loaded CI machine)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return store.get(key)
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
