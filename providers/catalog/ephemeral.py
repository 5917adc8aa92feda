"""Short-lived state shared by every process on the catalog, for stores without Redis:
values that expire (`ExpiringValues`, Login Flow v2's flows) and counters that expire
(`ExpiringCounters`, failed logins). They mirror `providers.redis_store`'s classes of
the same names, so callers use either alike.

Expiry compares `time.time()` of the processes involved: their clocks must agree to
well within a lifetime (seconds to minutes). Expired rows are invisible to readers and
deleted by the writers from time to time (an indexed range delete on `expires`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import String, bindparam, case, delete, func
from sqlmodel import col, select

from providers.catalog.db import IN_BATCH, Database
from providers.catalog.direct import DirectRead
from providers.catalog.schema import Ephemeral, ExpiringCount

MAX_VALUES = 10_000  # anyone may start a login flow: the table is bounded


class ExpiringValues:
    """Values that expire; `take` hands a value out at most once.

    `put(key, value, ttl)` stores `value` for `ttl` seconds, replacing what was there;
    `get(key)` reads it (None when absent or expired); `take(key)` deletes it and
    returns what was deleted in one statement, so of concurrent takers in any processes
    exactly one gets the value. Keys carry their user's prefix (`prefix`). When the
    table holds `max_values` live values, a `put` first ends the tenth closest to
    expiring: a flood of new values must not grow the store forever. Errors are
    `providers.errors.Unavailable` (database down).
    """

    def __init__(self, db: Database, prefix: str, *, max_values: int = MAX_VALUES) -> None:
        self._db = db
        self._prefix = prefix
        self._max = max_values

    def put(self, key: str, value: bytes, ttl: float) -> None:
        now = time.time()
        with self._db.session(write=True) as s:
            s.exec(delete(Ephemeral).where(col(Ephemeral.expires) <= now))
            if s.exec(select(func.count()).select_from(Ephemeral)).one() >= self._max:
                oldest = (
                    select(col(Ephemeral.key))
                    .order_by(col(Ephemeral.expires))
                    .limit(max(1, self._max // 10))
                )
                s.exec(delete(Ephemeral).where(col(Ephemeral.key).in_(oldest)))
            row = {"key": self._prefix + key, "value": value, "expires": now + ttl}
            s.exec(
                self._db.insert(Ephemeral)
                .values(**row)
                .on_conflict_do_update(
                    index_elements=["key"], set_={"value": value, "expires": row["expires"]}
                )
            )

    def get(self, key: str) -> bytes | None:
        with self._db.connection() as conn:
            found = conn.execute(
                select(col(Ephemeral.value)).where(
                    col(Ephemeral.key) == self._prefix + key,
                    col(Ephemeral.expires) > time.time(),
                )
            ).first()
        return None if found is None else bytes(found[0])

    def take(self, key: str) -> bytes | None:
        # DELETE ... RETURNING: the database hands the row to one deleter only.
        with self._db.connection(write=True) as conn:
            found = conn.execute(
                delete(Ephemeral)
                .where(col(Ephemeral.key) == self._prefix + key)
                .returning(col(Ephemeral.value), col(Ephemeral.expires))
            ).first()
        if found is None or found[1] <= time.time():
            return None
        return bytes(found[0])

    def close(self) -> None:
        """Nothing to release: the catalog owns the connections."""


class ExpiringCounters:
    """Counters that expire (failed logins per subject), atomic across processes.

    `read` gives each key's count and milliseconds left ((0, 0) when absent or
    expired); `bump` adds one to each key in one write transaction, starting a key
    that is absent or expired at 1 with a lifetime of `window` seconds (one UPSERT per
    key). Keys carry the caller's `prefix`. Every `PURGE_EVERY` bumps of this process
    delete the expired rows.
    """

    PURGE_EVERY = 64

    def __init__(self, db: Database, prefix: str) -> None:
        self._db = db
        self._prefix = prefix
        self._bumps = 0
        # A statement per number of keys, built once: every request reads its login's
        # counters, and building the select (or expanding an IN list) cost more than
        # SQLite running it.
        self._live: dict[int, DirectRead] = {}

    def read(self, keys: Sequence[str]) -> list[tuple[int, int]]:
        names = [self._prefix + key for key in keys]
        now = time.time()
        found: dict[str, tuple[int, float]] = {}
        with self._db.connection() as conn:
            for i in range(0, len(names), IN_BATCH):
                batch = names[i : i + IN_BATCH]
                params = {f"k{n}": name for n, name in enumerate(batch)}
                rows = self._live_of(len(batch)).rows(conn, {**params, "now": now})
                found.update((key, (count, expires)) for key, count, expires in rows)
        counts = []
        for name in names:
            count, expires = found.get(name, (0, now))
            counts.append((count, max(0, int((expires - now) * 1000))))
        return counts

    def _live_of(self, count: int) -> DirectRead:
        """The live rows among `count` keys bound as :k0, :k1, ... (and :now)."""
        statement = self._live.get(count)
        if statement is None:
            keys = [bindparam(f"k{n}", type_=String) for n in range(count)]
            statement = DirectRead(
                select(
                    col(ExpiringCount.key), col(ExpiringCount.count), col(ExpiringCount.expires)
                ).where(
                    col(ExpiringCount.key).in_(keys), col(ExpiringCount.expires) > bindparam("now")
                )
            )
            self._live[count] = statement
        return statement

    def bump(self, keys: Sequence[str], window: float) -> None:
        now = time.time()
        table = ExpiringCount.__table__.c  # type: ignore[attr-defined]
        expired = table.expires <= now
        with self._db.connection(write=True) as conn:
            for key in keys:
                conn.execute(
                    self._db.insert(ExpiringCount)
                    .values(key=self._prefix + key, count=1, expires=now + window)
                    .on_conflict_do_update(
                        index_elements=["key"],
                        set_={
                            "count": case((expired, 1), else_=table.count + 1),
                            "expires": case((expired, now + window), else_=table.expires),
                        },
                    )
                )
            self._bumps += 1
            if self._bumps % self.PURGE_EVERY == 0:
                conn.execute(delete(ExpiringCount).where(col(ExpiringCount.expires) <= now))

    def close(self) -> None:
        """Nothing to release: the catalog owns the connections."""
