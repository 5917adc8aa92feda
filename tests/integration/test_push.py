"""Push at /api/v1/: the long poll (`changes/wait`) and the event stream (`events`),
through real servers: on one instance on both stacks, and across two instances of the
full stack, where a PUT on A wakes B through Redis within a second. A stream resumed
with Last-Event-ID misses nothing and repeats nothing; waits are bounded (503 with
Retry-After) without starving other requests; shutdown ends streams cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from davserver.api import push as push_api
from tests.support.api import answer, api, error
from tests.support.dav import put
from tests.support.servers import RunningServer
from tests.support.sse import EventReader

WAKE = 1.0  # seconds: how soon a commit must reach a waiter, on any instance


def cursor_now(server: RunningServer, user: str = "admin") -> str:
    """The caller's feed position now (`GET /api/v1/changes/latest`)."""
    response = server.client(user).get(api(server, "changes/latest"), timeout=30)
    return str(answer(response, 200)["cursor"])


def wait_url(server: RunningServer, cursor: str, timeout: float) -> str:
    return api(server, f"changes/wait?cursor={cursor}&timeout={timeout:g}")


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    return thread, result


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def waiting(server: RunningServer) -> float:
    """Clients waiting on `server` by its `/metrics` (the sum over its workers), so the
    same check holds for an instance and for a worker of another process."""
    for line in requests.get(server.base + "/metrics", timeout=30).text.splitlines():
        if line.startswith("davserver_push_waiters "):
            return float(line.split()[1])
    raise AssertionError("no davserver_push_waiters in /metrics")


def long_poll(server: RunningServer, cursor: str, timeout: float) -> tuple[Any, float]:
    """The answer of a long poll and the time.monotonic() it arrived at."""
    response = server.client().get(wait_url(server, cursor, timeout), timeout=timeout + 10)
    return answer(response, 200), time.monotonic()


def test_a_wait_answers_at_once_when_something_is_after_the_cursor(
    server: RunningServer,
) -> None:
    cursor = cursor_now(server)
    put(server.client(), server.url("a.txt"), b"a")
    started = time.monotonic()
    body, done = long_poll(server, cursor, 30)
    assert body == {"changes": True} and done - started < WAKE


def test_a_put_wakes_a_long_poll(server: RunningServer) -> None:
    cursor = cursor_now(server)
    thread, result = in_thread(lambda: long_poll(server, cursor, 30))
    until(lambda: server.services.push.waiting == 1)
    gauges = requests.get(server.base + "/metrics", timeout=30).text.splitlines()
    assert "davserver_push_waiters 1.0" in gauges
    assert f"davserver_push_waiters_max {server.services.push.capacity:.1f}" in gauges
    put(server.client(), server.url("a.txt"), b"a")
    committed = time.monotonic()
    thread.join(timeout=10)
    ((body, done),) = result
    assert body == {"changes": True} and done - committed < WAKE


