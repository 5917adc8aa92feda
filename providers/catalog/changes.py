"""Writing the change log: one row per mutation, in the mutation's transaction
(design invariant 5), in commit order (invariant 15), and the `rev` of every node from
the changed one up to its home bumped to the row's seq (folder ETags, invariant 16).

A row is a feed entry as it was true at its commit (`LoggedChange`): the feed reads
the log, never the tree, so an entry keeps meaning what it said after the tree moves
on. Kinds are the feed's ops: `created`, `modified`, `deleted`, `moved`, and, on rows
for one grantee user (`user_id`), `granted` and `revoked`.

Commit order: on PostgreSQL, `seq` comes from a sequence when the row is inserted,
and two transactions may commit in the other order, so a reader could pass a seq
whose row is not committed yet and never see it. Every writer of the log therefore
takes one transaction-level advisory lock (`lock_log`): seqs are handed out and
committed one transaction at a time, so every row below a visible seq is visible.
Mutations take it first, before any row lock (`logged`), since they then lock their
folders' rows to bump `rev`: so tree mutations are serialised on PostgreSQL as they
are on SQLite (one writer); the bytes of uploads are stored before, outside it, and a
file's commit inserts its new content rows before it too (`commit.add_content`).
Every statement under the lock is a round trip that all other writers wait for: on
PostgreSQL the row and its `rev` bumps are one statement.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    Update,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from providers.catalog.db import Database
from providers.catalog.direct import DirectRead, DirectWrite, insert_values
from providers.catalog.records import DIR, ChangeRecord, NodeRecord
from providers.catalog.schema import Change, Content, Node, Setting

T = TypeVar("T")
CREATED, MODIFIED, DELETED, MOVED = "created", "modified", "deleted", "moved"
GRANTED, REVOKED = "granted", "revoked"  # rows for one grantee user (`user_id`)
# a trash item put back: the feed gives it as `created` followed by what it holds
RESTORED = "restored"

# a fixed key of pg_advisory_xact_lock for the log's order (any 64-bit number that
# no other lock uses: the migration lock is another)
_LOG_LOCK_KEY = 0x64617663686E67  # "davchng"
_LOG_LOCK = DirectRead(select(func.pg_advisory_xact_lock(bindparam("key"))))
_LOG_LOCKED = "log_locked"  # conn.info: the transaction that holds the order lock
_LOGGED_COLUMNS = (
    "owner_id",
    "node_id",
    "kind",
    "path",
    "at",
    "user_id",
    "via_id",
    "old_owner_id",
    "old_path",
    "node_kind",
    "size",
    "etag",
    "sha256",
    "mtime",
)
_INSERT = DirectWrite(insert_values(Change, _LOGGED_COLUMNS).returning(col(Change.seq)))
_FILE_SHA256 = (
    select(col(Content.sha256))
    .join(Node, col(Node.content_id) == col(Content.id))
    .where(col(Node.id) == bindparam("node"))
)


def up_from_start() -> CTE:
    """The node `start` (a bound parameter) and its ancestors up to the home: one
    recursive query, whatever the depth (about 10 rows at depth 10)."""
    up = (
        select(col(Node.id), col(Node.parent_id))
        .where(col(Node.id) == bindparam("start"))
        .cte("up", recursive=True)
    )
    step = aliased(Node)
    return up.union_all(
        select(col(step.id), col(step.parent_id)).join(up, col(step.id) == up.c.parent_id)
    )


def _bumping(rev: Any, *, dialect: str) -> Update:
    """The update setting `rev` of node `start` and of its ancestors (`up_from_start`).
    On PostgreSQL the ids are matched as an array (`id = ANY(ARRAY(...))`), which is
    planned as lookups by the primary key: as `id IN (...)` the planner, estimating
    the recursive part at 101 rows, hashed it and scanned every node instead (1.2 ms
    warm, 11 ms cold, at 10,000 nodes in the full-stack soak, growing with the tree;
    0.1 ms by key)."""
    ids = select(up_from_start().c.id)
    if dialect == "postgresql":
        chain = col(Node.id) == any_(func.array(ids.scalar_subquery()))
    else:
        chain = col(Node.id).in_(ids)
    return update(Node).where(chain).values(rev=rev)


def _logging_and_bumping() -> Select[tuple[int]]:
    """PostgreSQL: the log's row inserted and the `rev` of node `start` and its
    ancestors set to its seq, in one statement (one round trip fewer while the order
    lock is held); it returns the seq."""
    logged = insert_values(Change, _LOGGED_COLUMNS).returning(col(Change.seq)).cte("logged")
    seq = select(logged.c.seq).scalar_subquery()
    bumped = _bumping(seq, dialect="postgresql")
    return select(logged.c.seq).add_cte(bumped.cte("bumped"))


# None is ever prepared: psycopg prepares a statement run five times, and PostgreSQL
# may then plan it once for any values, which made the bump take 8-24 ms on a tree of
# 100,000 nodes (0.2 ms planned for the values at hand; issue 16's delete/restore
# benchmark).
_BUMP = {
    dialect: DirectWrite(_bumping(bindparam("seq"), dialect=dialect), prepared=False)
    for dialect in ("postgresql", "sqlite")
}
_INSERT_AND_BUMP = DirectRead(_logging_and_bumping(), prepared=False)


def lock_log(conn: Connection) -> None:
    """Take the log's order lock (PostgreSQL; a no-op on SQLite, whose writer lock is
    held already) for the rest of the transaction. Mutations take it first, before
    any row lock: a transaction holding a folder's row and waiting for this lock,
    while the holder of this lock bumps that folder's `rev`, would deadlock."""
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    if transaction is None or conn.info.get(_LOG_LOCKED) is not transaction:
        _LOG_LOCK.rows(conn, {"key": _LOG_LOCK_KEY})
        # re-entrant without asking again: held until this transaction ends
        conn.info[_LOG_LOCKED] = conn.get_transaction()


