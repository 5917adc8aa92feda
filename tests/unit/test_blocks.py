"""The delta API's engine over a SQLite catalog and a memory blob store
(`providers.operations.blocks`, `providers.catalog.blocks`): presence is per caller,
staged blocks are kept by GC until they expire, a commit builds the file from blocks
the caller may use and goes through the PUT's checks."""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, UserRecord
from providers.errors import BadBlocks, ChecksumMismatch, PreconditionFailed
from providers.filestore import FileStore
from providers.gc import collect_garbage
from providers.operations import Actor, Operations
from providers.operations.blocks import BlockTransfers

KIB = 1024


def blocks_of(files: FileStore, data: bytes) -> list[bytes]:
    return [bytes(c) for c in files.chunker.split([data])]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def engine(ops: Operations) -> BlockTransfers:
    return BlockTransfers(ops)


def push(engine: BlockTransfers, user: UserRecord, path: str, data: bytes) -> list[str]:
    """Check, send what is missing, commit; return the hashes that were sent."""
    actor = Actor(user)
    cut = blocks_of(engine.ops.files, data)
    missing = engine.check(actor, [(sha(b), len(b)) for b in cut]).missing
    by_hash = {sha(b): b for b in cut}
    for chunk_hash in missing:
        engine.put_block(actor, chunk_hash, by_hash[chunk_hash])
    engine.commit(actor, path, [sha(b) for b in cut], len(data))
    return missing


def read(ops: Operations, user: UserRecord, path: str) -> bytes:
    node = ops.locate_path(Actor(user), path).node
    assert node is not None
    return ops.files.reader(node.content_id, node.size).readall()


def test_an_edit_sends_only_the_changed_blocks(
    engine: BlockTransfers, ops: Operations, alice: UserRecord
) -> None:
    data = random.Random(1).randbytes(200 * KIB)
    first = push(engine, alice, "/f.bin", data)
    assert len(first) == len(set(first)) > 10
    edited = data[: 100 * KIB] + random.Random(2).randbytes(4 * KIB) + data[104 * KIB :]
    second = push(engine, alice, "/f.bin", edited)
    assert 0 < len(second) <= 4
    assert read(ops, alice, "/f.bin") == edited
    with pytest.raises(PreconditionFailed):
        engine.commit(Actor(alice), "/f.bin", [], 0, if_match=sha(b"not the etag"))


def test_presence_is_per_caller(
    engine: BlockTransfers, catalog: Catalog, alice: UserRecord, bob: UserRecord
) -> None:
    data = random.Random(3).randbytes(50 * KIB)
    push(engine, alice, "/secret.bin", data)
    cut = blocks_of(engine.ops.files, data)
    listed = [(sha(b), len(b)) for b in cut]
    assert engine.check(Actor(bob), listed).missing == [h for h, _ in listed]
    with pytest.raises(BadBlocks) as refused:
        engine.commit(Actor(bob), "/mine.bin", [h for h, _ in listed], len(data))
    assert set(refused.value.missing) == {h for h, _ in listed}
    with pytest.raises(ChecksumMismatch):
        engine.put_block(Actor(bob), listed[0][0], b"other bytes")
    catalog.grants.grant("alice", ["secret.bin"], "bob", "r")
    assert engine.check(Actor(bob), listed).missing == []  # shared with him now


def test_gc_keeps_staged_blocks_until_they_expire(
    engine: BlockTransfers, catalog: Catalog, blobs: MemoryBlobStore, alice: UserRecord
) -> None:
    block = random.Random(4).randbytes(3 * KIB)
    engine.put_block(Actor(alice), sha(block), block)
    key = chunk_key(sha(block))
    time.sleep(0.01)
    report = collect_garbage(catalog, blobs, grace=0, apply=True)
    assert report.chunks == 0 and blobs.exists(key)
    assert engine.check(Actor(alice), [(sha(block), len(block))]).missing == []
    time.sleep(0.01)
    report = collect_garbage(catalog, blobs, grace=0, apply=True, upload_ttl=0)
    assert report.staged == 1 and report.chunks == 1 and not blobs.exists(key)
    assert engine.check(Actor(alice), [(sha(block), len(block))]).missing == [sha(block)]


def test_old_versions_and_trash_keep_blocks_present_for_their_owner(
    engine: BlockTransfers, ops: Operations, alice: UserRecord
) -> None:
    first, second = random.Random(5).randbytes(30 * KIB), random.Random(6).randbytes(30 * KIB)
    push(engine, alice, "/v.bin", first)
    push(engine, alice, "/v.bin", second)  # `first` is an old version now
    push(engine, alice, "/t.bin", first + second)
    ops.delete(Actor(alice), ops.locate_path(Actor(alice), "/t.bin"))  # to the trash
    ops.delete(Actor(alice), ops.locate_path(Actor(alice), "/v.bin"))
    listed = [(sha(b), len(b)) for b in blocks_of(ops.files, first + second)]
    listed += [(sha(b), len(b)) for b in blocks_of(ops.files, first)]
    assert engine.check(Actor(alice), listed).missing == []
