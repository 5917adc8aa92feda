"""The operations layer: the one place that changes files and folders, for every door.

A door (WebDAV, share links, the API, the CLI) names what it wants by path in its
actor's `View`, and calls `Operations`: rights, locks, quota and names are checked
there, the change is one catalog transaction with its change-log entry, and an
`Event` follows. Start with `core.Operations`, `views` and `access`.
"""

from providers.operations.access import SHARED, SHARED_KEY, Access, Place, SharedSpace
from providers.operations.actor import Actor, link_principal
from providers.operations.core import Operations
from providers.operations.events import Event, EventPublisher, InProcessEvents
from providers.operations.feed import Feed, FeedEntry, Page
from providers.operations.locks import LockView, lock_url
from providers.operations.mutations import Placed
from providers.operations.views import Located, View, path_of
from providers.operations.writes import PendingWrite

__all__ = [
    "SHARED",
    "SHARED_KEY",
    "Access",
    "Actor",
    "Event",
    "EventPublisher",
    "Feed",
    "FeedEntry",
    "InProcessEvents",
    "Located",
    "LockView",
    "Operations",
    "Page",
    "PendingWrite",
    "Place",
    "Placed",
    "SharedSpace",
    "View",
    "link_principal",
    "lock_url",
    "path_of",
]