def logged(work: Callable[[Session], T]) -> Callable[[Session], T]:
    """`work` (a `Database.run` transaction that logs changes) taking `lock_log` first."""

    def run(s: Session) -> T:
        lock_log(s.connection())
        return work(s)

    return run


@dataclass(frozen=True)
class LoggedChange:
    """One row of the log (see `providers.catalog.schema.Change` for each field)."""

    kind: str
    owner_id: int
    node_id: int
    path: str
    node_kind: str
    size: int | None = None
    etag: str | None = None
    sha256: str | None = None
    mtime: float | None = None
    old_path: str | None = None
    old_owner_id: int | None = None
    user_id: int | None = None
    via_id: int | None = None


def entry(
    kind: str,
    node: NodeRecord,
    path: str,
    *,
    old_path: str | None = None,
    old_owner_id: int | None = None,
    sha256: str | None = None,
) -> LoggedChange:
    """The row telling `kind` of `node` (as it is now) at `path` in its owner's home.
    A folder's etag is left out: it is its id and the row's seq (`folder_etag`). A
    file's `sha256` (of its whole content), when the caller does not give it, is read
    from its content by `log_change`."""
    return LoggedChange(
        kind=kind,
        owner_id=node.owner_id,
        node_id=node.id,
        path=path,
        node_kind=node.kind,
        size=None if node.kind == DIR else node.size,
        etag=None if node.kind == DIR else node.digest,
        sha256=sha256,
        mtime=node.mtime,
        old_path=old_path,
        old_owner_id=old_owner_id,
    )


def folder_etag(node_id: int, rev: int) -> str:
    """A folder's ETag: its id and the seq of the last change at or below it."""
    return f"{node_id}-{rev}"


def log_change(conn: Connection, change: LoggedChange, bump: Iterable[int] = ()) -> int:
    """Append `change` in the caller's transaction and set `rev` of each node in `bump`
    and of all their ancestors to its seq; return the seq. Call it after the tree rows
    are written (so a new node's ancestors exist) and as late as possible in the
    transaction (the order lock is held from here to the commit)."""
    lock_log(conn)  # taken already by a mutation (`logged`); re-entrant
    row = {name: getattr(change, name) for name in LoggedChange.__dataclass_fields__}
    if change.node_kind != DIR and change.sha256 is None and change.kind != DELETED:
        # NULL for contents written before checksums existed, until they are filled
        row["sha256"] = conn.execute(_FILE_SHA256, {"node": change.node_id}).scalar()
    row["at"] = time.time()
    starts = list(dict.fromkeys(bump))  # each chain once, in the order given
    if len(starts) == 1 and conn.dialect.name == "postgresql":
        return int(_INSERT_AND_BUMP.rows(conn, {**row, "start": starts[0]})[0].seq)
    seq = _INSERT.run(conn, row).rows[0].seq  # RETURNING it
    for start in starts:
        bump_revs(conn, start, seq)
    return int(seq)


