"""Resumable uploads (TUS) in the catalog: an `Upload` row and the extents of its parts.

An upload is created with its owner (a share link or an account: `UploadOwner`), its
target (a folder, names of sub-folders to create below it, a file name), its length
(or none yet: deferred, declared later by `declare_length`), and what the creation's
metadata said (`mtime`, the whole file's `checksum`, whether it is a `partial` of a
concatenation). Each part (the body of one PATCH) is appended by `append` in one
transaction that

1. advances `offset` only if it still equals the part's start, so of two requests
   racing for one offset one wins and the other gets `Conflict`;
2. re-checks, as a commit does, that every chunk of the part is still `stored`,
   touching it (`ChunkGone` otherwise: GC took it, the client sends the part again);
3. inserts the part's extents, shifted to offsets from the upload's start.

From then on GC counts those chunks as referenced (`Contents.collectable`, `condemn`),
so an unfinished upload keeps them. The last part of a file's upload is never
appended: the operations layer commits the whole content with `Contents.commit_file`
and passes it `retiring(upload)`, which retires the upload (and deletes the partial
uploads a concatenation consumed) inside the commit's transaction, so a file is
committed once or not at all. The retired row stays as a receipt (offset = length,
then `record_name`: the name used) for clients whose last answer was lost, until it
expires. The last part of a partial upload is appended with `complete=True`: the
partial is finished and keeps its extents for the final upload that joins it.

Uploads idle for `expiry` seconds (the `upload_expiry` setting) are gone for every
caller; `expire` (run by GC) deletes their rows (an upload folder's with its chunks'),
after which their chunks are ordinary garbage.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from providers.catalog.commit import settle_chunks
from providers.catalog.content import CommitStep, session_step
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.records import ExtentRecord
from providers.catalog.schema import Upload, UploadExtent
from providers.errors import Conflict, NotFound

DEFAULT_EXPIRY = 24 * 3600.0  # the `upload_expiry` setting's default


@dataclass(frozen=True)
class UploadOwner:
    """Who an upload belongs to: the share link `link_id` it was made through, or the
    account `user_id` that made it (exactly one is set). Only its owner finds it."""

    link_id: int | None = None
    user_id: int | None = None

    def __post_init__(self) -> None:
        if (self.link_id is None) == (self.user_id is None):
            raise ValueError("an upload belongs to a link or to an account")

    def clauses(self) -> list[ColumnElement[bool]]:
        """WHERE clauses matching this owner's uploads only."""
        return [
            col(Upload.link_id).is_(None)
            if self.link_id is None
            else col(Upload.link_id) == self.link_id,
            col(Upload.user_id).is_(None)
            if self.user_id is None
            else col(Upload.user_id) == self.user_id,
        ]


@dataclass(frozen=True)
class UploadRecord:
    """An upload as stored: `offset` of `length` bytes received (`length` None: not
    declared yet); once `finished`, a file's upload was committed as `finished_name`
    (None only if the process died between the commit and recording the name), a
    partial one holds its whole part for a final upload to join."""

    id: str
    owner: UploadOwner
    folder_id: int
    folder_path: tuple[str, ...]
    name: str
    length: int | None
    offset: int
    touched_at: float
    finished: bool
    finished_name: str | None
    mtime: float | None = None
    checksum: str | None = None
    partial: bool = False

    @property
    def link_id(self) -> int | None:
        return self.owner.link_id


