"""Waiting for changes: long polls and event streams, woken without each one polling.

A waiter registers for the users whose changes can reach its feed
(`FeedSource.interest`), then reads the log, then sleeps until woken; registering
before reading means a change committed in between still wakes it. The log is the
record (design invariants 5 and 17): a wake-up only says "look again", and the
waiter reads the log itself. Wake-ups come from:

- events: this process's commits at once, other instances' through Redis, or other
  workers' of this server over local sockets without Redis (`ChannelEvents`); an
  event wakes the waiters of its owner, a `sharing` or `resync`
  event every waiter (who receives what may have changed; events may have been lost);
- a log watcher: a thread that, every `tick` seconds while anyone waits, asks the log
  whose feeds changed since it last looked (`FeedSource.watch`): one query per tick
  however many wait. It catches what pub/sub lost and what processes without Redis
  did (the command line of an embedded server);
- time: every waiter reads again each `recheck` seconds, whatever happened.

Each waiter holds a server thread (cheroot serves a request per thread), so at most
`capacity` wait at once; one more is refused with `TooBusy` (503), and the server
runs `capacity` threads on top of its normal pool, so plain requests always have
theirs (`davserver.cli.serve`). `close()`, at shutdown, ends every wait (a long poll
answers "no change", a stream ends) and refuses new ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from providers.errors import StorageError, TooBusy
from providers.operations import Actor, Event, EventPublisher
from providers.operations.events import RESYNC, SHARING
from providers.operations.feed import FeedEntry, Page
from providers.push.source import FeedSource

log = logging.getLogger(__name__)


class Waiter:
    """One waiting request: the user ids it listens for, and its wake-up flag."""

    def __init__(self, ids: frozenset[int]) -> None:
        self.ids = ids
        self.woken = threading.Event()
        self.stale = False  # who receives what changed: ask for `ids` again


class Push:
    """Long polls and event streams for one process (see the module docstring)."""

    PAGE = 100  # entries read at once for a stream

    def __init__(
        self,
        events: EventPublisher,
        feed: FeedSource,
        *,
        capacity: int,
        tick: float = 1.0,
        recheck: float = 15.0,
    ) -> None:
        self.feed = feed
        self.capacity = capacity
        self.tick = tick
        self.recheck = recheck
        self._events = events
        self._lock = threading.Lock()
        self._by_id: dict[int, set[Waiter]] = {}
        self._all: set[Waiter] = set()
        self._closed = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._watcher: threading.Thread | None = None
        self._counters: list[Callable[[int], None]] = []

    @property
    def waiting(self) -> int:
        """How many requests wait now."""
        return len(self._all)

    def on_waiting(self, counter: Callable[[int], None]) -> None:
        """Have `counter(waiting)` called each time a wait starts or ends, with the
        new count, in order (under the lock: it must be quick; the metrics set a gauge)."""
        self._counters.append(counter)

    def _counted(self) -> None:
        for counter in self._counters:
            counter(len(self._all))

    @property
    def closing(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        """Listen to events and start the log watcher (a server does; the command line
        does not). Idempotent."""
        if self._watcher is not None:
            return
        self._unsubscribe = self._events.subscribe(self._on_event)
        self._watcher = threading.Thread(target=self._watch, name="push-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """End every wait now and refuse new ones (idempotent)."""
        self._closed.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._wake(None)
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def wait(self, actor: Actor, cursor: str, timeout: float, path: str = "/") -> bool:
        """Whether `actor`'s feed of `path` has anything after `cursor` within
        `timeout` seconds: True as soon as it has, False at the timeout or at shutdown.
        `TooBusy` when `capacity` requests wait already; the feed's errors for a bad
        cursor."""
        deadline = time.monotonic() + timeout
        with self._admitted(actor) as waiter:
            while True:
                waiter.woken.clear()  # before reading: a later commit sets it again
                if self._closed.is_set():
                    return False
                self.refresh(waiter, actor)
                if self.feed.has_changes_after(actor, cursor, path):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                waiter.woken.wait(min(left, self.recheck))

    def follow(self, actor: Actor, cursor: str | None, path: str = "/") -> Follow:
        """A stream of `actor`'s feed of `path` after `cursor`, admitted (`TooBusy`)
        and its first page read, so a bad cursor is refused before anything is sent.
        The caller must `close` it."""
        waiter = self._admit(actor)
        try:
            first = self.feed.read(actor, cursor, self.PAGE, path)
        except BaseException:
            self.release(waiter)
            raise
        return Follow(self, actor, waiter, first, path)

    @contextmanager
    def _admitted(self, actor: Actor) -> Iterator[Waiter]:
        waiter = self._admit(actor)
        try:
            yield waiter
        finally:
            self.release(waiter)

    def _admit(self, actor: Actor) -> Waiter:
        waiter = Waiter(self.feed.interest(actor))
        with self._lock:
            if self._closed.is_set():
                raise TooBusy("the server is shutting down")
            if len(self._all) >= self.capacity:
                raise TooBusy(f"{self.capacity} clients wait for changes here already")
            self._register(waiter)
            self._counted()
        return waiter

    def _register(self, waiter: Waiter) -> None:
        self._all.add(waiter)
        for user_id in waiter.ids:
            self._by_id.setdefault(user_id, set()).add(waiter)

    def release(self, waiter: Waiter) -> None:
        """Forget `waiter` (idempotent): its request is over."""
        with self._lock:
            self._unregister(waiter)
            self._counted()

    def _unregister(self, waiter: Waiter) -> None:
        self._all.discard(waiter)
        for user_id in waiter.ids:
            waiters = self._by_id.get(user_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._by_id[user_id]

    def refresh(self, waiter: Waiter, actor: Actor) -> None:
        """After a change of who receives what, listen for the right users again."""
        if not waiter.stale:
            return
        waiter.stale = False
        ids = self.feed.interest(actor)
        with self._lock:
            if waiter in self._all:
                self._unregister(waiter)
                waiter.ids = ids
                self._register(waiter)

    def _on_event(self, event: Event) -> None:
        if event.kind in (SHARING, RESYNC):
            self._wake(None, stale=event.kind == SHARING)
        else:
            self._wake({event.owner_id})

    def _wake(self, ids: set[int] | None, *, stale: bool = False) -> None:
        """Wake the waiters of `ids` (None: every waiter)."""
        with self._lock:
            if ids is None:
                woken = list(self._all)
            else:
                woken = [w for user_id in ids for w in self._by_id.get(user_id, ())]
        for waiter in woken:
            waiter.stale = waiter.stale or stale
            waiter.woken.set()

    def _watch(self) -> None:
        """The log watcher (see the module docstring). Its mark is forgotten while
        nobody waits: a new waiter reads the log itself first, so nothing from before
        it needs waking, and the watcher's first query afterwards stays small."""
        mark: int | None = None
        while not self._closed.wait(self.tick):
            if not self._all:
                mark = None
                continue
            try:
                mark, ids = self.feed.watch(mark)
            except StorageError as e:
                log.warning("push: cannot read the change log: %s", e)
                continue
            if ids:
                self._wake(ids)


