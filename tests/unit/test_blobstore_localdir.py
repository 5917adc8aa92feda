"""LocalDirBlobStore specifics, and S3BlobStore against an endpoint nobody listens on."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from providers.blobstore.localdir import LocalDirBlobStore, supports_direct_io
from providers.blobstore.s3 import S3BlobStore
from providers.buffers import PAGE, BufferPool
from providers.errors import BlobNotFound, InvalidName, Unavailable

KEY = "chunks/ab/cd/" + "abcd" * 16


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("fsync", [True, False])
def test_puts_leave_no_temporary_files(tmp_path: Path, fsync: bool) -> None:
    store = LocalDirBlobStore(tmp_path, fsync=fsync)
    store.put(KEY, b"first")
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(store.put, KEY, b"same bytes") for _ in range(16)]:
            future.result()
    assert (tmp_path / KEY).read_bytes() == b"same bytes"
    assert tmp_files(tmp_path) == []


def test_leftover_temporary_file_is_not_listed(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path)
    store.put(KEY, b"data")
    crashed = tmp_path / "chunks/ab/cd/.tmp-0123456789abcdef"
    crashed.write_bytes(b"half a chun")
    assert [info.key for info in store.iter_keys()] == [KEY]
    assert [info.key for info in store.iter_keys("chunks/ab/cd/")] == [KEY]


def test_temporary_file_names_are_refused_as_keys(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path)
    with pytest.raises(InvalidName):
        store.put("chunks/.tmp-x", b"data")


def test_files_that_are_not_keys_are_not_listed(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path)
    store.put(KEY, b"data")
    (tmp_path / "stray file.txt").write_bytes(b"not a blob")
    assert [info.key for info in store.iter_keys()] == [KEY]


def test_key_clashing_with_a_file_or_directory(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path)
    store.put("a/b", b"data")
    with pytest.raises(InvalidName):
        store.put("a/b/c", b"data")  # 'a/b' is a file
    with pytest.raises(InvalidName):
        store.put("a", b"data")  # 'a' is a directory
    with pytest.raises(BlobNotFound):
        store.get("a")
    with pytest.raises(BlobNotFound):
        store.get("a/b/c")
    assert store.stat("a") is None
    store.delete("a")
    assert store.get("a/b") == b"data"


def test_root_that_cannot_be_a_directory_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(Unavailable):
        LocalDirBlobStore(tmp_path / "file")


def test_root_removed_under_the_store(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "blobs")
    (tmp_path / "blobs").rmdir()
    assert list(store.iter_keys()) == []
    store.put(KEY, b"data")
    assert store.get(KEY) == b"data"


# --- S3 with nothing listening ----------------------------------------------------


def closed_port() -> int:
    """A loopback port that was free a moment ago and has no listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_s3_store_on_closed_port_raises_unavailable_quickly() -> None:
    started = time.monotonic()
    store = S3BlobStore(f"127.0.0.1:{closed_port()}", "access", "secret1234", "no-such-host")
    assert time.monotonic() - started < 1, "construction must not touch the network"
    calls: list[Callable[[], object]] = [
        lambda: store.get(KEY),
        lambda: store.put(KEY, b"data"),
        lambda: store.stat(KEY),
        lambda: store.delete(KEY),
        lambda: list(store.iter_keys()),
        store.check,
    ]
    with store:
        for call in calls:
            started = time.monotonic()
            with pytest.raises(Unavailable) as caught:
                call()
            assert time.monotonic() - started < 10
            assert caught.value.__cause__ is not None


def test_s3_store_rejects_illegal_bucket_name() -> None:
    with pytest.raises(ValueError):
        S3BlobStore("127.0.0.1:1", "access", "secret1234", "Bad_Bucket")


class WriteSpy:
    """Stands in for `os.write`: counts the bytes written to files open with O_DIRECT,
    or refuses those writes with EINVAL, as a file system does for buffers it cannot
    write directly."""

    def __init__(self, refuse_direct: bool = False) -> None:
        self.real = os.write
        self.refuse_direct = refuse_direct
        self.direct_bytes = 0

    def __call__(self, fd: int, data: memoryview) -> int:
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            return self.real(fd, data)
        if self.refuse_direct:
            raise OSError(errno.EINVAL, "direct I/O refused")
        written = self.real(fd, data)
        self.direct_bytes += written
        return written


def aligned_copy(data: bytes) -> memoryview:
    buffer = BufferPool(len(data) + PAGE, keep=0).acquire()
    buffer[: len(data)] = data
    return buffer[: len(data)]


@pytest.mark.parametrize("size", [PAGE - 1, PAGE, 3 * PAGE + 5, 1024 * 1024 + 77])
def test_page_aligned_buffers_are_written_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    direct = supports_direct_io(tmp_path)  # true on ext4 and xfs, where the tests run
    store = LocalDirBlobStore(tmp_path)
    spy = WriteSpy()
    monkeypatch.setattr(os, "write", spy)
    data = os.urandom(size)
    store.put(KEY, aligned_copy(data))
    store.put(KEY + "0", data)  # read-only bytes: through the page cache
    monkeypatch.undo()
    assert spy.direct_bytes == (size - size % PAGE if direct else 0)
    assert store.get(KEY) == store.get(KEY + "0") == data
    assert tmp_files(tmp_path) == []


def test_direct_io_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalDirBlobStore(tmp_path, direct_io=False)
    spy = WriteSpy()
    monkeypatch.setattr(os, "write", spy)
    store.put(KEY, aligned_copy(b"x" * 3 * PAGE))
    monkeypatch.undo()
    assert spy.direct_bytes == 0
    assert store.get(KEY) == b"x" * 3 * PAGE


def test_refused_direct_write_falls_back_to_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalDirBlobStore(tmp_path)
    spy = WriteSpy(refuse_direct=True)
    monkeypatch.setattr(os, "write", spy)
    first, second = os.urandom(5 * PAGE), os.urandom(5 * PAGE)
    store.put(KEY, aligned_copy(first))
    store.put(KEY + "0", aligned_copy(second))  # direct I/O is off for the store now
    monkeypatch.undo()
    assert store.get(KEY) == first
    assert store.get(KEY + "0") == second
    assert tmp_files(tmp_path) == []
