"""Upload folders: the engine of Nextcloud/ownCloud chunked uploads, over the
resumable uploads' storage and the one commit of every write.

A client makes an upload folder (`open`), sends the file's pieces into it as
numbered chunks in any order (`write_chunk`), lists them to resume
(`chunks`), then has the server join them into a file at a path (`commit`) or drops
them (`cancel`). The folder and its chunks are rows of the catalog
(`providers.catalog.upload_folders`), so any instance takes the next step.

- Each chunk streams through a `FileWriter` (cut into blobs, hashed, stored with
  bounded memory, like a PUT body: design invariant 6) and is recorded only once its
  blobs are durable; a chunk sent again replaces the one of its name. A chunk whose
  body ends before its Content-Length is not recorded (`InvalidUpload`).
- The commit orders the chunks by `chunk_number` (the first number in the name:
  Nextcloud 3.7's zero-padded indexes, ownCloud 2.11's byte offsets, rclone's
  `start-end` ranges, newer Nextcloud's 1..10000 all sort right by it), joins their
  extents without copying a byte, checks the total length and the checksums the
  client announced (`InvalidUpload`, `ChecksumMismatch`: 400, nothing committed),
  and commits through `ContentWrites.commit_content` (rights, the WebDAV lock, quota
  with history expiry, a version when it replaces a file, one change-log entry, the
  event: design invariants 2, 5, 10, 12, 19), whose transaction also deletes the
  folder and its chunks (`UploadFolders.retiring`).
- Checksums (design invariant 18): a chunk that comes after every chunk received so
  far continues their hash state when this process received them
  (`providers.operations.upload_hashes`, keyed by the folder and the chunk ids in file
  order), so the usual in-order upload is never read twice; otherwise the commit
  reads the joined file back once.
- Quota: the whole length (or what is received plus this chunk) is checked against
  the caller's room at the folder's creation and before each chunk (507 before the
  bytes: hints, design invariant 10); the commit's charge, to the owner of the
  destination, is binding.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Mapping

from providers.catalog import NewContent, NodeRecord
from providers.catalog.upload_folders import ChunkRecord, UploadFolder
from providers.checksums import verify
from providers.errors import InvalidUpload, NotFound, QuotaExceeded
from providers.filestore import content_digest
from providers.operations.actor import Actor
from providers.operations.core import Operations
from providers.operations.upload_hashes import PROCESS_HASHES, UploadHashes
from providers.operations.uploads import ResumableUploads, read_back
from providers.operations.views import Located

MAX_CHUNKS = 10_000  # chunks per upload folder (Nextcloud's own limit)
MAX_TRANSFER = 255  # characters of an upload folder's name (`Upload.transfer`)
_FIRST_NUMBER = re.compile(r"\d{1,20}")
_CHUNK_NAME = re.compile(r"\d{1,20}(-\d{1,20})?")


def chunk_number(name: str) -> int:
    """The number a chunk's name sorts by: its first number (`0000000000000003` -> 3,
    `000000010485760-000000020971519` -> 10485760). `InvalidUpload` for a name that is
    not a chunk's (digits, or two runs of digits joined by `-`)."""
    if not _CHUNK_NAME.fullmatch(name):
        raise InvalidUpload(f"{name[:40]!r} is not a chunk name")
    found = _FIRST_NUMBER.match(name)
    assert found is not None
    return int(found.group())


