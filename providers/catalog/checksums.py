"""The stored whole-content checksums of contents (`Content.sha1`, `md5`, `sha256`).

A commit writes them with the content (`providers.catalog.commit`). Contents written
before they existed have NULLs; `fill` sets them once, computed from the bytes (the
`davserver checksums` command, or a full GET that streamed the whole content anyway).
A content is immutable, so its checksums never change once set: `fill` only writes
NULL columns, and two fillers racing write the same values.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, bindparam, exists, update
from sqlmodel import col, select

from providers.catalog.db import IN_BATCH, Database
from providers.catalog.schema import Content, Node, Version
from providers.checksums import Checksums

_FILL = (
    update(Content)
    .where(col(Content.id) == bindparam("content"), col(Content.sha256).is_(None))
    .values(sha1=bindparam("s1"), md5=bindparam("m5"), sha256=bindparam("s256"))
)
# prebuilt: every GET and listing asks (a Core statement compiled once, no ORM rows)
_OF = select(col(Content.id), col(Content.sha1), col(Content.md5), col(Content.sha256)).where(
    col(Content.id).in_(bindparam("ids", expanding=True))
)


def from_columns(sha1: str | None, md5: str | None, sha256: str | None) -> Checksums | None:
    """A content row's checksum columns as `Checksums`, None unless all three are set
    (a content written before they were kept, not filled yet)."""
    if sha1 and md5 and sha256:
        return Checksums(sha1=sha1, md5=md5, sha256=sha256)
    return None


class ContentChecksums:
    """Read and fill the checksums of contents."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def of(self, content_ids: Iterable[int]) -> dict[int, Checksums]:
        """The checksums of each content that has them (one query per `IN_BATCH` ids;
        a listing asks once for all its members)."""
        ids = sorted(set(content_ids))
        found: dict[int, Checksums] = {}
        with self._db.connection() as conn:
            for start in range(0, len(ids), IN_BATCH):
                rows = conn.execute(_OF, {"ids": ids[start : start + IN_BATCH]})
                for content_id, sha1, md5, sha256 in rows:
                    checksums = from_columns(sha1, md5, sha256)
                    if content_id is not None and checksums is not None:
                        found[content_id] = checksums
        return found

    def get(self, content_id: int | None) -> Checksums | None:
        """The checksums of one content, None if it has none (yet) or is None."""
        return self.of([content_id]).get(content_id) if content_id else None

    def of_digest(self, digest: str, size: int) -> Checksums | None:
        """The checksums of some content with this digest and size that has them: the
        same bytes (`content_digest` names them), so the same checksums."""
        query = (
            select(col(Content.sha1), col(Content.md5), col(Content.sha256))
            .where(
                col(Content.digest) == digest,
                col(Content.size) == size,
                col(Content.sha256).is_not(None),
            )
            .limit(1)
        )
        with self._db.session() as s:
            row = s.exec(query).first()
        if row is None or not all(row):
            return None
        sha1, md5, sha256 = row
        return Checksums(sha1=str(sha1), md5=str(md5), sha256=str(sha256))

    def fill(self, content_id: int, checksums: Checksums) -> bool:
        """Store the checksums of a content that has none; True if this call stored
        them (False: someone did before, or the content is gone)."""
        values = {
            "content": content_id,
            "s1": checksums.sha1,
            "m5": checksums.md5,
            "s256": checksums.sha256,
        }
        with self._db.connection(write=True) as conn:
            return bool(conn.execute(_FILL, values).rowcount)

    def missing(self, after: int = 0, limit: int = 1000) -> list[tuple[int, int]]:
        """(id, size) of contents in use (by a file or a version) without checksums,
        with ids above `after`, in id order: a page of the maintenance command's work."""
        query = (
            select(col(Content.id), col(Content.size))
            .where(col(Content.sha256).is_(None), col(Content.id) > after, _in_use())
            .order_by(col(Content.id))
            .limit(limit)
        )
        with self._db.session() as s:
            return [(i, n) for i, n in s.exec(query).all() if i is not None]


def _in_use() -> ColumnElement[bool]:
    """The condition "a node or a version names this content"."""
    return exists().where(col(Node.content_id) == col(Content.id)) | exists().where(
        col(Version.content_id) == col(Content.id)
    )
