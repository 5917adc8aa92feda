"""Event channels of both kinds for the contract suites: Redis pub/sub and the local
datagram sockets between the workers of one server.

`channel_maker(kind, request)` gives a function that makes channels of `kind` ("redis"
or "local"; `request` gives the Redis service when needed), all on one fresh channel name
(one deployment); each call makes the next process of it: another Redis client, or the
next worker slot of one fresh local group. They are closed afterwards.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from providers.local_channel import LocalChannel
from providers.operations.events import EventChannel
from providers.redis_store import Channel

CHANNEL_KINDS = ["redis", "local"]
WORKERS = 4  # slots in a test's local group: more than any test uses


def fresh_group() -> str:
    """A local group id no other test (or server on this machine) uses."""
    return uuid.uuid4().hex[:16]


@contextmanager
def channel_maker(
    kind: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[], EventChannel]]:
    """See the module docstring."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    made: list[EventChannel] = []
    if kind == "redis":
        url = request.getfixturevalue("redis_service").url

        def make() -> EventChannel:
            made.append(Channel(url, name))
            return made[-1]

    else:
        group, slots = fresh_group(), itertools.count()

        def make() -> EventChannel:
            made.append(LocalChannel(group, next(slots), WORKERS, name))
            return made[-1]

    try:
        yield make
    finally:
        for channel in made:
            channel.close()
