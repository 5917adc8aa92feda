"""The trash (issue 16): a deleted file or folder kept as it was, one row moved.

Each user's trash is a folder node outside their home (`User.trash_id`, made at the
first delete). Trashing re-parents the deleted subtree's root under it, renamed to
its own id (so names never clash there), and notes on that root when, by whom, and
from which path in the home (`Node.trashed_at`, `trashed_by`, `trash_path`): one row
update whatever the subtree's size; its members, contents, versions and props stay.
Nothing outside the home is reachable from a view (lookups start at the home), and
GC keeps every content a node names, so trashed bytes stay until purged.

The change log sees the ordinary operations: trashing logs `deleted` at the old path,
restoring logs one `restored` row for the root at its new path (the feed gives it as
`created` followed by what it holds, like a folder moved in: one row, so restore is
constant time too). Grants and share links inside the subtree are withdrawn when it
is trashed (as a delete did; a restore does not bring them back): the few shared
nodes are found from the grants and links, not by walking the subtree. Trashed bytes
stay charged to the owner until purged (`purge`: `remove_subtree` refunds them, and
what history alone keeps is measured again: design invariant 19).
"""

from __future__ import annotations

import time

from sqlmodel import Session, col, select

from providers.catalog.changes import DELETED, RESTORED, entry, log_change, logged
from providers.catalog.db import Database
from providers.catalog.history_usage import refresh as refresh_history
from providers.catalog.records import DIR, NodeRecord, TrashItemRecord
from providers.catalog.rows import find_child, lock_dir, subtree_file_bytes, to_record
from providers.catalog.schema import Content, Grant, Node, ShareLink, User
from providers.catalog.subtrees import remove_subtree, withdraw_sharing
from providers.errors import Conflict, NotFound
from providers.names import name_key

TRASH_NAME = ".trash"  # the name of a trash root (a root: no folder ever lists it)


