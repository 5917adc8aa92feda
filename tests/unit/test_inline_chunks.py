"""Small chunks kept in the catalog (design invariant 27): written by their claim, read
and verified from their body, never an object; fsck, GC, reseal, the census and
direct GETs see them; a writer of only such chunks does not sync the blob store."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import (
    CLAIM_INLINE,
    CLAIM_UPLOAD,
    Catalog,
    NodeRecord,
    UserRecord,
)
from providers.chunker import FastCDCChunker
from providers.codec import RAW, SEALED, ZSTD, ChunkCompressor, ChunkVault, KeyRing
from providers.errors import CorruptChunk
from providers.filestore import FileStore
from providers.gc import check_store, collect_garbage
from providers.reseal import reseal_chunks
from tests.support.saved import save

KIB = 1024
INLINE_MAX = 2 * KIB
MARKER = b"plaintext-marker-5b1d"
OLD_KEY, NEW_KEY = bytes(range(32)), bytes(range(32, 64))


class SyncCountingStore(MemoryBlobStore):
    """A memory store that counts `sync` calls and records the keys asked deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0
        self.deleted: list[str] = []

    def sync(self) -> None:
        self.syncs += 1

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


@pytest.fixture
def counting() -> SyncCountingStore:
    return SyncCountingStore()


def store_over(catalog: Catalog, vault: ChunkVault, inline_max: int = INLINE_MAX) -> FileStore:
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    return FileStore(catalog, vault.blobs, chunker, workers=2, vault=vault, inline_max=inline_max)


@pytest.fixture(params=["plain", "zstd", "sealed"])
def vault(request: pytest.FixtureRequest, counting: SyncCountingStore) -> ChunkVault:
    compressor = ChunkCompressor() if request.param == "zstd" else None
    keys = KeyRing(OLD_KEY) if request.param == "sealed" else None
    return ChunkVault(counting, compressor=compressor, keys=keys)


@pytest.fixture
def files(catalog: Catalog, vault: ChunkVault) -> Iterator[FileStore]:
    store = store_over(catalog, vault)
    yield store
    store.close()


def read(files: FileStore, node: NodeRecord) -> bytes:
    assert node.content_id is not None
    with files.reader(node.content_id, node.size) as reader:
        return reader.readall()


def object_keys(blobs: MemoryBlobStore) -> set[str]:
    return {info.key for info in blobs.iter_keys()}


