"""The `EventPublisher` contract (`providers.operations.events`), on every publisher:
in-process, and over Redis (`RedisEvents`), which also carries events between
instances: each instance's listeners get another's events once, and a lost
connection ends in a `resync` event, since what pub/sub sent meanwhile is lost."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from providers.operations import Event, EventPublisher, InProcessEvents
from providers.operations.events import RESYNC, RedisEvents
from providers.redis_store import Channel
from tests.services.redis import RedisService

PUBLISHERS = ["in-process", "redis"]


@pytest.fixture
def redis_events(redis_service: RedisService) -> Iterator[Callable[[], RedisEvents]]:
    """Makes `RedisEvents` instances on one fresh channel (instances of one
    deployment); closes them afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    made: list[RedisEvents] = []

    def make() -> RedisEvents:
        made.append(RedisEvents(Channel(redis_service.url, name)))
        return made[-1]

    yield make
    for events in made:
        events.close()


@pytest.fixture(params=PUBLISHERS)
def publisher(request: pytest.FixtureRequest) -> Iterator[EventPublisher]:
    if request.param == "in-process":
        events: EventPublisher = InProcessEvents()
    else:
        events = request.getfixturevalue("redis_events")()
    yield events
    events.close()


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


def listening(events: RedisEvents, listener: Callable[[Event], None]) -> RedisEvents:
    events.subscribe(listener)
    assert events.wait_listening(10)
    return events


def test_an_event_reaches_every_other_instance_once(
    redis_events: Callable[[], RedisEvents],
) -> None:
    got_a, got_b = collector(), collector()
    a = listening(redis_events(), got_a[1])
    listening(redis_events(), got_b[1])
    sent = event(1)
    a.publish(sent)
    assert got_a[0].get(timeout=1) == sent  # at once, in publish
    assert got_b[0].get(timeout=2) == sent  # every field, through Redis
    time.sleep(0.3)  # A's own event comes back from Redis: it must be skipped
    assert got_a[0].empty() and got_b[0].empty()


def test_events_of_one_publisher_arrive_in_order(
    redis_events: Callable[[], RedisEvents],
) -> None:
    got, listener = collector()
    a = redis_events()
    listening(redis_events(), listener)
    for n in range(50):
        a.publish(event(n))
    assert [got.get(timeout=2).node_id for _ in range(50)] == list(range(50))


def test_a_lost_connection_ends_in_a_resync_then_delivery_resumes(
    redis_service: RedisService, redis_events: Callable[[], RedisEvents]
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


def test_a_publisher_without_redis_still_serves_this_process() -> None:
    """Redis down: listeners here get the event at once, `publish` neither fails
    nor waits (the change is in the log; other instances catch up from it)."""
    events = RedisEvents(Channel("redis://127.0.0.1:1/0", "nobody"))
    try:
        got, listener = collector()
        events.subscribe(listener)
        started = time.monotonic()
        events.publish(event(3))
        assert time.monotonic() - started < 0.5
        assert got.get(timeout=1).node_id == 3
    finally:
        events.close()