def test_a_wait_with_nothing_new_times_out_false(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    cursor = cursor_now(server)
    put(server.client("bob"), server.url("b.txt"), b"someone else's")
    started = time.monotonic()
    body, done = long_poll(server, cursor, 1.5)
    assert body == {"changes": False} and 1.5 <= done - started < 3.0


def test_bad_parameters_are_400(server: RunningServer) -> None:
    client = server.client()
    cursor = cursor_now(server)
    cases = {
        "changes/wait": "cursor is required",
        "changes/wait?timeout=5": "cursor is required",
        f"changes/wait?cursor={cursor}&timeout=121": "timeout must be",
        f"changes/wait?cursor={cursor}&timeout=-1": "timeout must be",
        f"changes/wait?cursor={cursor}&timeout=soon": "timeout must be",
        f"changes/wait?cursor={cursor}&cursor={cursor}": "'cursor' is given twice",
        "changes/wait?cursor=not-a-cursor": "not a cursor",
        "changes/wait?cursor=v1.MTo6&timeout=1": "not a cursor",  # never handed out
        f"changes/wait?cursor={cursor}&path=/elsewhere": "made for path",
        "events?cursor=not-a-cursor": "not a cursor",
    }
    for path, reason in cases.items():
        assert reason in error(client.get(api(server, path), timeout=30), 400), path
    header = client.get(api(server, "events"), headers={"Last-Event-ID": "x"}, timeout=30)
    assert "not a cursor" in error(header, 400)
    assert error(requests.get(api(server, "events"), timeout=30), 401)
    assert error(client.post(api(server, "changes/wait"), timeout=30), 405)
    assert server.services.push.waiting == 0  # the refused ones left no waiter behind


def test_an_event_stream_replays_then_follows(server: RunningServer) -> None:
    client = server.client()
    cursor = cursor_now(server)
    put(client, server.url("a.txt"), b"a")
    put(client, server.url("b.txt"), b"b")
    stream = EventReader(client, api(server, f"events?cursor={cursor}"))
    try:
        headers = stream.response.headers
        assert stream.response.status_code == 200
        assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in headers
        first, second = stream.take(2)
        assert [first.data["path"], second.data["path"]] == ["/a.txt", "/b.txt"]
        assert len({cursor, first.id, second.id}) == 3
        assert (first.data["op"], first.data["kind"], first.data["size"]) == ("created", "file", 1)
        put(client, server.url("c.txt"), b"c")
        committed = time.monotonic()
        third = stream.next()
        assert third.data["path"] == "/c.txt" and third.at - committed < WAKE
        assert stream.fields == [f"retry: {push_api.RECONNECT_MS}"]
    finally:
        stream.close()


def test_a_stream_sends_heartbeats(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push_api, "HEARTBEAT", 0.3)
    stream = EventReader(server.client(), api(server, f"events?cursor={cursor_now(server)}"))
    try:
        until(lambda: len(stream.comments) >= 2, timeout=5)
        assert set(stream.comments) == {"ping"} and stream.events.empty()
    finally:
        stream.close()


def test_another_users_changes_stay_out_of_the_stream(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    stream = EventReader(server.client(), api(server, f"events?cursor={cursor_now(server)}"))
    try:
        put(server.client("bob"), server.url("bob.txt"), b"bob's")
        put(server.client(), server.url("mine.txt"), b"mine")
        assert stream.next().data["path"] == "/mine.txt"
        assert stream.quiet(0.3)
    finally:
        stream.close()


def test_waits_past_the_bound_get_503_and_others_are_still_served(make_server: Any) -> None:
    server = make_server("embedded", push_waiters=2)
    cursor = cursor_now(server)
    polls = [in_thread(lambda: long_poll(server, cursor, 30))[0] for _ in range(2)]
    until(lambda: server.services.push.waiting == 2)
    refused = server.client().get(wait_url(server, cursor, 5), timeout=30)
    assert "wait for changes here already" in error(refused, 503)
    assert refused.headers["Retry-After"] == push_api.RETRY_AFTER
    streamed = server.client().get(api(server, "events"), stream=True, timeout=30)
    assert error(streamed, 503)
    started = time.monotonic()
    assert answer(server.client().get(api(server, "me"), timeout=30), 200)["user"] == "admin"
    assert time.monotonic() - started < 0.5
    put(server.client(), server.url("wake.txt"), b"everyone")
    for thread in polls:
        thread.join(timeout=10)
    until(lambda: server.services.push.waiting == 0)


def test_shutdown_ends_streams_and_polls_cleanly(make_server: Any) -> None:
    server = make_server("embedded")
    cursor = cursor_now(server)
    stream = EventReader(server.client(), api(server, f"events?cursor={cursor}"))
    _, polled = in_thread(lambda: long_poll(server, cursor, 60))
    until(lambda: server.services.push.waiting == 2)
    started = time.monotonic()
    server.background.stop()
    assert time.monotonic() - started < 3.0  # not cheroot's 5 s of waiting for them
    assert stream.ended.wait(2) and stream.error is None  # the stream's proper end
    until(lambda: bool(polled))
    assert polled[0][0] == {"changes": False}


@pytest.mark.slow
def test_a_put_on_a_wakes_a_long_poll_and_a_stream_on_b(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    cursor = cursor_now(b)
    stream = EventReader(b.client(), api(b, f"events?cursor={cursor}"))
    try:
        thread, result = in_thread(lambda: long_poll(b, cursor, 30))
        until(lambda: waiting(b) == 2)
        response = put(a.client(), a.url("from-a.txt"), b"written on A")
        assert response.status_code == 201
        committed = time.monotonic()
        thread.join(timeout=10)
        ((body, polled),) = result
        event = stream.next()
        assert body == {"changes": True} and polled - committed < WAKE
        assert event.data["path"] == "/from-a.txt" and event.at - committed < WAKE
    finally:
        stream.close()


@pytest.mark.slow
def test_a_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    writer = a.client()
    start = cursor_now(b)
    first = EventReader(b.client(), api(b, f"events?cursor={start}"))
    try:
        for n in range(3):
            put(writer, a.url(f"f{n}.txt"), b"x")
        seen = first.take(2)
    finally:
        first.close()
    for n in range(3, 6):
        put(writer, a.url(f"f{n}.txt"), b"x")
    # as EventSource does: the same URL (its old cursor) and the last id it saw, which wins
    resumed = EventReader(b.client(), api(b, f"events?cursor={start}"), last_event_id=seen[-1].id)
    try:
        rest = resumed.take(4)
        put(writer, a.url("f6.txt"), b"x")
        rest += resumed.take(1)
        assert resumed.quiet(0.5)
    finally:
        resumed.close()
    paths = [e.data["path"] for e in seen + rest]
    assert paths == [f"/f{n}.txt" for n in range(7)]
    ids = [e.id for e in seen + rest]
    assert len(set(ids)) == len(ids)
