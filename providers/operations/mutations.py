"""Tree mutations: new folders, delete, move, copy, properties and mtimes.

Each is one catalog transaction that also appends to the change log (design
invariant 5) and moves no bytes (invariant 4), after the checks of `OperationsBase`;
locks of whatever a mutation removes, moves away or replaces are released after it.
Targets are `Located`s from the actor's own view (`OperationsBase.view`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from providers.catalog import NodeRecord
from providers.errors import Conflict, Forbidden, NotFound, QuotaExceeded
from providers.operations import events
from providers.operations.access import Place
from providers.operations.actor import Actor
from providers.operations.base import OperationsBase
from providers.operations.room import make_room
from providers.operations.views import Located

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placed:
    """Where a move or copy put its node, and whether the destination was new (False:
    it replaced what was there)."""

    node: NodeRecord
    created: bool


@dataclass(frozen=True)
class _Destination:
    """A checked destination: its folder, the name as given, what is there now (None
    if nothing) and the place of the result."""

    folder: NodeRecord
    name: str
    existing: NodeRecord | None
    place: Place


class TreeMutations(OperationsBase):
    """See the module docstring."""

    def mkdir(self, actor: Actor, parent: Located, name: str) -> NodeRecord:
        """A new empty folder `name` in `parent`; `Conflict` if the name is taken."""
        folder, name, place = self.new_member_place(actor, parent, name)
        path = place.owner_path
        made = self.catalog.tree.mkdir(folder.id, name, folder.owner_id, path)
        self.publish(events.MKDIR, actor, made, path)
        return made

    def descend(self, actor: Actor, root: Located, names: Sequence[str], *, make: bool) -> Located:
        """The folder `names` below `root` as the actor sees it; with `make`, the
        missing ones are made on the way (`mkdir -p`: one made meanwhile by another
        request is taken as it is). `Conflict` when one is a file, or missing without
        `make`."""
        view, folder = self.view(actor), root
        for name in names:
            child = view.locate([*folder.shown, name])
            if child is None and make:
                with contextlib.suppress(Conflict):  # made meanwhile by another request
                    self.mkdir(actor, folder, name)
                child = view.locate([*folder.shown, name])
            if child is None or not child.is_dir:
                raise Conflict(f"{name!r} is not a folder")
            folder = child
        return folder

    def delete(self, actor: Actor, target: Located) -> None:
        """Delete `target` and everything below it, and drop their locks: it goes to
        its owner's trash as one row (whoever deleted it, a grantee included), from
        where it can be restored until purged or expired."""
        node = self._node(target)
        self.require(target.place, removing=True)
        self.check_lock(actor, target.place.parent(), is_dir=True, depth="0")
        self.check_lock(actor, target.place, is_dir=node.is_dir, depth="infinity")
        path = target.place.owner_path
        self.catalog.trash.put(node.id, path, actor.author_id)
        self.locks.release(target.place, is_dir=node.is_dir)
        self.publish(events.DELETE, actor, node, path)

    def move(
        self, actor: Actor, source: Located, parent: Located, name: str, *, overwrite: bool = True
    ) -> Placed:
        """Move or rename `source` to `name` in `parent`, replacing what is there
        (`Conflict` instead unless `overwrite`; what it replaces goes to the trash, and
        a file replacing a file takes over its versions). Another spelling of the
        source's own name only renames it. Locks of the source and of what it replaces
        are dropped."""
        node = self._node(source)
        self.require(source.place, removing=True)
        dest = self._destination(actor, parent, name)
        self.check_lock(actor, source.place.parent(), is_dir=True, depth="0")
        self.check_lock(actor, source.place, is_dir=node.is_dir, depth="infinity")
        replaced = dest.existing is not None and dest.existing.id != node.id
        moved = self.catalog.tree.move(
            node.id,
            dest.folder.id,
            dest.name,
            dest.place.owner_path,
            replace=overwrite,
            old_path=source.place.owner_path,
            author_id=actor.author_id,
        )
        self.locks.release(source.place, is_dir=node.is_dir)
        if replaced:
            self.locks.release(dest.place, is_dir=True)
        self.publish(events.MOVE, actor, moved, dest.place.owner_path)
        return Placed(moved, dest.existing is None)

    def copy(
        self, actor: Actor, source: Located, parent: Located, name: str, *, recursive: bool = True
    ) -> Placed:
        """Copy `source` (with everything below it, unless not `recursive`: then a
        folder is copied as an empty one) to `name` in `parent`, replacing what is
        there; the copies belong to `parent`'s owner (`QuotaExceeded` past their
        quota). `Forbidden` onto the source itself."""
        node = self._node(source)
        dest = self._destination(actor, parent, name)
        if dest.existing is not None and dest.existing.id == node.id:
            raise Forbidden("cannot copy a resource onto itself")
        tree, path = self.catalog.tree, dest.place.owner_path
        if node.is_dir and not recursive:
            copied = tree.mkdir(dest.folder.id, dest.name, dest.folder.owner_id, path)
        else:
            copied = self._copy_making_room(actor, node, dest)
        if dest.existing is not None:
            self.locks.release(dest.place, is_dir=True)
        self.publish(events.COPY, actor, copied, path)
        return Placed(copied, dest.existing is None)

    def _copy_making_room(self, actor: Actor, node: NodeRecord, dest: _Destination) -> NodeRecord:
        """Copy `node` to `dest`; past the quota, a file's copy first expires the
        owner's oldest history, and then, if what it replaces is a file, does not keep
        that one in the trash (the newest history goes last: design invariant 19)."""
        path, owner = dest.place.owner_path, dest.folder.owner_id

        def attempt(keep_replaced: bool) -> NodeRecord:
            return self.catalog.tree.copy(
                node.id, dest.folder.id, dest.name, path, actor.author_id, keep_replaced
            )

        try:
            return attempt(True)
        except QuotaExceeded:
            if node.is_dir:
                raise
        make_room(self.catalog, owner, node.size)
        try:
            return attempt(True)
        except QuotaExceeded:
            if dest.existing is None or dest.existing.is_dir:
                raise
        log.warning("quota of user %d: %s replaced without keeping the old file", owner, path)
        return attempt(False)

    def check_change(self, actor: Actor, target: Located) -> None:
        """What a property or mtime change checks, alone (a PROPPATCH's dry run)."""
        node = self._node(target)
        self.require(target.place)
        self.check_lock(actor, target.place, is_dir=node.is_dir, depth="0")

    def set_property(self, actor: Actor, target: Located, name: str, value: str | None) -> None:
        """Set dead property `name` (an XML element as text) of `target`; None removes it."""
        self.check_change(actor, target)
        node, path = self._node(target), target.place.owner_path
        self.catalog.tree.set_prop(node.id, name, value, path)
        self.publish(events.PROP, actor, node, path)

    def set_mtime(self, actor: Actor, target: Located, mtime: float) -> None:
        """Set `target`'s modification time (seconds since the epoch)."""
        self.check_change(actor, target)
        node, path = self._node(target), target.place.owner_path
        self.catalog.tree.set_mtime(node.id, mtime, path)
        self.publish(events.PROP, actor, node, path)

    def _destination(self, actor: Actor, parent: Located, name: str) -> _Destination:
        """Check a move's or copy's destination: write access to `parent`, the name,
        the locks of the folder and of what would be replaced."""
        folder = self.folder(parent)
        self.require(parent.place)
        name = self.new_name(folder, name)
        existing = self.catalog.tree.resolve(folder.id, [name])
        place = parent.place.child(name if existing is None else existing.name)
        self.check_lock(actor, parent.place, is_dir=True, depth="0")
        if existing is not None:
            self.check_lock(actor, place, is_dir=existing.is_dir, depth="infinity")
        return _Destination(folder, name, existing, place)

    @staticmethod
    def _node(located: Located) -> NodeRecord:
        """The stored node of `located`; `Forbidden` for the virtual `Shared/`."""
        if located.node is None:
            raise Forbidden("Shared/ only lists what others shared with you")
        if located.node.id == 0:
            raise NotFound("not stored yet")
        return located.node
