"""Group sync: one `BlobStore.sync` serves every caller that was waiting for it.

Every upload ends with `sync()` (a `syncfs(2)` on the local directory store) before its
commit. Eight small PUTs at once made eight syncs, one after another, each flushing
what the others had written too. `GroupSync` keeps the contract (when the call
returns, every object put before the call began is durable) with at most one sync
running: a caller arriving while one runs waits for it to end and then for the next
one, which a single waiter starts on behalf of everyone who arrived meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class _Round:
    """One run of the sync, shared by the callers it serves."""

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None


class GroupSync:
    """Calls `sync` (which makes durable every put before it starts) on behalf of
    concurrent callers; see the module docstring. A failed sync raises its error in
    every caller it was run for."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._changed = threading.Condition()
        self._running: _Round | None = None
        self._next: _Round | None = None  # the round for callers that came meanwhile
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Callers waiting for a round to start or end (for tests and gauges)."""
        with self._changed:
            return self._waiting

    def __call__(self) -> None:
        with self._changed:
            if self._running is None:
                mine = self._running = _Round()
            else:
                mine = self._next = self._next or _Round()
                self._waiting += 1
                while self._running is not None and not mine.done:
                    self._changed.wait()
                self._waiting -= 1
                if mine.done:  # another caller ran it for us
                    if mine.error is not None:
                        raise mine.error
                    return
                self._next, self._running = None, mine
        try:
            self._sync()
        except BaseException as e:
            mine.error = e
        with self._changed:
            mine.done, self._running = True, None
            self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
