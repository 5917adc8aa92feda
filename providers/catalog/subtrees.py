"""Whole subtrees for `Tree.copy` and `Tree.move`: copying one as new rows, handing one
to another owner, and refusing to put a folder inside itself.

They run in the caller's transaction, which holds the locks on the folders involved,
and touch rows only: never a chunk (DESIGN invariant 4).
"""

from __future__ import annotations

import time

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from providers.catalog.db import IN_BATCH
from providers.catalog.records import FILE
from providers.catalog.rows import (
    add_used_bytes,
    charge_used_bytes,
    subtree_ids,
    withdraw_sharing,
)
from providers.catalog.schema import Node, Prop, Version
from providers.errors import Conflict, NotFound
from providers.names import name_key

# a node still to copy: (the source node, the id of its copy's parent, the copy's
# name and name_key)
_Pending = tuple[Node, int, str, str]


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
        s.exec(update(Node).where(col(Node.id).in_(batch)).values(owner_id=new_owner))
        withdraw_sharing(s, batch)
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
) -> tuple[Node, int]:
    """Insert copies of the subtree at `src_id`, owned by `owner_id`, level by level;
    return the new root and the bytes of the files copied (not yet charged to anyone).
    The root is named `dest_name`; members keep their names (and keys)."""
    src = s.get(Node, src_id)
    if src is None:
        raise NotFound("source vanished")
    now = time.time()
    level: list[_Pending] = [(src, dest_parent_id, dest_name, name_key(dest_name))]
    new_root: Node | None = None
    copied = 0
    while level:
        next_level: list[_Pending] = []
        for pending in level:
            new, children = _copy_node(s, pending, owner_id, now)
            new_root = new_root or new
            copied += new.size if new.kind == FILE else 0
            next_level.extend(children)
        level = next_level
    assert new_root is not None
    return new_root, copied


def _copy_node(
    s: Session, pending: _Pending, owner_id: int, now: float
) -> tuple[Node, list[_Pending]]:
    """Insert the copy of one node, with its props and version row; return it and its
    children (still to copy, below it)."""
    old, parent_id, name, key = pending
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
    return new, [(child, new.id, child.name, child.name_key) for child in children]


def _copy_node_extras(s: Session, old: Node, new: Node, now: float) -> None:
    """Props and the current version row of one copied node."""
    props = s.exec(select(Prop).where(col(Prop.node_id) == old.id)).all()
    assert new.id is not None
    s.add_all(Prop(node_id=new.id, name=p.name, value=p.value) for p in props)
    if new.kind == FILE and new.content_id is not None:
        s.add(Version(node_id=new.id, content_id=new.content_id, size=new.size, created_at=now))
