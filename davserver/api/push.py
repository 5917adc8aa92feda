"""Waiting for changes in the JSON API (see docs/api.md), over `providers.push`:

GET /api/v1/changes/wait?cursor=C&timeout=S&path=P  {"changes": bool}: long poll, S <= 120
GET /api/v1/events?cursor=C&path=P                  text/event-stream; Last-Event-ID wins

Both hold a server thread while they wait (cheroot serves one request per thread);
`Push` bounds how many may (503 with Retry-After past it), and the server runs that
many threads on top of its normal pool, so other requests are not starved.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qs

from davserver.api.app import ApiRequest, Reply, Route, route
from davserver.http.errors import HttpError
from providers.errors import StorageError, TooBusy
from providers.operations import Actor
from providers.operations.feed import FeedEntry
from providers.push import Follow, Push

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 120.0
HEARTBEAT = 15.0  # seconds between `: ping` comments: proxies close idle streams
RETRY_AFTER = "5"  # seconds a refused waiter is told to wait
RECONNECT_MS = 2000  # what an event stream tells EventSource to wait before reconnecting
_TIMEOUT = re.compile(r"\d{1,3}(\.\d{1,3})?")
STREAM_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),  # nginx: pass each event on at once
)


def wait(request: ApiRequest) -> Reply:
    """`GET /changes/wait`: `{"changes": true}` as soon as the caller's feed has
    anything after `cursor` (required), else `{"changes": false}` after `timeout`
    seconds (default 60, at most 120). `path`: the one the cursor was made for."""
    push = _push(request)
    query = _query(request)
    cursor = query.get("cursor")
    if not cursor:
        raise HttpError(400, "cursor is required")
    timeout = _timeout(query.get("timeout"))
    try:
        changed = push.wait(Actor(request.user), cursor, timeout, query.get("path") or "/")
    except TooBusy as e:
        raise HttpError(503, str(e), [("Retry-After", RETRY_AFTER)]) from e
    return Reply(200, {"changes": changed})


def events(request: ApiRequest) -> Reply:
    """`GET /events`: the caller's feed after the cursor (`Last-Event-ID`, else
    `cursor`, else the bootstrap listing first) as Server-Sent Events, then each change as
    it commits: `id:` the cursor after the entry, `data:` the entry; `: ping` every
    15 s. It ends at shutdown; EventSource then reconnects with `Last-Event-ID`."""
    push = _push(request)
    query = _query(request)
    cursor = request.environ.get("HTTP_LAST_EVENT_ID") or query.get("cursor")
    try:
        follow = push.follow(Actor(request.user), cursor or None, query.get("path") or "/")
    except TooBusy as e:
        raise HttpError(503, str(e), [("Retry-After", RETRY_AFTER)]) from e
    return Reply(200, headers=STREAM_HEADERS, stream=EventStream(follow, HEARTBEAT))


class EventStream:
    """The body of an event stream (see `events`); `close` frees its place in push,
    whether or not the server iterated it."""

    def __init__(self, follow: Follow, heartbeat: float) -> None:
        self._follow = follow
        self._heartbeat = heartbeat

    def __iter__(self) -> Iterator[bytes]:
        # The first bytes go out at once: cheroot sends the headers with them, so the
        # client sees the stream open (EventSource's `open`) before any change.
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        while True:
            try:
                batch = self._follow.next(self._heartbeat)
            except StorageError as e:  # the client reconnects with Last-Event-ID
                log.warning("event stream ended: %s", e)
                return
            if batch is None:
                return
            yield b"".join(event_bytes(entry) for entry in batch) if batch else b": ping\n\n"

    def close(self) -> None:
        self._follow.close()


def event_bytes(entry: FeedEntry) -> bytes:
    """One event: `id:` the cursor after `entry`, `data:` the entry's JSON (one line:
    JSON escapes line breaks in strings)."""
    data = json.dumps(entry.to_json(), ensure_ascii=False)
    return f"id: {entry.cursor}\ndata: {data}\n\n".encode()


def _push(request: ApiRequest) -> Push:
    push = request.context.push
    if push is None:
        raise HttpError(404, "no such endpoint")
    return push


def _query(request: ApiRequest) -> dict[str, str]:
    """The query's parameters; 400 for one given twice (others are ignored, such as a
    client's cache-busting `_`)."""
    query = str(request.environ.get("QUERY_STRING", ""))
    try:
        fields = parse_qs(query, keep_blank_values=True, max_num_fields=20)
    except ValueError as e:
        raise HttpError(400, "too many query parameters") from e
    twice = sorted(name for name, values in fields.items() if len(values) > 1)
    if twice:
        raise HttpError(400, f"{twice[0]!r} is given twice")
    return {name: values[0] for name, values in fields.items()}


def _timeout(text: str | None) -> float:
    """Seconds to wait: `DEFAULT_TIMEOUT` when absent; 400 unless 0..`MAX_TIMEOUT`."""
    if text is None:
        return DEFAULT_TIMEOUT
    if not _TIMEOUT.fullmatch(text) or float(text) > MAX_TIMEOUT:
        raise HttpError(400, f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT:g}")
    return float(text)


ROUTES: tuple[Route, ...] = (
    route("GET", "/changes/wait", wait),
    route("GET", "/events", events),
)
