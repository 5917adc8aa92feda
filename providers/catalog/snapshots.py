"""What a snapshot of a home is built from (issue 16): read-only queries.

A snapshot (`providers.operations.snapshots`) is the home as it was at a moment,
rebuilt from the tree as it is now (the owner's nodes, trash included), the change
log rows since that moment (undone in reverse), and each file's version rows (its
content then). This module only reads those rows; it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, func, select, text
from sqlmodel import col

from providers.catalog.changes import DELETED, FLOOR_SETTING, MOVED
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.records import ChangeRecord, NodeRecord
from providers.catalog.rows import RECORD_COLUMNS
from providers.catalog.schema import Change, Content, Node, Setting, User, Version


class ContentThen(NamedTuple):
    """A file's content at a moment: which content, its size and digest (its ETag),
    the file's mtime then, and when that version was written."""

    content_id: int
    size: int
    digest: str
    mtime: float
    created: float


class SnapshotSource(NamedTuple):
    """The rows a snapshot is built from: the owner's home id, their nodes (home
    and trash, and nodes their log rows name that are elsewhere now, with what is
    below them), and their log rows since the moment, in seq order."""

    home_id: int
    nodes: list[NodeRecord]
    rows: list[ChangeRecord]


_NODES = select(*RECORD_COLUMNS).outerjoin(Content, col(Node.content_id) == col(Content.id))
_OWNED = _NODES.where(col(Node.owner_id) == bindparam("owner"))
_CHANGE_COLUMNS = tuple(col(getattr(Change, name)) for name in ChangeRecord._fields)
_SINCE = (
    select(*_CHANGE_COLUMNS)
    .where(
        col(Change.owner_id) == bindparam("owner"),
        col(Change.user_id).is_(None),
        col(Change.at) >= bindparam("cutoff"),
    )
    .order_by(col(Change.seq))
)
_TIMES = (
    select(col(Change.at))
    .where(
        col(Change.owner_id) == bindparam("owner"),
        col(Change.user_id).is_(None),
        col(Change.seq) > bindparam("floor"),
    )
    .order_by(col(Change.seq))
)
_FLOOR = select(col(Setting.value)).where(col(Setting.key) == FLOOR_SETTING)
_FIRST_AFTER = select(func.min(col(Change.at))).where(col(Change.seq) > bindparam("floor"))
_SUBTREES = (
    "WITH RECURSIVE t(id) AS (SELECT id FROM node WHERE id IN ({ids}) UNION ALL"
    " SELECT n.id FROM node n JOIN t ON n.parent_id = t.id) SELECT id FROM t"
)
_VERSIONS = (
    select(
        col(Version.node_id),
        col(Version.content_id),
        col(Version.size),
        col(Content.digest),
        col(Version.mtime),
        col(Version.created_at),
    )
    .join(Content, col(Content.id) == col(Version.content_id))
    .where(col(Version.node_id).in_(bindparam("ids", expanding=True)))
    .order_by(col(Version.node_id), col(Version.created_at), col(Version.id))
)


class SnapshotReads:
    """The reads of `SnapshotSource`s, file contents at a moment, and the window of
    moments the log still covers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def source(self, owner_id: int, cutoff: float) -> SnapshotSource | None:
        """The rows for `owner_id`'s home before `cutoff` (None: no such user). The
        nodes are read before the log: a change committed in between is then in both
        or in the log only, and undoing it where it was not applied is harmless."""
        with self._db.connection() as conn:
            home_id = conn.execute(
                select(col(User.home_id)).where(col(User.id) == owner_id)
            ).scalar()
            if home_id is None:
                return None
            nodes = [NodeRecord._make(r) for r in conn.execute(_OWNED, {"owner": owner_id})]
            rows = [
                ChangeRecord._make(r)
                for r in conn.execute(_SINCE, {"owner": owner_id, "cutoff": cutoff})
            ]
            known = {node.id for node in nodes}
            elsewhere = {
                row.node_id
                for row in rows
                if row.kind in (DELETED, MOVED) and row.node_id not in known
            }
            nodes += _subtrees(conn, elsewhere, known)
        return SnapshotSource(int(home_id), nodes, rows)

    def contents_at(self, node_ids: Iterable[int], cutoff: float) -> dict[int, ContentThen]:
        """Each file's content before `cutoff`: its newest version row written before
        it; a file none of whose kept rows is that old (retention thinned them) gets
        its oldest kept one. Files without any version row are left out."""
        ids, found = sorted(set(node_ids)), {}
        with self._db.connection() as conn:
            for start in range(0, len(ids), IN_BATCH):
                batch = ids[start : start + IN_BATCH]
                for node_id, content_id, size, digest, mtime, created in conn.execute(
                    _VERSIONS, {"ids": batch}
                ):
                    then = ContentThen(content_id, size, digest, mtime or created, created)
                    if node_id not in found or created < cutoff:
                        found[node_id] = then
        return found

    def change_times(self, owner_id: int) -> list[float]:
        """When each change of `owner_id`'s tree the log still holds was made, in order."""
        with self._db.connection() as conn:
            floor = int(conn.execute(_FLOOR).scalar() or 0)
            times = conn.execute(_TIMES, {"owner": owner_id, "floor": floor}).scalars()
            return [float(at) for at in times]

    def window_start(self) -> float | None:
        """The earliest moment whose snapshot the log still allows: the time of the
        oldest row compaction left (None: nothing was ever compacted, so any)."""
        with self._db.connection() as conn:
            floor = int(conn.execute(_FLOOR).scalar() or 0)
            if not floor:
                return None
            first = conn.execute(_FIRST_AFTER, {"floor": floor}).scalar()
        return float("inf") if first is None else float(first)


def _subtrees(conn: Connection, roots: set[int], known: set[int]) -> list[NodeRecord]:
    """The nodes at and below `roots` (gone ones are not there) not in `known`."""
    ids = sorted(roots)
    found: list[NodeRecord] = []
    for start in range(0, len(ids), IN_BATCH):
        batch = ids[start : start + IN_BATCH]
        marks = ", ".join(f":r{i}" for i in range(len(batch)))
        query = text(_SUBTREES.format(ids=marks))
        below = {int(i) for (i,) in conn.execute(query, {f"r{i}": v for i, v in enumerate(batch)})}
        wanted = sorted(below - known)
        for part in range(0, len(wanted), IN_BATCH):
            chunk = wanted[part : part + IN_BATCH]
            rows = conn.execute(_NODES.where(col(Node.id).in_(chunk)))
            found += [NodeRecord._make(r) for r in rows]
    return found
