"""Which events a process builds (`davserver.app.build_events`): Redis when configured,
whatever the workers; without Redis, local sockets between several workers of one
server, else this process only."""

from __future__ import annotations

import pytest

from davserver.app import build_events
from davserver.settings import Settings
from providers.local_channel import WorkerSlot
from providers.operations import InProcessEvents
from providers.operations.events import ChannelEvents

NO_REDIS = Settings()
REDIS = Settings(redis_url="redis://127.0.0.1:1/0")  # never reached: built, not used


@pytest.mark.parametrize(
    ("settings", "worker", "channel"),
    [
        (NO_REDIS, None, None),
        (NO_REDIS, WorkerSlot("g", 0, 1), None),
        (NO_REDIS, WorkerSlot("g", 1, 2), "local:g:events"),
        (REDIS, None, "davserver:0:events"),
        (REDIS, WorkerSlot("g", 1, 2), "davserver:0:events"),
    ],
)
def test_the_events_fit_the_settings_and_the_worker(
    settings: Settings, worker: WorkerSlot | None, channel: str | None
) -> None:
    events = build_events(settings, worker)
    try:
        if channel is None:
            assert isinstance(events, InProcessEvents)
        else:
            assert isinstance(events, ChannelEvents)
            assert events.channel.name == channel
    finally:
        events.close()
