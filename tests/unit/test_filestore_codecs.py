"""The file store, GC and fsck over the codec layer: compressed and sealed chunks are
recorded, read back (whole and by range), verified, and collected in every form."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import pytest

from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, NodeRecord, UserRecord
from providers.chunk_reader import LOCATOR_PAGE
from providers.chunker import FastCDCChunker
from providers.codec import RAW, SEALED, ZSTD, ChunkCompressor, ChunkVault, KeyRing
from providers.errors import CorruptChunk
from providers.filestore import FileStore
from providers.gc import check_store, collect_garbage
from tests.support.saved import save

KIB = 1024
MARKER = b"plaintext-marker-e1c9"


def text(size: int, seed: int = 0) -> bytes:
    lines = [b"line %d of file %d: " % (i, seed) + MARKER + b"\n" for i in range(size // 30 + 1)]
    return b"".join(lines)[:size]


@pytest.fixture(params=["zstd", "sealed", "zstd+sealed"])
def vault(request: pytest.FixtureRequest, blobs: MemoryBlobStore) -> ChunkVault:
    compressor = ChunkCompressor() if "zstd" in request.param else None
    keys = KeyRing(bytes(range(32))) if "sealed" in request.param else None
    return ChunkVault(blobs, compressor=compressor, keys=keys)


@pytest.fixture
def coded(catalog: Catalog, vault: ChunkVault) -> Iterator[FileStore]:
    chunker = FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB)
    store = FileStore(catalog, vault.blobs, chunker, workers=4, vault=vault)
    yield store
    store.close()


def hashes(files: FileStore, node: NodeRecord) -> list[str]:
    assert node.content_id is not None
    return [e.chunk_hash for e in files.catalog.contents.extents(node.content_id)]


def test_chunks_are_recorded_and_read_back(
    coded: FileStore, vault: ChunkVault, user: UserRecord
) -> None:
    data = text(200 * KIB) + os.urandom(40 * KIB)
    node = save(coded, user, "f", data)
    locators = coded.catalog.locators.get(hashes(coded, node))
    codecs = {loc.codec for loc in locators.values()}
    assert codecs == ({SEALED} if vault.keys else {ZSTD, RAW})
    stored = sum(i.size for i in vault.blobs.iter_keys())
    assert stored < len(data) * (0.5 if vault.compressor else 1.01)
    with coded.reader(node.content_id, node.size) as reader:
        assert reader.readall() == data
    for info in vault.blobs.iter_keys():
        assert MARKER not in vault.blobs.get(info.key) or not vault.keys


def test_range_reads_cross_chunk_boundaries(coded: FileStore, user: UserRecord) -> None:
    data = text(300 * KIB, seed=1)
    node = save(coded, user, "f", data)
    assert node.content_id is not None
    extents = coded.catalog.contents.extents(node.content_id)
    assert len(extents) > 10
    reader = io.BufferedReader(coded.reader(node.content_id, node.size))
    for boundary in (e.offset for e in extents[1:6]):
        reader.seek(boundary - 100)
        assert reader.read(300) == data[boundary - 100 : boundary + 200]


def test_a_file_of_more_chunks_than_a_locator_page_reads_back(
    coded: FileStore, user: UserRecord
) -> None:
    data = text((LOCATOR_PAGE + 50) * 4 * KIB, seed=2)  # about 300 chunks of 4 KiB
    node = save(coded, user, "f", data)
    assert len(hashes(coded, node)) > LOCATOR_PAGE + 2  # the read-ahead crosses a page
    with coded.reader(node.content_id, node.size) as reader:
        assert reader.readall() == data


def test_a_small_file_is_viewed_in_one_query(
    coded: FileStore, user: UserRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to one locator page of the smallest chunks, a content's checksums, extents
    and locators come from one query (`content_view`) and its reader looks nothing up;
    above, there is no view and the reader looks its locators up page by page."""
    small = text(LOCATOR_PAGE * KIB, seed=4)  # at most one page of 1 KiB chunks
    big = text(LOCATOR_PAGE * KIB + 1, seed=5)
    small_node, big_node = save(coded, user, "small", small), save(coded, user, "big", big)
    view = coded.content_view(small_node.content_id, small_node.size)
    assert view is not None
    assert view.checksums == coded.catalog.checksums.get(small_node.content_id) is not None
    assert view.extents == coded.catalog.contents.extents(small_node.content_id)
    assert view.locators == coded.catalog.locators.get(e.chunk_hash for e in view.extents)
    assert coded.content_view(big_node.content_id, big_node.size) is None
    pages: list[int] = []
    paged = coded.catalog.locators.get
    monkeypatch.setattr(
        coded.catalog.locators, "get", lambda hashes: pages.append(1) or paged(hashes)
    )
    with coded.reader(small_node.content_id, small_node.size, view=view) as reader:
        assert reader.readall() == small
    assert pages == []
    with coded.reader(big_node.content_id, big_node.size) as reader:
        assert reader.readall() == big
    assert pages