class UploadFolders:
    """See the module docstring. `actor` is an account (upload folders are theirs)."""

    def __init__(self, ops: Operations, hashes: UploadHashes = PROCESS_HASHES) -> None:
        self.ops = ops
        self.hashes = hashes
        self._uploads = ResumableUploads(ops, hashes)

    def open(
        self,
        actor: Actor,
        transfer: str,
        length: int | None,
        destination: tuple[Located, str] | None = None,
    ) -> UploadFolder:
        """Make the upload folder `transfer` for a file of `length` bytes (None: not
        said). With `destination` (folder, name: Nextcloud's v2), the checks of a PUT
        there run now (rights, locks, its owner's quota); else the caller's own room.
        `Conflict` if it exists, `QuotaExceeded`, `Forbidden`, `Locked`,
        `InvalidUpload` for a name over `MAX_TRANSFER` characters."""
        if not 0 < len(transfer) <= MAX_TRANSFER:
            raise InvalidUpload(f"an upload folder's name has 1 to {MAX_TRANSFER} characters")
        if destination is not None:
            self._uploads.account_target(actor, *destination, announced=length)
        elif length is not None:
            self._require_room(actor, length)
        return self.ops.catalog.upload_folders.open(
            actor.user.id, actor.user.home_id, transfer, length
        )

    def find(self, actor: Actor, transfer: str) -> UploadFolder | None:
        """The actor's live upload folder `transfer`, or None."""
        return self.ops.catalog.upload_folders.find(actor.user.id, transfer)

    def chunks(self, folder: UploadFolder) -> list[ChunkRecord]:
        """The chunks received so far, in file order."""
        return sorted(self.ops.catalog.upload_folders.chunks(folder), key=_order)

    def expires_at(self, folder: UploadFolder) -> float:
        """When `folder` expires if nothing touches it before (`upload_expiry`)."""
        return folder.touched_at + self.ops.catalog.upload_folders.ttl

    def write_chunk(
        self,
        actor: Actor,
        folder: UploadFolder,
        name: str,
        blocks: Iterable[bytes],
        declared: int | None,
    ) -> ChunkRecord:
        """Store `blocks` as chunk `name` (`declared`: the body's announced length; a
        body that ends short of it is refused, `InvalidUpload`). `NotFound` if the
        folder is gone, `QuotaExceeded`, `ChunkGone`/`Unavailable` (503: send it
        again); a refused chunk records nothing."""
        number = chunk_number(name)
        before = [c for c in self.chunks(folder) if c.name != name]
        if len(before) >= MAX_CHUNKS:
            raise InvalidUpload(f"at most {MAX_CHUNKS} chunks")
        received = sum(c.size for c in before)
        self._require_room(actor, max(folder.length or 0, received + (declared or 0)))
        in_order = all(_order(c) < number for c in before)
        covered = tuple(c.id for c in before)
        resume = self.hashes.at(folder.id, covered) if in_order else None
        writer = self.ops.files.writer(resume=resume)
        part = writer.write_all(blocks)
        if declared is not None and part.size != declared:
            raise InvalidUpload(f"the chunk has {part.size} of its {declared} bytes")
        chunk = self.ops.catalog.upload_folders.add_chunk(folder, name, part.extents, part.size)
        if in_order and (resume is not None or not before):
            self.hashes.keep(folder.id, (*covered, chunk.id), writer.hasher)
        return chunk

    def commit(
        self,
        actor: Actor,
        folder: UploadFolder,
        destination: tuple[Located, str],
        *,
        length: int | None,
        expected: Mapping[str, str],
        mtime: float | None,
    ) -> tuple[NodeRecord, bool]:
        """Join the folder's chunks into the file `destination` (folder, name) and
        commit it (see the module docstring); `length`: the total the client says
        (else the folder's), `expected`: checksums it announced (hashlib name -> hex).
        The file and whether it is new. Raises `InvalidUpload` (wrong length),
        `ChecksumMismatch`, and what a PUT's checks and commit raise; then nothing is
        committed and the folder stays."""
        chunks = self.chunks(folder)
        extents = self.ops.catalog.upload_folders.extents(chunks)
        size = sum(c.size for c in chunks)
        length = folder.length if length is None else length
        if length is not None and size != length:
            raise InvalidUpload(f"the chunks hold {size} bytes, not {length}")
        target = self._uploads.account_target(actor, *destination, announced=size)
        hasher = self.hashes.at(folder.id, tuple(c.id for c in chunks))
        sums = hasher.checksums() if hasher is not None else read_back(self.ops, extents)
        verify(dict(expected), dataclasses.asdict(sums))
        content = NewContent(
            size=size,
            digest=content_digest(e.chunk_hash for e in extents),
            extents=extents,
            checksums=sums,
        )
        retire = self.ops.catalog.upload_folders.retiring(folder, chunks)
        node = self.ops.commit_content(
            actor, target, content, mtime=mtime or time.time(), before=retire
        )
        self.hashes.forget(folder.id)
        return node, not target.exists

    def drop_chunk(self, folder: UploadFolder, name: str) -> None:
        """Forget chunk `name` (a client dropping what it will send again); `NotFound`
        if there is none."""
        self.hashes.forget(folder.id)
        if not self.ops.catalog.upload_folders.drop_chunk(folder, name):
            raise NotFound("no such chunk")

    def cancel(self, folder: UploadFolder) -> None:
        """Drop the folder and its chunks (GC frees their blobs); `NotFound` if gone."""
        self.hashes.forget(folder.id)
        if not self.ops.catalog.upload_folders.cancel(folder):
            raise NotFound("no such upload folder")

    def _require_room(self, actor: Actor, length: int) -> None:
        available = self.ops.space_for(actor, actor.user.id)
        if available is not None and length > available:
            raise QuotaExceeded(f"{length} bytes do not fit in the {available} bytes left")


def _order(chunk: ChunkRecord) -> int:
    return chunk_number(chunk.name)


__all__ = ["MAX_CHUNKS", "MAX_TRANSFER", "UploadFolders", "chunk_number"]