class Follow:
    """An admitted event stream (`Push.follow`): `next` gives the entries as they
    come; `close` (idempotent) frees its place."""

    def __init__(self, push: Push, actor: Actor, waiter: Waiter, first: Page, path: str) -> None:
        self._push = push
        self._actor = actor
        self._waiter = waiter
        self._path = path
        self._page: Page | None = first
        self._due_at = time.monotonic()
        self.cursor = first.cursor

    def next(self, within: float) -> list[FeedEntry] | None:
        """The next entries (each with the cursor after it), waiting up to `within`
        seconds for some: [] when none came in time (a heartbeat is due), None once
        push is closing (end the stream)."""
        push, waiter = self._push, self._waiter
        deadline = time.monotonic() + within
        while True:
            page, self._page = self._page, None
            if page is None:
                waiter.woken.clear()  # before reading: a later commit sets it again
                if push.closing:
                    return None
                push.refresh(waiter, self._actor)
                page = push.feed.read(self._actor, self.cursor, push.PAGE, self._path)
            self.cursor = page.cursor
            if page.entries:
                return page.entries
            if page.has_more:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            waiter.woken.wait(min(left, push.recheck))

    def due(self, within: float) -> bool:
        """Wait up to `within` seconds for a reason to read (`next(0)`) again: True
        once woken (a change may have committed; the wake-up is taken), push is
        closing, or `recheck` seconds passed since `due` last said True; else False.
        For a reader that reads on its own schedule (debounced notifications) rather
        than at every wake-up, as `next` does."""
        push, woken = self._push, self._waiter.woken
        recheck_left = self._due_at + push.recheck - time.monotonic()
        if woken.wait(max(0.0, min(within, recheck_left))) or push.closing:
            woken.clear()  # a commit after this sets it again; `next` reads after it
        elif time.monotonic() < self._due_at + push.recheck:
            return False
        self._due_at = time.monotonic()
        return True

    def close(self) -> None:
        self._push.release(self._waiter)
