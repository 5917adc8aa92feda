"""Reading a file's history: its version rows (`schema.Version`), one per write.

The newest row is the file's current content (`Node.content_id`); the others are its
old versions, which retention thins (`providers.operations.retention`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from sqlalchemy import Connection, bindparam, delete, func, select
from sqlmodel import Session, col

from providers.catalog.changes import lock_log, logged
from providers.catalog.commit import place_content, settle_chunks, switch_content
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.history_usage import refresh as refresh_history
from providers.catalog.records import NodeRecord, VersionRecord
from providers.catalog.rows import NODE_BY_ID
from providers.catalog.schema import Content, Extent, Node, Version
from providers.errors import Conflict, NotFound

_OWNER = select(col(Node.owner_id)).where(col(Node.id) == bindparam("node"))
_OF_NODE = (
    select(
        col(Version.id),
        col(Version.node_id),
        col(Version.content_id),
        col(Version.size),
        col(Version.created_at),
        col(Version.author_id),
        col(Version.mtime),
        col(Content.sha256),
        col(Content.digest),
    )
    .join(Content, col(Content.id) == col(Version.content_id))
    .where(col(Version.node_id) == bindparam("node"))
    .order_by(col(Version.created_at).desc(), col(Version.id).desc())
)


# files with old versions, by id, a page at a time (thinning walks them all)
_WITH_OLD = (
    select(col(Version.node_id))
    .where(col(Version.node_id) > bindparam("after"))
    .group_by(col(Version.node_id))
    .having(func.count() > 1)
    .order_by(col(Version.node_id))
    .limit(bindparam("limit"))
)


class Versions:
    """The version rows of files."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def history(self, node_id: int) -> list[VersionRecord]:
        """Every version row of the file, newest (its current content) first."""
        with self._db.connection() as conn:
            return self._history_in(conn, node_id)

    def old(self, node_id: int) -> list[VersionRecord]:
        """The file's old versions, newest first: its history without the current."""
        return self.history(node_id)[1:]

    def files_with_old(self, page: int = IN_BATCH) -> Iterator[int]:
        """The ids of the files that have old versions, in order, read a page at a time
        (rows written meanwhile may or may not be seen)."""
        after = 0
        while True:
            with self._db.connection() as conn:
                ids = list(conn.execute(_WITH_OLD, {"after": after, "limit": page}).scalars())
            yield from ids
            if len(ids) < page:
                return
            after = ids[-1]

    def drop(self, node_id: int, version_ids: set[int], *, measure: bool = True) -> int:
        """Delete these old version rows of the file (never its current one: the newest
        row is kept whatever is asked); return how many went. Their contents become
        garbage for the next GC if nothing else names them. `measure`: make the owner's
        `history_bytes` exact afterwards (a caller dropping many files' versions does
        it once per owner: `measure_owners`)."""
        current = self.history(node_id)[:1]
        doomed = sorted(version_ids - {v.id for v in current})
        if not doomed:
            return 0
        gone = 0
        with self._db.connection(write=True) as conn:
            for start in range(0, len(doomed), IN_BATCH):
                batch = doomed[start : start + IN_BATCH]
                query = delete(Version).where(
                    col(Version.node_id) == node_id, col(Version.id).in_(batch)
                )
                gone += conn.execute(query).rowcount
            owner = conn.execute(_OWNER, {"node": node_id}).scalar()
            if measure and owner is not None:
                refresh_history(conn, owner)
        return gone

    def owner_of(self, node_id: int) -> int | None:
        """The owner of node `node_id` (None: it is gone)."""
        with self._db.connection() as conn:
            owner = conn.execute(_OWNER, {"node": node_id}).scalar()
        return None if owner is None else int(owner)

    def measure_owners(self, owner_ids: set[int]) -> None:
        """Make these owners' `history_bytes` exact (design invariant 19)."""
        for owner_id in sorted(owner_ids):
            with self._db.connection(write=True) as conn:
                refresh_history(conn, owner_id)

    def restore(
        self, node_id: int, version_id: int, author_id: int | None, path: str
    ) -> NodeRecord:
        """Make version `version_id` of file `node_id` its current content again, as a
        new version (the replaced content stays one too), with that version's mtime;
        logged as `modified` at `path`. `NotFound` for a file or version that is not
        there (or a version of another file), `QuotaExceeded` past the owner's quota."""

        def work(s: Session) -> NodeRecord:
            conn = s.connection()
            row = conn.execute(NODE_BY_ID, {"id": node_id}).first()
            if row is None:
                raise NotFound(path)
            node = NodeRecord._make(row)
            if node.is_dir:
                raise Conflict("a folder has no versions")
            wanted = [v for v in self._history_in(conn, node_id) if v.id == version_id]
            if not wanted:
                raise NotFound("no such version of this file")
            version = wanted[0]
            restored = node._replace(
                content_id=version.content_id,
                digest=version.digest,
                size=version.size,
                mtime=version.mtime if version.mtime is not None else time.time(),
            )
            return switch_content(conn, restored, author_id, path)

        return self._db.run(logged(work))

    def reuse(self, node: NodeRecord, author_id: int | None, path: str) -> NodeRecord:
        """Make the content `node` names (an existing one: `content_id`, `digest`,
        `size`, with `mtime`) the content of file `node.id`, or of a new file
        `node.name` in folder `node.parent_id` when `node.id` is 0; logged at `path`
        as `modified` or `created`. No byte is copied: the chunks are only checked
        and touched (`ChunkGone` if GC is taking one). `Conflict` when a new file's
        name is taken or the file became a folder, `QuotaExceeded` past the quota."""

        def work(s: Session) -> NodeRecord:
            conn = s.connection()
            hashes = select(col(Extent.chunk_hash)).where(col(Extent.content_id) == node.content_id)
            # chunks are settled before the log's order lock, as by every commit: a
            # holder of that lock never waits for a chunk's row (design invariant 15)
            settle_chunks(conn, set(conn.execute(hashes).scalars()))
            lock_log(conn)
            if not node.id:
                return place_content(conn, node, author_id, path)
            row = conn.execute(NODE_BY_ID, {"id": node.id}).first()
            if row is None:
                raise NotFound(path)
            current = NodeRecord._make(row)
            if current.is_dir:
                raise Conflict("a folder is there now")
            changed = current._replace(
                content_id=node.content_id, digest=node.digest, size=node.size, mtime=node.mtime
            )
            return switch_content(conn, changed, author_id, path)

        return self._db.run(work)

    @staticmethod
    def _history_in(conn: Connection, node_id: int) -> list[VersionRecord]:
        return [VersionRecord._make(row) for row in conn.execute(_OF_NODE, {"node": node_id})]
