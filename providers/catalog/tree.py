"""The directory tree: lookups, listings and metadata-only mutations.

Every mutation is one transaction that also appends to the change log (DESIGN
invariant 5) and keeps the owner's `used_bytes` exact. On PostgreSQL, mutations lock
the parent directory row first (`FOR UPDATE`), which serialises changes to one
directory's names; SQLite serialises all writers anyway (`BEGIN IMMEDIATE`).
COPY, MOVE and DELETE touch rows only: never a chunk (invariant 4).

Names are kept as the client spelled them and looked up by `name_key` (their NFC
form, `providers.names`): a second spelling of a name is the same entry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import delete, text, update
from sqlmodel import Session, col, select

from providers.catalog.changes import (
    CREATED,
    DELETED,
    MODIFIED,
    MOVED,
    bump_revs,
    entry,
    log_change,
    logged,
)
from providers.catalog.commit import add_version
from providers.catalog.db import IN_BATCH, Database
from providers.catalog.history_usage import refresh as refresh_history
from providers.catalog.records import DIR, FILE, NodeRecord
from providers.catalog.rows import (
    CHILD_PROP_ROWS,
    CHILD_RECORDS,
    NODE_BY_ID,
    charge_used_bytes,
    find_child,
    lock_dir,
    names_below,
    node_select,
    path_names,
    resolve_names,
    subtrees_file_bytes,
    to_record,
)
from providers.catalog.schema import Content, Node, Prop, User
from providers.catalog.sharelog import log_moved_in, walk
from providers.catalog.subtrees import copy_rows, refuse_cycle, remove_subtree, transfer
from providers.catalog.trash import trash_subtree
from providers.errors import Conflict, NotFound
from providers.names import name_key

# the newest version row of a file that is its current content (to re-add as newest)
_DROP_CURRENT_ROW = text(
    "DELETE FROM version WHERE id = (SELECT MAX(id) FROM version"
    " WHERE node_id = :node AND content_id = :content)"
)
_INHERIT_VERSIONS = text(
    "INSERT INTO version (node_id, content_id, size, created_at, author_id, mtime)"
    " SELECT :to, content_id, size, created_at, author_id, mtime FROM version"
    " WHERE node_id = :from"
)


class Tree:
    """Queries and mutations of the node tree."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, node_id: int) -> NodeRecord | None:
        with self._db.session() as s:
            row = s.exec(node_select().where(col(Node.id) == node_id)).first()
            return to_record(row) if row else None

    def resolve(self, root_id: int, names: list[str]) -> NodeRecord | None:
        """The node at `names` below `root_id` (matched normalised), or None."""
        found = self.resolve_path(root_id, names)
        return found[0] if found else None

    def resolve_path(self, root_id: int, names: list[str]) -> tuple[NodeRecord, list[str]] | None:
        """The node at `names` below `root_id` and the stored spelling of each of those
        names, or None. Names are matched by `name_key`, so any spelling finds the node,
        and the returned names are the ones to show. Every request resolves its path, so
        this is one Core query whatever the depth (`rows.resolve_names`)."""
        with self._db.connection() as conn:
            return resolve_names(conn, root_id, names)

    def in_home(self, node_id: int) -> tuple[NodeRecord, tuple[str, ...]] | None:
        """Node `node_id` and the stored names of its path in its owner's home; None
        if it is gone or lies outside the home (in the trash). One query per level."""
        with self._db.session() as s:
            row = s.connection().execute(NODE_BY_ID, {"id": node_id}).first()
            if row is None:
                return None
            node = NodeRecord._make(row)
            home = s.exec(select(col(User.home_id)).where(col(User.id) == node.owner_id)).first()
            names = names_below(s, node_id, home)
        return None if names is None else (node, names)

    def children(self, dir_id: int) -> list[NodeRecord]:
        """Members of a directory, sorted by name (one query)."""
        with self._db.connection() as conn:
            return CHILD_RECORDS.rows(conn, {"parent": dir_id})

    def listing(self, dir_id: int) -> tuple[list[NodeRecord], dict[int, dict[str, str]]]:
        """Members of a directory sorted by name, and their dead properties
        ({node_id: {name: xml}}, every member present): two prebuilt Core queries in one
        read transaction on the driver's cursor, since every folder listing goes through
        here."""
        with self._db.connection() as conn:
            nodes: list[NodeRecord] = CHILD_RECORDS.rows(conn, {"parent": dir_id})
            found: dict[int, dict[str, str]] = {node.id: {} for node in nodes}
            for node_id, name, value in CHILD_PROP_ROWS.rows(conn, {"parent": dir_id}):
                found.setdefault(node_id, {})[name] = value
        return nodes, found

    def props(self, node_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Dead properties of many nodes at once: {node_id: {name: xml}}."""
        ids = list(node_ids)
        result: dict[int, dict[str, str]] = {i: {} for i in ids}
        with self._db.session() as s:
            for start in range(0, len(ids), IN_BATCH):
                batch = ids[start : start + IN_BATCH]
                for prop in s.exec(select(Prop).where(col(Prop.node_id).in_(batch))):
                    result[prop.node_id][prop.name] = prop.value
        return result

    def folder_bytes(self, folder_ids: Iterable[int]) -> dict[int, int]:
        """{folder id: bytes of the files below it, however deep} for every id given
        (one recursive query per `IN_BATCH` folders)."""
        ids = list(folder_ids)
        found = dict.fromkeys(ids, 0)
        with self._db.connection() as conn:
            for start in range(0, len(ids), IN_BATCH):
                batch = ids[start : start + IN_BATCH]
                for top, size in subtrees_file_bytes(conn, batch):
                    found[top] = int(size)
        return found

    def mkdir(self, parent_id: int, name: str, owner_id: int, path: str) -> NodeRecord:
        """Create an empty directory; `Conflict` if the name is taken."""

        def work(s: Session) -> NodeRecord:
            lock_dir(s, parent_id)
            if find_child(s, parent_id, name) is not None:
                raise Conflict("name exists")
            now = time.time()
            node = Node(
                parent_id=parent_id,
                name=name,
                name_key=name_key(name),
                kind=DIR,
                owner_id=owner_id,
                mtime=now,
                created=now,
            )
            s.add(node)
            s.flush()
            assert node.id is not None
            made = to_record((node, None))
            seq = log_change(s.connection(), entry(CREATED, made, path), bump=[node.id])
            return made._replace(rev=seq)

        return self._db.run(logged(work))

    def delete(self, node_id: int, path: str) -> None:
        """Delete a node and its subtree; `NotFound` if it is already gone."""

        def work(s: Session) -> None:
            node = s.get(Node, node_id)
            if node is None:
                raise NotFound(path)
            if node.parent_id is not None:
                lock_dir(s, node.parent_id)
            gone = to_record((node, None))
            remove_subtree(s, node_id)
            bump = [] if node.parent_id is None else [node.parent_id]
            log_change(s.connection(), entry(DELETED, gone, path), bump)

        self._db.run(logged(work))

    def move(
        self,
        node_id: int,
        dest_parent_id: int,
        dest_name: str,
        path: str,
        *,
        replace: bool = True,
        old_path: str | None = None,
        author_id: int | None = None,
    ) -> NodeRecord:
        """Rename/move one row, replacing whatever sits at the destination (`Conflict`
        instead when not `replace`; what it replaces goes to its owner's trash, deleted
        by `author_id`, and a file replacing a file takes over its history:
        `_replace_logged`); the node takes the spelling `dest_name`. A
        destination that is the node itself (a rename that only changes the spelling)
        just renames it. Moving into another owner's tree (through a share) hands the
        subtree to that owner (`subtrees.transfer`). Logged as one `moved` row from
        `old_path` (the node's path in its owner's home now; found when not given),
        after a `deleted` row for what it replaces; between owners, as a delete and
        creations (`_log_handed_over`)."""

        def work(s: Session) -> NodeRecord:
            old_parent = _parent_of(s, node_id)
            for dir_id in sorted({dest_parent_id, old_parent}):
                lock_dir(s, dir_id)
            refuse_cycle(s, node_id, dest_parent_id)
            source = old_path or "/" + "/".join(path_names(s, node_id))
            existing = find_child(s, dest_parent_id, dest_name)
            replaced = None
            if existing is not None and existing.id != node_id:
                if not replace:
                    raise Conflict(f"{dest_name!r} exists")
                replaced = _replace_logged(s, existing, path, author_id)
            node = s.get(Node, node_id)
            assert node is not None
            _inherit_history(s, replaced, node, author_id)
            old_owner = node.owner_id
            new_owner = s.exec(
                select(col(Node.owner_id)).where(col(Node.id) == dest_parent_id)
            ).first()
            if new_owner is not None and new_owner != node.owner_id:
                transfer(s, node_id, node.owner_id, new_owner)
                node.owner_id = new_owner
            node.parent_id, node.name = dest_parent_id, dest_name
            node.name_key = name_key(dest_name)
            s.add(node)
            s.flush()
            moved = to_record((node, _digest(s, node.content_id)))
            if old_owner != node.owner_id:
                seq = _log_handed_over(s, moved, path, old_owner, source, old_parent)
            else:
                change = entry(MOVED, moved, path, old_path=source)
                seq = log_change(s.connection(), change, bump=[old_parent, node_id])
                if old_parent != dest_parent_id:
                    log_moved_in(s, moved, path, old_parent)
            return moved._replace(rev=seq)

        return self._db.run(logged(work))

    def copy(
        self,
        node_id: int,
        dest_parent_id: int,
        dest_name: str,
        path: str,
        author_id: int | None = None,
        keep_replaced: bool = True,
    ) -> NodeRecord:
        """Copy a subtree as new rows sharing the same contents (no chunk is touched),
        replacing whatever sits at the destination (as `move` does: to the trash, and a
        file copied over a file takes over its history; unless not `keep_replaced`:
        then it is removed for good); `Conflict` if that is the source
        itself (another spelling of its own name). The copies belong to the destination
        folder's owner, who is charged their bytes (less those of what they replace):
        `QuotaExceeded` if that passes their quota, and nothing is copied."""

        def work(s: Session) -> NodeRecord:
            dest = lock_dir(s, dest_parent_id)
            refuse_cycle(s, node_id, dest_parent_id)
            existing = find_child(s, dest_parent_id, dest_name)
            if existing is not None and existing.id == node_id:
                raise Conflict("cannot copy a resource onto itself")
            replaced = None
            if existing is not None and keep_replaced:
                replaced = _replace_logged(s, existing, path, author_id)
            elif existing is not None:
                _remove_logged(s, existing, path)
            made, copied = copy_rows(s, node_id, dest_parent_id, dest_name, dest.owner_id)
            _inherit_history(s, replaced, made[0][0], author_id)
            charge_used_bytes(s.connection(), dest.owner_id, copied)
            return _log_copies(s, made, path)

        return self._db.run(logged(work))

    def set_mtime(self, node_id: int, mtime: float, path: str) -> None:
        """Set a node's modification time (logged as `modified` at `path`);
        `NotFound` if it is gone."""

        def work(s: Session) -> None:
            _owner_of(s, node_id, path)
            s.exec(update(Node).where(col(Node.id) == node_id).values(mtime=mtime))
            _log_modified(s, node_id, path)

        self._db.run(logged(work))

    def set_prop(self, node_id: int, name: str, value: str | None, path: str) -> None:
        """Write (or with None remove) one dead property (logged as `modified`
        at `path`); `NotFound` if the node is gone."""

        def work(s: Session) -> None:
            _owner_of(s, node_id, path)
            s.exec(delete(Prop).where(col(Prop.node_id) == node_id, col(Prop.name) == name))
            if value is not None:
                s.add(Prop(node_id=node_id, name=name, value=value))
            s.flush()
            _log_modified(s, node_id, path)

        self._db.run(logged(work))


def _replace_logged(s: Session, existing: Node, path: str, author_id: int | None) -> Node:
    """Put what a move or copy replaces at `path` in its owner's trash (nothing an
    overwrite replaces is lost: issue 16), logged as `deleted` (a client applying the
    feed then never merges the new node into the old one); return it."""
    trash_subtree(s, existing, path, author_id)
    return existing


def _remove_logged(s: Session, existing: Node, path: str) -> None:
    """Remove what a copy replaces at `path` for good (no room to keep it), logged as
    `deleted`."""
    assert existing.id is not None and existing.parent_id is not None
    gone = to_record((existing, None))
    remove_subtree(s, existing.id)
    s.flush()
    log_change(s.connection(), entry(DELETED, gone, path), bump=[existing.parent_id])
    refresh_history(s.connection(), gone.owner_id)


def _inherit_history(s: Session, replaced: Node | None, node: Node, author_id: int | None) -> None:
    """When file `node` replaced file `replaced` (a MOVE or COPY over it), the versions
    of `replaced`, its last content included, become `node`'s old versions too, so the
    path keeps its history as after a PUT; `node`'s current content is then re-added as
    its newest version row (the newest row is the current one). The rows are copied:
    the trashed file keeps its own."""
    if replaced is None or replaced.kind != FILE or node.kind != FILE:
        return
    conn = s.connection()
    conn.execute(_DROP_CURRENT_ROW, {"node": node.id, "content": node.content_id})
    conn.execute(_INHERIT_VERSIONS, {"to": node.id, "from": replaced.id})
    add_version(conn, to_record((node, None)), author_id, time.time())


def _log_copies(s: Session, made: list[tuple[Node, tuple[str, ...]]], path: str) -> NodeRecord:
    """Log one `created` row per node a copy made (parents first), then give each
    new node and the ancestors of the copy the last row's seq; return the copy's root."""
    conn, seq = s.connection(), 0
    for node, names in made:
        record = to_record((node, _digest(s, node.content_id)))
        seq = log_change(conn, entry(CREATED, record, "/".join((path, *names))))
    root = made[0][0]
    assert root.id is not None
    _set_revs(s, [node.id for node, _names in made if node.id is not None], root.id, seq)
    return to_record((root, _digest(s, root.content_id)))._replace(rev=seq)


def _log_handed_over(
    s: Session, moved: NodeRecord, path: str, old_owner: int, source: str, old_parent: int
) -> int:
    """Log a move into another owner's tree (through a share) as what each owner's
    feed needs: `deleted` at `source` for the old owner, and `created` for the node
    and everything below it for the new one (their readers never saw any of it);
    return the last seq. Ids stay: the nodes are the same."""
    conn = s.connection()
    gone = entry(DELETED, moved, source)
    log_change(conn, replace(gone, owner_id=old_owner, old_owner_id=None), bump=[old_parent])
    seq, ids = log_change(conn, entry(CREATED, moved, path)), [moved.id]
    for node, below in walk(conn, moved, path):
        seq = log_change(conn, entry(CREATED, node, below))
        ids.append(node.id)
    _set_revs(s, ids, moved.id, seq)
    return seq


def _set_revs(s: Session, ids: list[int], root_id: int, seq: int) -> None:
    """`rev` = `seq` for every node in `ids` (a subtree just logged, row by row) and
    for the ancestors of `root_id`: one statement per batch, not a walk up per node."""
    for start in range(0, len(ids), IN_BATCH):
        batch = ids[start : start + IN_BATCH]
        s.exec(update(Node).where(col(Node.id).in_(batch)).values(rev=seq))
    bump_revs(s.connection(), root_id, seq)


def _log_modified(s: Session, node_id: int, path: str) -> None:
    """Log a `modified` row for the node's properties or mtime (as they are now)."""
    conn = s.connection()
    row = conn.execute(NODE_BY_ID, {"id": node_id}).first()
    assert row is not None  # the caller found it, under the transaction
    log_change(conn, entry(MODIFIED, NodeRecord._make(row), path), bump=[node_id])


def _owner_of(s: Session, node_id: int, path: str) -> int:
    """The owner of `node_id`; `NotFound` (naming `path`) if the node is gone."""
    owner_id = s.exec(select(col(Node.owner_id)).where(col(Node.id) == node_id)).first()
    if owner_id is None:
        raise NotFound(path)
    return owner_id


def _parent_of(s: Session, node_id: int) -> int:
    node = s.get(Node, node_id)
    if node is None or node.parent_id is None:
        raise NotFound("source vanished")
    return node.parent_id


def _digest(s: Session, content_id: int | None) -> str | None:
    if content_id is None:
        return None
    return s.exec(select(col(Content.digest)).where(col(Content.id) == content_id)).first()


__all__ = ["Tree"]
