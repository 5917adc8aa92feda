"""Garbage collection and fsck over a MemoryBlobStore, a SQLite catalog and a FileStore."""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from wsgidav.dav_error import DAVError

from davserver.cli.main import main
from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import CLAIM_BUSY, CLAIM_DEDUP, Catalog, NodeRecord, UserRecord
from providers.chunker import FastCDCChunker
from providers.dav import dav_errors
from providers.errors import ChunkGone, IntegrityError, LeaseHeld, LeaseLost
from providers.filestore import FileStore
from providers.gc import GC_LEASE, check_store, collect_garbage
from tests.support.saved import save

KIB = 1024
T = TypeVar("T")


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
    assert catalog.locators.get(k.rsplit("/", 1)[-1] for k in chunks) == {}
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
    # This condemn stands for a run that crashed before deleting the object: the next
    # run, once it holds the GC lease (nobody holds it here), finishes the row.
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


def test_deep_check_names_the_files_versions_and_trash_items_a_corrupt_chunk_damages(
    catalog: Catalog, blobs: MemoryBlobStore, files: FileStore, user: UserRecord
) -> None:
    old = random.Random(6).randbytes(40 * KIB)
    first = save(files, user, "f", old)
    assert first.content_id is not None
    bad = catalog.contents.extents(first.content_id)[1].chunk_hash
    save(files, user, "f", random.Random(7).randbytes(40 * KIB))  # `old` is now a version
    catalog.trash.put(save(files, user, "t", old).id, "/t", user.id)
    save(files, user, "now", old)
    original = blobs.get(chunk_key(bad))
    blobs.put(chunk_key(bad), original[:-1] + bytes([original[-1] ^ 1]))

    assert check_store(catalog, blobs, deep=False).ok  # the size is right
    report = check_store(catalog, blobs, deep=True)
    assert report.corrupt == [bad] and not report.ok
    named = [use.describe() for use in report.affected[bad]]
    assert named == [
        f"{user.name}:/f (an old version)",
        f"{user.name}:/now",
        f"{user.name}:/t (in the trash)",
    ]


class StallingBlobs(MemoryBlobStore):
    """A blob store whose next `delete` first runs `stall` (GC run A pausing there)."""

    def __init__(self) -> None:
        super().__init__()
        self.stall: Callable[[str], None] | None = None

    def delete(self, key: str) -> None:
        stall, self.stall = self.stall, None
        if stall is not None:
            stall(key)
        super().delete(key)


def orphan(blobs: MemoryBlobStore, data: bytes = b"crash leftover") -> str:
    key = chunk_key(hashlib.sha256(data).hexdigest())
    blobs.put(key, data)
    return key


def test_second_run_is_refused_while_the_lease_is_held(
    catalog: Catalog, blobs: MemoryBlobStore
) -> None:
    key = orphan(blobs)
    other = catalog.leases.acquire(GC_LEASE, "host-a/41/cafe", 600)
    assert other.holder == "host-a/41/cafe"
    with pytest.raises(LeaseHeld, match=r"another gc is running \(holder host-a/41/cafe, lease"):
        gc(catalog, blobs, grace=0, apply=True)
    assert keys(blobs) == {key}
    assert catalog.leases.current(GC_LEASE) == other  # the refused run left it alone
    assert gc(catalog, blobs, grace=0, apply=False).orphans == 1  # dry runs take no lease

    catalog.leases.release(GC_LEASE, "host-a/41/cafe")
    assert gc(catalog, blobs, grace=0, apply=True).orphans == 1
    assert keys(blobs) == set()
    assert catalog.leases.current(GC_LEASE) is None  # released at the end


def test_expired_lease_is_taken_over(catalog: Catalog, blobs: MemoryBlobStore) -> None:
    orphan(blobs)
    catalog.leases.acquire(GC_LEASE, "crashed", 0.05)
    time.sleep(0.1)
    assert gc(catalog, blobs, grace=0, apply=True).orphans == 1
    # The crashed holder, were it to wake up, finds its lease gone and must stop.
    assert catalog.leases.renew(GC_LEASE, "crashed", 600) is None


