"""Named leases: mutual exclusion across processes and instances, kept in the catalog.

A `Lease` row says who holds a lease and until when. `acquire` is one conditional
upsert: insert the row, or take it over only where it has expired or is already the
caller's. The database serialises two such statements on the row's primary key, so
two processes racing for a free lease cannot both win: the loser's WHERE sees the
winner's row. A holder renews (`renew`) well before expiry and releases at the end; a
crashed holder's lease simply runs out. Expiry compares `time.time()` of different
machines, so their clocks must agree to well within a lease's length.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from providers.catalog.db import Database
from providers.catalog.records import LeaseRecord
from providers.catalog.schema import Lease


class Leases:
    """Acquire, renew and release named leases."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire(self, name: str, holder: str, ttl: float) -> LeaseRecord:
        """Take lease `name` for `holder` until now + `ttl`, unless another holder has it
        unexpired. Returns the lease as it stands afterwards: its `holder` is `holder`
        exactly when the caller got it (or already had it; then it is extended)."""

        def work(s: Session) -> LeaseRecord:
            now = time.time()
            until = now + ttl
            s.exec(
                self._db.insert(Lease)
                .values(name=name, holder=holder, expires_at=until)
                .on_conflict_do_update(
                    index_elements=["name"],
                    set_={"holder": holder, "expires_at": until},
                    where=(col(Lease.expires_at) <= now) | (col(Lease.holder) == holder),
                )
            )
            found_holder, expires_at = s.exec(
                select(col(Lease.holder), col(Lease.expires_at)).where(col(Lease.name) == name)
            ).one()
            return LeaseRecord(name=name, holder=found_holder, expires_at=expires_at)

        return self._db.run(work)

    def renew(self, name: str, holder: str, ttl: float) -> float | None:
        """Extend `holder`'s lease to now + `ttl` and return the new expiry; None if the
        lease is no longer `holder`'s (it expired and another process took it, or it was
        released). A lease that expired but nobody took is still renewed: no one else can
        have acted under it meanwhile."""

        def work(s: Session) -> float | None:
            until = time.time() + ttl
            result = s.exec(
                update(Lease)
                .where(col(Lease.name) == name, col(Lease.holder) == holder)
                .values(expires_at=until)
            )
            return until if result.rowcount else None

        return self._db.run(work)

    def release(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` still has it (otherwise leave it alone)."""

        def work(s: Session) -> None:
            s.exec(delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder))

        self._db.run(work)

    def current(self, name: str) -> LeaseRecord | None:
        """The lease row, expired or not; None when nobody has taken it."""
        with self._db.session() as s:
            row = s.exec(
                select(col(Lease.holder), col(Lease.expires_at)).where(col(Lease.name) == name)
            ).first()
        return LeaseRecord(name, *row) if row else None
