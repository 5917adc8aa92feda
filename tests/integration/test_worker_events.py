"""Events between the workers of one server without Redis: two embedded servers on one
store, built as workers 0 and 1 of one group (`build_services(worker=...)`), play two
worker processes. A PUT on one reaches the other's listeners as an event over the
local channel (not only through the log watcher's tick), and wakes a long poll there."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers.local_channel import WorkerSlot
from providers.operations import Event
from providers.operations.events import ChannelEvents
from tests.integration.test_push import WAKE, cursor_now, in_thread, long_poll, until
from tests.support.dav import put
from tests.support.servers import RunningServer, embedded_settings, start_server


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    settings = embedded_settings(tmp_path / "davdata")
    group = uuid.uuid4().hex[:16]
    first = start_server(settings, worker=WorkerSlot(group, 0, 2))
    try:
        second = start_server(settings, worker=WorkerSlot(group, 1, 2))
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_a_put_on_one_worker_is_an_event_on_the_other_and_wakes_its_long_poll(
    workers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = workers
    assert isinstance(b.services.ops.events, ChannelEvents)
    heard: queue.Queue[Event] = queue.Queue()
    b.services.ops.events.subscribe(heard.put)
    cursor = cursor_now(b)
    thread, result = in_thread(lambda: long_poll(b, cursor, 30))
    until(lambda: b.services.push.waiting == 1)
    assert put(a.client(), a.url("from-a.txt"), b"written on A").status_code == 201
    committed = time.monotonic()
    event = heard.get(timeout=2)
    assert (event.kind, event.path, event.actor) == ("put", "/from-a.txt", "admin")
    thread.join(timeout=10)
    ((body, polled),) = result
    assert body == {"changes": True} and polled - committed < WAKE
