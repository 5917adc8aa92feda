"""Per-device app passwords of users (rows of `AppPassword`).

The caller generates the password and hands over its public `key_id` and argon2id
hash; the catalog never sees the password itself.
"""

from __future__ import annotations

import time

from sqlalchemy import update
from sqlmodel import Session, col, select

from providers.catalog.db import Database
from providers.catalog.records import AppPasswordRecord
from providers.catalog.rows import find_user_id
from providers.catalog.schema import AppPassword
from providers.errors import Conflict, NotFound


def _record(row: AppPassword) -> AppPasswordRecord:
    assert row.id is not None
    return AppPasswordRecord(
        id=row.id,
        user_id=row.user_id,
        key_id=row.key_id,
        label=row.label,
        hash=row.hash,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class AppPasswords:
    """Create, list, find and revoke app passwords."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, user_name: str, key_id: str, password_hash: str, label: str) -> AppPasswordRecord:
        """Store a new app password of `user_name`; `NotFound` if no such user,
        `Conflict` if the user already has one with `key_id` (generate another)."""

        def work(s: Session) -> AppPasswordRecord:
            user_id = find_user_id(s, user_name)
            taken = s.exec(
                select(col(AppPassword.id)).where(
                    col(AppPassword.user_id) == user_id, col(AppPassword.key_id) == key_id
                )
            ).first()
            if taken is not None:
                raise Conflict(f"app password key {key_id!r} is taken")
            row = AppPassword(
                user_id=user_id,
                key_id=key_id,
                label=label,
                hash=password_hash,
                created_at=time.time(),
            )
            s.add(row)
            s.flush()
            return _record(row)

        return self._db.run(work)

    def of_user(self, user_name: str) -> list[AppPasswordRecord]:
        """Every app password of `user_name` (revoked ones too), oldest first."""
        with self._db.session() as s:
            user_id = find_user_id(s, user_name)
            rows = s.exec(
                select(AppPassword)
                .where(col(AppPassword.user_id) == user_id)
                .order_by(col(AppPassword.id))
            )
            return [_record(r) for r in rows]

    def find(self, user_id: int, key_id: str) -> AppPasswordRecord | None:
        """The live (not revoked) app password of `user_id` with `key_id`, or None.

        Logins call this on every request, so a revocation holds from the next request.
        """
        with self._db.session() as s:
            row = s.exec(
                select(AppPassword).where(
                    col(AppPassword.user_id) == user_id,
                    col(AppPassword.key_id) == key_id,
                    col(AppPassword.revoked_at).is_(None),
                )
            ).first()
            return _record(row) if row else None

    def revoke(self, user_name: str, app_password_id: int) -> None:
        """Revoke one app password of `user_name`; `NotFound` if it has none with that id
        or it is already revoked."""

        def work(s: Session) -> None:
            done = s.exec(
                update(AppPassword)
                .where(
                    col(AppPassword.id) == app_password_id,
                    col(AppPassword.user_id) == find_user_id(s, user_name),
                    col(AppPassword.revoked_at).is_(None),
                )
                .values(revoked_at=time.time())
            )
            if not done.rowcount:
                raise NotFound(f"user {user_name!r} has no live app password {app_password_id}")

        self._db.run(work)

    def touch(self, app_password_id: int, when: float) -> None:
        """Record that the app password was used at `when`."""

        def work(s: Session) -> None:
            s.exec(
                update(AppPassword)
                .where(col(AppPassword.id) == app_password_id)
                .values(last_used_at=when)
            )

        self._db.run(work)
