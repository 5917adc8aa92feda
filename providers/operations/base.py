"""What every operation shares: the services it works with, views, and the checks.

Each mutation, whatever door asked for it, runs the same checks in the same order
before it touches the catalog: rights (`require`), names (`new_name`), locks
(`check_lock`); quota is checked by the catalog in the mutation's own transaction
(design invariant 10). After the transaction commits it publishes one `Event`.
"""

from __future__ import annotations

from providers.catalog import Catalog, NodeRecord
from providers.errors import Conflict, Forbidden, NotFound
from providers.filestore import FileStore
from providers.names import check_name, name_key, split_path
from providers.operations.access import SHARED_KEY, Place, SharedSpace
from providers.operations.actor import Actor
from providers.operations.events import Event, EventPublisher
from providers.operations.feed import Feed
from providers.operations.locks import Depth, LockView
from providers.operations.snapshots import Snapshots
from providers.operations.views import HomeView, LinkView, Located, View

SHARED_READ_ONLY = "Shared/ only lists what others shared with you"


class OperationsBase:
    """The services and checks of the operations layer (see the module docstring).

    `catalog` and `files` are the engine; `locks` the lock view; `events` where
    events go; `shares` the cache of what each user received (`SharedSpace`), which
    the operations that change sharing invalidate. `feed` reads the change log for
    sync clients (`providers.operations.feed`); `snapshots` rebuilds homes as they
    were (`providers.operations.snapshots`)."""

    def __init__(
        self,
        catalog: Catalog,
        files: FileStore,
        locks: LockView,
        events: EventPublisher,
        shares: SharedSpace,
    ) -> None:
        self.catalog = catalog
        self.files = files
        self.locks = locks
        self.events = events
        self.shares = shares
        self.feed = Feed(catalog)
        self.snapshots = Snapshots(catalog)

    def view(self, actor: Actor) -> View:
        """How `actor` names things: its home and `Shared/`, or its link's folder."""
        if actor.link is not None:
            return LinkView(self.catalog.tree, actor.link)
        return HomeView(self.catalog.tree, self.shares, actor.user)

    @staticmethod
    def require(place: Place, *, removing: bool = False, adding: bool = False) -> None:
        """`Forbidden` unless the actor may write at `place` (with `removing`: delete,
        move or rename the node itself; with `adding`: only add new members to it)."""
        if place.virtual:
            raise Forbidden(SHARED_READ_ONLY)
        if adding and place.can_add:
            return
        if not place.can_write:
            if place.can_add:
                raise Forbidden("this link only takes new files")
            raise Forbidden("it is shared with you read-only")
        if removing and not place.can_remove:
            raise Forbidden("only its owner can remove or rename it")

    @staticmethod
    def folder(located: Located) -> NodeRecord:
        """The folder node of `located`; `Forbidden` for the virtual `Shared/`,
        `Conflict` for a file."""
        if located.node is None:
            raise Forbidden(SHARED_READ_ONLY)
        if not located.node.is_dir:
            raise Conflict("not a folder")
        return located.node

    @staticmethod
    def new_name(parent: NodeRecord, name: str) -> str:
        """`name` if it may name a new member of `parent`: the naming rules
        (`providers.names`, `InvalidName`) and the reserved `Shared` at a home's root
        (`Forbidden`)."""
        check_name(name)
        if parent.parent_id is None and name_key(name) == SHARED_KEY:
            raise Forbidden("'Shared' is reserved for shares")
        return name

    def locate_path(self, actor: Actor, path: str) -> Located:
        """What the actor sees at `path` (`/a/b`, validated); `NotFound` if nothing."""
        found = self.view(actor).locate(split_path(path))
        if found is None:
            raise NotFound(f"{path}: no such file or folder")
        return found

    def new_member_place(
        self, actor: Actor, parent: Located, name: str
    ) -> tuple[NodeRecord, str, Place]:
        """The checks before a new member `name` (a file or a folder) of `parent`: a
        folder the actor may add to, a valid name, and its locks; returns the folder,
        the name and the new member's place."""
        folder = self.folder(parent)
        self.require(parent.place, adding=True)
        name = self.new_name(folder, name)
        self.check_lock(actor, parent.place, is_dir=True, depth="0")
        return folder, name, parent.place.child(name)

    def check_lock(self, actor: Actor, place: Place, *, is_dir: bool, depth: Depth) -> None:
        """`Locked` unless the locks on `place` let the actor write (`LockView.check`)."""
        self.locks.check(actor, place, is_dir=is_dir, depth=depth)

    def publish(self, kind: str, actor: Actor, node: NodeRecord, path: str) -> None:
        """Announce a committed change of `node` (at `path` in its owner's home)."""
        self.events.publish(Event(kind, node.owner_id, node.id, path, actor.name))
