"""Garbage collection and fsck over a MemoryBlobStore, a SQLite catalog and a FileStore."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator

import pytest

from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import CLAIM_DEDUP, Catalog, NodeRecord, UserRecord
from providers.chunker import FastCDCChunker
from providers.filestore import FileStore
from providers.gc import check_store, collect_garbage

KIB = 1024


@pytest.fixture
def files(catalog: Catalog, blobs: MemoryBlobStore) -> Iterator[FileStore]:
    store = FileStore(catalog, blobs, FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB), workers=4)
    yield store
    store.close()


@pytest.fixture
def user(catalog: Catalog) -> UserRecord:
    return catalog.users.create("u", "h")


def save(files: FileStore, user: UserRecord, name: str, data: bytes) -> NodeRecord:
    writer = files.writer()
    writer.writelines([data])
    node, _ = files.catalog.contents.commit_file(
        user.home_id, name, user.id, writer.finish(),
        mtime=0.0, content_type=None, path=name, author_id=None,
    )  # fmt: skip
    return node


def keys(blobs: MemoryBlobStore) -> set[str]:
    return {info.key for info in blobs.iter_keys()}


def chunk_keys(files: FileStore, node: NodeRecord) -> set[str]:
    assert node.content_id is not None
    return {chunk_key(e.chunk_hash) for e in files.catalog.contents.extents(node.content_id)}


def gc(catalog: Catalog, blobs: MemoryBlobStore, grace: float, apply: bool):  # type: ignore[no-untyped-def]
    time.sleep(0.01)  # let "now" move past the last touch / put
    return collect_garbage(catalog, blobs, grace=grace, apply=apply)


def test_deleted_file_is_collected_only_after_grace(
    catalog: Catalog, blobs: MemoryBlobStore, files: FileStore, user: UserRecord
) -> None:
    node = save(files, user, "f", random.Random(1).randbytes(60 * KIB))
    chunks = chunk_keys(files, node)
    assert keys(blobs) == chunks and len(chunks) > 3
    catalog.tree.delete(node.id, "/f")

    dry = gc(catalog, blobs, grace=3600, apply=False)
    assert (dry.contents, dry.chunks, dry.orphans, dry.freed_bytes) == (1, 0, 0, 0)
    # A dry run reports what an apply would delete, though it purges no content.
    dry = gc(catalog, blobs, grace=0, apply=False)
    assert (dry.contents, dry.chunks, dry.chunk_bytes) == (1, len(chunks), 60 * KIB)
    assert not dry.applied
    assert keys(blobs) == chunks

    report = gc(catalog, blobs, grace=3600, apply=True)
    assert (report.contents, report.chunks, report.orphans, report.freed_bytes) == (1, 0, 0, 0)
    assert keys(blobs) == chunks
    dry = gc(catalog, blobs, grace=0, apply=False)
    assert (dry.contents, dry.chunks) == (0, len(chunks))

    report = gc(catalog, blobs, grace=0, apply=True)
    assert (report.chunks, report.chunk_bytes, report.skipped) == (len(chunks), 60 * KIB, 0)
    assert keys(blobs) == set()
    assert catalog.contents.known([k.rsplit("/", 1)[-1] for k in chunks]) == set()
    assert gc(catalog, blobs, grace=0, apply=True).freed_bytes == 0


def test_referenced_chunks_are_never_deleted(
    catalog: Catalog, blobs: MemoryBlobStore, files: FileStore, user: UserRecord
) -> None:
    shared = random.Random(2).randbytes(40 * KIB)
    kept = save(files, user, "kept", shared)
    gone = save(files, user, "gone", shared + random.Random(3).randbytes(40 * KIB))
    kept_chunks = chunk_keys(files, kept)
    catalog.tree.delete(gone.id, "/gone")
    report = gc(catalog, blobs, grace=0, apply=True)
    assert report.chunks > 0
    assert keys(blobs) == kept_chunks
    assert report.contents == 1
    assert check_store(catalog, blobs, deep=True).ok
    with files.reader(kept.content_id, kept.size) as reader:
        assert reader.readall() == shared


def test_orphan_objects(catalog: Catalog, blobs: MemoryBlobStore) -> None:
    data = b"left by a crashed upload"
    key = chunk_key(hashlib.sha256(data).hexdigest())
    blobs.put(key, data)
    blobs.put("other/not-a-chunk", b"ignored")

    for apply in (False, True):
        report = gc(catalog, blobs, grace=3600, apply=apply)
        assert report.orphans == 0
        assert key in keys(blobs)

    dry = gc(catalog, blobs, grace=0, apply=False)
    assert (dry.orphans, dry.orphan_bytes) == (1, len(data))
    assert key in keys(blobs)

    report = gc(catalog, blobs, grace=0, apply=True)
    assert (report.orphans, report.orphan_bytes) == (1, len(data))
    assert keys(blobs) == {"other/not-a-chunk"}
    assert catalog.contents.deleting() == []


def test_chunk_touched_after_listing_survives(
    catalog: Catalog, blobs: MemoryBlobStore, files: FileStore, user: UserRecord
) -> None:
    node = save(files, user, "f", random.Random(4).randbytes(30 * KIB))
    chunks = chunk_keys(files, node)
    catalog.tree.delete(node.id, "/f")
    assert catalog.contents.purge_unreferenced_contents(dry_run=False) == 1  # GC's first step
    time.sleep(0.01)
    cutoff = time.time()
    candidates = catalog.contents.collectable(cutoff)
    assert {chunk_key(c.hash) for c in candidates} == chunks
    victim = candidates[0]
    assert catalog.contents.claim(victim.hash, victim.size) == CLAIM_DEDUP  # a writer wins
    assert not catalog.contents.condemn(victim.hash, cutoff)
    assert catalog.contents.condemn(candidates[1].hash, cutoff)

    report = collect_garbage(catalog, blobs, grace=3600, apply=True)
    assert report.chunks == 0
    assert keys(blobs) == chunks - {chunk_key(candidates[1].hash)}  # the condemned one went
    assert catalog.contents.deleting() == []


def test_check_store(
    catalog: Catalog, blobs: MemoryBlobStore, files: FileStore, user: UserRecord
) -> None:
    node = save(files, user, "f", random.Random(5).randbytes(40 * KIB))
    assert node.content_id is not None
    extents = catalog.contents.extents(node.content_id)
    assert len(extents) >= 3
    report = check_store(catalog, blobs, deep=False)
    assert report.ok and report.checked == len({e.chunk_hash for e in extents})
    assert check_store(catalog, blobs, deep=True).ok

    missing, corrupt, short = (e.chunk_hash for e in extents[:3])
    blobs.delete(chunk_key(missing))
    original = blobs.get(chunk_key(corrupt))
    blobs.put(chunk_key(corrupt), bytes(len(original)))  # same size, wrong bytes
    blobs.put(chunk_key(short), blobs.get(chunk_key(short))[:-1])

    shallow = check_store(catalog, blobs, deep=False)
    assert (shallow.missing, shallow.wrong_size, shallow.corrupt) == ([missing], [short], [])
    assert not shallow.ok
    deep = check_store(catalog, blobs, deep=True)
    assert deep.missing == [missing]
    assert sorted(deep.corrupt) == sorted([corrupt, short])
