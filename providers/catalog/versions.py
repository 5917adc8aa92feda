"""Reading a file's history: its version rows (`schema.Version`), one per write.

The newest row is the file's current content (`Node.content_id`); the others are its
old versions, which retention thins (`providers.operations.retention`).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlmodel import col

from providers.catalog.db import Database
from providers.catalog.records import VersionRecord
from providers.catalog.schema import Content, Version

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
    )
    .join(Content, col(Content.id) == col(Version.content_id))
    .where(col(Version.node_id) == bindparam("node"))
    .order_by(col(Version.created_at).desc(), col(Version.id).desc())
)


class Versions:
    """The version rows of files."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def history(self, node_id: int) -> list[VersionRecord]:
        """Every version row of the file, newest (its current content) first."""
        with self._db.connection() as conn:
            return [VersionRecord._make(row) for row in conn.execute(_OF_NODE, {"node": node_id})]

    def old(self, node_id: int) -> list[VersionRecord]:
        """The file's old versions, newest first: its history without the current."""
        return self.history(node_id)[1:]
