"""Resumable uploads in the storage engine: the bytes side of TUS.

An upload is received as a series of parts (one per PATCH). Each part is streamed
through a `FileWriter` (chunked, hashed, stored with bounded memory, exactly like a
PUT body) and recorded in the catalog only once its chunks are durable
(`Uploads.append`): a request that dies half-way keeps every part recorded before it.
The part that reaches the announced length is not recorded: its extents and those of
the parts before (offsets shifted to the whole file) form one `NewContent`, whose
digest is `content_digest` over every chunk hash, and that is committed with
`Contents.commit_file` into the target folder, renamed "name (2).ext"... on a clash
(`Uploads.finish`). The file belongs to the folder's owner, whose quota is checked
when the upload is created, before each part, and (the binding check) at the commit.

Part boundaries are chunk boundaries, so a file sent this way may be cut into chunks
a little differently from the same file sent by PUT (and get another digest); the
content-defined chunker realigns within a chunk after each boundary, so dedup holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from providers.catalog import Catalog, ExtentRecord, NewContent, NodeRecord
from providers.catalog.uploads import UploadRecord
from providers.errors import Conflict, NotFound, QuotaExceeded
from providers.filestore import FileStore, content_digest
from providers.names import check_name


@dataclass(frozen=True)
class PartResult:
    """What one part did: the upload as it is now and, when the part completed it,
    the committed file (its `name` is the one given after an automatic rename)."""

    upload: UploadRecord
    node: NodeRecord | None = None


class ResumableUploads:
    """Uploads into folders, by parts, owned by the link (or anything else) whose id
    they were created with: every method takes that id and sees only its uploads."""

    def __init__(self, catalog: Catalog, files: FileStore) -> None:
        self.catalog = catalog
        self.files = files

    def create(
        self, link_id: int, folder: NodeRecord, subfolders: Sequence[str], name: str, length: int
    ) -> UploadRecord:
        """Start an upload of `length` bytes, to be committed as `name` in `folder`,
        below the `subfolders` (created at the commit if missing). `InvalidName` for a
        bad name, `QuotaExceeded` if the folder's owner has less than `length` bytes
        left (a hint: the commit checks again)."""
        for part in (*subfolders, name):
            check_name(part)
        if length < 0:
            raise ValueError("negative length")
        self._check_space(folder.owner_id, length)
        return self.catalog.uploads.create(link_id, folder.id, subfolders, name, length)

    def get(self, link_id: int, upload_id: str) -> UploadRecord | None:
        """Link `link_id`'s live upload `upload_id`, or None."""
        return self.catalog.uploads.get(upload_id, link_id)

    def write(self, upload: UploadRecord, blocks: Iterable[bytes], *, path: str) -> PartResult:
        """Store `blocks` as the part at `upload.offset` (the caller reads at most the
        bytes left, `length - offset`; more is refused by `append`, `ValueError`); if
        they complete the upload, commit the file.

        `path` is the target folder's path as its owner sees it (for the change log).
        Raises `Conflict` if the upload is finished or its offset moved, `NotFound` if
        it is gone, `QuotaExceeded`, `ChunkGone`/`Unavailable` (503: send it again); in
        every case the parts recorded before are kept. An empty body records nothing
        (unless the upload is empty: then it commits the empty file).
        """
        if upload.finished:
            raise Conflict("the upload is finished")
        # Before reading the body: a part for a file that cannot fit is not stored.
        self._check_space(self._root(upload).owner_id, upload.length)
        writer = self.files.writer()
        try:
            writer.writelines(blocks)
            part = writer.finish()
        except BaseException:
            writer.abort()
            raise
        if upload.offset + part.size == upload.length:
            return PartResult(upload, self._finish(upload, part, path))
        if part.size == 0:
            return PartResult(upload)
        return PartResult(self.catalog.uploads.append(upload, part.extents, part.size))

    def cancel(self, link_id: int, upload_id: str) -> bool:
        """Forget the upload and its parts (GC collects their chunks); False if none."""
        return self.catalog.uploads.cancel(upload_id, link_id)

    def _finish(self, upload: UploadRecord, last: NewContent, path: str) -> NodeRecord:
        """Concatenate the recorded parts and `last` and commit them (see the module
        docstring). The parts cannot change meanwhile: the commit retires the upload
        only if its offset is still the one the parts were read at."""
        shifted = [
            ExtentRecord(offset=upload.offset + e.offset, size=e.size, chunk_hash=e.chunk_hash)
            for e in last.extents
        ]
        extents = self.catalog.uploads.extents(upload.id) + shifted
        content = NewContent(
            size=upload.length,
            digest=content_digest(e.chunk_hash for e in extents),
            extents=extents,
        )
        folder = self._folder(upload, path)
        names = "/".join((path.rstrip("/"), *upload.folder_path, upload.name))
        return self.catalog.uploads.finish(
            upload, folder.id, folder.owner_id, content, path=names, mtime=time.time()
        )

    def _folder(self, upload: UploadRecord, path: str) -> NodeRecord:
        """The upload's target folder, creating its missing sub-folders (each owned by
        its parent's owner). `Conflict` if a file is in the way, `NotFound` if the
        target folder itself is gone."""
        folder = self._root(upload)
        done = [path.rstrip("/")]
        for name in upload.folder_path:
            done.append(name)
            child = self.catalog.tree.resolve(folder.id, [name])
            if child is None:
                try:
                    child = self.catalog.tree.mkdir(
                        folder.id, name, folder.owner_id, "/".join(done)
                    )
                except Conflict:  # made meanwhile by another upload of the same folder
                    child = self.catalog.tree.resolve(folder.id, [name])
            if child is None or not child.is_dir:
                raise Conflict(f"{name!r} is a file, not a folder")
            folder = child
        return folder

    def _root(self, upload: UploadRecord) -> NodeRecord:
        """The folder the upload was created for; `NotFound` if it is gone."""
        folder = self.catalog.tree.get(upload.folder_id)
        if folder is None or not folder.is_dir:
            raise NotFound("the folder of this upload is gone")
        return folder

    def _check_space(self, owner_id: int, length: int) -> None:
        available = self.catalog.users.available_bytes(owner_id)
        if available is not None and length > available:
            raise QuotaExceeded(f"{length} bytes do not fit in the {available} bytes left")
