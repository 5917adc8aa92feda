"""Upload folders (Nextcloud/ownCloud chunked uploads) in the catalog, as `upload` rows.

An upload folder is one `Upload` row with `transfer` set (the folder's name as the
client chose it: `/remote.php/dav/uploads/<user>/<transfer>/`), owned by the account
(`user_id`), with the whole file's `length` if the client announced it. Each chunk
the client PUTs into it is one more `Upload` row, `parent_id` naming the folder's
row, `name` the chunk's name, finished at its size, with the chunk's extents as
`UploadExtent` rows: so GC counts a chunk's blobs as referenced exactly as a TUS
part's (`Contents.collectable`, `condemn`), and an upload folder lives in the catalog,
not in a process: any instance receives the next chunk or commits it.

`add_chunk` records a chunk in one transaction that touches the folder (only if it
is still live: `NotFound` otherwise), replaces a chunk of the same name (a client
sending it again), re-checks the chunk's blobs as a commit does (`settle_chunks`:
`ChunkGone` if GC took one) and inserts the extents. `retiring` is the step the
commit of the whole file runs first in its transaction (`Contents.commit_file`,
`before=`): it deletes the folder and exactly the chunks the file was made of, or
raises (`NotFound`: the folder was cancelled or committed meanwhile; `Conflict`: a
chunk came or was replaced meanwhile), so the file is committed once or not at all.

A folder idle for the uploads' time to live is gone for its owner; `Uploads.expire`
(run by GC) deletes it with its chunks, whose touch times do not matter. TUS never
finds these rows (`Uploads._live`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from providers.catalog.commit import settle_chunks
from providers.catalog.content import CommitStep, session_step
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.records import ExtentRecord
from providers.catalog.schema import Upload, UploadExtent
from providers.catalog.uploads import delete_uploads
from providers.errors import Conflict, NotFound


@dataclass(frozen=True)
class UploadFolder:
    """A live upload folder of account `user_id`: `length` is the whole file's
    announced size (None: not announced)."""

    id: str
    user_id: int
    transfer: str
    length: int | None
    created_at: float
    touched_at: float


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk received into an upload folder: `size` bytes named `name`; `id` is
    new whenever the chunk is sent again."""

    id: str
    name: str
    size: int
    touched_at: float


