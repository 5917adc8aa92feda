"""PROVISIONAL: plain reads of today's `change` table, for the push endpoints
(`providers.push`) until the change feed's own reader replaces them.

The change feed (issue 15, branch i15-feed) gives the log its entry fields, rows for
grantees and opaque cursors; until it lands, long poll and Server-Sent Events work on
what the table holds now: a user's own rows, in `seq` order. Only
`providers.push.source.ProvisionalFeed` uses this module, and both go when the feed's
reader is wired in (see `providers.push.source.FeedSource`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import col, select

from providers.catalog.db import IN_BATCH, Database
from providers.catalog.schema import Change


@dataclass(frozen=True)
class ChangeRow:
    """One row of the change log as it stands (see `providers.catalog.schema.Change`)."""

    seq: int
    owner_id: int
    node_id: int
    kind: str
    path: str
    at: float


class ChangeScan:
    """Reads of the change log by `seq` (its primary key: every query is a range)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def after(self, owner_id: int, seq: int, limit: int) -> list[ChangeRow]:
        """The first `limit` rows of `owner_id`'s tree after `seq`, in `seq` order."""
        query = (
            select(Change)
            .where(col(Change.owner_id) == owner_id, col(Change.seq) > seq)
            .order_by(col(Change.seq))
            .limit(limit)
        )
        with self._db.session() as s:
            rows = s.exec(query).all()
        return [ChangeRow(r.seq or 0, r.owner_id, r.node_id, r.kind, r.path, r.at) for r in rows]

    def exists_after(self, owner_ids: Collection[int], seq: int) -> bool:
        """Whether any row of these owners' trees is after `seq`."""
        ids = list(owner_ids)[:IN_BATCH]
        query = (
            select(col(Change.seq))
            .where(col(Change.owner_id).in_(ids), col(Change.seq) > seq)
            .limit(1)
        )
        with self._db.session() as s:
            return s.exec(query).first() is not None

    def last_seq(self) -> int:
        """The newest row's `seq`, 0 for an empty log."""
        with self._db.session() as s:
            return int(s.exec(select(func.max(col(Change.seq)))).one() or 0)

    def owners_after(self, seq: int) -> tuple[int, set[int]]:
        """(the newest `seq`, the owners with rows after `seq`): what a log watcher
        needs to wake only the waiters those rows concern."""
        newest = func.max(col(Change.seq))
        query = (
            select(col(Change.owner_id), newest)
            .where(col(Change.seq) > seq)
            .group_by(col(Change.owner_id))
        )
        with self._db.session() as s:
            rows = s.exec(query).all()
        return max((int(r[1] or 0) for r in rows), default=seq), {int(r[0]) for r in rows}