def bodies(db: Path) -> dict[str, tuple[str, str | None, bytes]]:
    """The catalog's chunk bodies, read with sqlite3 itself: hash -> (codec, key, data)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT hash, codec, key_id, data FROM chunk_body").fetchall()
    return {h: (codec, key_id, data) for h, codec, key_id, data in rows}


def test_a_small_file_is_kept_in_the_catalog_and_read_back(
    files: FileStore, vault: ChunkVault, counting: SyncCountingStore, user: UserRecord,
    tmp_path: Path,
) -> None:  # fmt: skip
    data = MARKER * 40  # 840 bytes: one chunk
    node = save(files, user, "small.txt", data)
    assert object_keys(counting) == set()
    assert counting.syncs == 0  # nothing went to the blob store
    assert read(files, node) == data
    view = files.content_view(node.content_id, node.size)
    assert view is not None and len(view.extents) == 1
    (locator,) = view.locators.values()
    assert locator.inline is not None
    (body,) = bodies(tmp_path / "catalog.db").values()
    assert body[0] == locator.codec == (SEALED if vault.keys else ZSTD if vault.compressor else RAW)
    assert (MARKER in body[2]) != bool(vault.keys)  # a sealed body shows no plaintext
    assert check_store(files.catalog, counting, deep=False, vault=vault).ok
    assert check_store(files.catalog, counting, deep=True, vault=vault).ok


def test_a_file_mixes_objects_and_inline_chunks(
    files: FileStore, vault: ChunkVault, counting: SyncCountingStore, user: UserRecord
) -> None:
    data = os.urandom(200 * KIB)
    node = save(files, user, "mixed.bin", data)
    assert node.content_id is not None
    extents = files.catalog.contents.extents(node.content_id)
    locators = files.catalog.locators.get(e.chunk_hash for e in extents)
    inline = {e.chunk_hash for e in extents if e.size <= INLINE_MAX}
    assert {h for h, loc in locators.items() if loc.inline is not None} == inline
    objects = {e.chunk_hash for e in extents} - inline
    assert len(object_keys(counting)) == len(objects) > 0
    keyed = dict(files.catalog.locators.keyed_objects(limit=2))  # GC's sealed names
    assert keyed == ({h: vault.keys.current.key_id for h in objects} if vault.keys else {})
    assert counting.syncs == 1  # the objects were made durable before the commit
    assert read(files, node) == data
    assert check_store(files.catalog, counting, deep=True, vault=vault).ok


def test_a_corrupt_body_fails_the_read_and_deep_fsck(
    files: FileStore, vault: ChunkVault, user: UserRecord, tmp_path: Path
) -> None:
    node = save(files, user, "small.txt", MARKER * 20)
    (victim,) = bodies(tmp_path / "catalog.db")
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        conn.execute("UPDATE chunk_body SET data = ? WHERE hash = ?", (b"x" * 420, victim))
    with pytest.raises(CorruptChunk):
        read(files, node)
    report = check_store(files.catalog, vault.blobs, deep=True, vault=vault)
    assert report.corrupt == [victim]
    assert [f.path for f in report.affected[victim]] == ["/small.txt"]


def test_gc_removes_the_body_with_its_row_and_sweeps_objects_it_does_not_need(
    files: FileStore, vault: ChunkVault, counting: SyncCountingStore, user: UserRecord,
    tmp_path: Path,
) -> None:  # fmt: skip
    kept = save(files, user, "kept.txt", MARKER * 30)
    gone = save(files, user, "gone.txt", MARKER * 31)
    assert kept.content_id is not None
    (kept_hash,) = [e.chunk_hash for e in files.catalog.contents.extents(kept.content_id)]
    counting.put(chunk_key(kept_hash), MARKER * 30)  # a plain writer's object, not needed
    files.catalog.tree.delete(gone.id, "/gone.txt")
    time.sleep(0.01)
    report = collect_garbage(files.catalog, counting, grace=0, apply=True, vault=vault)
    assert report.chunks == 1 and report.orphans == 1
    assert set(bodies(tmp_path / "catalog.db")) == {kept_hash}
    assert object_keys(counting) == set()
    assert read(files, kept) == MARKER * 30


def test_gc_asks_no_object_delete_for_a_body_and_sweeps_a_racing_object_later(
    files: FileStore, vault: ChunkVault, counting: SyncCountingStore, user: UserRecord
) -> None:
    gone = save(files, user, "gone.txt", MARKER * 32)
    assert gone.content_id is not None
    (digest,) = [e.chunk_hash for e in files.catalog.contents.extents(gone.content_id)]
    files.catalog.tree.delete(gone.id, "/gone.txt")
    time.sleep(0.01)
    report = collect_garbage(files.catalog, counting, grace=0, apply=True, vault=vault)
    assert report.chunks == 1 and counting.deleted == []
    assert files.catalog.locators.get([digest]) == {}
    counting.put(chunk_key(digest), MARKER * 32)  # a plain writer raced the collection
    time.sleep(0.01)
    report = collect_garbage(files.catalog, counting, grace=0, apply=True, vault=vault)
    assert report.orphans == 1 and object_keys(counting) == set()
    assert chunk_key(digest) in counting.deleted


def test_objects_and_bodies_of_one_chunk_race_to_a_readable_row(
    catalog: Catalog, counting: SyncCountingStore, user: UserRecord
) -> None:
    """A writer storing an object and one storing a body claim the same chunk in
    either order: each claim says what to do, and the row reads back either way."""
    vault = ChunkVault(counting, compressor=ChunkCompressor())
    for first_inline in (False, True):
        chunk = b"abc" * 300 + bytes([first_inline])
        digest = hashlib.sha256(chunk).hexdigest()
        inline = {digest: vault.inline(digest, chunk)}
        first = catalog.contents.claim_many({digest: len(chunk)}, inline if first_inline else None)
        second = catalog.contents.claim_many({digest: len(chunk)}, None if first_inline else inline)
        assert (first[digest], second[digest]) == (
            (CLAIM_INLINE, CLAIM_UPLOAD) if first_inline else (CLAIM_UPLOAD, CLAIM_INLINE)
        )
        locator = catalog.locators.get([digest])[digest]
        assert locator.inline is not None  # the body wins: it is in the row itself
        assert vault.get(digest, len(chunk), locator) == chunk


def test_a_stored_inline_chunk_is_deduplicated(
    files: FileStore, counting: SyncCountingStore, user: UserRecord, tmp_path: Path
) -> None:
    save(files, user, "a.txt", MARKER * 25)
    save(files, user, "b.txt", MARKER * 25)
    assert len(bodies(tmp_path / "catalog.db")) == 1
    assert object_keys(counting) == set()


def test_reseal_rotates_a_body_in_place(
    catalog: Catalog, counting: SyncCountingStore, user: UserRecord, tmp_path: Path
) -> None:
    old = store_over(catalog, ChunkVault(counting, keys=KeyRing(OLD_KEY)))
    rotated = ChunkVault(counting, keys=KeyRing(NEW_KEY, [OLD_KEY]))
    try:
        node = save(old, user, "small.txt", MARKER * 30)
        old_id = KeyRing(OLD_KEY).current.key_id
        assert catalog.locators.key_ids() == {old_id}
        report = reseal_chunks(catalog, rotated, workers=1)
        assert report.ok and report.resealed == 1
        new_id = KeyRing(NEW_KEY).current.key_id
        assert catalog.locators.key_ids() == {new_id}
        assert [body[1] for body in bodies(tmp_path / "catalog.db").values()] == [new_id]
        assert object_keys(counting) == set()  # it stayed in the catalog
        reader = store_over(catalog, ChunkVault(counting, keys=KeyRing(NEW_KEY)))
        assert read(reader, node) == MARKER * 30  # the new key alone reads it
        reader.close()
        assert reseal_chunks(catalog, rotated, workers=1).candidates == 0
    finally:
        old.close()


def test_the_census_counts_inline_chunks_apart(
    catalog: Catalog, counting: SyncCountingStore, user: UserRecord
) -> None:
    files = store_over(catalog, ChunkVault(counting))
    try:
        save(files, user, "small.txt", MARKER * 30)
        save(files, user, "big.bin", os.urandom(100 * KIB))
    finally:
        files.close()
    census = {row[0]: row[2:] for row in catalog.locators.census()}
    rows = list(catalog.locators.all_rows())
    inline = [size for _h, size, loc in rows if loc.inline is not None]
    assert 630 in inline
    assert census["inline:raw"] == (len(inline), sum(inline), sum(inline))
    assert census[RAW][0] == len(rows) - len(inline) > 0


def test_inline_off_stores_every_chunk_as_an_object(
    catalog: Catalog, counting: SyncCountingStore, user: UserRecord, tmp_path: Path
) -> None:
    files = store_over(catalog, ChunkVault(counting), inline_max=0)
    try:
        node = save(files, user, "small.txt", MARKER * 30)
        assert bodies(tmp_path / "catalog.db") == {}
        assert len(object_keys(counting)) == 1 and counting.syncs == 1
        assert read(files, node) == MARKER * 30
    finally:
        files.close()
