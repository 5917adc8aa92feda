"""FileStore: write/read round trips, seeking, dedup, and a blob store that fails."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, NewContent, NodeRecord
from providers.catalog.schema import Content
from providers.chunker import FastCDCChunker
from providers.errors import Unavailable
from providers.filestore import FileStore, content_digest
from tests.support.stores import SlowBlobStore

KIB = 1024


class FailingBlobStore(MemoryBlobStore):
    """A MemoryBlobStore whose `fail_at`-th put (1-based) raises `Unavailable`."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.puts = 0
        self._count_lock = threading.Lock()

    def put(self, key: str, data: bytes | memoryview) -> None:
        with self._count_lock:
            self.puts += 1
            failing = self.puts == self.fail_at
        if failing:
            raise Unavailable("injected failure")
        super().put(key, data)


def make_store(catalog: Catalog, blobs: MemoryBlobStore) -> FileStore:
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    return FileStore(catalog, blobs, chunker, workers=4, max_in_flight=3, read_ahead=2)


@pytest.fixture
def store(catalog: Catalog, blobs: MemoryBlobStore) -> Iterator[FileStore]:
    files = make_store(catalog, blobs)
    yield files
    files.close()


def write(store: FileStore, data: bytes, block: int = 1000) -> NewContent:
    writer = store.writer()
    writer.writelines(data[i : i + block] for i in range(0, len(data), block))
    writer.close()
    return writer.finish()


def save(store: FileStore, name: str, data: bytes) -> NodeRecord:
    catalog = store.catalog
    user = catalog.users.get("u") or catalog.users.create("u", "h")
    node, _ = catalog.contents.commit_file(
        user.home_id, name, user.id, write(store, data),
        mtime=0.0, content_type=None, path=name, author_id=None,
    )  # fmt: skip
    return node


def chunk_count(blobs: MemoryBlobStore) -> int:
    return len(list(blobs.iter_keys("chunks/")))


@pytest.mark.parametrize("size", [0, 1, 16 * KIB, 200 * KIB + 3])
def test_round_trip(store: FileStore, size: int) -> None:
    data = random.Random(size).randbytes(size)
    node = save(store, "f", data)
    assert node.size == size
    extents = store.catalog.contents.extents(node.content_id) if size else []  # type: ignore[arg-type]
    chunks = [hashlib.sha256(piece).hexdigest() for piece in store.chunker.split([data])]
    assert [e.chunk_hash for e in extents] == chunks
    assert node.digest == content_digest(chunks)
    assert sum(e.size for e in extents) == size
    assert [e.offset for e in extents] == [
        sum(e.size for e in extents[:i]) for i in range(len(extents))
    ]
    with store.reader(node.content_id, node.size) as reader:
        assert reader.readall() == data
    with io.BufferedReader(store.reader(node.content_id, node.size)) as buffered:
        assert buffered.read() == data


@pytest.mark.parametrize("data", [bytes(16 * KIB), random.Random(2).randbytes(1 * KIB)])
def test_exactly_one_chunk(store: FileStore, blobs: MemoryBlobStore, data: bytes) -> None:
    node = save(store, "f", data)
    extents = store.catalog.contents.extents(node.content_id)  # type: ignore[arg-type]
    assert [(e.offset, e.size) for e in extents] == [(0, len(data))]
    assert chunk_count(blobs) == 1
    with store.reader(node.content_id, node.size) as reader:
        assert reader.read() == data
        assert reader.read() == b""


