"""Accounts and settings rows."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update
from sqlmodel import Session

from providers.catalog.db import Database
from providers.catalog.records import UserRecord
from providers.errors import Conflict, NotFound
from providers.models import DIR, Node, Setting, User


def _record(user: User) -> UserRecord:
    assert user.id is not None and user.home_id is not None
    return UserRecord(
        id=user.id,
        name=user.name,
        password_hash=user.password_hash,
        home_id=user.home_id,
        quota_bytes=user.quota_bytes,
        used_bytes=user.used_bytes,
    )


class Users:
    """User rows (each with a home directory) and the settings table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, name: str, password_hash: str) -> UserRecord:
        """Create a user and their empty home; `Conflict` if the name is taken."""

        def work(s: Session) -> UserRecord:
            if s.exec(select(User.id).where(User.name == name)).first():
                raise Conflict(f"user {name!r} exists")
            now = time.time()
            user = User(name=name, password_hash=password_hash, created_at=now)
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
        with self._db.session() as s:
            user = s.exec(select(User).where(User.name == name)).scalar()
            return _record(user) if user else None

    def by_id(self, user_id: int) -> UserRecord | None:
        with self._db.session() as s:
            user = s.get(User, user_id)
            return _record(user) if user else None

    def count(self) -> int:
        with self._db.session() as s:
            return int(s.exec(select(func.count()).select_from(User)).one()[0])

    def names(self) -> list[str]:
        with self._db.session() as s:
            return list(s.exec(select(User.name).order_by(User.name)).scalars())

    def set_password(self, name: str, password_hash: str) -> None:
        def work(s: Session) -> None:
            done = s.exec(update(User).where(User.name == name).values(password_hash=password_hash))
            if not done.rowcount:
                raise NotFound(f"no user {name!r}")

        self._db.run(work)

    def get_setting(self, key: str) -> str | None:
        with self._db.session() as s:
            row = s.get(Setting, key)
            return row.value if row else None

    def ensure_setting(self, key: str, value: str) -> str:
        """Store `value` under `key` unless a value is already there; return the stored one."""

        def work(s: Session) -> str:
            row = s.get(Setting, key)
            if row is None:
                s.add(Setting(key=key, value=value))
                return value
            return row.value

        return self._db.run(work)
