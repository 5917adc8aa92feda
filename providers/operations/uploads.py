"""Resumable uploads (the bytes side of TUS), through the operations layer's checks.

An upload is received as a series of parts (one per PATCH). Each part is streamed
through a `FileWriter` (chunked, hashed, stored with bounded memory, exactly like a
PUT body) and recorded in the catalog only once its chunks are durable
(`Uploads.append`): a request that dies half-way keeps every part recorded before it.
The part that reaches the announced length is not recorded: its extents and those of
the parts before (offsets shifted to the whole file) form one `NewContent`, whose
digest is `content_digest` over every chunk hash, and that is committed with
`Uploads.finish` into the target folder, renamed "name (2).ext"... on a clash (an
upload never replaces anything). The file belongs to the folder's owner.

Checksums (`providers.checksums`): an upload sent in one part (what the drop page
does unless a connection breaks) is checksummed as it streams, like a PUT. A hash's
state cannot be kept in the catalog between requests (and the next part may reach
another instance), so an upload resumed after a break is read back from its chunks
once, at the commit, to checksum it whole.

Every step runs the checks a PUT runs, for the actor that made the upload: write
access to the folder, the locks of the folder the file goes into (at creation, before
each part and at the commit, since an upload may last days), the owner's quota (a
hint at creation and before each part, binding at the commit). Missing sub-folders
(`subfolders`: a dropped folder's structure) are made with `mkdir` at the commit.

Uploads belong to the share link they were created through (`actor.link`): every
method sees only that link's uploads.

Part boundaries are chunk boundaries, so a file sent this way may be cut into chunks
a little differently from the same file sent by PUT (and get another digest); the
content-defined chunker realigns within a chunk after each boundary, so dedup holds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from providers.catalog import ExtentRecord, NewContent, NodeRecord
from providers.catalog.uploads import UploadRecord
from providers.checksums import Checksums, checksums_of
from providers.errors import Conflict, Forbidden, NotFound, QuotaExceeded
from providers.filestore import content_digest
from providers.names import check_name
from providers.operations import events
from providers.operations.actor import Actor
from providers.operations.core import Operations
from providers.operations.views import Located


@dataclass(frozen=True)
class PartResult:
    """What one part did: the upload as it is now and, when the part completed it,
    the committed file (its `name` is the one given after an automatic rename)."""

    upload: UploadRecord
    node: NodeRecord | None = None


def _link_id(actor: Actor) -> int:
    if actor.link is None:
        raise Forbidden("resumable uploads are made through share links")
    return actor.link.id


class ResumableUploads:
    """See the module docstring."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def create(
        self, actor: Actor, folder: Located, subfolders: Sequence[str], name: str, length: int
    ) -> UploadRecord:
        """Start an upload of `length` bytes, to be committed as `name` in `folder`
        below `subfolders`. `InvalidName` for a bad name, `Forbidden`, `Locked`,
        `QuotaExceeded` (a hint: the commit checks again)."""
        for part in (*subfolders, name):
            check_name(part)
        if length < 0:
            raise ValueError("negative length")
        node = self.ops.folder(folder)
        self._check_folder(actor, folder, subfolders, length)
        return self.ops.catalog.uploads.create(_link_id(actor), node.id, subfolders, name, length)

    def get(self, actor: Actor, upload_id: str) -> UploadRecord | None:
        """The actor's live upload `upload_id`, or None."""
        return self.ops.catalog.uploads.get(upload_id, _link_id(actor))

    def write(self, actor: Actor, upload: UploadRecord, blocks: Iterable[bytes]) -> PartResult:
        """Store `blocks` as the part at `upload.offset` (the caller reads at most the
        bytes left, `length - offset`; more is refused by `append`, `ValueError`); if
        they complete the upload, commit the file.

        Raises `Conflict` if the upload is finished or its offset moved, `NotFound` if
        it (or its folder) is gone, `Forbidden`, `Locked`, `QuotaExceeded`,
        `ChunkGone`/`Unavailable` (503: send it again); in every case the parts
        recorded before are kept. An empty body records nothing (unless the upload is
        empty: then it commits the empty file).
        """
        if upload.finished:
            raise Conflict("the upload is finished")
        root = self._root(actor, upload)
        self._check_folder(actor, root, upload.folder_path, upload.length)  # before the body
        writer = self.ops.files.writer()
        try:
            writer.writelines(blocks)
            part = writer.finish()
        except BaseException:
            writer.abort()
            raise
        if upload.offset + part.size == upload.length:
            return PartResult(upload, self._finish(actor, upload, part, root))
        if part.size == 0:
            return PartResult(upload)
        return PartResult(self.ops.catalog.uploads.append(upload, part.extents, part.size))

    def cancel(self, actor: Actor, upload_id: str) -> bool:
        """Forget the upload and its parts (GC collects their chunks); False if none."""
        return self.ops.catalog.uploads.cancel(upload_id, _link_id(actor))

    def _finish(
        self, actor: Actor, upload: UploadRecord, last: NewContent, root: Located
    ) -> NodeRecord:
        """Concatenate the recorded parts and `last` and commit them (see the module
        docstring). The parts cannot change meanwhile: the commit retires the upload
        only if its offset is still the one the parts were read at."""
        shifted = [
            ExtentRecord(offset=upload.offset + e.offset, size=e.size, chunk_hash=e.chunk_hash)
            for e in last.extents
        ]
        extents = self.ops.catalog.uploads.extents(upload.id) + shifted
        content = NewContent(
            size=upload.length,
            digest=content_digest(e.chunk_hash for e in extents),
            extents=extents,
            checksums=last.checksums if upload.offset == 0 else self._read_back(extents),
        )
        folder = self._subfolder(actor, root, upload.folder_path)
        target = self.ops.folder(folder)
        self.ops.check_lock(actor, folder.place, is_dir=True, depth="0")
        path = folder.place.child(upload.name).owner_path
        node = self.ops.catalog.uploads.finish(
            upload, target.id, target.owner_id, content, path=path, mtime=time.time()
        )
        self.ops.publish(events.PUT, actor, node, folder.place.child(node.name).owner_path)
        return node

    def _read_back(self, extents: list[ExtentRecord]) -> Checksums:
        """The checksums of a resumed upload's whole content, read from its chunks."""
        reader = self.ops.files.extents_reader(extents)
        try:
            return checksums_of(iter(lambda: reader.read(), b""))
        finally:
            reader.close()

    def _subfolder(self, actor: Actor, root: Located, names: Sequence[str]) -> Located:
        """The folder `names` below `root`, making what is missing (`Conflict` if a
        file is in the way)."""
        view, folder = self.ops.view(actor), root
        for name in names:
            child = view.locate([*folder.shown, name])
            if child is None:
                with contextlib.suppress(Conflict):  # made meanwhile by another upload
                    self.ops.mkdir(actor, folder, name)
                child = view.locate([*folder.shown, name])
            if child is None or not child.is_dir:
                raise Conflict(f"{name!r} is a file, not a folder")
            folder = child
        return folder

    def _root(self, actor: Actor, upload: UploadRecord) -> Located:
        """The folder the upload was created for, as the actor reaches it now;
        `NotFound` if it is gone (or out of the actor's reach)."""
        root = self.ops.view(actor).locate([])
        if root is None or root.node is None or root.node.id != upload.folder_id:
            raise NotFound("the folder of this upload is gone")
        return root

    def _check_folder(
        self, actor: Actor, root: Located, subfolders: Sequence[str], length: int
    ) -> None:
        """Write access and locks of the folder the file would go into now (the
        deepest of `subfolders` below `root` that exists), and room for `length`
        bytes."""
        folder, view = root, self.ops.view(actor)
        for name in subfolders:
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
