"""Change-log rows for sharing: who starts or stops receiving a shared node.

A grant is not a change of the owner's tree, yet it changes what a grantee sees: a
new entry under their `Shared/`, with everything below it. So whenever the set of
users who receive a node changes (a grant or revoke, a group grant, a member joining
or leaving a group, a group removed, a shared node deleted or handed to another
owner), each user who starts receiving it gets, in that transaction, a `granted` row
for the shared node followed by one `created` row per node below it, and each user
who stops gets one `revoked` row. These rows carry `user_id` (they are for that user
only) and paths in the owner's home, like every row; the feed translates them to the
user's `Shared/` (`providers.operations.feed`).

Writing the subtree at grant time (not reading it when the feed is read) keeps the
feed a plain read of the log in commit order: a later change inside the share is an
owner row after these, so replaying the grantee's feed reproduces their tree. It
costs one row per node and receiving user at grant time; group members are expanded
then, so a user who joins a group later gets their own rows when they join.

Who receives a node: the users of the grants made on exactly that node, directly or
through a group, except its owner (a user who is also granted a folder above it
still has a separate `Shared/` entry for it, as `SharedSpace` shows them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from sqlalchemy import Connection, or_
from sqlmodel import Session, col, select

from providers.catalog.changes import (
    CREATED,
    GRANTED,
    REVOKED,
    LoggedChange,
    entry,
    log_change,
    up_from_start,
)
from providers.catalog.records import NodeRecord
from providers.catalog.rows import CHILDREN, NODE_BY_ID, path_names
from providers.catalog.schema import Grant, Membership, Node

Receivers = dict[int, set[int]]  # shared node id -> ids of the users receiving it


def receivers(s: Session, node_ids: Iterable[int]) -> Receivers:
    """Who receives each of these nodes now (see the module docstring)."""
    ids = list(dict.fromkeys(node_ids))
    found: Receivers = {node_id: set() for node_id in ids}
    if not ids:
        return found
    direct = s.exec(
        select(col(Grant.node_id), col(Grant.user_id)).where(
            col(Grant.node_id).in_(ids), col(Grant.user_id).is_not(None)
        )
    ).all()
    grouped = s.exec(
        select(col(Grant.node_id), col(Membership.user_id))
        .join(Membership, col(Membership.group_id) == col(Grant.group_id))
        .where(col(Grant.node_id).in_(ids))
    ).all()
    rows = s.exec(select(col(Node.id), col(Node.owner_id)).where(col(Node.id).in_(ids))).all()
    owners = {node_id: owner_id for node_id, owner_id in rows}
    for node_id, user_id in (*direct, *grouped):
        if user_id is not None and user_id != owners.get(node_id):
            found[node_id].add(user_id)
    return found


def group_grant_nodes(s: Session, group_id: int) -> list[int]:
    """The nodes granted to group `group_id`."""
    return list(s.exec(select(col(Grant.node_id)).where(col(Grant.group_id) == group_id)))


def user_grant_nodes(s: Session, user_id: int) -> list[int]:
    """The nodes granted to `user_id`, directly or through their groups."""
    groups = select(col(Membership.group_id)).where(col(Membership.user_id) == user_id)
    query = select(col(Grant.node_id)).where(
        or_(col(Grant.user_id) == user_id, col(Grant.group_id).in_(groups))
    )
    return list(dict.fromkeys(s.exec(query)))


def log_receivers(s: Session, before: Receivers, after: Receivers) -> None:
    """Log what changed between two `receivers` answers of the same nodes, in the
    caller's transaction (after the grant rows changed): `granted` and the subtree
    for each new receiver, `revoked` for each gone one. A node missing from `after`
    is gone (deleted or handed over): all its receivers are revoked."""
    conn = s.connection()
    for node_id, users in before.items():
        still = after.get(node_id, set())
        gone = sorted(users - still)
        if gone:
            _log_revoked(s, conn, node_id, gone)
    for node_id, users in after.items():
        new = sorted(users - before.get(node_id, set()))
        if new:
            _log_granted(s, conn, node_id, new)


def _log_revoked(s: Session, conn: Connection, node_id: int, users: list[int]) -> None:
    row = conn.execute(NODE_BY_ID, {"id": node_id}).first()
    if row is None:  # deleted in this transaction: its path was read before
        return
    node = NodeRecord._make(row)
    path = "/" + "/".join(path_names(s, node_id))
    for user_id in users:
        log_change(conn, _for_user(entry(REVOKED, node, path), user_id, node_id))


def _log_granted(s: Session, conn: Connection, node_id: int, users: list[int]) -> None:
    row = conn.execute(NODE_BY_ID, {"id": node_id}).first()
    if row is None:
        return
    root = NodeRecord._make(row)
    path = "/" + "/".join(path_names(s, node_id))
    for user_id in users:
        log_change(conn, _for_user(entry(GRANTED, root, path), user_id, node_id))
        log_subtree_for(conn, root, path, user_id, node_id, include_root=False)


def log_subtree_for(
    conn: Connection, root: NodeRecord, path: str, user_id: int, via_id: int, *, include_root: bool
) -> None:
    """Log `created` for `root` (when `include_root`) and everything below it, for
    `user_id` only, who sees it through shared node `via_id`."""
    if include_root:
        log_change(conn, _for_user(entry(CREATED, root, path), user_id, via_id))
    for node, below in walk(conn, root, path):
        log_change(conn, _for_user(entry(CREATED, node, below), user_id, via_id))


def log_moved_in(s: Session, moved: NodeRecord, path: str, old_parent: int) -> None:
    """After a move of `moved` (now at `path`) within its owner's tree from folder
    `old_parent`: log its subtree as `created` for each user who receives a folder
    that now holds it and did not before (the owner's `moved` row means nothing to
    them: they never had the source)."""
    assert moved.parent_id is not None
    before = set(_chain(s.connection(), old_parent))
    newly = [i for i in _chain(s.connection(), moved.parent_id) if i not in before]
    for via_id, users in receivers(s, newly).items():
        for user_id in sorted(users):
            log_subtree_for(s.connection(), moved, path, user_id, via_id, include_root=True)


_CHAIN = select(up_from_start().c.id)


def _chain(conn: Connection, start: int) -> list[int]:
    """`start` and its ancestors up to the home."""
    return [row[0] for row in conn.execute(_CHAIN, {"start": start})]


def walk(conn: Connection, root: NodeRecord, path: str) -> Iterator[tuple[NodeRecord, str]]:
    """Every node below folder `root` (at `path`) with its path, parents before their
    members, members by name (one query per folder)."""
    if not root.is_dir:
        return
    pending = [(root, path.rstrip("/"))]
    while pending:
        folder, folder_path = pending.pop(0)
        for row in conn.execute(CHILDREN, {"parent": folder.id}).all():
            node = NodeRecord._make(row)
            node_path = f"{folder_path}/{node.name}"
            yield node, node_path
            if node.is_dir:
                pending.append((node, node_path))


def _for_user(change: LoggedChange, user_id: int, via_id: int) -> LoggedChange:
    return replace(change, user_id=user_id, via_id=via_id)
