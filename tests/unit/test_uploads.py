"""Resumable uploads in the engine (`providers.operations.uploads`, `providers.catalog.uploads`):
parts, the commit with automatic renaming, quotas, GC safety and expiry."""

from __future__ import annotations

import hashlib
import os

import pytest

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog, NodeRecord, UserRecord
from providers.catalog.uploads import UploadOwner, UploadRecord
from providers.errors import ChunkGone, Conflict, QuotaExceeded
from providers.filestore import FileStore, content_digest
from providers.gc import check_store, collect_garbage
from providers.operations import Actor, Located, Operations
from providers.operations.uploads import PartResult, ResumableUploads

KIB = 1024


@pytest.fixture
def folder(catalog: Catalog, user: UserRecord) -> NodeRecord:
    return catalog.tree.mkdir(user.home_id, "inbox", user.id, "/inbox")


@pytest.fixture
def actor(catalog: Catalog, user: UserRecord, folder: NodeRecord) -> Actor:
    """An upload link to the inbox, as the operations layer sees requests through it."""
    return Actor(user, catalog.links.create(user.name, ["inbox"], "upload"))


@pytest.fixture
def root(ops: Operations, actor: Actor) -> Located:
    located = ops.view(actor).locate([])
    assert located is not None
    return located


@pytest.fixture
def uploads(ops: Operations, actor: Actor) -> Drop:
    return Drop(ResumableUploads(ops), actor)


class Drop:
    """The uploads of one link, as its TUS door calls them: the actor is made afresh
    for every call, as for every request (the owner's quota as it is now)."""

    def __init__(self, uploads: ResumableUploads, actor: Actor) -> None:
        self.engine = uploads
        assert actor.link is not None
        self._user_id, self._link_id = actor.user.id, actor.link.id

    @property
    def actor(self) -> Actor:
        catalog = self.engine.ops.catalog
        user, link = catalog.users.by_id(self._user_id), catalog.links.get(self._link_id)
        assert user is not None and link is not None
        return Actor(user, link)

    def create(self, root: Located, subfolders: list[str], name: str, length: int) -> UploadRecord:
        return self.engine.create(self.actor, root, name, length, subfolders=subfolders)

    def write(self, upload: UploadRecord, blocks: list[bytes]) -> PartResult:
        return self.engine.write(self.actor, upload, blocks)

    def get(self, upload_id: str) -> UploadRecord | None:
        return self.engine.get(self.actor, upload_id)

    def cancel(self, upload_id: str) -> bool:
        return self.engine.cancel(self.actor, upload_id)


def send(uploads: Drop, upload: UploadRecord, data: bytes) -> UploadRecord:
    """Write `data` as the next part; return the upload as it is afterwards."""
    result = uploads.write(upload, [data])
    current = uploads.get(upload.id)
    assert current is not None
    return current if result.node is None else result.upload


