"""Resumable uploads (TUS) in the catalog: an `Upload` row and the extents of its parts.

An upload is created with its target (a share link, a folder, names of sub-folders to
create below it, a file name) and its length. Each part (the body of one PATCH) is
appended by `append` in one transaction that

1. advances `offset` only if it still equals the part's start, so of two requests
   racing for one offset one wins and the other gets `Conflict`;
2. re-checks, as a commit does, that every chunk of the part is still `stored`,
   touching it (`ChunkGone` otherwise: GC took it, the client sends the part again);
3. inserts the part's extents, shifted to offsets from the upload's start.

From then on GC counts those chunks as referenced (`Contents.collectable`, `condemn`),
so an unfinished upload keeps them. The last part is never appended: `finish` commits
the whole content through `Contents.commit_file` (with automatic renaming) and retires
the upload in that same transaction, so a file is committed once or not at all. The
retired row stays as a receipt (offset = length, the name used) for clients whose
last answer was lost, until it expires.

Uploads idle for `UPLOAD_TTL` are gone for every caller; `expire` (run by GC) deletes
their rows, after which their chunks are ordinary garbage.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from providers.catalog.commit import settle_chunks
from providers.catalog.content import Contents
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.records import ExtentRecord, NewContent, NodeRecord
from providers.catalog.schema import Upload, UploadExtent
from providers.errors import Conflict, NotFound

UPLOAD_TTL = 24 * 3600.0  # an upload nobody touched for this long is abandoned


@dataclass(frozen=True)
class UploadRecord:
    """An upload as stored: `offset` of `length` bytes received; once `finished`, the
    file was committed as `finished_name` (None only if the process died between the
    commit and recording the name)."""

    id: str
    link_id: int | None
    folder_id: int
    folder_path: tuple[str, ...]
    name: str
    length: int
    offset: int
    touched_at: float
    finished: bool
    finished_name: str | None


class Uploads:
    """Create, find, extend, finish, cancel and expire resumable uploads."""

    def __init__(self, db: Database, contents: Contents, ttl: float = UPLOAD_TTL) -> None:
        self._db = db
        self._contents = contents
        self.ttl = ttl

    def create(
        self, link_id: int, folder_id: int, folder_path: Sequence[str], name: str, length: int
    ) -> UploadRecord:
        """A new, empty upload with a random id (`secrets.token_urlsafe`, unguessable:
        the id and the link together are what grants access to it)."""
        now = time.time()
        row = Upload(
            id=secrets.token_urlsafe(24),
            link_id=link_id,
            folder_id=folder_id,
            folder_path="/".join(folder_path),
            name=name,
            length=length,
            created_at=now,
            touched_at=now,
        )

        def work(s: Session) -> UploadRecord:
            s.add(row)
            return _record(row)

        return self._db.run(work)

    def get(self, upload_id: str, link_id: int) -> UploadRecord | None:
        """The upload `upload_id` made through link `link_id`, or None if there is none,
        it belongs to another link, or it has been idle past the time to live."""
        with self._db.session() as s:
            row = s.exec(self._live(upload_id, link_id)).first()
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

    def append(
        self, upload: UploadRecord, extents: Sequence[ExtentRecord], size: int
    ) -> UploadRecord:
        """Record a part of `size` bytes at `upload.offset` (its `extents` count from the
        part's start) and advance the offset (see the module docstring); return the
        upload as it is now. The part must not complete the upload (that is `finish`'s
        job). `Conflict` if the offset moved since `upload` was read, `NotFound` if the
        upload is gone, `ChunkGone` if GC took a chunk of the part."""
        start = upload.offset
        if size <= 0 or start + size >= upload.length:
            raise ValueError("a part must be non-empty and leave the upload unfinished")

        def work(s: Session) -> UploadRecord:
            self._advance(s, upload, start + size)
            # The upload row is locked first, then the chunks: `finish` takes them in the
            # same order, so two requests on one upload cannot deadlock.
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

    def finish(
        self,
        upload: UploadRecord,
        parent_id: int,
        owner_id: int,
        content: NewContent,
        *,
        path: str,
        mtime: float,
    ) -> NodeRecord:
        """Commit `content` (the whole upload) as a new file in `parent_id`, renamed
        "name (2).ext"... if the name is taken, and retire the upload in the same
        transaction (only if its offset is still `upload.offset`: `Conflict`
        otherwise). Raises what `Contents.commit_file` raises (`QuotaExceeded`,
        `ChunkGone`, `Conflict`); then nothing changed and the upload can go on."""

        def retire(s: Session) -> None:
            self._advance(s, upload, upload.length, finish=True)
            s.exec(delete(UploadExtent).where(col(UploadExtent.upload_id) == upload.id))

        node, _created = self._contents.commit_file(
            parent_id,
            upload.name,
            owner_id,
            content,
            mtime=mtime,
            content_type=None,  # guessed from the name when served, never the sender's say
            path=path,
            author_id=None,
            rename_on_clash=True,
            before=retire,
        )

        def record_name(s: Session) -> None:
            s.exec(
                update(Upload).where(col(Upload.id) == upload.id).values(finished_name=node.name)
            )

        self._db.run(record_name)
        return node

    def cancel(self, upload_id: str, link_id: int) -> bool:
        """Delete the upload and its parts (their chunks become garbage); False if link
        `link_id` has no such live upload. A finished upload's receipt goes too; the
        committed file stays."""

        def work(s: Session) -> bool:
            found = s.exec(self._live(upload_id, link_id).with_for_update()).first()
            if found is None:
                return False
            _delete_uploads(s, [upload_id])
            return True

        return self._db.run(work)

    def expire(self, before: float, *, dry_run: bool) -> int:
        """Delete uploads untouched since `before` (abandoned, or receipts of finished
        ones) with their parts; return how many (with `dry_run`, would be deleted).
        The rows are locked first, so a part being appended meanwhile either lands
        before (and the upload is no longer expired) or finds the upload gone."""

        def work(s: Session) -> int:
            query = select(col(Upload.id)).where(col(Upload.touched_at) < before)
            ids = list(s.exec(query if dry_run else query.with_for_update()))
            if not dry_run:
                _delete_uploads(s, ids)
            return len(ids)

        return self._db.run(work, write=not dry_run)

    def _live(self, upload_id: str, link_id: int | None) -> SelectOfScalar[Upload]:
        """SELECT of the upload if it belongs to the link and is not past its time."""
        return select(Upload).where(
            col(Upload.id) == upload_id,
            col(Upload.link_id) == link_id,
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
                col(Upload.link_id) == upload.link_id,
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
        row = s.exec(self._live(upload.id, upload.link_id)).first()
        if row is None:
            raise NotFound("no such upload")
        raise Conflict(f"the upload is at offset {row.offset}, not {upload.offset}")


def _delete_uploads(s: Session, ids: list[str]) -> None:
    for begin in range(0, len(ids), IN_BATCH):
        batch = ids[begin : begin + IN_BATCH]
        s.exec(delete(UploadExtent).where(col(UploadExtent.upload_id).in_(batch)))
        s.exec(delete(Upload).where(col(Upload.id).in_(batch)))


def _record(row: Upload) -> UploadRecord:
    return UploadRecord(
        id=row.id,
        link_id=row.link_id,
        folder_id=row.folder_id,
        folder_path=tuple(name for name in row.folder_path.split("/") if name),
        name=row.name,
        length=row.length if row.length is not None else -1,  # deferred: not used by links yet
        offset=row.offset,
        touched_at=row.touched_at,
        finished=row.finished_at is not None,
        finished_name=row.finished_name,
    )


__all__ = ["UPLOAD_TTL", "UploadRecord", "Uploads"]
