"""Events: what the operations layer announces after each mutation has committed.

The change log in SQL is the record (every mutation appends to it in its own
transaction, design invariant 5); an event only tells listeners, now, that something
changed, so they can act without polling (drop a cache, wake a waiting client). An
event is published after the transaction commits, never for one that failed, and a
listener that fails never fails the operation or the other listeners.

`EventPublisher` is the seam: `InProcessEvents` delivers to listeners in this process;
`ChannelEvents` also sends each event over an `EventChannel` to the other processes on
it, whose listeners get it as if it had happened there. Two channels: Redis pub/sub
(`providers.redis_store.Channel`) reaches every instance on the same Redis database,
on any machine; without Redis, the worker processes of one server on one machine
(`workers = N`) relay events over local datagram sockets
(`providers.local_channel.LocalChannel`). Across machines Redis is needed. A channel
only wakes, the log is the record (design invariant 5): either channel loses what is
sent while a receiver is not listening, or cannot keep up, so after such a gap
`ChannelEvents` delivers a `resync` event ("you may have missed events"), and a
listener that must not miss a change re-reads the change log, then and on a tick of
its own (`providers.push`).
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from providers.errors import StorageError

log = logging.getLogger(__name__)

# Kinds of events, one per kind of change-log entry, plus `sharing` (a grant, revoke or
# group membership change: who sees what changed) and `resync` (no change: events may
# have been lost, see the module docstring).
MKDIR, PUT, DELETE, MOVE, COPY, PROP, SHARING, RESYNC = (
    "mkdir",
    "put",
    "delete",
    "move",
    "copy",
    "prop",
    "sharing",
    "resync",
)


@dataclass(frozen=True)
class Event:
    """One committed change: `kind`, the node's owner and id, its path in the owner's
    home (the destination for moves and copies), who did it (`Actor.name`) and when."""

    kind: str
    owner_id: int
    node_id: int
    path: str
    actor: str
    at: float = field(default_factory=time.time)


Listener = Callable[[Event], None]


class EventPublisher(Protocol):
    """Delivers events to listeners (see the module docstring).

    Contract: `publish` returns once every listener registered in this process has
    been called with the event, in registration order and in publish order per
    thread; an exception in a listener is logged and swallowed. `subscribe` returns a
    function that removes the listener (idempotent). `close` releases what the
    publisher holds (threads, connections); nothing is delivered after it.
    """

    def publish(self, event: Event) -> None: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...

    def close(self) -> None: ...


class InProcessEvents:
    """Listeners in this process only (see `EventPublisher`)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed on %s", listener, event.kind)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def close(self) -> None:
        with self._lock:
            self._listeners.clear()


class EventChannel(Protocol):
    """A pub/sub channel among processes, a hint and never a record: what
    `ChannelEvents` needs of `providers.redis_store.Channel` and
    `providers.local_channel.LocalChannel` (their docstrings give the details).

    `publish` sends bytes to the processes listening on the channel (whether the
    publisher's own gets them too depends on the channel) and returns how many were
    reached, raising `StorageError` when the channel cannot be used; `listen` starts a
    thread calling `on_message` per message received and `on_gap` when messages to
    this process may have been lost; `wait_subscribed` is True once others' messages
    reach this process; `close` stops all of it. `name` is for logs."""

    name: str

    def publish(self, message: bytes) -> int: ...

    def listen(self, on_message: Callable[[bytes], None], on_gap: Callable[[], None]) -> None: ...

    def wait_subscribed(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class ChannelEvents:
    """Events for every process on one `EventChannel` (see the module docstring).

    `publish` delivers to this process's listeners at once, as `InProcessEvents` does,
    then queues the event for a sender thread that publishes it on the channel: a
    request never waits for the channel, and a channel that fails never fails an
    operation that has committed (the event is dropped with a warning; the log still
    has the change). A receiving thread, started by the first `subscribe` (a
    command-line run only publishes), delivers other processes' events to this
    process's listeners; this process's own, when the channel echoes them (Redis
    does), are skipped by their origin. A gap on the channel becomes a `resync` event.
    """

    OUTBOX = 10_000  # events waiting for the sender; past it they are dropped

    def __init__(self, channel: EventChannel) -> None:
        self._local = InProcessEvents()
        self._channel = channel
        self._origin = secrets.token_hex(8)
        self._outbox: queue.Queue[bytes | None] = queue.Queue(self.OUTBOX)
        self._lock = threading.Lock()
        self._sender: threading.Thread | None = None
        self._listening = False

    @property
    def channel(self) -> EventChannel:
        """The channel the events travel on."""
        return self._channel

    def publish(self, event: Event) -> None:
        self._local.publish(event)
        self._start_sender()
        try:
            self._outbox.put_nowait(json.dumps({**asdict(event), "origin": self._origin}).encode())
        except queue.Full:
            log.warning(
                "events: %d waiting for %s, dropping %s",
                self.OUTBOX,
                self._channel.name,
                event.kind,
            )

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            if not self._listening:
                self._channel.listen(self._received, self._resync)
                self._listening = True
        return self._local.subscribe(listener)

    def wait_listening(self, timeout: float) -> bool:
        """True once other processes' events reach this process (subscribed)."""
        return self._channel.wait_subscribed(timeout)

    def close(self) -> None:
        """Send what is queued (for up to 2 s: a command-line run's last events), then
        stop both threads."""
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            self._outbox.put(None)
            sender.join(timeout=2)
        self._channel.close()
        self._local.close()

    def _start_sender(self) -> None:
        with self._lock:
            if self._sender is None:
                self._sender = threading.Thread(target=self._send, name="events-send", daemon=True)
                self._sender.start()

    def _send(self) -> None:
        while (message := self._outbox.get()) is not None:
            try:
                self._channel.publish(message)
            except StorageError as e:  # Unavailable: the log keeps the change
                log.warning("events: not sent to other processes: %s", e)

    def _received(self, message: bytes) -> None:
        event = _decode(message)
        if event is None:
            log.warning("events: ignoring a malformed message on %s", self._channel.name)
        elif event[0] != self._origin:
            self._local.publish(event[1])

    def _resync(self) -> None:
        self._local.publish(Event(RESYNC, 0, 0, "", ""))


def _decode(message: bytes) -> tuple[str, Event] | None:
    """(origin, event) of a message `ChannelEvents` sent, or None for anything else."""
    try:
        fields: dict[str, Any] = json.loads(message)
        origin = fields.pop("origin")
        event = Event(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(origin, str):
        return None
    return origin, event
