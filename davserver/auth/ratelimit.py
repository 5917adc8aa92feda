"""Counting failed logins: one interface, two implementations.

A limiter counts failures per subject, a (kind, value) pair such as ("user", "bob")
or ("addr", "10.0.0.7"). Each kind has its own limit; a subject's window starts at
its first failure and lasts `window` seconds. Once a subject has `limit` failures in
its window it stays blocked until the window ends, so at most `limit` guesses per
window get through whatever the attacker does.

`SharedLimiter` counts where every process and instance sees the counts, with
`MemoryLimiter`'s semantics: in Redis (`providers.redis_store.Counters`, kept exact by
MULTI/EXEC) when `redis_url` is set, else in the catalog
(`providers.catalog.ExpiringCounters`, one UPSERT per subject). `MemoryLimiter` counts
in this process only (tests that need no store).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from providers.catalog import Catalog
from providers.errors import Unavailable
from providers.redis_store import Counters

PREFIX = "davserver:login:"

log = logging.getLogger(__name__)
Subject = tuple[str, str]


def _key(subject: Subject) -> str:
    """A short fixed-size key: a user name in a Basic header can be kilobytes long."""
    kind, value = subject
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:32]}"


class LoginLimiter(Protocol):
    """What the login gate needs from a limiter."""

    def blocked_for(self, subjects: Sequence[Subject]) -> int:
        """Whole seconds until every subject may try again; 0 when none is blocked."""

    def failed(self, subjects: Sequence[Subject]) -> None:
        """Count one failed login against each subject."""

    def close(self) -> None:
        """Release connections."""


class MemoryLimiter:
    """In-process counts; at most `max_entries` subjects (expired ones are dropped first,
    then everything: a flood of invented user names must not grow memory forever)."""

    def __init__(
        self, limits: Mapping[str, int], window: float, *, max_entries: int = 100_000
    ) -> None:
        self._limits = dict(limits)
        self._window = window
        self._max = max_entries
        self._entries: dict[str, tuple[int, float]] = {}  # key -> (failures, window end)
        self._lock = threading.Lock()

    def blocked_for(self, subjects: Sequence[Subject]) -> int:
        now, wait = time.monotonic(), 0.0
        with self._lock:
            for subject in subjects:
                failures, end = self._entries.get(_key(subject), (0, 0.0))
                if end > now and failures >= self._limits[subject[0]]:
                    wait = max(wait, end - now)
        return math.ceil(wait)

    def failed(self, subjects: Sequence[Subject]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
                if len(self._entries) >= self._max:
                    self._entries.clear()
            for subject in subjects:
                key = _key(subject)
                failures, end = self._entries.get(key, (0, 0.0))
                if end <= now:
                    failures, end = 0, now + self._window
                self._entries[key] = (failures + 1, end)

    def close(self) -> None:
        pass


class SharedCounters(Protocol):
    """Counters that expire, shared by every process: `providers.redis_store.Counters`
    or `providers.catalog.ExpiringCounters`."""

    def read(self, keys: Sequence[str]) -> list[tuple[int, int]]:
        """(count, milliseconds left) per key; (0, 0) for an absent or expired key."""

    def bump(self, keys: Sequence[str], window: int) -> None:
        """Add one to each key, starting an absent or expired one with `window` seconds."""

    def close(self) -> None:
        """Release connections."""


class SharedLimiter:
    """Counts in `counters` (Redis or the catalog), so every process and instance sees
    the same failures.

    The store being down lets the login through to the password check (logged):
    argon2id still slows guessing, and refusing every login while the store blinks
    would take all users offline.
    """

    def __init__(self, counters: SharedCounters, limits: Mapping[str, int], window: float) -> None:
        self._counters = counters
        self._limits = dict(limits)
        self._window = max(1, math.ceil(window))

    def blocked_for(self, subjects: Sequence[Subject]) -> int:
        try:
            counts = self._counters.read([_key(subject) for subject in subjects])
        except Unavailable as e:
            log.warning("login limiter: store unavailable, not throttling: %s", e)
            return 0
        wait = 0
        for (kind, _value), (failures, ms_left) in zip(subjects, counts, strict=True):
            if failures >= self._limits[kind] and ms_left > 0:
                wait = max(wait, math.ceil(ms_left / 1000))
        return wait

    def failed(self, subjects: Sequence[Subject]) -> None:
        try:
            self._counters.bump([_key(subject) for subject in subjects], self._window)
        except Unavailable as e:
            log.warning("login limiter: store unavailable, failure not counted: %s", e)

    def close(self) -> None:
        self._counters.close()


def build_limiter(
    redis_url: str, catalog: Catalog, limits: Mapping[str, int], window: float
) -> LoginLimiter:
    """A `SharedLimiter` on Redis when `redis_url` is set, else on the catalog."""
    counters: SharedCounters = (
        Counters(redis_url, PREFIX) if redis_url else catalog.counters(PREFIX)
    )
    return SharedLimiter(counters, limits, window)