def bump_revs(conn: Connection, start: int, seq: int) -> None:
    """Set `rev` of node `start` and of every ancestor up to its home to `seq` (one
    statement, never prepared: see `_BUMP`)."""
    _BUMP[conn.dialect.name].run(conn, {"start": start, "seq": seq})


FLOOR_SETTING = "change_floor"  # the last seq compaction removed (rows <= it are gone)
KEY_SETTING = "feed_key"  # the key that signs feed cursors (hex), made at first use

_COLUMNS = tuple(col(getattr(Change, name)) for name in ChangeRecord._fields)
_SETTING = select(col(Setting.value)).where(col(Setting.key) == bindparam("key"))
_LAST_SEQ = select(func.max(col(Change.seq)))
# built once: a waiting client reads its feed at every wake-up, and building the
# statement cost as much as running it (profile of `Feed.has_changes_after`)
_USER: BindParameter[int] = bindparam("user")
_OWN_TREE = and_(col(Change.owner_id) == _USER, col(Change.user_id).is_(None))
_SHARERS_TREES = and_(
    col(Change.owner_id).in_(bindparam("sharers", expanding=True)), col(Change.user_id).is_(None)
)
_FOR_USER = col(Change.user_id) == _USER


def _rows_where(*parts: ColumnElement[bool]) -> Select[tuple[Any, ...]]:
    return (
        select(*_COLUMNS)
        .where(col(Change.seq) >= bindparam("start"), or_(*parts))
        .order_by(col(Change.seq))
        .limit(bindparam("limit"))
    )


_ROWS_OWN = _rows_where(_OWN_TREE, _FOR_USER)
_ROWS_SHARED = _rows_where(_OWN_TREE, _FOR_USER, _SHARERS_TREES)
_USER_ROWS = (
    select(*_COLUMNS)
    .where(_FOR_USER, col(Change.kind).in_(bindparam("kinds", expanding=True)))
    .order_by(col(Change.seq))
)
_USER_ROWS_BEFORE = _USER_ROWS.where(col(Change.seq) < bindparam("before"))