def test_an_empty_content_is_viewed(coded: FileStore, user: UserRecord) -> None:
    node = save(coded, user, "empty", b"")
    view = coded.content_view(node.content_id, node.size)
    assert view is not None and view.extents == [] and view.locators == {}
    assert view.checksums == coded.catalog.checksums.get(node.content_id)
    with coded.reader(node.content_id, 0, view=view) as reader:
        assert reader.readall() == b""


def test_old_raw_chunks_and_new_ones_mix(
    catalog: Catalog, files: FileStore, coded: FileStore, user: UserRecord
) -> None:
    old = text(60 * KIB, seed=2)
    before = save(files, user, "old", old)  # a plain store, as before this release
    node = save(coded, user, "new", old + text(60 * KIB, seed=3))
    assert {loc.codec for loc in catalog.locators.get(hashes(coded, before)).values()} == {RAW}
    for done in (before, node):
        with coded.reader(done.content_id, done.size) as reader:
            assert reader.readall().startswith(old)


def test_a_corrupt_object_fails_the_read_and_fsck(
    coded: FileStore, vault: ChunkVault, user: UserRecord
) -> None:
    node = save(coded, user, "f", text(50 * KIB, seed=4))
    victim = hashes(coded, node)[1]
    key = vault.object_key(victim, coded.catalog.locators.get([victim])[victim])
    damaged = bytearray(vault.blobs.get(key))
    damaged[len(damaged) // 2] ^= 0x40
    vault.blobs.put(key, bytes(damaged))
    with pytest.raises(CorruptChunk), coded.reader(node.content_id, node.size) as reader:
        reader.readall()
    report = check_store(coded.catalog, vault.blobs, deep=True, vault=vault)
    assert report.corrupt == [victim]
    assert check_store(coded.catalog, vault.blobs, deep=False, vault=vault).ok


def test_gc_deletes_every_form_and_stale_ones(
    coded: FileStore, vault: ChunkVault, user: UserRecord
) -> None:
    kept = save(coded, user, "kept", text(40 * KIB, seed=5))
    gone = save(coded, user, "gone", text(40 * KIB, seed=6))
    stale_hash = hashes(coded, kept)[0]
    stale_key = chunk_key(stale_hash)  # a raw form a racing plain writer left
    vault.blobs.put(stale_key, b"whatever a plain writer put")
    coded.catalog.tree.delete(gone.id, "/gone")
    time.sleep(0.01)
    report = collect_garbage(coded.catalog, vault.blobs, grace=0, apply=True, vault=vault)
    assert report.chunks > 0 and report.orphans >= 1
    live = {
        vault.object_key(h, loc)
        for h, loc in coded.catalog.locators.get(hashes(coded, kept)).items()
    }
    assert {info.key for info in vault.blobs.iter_keys()} == live
    assert check_store(coded.catalog, vault.blobs, deep=True, vault=vault).ok
