"""What push reads: `FeedSource`, the seam between waiting clients and the change feed.

Push (long poll and Server-Sent Events, `providers.push.hub`) never decides what a
user's feed holds; it asks a `FeedSource` whether anything is after a cursor, for the
entries after one (each carrying the cursor after it, for an event stream's `id:`),
and whose changes can reach a user's feed, so that the event of one user's commit
wakes only the waiters it may concern. `providers.operations.Feed` (the change feed's
read side) is the implementation; unit tests of the hub use a list.
"""

from __future__ import annotations

from typing import Protocol

from providers.operations import Actor
from providers.operations.feed import Page


class FeedSource(Protocol):
    """A user's change feed, as push needs it (see `providers.operations.feed` for the
    full contract). Cursors are opaque strings that the source hands out, each bound
    to a `path` of the user's view; any method given one it did not hand to this actor
    for this path raises `BadCursor` (400) or `Forbidden` (403), one older than the log
    keeps `CursorExpired` (410); the database being down raises `Unavailable`. Every
    method is safe from any thread."""

    def latest(self, actor: Actor, path: str = "/") -> str:
        """The cursor of the feed's position now."""
        ...

    def interest(self, actor: Actor) -> frozenset[int]:
        """The ids of the users whose changes can reach `actor`'s feed: its own, and
        those of the owners of what it received (see `watch`)."""
        ...

    def has_changes_after(self, actor: Actor, cursor: str, path: str = "/") -> bool:
        """Whether the feed has an entry after `cursor` now."""
        ...

    def read(self, actor: Actor, cursor: str | None, limit: int, path: str = "/") -> Page:
        """Up to `limit` entries after `cursor`, each with the cursor after it (None:
        the bootstrap listing first, as the feed's own endpoint reads without one)."""
        ...

    def watch(self, mark: int | None) -> tuple[int, set[int]]:
        """For a watcher of the whole log: (the log's position now, the ids, as in
        `interest`, of the users whose feeds changed after `mark`); no ids for None."""
        ...
