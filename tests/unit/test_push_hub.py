"""`Push` (`providers.push.hub`) over a feed in memory: waits end as soon as the feed
has something, woken by the events of the right owners, by the log watcher when no
event came, or by time; at most `capacity` wait; `close` ends every wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from providers.catalog import UserRecord
from providers.errors import BadCursor, TooBusy
from providers.operations import Actor, Event, InProcessEvents
from providers.operations.events import PUT, SHARING
from providers.operations.feed import FeedEntry, Page
from providers.push import Push


class MemoryFeed:
    """A `FeedSource` over a list: row n (cursor str(n + 1)) is (user id, entry);
    `path` is ignored.
    `silent` appends without an event, as another process without Redis would."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, FeedEntry]] = []
        self.received: dict[int, set[int]] = {}  # user -> owners of what they received
        self.checks = 0
        self.reads = 0
        self._lock = threading.Lock()

    def add(self, user_id: int, path: str) -> None:
        with self._lock:
            entry = FeedEntry("created", path, "file", "1", 0, "e", None, 0.0, 0.0)
            self.rows.append((user_id, entry))

    def latest(self, actor: Actor, path: str = "/") -> str:
        return str(len(self.rows))

    def interest(self, actor: Actor) -> frozenset[int]:
        return frozenset({actor.user.id, *self.received.get(actor.user.id, ())})

    def _mine(self, actor: Actor, cursor: str | None) -> tuple[list[FeedEntry], int]:
        """The actor's entries after `cursor`, and the log's length they were read at."""
        start = 0 if cursor is None else int(cursor)
        with self._lock:
            rows = list(self.rows)
        if start > len(rows):
            raise BadCursor("not a cursor of this server")
        ids = self.interest(actor)
        mine = [
            replace(e, cursor=str(n + 1))
            for n, (user, e) in enumerate(rows)
            if n >= start and user in ids
        ]
        return mine, len(rows)

    def has_changes_after(self, actor: Actor, cursor: str, path: str = "/") -> bool:
        self.checks += 1
        return bool(self._mine(actor, cursor)[0])

    def read(self, actor: Actor, cursor: str | None, limit: int, path: str = "/") -> Page:
        self.reads += 1
        mine, end = self._mine(actor, cursor)
        if len(mine) > limit:
            return Page(mine[:limit], mine[limit - 1].cursor, True)
        return Page(mine, str(end), False)

    def watch(self, mark: int | None) -> tuple[int, set[int]]:
        with self._lock:
            rows = list(self.rows)
        if mark is None:
            return len(rows), set()
        return len(rows), {user for user, _ in rows[mark:]}


def pairs(entries: list[FeedEntry] | None) -> list[tuple[str, str]] | None:
    """(cursor, path) of each entry (None stays None: the stream ends)."""
    return None if entries is None else [(e.cursor, e.path) for e in entries]


def actor(user_id: int) -> Actor:
    return Actor(UserRecord(user_id, f"u{user_id}", "", user_id, None, 0))


@pytest.fixture
def feed() -> MemoryFeed:
    return MemoryFeed()


@pytest.fixture
def events() -> InProcessEvents:
    return InProcessEvents()


@pytest.fixture
def push(feed: MemoryFeed, events: InProcessEvents) -> Iterator[Push]:
    hub = Push(events, feed, capacity=4, tick=0.2, recheck=30)
    hub.start()
    yield hub
    hub.close()


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    return thread, result


def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def commit(feed: MemoryFeed, events: InProcessEvents, user_id: int, path: str) -> None:
    feed.add(user_id, path)
    events.publish(Event(PUT, user_id, 1, path, f"u{user_id}"))


def test_a_wait_ends_at_once_when_the_feed_has_something(push: Push, feed: MemoryFeed) -> None:
    feed.add(1, "/a")
    started = time.monotonic()
    assert push.wait(actor(1), "0", timeout=10) is True
    assert time.monotonic() - started < 0.5


def test_a_commit_of_the_owner_wakes_the_wait(
    push: Push, feed: MemoryFeed, events: InProcessEvents
) -> None:
    thread, result = in_thread(lambda: push.wait(actor(1), "0", timeout=10))
    until(lambda: push.waiting == 1)
    started = time.monotonic()
    commit(feed, events, 1, "/a")
    thread.join(timeout=2)
    assert result == [True] and time.monotonic() - started < 0.5


def test_another_owners_commit_does_not_make_the_waiter_read(
    push: Push, feed: MemoryFeed, events: InProcessEvents
) -> None:
    push.tick = 60.0  # the watcher sleeps (it would only wake user 2's waiters anyway)
    thread, result = in_thread(lambda: push.wait(actor(1), "0", timeout=0.6))
    until(lambda: feed.checks == 1)  # registered, read the log once, asleep
    commit(feed, events, 2, "/b")
    thread.join(timeout=3)
    assert result == [False]
    assert feed.checks == 2  # only the final one at the timeout