class UploadFolders:
    """Open, find, fill, retire and cancel upload folders (see the module docstring)."""

    def __init__(self, db: Database, expiry: float) -> None:
        self._db = db
        self.ttl = expiry

    def open(self, user_id: int, home_id: int, transfer: str, length: int | None) -> UploadFolder:
        """A new, empty upload folder `transfer` of `user_id` (`home_id`: their home,
        kept in the row's folder column); `Conflict` if a live one has that name (an
        expired one is dropped first, with its chunks)."""
        now = time.time()
        row = Upload(
            id=secrets.token_urlsafe(24),
            user_id=user_id,
            folder_id=home_id,
            name="",
            length=length,
            created_at=now,
            touched_at=now,
            transfer=transfer,
        )

        def work(s: Session) -> UploadFolder:
            found = s.exec(self._named(user_id, transfer).with_for_update()).all()
            if any(r.touched_at >= now - self.ttl for r in found):
                raise Conflict("the upload folder exists")
            delete_uploads(s, [r.id for r in found])
            s.add(row)
            return _folder(row)

        return self._db.run(work)

    def find(self, user_id: int, transfer: str) -> UploadFolder | None:
        """The live upload folder `transfer` of `user_id`, or None."""
        with self._db.session() as s:
            rows = s.exec(self._named(user_id, transfer)).all()
        live = [r for r in rows if r.touched_at >= time.time() - self.ttl]
        return _folder(live[0]) if live else None

    def chunks(self, folder: UploadFolder) -> list[ChunkRecord]:
        """The chunks received into `folder`, by name."""
        with self._db.session() as s:
            rows = s.exec(
                select(Upload).where(col(Upload.parent_id) == folder.id).order_by(col(Upload.name))
            ).all()
        return [ChunkRecord(r.id, r.name, r.length or 0, r.touched_at) for r in rows]

    def add_chunk(
        self, folder: UploadFolder, name: str, extents: Sequence[ExtentRecord], size: int
    ) -> ChunkRecord:
        """Record chunk `name` of `size` bytes (`extents` from its start) in `folder`,
        replacing one of that name (see the module docstring)."""
        now = time.time()
        row = Upload(
            id=secrets.token_urlsafe(24),
            user_id=folder.user_id,
            folder_id=0,
            name=name,
            length=size,
            offset=size,
            created_at=now,
            touched_at=now,
            finished_at=now,
            partial=True,
            parent_id=folder.id,
        )

        def work(s: Session) -> ChunkRecord:
            touched = s.exec(
                update(Upload)
                .where(col(Upload.id) == folder.id, col(Upload.touched_at) >= now - self.ttl)
                .values(touched_at=now)
            )
            if not touched.rowcount:
                raise NotFound("no such upload folder")
            same = s.exec(
                select(col(Upload.id)).where(
                    col(Upload.parent_id) == folder.id, col(Upload.name) == name
                )
            ).all()
            delete_uploads(s, list(same))
            settle_chunks(s.connection(), {e.chunk_hash for e in extents})
            s.add(row)
            s.flush()
            s.add_all(
                UploadExtent(
                    upload_id=row.id, offset=e.offset, size=e.size, chunk_hash=e.chunk_hash
                )
                for e in extents
            )
            return ChunkRecord(row.id, name, size, now)

        return self._db.run(work)

    def extents(self, chunks: Sequence[ChunkRecord]) -> list[ExtentRecord]:
        """The extents of `chunks` joined in the order given, offsets from the first
        chunk's start: the whole file, without a byte copied."""
        found: dict[str, list[ExtentRecord]] = {c.id: [] for c in chunks}
        ids = list(found)
        with self._db.session() as s:
            for begin in range(0, len(ids), IN_BATCH):
                rows = s.exec(
                    select(UploadExtent)
                    .where(col(UploadExtent.upload_id).in_(ids[begin : begin + IN_BATCH]))
                    .order_by(col(UploadExtent.upload_id), col(UploadExtent.offset))
                ).all()
                for r in rows:
                    found[r.upload_id].append(ExtentRecord(r.offset, r.size, r.chunk_hash))
        joined: list[ExtentRecord] = []
        start = 0
        for chunk in chunks:
            joined += [
                ExtentRecord(start + e.offset, e.size, e.chunk_hash) for e in found[chunk.id]
            ]
            start += chunk.size
        return joined

    def retiring(self, folder: UploadFolder, chunks: Sequence[ChunkRecord]) -> CommitStep:
        """The commit's first step: delete `folder` and its `chunks` (see the module
        docstring)."""

        def retire(s: Session) -> None:
            now = time.time()
            gone = s.exec(
                delete(Upload).where(
                    col(Upload.id) == folder.id, col(Upload.touched_at) >= now - self.ttl
                )
            )
            if not gone.rowcount:
                raise NotFound("no such upload folder")
            held = set(s.exec(select(col(Upload.id)).where(col(Upload.parent_id) == folder.id)))
            if held != {c.id for c in chunks}:
                raise Conflict("the upload folder's chunks changed meanwhile")
            delete_uploads(s, list(held))

        return session_step(retire)

    def drop_chunk(self, folder: UploadFolder, name: str) -> bool:
        """Delete `folder`'s chunk `name`; False if it has none of that name."""

        def work(s: Session) -> bool:
            ids = s.exec(
                select(col(Upload.id)).where(
                    col(Upload.parent_id) == folder.id, col(Upload.name) == name
                )
            ).all()
            delete_uploads(s, list(ids))
            return bool(ids)

        return self._db.run(work)

    def cancel(self, folder: UploadFolder) -> bool:
        """Delete `folder` and its chunks (their blobs become garbage); False if it
        was gone already."""

        def work(s: Session) -> bool:
            found = s.exec(select(Upload).where(col(Upload.id) == folder.id)).first()
            if found is None:
                return False
            delete_uploads(s, [folder.id])
            return True

        return self._db.run(work)

    @staticmethod
    def _named(user_id: int, transfer: str) -> SelectOfScalar[Upload]:
        return select(Upload).where(
            col(Upload.user_id) == user_id,
            col(Upload.transfer) == transfer,
            col(Upload.parent_id).is_(None),
        )


def _folder(row: Upload) -> UploadFolder:
    assert row.user_id is not None and row.transfer is not None
    return UploadFolder(
        row.id, row.user_id, row.transfer, row.length, row.created_at, row.touched_at
    )


__all__ = ["ChunkRecord", "UploadFolder", "UploadFolders"]