class Uploads:
    """Create, find, extend, retire, cancel and expire resumable uploads."""

    def __init__(self, db: Database, expiry: float = DEFAULT_EXPIRY) -> None:
        self._db = db
        self.ttl = expiry

    def create(
        self,
        owner: UploadOwner,
        folder_id: int,
        folder_path: Sequence[str],
        name: str,
        length: int | None,
        *,
        mtime: float | None = None,
        checksum: str | None = None,
        partial: bool = False,
    ) -> UploadRecord:
        """A new, empty upload with a random id (`secrets.token_urlsafe`, unguessable:
        the id and the owner together are what grants access to it)."""
        now = time.time()
        row = Upload(
            id=secrets.token_urlsafe(24),
            link_id=owner.link_id,
            user_id=owner.user_id,
            folder_id=folder_id,
            folder_path="/".join(folder_path),
            name=name,
            length=length,
            created_at=now,
            touched_at=now,
            mtime=mtime,
            checksum=checksum,
            partial=partial,
        )

        def work(s: Session) -> UploadRecord:
            s.add(row)
            return _record(row)

        return self._db.run(work)

    def get(self, upload_id: str, owner: UploadOwner) -> UploadRecord | None:
        """The upload `upload_id` of `owner`, or None if there is none, it belongs to
        someone else, or it has been idle past the time to live."""
        with self._db.session() as s:
            row = s.exec(self._live(upload_id, owner)).first()
            return _record(row) if row is not None else None

    def extents(self, upload_id: str) -> list[ExtentRecord]:
        """The extents of the parts stored so far, in upload order."""
        with self._db.session() as s:
            rows = s.exec(
                select(
                    col(UploadExtent.offset), col(UploadExtent.size), col(UploadExtent.chunk_hash)
                )
                .where(col(UploadExtent.upload_id) == upload_id)
                .order_by(col(UploadExtent.offset))
            ).all()
        return [ExtentRecord(offset=o, size=n, chunk_hash=h) for o, n, h in rows]

    def declare_length(self, upload: UploadRecord, length: int) -> UploadRecord:
        """Set the length of a deferred upload (TUS `Upload-Length` on a PATCH);
        `Conflict` if it is shorter than what is stored or another length was
        declared, `NotFound` if the upload is gone."""
        if length < upload.offset:
            raise Conflict(f"{upload.offset} bytes are stored already")

        def work(s: Session) -> UploadRecord:
            row = s.exec(self._live(upload.id, upload.owner).with_for_update()).first()
            if row is None or row.finished_at is not None:
                raise NotFound("no such upload")
            if row.length is not None and row.length != length:
                raise Conflict(f"the upload's length is {row.length}")
            row.length, row.touched_at = length, time.time()
            s.add(row)
            return _record(row)

        return self._db.run(work)

    def append(
        self,
        upload: UploadRecord,
        extents: Sequence[ExtentRecord],
        size: int,
        *,
        complete: bool = False,
    ) -> UploadRecord:
        """Record a part of `size` bytes at `upload.offset` (its `extents` count from the
        part's start) and advance the offset (see the module docstring); return the
        upload as it is now. A file's part must not complete the upload (the commit
        retires it); a partial upload's last part is appended with `complete`, which
        finishes it. `Conflict` if the offset moved since `upload` was read, `NotFound`
        if the upload is gone, `ChunkGone` if GC took a chunk of the part."""
        start, end = upload.offset, upload.offset + size
        if complete != (end == upload.length) or size < 0 or (size == 0 and not complete):
            raise ValueError("a part must be non-empty and end the upload only if `complete`")
        if upload.length is not None and end > upload.length:
            raise ValueError("a part must not pass the upload's length")

        def work(s: Session) -> UploadRecord:
            self._advance(s, upload, end, finish=complete)
            # The upload row is locked first, then the chunks: a commit takes them in
            # the same order (`retiring`), so two requests on one upload cannot deadlock.
            settle_chunks(s.connection(), {e.chunk_hash for e in extents})
            s.add_all(
                UploadExtent(
                    upload_id=upload.id,
                    offset=start + e.offset,
                    size=e.size,
                    chunk_hash=e.chunk_hash,
                )
                for e in extents
            )
            row = s.get(Upload, upload.id)
            assert row is not None
            return _record(row)

        return self._db.run(work)

    def retiring(self, upload: UploadRecord, consumed: Sequence[UploadRecord] = ()) -> CommitStep:
        """The step a commit of `upload`'s file runs first in its transaction
        (`Contents.commit_file(before=...)`): mark it finished at its length (only if
        its offset is still `upload.offset`: `Conflict`, or `NotFound`, otherwise),
        drop its extents, and delete the finished partial uploads `consumed` (a
        concatenation), each of which must still exist (`NotFound` otherwise)."""

        def retire(s: Session) -> None:
            assert upload.length is not None
            self._advance(s, upload, upload.length, finish=True)
            s.exec(delete(UploadExtent).where(col(UploadExtent.upload_id) == upload.id))
            if consumed:
                ids = [p.id for p in consumed]
                found = s.exec(
                    select(func.count())
                    .select_from(Upload)
                    .where(
                        col(Upload.id).in_(ids),
                        col(Upload.partial),
                        col(Upload.finished_at).is_not(None),
                        *upload.owner.clauses(),
                    )
                ).one()
                if found != len(set(ids)):
                    raise NotFound("a partial upload is gone")
                delete_uploads(s, ids)

        return session_step(retire)

    def record_name(self, upload_id: str, name: str) -> None:
        """Keep the name a committed upload's file got (the receipt of HEAD)."""

        def work(s: Session) -> None:
            s.exec(update(Upload).where(col(Upload.id) == upload_id).values(finished_name=name))

        self._db.run(work)

    def cancel(self, upload_id: str, owner: UploadOwner) -> bool:
        """Delete the upload and its parts (their chunks become garbage); False if
        `owner` has no such live upload. A finished upload's receipt goes too; the
        committed file stays."""

        def work(s: Session) -> bool:
            found = s.exec(self._live(upload_id, owner).with_for_update()).first()
            if found is None:
                return False
            delete_uploads(s, [upload_id])
            return True

        return self._db.run(work)

    def expire(self, before: float, *, dry_run: bool) -> int:
        """Delete uploads untouched since `before` (abandoned, or receipts of finished
        ones) with their parts; return how many (with `dry_run`, would be deleted).
        The rows are locked first, so a part being appended meanwhile either lands
        before (and the upload is no longer expired) or finds the upload gone."""

        def work(s: Session) -> int:
            query = select(col(Upload.id)).where(
                col(Upload.touched_at) < before, col(Upload.parent_id).is_(None)
            )
            ids = list(s.exec(query if dry_run else query.with_for_update()))
            if not dry_run:
                delete_uploads(s, ids)
            return len(ids)

        return self._db.run(work, write=not dry_run)

    def _live(self, upload_id: str, owner: UploadOwner) -> SelectOfScalar[Upload]:
        """SELECT of the TUS upload if it belongs to `owner` and is not past its time
        (an upload folder or its chunks are `UploadFolders`', never found here)."""
        return select(Upload).where(
            col(Upload.id) == upload_id,
            col(Upload.transfer).is_(None),
            col(Upload.parent_id).is_(None),
            *owner.clauses(),
            col(Upload.touched_at) >= time.time() - self.ttl,
        )

    def _advance(
        self, s: Session, upload: UploadRecord, offset: int, *, finish: bool = False
    ) -> None:
        """Move `upload` to `offset` (and touch it; with `finish`, mark it finished),
        only if it is live, unfinished and still at `upload.offset`; else `NotFound` or
        `Conflict`, saying which."""
        now = time.time()
        values: dict[str, Any] = {"offset": offset, "touched_at": now}
        if finish:
            values["finished_at"] = now
        moved = s.exec(
            update(Upload)
            .where(
                col(Upload.id) == upload.id,
                *upload.owner.clauses(),
                col(Upload.offset) == upload.offset,
                col(Upload.finished_at).is_(None),
                col(Upload.touched_at) >= now - self.ttl,
            )
            .values(**values)
        )
        if not moved.rowcount:
            self._explain_refusal(s, upload)

    def _explain_refusal(self, s: Session, upload: UploadRecord) -> None:
        """Raise why a conditional update of `upload` matched no row."""
        row = s.exec(self._live(upload.id, upload.owner)).first()
        if row is None:
            raise NotFound("no such upload")
        if row.finished_at is not None:
            raise Conflict("the upload is finished")
        raise Conflict(f"the upload is at offset {row.offset}, not {upload.offset}")


