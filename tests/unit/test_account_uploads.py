"""Resumable uploads of accounts in the engine (`providers.operations.uploads`): only
the account finds its uploads, an overwrite keeps a version, deferred length, the
checksum and mtime metadata, concatenation, and expiry with a short `upload_expiry`
after which GC frees the chunks."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, UserRecord
from providers.catalog.uploads import UploadRecord
from providers.checksums import checksums_of
from providers.errors import (
    Conflict,
    InvalidUpload,
    NotFound,
    QuotaExceeded,
    UploadChecksumMismatch,
)
from providers.filestore import FileStore
from providers.gc import collect_garbage
from providers.operations import Actor, Located, Operations
from providers.operations.upload_hashes import UploadHashes
from providers.operations.uploads import ResumableUploads

KIB = 1024


@pytest.fixture
def engine(ops: Operations) -> ResumableUploads:
    return ResumableUploads(ops)


def read(ops: Operations, actor: Actor, name: str) -> bytes:
    found = ops.view(actor).locate([name])
    assert found is not None and found.node is not None
    return ops.files.reader(found.node.content_id, found.node.size).readall()


def send(engine: ResumableUploads, actor: Actor, upload: UploadRecord, data: bytes) -> UploadRecord:
    """`data` as the next part (not the last); the upload as it is after."""
    engine.write(actor, upload, [data])
    current = engine.get(actor, upload.id)
    assert current is not None
    return current


def test_an_upload_is_found_only_by_its_account(
    engine: ResumableUploads, actor: Actor, home: Located, alice: UserRecord
) -> None:
    upload = engine.create(actor, home, "a.bin", 10)
    assert engine.get(Actor(alice), upload.id) is None
    assert not engine.cancel(Actor(alice), upload.id)
    assert engine.get(actor, upload.id) is not None
    assert engine.cancel(actor, upload.id)
    assert engine.get(actor, upload.id) is None


def test_an_overwrite_keeps_the_old_content_as_a_version(
    engine: ResumableUploads, ops: Operations, actor: Actor, home: Located, catalog: Catalog
) -> None:
    first = os.urandom(30 * KIB)
    engine.write(actor, engine.create(actor, home, "a.bin", len(first)), [first])
    second = os.urandom(50 * KIB)
    upload = send(engine, actor, engine.create(actor, home, "a.bin", len(second)), second[:20_000])
    result = engine.write(actor, upload, [second[20_000:]])
    assert result.node is not None and result.node.name == "a.bin"
    assert read(ops, actor, "a.bin") == second
    sizes = [v.size for v in catalog.versions.history(result.node.id)]
    assert sorted(sizes) == sorted([len(first), len(second)])


def test_a_deferred_length_is_declared_by_a_later_part(
    engine: ResumableUploads, ops: Operations, actor: Actor, home: Located
) -> None:
    data = os.urandom(40 * KIB)
    upload = engine.create(actor, home, "later.bin", None)
    assert upload.length is None
    upload = send(engine, actor, upload, data[:10_000])
    with pytest.raises(Conflict):
        engine.declare_length(actor, upload, 5)  # shorter than what is stored
    upload = engine.declare_length(actor, upload, len(data))
    assert engine.write(actor, upload, [data[10_000:]]).node is not None
    assert read(ops, actor, "later.bin") == data


def test_checksum_and_mtime_metadata(
    engine: ResumableUploads, ops: Operations, actor: Actor, home: Located
) -> None:
    data = os.urandom(20 * KIB)
    wrong = engine.create(actor, home, "c.bin", len(data), checksum=("sha256", "0" * 64))
    with pytest.raises(UploadChecksumMismatch):
        engine.write(actor, wrong, [data])
    assert ops.view(actor).locate(["c.bin"]) is None  # nothing committed
    right = ("md5", hashlib.md5(data).hexdigest())
    upload = engine.create(actor, home, "c.bin", len(data), checksum=right, mtime=1234.5)
    node = engine.write(actor, upload, [data]).node
    assert node is not None and node.mtime == 1234.5


def test_a_piece_unlike_its_checksum_records_nothing(
    engine: ResumableUploads, actor: Actor, home: Located
) -> None:
    upload = engine.create(actor, home, "p.bin", 100)
    with pytest.raises(UploadChecksumMismatch):
        engine.write(actor, upload, [b"x" * 50], piece_checksum=("sha1", "0" * 40))
    current = engine.get(actor, upload.id)
    assert current is not None and current.offset == 0
    piece = ("sha1", hashlib.sha1(b"x" * 50).hexdigest())
    assert engine.write(actor, current, [b"x" * 50], piece_checksum=piece).upload.offset == 50


def test_parts_received_here_are_checksummed_without_reading_them_back(
    ops: Operations, actor: Actor, home: Located
) -> None:
    engine = ResumableUploads(ops, UploadHashes())
    data = os.urandom(300 * KIB)
    upload = engine.create(actor, home, "h.bin", len(data))
    upload = send(engine, actor, upload, data[: 100 * KIB])
    upload = send(engine, actor, upload, data[100 * KIB : 200 * KIB])
    for extent in ops.catalog.uploads.extents(upload.id):  # a read-back would now fail
        ops.files.blobs.delete(chunk_key(extent.chunk_hash, ops.files.key_prefix))
    piece = ("sha1", hashlib.sha1(data[200 * KIB :]).hexdigest())
    node = engine.write(actor, upload, [data[200 * KIB :]], piece_checksum=piece).node
    assert node is not None and node.content_id is not None
    assert ops.catalog.checksums.get(node.content_id) == checksums_of([data])


def test_an_upload_continued_by_another_process_is_read_back(
    ops: Operations, actor: Actor, home: Located
) -> None:
    data = os.urandom(200 * KIB)
    engine_a = ResumableUploads(ops, UploadHashes())
    upload = send(engine_a, actor, engine_a.create(actor, home, "r.bin", len(data)), data[:70_000])
    node = ResumableUploads(ops, UploadHashes()).write(actor, upload, [data[70_000:]]).node
    assert node is not None and node.content_id is not None
    assert ops.catalog.checksums.get(node.content_id) == checksums_of([data])
    assert read(ops, actor, "r.bin") == data


def test_partials_join_into_one_file_and_are_consumed(
    engine: ResumableUploads, ops: Operations, actor: Actor, home: Located, alice: UserRecord
) -> None:
    pieces = [os.urandom(30 * KIB + n) for n in range(3)]
    ids = []
    for piece in pieces:
        partial = engine.create(actor, home, "", len(piece), partial=True)
        done = engine.write(actor, partial, [piece])
        assert done.node is None and done.upload.finished
        ids.append(partial.id)
    unfinished = engine.create(actor, home, "", 10, partial=True)
    with pytest.raises(InvalidUpload):
        engine.concatenate(actor, home, "joined.bin", [ids[0], unfinished.id])
    with pytest.raises(NotFound):
        engine.concatenate(Actor(alice), home, "joined.bin", ids)  # not hers
    result = engine.concatenate(actor, home, "joined.bin", ids)
    assert result.node is not None and result.upload.offset == sum(map(len, pieces))
    assert read(ops, actor, "joined.bin") == b"".join(pieces)
    assert all(engine.get(actor, i) is None for i in ids)


def test_quota_is_checked_at_creation(
    engine: ResumableUploads, home: Located, catalog: Catalog, user: UserRecord
) -> None:
    catalog.users.set_quota(user.name, 1000)
    fresh = catalog.users.by_id(user.id)
    assert fresh is not None
    with pytest.raises(QuotaExceeded):
        engine.create(Actor(fresh), home, "big.bin", 2000)
    assert engine.create(Actor(fresh), home, "small.bin", 900).length == 900


def test_a_folder_of_that_name_is_a_conflict(
    engine: ResumableUploads, ops: Operations, actor: Actor, home: Located
) -> None:
    ops.mkdir(actor, home, "dir")
    with pytest.raises(Conflict):
        engine.create(actor, home, "dir", 10)


def test_idle_uploads_expire_and_gc_frees_their_chunks(
    engine: ResumableUploads, actor: Actor, home: Located, catalog: Catalog,
    blobs: MemoryBlobStore, files: FileStore,
) -> None:  # fmt: skip
    catalog.uploads.ttl = 0.5  # a short upload_expiry
    upload = send(
        engine, actor, engine.create(actor, home, "idle.bin", 80 * KIB), os.urandom(40 * KIB)
    )
    assert catalog.uploads.extents(upload.id)
    assert collect_garbage(catalog, blobs, grace=0, apply=True).uploads == 0
    assert any(True for _ in blobs.iter_keys())
    time.sleep(0.6)
    assert engine.get(actor, upload.id) is None
    report = collect_garbage(catalog, blobs, grace=0, apply=True)
    assert report.uploads == 1
    assert not any(True for _ in blobs.iter_keys())
