"""Resumable uploads (the bytes side of TUS), through the operations layer's checks:
one engine for share links' drop pages and for accounts.

An upload is received as a series of parts (one per PATCH). Each part is streamed
through a `FileWriter` (chunked, hashed, stored with bounded memory, exactly like a
PUT body: design invariant 6) and recorded in the catalog only once its chunks are
durable (`Uploads.append`): a request that dies half-way keeps every part recorded
before it, and a resumed upload re-sends only what was not recorded. A part may carry
its own checksum (TUS `Upload-Checksum`): a mismatch records nothing
(`UploadChecksumMismatch`, 460). The part that reaches the length is not recorded:
its extents and those of the parts before (offsets shifted to the whole file) form one
`NewContent`, whose digest is `content_digest` over every chunk hash, and that is
committed by `ContentWrites.commit_content`, the commit every PUT goes through (locks,
quota with history expiry, version, change log, event: design invariants 2, 5, 10,
19), which retires the upload in the same transaction (`Uploads.retiring`).

Who owns an upload decides where it goes and what a clash does (`UploadOwner`):

- a share link's upload goes into the link's folder (and the sub-folders
  `folder_path` below it, made with `mkdir` at the commit: a dropped folder's
  structure), renamed "name (2).ext"... on a clash: a link never replaces anything;
  the file belongs to the folder's owner;
- an account's upload goes into the folder at `folder_path` in the account's view
  (which must still be the folder `folder_id`), and replaces a file of that name as a
  PUT does: a new version, the old one kept as history.

Only the owner finds an upload (`get`, `cancel`): a link's token or an account's
login, and the unguessable id. Every step runs the checks a PUT runs, for the actor:
rights and the locks of the folder or of the file it replaces (at creation, before
each part and at the commit, since an upload may last days), the owner's quota (at
creation, 507 before any byte, and before each part, against the whole length; binding
at the commit).

An account's upload may defer its length (`length` None until `declare_length`), give
the file's `mtime` and its whole `checksum` (algorithm, hex), checked at the commit
against the content's own (`UploadChecksumMismatch`: nothing committed). A `partial`
upload (TUS concatenation) commits nothing: its last part finishes it, and
`concatenate` joins finished partials (their extents, offsets shifted) into one file,
committed at once; the partials are deleted in that commit's transaction.

Checksums (`providers.checksums`): an upload is checksummed as it streams, like a PUT:
each part continues the hash state of the parts before it when this process received
them (`providers.operations.upload_hashes`). A hash's state cannot be kept in the
catalog, so when it is missing (a part reached another instance, a restart) the
upload is read back from its chunks once, at the commit, to checksum it whole.

Part boundaries are chunk boundaries, so a file sent this way may be cut into chunks
a little differently from the same file sent by PUT (and get another digest); the
content-defined chunker realigns within a chunk after each boundary, so dedup holds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from providers.catalog import ExtentRecord, NewContent, NodeRecord
from providers.catalog.uploads import UploadOwner, UploadRecord
from providers.checksums import STORED, Checksums, checksums_of, verify
from providers.errors import (
    ChecksumMismatch,
    Conflict,
    InvalidUpload,
    NotFound,
    QuotaExceeded,
    UploadChecksumMismatch,
)
from providers.filestore import content_digest
from providers.names import check_name
from providers.operations.actor import Actor
from providers.operations.core import Operations
from providers.operations.upload_hashes import PROCESS_HASHES, UploadHashes
from providers.operations.views import Located
from providers.operations.writes import WriteTarget

Checksum = tuple[str, str]  # (hashlib algorithm in `STORED`, lowercase hex)


@dataclass(frozen=True)
class PartResult:
    """What one part did: the upload as it is now and, when the part completed a
    file's upload, the committed file (its `name` is the one given after an automatic
    rename)."""

    upload: UploadRecord
    node: NodeRecord | None = None


def owner_of(actor: Actor) -> UploadOwner:
    """Who owns the uploads `actor` makes: its share link, or its account."""
    if actor.link is not None:
        return UploadOwner(link_id=actor.link.id)
    return UploadOwner(user_id=actor.user.id)


class ResumableUploads:
    """See the module docstring."""

    def __init__(self, ops: Operations, hashes: UploadHashes = PROCESS_HASHES) -> None:
        self.ops = ops
        self.hashes = hashes

    def create(
        self,
        actor: Actor,
        folder: Located,
        name: str,
        length: int | None,
        *,
        subfolders: Sequence[str] = (),
        mtime: float | None = None,
        checksum: Checksum | None = None,
        partial: bool = False,
    ) -> UploadRecord:
        """Start an upload of `length` bytes (None: declared later) to be committed as
        `name` in `folder` (a link's: below `subfolders`; a partial upload's name is
        not used). `InvalidName`, `Forbidden`, `Locked`, `Conflict` (`name` is a
        folder), `QuotaExceeded`."""
        if length is not None and length < 0:
            raise InvalidUpload("negative length")
        if actor.link is not None and (length is None or partial):
            raise InvalidUpload("a share link's upload gives its length and makes a file")
        for part in (*subfolders, *(() if partial else (name,))):
            check_name(part)
        node = self.ops.folder(folder)
        if checksum is not None and checksum[0] not in STORED:
            raise InvalidUpload(f"unknown checksum algorithm {checksum[0]}")
        upload = UploadRecord(
            id="",
            owner=owner_of(actor),
            folder_id=node.id,
            folder_path=tuple(subfolders) if actor.link is not None else folder.shown,
            name=name,
            length=length,
            offset=0,
            touched_at=time.time(),
            finished=False,
            finished_name=None,
            partial=partial,
        )
        self._check(actor, upload, length or 0, folder)
        return self.ops.catalog.uploads.create(
            upload.owner,
            node.id,
            upload.folder_path,
            name,
            length,
            mtime=mtime,
            checksum=None if checksum is None else " ".join(checksum),
            partial=partial,
        )

    def get(self, actor: Actor, upload_id: str) -> UploadRecord | None:
        """The actor's live upload `upload_id`, or None."""
        return self.ops.catalog.uploads.get(upload_id, owner_of(actor))

    def expires_at(self, upload: UploadRecord) -> float:
        """When `upload` expires if nothing touches it before (`upload_expiry`)."""
        return upload.touched_at + self.ops.catalog.uploads.ttl

    def declare_length(self, actor: Actor, upload: UploadRecord, length: int) -> UploadRecord:
        """Give a deferred upload its length (after the checks of a part, against it)."""
        self._check(actor, upload, length)
        return self.ops.catalog.uploads.declare_length(upload, length)

    def write(
        self,
        actor: Actor,
        upload: UploadRecord,
        blocks: Iterable[bytes],
        *,
        piece_checksum: Checksum | None = None,
    ) -> PartResult:
        """Store `blocks` as the part at `upload.offset` (the caller reads at most the
        bytes left; more is refused, `InvalidUpload`); if they complete a file's
        upload, commit the file; if they complete a partial upload, finish it.

        Raises `Conflict` if the upload is finished or its offset moved, `NotFound` if
        it (or its folder) is gone, `UploadChecksumMismatch` if the part is not
        `piece_checksum`'s or the file not its `checksum` metadata's, `Forbidden`,
        `Locked`, `QuotaExceeded`, `ChunkGone`/`Unavailable` (503: send it again); in
        every case the parts recorded before are kept. An empty body records nothing
        (unless the upload is empty: then it commits the empty file).
        """
        if upload.finished:
            raise Conflict("the upload is finished")
        self._check(actor, upload, upload.length or upload.offset)  # before the body
        extra = [] if piece_checksum is None else [piece_checksum[0]]
        resume = self.hashes.at(upload.id, upload.offset)
        whole = upload.offset == 0 or resume is not None  # the hasher covers the file so far
        writer = self.ops.files.writer(extra=extra, resume=resume)
        part = writer.write_all(blocks)
        if piece_checksum is not None:
            _verify(dict([piece_checksum]), writer.hexdigests(), "the piece")
        end = upload.offset + part.size
        if upload.length is not None and end > upload.length:
            raise InvalidUpload(f"{upload.length - upload.offset} bytes were left")
        uploads = self.ops.catalog.uploads
        if end == upload.length and upload.partial:
            return PartResult(uploads.append(upload, part.extents, part.size, complete=True))
        if end == upload.length:
            self.hashes.forget(upload.id)
            return PartResult(upload, self._finish(actor, upload, part, whole))
        if part.size == 0:
            return PartResult(upload)
        recorded = uploads.append(upload, part.extents, part.size)
        if whole:
            self.hashes.keep(upload.id, end, writer.hasher)
        return PartResult(recorded)

    def concatenate(
        self,
        actor: Actor,
        folder: Located,
        name: str,
        partial_ids: Sequence[str],
        *,
        mtime: float | None = None,
        checksum: Checksum | None = None,
    ) -> PartResult:
        """Commit, as `name` in `folder`, the finished partial uploads `partial_ids`
        of the actor joined in that order (TUS concatenation's final upload), and
        delete them. `NotFound` for one that is not the actor's (or gone),
        `InvalidUpload` for one that is not a finished partial, and what `create` and
        a commit raise; then nothing is committed and the partials stay."""
        partials = [self.get(actor, upload_id) for upload_id in partial_ids]
        extents: list[ExtentRecord] = []
        for partial in partials:
            if partial is None:
                raise NotFound("no such partial upload")
            if not partial.partial or not partial.finished or partial.length is None:
                raise InvalidUpload("a partial upload is not finished")
            extents += _shifted(self.ops.catalog.uploads.extents(partial.id), len_of(extents))
        final = self.create(actor, folder, name, len_of(extents), mtime=mtime, checksum=checksum)
        try:
            content = self._content(final, extents, None)
            node = self._commit(actor, final, content, [p for p in partials if p is not None])
        except BaseException:
            self.ops.catalog.uploads.cancel(final.id, final.owner)
            raise
        return PartResult(dataclasses.replace(final, offset=content.size, finished=True), node)

    def cancel(self, actor: Actor, upload_id: str) -> bool:
        """Forget the upload and its parts (GC collects their chunks); False if none."""
        self.hashes.forget(upload_id)
        return self.ops.catalog.uploads.cancel(upload_id, owner_of(actor))

    def _finish(
        self, actor: Actor, upload: UploadRecord, last: NewContent, whole: bool
    ) -> NodeRecord:
        """Concatenate the recorded parts and `last` and commit them (see the module
        docstring); `whole`: `last.checksums` cover the whole file (else it is read
        back). The parts cannot change meanwhile: the commit retires the upload only
        if its offset is still the one the parts were read at."""
        extents = self.ops.catalog.uploads.extents(upload.id)
        extents += _shifted(last.extents, upload.offset)
        sums = last.checksums if whole else None
        return self._commit(actor, upload, self._content(upload, extents, sums))

    def _content(
        self, upload: UploadRecord, extents: list[ExtentRecord], sums: Checksums | None
    ) -> NewContent:
        """The whole file of `extents`, checksummed (read back unless `sums`), and
        checked against the upload's `checksum` metadata."""
        if sums is None:
            sums = read_back(self.ops, extents)
        if upload.checksum is not None:
            algorithm, _, value = upload.checksum.partition(" ")
            _verify({algorithm: value}, dataclasses.asdict(sums), "the file")
        digest = content_digest(e.chunk_hash for e in extents)
        return NewContent(size=len_of(extents), digest=digest, extents=extents, checksums=sums)

    def _commit(
        self,
        actor: Actor,
        upload: UploadRecord,
        content: NewContent,
        consumed: Sequence[UploadRecord] = (),
    ) -> NodeRecord:
        """Commit `content` as `upload`'s file through the one commit of every write,
        retiring the upload (and deleting `consumed` partials) in its transaction."""
        retire = self.ops.catalog.uploads.retiring(upload, consumed)
        is_link = actor.link is not None
        if is_link:
            root = self._link_root(actor, upload)
            folder = self.ops.descend(actor, root, upload.folder_path, make=True)
            target = self.ops.plan_create(actor, folder, upload.name)
        else:
            target = self.account_target(actor, self._account_folder(actor, upload), upload.name)
        mtime = upload.mtime if upload.mtime is not None else time.time()
        node = self.ops.commit_content(
            actor, target, content, mtime=mtime, rename_on_clash=is_link, before=retire
        )
        self.ops.catalog.uploads.record_name(upload.id, node.name)
        return node

    def _check(
        self, actor: Actor, upload: UploadRecord, length: int, folder: Located | None = None
    ) -> None:
        """The checks before accepting bytes for `upload` (`folder`: its folder, when
        the caller has it): write access and locks where the file will go, and room
        for `length` bytes."""
        if actor.link is not None:
            self._check_link_folder(actor, upload, length)
            return
        if folder is None:
            folder = self._account_folder(actor, upload)
        if not upload.partial:
            self.account_target(actor, folder, upload.name, announced=length)
            return
        node = self.ops.folder(folder)  # a part of a file to come: its owner's room
        available = self.ops.space_for(actor, node.owner_id)
        if available is not None and length > available:
            raise QuotaExceeded(f"{length} bytes do not fit in the {available} bytes left")

    def _account_folder(self, actor: Actor, upload: UploadRecord) -> Located:
        """The folder an account's upload goes into, as the account reaches it now;
        `NotFound` if it is gone, moved, or out of reach."""
        folder = self.ops.view(actor).locate(upload.folder_path)
        if folder is None or folder.node is None or folder.node.id != upload.folder_id:
            raise NotFound("the folder of this upload is gone")
        return folder

    def account_target(
        self, actor: Actor, folder: Located, name: str, *, announced: int | None = None
    ) -> WriteTarget:
        """The checks of a PUT of `name` in `folder`: an overwrite of the file there, or
        a new file (`Conflict` if a folder has the name). Upload folders
        (`providers.operations.upload_folders`) commit through it too."""
        existing = self.ops.view(actor).locate([*folder.shown, name])
        if existing is None:
            return self.ops.plan_create(actor, folder, name, announced=announced)
        if existing.is_dir:
            raise Conflict(f"{name!r} is a folder")
        return self.ops.plan_overwrite(actor, existing, announced=announced)

    def _link_root(self, actor: Actor, upload: UploadRecord) -> Located:
        """The folder a link's upload was created for, as the link reaches it now;
        `NotFound` if it is gone."""
        root = self.ops.view(actor).locate([])
        if root is None or root.node is None or root.node.id != upload.folder_id:
            raise NotFound("the folder of this upload is gone")
        return root

    def _check_link_folder(self, actor: Actor, upload: UploadRecord, length: int) -> None:
        """Write access and locks of the folder a link's file would go into now (the
        deepest of its sub-folders that exists), and room for `length` bytes."""
        folder, view = self._link_root(actor, upload), self.ops.view(actor)
        for name in upload.folder_path:
            child = view.locate([*folder.shown, name])
            if child is None or not child.is_dir:
                break
            folder = child
        node = self.ops.folder(folder)
        self.ops.require(folder.place, adding=True)
        self.ops.check_lock(actor, folder.place, is_dir=True, depth="0")
        available = self.ops.space_for(actor, node.owner_id)
        if available is not None and length > available:
            raise QuotaExceeded(f"{length} bytes do not fit in the {available} bytes left")


def read_back(ops: Operations, extents: list[ExtentRecord]) -> Checksums:
    """The checksums of a resumed upload's whole content, read from its chunks."""
    reader = ops.files.extents_reader(extents)
    try:
        return checksums_of(iter(lambda: reader.read(), b""))
    finally:
        reader.close()


def len_of(extents: Sequence[ExtentRecord]) -> int:
    """The bytes `extents` (in order, contiguous) cover."""
    return extents[-1].offset + extents[-1].size if extents else 0


def _shifted(extents: Iterable[ExtentRecord], by: int) -> list[ExtentRecord]:
    return [
        ExtentRecord(offset=by + e.offset, size=e.size, chunk_hash=e.chunk_hash) for e in extents
    ]


def _verify(expected: dict[str, str], computed: dict[str, str], what: str) -> None:
    """`UploadChecksumMismatch` (460) unless `what`'s bytes match `expected`."""
    try:
        verify(expected, computed)
    except ChecksumMismatch as e:
        raise UploadChecksumMismatch(f"{what}: {e}") from e
