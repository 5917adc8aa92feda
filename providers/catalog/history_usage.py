"""What history costs its owner (issue 16, design invariant 19).

An owner is charged `used_bytes` (the logical sizes of their files and of their trash
items: a delete and a restore move one row, so the trash is never re-measured on the
way) plus `history_bytes`: the bytes of the chunks their old versions name and none
of their files or trash items name, each chunk counted once. A version that shares
all but one chunk with the current content costs that one chunk.

`history_bytes` is kept as an upper bound while files are overwritten (`add_replaced`:
the replaced content's chunks that the new content lacks; another old version may name
some of them already) and made exact (`refresh`) whenever history shrinks: thinning,
a version restored, a trash item purged, and before a quota refusal (`make_room`), so
a 507 is only ever answered on the exact figure.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, text

from providers.catalog.db import Database
from providers.catalog.rows import subtree_file_bytes

_REPLACED_ONLY = text(
    "SELECT COALESCE(SUM(c.size), 0) FROM chunk c WHERE c.hash IN"
    " (SELECT chunk_hash FROM extent WHERE content_id = :old)"
    " AND c.hash NOT IN (SELECT chunk_hash FROM extent WHERE content_id = :new)"
)
# chunks an old version of the owner's names minus those a node of theirs names (a
# file's current content, or anything in their trash)
_HISTORY_ONLY = text(
    "SELECT COALESCE(SUM(c.size), 0) FROM chunk c WHERE c.hash IN"
    " (SELECT e.chunk_hash FROM extent e JOIN version v ON v.content_id = e.content_id"
    "  JOIN node n ON n.id = v.node_id WHERE n.owner_id = :owner)"
    " AND c.hash NOT IN"
    " (SELECT e.chunk_hash FROM extent e JOIN node n ON n.content_id = e.content_id"
    "  WHERE n.owner_id = :owner)"
)
_SET_HISTORY = text('UPDATE "user" SET history_bytes = :bytes WHERE id = :owner')
_ADD_HISTORY = text('UPDATE "user" SET history_bytes = history_bytes + :bytes WHERE id = :owner')
_USAGE = text('SELECT used_bytes, history_bytes, quota_bytes, trash_id FROM "user" WHERE id = :o')
# an old version: any row but the newest of its file (the newest is the current)
_OLDEST_VERSION = text(
    "SELECT v.id, v.node_id, v.created_at FROM version v JOIN node n ON n.id = v.node_id"
    " WHERE n.owner_id = :owner"
    " AND v.id < (SELECT MAX(w.id) FROM version w WHERE w.node_id = v.node_id)"
    " ORDER BY v.created_at, v.id LIMIT 1"
)
_OLDEST_TRASHED = text(
    "SELECT id, trashed_at, trash_path FROM node WHERE parent_id = :trash"
    " ORDER BY trashed_at, id LIMIT 1"
)


class Usage(NamedTuple):
    """An owner's space, split as the API and the quota properties report it."""

    current: int  # files in the home
    versions: int  # what old versions alone keep
    trash: int  # files in the trash
    quota: int | None

    @property
    def charged(self) -> int:
        return self.current + self.versions + self.trash


def add_replaced(conn: Connection, owner_id: int, old_content: int | None, new: int) -> None:
    """In the caller's transaction: content `old_content` of one of `owner_id`'s files
    was just replaced by `new` and became an old version; charge its chunks that `new`
    lacks to history (an upper bound, see the module docstring)."""
    if old_content is None or old_content == new:
        return
    replaced = conn.execute(_REPLACED_ONLY, {"old": old_content, "new": new}).scalar_one()
    if replaced:
        conn.execute(_ADD_HISTORY, {"owner": owner_id, "bytes": int(replaced)})


def refresh(conn: Connection, owner_id: int) -> int:
    """Make `owner_id`'s `history_bytes` exact in the caller's transaction; return it."""
    exact = int(conn.execute(_HISTORY_ONLY, {"owner": owner_id}).scalar_one())
    conn.execute(_SET_HISTORY, {"owner": owner_id, "bytes": exact})
    return exact


class HistoryUsage:
    """Measure an owner's space and find their oldest history (what
    `providers.operations.room` expires to make room)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def usage(self, owner_id: int) -> Usage:
        """The owner's space now: the trash is measured, `versions` is the kept figure."""
        with self._db.connection() as conn:
            used, history, quota, trash_id = conn.execute(_USAGE, {"o": owner_id}).one()
            trash = 0
            if trash_id is not None:
                # the trash root is a folder: its subtree's files are the items'
                trash = subtree_file_bytes(conn, trash_id)
        return Usage(int(used) - trash, int(history), trash, quota)

    def refresh(self, owner_id: int) -> int:
        """Make `owner_id`'s `history_bytes` exact; return it."""
        with self._db.connection(write=True) as conn:
            return refresh(conn, owner_id)

    def oldest(self, owner_id: int) -> OldestHistory:
        """The owner's oldest old version and oldest trash item (either may be None)."""
        with self._db.connection() as conn:
            trash_id = conn.execute(_USAGE, {"o": owner_id}).one().trash_id
            version = conn.execute(_OLDEST_VERSION, {"owner": owner_id}).first()
            item = None
            if trash_id is not None:
                item = conn.execute(_OLDEST_TRASHED, {"trash": trash_id}).first()
        return OldestHistory(
            None
            if version is None
            else OldVersion(version.id, version.node_id, version.created_at),
            None if item is None else OldItem(item.id, item.trashed_at, item.trash_path),
        )


class OldVersion(NamedTuple):
    id: int
    node_id: int
    created: float


class OldItem(NamedTuple):
    id: int
    trashed_at: float
    path: str


class OldestHistory(NamedTuple):
    version: OldVersion | None
    item: OldItem | None
