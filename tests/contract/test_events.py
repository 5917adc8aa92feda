"""The `EventPublisher` contract (`providers.operations.events`), on every publisher:
in-process, and `ChannelEvents` over Redis and over the local datagram sockets between
the workers of one server, which also carry events between processes: each process's
listeners get another's events once, and a gap (a lost connection, a worker that fell
behind) ends in a `resync` event, since what the channel sent meanwhile is lost."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

from providers import local_channel
from providers.local_channel import LocalChannel
from providers.operations import Event, EventPublisher, InProcessEvents
from providers.operations.events import RESYNC, ChannelEvents
from providers.redis_store import Channel
from tests.services.redis import RedisService
from tests.support.channels import CHANNEL_KINDS, channel_maker, fresh_group

PUBLISHERS = ["in-process", *CHANNEL_KINDS]

MakeEvents = Callable[[], ChannelEvents]


@contextmanager
def events_maker(kind: str, request: pytest.FixtureRequest) -> Iterator[MakeEvents]:
    """Makes `ChannelEvents` on one fresh channel of `kind`, each another process of
    one deployment: another Redis client, or the next worker of one local group;
    closes them afterwards."""
    made: list[ChannelEvents] = []
    with channel_maker(kind, request) as make_channel:

        def make() -> ChannelEvents:
            made.append(ChannelEvents(make_channel()))
            return made[-1]

        try:
            yield make
        finally:
            for events in made:
                events.close()


@pytest.fixture(params=CHANNEL_KINDS)
def channel_events(request: pytest.FixtureRequest) -> Iterator[MakeEvents]:
    with events_maker(request.param, request) as make:
        yield make


@pytest.fixture(params=PUBLISHERS)
def publisher(request: pytest.FixtureRequest) -> Iterator[EventPublisher]:
    if request.param == "in-process":
        events = InProcessEvents()
        yield events
        events.close()
    else:
        with events_maker(request.param, request) as make:
            yield make()


def event(n: int) -> Event:
    return Event("put", 1, n, f"/f{n}", "alice")


def test_every_listener_gets_every_event_in_order(publisher: EventPublisher) -> None:
    first: list[int] = []
    second: list[int] = []
    publisher.subscribe(lambda e: first.append(e.node_id))
    publisher.subscribe(lambda e: second.append(e.node_id))
    for n in range(5):
        publisher.publish(event(n))
    assert first == second == [0, 1, 2, 3, 4]


def test_a_failing_listener_fails_neither_the_publisher_nor_the_others(
    publisher: EventPublisher,
) -> None:
    seen: list[int] = []

    def broken(_event: Event) -> None:
        raise RuntimeError("listener bug")

    publisher.subscribe(broken)
    publisher.subscribe(lambda e: seen.append(e.node_id))
    publisher.publish(event(7))
    assert seen == [7]


def test_unsubscribe_stops_delivery_and_is_idempotent(publisher: EventPublisher) -> None:
    seen: list[int] = []
    stop = publisher.subscribe(lambda e: seen.append(e.node_id))
    publisher.publish(event(1))
    stop()
    stop()
    publisher.publish(event(2))
    assert seen == [1]


def test_publishing_from_many_threads_loses_nothing(publisher: EventPublisher) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def listen(e: Event) -> None:
        with lock:
            seen.append(e.node_id)

    publisher.subscribe(listen)
    threads = [
        threading.Thread(
            target=lambda k=k: [publisher.publish(event(k * 100 + i)) for i in range(50)]
        )
        for k in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(k * 100 + i for k in range(8) for i in range(50))


def collector() -> tuple[queue.Queue[Event], Callable[[Event], None]]:
    got: queue.Queue[Event] = queue.Queue()
    return got, got.put


def listening(events: ChannelEvents, listener: Callable[[Event], None]) -> ChannelEvents:
    events.subscribe(listener)
    assert events.wait_listening(10)
    return events


def test_an_event_reaches_every_other_instance_once(channel_events: MakeEvents) -> None:
    got_a, got_b = collector(), collector()
    a = listening(channel_events(), got_a[1])
    listening(channel_events(), got_b[1])
    sent = event(1)
    a.publish(sent)
    assert got_a[0].get(timeout=1) == sent  # at once, in publish
    assert got_b[0].get(timeout=2) == sent  # every field, through the channel
    time.sleep(0.3)  # A's own event, if the channel echoes it (Redis does): skipped
    assert got_a[0].empty() and got_b[0].empty()


def test_events_of_one_publisher_arrive_in_order(channel_events: MakeEvents) -> None:
    got, listener = collector()
    a = channel_events()
    listening(channel_events(), listener)
    for n in range(50):
        a.publish(event(n))
    assert [got.get(timeout=2).node_id for _ in range(50)] == list(range(50))


@pytest.fixture
def redis_events(request: pytest.FixtureRequest) -> Iterator[MakeEvents]:
    with events_maker("redis", request) as make:
        yield make


def test_a_lost_connection_ends_in_a_resync_then_delivery_resumes(
    redis_service: RedisService, redis_events: MakeEvents
) -> None:
    got, listener = collector()
    a = redis_events()
    listening(redis_events(), listener)
    admin = redis.Redis.from_url(redis_service.url)
    try:
        assert admin.client_kill_filter(_type="pubsub") >= 1
    finally:
        admin.close()
    assert got.get(timeout=5).kind == RESYNC
    a.publish(event(9))
    assert got.get(timeout=2).node_id == 9


def test_a_worker_that_falls_behind_gets_a_resync_then_delivery_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Local workers: one whose listener is stuck while others publish has its queue
    fill, and what does not fit is dropped; once it reads again, a `resync` comes
    before the next event."""
    monkeypatch.setattr(local_channel, "SEND_TIMEOUT", 0.1)
    monkeypatch.setattr(local_channel, "STUCK_RETRY", 0)  # event 99 may wait for room
    group = fresh_group()
    publisher = ChannelEvents(LocalChannel(group, 0, 2, "events"))
    receiver = ChannelEvents(LocalChannel(group, 1, 2, "events"))
    try:
        stuck = threading.Event()
        got: list[Event] = []

        def slow(received: Event) -> None:
            got.append(received)
            stuck.wait(10)

        listening(receiver, slow)
        for n in range(40):  # far more than a worker's socket queues
            publisher.publish(event(n))
        time.sleep(1)  # the sender drops what does not fit (one SEND_TIMEOUT, then at once)
        stuck.set()
        publisher.publish(event(99))
        deadline = time.monotonic() + 5
        while (not got or got[-1].node_id != 99) and time.monotonic() < deadline:
            time.sleep(0.01)
        kinds = [e.kind for e in got]
        cut = kinds.index(RESYNC)  # where the first drop was
        assert [e.node_id for e in got[:cut]] == list(range(cut))
        delivered = [e.node_id for e in got if e.kind != RESYNC]
        assert delivered == sorted(delivered) and delivered[-1] == 99
        assert len(delivered) < 41  # some were dropped
    finally:
        publisher.close()
        receiver.close()


