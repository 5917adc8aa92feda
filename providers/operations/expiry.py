"""Expiring history (issue 16): thin old versions and purge old trash items, once, by
`davserver gc --apply` (`expire_history`), and in the background of every server
(`HistoryKeeper`), where the named lease `history` lets one instance at a time do it.

Both steps are safe to repeat and to race: thinning never drops a file's current
content and drops nothing more when run again at the same time
(`providers.operations.retention`); a trash item another run purged first is skipped.
The lease only saves the instances from doing the same work twice.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from providers.catalog import Catalog
from providers.errors import LeaseLost, NotFound
from providers.operations.retention import RetentionPolicy, thin_versions

log = logging.getLogger(__name__)
HISTORY_LEASE = "history"
LEASE_TTL = 600.0  # a crashed holder keeps the others waiting this long at most
JOIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class HistoryRules:
    """What is kept: old versions by `versions` (`RetentionPolicy`), trash items for
    `trash_retention` seconds after their deletion."""

    versions: RetentionPolicy
    trash_retention: float


@dataclass(frozen=True)
class Expired:
    """What one run let go: old versions dropped, trash items purged."""

    versions: int
    trash_items: int


def expire_history(
    catalog: Catalog, rules: HistoryRules, now: float, keep: Callable[[], None] | None = None
) -> Expired:
    """Drop the old versions `rules` does not keep at `now`, then purge every trash
    item deleted more than `rules.trash_retention` seconds before `now`. `keep` (if
    given) is called before each file and each item: it may raise to stop the run
    (a lost lease), leaving what is done done. The chunks let go are freed by GC."""
    versions = thin_versions(catalog.versions, now, rules.versions, keep=keep)
    purged = 0
    for owner_id, item_id in catalog.trash.expired(now - rules.trash_retention):
        if keep is not None:
            keep()
        try:
            catalog.trash.purge(owner_id, item_id)
        except NotFound:  # another run (gc --apply, an instance) purged it first
            continue
        purged += 1
    return Expired(versions, purged)


class HistoryKeeper:
    """Runs `expire_history` every `interval` seconds on a daemon thread, under the
    catalog's `history` lease: an instance whose turn comes while another holds it
    skips that turn. The first run is one interval after `start` (a restart does not
    thin at once; `gc --apply` does it on demand). Errors are logged, never fatal to
    the thread; `close` stops it promptly (it waits for a run in progress)."""

    def __init__(
        self,
        catalog: Catalog,
        rules: HistoryRules,
        interval: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog, self._rules, self._interval, self._clock = catalog, rules, interval, clock
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Expired | None:
        """One run if this keeper gets the lease (then released); None if another
        holder has it. `LeaseLost` if it was taken over during the run."""
        leases = self._catalog.leases
        if leases.acquire(HISTORY_LEASE, self.holder, LEASE_TTL).holder != self.holder:
            return None
        renew_at = time.monotonic() + LEASE_TTL / 4

        def keep() -> None:
            nonlocal renew_at
            if self._stop.is_set():
                raise InterruptedError("the server is stopping")
            if time.monotonic() < renew_at:
                return
            if leases.renew(HISTORY_LEASE, self.holder, LEASE_TTL) is None:
                raise LeaseLost(f"history lease of {self.holder} was taken over; stopped")
            renew_at = time.monotonic() + LEASE_TTL / 4

        try:
            return expire_history(self._catalog, self._rules, self._clock(), keep)
        finally:
            leases.release(HISTORY_LEASE, self.holder)

    def start(self) -> None:
        """Start the thread (no-op if started, or if `interval` is 0: off)."""
        if self._thread is not None or self._interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="history", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                done = self.run_once()
            except InterruptedError:
                return
            except Exception:  # a database hiccup must not end the thread: next turn
                log.exception("history expiry failed; trying again in %s s", self._interval)
                continue
            if done is None:
                log.debug("history expiry: another instance holds the lease; skipped")
            else:
                log.info(
                    "history expiry: dropped %d old versions, purged %d trash items",
                    done.versions,
                    done.trash_items,
                )
