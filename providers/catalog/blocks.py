"""Blocks of the delta API in the catalog: which blocks a user may count as present,
and the blocks they staged (`StagedBlock`) before committing a file that names them.

Presence is per caller (design invariant 23): a block is present for user U only if

- a content U can read names it: a file of U's (in their home or trash, current or an
  old version), or a file at or below a node granted to U (directly or through a
  group), current or an old version; or
- U staged it within the time to live: received and hash-checked by the server
  (`token` NULL), or announced for a direct PUT (`token` set), which counts only once
  the stored object carries that token (the operations layer asks the object store;
  `Presence.direct` lists them).

The chunk table alone never decides it: that would tell a client that someone else
stores a given chunk (the confirmation-of-file attack).

GC counts staged chunks as referenced until their row expires (`Contents.collectable`,
`condemn`); `expire` (run by GC) drops rows older than the time to live.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, or_, text
from sqlmodel import Session, col, select

from providers.catalog.db import IN_BATCH, Database
from providers.catalog.direct import unindexed
from providers.catalog.schema import Extent, Grant, Membership, Node, StagedBlock, Version
from providers.catalog.uploads import DEFAULT_EXPIRY

# Nodes naming a content with one of :hashes (as current or old content), then their
# ancestors: the hashes found at a node granted to the user are readable through it.
# One statement whatever the depth; it runs only for users who received grants.
_SHARED = text(
    "WITH RECURSIVE up(h, size, id, parent) AS ("
    " SELECT e.chunk_hash, e.size, n.id, n.parent_id FROM extent e"
    " JOIN node n ON n.content_id = e.content_id WHERE e.chunk_hash IN :hashes"
    " UNION SELECT e.chunk_hash, e.size, n.id, n.parent_id FROM extent e"
    " JOIN version v ON v.content_id = e.content_id JOIN node n ON n.id = v.node_id"
    " WHERE e.chunk_hash IN :hashes"
    " UNION SELECT up.h, up.size, p.id, p.parent_id FROM node p JOIN up ON p.id = up.parent)"
    " SELECT DISTINCT h, size FROM up WHERE id IN :granted"
).bindparams(bindparam("hashes", expanding=True), bindparam("granted", expanding=True))


@dataclass(frozen=True)
class Presence:
    """Which of the asked blocks are present for a user: `present` for certain (hash
    -> size, as an extent or the server measured it, never the size a client
    announced); `direct` (hash -> token) staged for a direct PUT, present only if the
    object carries the token (its size is then the object's)."""

    present: dict[str, int] = field(default_factory=dict)
    direct: dict[str, str] = field(default_factory=dict)


class StagedBlocks:
    """Presence of blocks for a user, and their staged blocks (module docstring)."""

    def __init__(self, db: Database, ttl: float = DEFAULT_EXPIRY) -> None:
        self._db = db
        self.ttl = ttl

    def stage(self, user_id: int, sizes: Mapping[str, int], token: str | None) -> None:
        """Record the blocks (hash -> size) as staged by `user_id` now: received by the
        server (`token` None) or announced for a direct PUT signed with `token`. A row
        that exists is replaced (its time to live starts again)."""
        if not sizes:
            return
        now = time.time()
        rows = [
            {"user_id": user_id, "chunk_hash": h, "size": n, "token": token, "staged_at": now}
            for h, n in sorted(sizes.items())
        ]
        stmt = self._db.insert(StagedBlock)
        upsert = stmt.on_conflict_do_update(
            index_elements=["user_id", "chunk_hash"],
            set_={
                "size": stmt.excluded.size,
                "token": stmt.excluded.token,
                "staged_at": stmt.excluded.staged_at,
            },
        )
        with self._db.connection(write=True) as conn:
            conn.execute(upsert, rows)

    def present_for(self, user_id: int, hashes: Collection[str]) -> Presence:
        """Which of `hashes` are present for `user_id` (see `Presence`)."""
        wanted, presence = sorted(set(hashes)), Presence()
        with self._db.session() as s:
            for start in range(0, len(wanted), IN_BATCH):
                batch = wanted[start : start + IN_BATCH]
                self._staged_into(s, user_id, batch, presence)
                rest = [h for h in batch if h not in presence.present]
                presence.present.update(_own(s, user_id, rest))
                rest = [h for h in rest if h not in presence.present]
                presence.present.update(_shared(s, user_id, rest))
        for chunk_hash in presence.present:
            presence.direct.pop(chunk_hash, None)
        return presence

    def release(self, user_id: int, hashes: Iterable[str]) -> None:
        """Forget `user_id`'s staged rows of `hashes` (a commit now names them)."""
        wanted = sorted(set(hashes))

        def work(s: Session) -> None:
            for start in range(0, len(wanted), IN_BATCH):
                batch = wanted[start : start + IN_BATCH]
                s.exec(
                    delete(StagedBlock).where(
                        col(StagedBlock.user_id) == user_id,
                        col(StagedBlock.chunk_hash).in_(batch),
                    )
                )

        self._db.run(work)

    def expire(self, before: float, *, dry_run: bool) -> int:
        """Drop rows staged before `before`; return how many (with `dry_run`: would)."""

        def work(s: Session) -> int:
            old = col(StagedBlock.staged_at) < before
            if dry_run:
                return len(s.exec(select(col(StagedBlock.chunk_hash)).where(old)).all())
            return int(s.exec(delete(StagedBlock).where(old)).rowcount)

        return self._db.run(work, write=not dry_run)

    def _staged_into(self, s: Session, user_id: int, batch: list[str], presence: Presence) -> None:
        """Add the user's live staged rows among `batch` to `presence`."""
        rows = s.exec(
            select(
                col(StagedBlock.chunk_hash), col(StagedBlock.size), col(StagedBlock.token)
            ).where(
                col(StagedBlock.user_id) == user_id,
                col(StagedBlock.chunk_hash).in_(batch),
                col(StagedBlock.staged_at) >= time.time() - self.ttl,
            )
        ).all()
        for chunk_hash, size, token in rows:
            if token is None:
                presence.present[chunk_hash] = size
            else:
                presence.direct[chunk_hash] = token


def _own(s: Session, user_id: int, hashes: list[str]) -> dict[str, int]:
    """Those of `hashes` (with sizes) a content of a node `user_id` owns names (home
    or trash, current content or an old version): looked up by hash, the owner a
    filter only (`unindexed`; by the owner's index it read every node they own)."""
    if not hashes:
        return {}
    named = select(col(Extent.chunk_hash), col(Extent.size))
    current = named.join(Node, col(Node.content_id) == col(Extent.content_id)).where(
        col(Extent.chunk_hash).in_(hashes), unindexed(col(Node.owner_id)) == user_id
    )
    found = dict(s.exec(current.distinct()).all())
    rest = [h for h in hashes if h not in found]
    if rest:
        old = (
            named.join(Version, col(Version.content_id) == col(Extent.content_id))
            .join(Node, col(Node.id) == col(Version.node_id))
            .where(col(Extent.chunk_hash).in_(rest), unindexed(col(Node.owner_id)) == user_id)
        )
        found.update(s.exec(old.distinct()).all())
    return found


def _shared(s: Session, user_id: int, hashes: list[str]) -> dict[str, int]:
    """Those of `hashes` (with sizes) named by a file at or below a node granted to
    `user_id`."""
    if not hashes:
        return {}
    groups = select(col(Membership.group_id)).where(col(Membership.user_id) == user_id)
    granted = list(
        s.exec(
            select(col(Grant.node_id)).where(
                or_(col(Grant.user_id) == user_id, col(Grant.group_id).in_(groups))
            )
        ).all()
    )
    if not granted:
        return {}
    rows = s.connection().execute(_SHARED, {"hashes": hashes, "granted": granted})
    return {str(h): int(n) for h, n in rows.all()}
