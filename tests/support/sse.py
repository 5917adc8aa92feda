"""A Server-Sent Events client for the tests: `EventReader` opens `/api/v1/events` and
reads it on a thread, queuing each event (`Received`: id, data as JSON, arrival time)
and counting comments (`: ping`), as a browser's EventSource would parse them."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class Received:
    id: str
    data: Any
    at: float  # time.monotonic() when its last line arrived


class EventReader:
    """See the module docstring. `ended` is set when the server ends the stream (or
    the connection breaks: `error` says which)."""

    def __init__(
        self,
        session: requests.Session,
        url: str,
        *,
        last_event_id: str | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
    ) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.response = session.get(url, headers=headers, stream=True, timeout=timeout)
        self.events: queue.Queue[Received] = queue.Queue()
        self.comments: list[str] = []
        self.fields: list[str] = []  # other field lines (retry:)
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._closed = False
        connection = getattr(self.response.raw, "connection", None)
        self._socket: socket.socket | None = getattr(connection, "sock", None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.response.status_code == 200:
            self._thread.start()

    def next(self, timeout: float = 5.0) -> Received:
        return self.events.get(timeout=timeout)

    def take(self, count: int, timeout: float = 5.0) -> list[Received]:
        return [self.next(timeout) for _ in range(count)]

    def quiet(self, seconds: float) -> bool:
        """True if no event arrives within `seconds`."""
        time.sleep(seconds)
        return self.events.empty()

    def close(self) -> None:
        """Leave, as a client that closes its connection: the server notices at its
        next write. The socket is shut down first: closing the response alone would
        wait for the reader thread's read to end (the next heartbeat)."""
        self._closed = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self.response.close()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _read(self) -> None:
        pending = b""
        event: dict[str, str] = {}
        try:
            for chunk in self.response.iter_content(chunk_size=65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._line(line.decode("utf-8"), event)
        except Exception as e:  # closing the response from another thread ends here too
            if not self._closed:
                self.error = e
        finally:
            self.ended.set()

    def _line(self, line: str, event: dict[str, str]) -> None:
        if not line:  # a blank line dispatches the event
            if "id" in event or "data" in event:
                data = json.loads(event["data"]) if "data" in event else None
                self.events.put(Received(event.get("id", ""), data, time.monotonic()))
            event.clear()
        elif line.startswith(":"):
            self.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name in ("id", "data"):
                event[name] = value
            else:
                self.fields.append(line)
