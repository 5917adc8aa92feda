"""Events: what the operations layer announces after each mutation has committed.

The change log in SQL is the record (every mutation appends to it in its own
transaction, design invariant 5); an event only tells listeners, now, that something
changed, so they can act without polling (drop a cache, wake a waiting client). An
event is published after the transaction commits, never for one that failed, and a
listener that fails never fails the operation or the other listeners.

`EventPublisher` is the seam: `InProcessEvents` delivers to listeners in this process;
the change-feed work adds one that also publishes through Redis to other instances.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

# Kinds of events, one per kind of change-log entry, plus `sharing` (a grant, revoke or
# group membership change: who sees what changed).
MKDIR, PUT, DELETE, MOVE, COPY, PROP, SHARING = (
    "mkdir",
    "put",
    "delete",
    "move",
    "copy",
    "prop",
    "sharing",
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
    function that removes the listener (idempotent).
    """

    def publish(self, event: Event) -> None: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...


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