def delete_uploads(s: Session, ids: list[str]) -> None:
    """Delete uploads `ids` with their extents, and the chunks of those that are
    upload folders (`providers.catalog.upload_folders`) with theirs."""
    parents, ids = ids, list(ids)
    for begin in range(0, len(parents), IN_BATCH):
        batch = parents[begin : begin + IN_BATCH]
        ids += s.exec(select(col(Upload.id)).where(col(Upload.parent_id).in_(batch)))
    for begin in range(0, len(ids), IN_BATCH):
        batch = ids[begin : begin + IN_BATCH]
        s.exec(delete(UploadExtent).where(col(UploadExtent.upload_id).in_(batch)))
        s.exec(delete(Upload).where(col(Upload.id).in_(batch)))


def _record(row: Upload) -> UploadRecord:
    return UploadRecord(
        id=row.id,
        owner=UploadOwner(row.link_id, row.user_id),
        folder_id=row.folder_id,
        folder_path=tuple(name for name in row.folder_path.split("/") if name),
        name=row.name,
        length=row.length,
        offset=row.offset,
        touched_at=row.touched_at,
        finished=row.finished_at is not None,
        finished_name=row.finished_name,
        mtime=row.mtime,
        checksum=row.checksum,
        partial=row.partial,
    )


__all__ = ["DEFAULT_EXPIRY", "UploadOwner", "UploadRecord", "Uploads"]
