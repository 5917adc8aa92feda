"""WebDAV lock rows: the SQL side of `providers.dav.lock_storage.CatalogLockStorage`.

A row is a lock's token, its normalised root path (no trailing '/', except "/"), its
expiry (epoch seconds) and its dictionary as JSON text, opaque here. Every write to a
file asks which locks guard its path, so `on_path` answers in one statement on the
`root` index: the path and its ancestors by equality, its descendants by a range
("/a/b/" <= root < "/a/b0", '0' being the character after '/'), which is a prefix
match because the column compares bytes (`schema.PATH_TEXT`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, or_, update
from sqlmodel import col, select

from providers.catalog.db import Database
from providers.catalog.direct import DirectRead
from providers.catalog.schema import DavLock

LockRow = tuple[str, float, str]  # token, expires, lock JSON


_ROWS = select(col(DavLock.token), col(DavLock.expires), col(DavLock.lock))
# Built once per number of roots (and with or without the range): every write runs one,
# and an expanding IN list was expanded again at each run, as costly as the lookup.
_ON_PATH: dict[tuple[int, bool], DirectRead] = {}


def _on_path(count: int, with_range: bool) -> DirectRead:
    """Rows whose root is one of :r0 .. :r<count-1>, or, `with_range`, lies strictly
    between :low and :high."""
    statement = _ON_PATH.get((count, with_range))
    if statement is None:
        on: ColumnElement[bool] = col(DavLock.root).in_([bindparam(f"r{i}") for i in range(count)])
        if with_range:
            under = (col(DavLock.root) > bindparam("low")) & (col(DavLock.root) < bindparam("high"))
            on = or_(on, under)
        statement = DirectRead(_ROWS.where(on))
        _ON_PATH[(count, with_range)] = statement
    return statement


class DavLockRows:
    """Store, find and remove lock rows. Expiry is the caller's business: rows come back
    whether expired or not, with their expiry, so that a read stays a read."""

    def __init__(self, db: Database, conn: Connection | None = None) -> None:
        self._db = db
        self._conn = conn

    def within(self, conn: Connection) -> DavLockRows:
        """These rows as seen, and changed, in `conn`'s open transaction (e.g. a
        commit's, whose lock check is then atomic with it): no transaction of its own."""
        return DavLockRows(self._db, conn)

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self._db.connection(write=write) as conn:
                yield conn

    def add(self, token: str, root: str, expires: float, lock: str) -> None:
        with self._connection(write=True) as conn:
            conn.execute(insert(DavLock).values(token=token, root=root, expires=expires, lock=lock))

    def get(self, token: str) -> LockRow | None:
        with self._connection() as conn:
            found = conn.execute(
                select(col(DavLock.token), col(DavLock.expires), col(DavLock.lock)).where(
                    col(DavLock.token) == token
                )
            ).first()
        return None if found is None else (found[0], found[1], found[2])

    def update(self, token: str, expires: float, lock: str) -> bool:
        """Replace a lock's expiry and dictionary; False when the token is unknown."""
        with self._connection(write=True) as conn:
            result = conn.execute(
                update(DavLock)
                .where(col(DavLock.token) == token)
                .values(expires=expires, lock=lock)
            )
        return bool(result.rowcount)

    def remove(self, tokens: Sequence[str]) -> int:
        """Delete these locks; how many existed."""
        if not tokens:
            return 0
        with self._connection(write=True) as conn:
            result = conn.execute(delete(DavLock).where(col(DavLock.token).in_(list(tokens))))
        return int(result.rowcount)

    def remove_all(self) -> None:
        with self._connection(write=True) as conn:
            conn.execute(delete(DavLock))

    def remove_expired(self, now: float) -> None:
        with self._connection(write=True) as conn:
            conn.execute(delete(DavLock).where(col(DavLock.expires) < now))

    def on_path(self, roots: Sequence[str], *, below: str | None = None) -> list[LockRow]:
        """The locks whose root is one of `roots` (normalised paths), and, with `below`,
        every lock whose root lies under that path, in one query."""
        if not roots and below is None:
            return []
        params: dict[str, object] = {f"r{i}": root for i, root in enumerate(roots)}
        if below is not None:  # "/a/b/" < root < "/a/b0": roots that start with "/a/b/"
            prefix = below.rstrip("/") + "/"
            params.update(low=prefix, high=prefix[:-1] + "0")
        statement = _on_path(len(roots), below is not None)
        with self._connection() as conn:
            rows = statement.rows(conn, params)
        return [(token, expires, lock) for token, expires, lock in rows]