def test_without_an_event_the_log_watcher_wakes_the_wait(push: Push, feed: MemoryFeed) -> None:
    thread, result = in_thread(lambda: push.wait(actor(1), "0", timeout=10))
    until(lambda: push.waiting == 1)
    time.sleep(0.3)  # the watcher has its mark
    started = time.monotonic()
    feed.add(1, "/silent")  # as another process without Redis: no event here
    thread.join(timeout=3)
    assert result == [True] and time.monotonic() - started < 1.0


def test_a_wait_times_out_false(push: Push) -> None:
    started = time.monotonic()
    assert push.wait(actor(1), "0", timeout=0.3) is False
    assert 0.3 <= time.monotonic() - started < 1.0


def test_a_new_grant_is_listened_for_after_a_sharing_event(
    push: Push, feed: MemoryFeed, events: InProcessEvents
) -> None:
    push.tick = 60.0
    thread, result = in_thread(lambda: push.wait(actor(1), "0", timeout=5))
    until(lambda: push.waiting == 1)
    feed.received[1] = {2}  # user 2 shares something with user 1
    events.publish(Event(SHARING, 2, 0, "", "u2"))
    time.sleep(0.2)
    started = time.monotonic()
    commit(feed, events, 2, "/shared/x")  # wakes user 1 now that 2 is of interest
    thread.join(timeout=2)
    assert result == [True] and time.monotonic() - started < 0.5


def test_past_capacity_a_waiter_is_refused(push: Push) -> None:
    counts: list[int] = []
    push.on_waiting(counts.append)
    threads = [in_thread(lambda: push.wait(actor(1), "0", timeout=5))[0] for _ in range(4)]
    until(lambda: push.waiting == 4)
    with pytest.raises(TooBusy):
        push.wait(actor(1), "0", timeout=1)
    push.close()
    for thread in threads:
        thread.join(timeout=2)
    assert push.waiting == 0
    assert counts == [1, 2, 3, 4, 3, 2, 1, 0]  # each start and end, in order (the metrics)


def test_close_ends_every_wait_and_refuses_new_ones(push: Push) -> None:
    thread, result = in_thread(lambda: push.wait(actor(1), "0", timeout=30))
    until(lambda: push.waiting == 1)
    started = time.monotonic()
    push.close()
    thread.join(timeout=2)
    assert result == [False] and time.monotonic() - started < 1.0
    with pytest.raises(TooBusy):
        push.wait(actor(1), "0", timeout=1)


def test_a_bad_cursor_is_refused_and_frees_its_place(push: Push) -> None:
    with pytest.raises(BadCursor):
        push.wait(actor(1), "99", timeout=1)
    with pytest.raises(BadCursor):
        push.follow(actor(1), "99")
    assert push.waiting == 0


def test_a_stream_gives_what_is_there_then_each_commit(
    push: Push, feed: MemoryFeed, events: InProcessEvents
) -> None:
    feed.add(1, "/a")
    feed.add(2, "/not-mine")
    follow = push.follow(actor(1), None)
    try:
        assert pairs(follow.next(1)) == [("1", "/a")]
        assert follow.next(0.2) == []  # nothing within: a heartbeat is due
        _, result = in_thread(lambda: follow.next(5))
        time.sleep(0.1)
        commit(feed, events, 1, "/b")
        until(lambda: bool(result))
        assert [pairs(batch) for batch in result] == [[("3", "/b")]]
        push.close()
        assert follow.next(5) is None
    finally:
        follow.close()
    assert push.waiting == 0


def test_due_says_when_to_read_without_reading(
    push: Push, feed: MemoryFeed, events: InProcessEvents
) -> None:
    follow = push.follow(actor(1), "0")
    try:
        assert follow.next(0) == []  # the page read at admission
        reads = feed.reads
        assert follow.due(0.1) is False  # nothing woke it
        commit(feed, events, 1, "/a")
        assert follow.due(5) is True
        assert follow.due(0.1) is False  # the wake-up was taken
        assert feed.reads == reads  # `due` itself never reads the feed
        assert pairs(follow.next(0)) == [("1", "/a")]
        push.recheck = 0.2
        assert follow.due(1) is True  # recheck time passed since it last said so
        push.close()
        assert follow.due(5) is True and follow.next(0) is None
    finally:
        follow.close()


def test_a_stream_reads_long_backlogs_page_by_page(push: Push, feed: MemoryFeed) -> None:
    for n in range(push.PAGE + 5):
        feed.add(1, f"/f{n}")
    follow = push.follow(actor(1), "0")
    try:
        got = follow.next(1) or []
        got += follow.next(1) or []
    finally:
        follow.close()
    assert [entry.cursor for entry in got] == [str(n + 1) for n in range(push.PAGE + 5)]