def upload_file(uploads: Drop, root: Located, name: str, data: bytes, parts: int = 1) -> NodeRecord:
    upload = uploads.create(root, [], name, len(data))
    step = max(1, -(-len(data) // parts))
    for start in range(0, max(len(data) - step, 0), step):
        upload = send(uploads, upload, data[start : start + step])
    result = uploads.write(upload, [data[upload.offset :]])
    assert result.node is not None
    return result.node


def read(files: FileStore, node: NodeRecord) -> bytes:
    return files.reader(node.content_id, node.size).readall()


def test_parts_make_one_file_with_the_digest_of_its_chunks(
    uploads: Drop, files: FileStore, folder: NodeRecord, root: Located, catalog: Catalog
) -> None:
    data = os.urandom(200 * KIB)
    upload = uploads.create(root, [], "big.bin", len(data))
    upload = send(uploads, upload, data[: 70 * KIB])
    upload = send(uploads, upload, data[70 * KIB : 150 * KIB])
    assert upload.offset == 150 * KIB
    result = uploads.write(upload, [data[150 * KIB :]])
    node = result.node
    assert node is not None and node.name == "big.bin" and node.parent_id == folder.id
    assert read(files, node) == data
    assert node.content_id is not None
    extents = catalog.contents.extents(node.content_id)
    assert node.digest == content_digest(e.chunk_hash for e in extents)
    assert [e.offset for e in extents] == sorted(e.offset for e in extents)
    receipt = uploads.get(upload.id)
    assert receipt is not None and receipt.finished and receipt.offset == len(data)
    assert receipt.finished_name == "big.bin"
    assert catalog.uploads.extents(upload.id) == []


def test_empty_upload_commits_an_empty_file(
    uploads: Drop, files: FileStore, folder: NodeRecord, root: Located
) -> None:
    upload = uploads.create(root, [], "empty.txt", 0)
    node = uploads.write(upload, []).node
    assert node is not None and node.size == 0 and read(files, node) == b""


def test_a_stale_offset_conflicts_and_a_finished_upload_takes_no_more(
    uploads: Drop, folder: NodeRecord, root: Located
) -> None:
    upload = uploads.create(root, [], "a.txt", 10)
    moved = send(uploads, upload, b"12345")
    with pytest.raises(Conflict):
        uploads.write(upload, [b"abcde"])  # still says offset 0
    done = uploads.write(moved, [b"67890"])
    assert done.node is not None
    with pytest.raises(Conflict):
        uploads.write(moved, [b"67890"])  # the same last part again


def test_a_short_part_advances_by_what_arrived(
    uploads: Drop, folder: NodeRecord, root: Located
) -> None:
    upload = uploads.create(root, [], "a.txt", 100)
    upload = send(uploads, upload, b"x" * 30)
    assert upload.offset == 30 and not upload.finished
    assert uploads.write(upload, []).node is None  # an empty part: nothing


def test_clashing_names_are_numbered_never_replaced(
    uploads: Drop, files: FileStore, folder: NodeRecord, root: Located, catalog: Catalog
) -> None:
    first = upload_file(uploads, root, "report.pdf", b"one")
    second = upload_file(uploads, root, "report.pdf", b"two", parts=2)
    third = upload_file(uploads, root, "Report.pdf", b"other case: another name")
    fourth = upload_file(uploads, root, "report.pdf", b"four")
    assert [first.name, second.name, third.name, fourth.name] == [
        "report.pdf", "report (2).pdf", "Report.pdf", "report (3).pdf",
    ]  # fmt: skip
    assert [read(files, n) for n in (first, second, fourth)] == [b"one", b"two", b"four"]
    catalog.tree.mkdir(folder.id, ".profile", folder.owner_id, "/inbox/.profile")
    assert upload_file(uploads, root, ".profile", b"x").name == ".profile (2)"
    long_name = "é" * 125 + ".txt"  # 254 bytes: the stem is cut to fit " (2)"
    upload_file(uploads, root, long_name, b"a")
    renamed = upload_file(uploads, root, long_name, b"b").name
    assert renamed.endswith(" (2).txt") and len(renamed.encode()) <= 255


def test_subfolders_are_created_at_the_commit(
    uploads: Drop, files: FileStore, folder: NodeRecord, root: Located, catalog: Catalog
) -> None:
    upload = uploads.create(root, ["photos", "2024"], "a.jpg", 3)
    assert catalog.tree.resolve(folder.id, ["photos"]) is None  # nothing before the commit
    node = uploads.write(upload, [b"abc"]).node
    assert node is not None
    assert catalog.tree.resolve(folder.id, ["photos", "2024", "a.jpg"]) == node
    upload_file(uploads, root, "notes", b"a file")
    blocked = uploads.create(root, ["notes"], "b.txt", 1)
    with pytest.raises(Conflict):
        uploads.write(blocked, [b"b"])


def test_quota_is_checked_at_creation_before_parts_and_at_the_commit(
    uploads: Drop, folder: NodeRecord, root: Located, catalog: Catalog, user: UserRecord
) -> None:
    catalog.users.set_quota("u", 100)
    with pytest.raises(QuotaExceeded):
        uploads.create(root, [], "big.bin", 101)
    upload = uploads.create(root, [], "fits.bin", 80)
    upload = send(uploads, upload, b"a" * 40)
    catalog.users.set_quota("u", 50)
    with pytest.raises(QuotaExceeded):
        uploads.write(upload, [b"b" * 40])
    current = uploads.get(upload.id)
    assert current is not None and current.offset == 40  # the parts are kept
    catalog.users.set_quota("u", 100)
    assert uploads.write(current, [b"b" * 40]).node is not None
    refreshed = catalog.users.by_id(user.id)
    assert refreshed is not None and refreshed.used_bytes == 80


def test_uploads_are_bound_to_their_link(
    uploads: Drop, root: Located, ops: Operations, catalog: Catalog, user: UserRecord
) -> None:
    upload = uploads.create(root, [], "a.txt", 5)
    other = Drop(uploads.engine, Actor(user, catalog.links.create(user.name, ["inbox"], "edit")))
    assert other.get(upload.id) is None
    assert not other.cancel(upload.id)
    assert uploads.get(upload.id) is not None
    assert uploads.cancel(upload.id)
    assert uploads.get(upload.id) is None


def _part_keys(catalog: Catalog, upload: UploadRecord) -> set[str]:
    return {e.chunk_hash for e in catalog.uploads.extents(upload.id)}


def _stored(blobs: MemoryBlobStore) -> set[str]:
    return {info.key.rsplit("/", 1)[-1] for info in blobs.iter_keys()}


def test_gc_keeps_the_chunks_of_an_unfinished_upload(
    uploads: Drop, files: FileStore, folder: NodeRecord, root: Located, catalog: Catalog,
    blobs: MemoryBlobStore,
) -> None:  # fmt: skip
    data = os.urandom(120 * KIB)
    upload = uploads.create(root, [], "a.bin", len(data))
    upload = send(uploads, upload, data[: 60 * KIB])
    parts = _part_keys(catalog, upload)
    assert parts and parts <= _stored(blobs)
    report = collect_garbage(catalog, blobs, grace=0, apply=True)
    assert report.chunks == 0 and report.uploads == 0
    assert parts <= _stored(blobs)
    assert {h for h, _ in catalog.contents.referenced()} >= parts  # fsck checks them
    assert check_store(catalog, blobs, deep=True).ok
    node = uploads.write(upload, [data[60 * KIB :]]).node
    assert node is not None and read(files, node) == data


def test_a_part_whose_chunks_gc_took_is_refused_and_can_be_sent_again(
    uploads: Drop, files: FileStore, folder: NodeRecord, root: Located, catalog: Catalog,
    blobs: MemoryBlobStore,
) -> None:  # fmt: skip
    data = os.urandom(40 * KIB)
    upload = uploads.create(root, [], "a.bin", len(data) * 2)
    writer = files.writer()
    writer.writelines([data])
    part = writer.finish()  # stored, not yet recorded: GC with no grace may take it
    collect_garbage(catalog, blobs, grace=0, apply=True)
    with pytest.raises(ChunkGone):
        catalog.uploads.append(upload, part.extents, part.size)
    current = uploads.get(upload.id)
    assert current is not None and current.offset == 0
    assert send(uploads, current, data).offset == len(data)


def test_abandoned_uploads_expire_then_their_chunks_are_garbage(
    uploads: Drop, folder: NodeRecord, root: Located, catalog: Catalog, blobs: MemoryBlobStore
) -> None:
    upload = uploads.create(root, [], "a.bin", 100 * KIB)
    upload = send(uploads, upload, os.urandom(50 * KIB))
    assert _stored(blobs)
    dry = collect_garbage(catalog, blobs, grace=0, apply=False, upload_ttl=0)
    assert dry.uploads == 1 and uploads.get(upload.id) is not None
    report = collect_garbage(catalog, blobs, grace=0, apply=True, upload_ttl=0)
    assert report.uploads == 1 and report.chunks > 0
    assert uploads.get(upload.id) is None and _stored(blobs) == set()


def test_a_cancelled_upload_leaves_garbage_only(
    uploads: Drop, folder: NodeRecord, root: Located, catalog: Catalog, blobs: MemoryBlobStore
) -> None:
    upload = uploads.create(root, [], "a.bin", 100 * KIB)
    send(uploads, upload, os.urandom(50 * KIB))
    assert uploads.cancel(upload.id)
    collect_garbage(catalog, blobs, grace=0, apply=True)
    assert _stored(blobs) == set()
    assert catalog.tree.resolve(folder.id, ["a.bin"]) is None


def test_an_idle_upload_is_gone_before_gc_runs(
    catalog: Catalog, folder: NodeRecord, actor: Actor
) -> None:
    assert actor.link is not None
    owner = UploadOwner(link_id=actor.link.id)
    upload = catalog.uploads.create(owner, folder.id, [], "a.txt", 5)
    catalog.uploads.ttl = 0.0
    assert catalog.uploads.get(upload.id, owner) is None


@pytest.mark.parametrize("parts", [1, 3])
def test_an_upload_is_checksummed_whole_in_one_part_or_resumed(
    uploads: Drop, root: Located, catalog: Catalog, parts: int
) -> None:
    data = os.urandom(150 * KIB + 7)
    node = upload_file(uploads, root, f"sums{parts}.bin", data, parts=parts)
    stored = catalog.checksums.get(node.content_id)
    assert stored is not None
    assert stored.sha1 == hashlib.sha1(data).hexdigest()
    assert stored.md5 == hashlib.md5(data).hexdigest()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