def publish_as_worker(group: str, index: int, node_id: int) -> None:
    """A worker process of `group` that publishes one event, then stops."""
    events = ChannelEvents(LocalChannel(group, index, 2, "events"))
    events.publish(event(node_id))
    events.close()  # sends what is queued first


def test_an_event_crosses_from_one_worker_process_to_another() -> None:
    """Two real processes (the second started with `spawn`, as fresh as a worker):
    the parent, worker 0, hears the event worker 1 published."""
    group = fresh_group()
    got, listener = collector()
    parent = listening(ChannelEvents(LocalChannel(group, 0, 2, "events")), listener)
    try:
        child = multiprocessing.get_context("spawn").Process(
            target=publish_as_worker, args=(group, 1, 77)
        )
        child.start()
        child.join(60)
        assert child.exitcode == 0
        received = got.get(timeout=5)
        assert (received.kind, received.node_id, received.path, received.actor) == (
            "put",
            77,
            "/f77",
            "alice",
        )
    finally:
        parent.close()


def test_a_publisher_without_redis_still_serves_this_process() -> None:
    """Redis down: listeners here get the event at once, `publish` neither fails
    nor waits (the change is in the log; other instances catch up from it)."""
    events = ChannelEvents(Channel("redis://127.0.0.1:1/0", "nobody"))
    try:
        got, listener = collector()
        events.subscribe(listener)
        started = time.monotonic()
        events.publish(event(3))
        assert time.monotonic() - started < 0.5
        assert got.get(timeout=1).node_id == 3
    finally:
        events.close()
