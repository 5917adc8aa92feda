"""What push reads: `FeedSource`, the seam between waiting clients and the change feed.

Push (long poll and Server-Sent Events, `providers.push.hub`) never decides what a
user's feed holds; it asks a `FeedSource` whether anything is after a cursor, for the
entries after one (each with the cursor after it, for an event stream's `id:`), and
whose changes can reach a user's feed, so that the event of one user's commit wakes
only the waiters it may concern.

`ProvisionalFeed` is a PROVISIONAL implementation over today's change table (a user's
own rows, the cursor a plain `seq`), until the change feed's reader (issue 15, branch
i15-feed) implements `FeedSource` and replaces it in `davserver.app`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from providers.catalog import Catalog
from providers.catalog.provisional_changes import ChangeRow, ChangeScan
from providers.errors import BadCursor
from providers.operations import Actor, SharedSpace

Entry = dict[str, Any]  # one feed entry, as its JSON object


@dataclass(frozen=True)
class FeedPage:
    """Entries after a cursor: each as (the cursor after it, the entry), in commit
    order; `cursor` is where the next read starts (past the last entry, or further
    when the rows read held none for this user); `has_more`: read again at once."""

    entries: list[tuple[str, Entry]] = field(default_factory=list)
    cursor: str = ""
    has_more: bool = False


class FeedSource(Protocol):
    """A user's change feed, as push needs it. Cursors are opaque strings that the
    source hands out; any method given one it did not hand to this actor raises
    `BadCursor` (400), one older than the log keeps `CursorExpired` (410); the
    database being down raises `Unavailable`. Every method is safe from any thread."""

    def latest(self, actor: Actor) -> str:
        """The cursor of the feed's position now."""
        ...

    def interest(self, actor: Actor) -> frozenset[int]:
        """The ids of the users whose changes can reach `actor`'s feed: its own, and
        those of the owners of what it received (see `watch`)."""
        ...

    def has_changes_after(self, actor: Actor, cursor: str) -> bool:
        """Whether the feed has an entry after `cursor` now."""
        ...

    def read(self, actor: Actor, cursor: str | None, limit: int) -> FeedPage:
        """Up to `limit` entries after `cursor` (None: from the feed's start, as the
        feed's own endpoint reads without a cursor)."""
        ...

    def watch(self, mark: int | None) -> tuple[int, set[int]]:
        """For a watcher of the whole log: (the log's position now, the ids, as in
        `interest`, of the users whose feeds changed after `mark`); no ids for None."""
        ...


class ProvisionalFeed:
    """PROVISIONAL `FeedSource` (see the module docstring): a user's feed is the rows
    of their own tree, each entry `{"op", "path", "id", "at"}` with the row's kind as
    `op` and the path in their home; the cursor is the row's `seq` in decimal."""

    MAX_DIGITS = 18  # a seq is a 64-bit integer

    def __init__(self, catalog: Catalog, shares: SharedSpace) -> None:
        self._scan = ChangeScan(catalog.db)
        self._shares = shares

    def latest(self, actor: Actor) -> str:
        return str(self._scan.last_seq())

    def interest(self, actor: Actor) -> frozenset[int]:
        received = self._shares.entries(actor.user.id).values()
        return frozenset({actor.user.id, *(entry.node.owner_id for entry in received)})

    def has_changes_after(self, actor: Actor, cursor: str) -> bool:
        seq = self._seq(cursor)
        if self._scan.exists_after([actor.user.id], seq):
            return True
        self._refuse_future(seq)
        return False

    def read(self, actor: Actor, cursor: str | None, limit: int) -> FeedPage:
        seq = 0 if cursor is None else self._seq(cursor)
        rows = self._scan.after(actor.user.id, seq, limit)
        if not rows:
            self._refuse_future(seq)
            return FeedPage([], str(seq), False)
        entries = [(str(row.seq), _entry(row)) for row in rows]
        return FeedPage(entries, entries[-1][0], len(rows) == limit)

    def watch(self, mark: int | None) -> tuple[int, set[int]]:
        if mark is None:
            return self._scan.last_seq(), set()
        return self._scan.owners_after(mark)

    def _seq(self, cursor: str) -> int:
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= self.MAX_DIGITS):
            raise BadCursor("not a cursor of this server")
        return int(cursor)

    def _refuse_future(self, seq: int) -> None:
        """A cursor past the log's end was never handed out (waiting on it would miss
        every change up to it)."""
        if seq > self._scan.last_seq():
            raise BadCursor("not a cursor of this server")


def _entry(row: ChangeRow) -> Entry:
    return {"op": row.kind, "path": row.path, "id": row.node_id, "at": row.at}
