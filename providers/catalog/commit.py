"""The commit of an upload: the one write transaction every PUT ends with.

It runs as prebuilt statements on the transaction's connection, not through the ORM:
on SQLite every commit holds the one writer lock, and the ORM's unit of work (objects,
flushes, identity map) made that about 3 ms per commit, which bounded small uploads.
The statements are built once at import, since building and cache-keying SQLAlchemy
expressions costs more than SQLite running them, and run on the driver's cursor
(`DirectRead`, `DirectWrite`), since SQLAlchemy's execution of them was three quarters
of the commit's CPU.

What the transaction does, in order: insert the content (with its checksums) and its
extents and settle its chunks (`add_content`, before the log's order lock); lock the
parent folder's row and find the file in it (`locked_folder_child`; or choose a free
name); charge the owner (`charge_used_bytes`); insert or update the node and add its
version row (`store_node`); log the change, bumping the `rev` of the file and its
folders. Any failure rolls all of it back. On PostgreSQL the node and its version,
and the log row and its bumps, are one statement each: every round trip under the
order lock is one every other writer waits for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Insert, Update, bindparam, insert, select, update
from sqlalchemy.orm import aliased
from sqlmodel import col

from providers.catalog.changes import CREATED, MODIFIED, entry, log_change
from providers.catalog.db import IN_BATCH
from providers.catalog.direct import DirectWrite, insert_values
from providers.catalog.history_usage import add_replaced
from providers.catalog.history_usage import refresh as refresh_history
from providers.catalog.records import FILE, NewContent, NodeRecord
from providers.catalog.rows import (
    charge_used_bytes,
    child_record,
    locked_folder_child,
    locked_folder_member,
)
from providers.catalog.schema import (
    CHUNK_DELETING,
    CHUNK_STORED,
    Chunk,
    Content,
    Extent,
    Node,
    Version,
)
from providers.errors import ChunkGone, Conflict
from providers.names import MAX_NAME_BYTES, name_key

MAX_RENAMES = 1000  # "name (2)" ... "name (1000)": past that the commit is refused


def _settling(chunks: ColumnElement[bool]) -> Update:
    """The update marking `chunks` stored and touched, unless GC is deleting them."""
    return (
        update(Chunk)
        .where(chunks, col(Chunk.state) != CHUNK_DELETING)
        .values(state=CHUNK_STORED, touched_at=bindparam("now"))
    )


def chunks_locked_in_order(hashes: str) -> ColumnElement[bool]:
    """A condition naming the chunks whose hashes are the list parameter `hashes`,
    whose rows it locks (FOR NO KEY UPDATE, an update's own lock) in the order of
    their hashes before any is changed. Writers updating chunk rows run side by side
    (commits settle before the log's order lock: design invariant 15; uploads claim
    in transactions of their own), and an update's scan locks rows in the order it
    finds them: in a sequential scan that is where each row's latest version happens
    to lie, which every such update moves, so two writers sharing chunks could lock
    them in opposite orders and deadlock."""
    chunk = aliased(Chunk)  # not correlated with the updated table
    locked = (
        select(col(chunk.hash))
        .where(col(chunk.hash).in_(bindparam(hashes, expanding=True)))
        .order_by(col(chunk.hash))
        .with_for_update(key_share=True)
    )
    # a subquery, not a CTE: Python's sqlite3 gives no rowcount for a statement that
    # starts with WITH, and PostgreSQL can never merge a locking subquery into the
    # update, so its rows come sorted and are locked as they come, whatever the plan
    return col(Chunk.hash).in_(locked)


_SETTLE = _settling(chunks_locked_in_order("hashes"))
# a small file's: one row, locked alone
_SETTLE_ONE = DirectWrite(_settling(col(Chunk.hash) == bindparam("hash")))
_NEW_CONTENT = DirectWrite(
    insert_values(Content, ("size", "digest", "created_at", "sha1", "md5", "sha256")).returning(
        col(Content.id)
    )
)
_NEW_EXTENTS = DirectWrite(
    insert_values(Extent, ("content_id", "seq", "offset", "size", "chunk_hash"))
)
_NODE_COLUMNS = (
    "parent_id",
    "name",
    "name_key",
    "kind",
    "owner_id",
    "content_id",
    "size",
    "mtime",
    "created",
    "content_type",
)
_NODE_ROW = insert_values(Node, _NODE_COLUMNS).returning(col(Node.id))
_NEW_NODE = DirectWrite(_NODE_ROW)


def _content_of_node() -> Update:
    """The update pointing node `node` at its new content (a new statement each time:
    SQLAlchemy keeps the columns a statement exports once they were asked for)."""
    return (
        update(Node)
        .where(col(Node.id) == bindparam("node"))
        .values(
            content_id=bindparam("content"),
            size=bindparam("new_size"),
            mtime=bindparam("new_mtime"),
            content_type=bindparam("new_type"),
        )
    )


_SET_CONTENT = DirectWrite(_content_of_node())
_VERSION_COLUMNS = ("node_id", "content_id", "size", "created_at", "author_id", "mtime")
_NEW_VERSION = DirectWrite(insert_values(Version, _VERSION_COLUMNS))


def _with_version(written: Insert | Update, content: str, size: str, mtime: str) -> DirectWrite:
    """PostgreSQL: `written` (a node row's insert or update, RETURNING its id) and the
    version row of the content it names, in one statement (a round trip fewer while
    the log's order lock is held); the version's values are the parameters named
    `content`, `size`, `mtime`, `created_at` and `author_id`. Returns the node's id."""
    node = written.cte("written")
    columns = Version.__table__.c  # type: ignore[attr-defined]
    values = [
        bindparam(name, type_=columns[column].type)
        for name, column in zip(
            (content, size, "created_at", "author_id", mtime), _VERSION_COLUMNS[1:], strict=True
        )
    ]
    rows = select(node.c.id, *values)
    return DirectWrite(
        insert(Version).from_select(_VERSION_COLUMNS, rows).returning(col(Version.node_id))
    )


_NEW_NODE_AND_VERSION = _with_version(_NODE_ROW, "content_id", "size", "mtime")
_SET_CONTENT_AND_VERSION = _with_version(
    _content_of_node().returning(col(Node.id)), "content", "new_size", "new_mtime"
)


@dataclass(frozen=True)
class FileCommit:
    """What to commit: `content` as file `name` in folder `parent_id` (see
    `Contents.commit_file` for the meaning of each field)."""

    parent_id: int
    name: str
    owner_id: int
    content: NewContent
    mtime: float
    content_type: str | None
    path: str
    author_id: int | None
    rename_on_clash: bool


def commit_file(conn: Connection, commit: FileCommit, content_id: int) -> tuple[NodeRecord, bool]:
    """Run the commit in the caller's write transaction, `content_id` naming the
    content row `add_content` inserted (and whose chunks it settled) for
    `commit.content`; return (node, created)."""
    content = commit.content
    now = time.time()
    name = commit.name
    found = locked_folder_child(conn, commit.parent_id, name)  # under the order lock
    if found is not None and commit.rename_on_clash:
        name, found = _free_name(conn, commit.parent_id, name), None
    if found is None:
        node = NodeRecord(
            0, commit.parent_id, name, FILE, commit.owner_id, 0, now, now, None, None, None
        )
    elif found.kind != FILE:
        raise Conflict("a collection has that name")
    else:
        node = found
    charge_used_bytes(conn, node.owner_id, content.size - node.size)
    node = node._replace(
        size=content.size,
        mtime=commit.mtime,
        content_id=content_id,
        digest=content.digest,
        content_type=commit.content_type or node.content_type,
    )
    node = store_node(conn, node, commit.author_id, now)
    if found is not None:
        add_replaced(conn, node.owner_id, found.content_id, content_id)
    logged = commit.path if name == commit.name else f"{commit.path.rsplit('/', 1)[0]}/{name}"
    sha256 = content.checksums.sha256 if content.checksums else None
    change = entry(CREATED if found is None else MODIFIED, node, logged, sha256=sha256)
    seq = log_change(conn, change, bump=[node.id])
    return node._replace(rev=seq), found is None


def switch_content(
    conn: Connection, node: NodeRecord, author_id: int | None, path: str
) -> NodeRecord:
    """In the caller's write transaction, make an existing file `node` (its fields
    already naming the content it switches to: content_id, digest, size, mtime) the
    stored one: charge the owner the difference, point the row at it, add its
    version row and log `modified` at `path`; return it with its new rev. The content
    exists already (a version being restored): no chunk is touched. What history
    alone keeps is measured again (design invariant 19)."""
    before = locked_folder_member(conn, node.parent_id or 0, node.id)
    if before is None:
        raise Conflict("the file is gone")
    charge_used_bytes(conn, node.owner_id, node.size - before.size)
    return _store_existing_content(conn, node, author_id, path, MODIFIED)


def place_content(
    conn: Connection, node: NodeRecord, author_id: int | None, path: str
) -> NodeRecord:
    """In the caller's write transaction, holding the log's order lock (`lock_log`),
    add `node` (id 0: a new file in folder `node.parent_id`, its fields naming an
    existing content) as a stored file: no chunk is written, the owner is charged its
    size, a version row is added and `created` logged at `path`. `Conflict` if the
    name is taken."""
    assert node.parent_id is not None and not node.id
    if locked_folder_child(conn, node.parent_id, node.name) is not None:
        raise Conflict(f"{node.name!r} exists")
    charge_used_bytes(conn, node.owner_id, node.size)
    return _store_existing_content(conn, node, author_id, path, CREATED)


def _store_existing_content(
    conn: Connection, node: NodeRecord, author_id: int | None, path: str, kind: str
) -> NodeRecord:
    """The common tail of `switch_content` and `place_content` (the owner charged
    already): store the row, add its version row, measure what history alone keeps
    (an old content may be current again: design invariant 19), log `kind` at `path`."""
    node = store_node(conn, node, author_id, time.time())
    refresh_history(conn, node.owner_id)
    seq = log_change(conn, entry(kind, node, path), bump=[node.id])
    return node._replace(rev=seq)


def settle_chunks(conn: Connection, hashes: set[str]) -> None:
    """Touch every chunk and mark it `stored` (the committing writer made its bytes
    durable); `ChunkGone` if one is missing or being deleted by GC."""
    ordered, now = sorted(hashes), time.time()
    if len(ordered) == 1:  # a small file's: the direct statement
        touched = _SETTLE_ONE.run(conn, {"hash": ordered[0], "now": now}).rowcount
    else:
        touched = sum(
            conn.execute(_SETTLE, {"hashes": ordered[at : at + IN_BATCH], "now": now}).rowcount
            for at in range(0, len(ordered), IN_BATCH)
        )
    if touched != len(ordered):
        raise ChunkGone("a chunk of this upload was garbage-collected before commit; retry")


def add_content(conn: Connection, content: NewContent) -> int:
    """Insert the content row and its extents in the caller's write transaction, and
    settle its chunks (`settle_chunks`: `ChunkGone` if GC is taking one); return the
    content's id. It runs before the log's order lock (`lock_log`), which a commit then
    holds for fewer statements: its rows are new, and the chunks' rows it locks (a
    key-share for the extents, the settling update) are rows no holder of the order
    lock waits for, since everything that settles chunks does it before taking that
    lock (design invariant 15) and GC, which deletes them, never takes it."""
    now = time.time()
    sums = content.checksums
    row = {
        "size": content.size,
        "digest": content.digest,
        "created_at": now,
        "sha1": sums.sha1 if sums else None,
        "md5": sums.md5 if sums else None,
        "sha256": sums.sha256 if sums else None,
    }
    content_id: int = _NEW_CONTENT.run(conn, row).rows[0].id  # RETURNING the new row's
    if content.extents:
        _NEW_EXTENTS.run_many(
            conn,
            [
                {
                    "content_id": content_id,
                    "seq": seq,
                    "offset": e.offset,
                    "size": e.size,
                    "chunk_hash": e.chunk_hash,
                }
                for seq, e in enumerate(content.extents)
            ],
        )
    settle_chunks(conn, {e.chunk_hash for e in content.extents})
    return content_id


def store_node(conn: Connection, node: NodeRecord, author_id: int | None, now: float) -> NodeRecord:
    """Insert a new node (id 0) or point an existing one at its new content, and add
    the version row of that content (`add_version`); return the node with its id. One
    statement on PostgreSQL."""
    merged = conn.dialect.name == "postgresql"
    version = {"created_at": now, "author_id": author_id}
    if node.id:
        values = {
            "node": node.id,
            "content": node.content_id,
            "new_size": node.size,
            "new_mtime": node.mtime,
            "new_type": node.content_type,
        }
        if merged:
            _SET_CONTENT_AND_VERSION.run(conn, {**values, **version})
        else:
            _SET_CONTENT.run(conn, values)
            add_version(conn, node, author_id, now)
        return node
    row = {
        "parent_id": node.parent_id,
        "name": node.name,
        "name_key": name_key(node.name),
        "kind": FILE,
        "owner_id": node.owner_id,
        "content_id": node.content_id,
        "size": node.size,
        "mtime": node.mtime,
        "created": node.created,
        "content_type": node.content_type,
    }
    if merged:
        node_id: int = _NEW_NODE_AND_VERSION.run(conn, {**row, **version}).rows[0].node_id
        return node._replace(id=node_id)
    node = node._replace(id=_NEW_NODE.run(conn, row).rows[0].id)  # RETURNING the new row's
    add_version(conn, node, author_id, now)
    return node


def add_version(conn: Connection, node: NodeRecord, author_id: int | None, now: float) -> None:
    """A version row for the node's new content; the earlier ones stay (history,
    thinned later by retention)."""
    row = {
        "node_id": node.id,
        "content_id": node.content_id,
        "size": node.size,
        "created_at": now,
        "author_id": author_id,
        "mtime": node.mtime,
    }
    _NEW_VERSION.run(conn, row)


def _free_name(conn: Connection, parent_id: int, name: str) -> str:
    """The first of "stem (2).ext", "stem (3).ext"... free in the folder (the caller
    holds its lock). The extension is what follows the last dot, unless that dot
    starts the name (".profile" has none); a stem too long for the suffix is cut (on a
    character boundary) so the name stays within `MAX_NAME_BYTES`."""
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    if len(ext.encode("utf-8")) > MAX_NAME_BYTES // 2:  # not an extension: a long tail
        stem, ext = name, ""
    for n in range(2, MAX_RENAMES + 1):
        suffix = f" ({n}){ext}"
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        short = stem.encode("utf-8")[: max(room, 1)].decode("utf-8", "ignore")
        candidate = short + suffix
        if child_record(conn, parent_id, candidate) is None:
            return candidate
    raise Conflict(f"too many files named like {name!r}")