def test_run_that_lost_its_lease_stops(catalog: Catalog, blobs: MemoryBlobStore) -> None:
    key = orphan(blobs)

    def overtaken(items: Sequence[T], label: str) -> Iterable[T]:
        time.sleep(0.1)  # this run stalls past its lease; another run takes it over
        assert catalog.leases.acquire(GC_LEASE, "run-b", 600).holder == "run-b"
        return items

    time.sleep(0.01)
    with pytest.raises(LeaseLost):
        collect_garbage(
            catalog, blobs, grace=0, apply=True, progress=overtaken, lease_ttl=0.05
        )  # fmt: skip
    assert keys(blobs) == {key}  # stopped before condemning or deleting anything
    assert catalog.contents.deleting() == []
    assert catalog.leases.current(GC_LEASE).holder == "run-b"  # type: ignore[union-attr]


def test_overlapping_runs_cannot_lose_a_committed_chunk(catalog: Catalog, user: UserRecord) -> None:
    """The replayed race: run A condemns X and stalls before deleting its object; run B
    used to finish X at once (object and row), a writer then stored and committed X
    again, and A's delete removed it under the committed file."""
    blobs = StallingBlobs()
    files = FileStore(catalog, blobs, FastCDCChunker(1 * KIB, 4 * KIB, 16 * KIB), workers=2)
    data = random.Random(6).randbytes(8 * KIB)
    node = save(files, user, "f", data)
    catalog.tree.delete(node.id, "/f")
    stalled: list[str] = []

    def run_b_and_a_writer(key: str) -> None:
        digest = key.rsplit("/", 1)[-1]
        assert [c.hash for c in catalog.contents.deleting()] == [digest]  # A condemned X
        with pytest.raises(LeaseHeld):
            collect_garbage(catalog, blobs, grace=0, apply=True)  # run B
        assert key in keys(blobs) and set(catalog.locators.get([digest])) == {digest}
        size = len(blobs.get(key))
        assert catalog.contents.claim(digest, size) == CLAIM_BUSY  # the writer must wait
        stalled.append(digest)

    blobs.stall = run_b_and_a_writer
    report = gc(catalog, blobs, grace=0, apply=True)  # run A
    assert stalled and report.chunks >= 1 and keys(blobs) == set()

    again = save(files, user, "again", data)  # the writer's retry uploads X afresh
    files.close()
    assert check_store(catalog, blobs, deep=True).ok
    assert chunk_keys(files, again) <= keys(blobs)


def test_commit_of_a_collected_chunk_is_a_503(
    catalog: Catalog, blobs: MemoryBlobStore, files: FileStore, user: UserRecord
) -> None:
    data = random.Random(7).randbytes(20 * KIB)
    writer = files.writer()
    writer.writelines([data])
    content = writer.finish()
    assert gc(catalog, blobs, grace=0, apply=True).chunks > 0  # a grace shorter than the upload

    @dav_errors
    def commit() -> NodeRecord:
        node, _ = catalog.contents.commit_file(
            user.home_id, "f", user.id, content,
            mtime=0.0, content_type=None, path="/f", author_id=None,
        )  # fmt: skip
        return node

    with pytest.raises(DAVError) as refused:
        commit()
    assert refused.value.value == 503 and isinstance(refused.value.__cause__, ChunkGone)
    assert catalog.tree.children(user.home_id) == []
    save(files, user, "f", data)  # the client's retry uploads the chunks again
    assert check_store(catalog, blobs, deep=True).ok

    @dav_errors
    def corrupt() -> None:
        raise IntegrityError("chunk has the wrong size")

    with pytest.raises(DAVError) as broken:
        corrupt()
    assert broken.value.value == 500


def test_cli_gc_refused_while_another_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("DAVSERVER_")]:
        monkeypatch.delenv(name)
    other = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    other.create_schema()
    other.leases.acquire(GC_LEASE, "host-b/7/beef", 600)
    other.close()
    assert main(["gc", "--apply", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("davserver: error: another gc is running (holder")
    assert "host-b/7/beef" in err[0] and "lease until" in err[0]
    assert main(["gc", "--data-dir", str(tmp_path)]) == 0  # a dry run is not refused