class ChangeLog:
    """Reading and compacting the log (the writers are the mutations, `log_change`).

    Rows are returned in seq order, which is commit order (see the module docstring),
    so a reader that has seen every row up to a seq has seen every row it will ever
    see up to there."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def last_seq(self) -> int:
        """The seq of the newest row (0 for an empty log)."""
        with self._db.connection() as conn:
            return int(conn.execute(_LAST_SEQ).scalar() or 0)

    def floor(self) -> int:
        """Rows at or below this seq were compacted away (0: none ever were)."""
        with self._db.connection() as conn:
            value = conn.execute(_SETTING, {"key": FLOOR_SETTING}).scalar()
        return int(value or 0)

    def rows(
        self, user_id: int, sharers: Sequence[int], start: int, limit: int
    ) -> list[ChangeRecord]:
        """Up to `limit` rows from seq `start` on that may concern `user_id`: their own
        tree's, those for them alone, and those of the trees of `sharers`."""
        query = _ROWS_SHARED if sharers else _ROWS_OWN
        values = {"user": user_id, "start": start, "limit": limit, "sharers": list(sharers)}
        with self._db.connection() as conn:
            return [ChangeRecord._make(row) for row in conn.execute(query, values)]

    def user_rows(
        self, user_id: int, kinds: Sequence[str], before: int | None = None
    ) -> list[ChangeRecord]:
        """The rows for `user_id` alone of these kinds (below seq `before` if given),
        in order."""
        values = {"user": user_id, "kinds": list(kinds), "before": before}
        query = _USER_ROWS if before is None else _USER_ROWS_BEFORE
        with self._db.connection() as conn:
            return [ChangeRecord._make(row) for row in conn.execute(query, values)]

    def moves(self, owner_id: int, after: int, before: int) -> list[ChangeRecord]:
        """The `moved` rows of `owner_id`'s tree with `after` < seq < `before`."""
        query = (
            select(*_COLUMNS)
            .where(
                col(Change.owner_id) == owner_id,
                col(Change.user_id).is_(None),
                col(Change.kind) == MOVED,
                col(Change.seq) > after,
                col(Change.seq) < before,
            )
            .order_by(col(Change.seq))
        )
        with self._db.connection() as conn:
            return [ChangeRecord._make(row) for row in conn.execute(query)]

    def touched_after(self, mark: int) -> tuple[int, set[int]]:
        """(the newest seq, the users whose trees have rows after `mark`, with the
        users that rows for one user after it are for), for a watcher of the log."""
        owners = select(col(Change.seq), col(Change.owner_id), col(Change.user_id)).where(
            col(Change.seq) > mark
        )
        with self._db.connection() as conn:
            last, users = mark, set()
            for seq, owner_id, user_id in conn.execute(owners):
                last = max(last, int(seq or 0))
                users.add(owner_id if user_id is None else user_id)
        return last, users

    def key(self) -> bytes:
        """The key that signs cursors, made (random) and stored at first use."""
        with self._db.connection() as conn:
            value = conn.execute(_SETTING, {"key": KEY_SETTING}).scalar()
        if value:
            return bytes.fromhex(value)
        with self._db.connection(write=True) as conn:
            value = conn.execute(_SETTING, {"key": KEY_SETTING}).scalar()
            if value is None:
                value = secrets.token_hex(32)
                conn.execute(insert(Setting).values(key=KEY_SETTING, value=value))
        return bytes.fromhex(value)

    def compact(self, before: float) -> int:
        """Delete the rows committed before `before` (epoch seconds), but the newest
        row of all, and raise the floor to the last of them, in one transaction;
        return how many went. Cursors
        at or below the floor then get `CursorExpired`. The `granted` rows of shares
        still received are kept (a reader needs them to know its `Shared/` entries),
        with their path brought to where the shared node stood at the floor, since the
        `moved` rows that said where it went are deleted (`FeedView.at` applies only
        the moves after the floor)."""
        with self._db.connection(write=True) as conn:
            last = conn.execute(
                select(func.max(col(Change.seq))).where(col(Change.at) < before)
            ).scalar()
            # The newest row always stays: SQLite hands out max(seq) + 1, so with it
            # gone a new row could get a seq at or below the floor.
            newest = int(conn.execute(_LAST_SEQ).scalar() or 0)
            last = None if last is None else min(int(last), newest - 1)
            floor = int(conn.execute(_SETTING, {"key": FLOOR_SETTING}).scalar() or 0)
            if last is None or last <= floor:
                return 0
            kept = _live_grants(conn, last)
            for row in kept:
                moves = conn.execute(
                    select(*_COLUMNS)
                    .where(
                        col(Change.owner_id) == row.owner_id,
                        col(Change.user_id).is_(None),
                        col(Change.kind) == MOVED,
                        col(Change.seq) > max(row.seq, floor),
                        col(Change.seq) <= last,
                    )
                    .order_by(col(Change.seq))
                )
                path = _moved_path(row.path, [ChangeRecord._make(m) for m in moves])
                if path != row.path:
                    conn.execute(update(Change).where(col(Change.seq) == row.seq).values(path=path))
            keep = [row.seq for row in kept]
            gone = conn.execute(
                delete(Change).where(col(Change.seq) <= last, col(Change.seq).not_in(keep))
            ).rowcount
            conn.execute(delete(Setting).where(col(Setting.key) == FLOOR_SETTING))
            conn.execute(insert(Setting).values(key=FLOOR_SETTING, value=str(last)))
            return int(gone)


def _live_grants(conn: Connection, last: int) -> list[ChangeRecord]:
    """The `granted` rows at or below seq `last` whose share no later `revoked` row
    ended (per user and shared node, the newest granted row counts)."""
    rows = conn.execute(
        select(*_COLUMNS)
        .where(col(Change.kind).in_((GRANTED, REVOKED)), col(Change.user_id).is_not(None))
        .order_by(col(Change.seq))
    )
    state: dict[tuple[int | None, int | None], ChangeRecord | None] = {}
    for row in map(ChangeRecord._make, rows):
        state[(row.user_id, row.via_id)] = row if row.kind == GRANTED else None
    return [row for row in state.values() if row is not None and row.seq <= last]


def _moved_path(path: str, moves: list[ChangeRecord]) -> str:
    """Where `path` is after these `moved` rows of its owner's tree, in order."""
    for move in moves:
        old = move.old_path
        if old is not None and (path == old or path.startswith(old + "/")):
            path = move.path + path[len(old) :]
    return path


__all__ = [
    "CREATED",
    "FLOOR_SETTING",
    "ChangeLog",
    "DELETED",
    "GRANTED",
    "MODIFIED",
    "MOVED",
    "REVOKED",
    "LoggedChange",
    "bump_revs",
    "entry",
    "lock_log",
    "logged",
    "folder_etag",
    "log_change",
]
