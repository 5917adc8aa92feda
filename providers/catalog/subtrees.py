"""Whole subtrees: removing one with what hangs off it (props, versions, grants, share
links), copying one as new rows, handing one to another owner, and refusing to put a
folder inside itself.

They run in the caller's transaction, which holds the locks on the folders involved,
and touch rows only: never a chunk (DESIGN invariant 4).
"""

from __future__ import annotations

import time

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from providers.catalog.db import IN_BATCH
from providers.catalog.records import FILE
from providers.catalog.rows import (
    ACL_COUNTER,
    add_used_bytes,
    bump_counter,
    charge_used_bytes,
    subtree_ids,
)
from providers.catalog.schema import Grant, Node, Prop, ShareLink, Version
from providers.catalog.sharelog import log_receivers, receivers
from providers.errors import Conflict, NotFound
from providers.names import name_key

# a node still to copy: (the source node, the id of its copy's parent, the copy's
# name and name_key, its names below the copy's root)
_Pending = tuple[Node, int, str, str, tuple[str, ...]]


def remove_subtree(session: Session, root_id: int) -> None:
    """Delete a node and everything below it, with props and versions; fix quotas."""
    ids = subtree_ids(session, root_id)
    for start in range(0, len(ids), IN_BATCH):
        batch = ids[start : start + IN_BATCH]
        sizes = session.exec(
            select(col(Node.owner_id), func.sum(col(Node.size)))
            .where(col(Node.id).in_(batch), col(Node.kind) == FILE)
            .group_by(col(Node.owner_id))
        ).all()
        for owner_id, total in sizes:
            add_used_bytes(session.connection(), owner_id, -int(total or 0))
        session.exec(delete(Prop).where(col(Prop.node_id).in_(batch)))
        session.exec(delete(Version).where(col(Version.node_id).in_(batch)))
        withdraw_sharing(session, batch)
    # Children reference parents: delete deepest first (ids were produced top-down).
    for start in range(len(ids), 0, -IN_BATCH):
        batch = ids[max(0, start - IN_BATCH) : start]
        session.exec(delete(Node).where(col(Node.id).in_(batch)))


def withdraw_sharing(session: Session, node_ids: list[int]) -> None:
    """Delete the grants and share links of these nodes (bumping the `acl` counter
    when a grant went, and logging `revoked` for whoever received them): their node
    is gone or no longer its sharer's. Call it while the nodes still stand where they
    were (the revoked rows name them)."""
    shared = session.exec(select(col(Grant.node_id)).where(col(Grant.node_id).in_(node_ids)))
    before = receivers(session, shared.all())
    if session.exec(delete(Grant).where(col(Grant.node_id).in_(node_ids))).rowcount:
        bump_counter(session, ACL_COUNTER)
        log_receivers(session, before, {})
    session.exec(delete(ShareLink).where(col(ShareLink.node_id).in_(node_ids)))


def transfer(s: Session, root_id: int, old_owner: int, new_owner: int) -> None:
    """Give the subtree at `root_id` to `new_owner`: its bytes move from the old
    owner's usage to theirs (`QuotaExceeded` past their quota), and the old owner's
    grants and share links inside it are withdrawn (they shared it; it is no longer
    theirs)."""
    ids = subtree_ids(s, root_id)
    total = 0
    for start in range(0, len(ids), IN_BATCH):
        batch = ids[start : start + IN_BATCH]
        total += int(
            s.exec(
                select(func.coalesce(func.sum(col(Node.size)), 0)).where(
                    col(Node.id).in_(batch),
                    col(Node.kind) == FILE,
                )
            ).first()
            or 0
        )
        withdraw_sharing(s, batch)  # first: its revoked rows name the old owner's nodes
        s.exec(update(Node).where(col(Node.id).in_(batch)).values(owner_id=new_owner))
    charge_used_bytes(s.connection(), new_owner, total)
    add_used_bytes(s.connection(), old_owner, -total)


def refuse_cycle(s: Session, node_id: int, dest_parent_id: int) -> None:
    """`Conflict` if `dest_parent_id` is `node_id` or lies below it."""
    current: int | None = dest_parent_id
    while current is not None:
        if current == node_id:
            raise Conflict("cannot copy or move a collection into itself")
        current = s.exec(select(col(Node.parent_id)).where(col(Node.id) == current)).first()


def copy_rows(
    s: Session, src_id: int, dest_parent_id: int, dest_name: str, owner_id: int
) -> tuple[list[tuple[Node, tuple[str, ...]]], int]:
    """Insert copies of the subtree at `src_id`, owned by `owner_id`, level by level;
    return every new node with its names below the copy's root (the root first, with
    none; parents before their members) and the bytes of the files copied (not yet
    charged to anyone). The root is named `dest_name`; members keep their names (and
    keys)."""
    src = s.get(Node, src_id)
    if src is None:
        raise NotFound("source vanished")
    now = time.time()
    level: list[_Pending] = [(src, dest_parent_id, dest_name, name_key(dest_name), ())]
    made: list[tuple[Node, tuple[str, ...]]] = []
    copied = 0
    while level:
        next_level: list[_Pending] = []
        for pending in level:
            new, children = _copy_node(s, pending, owner_id, now)
            made.append((new, pending[4]))
            copied += new.size if new.kind == FILE else 0
            next_level.extend(children)
        level = next_level
    return made, copied


def _copy_node(
    s: Session, pending: _Pending, owner_id: int, now: float
) -> tuple[Node, list[_Pending]]:
    """Insert the copy of one node, with its props and version row; return it and its
    children (still to copy, below it)."""
    old, parent_id, name, key, names = pending
    new = Node(
        parent_id=parent_id,
        name=name,
        name_key=key,
        kind=old.kind,
        owner_id=owner_id,
        content_id=old.content_id,
        size=old.size,
        mtime=old.mtime,
        created=now,
        content_type=old.content_type,
    )
    s.add(new)
    s.flush()
    assert new.id is not None and old.id is not None
    _copy_node_extras(s, old, new, now)
    children = s.exec(select(Node).where(col(Node.parent_id) == old.id))
    return new, [
        (child, new.id, child.name, child.name_key, (*names, child.name)) for child in children
    ]


def _copy_node_extras(s: Session, old: Node, new: Node, now: float) -> None:
    """Props and the current version row of one copied node."""
    props = s.exec(select(Prop).where(col(Prop.node_id) == old.id)).all()
    assert new.id is not None
    s.add_all(Prop(node_id=new.id, name=p.name, value=p.value) for p in props)
    if new.kind == FILE and new.content_id is not None:
        s.add(
            Version(
                node_id=new.id,
                content_id=new.content_id,
                size=new.size,
                created_at=now,
                mtime=new.mtime,
            )
        )
