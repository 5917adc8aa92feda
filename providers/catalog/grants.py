"""Grants: an owner shares a file or folder (and everything below it) with a user or a
group, read-only (`r`) or read-write (`rw`).

A grantee is written `bob` for a user and `@team` for a group. Every change to grants
bumps the `acl` counter in the same transaction (`rows.ACL_COUNTER`), as do group
membership changes and deletions of shared nodes, so caches of what a user received
(`providers.operations.access`) reload when it moves; and it logs `granted` or
`revoked` rows for the users who start or stop receiving the node
(`providers.catalog.sharelog`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import ColumnElement, delete, or_
from sqlmodel import Session, col, select

from providers.catalog.changes import logged
from providers.catalog.db import Database
from providers.catalog.groups import find_group_id
from providers.catalog.records import PERM_READ, PERM_WRITE, GrantRecord, ReceivedGrant
from providers.catalog.rows import (
    ACL_COUNTER,
    bump_counter,
    find_child,
    find_user_id,
    path_names,
    read_counter,
    to_record,
)
from providers.catalog.schema import Content, Grant, Group, Membership, Node, User
from providers.catalog.sharelog import log_receivers, receivers
from providers.errors import Conflict, InvalidName, NotFound

PERMS = (PERM_READ, PERM_WRITE)


def _grantee(s: Session, to: str) -> tuple[int | None, int | None]:
    """(user_id, group_id) of `bob` or `@team`; `NotFound` if there is no such one."""
    if to.startswith("@"):
        return None, find_group_id(s, to[1:])
    return find_user_id(s, to), None


def owned_node(s: Session, owner: str, names: Sequence[str]) -> tuple[User, Node]:
    """The owner and the node at `names` in their home; `NotFound` otherwise."""
    user = s.exec(select(User).where(col(User.name) == owner)).first()
    if user is None:
        raise NotFound(f"no user {owner!r}")
    node = s.get(Node, user.home_id)
    for name in names:
        node = find_child(s, node.id, name) if node is not None and node.id else None
        if node is None:
            raise NotFound(f"{owner} has no /{'/'.join(names)}")
    assert node is not None
    return user, node


def _same_grantee(user_id: int | None, group_id: int | None) -> ColumnElement[bool]:
    if user_id is not None:
        return col(Grant.user_id) == user_id
    return col(Grant.group_id) == group_id


class Grants:
    """Create, revoke and list grants; what a user received."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def grant(self, owner: str, names: Sequence[str], to: str, perm: str) -> GrantRecord:
        """Share the owner's node at `names` with `to` (`bob` or `@team`); granting the
        same grantee again changes the permission. `InvalidName` for a bad `perm`,
        `NotFound` for an unknown owner, path or grantee, `Conflict` for the home itself
        or a grant to its own owner."""
        if perm not in PERMS:
            raise InvalidName(f"permission must be one of {', '.join(PERMS)}")

        def work(s: Session) -> GrantRecord:
            user, node = owned_node(s, owner, names)
            if node.parent_id is None:
                raise Conflict("a whole home cannot be shared; share a folder in it")
            user_id, group_id = _grantee(s, to)
            if user_id == user.id:
                raise Conflict("the owner already has every right")
            assert node.id is not None
            before = receivers(s, [node.id])
            row = s.exec(
                select(Grant).where(col(Grant.node_id) == node.id, _same_grantee(user_id, group_id))
            ).first()
            if row is None:
                row = Grant(
                    node_id=node.id,
                    user_id=user_id,
                    group_id=group_id,
                    perm=perm,
                    created_at=time.time(),
                )
            row.perm = perm
            s.add(row)
            s.flush()
            bump_counter(s, ACL_COUNTER)
            log_receivers(s, before, receivers(s, [node.id]))
            return _grant_record(s, row, owner, to)

        return self._db.run(logged(work))

    def revoke(self, owner: str, names: Sequence[str], to: str) -> bool:
        """Withdraw the grant of the node at `names` to `to`; False if there was none."""

        def work(s: Session) -> bool:
            _user, node = owned_node(s, owner, names)
            assert node.id is not None
            user_id, group_id = _grantee(s, to)
            before = receivers(s, [node.id])
            done = s.exec(
                delete(Grant).where(col(Grant.node_id) == node.id, _same_grantee(user_id, group_id))
            )
            if done.rowcount:
                bump_counter(s, ACL_COUNTER)
                log_receivers(s, before, receivers(s, [node.id]))
            return bool(done.rowcount)

        return self._db.run(logged(work))

    def of_owner(self, owner: str | None = None) -> list[GrantRecord]:
        """Grants made by `owner` (every grant when None), oldest first."""
        with self._db.session() as s:
            query = (
                select(Grant, col(User.name))
                .join(Node, col(Node.id) == col(Grant.node_id))
                .join(User, col(User.id) == col(Node.owner_id))
                .order_by(col(Grant.id))
            )
            if owner is not None:
                query = query.where(col(User.name) == owner)
            return [_grant_record(s, row, name, None) for row, name in s.exec(query).all()]

    def received(self, user_id: int) -> list[ReceivedGrant]:
        """What reaches `user_id` directly or through a group, one entry per shared
        node with the best permission, in grant order; their own nodes excluded."""
        with self._db.session() as s:
            groups = select(col(Membership.group_id)).where(col(Membership.user_id) == user_id)
            rows = s.exec(
                # `node_select()`'s columns and join, plus the grant's perm and the owner
                select(Node, col(Content.digest), col(Grant.perm), col(User.name))
                .outerjoin(Content, col(Node.content_id) == col(Content.id))
                .join(Grant, col(Grant.node_id) == col(Node.id))
                .join(User, col(User.id) == col(Node.owner_id))
                .where(
                    or_(col(Grant.user_id) == user_id, col(Grant.group_id).in_(groups)),
                    col(Node.owner_id) != user_id,
                )
                .order_by(col(Grant.id))
            ).all()
            best: dict[int, ReceivedGrant] = {}
            for node, digest, perm, owner in rows:
                assert node.id is not None
                seen = best.get(node.id)
                if seen is None or (perm == PERM_WRITE and seen.perm != PERM_WRITE):
                    record = to_record((node, digest))
                    best[node.id] = ReceivedGrant(record, owner, path_names(s, node.id), perm)
            return list(best.values())

    def generation(self) -> int:
        """The `acl` counter: it changes whenever any user's received grants may have."""
        with self._db.session() as s:
            return read_counter(s, ACL_COUNTER)

    def revoke_by_id(self, owner: str, grant_id: int) -> bool:
        """Withdraw grant `grant_id` if `owner` made it (it shares a node of theirs);
        False if `owner` has no grant with that id (none at all, or another owner's)."""

        def work(s: Session) -> bool:
            owned = (
                select(col(Node.id))
                .join(User, col(User.id) == col(Node.owner_id))
                .where(col(User.name) == owner)
            )
            shared = s.exec(select(col(Grant.node_id)).where(col(Grant.id) == grant_id)).all()
            before = receivers(s, shared)
            done = s.exec(
                delete(Grant).where(col(Grant.id) == grant_id, col(Grant.node_id).in_(owned))
            )
            if done.rowcount:
                bump_counter(s, ACL_COUNTER)
                log_receivers(s, before, receivers(s, shared))
            return bool(done.rowcount)

        return self._db.run(logged(work))


def _grant_record(s: Session, row: Grant, owner: str, to: str | None) -> GrantRecord:
    assert row.id is not None
    if to is None:
        if row.user_id is not None:
            to = s.exec(select(col(User.name)).where(col(User.id) == row.user_id)).first() or "?"
        else:
            group = s.exec(select(col(Group.name)).where(col(Group.id) == row.group_id)).first()
            to = "@" + (group or "?")
    return GrantRecord(
        id=row.id,
        node_id=row.node_id,
        owner=owner,
        path="/" + "/".join(path_names(s, row.node_id)),
        grantee=to,
        perm=row.perm,
        created_at=row.created_at,
    )


__all__ = ["PERMS", "Grants"]
