"""The `EventPublisher` contract (`providers.operations.events`), on every publisher:
in-process now (the change-feed work adds one over Redis, and this suite with it)."""

from __future__ import annotations

import threading

import pytest

from providers.operations import Event, EventPublisher, InProcessEvents

PUBLISHERS = ["in-process"]


@pytest.fixture(params=PUBLISHERS)
def publisher(request: pytest.FixtureRequest) -> EventPublisher:
    return InProcessEvents()


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
