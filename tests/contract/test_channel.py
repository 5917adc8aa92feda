"""The event channel contract (`providers.operations.events.EventChannel`), on both
channels: Redis pub/sub (`providers.redis_store.Channel`) and the local datagram
sockets between the workers of one server (`providers.local_channel.LocalChannel`).
A message reaches whoever listens when it is sent, in order per publisher; a channel
is a hint, not a record, so what a listener misses is reported as a gap (the Redis
case is in test_events.py, which kills the connection; the local one is here)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from providers import local_channel
from providers.local_channel import MAX_MESSAGE, LocalChannel
from providers.operations.events import EventChannel
from tests.support.channels import CHANNEL_KINDS, channel_maker, fresh_group

Make = Callable[[], EventChannel]


@pytest.fixture(params=CHANNEL_KINDS)
def channels(request: pytest.FixtureRequest) -> Iterator[Make]:
    with channel_maker(request.param, request) as make:
        yield make


def listening(channel: EventChannel) -> tuple[queue.Queue[bytes], list[int]]:
    """Start `channel` listening; what it receives, and a list that grows per gap."""
    got: queue.Queue[bytes] = queue.Queue()
    gaps: list[int] = []
    channel.listen(got.put, lambda: gaps.append(1))
    assert channel.wait_subscribed(10)
    return got, gaps


def test_a_message_reaches_a_listener_of_another_process(channels: Make) -> None:
    publisher, receiver = channels(), channels()
    got, gaps = listening(receiver)
    assert publisher.publish(b"hello") == 1  # the publisher does not listen
    assert got.get(timeout=2) == b"hello"
    assert gaps == []


def test_messages_reach_every_listener_in_publish_order(channels: Make) -> None:
    publisher = channels()
    received = [listening(channels())[0] for _ in range(2)]
    for n in range(100):  # far more than a local socket's queue holds at once
        assert publisher.publish(b"%d" % n) == 2
    for got in received:
        assert [got.get(timeout=2) for _ in range(100)] == [b"%d" % n for n in range(100)]


def test_nobody_listening_reaches_nobody_and_does_not_fail(channels: Make) -> None:
    channels()  # a process that never listens
    assert channels().publish(b"lost") == 0


def test_not_subscribed_before_listening(channels: Make) -> None:
    channel = channels()
    assert not channel.wait_subscribed(0.1)
    listening(channel)
    with pytest.raises(RuntimeError):
        channel.listen(lambda _m: None, lambda: None)


def test_a_failing_listener_does_not_stop_the_listening(channels: Make) -> None:
    publisher, receiver = channels(), channels()
    got: queue.Queue[bytes] = queue.Queue()

    def on_message(message: bytes) -> None:
        if message == b"bad":
            raise RuntimeError("listener bug")
        got.put(message)

    receiver.listen(on_message, lambda: None)
    assert receiver.wait_subscribed(10)
    publisher.publish(b"bad")
    publisher.publish(b"good")
    assert got.get(timeout=2) == b"good"


def test_close_stops_delivery(channels: Make) -> None:
    publisher, receiver = channels(), channels()
    got, _gaps = listening(receiver)
    receiver.close()
    publisher.publish(b"after")
    time.sleep(0.3)
    assert got.empty()


# The local channel on its own: worker slots, restarts, and what it drops.


@pytest.fixture
def group() -> str:
    return fresh_group()


@pytest.fixture
def workers(group: str) -> Iterator[Callable[[int], LocalChannel]]:
    """Makes the local channel of worker `index` of a fresh group of 3; closes them."""
    made: list[LocalChannel] = []

    def make(index: int) -> LocalChannel:
        made.append(LocalChannel(group, index, 3, "events"))
        return made[-1]

    yield make
    for channel in made:
        channel.close()


def test_a_worker_does_not_hear_itself_and_counts_those_reached(
    workers: Callable[[int], LocalChannel],
) -> None:
    first, second = workers(0), workers(1)
    got_first, _ = listening(first)
    got_second, _ = listening(second)
    assert first.publish(b"one") == 1  # worker 2 is not bound: skipped
    assert got_second.get(timeout=2) == b"one"
    listening(workers(2))
    assert first.publish(b"two") == 2
    assert got_second.get(timeout=2) == b"two"
    time.sleep(0.2)
    assert got_first.empty()


def test_another_group_or_channel_name_hears_nothing(group: str) -> None:
    ours = LocalChannel(group, 0, 2, "events")
    theirs = LocalChannel(fresh_group(), 1, 2, "events")
    other_name = LocalChannel(group, 1, 2, "other")
    try:
        got_theirs, _ = listening(theirs)
        got_other, _ = listening(other_name)
        assert ours.publish(b"ours") == 0
        time.sleep(0.2)
        assert got_theirs.empty() and got_other.empty()
    finally:
        for channel in (ours, theirs, other_name):
            channel.close()


def test_a_restarted_worker_binds_its_name_again_and_hears_the_next_message(
    workers: Callable[[int], LocalChannel],
) -> None:
    publisher, old = workers(0), workers(1)
    listening(old)
    assert publisher.publish(b"to the old one") == 1
    successor = workers(1)  # started while the old one still holds the name
    got: queue.Queue[bytes] = queue.Queue()
    successor.listen(got.put, lambda: None)
    assert not successor.wait_subscribed(0.3)
    old.close()
    assert successor.wait_subscribed(5)
    assert publisher.publish(b"to the new one") == 1
    assert got.get(timeout=2) == b"to the new one"


def test_a_message_over_60_kib_is_dropped_with_a_warning(
    workers: Callable[[int], LocalChannel], caplog: pytest.LogCaptureFixture
) -> None:
    publisher = workers(0)
    got, _ = listening(workers(1))
    with caplog.at_level(logging.WARNING, logger=local_channel.__name__):
        assert publisher.publish(b"x" * (MAX_MESSAGE + 1)) == 0
    assert "dropping" in caplog.text
    assert publisher.publish(b"y" * MAX_MESSAGE) == 1
    assert got.get(timeout=2) == b"y" * MAX_MESSAGE


def test_a_worker_that_falls_behind_loses_messages_and_hears_of_the_gap(
    workers: Callable[[int], LocalChannel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its queue full for SEND_TIMEOUT: the message is dropped, later ones are not
    waited for, and once it takes messages again a gap comes before the next one."""
    monkeypatch.setattr(local_channel, "SEND_TIMEOUT", 0.2)
    publisher, receiver = workers(0), workers(1)
    stuck = threading.Event()
    got: list[bytes] = []

    def slow(message: bytes) -> None:
        got.append(message)
        stuck.wait(10)

    receiver.listen(slow, lambda: got.append(b"GAP"))
    assert receiver.wait_subscribed(5)
    sent = 0
    while publisher.publish(b"%d" % sent) == 1:
        sent += 1
        assert sent < 1000, "the receiver's queue never filled"
    started = time.monotonic()
    assert publisher.publish(b"dropped too") == 0
    assert time.monotonic() - started < 0.1  # a stuck worker holds nobody up twice
    stuck.set()
    deadline = time.monotonic() + 5
    while len(got) < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [b"%d" % n for n in range(sent)]
    assert publisher.publish(b"again") == 1
    deadline = time.monotonic() + 5
    while len(got) < sent + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got[sent:] == [b"GAP", b"again"]


def test_a_slot_outside_the_group_is_refused(group: str) -> None:
    with pytest.raises(ValueError):
        LocalChannel(group, 2, 2, "events")