class Trash:
    """Trash, list, restore and purge the items of users' trashes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, node_id: int, path: str, by_user_id: int | None) -> NodeRecord:
        """Move node `node_id` (at `path` in its owner's home) and what is below it to
        its owner's trash; return the item's root as it now is. `NotFound` if it is
        gone, `Conflict` for a home."""

        def work(s: Session) -> NodeRecord:
            node = s.get(Node, node_id)
            if node is None:
                raise NotFound(path)
            return trash_subtree(s, node, path, by_user_id)

        return self._db.run(logged(work))

    def items(self, owner_id: int) -> list[TrashItemRecord]:
        """The items of `owner_id`'s trash, newest first, each with the bytes of the
        files it holds."""
        with self._db.session() as s:
            trash_id = s.exec(select(col(User.trash_id)).where(col(User.id) == owner_id)).first()
            if trash_id is None:
                return []
            nodes = s.exec(
                select(Node)
                .where(col(Node.parent_id) == trash_id)
                .order_by(col(Node.trashed_at).desc(), col(Node.id).desc())
            ).all()
            return [_item(s, node) for node in nodes]

    def item(self, owner_id: int, item_id: int) -> TrashItemRecord:
        """Item `item_id` of `owner_id`'s trash; `NotFound` if it is not theirs."""
        with self._db.session() as s:
            return _item(s, _item_node(s, owner_id, item_id))

    def origin(self, owner_id: int, item_id: int) -> str:
        """The path in the home that item `item_id` of `owner_id`'s trash was deleted
        from (one row read, whatever the item holds); `NotFound` if it is not theirs."""
        with self._db.session() as s:
            path = _item_node(s, owner_id, item_id).trash_path
        assert path is not None
        return path

    def restore(
        self, owner_id: int, item_id: int, dest_parent_id: int, name: str, path: str
    ) -> NodeRecord:
        """Put trash item `item_id` back as `name` in folder `dest_parent_id` (at
        `path` in the owner's home); `Conflict` if that name is taken (the caller
        chooses a free one), `NotFound` if the item or the folder is gone."""

        def work(s: Session) -> NodeRecord:
            node = _item_node(s, owner_id, item_id)
            lock_dir(s, dest_parent_id)
            if find_child(s, dest_parent_id, name) is not None:
                raise Conflict(f"{name!r} exists")
            node.parent_id, node.name, node.name_key = dest_parent_id, name, name_key(name)
            node.trashed_at = node.trashed_by = node.trash_path = None
            s.add(node)
            s.flush()
            back = to_record((node, _digest(s, node.content_id)))
            seq = log_change(s.connection(), entry(RESTORED, back, path), bump=[node_id_of(node)])
            return back._replace(rev=seq)

        return self._db.run(logged(work))

    def expired(self, cutoff: float) -> list[tuple[int, int]]:
        """(owner id, item id) of every trash item deleted before `cutoff`, oldest first."""
        query = (
            select(col(Node.owner_id), col(Node.id))
            .join(User, col(User.trash_id) == col(Node.parent_id))
            .where(col(Node.trashed_at) < cutoff)
            .order_by(col(Node.trashed_at))
        )
        with self._db.session() as s:
            return [(owner, item) for owner, item in s.exec(query).all() if item is not None]

    def purge(self, owner_id: int, item_id: int) -> None:
        """Delete trash item `item_id` for good (its bytes are refunded; GC frees the
        chunks nothing else names); `NotFound` if it is not in `owner_id`'s trash."""

        def work(s: Session) -> None:
            remove_subtree(s, node_id_of(_item_node(s, owner_id, item_id)))
            refresh_history(s.connection(), owner_id)

        self._db.run(work)


def trash_subtree(s: Session, node: Node, path: str, by_user_id: int | None) -> NodeRecord:
    """In the caller's transaction: move `node` (at `path` in its owner's home) and what
    is below it to its owner's trash, logged as `deleted` at `path`; return the item's
    root as it now is. `Conflict` for a home."""
    if node.parent_id is None:
        raise Conflict("a home cannot be deleted")
    node_id = node_id_of(node)
    old_parent = node.parent_id
    lock_dir(s, old_parent)
    gone = to_record((node, _digest(s, node.content_id)))
    shared = _shared_within(s, node_id, node.owner_id)
    if shared:
        withdraw_sharing(s, shared)
    log_change(s.connection(), entry(DELETED, gone, path), bump=[old_parent])
    node.parent_id = _trash_root(s, node.owner_id)
    node.name = node.name_key = str(node_id)
    node.trashed_at, node.trashed_by, node.trash_path = time.time(), by_user_id, path
    s.add(node)
    s.flush()
    return to_record((node, gone.digest))


def node_id_of(node: Node) -> int:
    assert node.id is not None
    return node.id


def _item_node(s: Session, owner_id: int, item_id: int) -> Node:
    """The root node of a trash item of `owner_id`; `NotFound` otherwise."""
    trash_id = s.exec(select(col(User.trash_id)).where(col(User.id) == owner_id)).first()
    node = s.get(Node, item_id)
    if trash_id is None or node is None or node.parent_id != trash_id:
        raise NotFound("no such item in the trash")
    return node


def _trash_root(s: Session, owner_id: int) -> int:
    """The id of `owner_id`'s trash root, made now if they have none."""
    user = s.get(User, owner_id)
    assert user is not None
    if user.trash_id is not None:
        return user.trash_id
    now = time.time()
    root = Node(name=TRASH_NAME, kind=DIR, owner_id=owner_id, mtime=now, created=now)
    s.add(root)
    s.flush()
    user.trash_id = root.id
    s.add(user)
    return node_id_of(root)


def _shared_within(s: Session, root_id: int, owner_id: int) -> list[int]:
    """The nodes at or below `root_id` that have grants or share links: the shared
    nodes of the owner, each checked by walking up from it (shares are few; the
    subtree may be huge). Read from the grants and links first and then by primary
    key, so the owner's many nodes are never scanned."""
    shared = {*s.exec(select(col(Grant.node_id))).all()}
    shared.update(s.exec(select(col(ShareLink.node_id))).all())
    candidates = (
        s.exec(
            select(col(Node.id)).where(col(Node.id).in_(shared), col(Node.owner_id) == owner_id)
        ).all()
        if shared
        else []
    )
    inside: list[int] = []
    for candidate in candidates:
        if candidate is None:
            continue
        current: int | None = candidate
        while current is not None and current != root_id:
            current = s.exec(select(col(Node.parent_id)).where(col(Node.id) == current)).first()
        if current == root_id:
            inside.append(candidate)
    return inside


def _item(s: Session, node: Node) -> TrashItemRecord:
    assert node.id is not None and node.trash_path is not None and node.trashed_at is not None
    size = node.size
    if node.kind == DIR:
        size = subtree_file_bytes(s.connection(), node.id)
    return TrashItemRecord(
        node.id, node.trash_path, node.kind, size, node.trashed_at, node.trashed_by
    )


def _digest(s: Session, content_id: int | None) -> str | None:
    if content_id is None:
        return None
    return s.exec(select(col(Content.digest)).where(col(Content.id) == content_id)).first()
