"""Groups of users and their memberships. A change of who is in a group, or of the
group itself, logs `granted`/`revoked` rows for the users who start or stop receiving
the group's grants (`providers.catalog.sharelog`)."""

from __future__ import annotations

import time

from sqlalchemy import delete
from sqlmodel import Session, col, select

from providers.catalog.changes import logged
from providers.catalog.db import Database
from providers.catalog.rows import ACL_COUNTER, bump_counter, find_user_id
from providers.catalog.schema import Grant, Group, Membership, User
from providers.catalog.sharelog import group_grant_nodes, log_receivers, receivers
from providers.catalog.users import check_account_name
from providers.errors import Conflict, NotFound


def find_group_id(s: Session, name: str) -> int:
    group_id = s.exec(select(col(Group.id)).where(col(Group.name) == name)).first()
    if group_id is None:
        raise NotFound(f"no group {name!r}")
    return group_id


class Groups:
    """Create and remove groups; add, remove and list members."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str) -> None:
        """`Conflict` if the name is taken, `InvalidName` if it breaks the naming rules
        (those of user names, see `providers.catalog.users`)."""
        check_account_name(name, "group")

        def work(s: Session) -> None:
            if s.exec(select(col(Group.id)).where(col(Group.name) == name)).first() is not None:
                raise Conflict(f"group {name!r} exists")
            s.add(Group(name=name, created_at=time.time()))

        self._db.run(work)

    def remove(self, name: str) -> None:
        """Delete a group, its memberships (not its members) and the grants made to it;
        `NotFound` if none."""

        def work(s: Session) -> None:
            group_id = find_group_id(s, name)
            shared = group_grant_nodes(s, group_id)
            before = receivers(s, shared)
            s.exec(delete(Membership).where(col(Membership.group_id) == group_id))
            s.exec(delete(Grant).where(col(Grant.group_id) == group_id))
            s.exec(delete(Group).where(col(Group.id) == group_id))
            bump_counter(s, ACL_COUNTER)
            log_receivers(s, before, receivers(s, shared))

        self._db.run(logged(work))

    def names(self) -> list[str]:
        with self._db.session() as s:
            return list(s.exec(select(col(Group.name)).order_by(col(Group.name))))

    def add_member(self, group: str, user: str) -> bool:
        """Make `user` a member of `group`; False if they already were."""

        def work(s: Session) -> bool:
            key = (find_group_id(s, group), find_user_id(s, user))
            if s.get(Membership, key) is not None:
                return False
            shared = group_grant_nodes(s, key[0])
            before = receivers(s, shared)
            s.add(Membership(group_id=key[0], user_id=key[1]))
            s.flush()
            bump_counter(s, ACL_COUNTER)  # the member now receives the group's grants
            log_receivers(s, before, receivers(s, shared))
            return True

        return self._db.run(logged(work))

    def remove_member(self, group: str, user: str) -> bool:
        """Take `user` out of `group`; False if they were not a member."""

        def work(s: Session) -> bool:
            group_id = find_group_id(s, group)
            shared = group_grant_nodes(s, group_id)
            before = receivers(s, shared)
            done = s.exec(
                delete(Membership).where(
                    col(Membership.group_id) == group_id,
                    col(Membership.user_id) == find_user_id(s, user),
                )
            )
            if done.rowcount:
                bump_counter(s, ACL_COUNTER)
                log_receivers(s, before, receivers(s, shared))
            return bool(done.rowcount)

        return self._db.run(logged(work))

    def members(self, group: str) -> list[str]:
        """Names of the members of `group`, sorted; `NotFound` if no such group."""
        with self._db.session() as s:
            group_id = find_group_id(s, group)
            rows = s.exec(
                select(col(User.name))
                .join(Membership, col(Membership.user_id) == col(User.id))
                .where(col(Membership.group_id) == group_id)
                .order_by(col(User.name))
            )
            return list(rows)

    def of_user(self, user_id: int) -> list[str]:
        """Names of the groups `user_id` belongs to, sorted."""
        with self._db.session() as s:
            rows = s.exec(
                select(col(Group.name))
                .join(Membership, col(Membership.group_id) == col(Group.id))
                .where(col(Membership.user_id) == user_id)
                .order_by(col(Group.name))
            )
            return list(rows)
