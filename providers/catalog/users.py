"""Accounts and settings rows.

Account and group names: 1-64 characters, no ':' (HTTP Basic splits on the first one),
no '/', '\\' or control characters, no surrounding spaces, and no leading '@' (grants
write a group as `@NAME`).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, inspect, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from providers.catalog.app_passwords import AppPasswords
from providers.catalog.changes import logged
from providers.catalog.db import Database
from providers.catalog.direct import DirectRead
from providers.catalog.records import DIR, DigestSecret, UserRecord
from providers.catalog.rows import ACL_COUNTER, bump_counter
from providers.catalog.schema import (
    AppPassword,
    Change,
    Grant,
    Membership,
    Node,
    Setting,
    User,
)
from providers.catalog.subtrees import remove_subtree
from providers.errors import Conflict, InvalidName, NotFound

MAX_NAME = 64


def check_account_name(name: str, kind: str = "user") -> None:
    """Raise `InvalidName` unless `name` follows the rules in the module docstring."""
    if not name or len(name) > MAX_NAME or name != name.strip():
        raise InvalidName(f"{kind} name must be 1-{MAX_NAME} characters without outer spaces")
    if name.startswith("@") or any(c in ":/\\" for c in name):
        raise InvalidName(f"{kind} name may not contain ':', '/' or '\\' or start with '@'")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise InvalidName(f"{kind} name may not contain control characters")


# A Core query of the table's columns (no ORM entity to build), prebuilt: every
# request asks (`Users.get`). `core_select`: a `Connection` runs it.
_USERS = inspect(User).local_table
_USER_BY_NAME = DirectRead(core_select(*_USERS.columns).where(_USERS.c.name == bindparam("name")))


def _record(user: User | Row[*tuple[Any, ...]]) -> UserRecord:
    assert user.id is not None and user.home_id is not None
    digest = None
    if user.digest_realm is not None and user.digest_ha1:
        digest = DigestSecret(realm=user.digest_realm, ha1=user.digest_ha1)
    return UserRecord(
        id=user.id,
        name=user.name,
        password_hash=user.password_hash,
        home_id=user.home_id,
        quota_bytes=user.quota_bytes,
        used_bytes=user.used_bytes,
        digest=digest,
        history_bytes=user.history_bytes,
    )


class Users:
    """User rows (each with a home directory), their app passwords, and the settings."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.app_passwords = AppPasswords(db)

    def create(
        self, name: str, password_hash: str, digest: DigestSecret | None = None
    ) -> UserRecord:
        """Create a user and their empty home; `Conflict` if the name is taken,
        `InvalidName` if it breaks the naming rules."""
        check_account_name(name)

        def work(s: Session) -> UserRecord:
            if s.exec(select(col(User.id)).where(col(User.name) == name)).first() is not None:
                raise Conflict(f"user {name!r} exists")
            now = time.time()
            user = User(name=name, password_hash=password_hash, created_at=now)
            if digest is not None:
                user.digest_realm, user.digest_ha1 = digest.realm, digest.ha1
            s.add(user)
            s.flush()
            assert user.id is not None
            home = Node(
                parent_id=None, name=f"~{name}", kind=DIR, owner_id=user.id, mtime=now, created=now
            )
            s.add(home)
            s.flush()
            user.home_id = home.id
            s.add(user)
            return _record(user)

        return self._db.run(work)

    def get(self, name: str) -> UserRecord | None:
        """The account called `name` (a prebuilt Core query: every request asks)."""
        with self._db.connection() as conn:
            row = _USER_BY_NAME.first(conn, {"name": name})
            return _record(row) if row else None

    def by_id(self, user_id: int) -> UserRecord | None:
        with self._db.session() as s:
            user = s.get(User, user_id)
            return _record(user) if user else None

    def names_by_id(self, user_ids: Iterable[int | None]) -> dict[int, str]:
        """The names of these users by id, in one query (None ids are skipped; removed
        users are absent: callers show their id)."""
        wanted = {uid for uid in user_ids if uid is not None}
        if not wanted:
            return {}
        with self._db.session() as s:
            rows = s.exec(select(col(User.id), col(User.name)).where(col(User.id).in_(wanted)))
            return {uid: name for uid, name in rows.all() if uid is not None}

    def count(self) -> int:
        with self._db.session() as s:
            return s.exec(select(func.count()).select_from(User)).one()

    def names(self) -> list[str]:
        with self._db.session() as s:
            return list(s.exec(select(col(User.name)).order_by(col(User.name))))

    def all(self) -> list[UserRecord]:
        """Every user, by name."""
        with self._db.session() as s:
            return [_record(u) for u in s.exec(select(User).order_by(col(User.name)))]

    def set_password(
        self, name: str, password_hash: str, digest: DigestSecret | None = None
    ) -> None:
        """Replace the password hash and the Digest secret (None removes it: a Digest
        secret of the old password must not outlive it); `NotFound` if no such user."""
        realm, ha1 = (digest.realm, digest.ha1) if digest else (None, None)
        self._update(name, password_hash=password_hash, digest_realm=realm, digest_ha1=ha1)

    def set_quota(self, name: str, quota_bytes: int | None) -> None:
        """Set the quota in bytes (None: unlimited); `NotFound` if no such user."""
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError("quota must not be negative")
        self._update(name, quota_bytes=quota_bytes)

    def available_bytes(self, user_id: int) -> int | None:
        """How many more bytes user `user_id` may own: quota minus used, 0 when at or
        over the quota; None without a quota. A hint read without locking (uploads
        check it before reading a body); the binding check is the commit's, under a
        lock on the user row. `NotFound` if no such user."""
        user = self.by_id(user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user.available_bytes

    def _update(self, name: str, **values: object) -> None:
        def work(s: Session) -> None:
            done = s.exec(update(User).where(col(User.name) == name).values(**values))
            if not done.rowcount:
                raise NotFound(f"no user {name!r}")

        self._db.run(work)

    def remove(self, name: str, *, purge: bool = False) -> int:
        """Delete a user with their app passwords, group memberships and the grants
        they received, in one transaction; return how many of their files and folders
        went with them.

        Without `purge`, `Conflict` if the home holds anything (files are never lost by
        accident). With it, the whole home tree, its properties, versions and the
        user's change log go too; the chunks stay for `davserver gc` to collect (blob
        deletes cannot join a SQL transaction). `NotFound` if no such user.
        """

        def work(s: Session) -> int:
            user = s.exec(select(User).where(col(User.name) == name).with_for_update()).first()
            if user is None:
                raise NotFound(f"no user {name!r}")
            owned = s.exec(select(func.count()).where(col(Node.owner_id) == user.id)).one()
            if owned > 1 and not purge:
                raise Conflict(
                    f"user {name!r} owns {owned - 1} files and folders; pass --purge to delete them"
                )
            if user.home_id is not None:
                remove_subtree(s, user.home_id)
            # their log goes, but not the rows telling others that their shares went
            s.exec(
                delete(Change).where(col(Change.owner_id) == user.id, col(Change.user_id).is_(None))
            )
            s.exec(delete(Change).where(col(Change.user_id) == user.id))
            s.exec(delete(AppPassword).where(col(AppPassword.user_id) == user.id))
            s.exec(delete(Membership).where(col(Membership.user_id) == user.id))
            s.exec(delete(Grant).where(col(Grant.user_id) == user.id))
            bump_counter(s, ACL_COUNTER)
            s.delete(user)
            return owned - 1

        return self._db.run(logged(work))

    def get_setting(self, key: str) -> str | None:
        with self._db.session() as s:
            row = s.get(Setting, key)
            return row.value if row else None

    def set_setting(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any value there."""

        def work(s: Session) -> None:
            row = s.get(Setting, key)
            if row is None:
                s.add(Setting(key=key, value=value))
            else:
                row.value = value
                s.add(row)

        self._db.run(work)

    def ensure_setting(self, key: str, value: str) -> str:
        """Store `value` under `key` unless a value is already there; return the stored one.
        Processes racing on a fresh store (workers starting together) all get the one
        value the first of them stored."""

        def work(s: Session) -> str:
            added = self._db.insert(Setting).values(key=key, value=value)
            s.exec(added.on_conflict_do_nothing(index_elements=["key"]))
            stored = s.exec(select(Setting.value).where(col(Setting.key) == key)).one()
            return str(stored)

        return self._db.run(work)