def test_seek_and_read_at_every_boundary(store: FileStore) -> None:
    data = random.Random(3).randbytes(100 * KIB)
    node = save(store, "f", data)
    extents = store.catalog.contents.extents(node.content_id)  # type: ignore[arg-type]
    assert len(extents) > 5
    reader = store.reader(node.content_id, node.size)
    for boundary in [e.offset for e in extents] + [len(data)]:
        for pos in (boundary - 1, boundary, boundary + 1):
            if pos < 0:
                continue
            for length in (1, 2, 5000):
                assert reader.seek(pos) == pos
                got = bytearray()
                while len(got) < length and (part := reader.read(length - len(got))):
                    got += part
                assert bytes(got) == data[pos : pos + length]
                assert reader.tell() == max(pos, min(pos + length, len(data)))
    assert reader.seek(-10, io.SEEK_END) == len(data) - 10
    assert reader.read(100) == data[-10:]
    reader.seek(3)
    assert reader.seek(4, io.SEEK_CUR) == 7
    assert reader.read(3) == data[7:10]
    assert reader.seek(-100) == 0
    reader.close()


def test_committed_content_twice_stores_no_new_blobs(
    store: FileStore, blobs: MemoryBlobStore
) -> None:
    data = random.Random(4).randbytes(150 * KIB)
    first = save(store, "first", data)
    stored = {info.key: info.mtime for info in blobs.iter_keys()}
    assert (
        len(stored)
        == len({e.chunk_hash for e in store.catalog.contents.extents(first.content_id or 0)})
        > 5
    )
    time.sleep(0.01)
    second = write(store, data, block=333)
    assert second.digest == first.digest
    assert {info.key: info.mtime for info in blobs.iter_keys()} == stored


def test_uncommitted_chunks_are_uploaded_again(store: FileStore, blobs: MemoryBlobStore) -> None:
    """Chunks stay `uploading` until a commit names them: a second writer of the same
    bytes stores its own (identical) copy rather than trust an upload that may fail."""
    data = random.Random(5).randbytes(150 * KIB)
    first = write(store, data)
    stored = {info.key: info.mtime for info in blobs.iter_keys()}
    time.sleep(0.01)
    second = write(store, data, block=333)
    assert second == first
    rewritten = {info.key: info.mtime for info in blobs.iter_keys()}
    assert rewritten.keys() == stored.keys()
    assert all(rewritten[key] > stored[key] for key in stored)


def test_failed_put_raises_and_leaves_orphans(catalog: Catalog) -> None:
    blobs = FailingBlobStore(fail_at=4)
    store = make_store(catalog, blobs)
    data = random.Random(5).randbytes(200 * KIB)
    writer = store.writer()
    result: list[NewContent] = []
    with pytest.raises(Unavailable):
        writer.writelines(data[i : i + 1000] for i in range(0, len(data), 1000))
        result.append(writer.finish())
    writer.abort()
    store.close()
    assert result == []  # the caller never got content to commit
    assert blobs.puts >= 4
    orphans = chunk_count(blobs)
    assert orphans >= 3  # chunks stored before the failure stay behind, for GC
    with catalog.db.session() as s:
        assert s.exec(select(Content.id)).all() == []
    collectable = {c.hash for c in catalog.contents.collectable(time.time() + 1)}
    assert {info.key.rsplit("/", 1)[-1] for info in blobs.iter_keys()} <= collectable


def test_batch_buffers_are_reused_only_once_their_batch_is_stored(catalog: Catalog) -> None:
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    store = FileStore(catalog, SlowBlobStore(), chunker, max_in_flight=3, batch_bytes=32 * KIB)
    uploads = [random.Random(seed).randbytes(1024 * KIB) for seed in range(3)]
    for data in uploads:  # about 30 batches each, through at most 4 buffers
        node = save(store, f"f{len(data)}", data)
        with store.reader(node.content_id, node.size) as reader:
            assert reader.readall() == data
    assert 1 <= store.buffers.idle <= store.max_in_flight + 1
    assert store.buffers.lent == 0
    store.close()


def test_a_failed_upload_hands_its_buffers_back(catalog: Catalog) -> None:
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    store = FileStore(catalog, FailingBlobStore(fail_at=2), chunker, batch_bytes=16 * KIB)
    writer = store.writer()
    with pytest.raises(Unavailable):
        writer.writelines([random.Random(9).randbytes(400 * KIB)])
        writer.finish()
    writer.abort()
    assert store.buffers.lent == 0
    assert store.buffers.idle > 0
    store.close()
