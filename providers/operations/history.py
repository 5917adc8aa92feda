"""A file's history through the operations layer (issue 16): who may list its old
versions (whoever reads the file) and restore one (whoever may write it, under the
same lock rules as a PUT).
"""

from __future__ import annotations

from providers.catalog import NodeRecord, VersionRecord
from providers.errors import Conflict, Forbidden, NotFound
from providers.names import split_path
from providers.operations import events
from providers.operations.access import Access, Place
from providers.operations.actor import Actor
from providers.operations.base import OperationsBase
from providers.operations.room import make_room
from providers.operations.views import Located


class History(OperationsBase):
    """Old versions of files, for whoever can read the file."""

    def locate_id(self, actor: Actor, node_id: int) -> Located:
        """Node `node_id` (an `oc:fileid`) as the actor sees it: in its home, under
        `Shared/` through the grant covering it, or in its link's folder, with the rights
        it has there. `NotFound` if the actor does not see it (someone else's, trashed,
        gone)."""
        found = self.catalog.tree.in_home(node_id)
        view = self.view(actor)
        if found is not None:
            node, owner_names = found
            key = Place(node.owner_id, owner_names, Access.READ).lock_path
            located = view.locate(split_path(view.path_of_lock(key)))
            if located is not None and located.node is not None and located.node.id == node_id:
                return located
        raise NotFound(f"file {node_id}: no such file")

    def versions(self, actor: Actor, target: Located) -> list[VersionRecord]:
        """The old versions of the file at `target`, newest first (its current content
        is not among them). Anyone who sees the file may list them (read rights: a
        grantee, a link that shows the file); `Conflict` for a folder, `Forbidden`
        for the virtual `Shared/`."""
        node = target.node
        if node is None:
            raise Forbidden("Shared/ only lists what others shared with you")
        if node.is_dir:
            raise Conflict("a folder has no versions")
        return self.catalog.versions.old(node.id)

    def restore_version(self, actor: Actor, target: Located, version_id: int) -> NodeRecord:
        """Make that old version of the file at `target` current again (the replaced
        content becomes a version; one `modified` change, one event). `Forbidden`
        without write rights, `Locked` under a lock the actor does not hold,
        `NotFound` for a version not of this file, `QuotaExceeded`."""
        node = target.node
        if node is None or node.is_dir:
            raise Conflict("not a file")
        self.require(target.place)
        self.check_lock(actor, target.place, is_dir=False, depth="0")
        path = target.place.owner_path
        restored = self.catalog.versions.restore(node.id, version_id, actor.author_id, path)
        make_room(self.catalog, node.owner_id, 0)  # the replaced content is history now
        self.publish(events.PUT, actor, restored, path)
        return restored
