"""Push: clients that wait for changes instead of polling the feed (long poll and
Server-Sent Events at `/api/v1/`), woken across instances by events
(`providers.operations.events`). `hub.Push` holds the waiters; `source.FeedSource` is
what they read (the change feed, `providers.operations.Feed`)."""

from providers.push.hub import Follow, Push
from providers.push.source import FeedSource

__all__ = ["FeedSource", "Follow", "Push"]
