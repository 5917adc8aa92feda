"""A user's own trash through the operations layer (issue 16): list, restore, purge,
empty. Deleting puts things there (`TreeMutations.delete`); these act on the
caller's own trash only (a grantee's delete lands in the owner's, whom it belongs to).
"""

from __future__ import annotations

from collections.abc import Sequence

from providers.catalog import NodeRecord, TrashItemRecord
from providers.errors import Conflict, Forbidden, NotFound
from providers.names import name_key, split_path
from providers.operations import events
from providers.operations.access import SHARED_KEY
from providers.operations.actor import Actor
from providers.operations.base import OperationsBase
from providers.operations.views import Located, View

MAX_TRIES = 100


class TrashOps(OperationsBase):
    """The caller's trash (accounts only: a share link has none)."""

    def trash_items(self, actor: Actor) -> list[TrashItemRecord]:
        """The items of the caller's trash, newest first."""
        return self.catalog.trash.items(_account(actor))

    def trash_entries(self, actor: Actor) -> list[tuple[TrashItemRecord, NodeRecord]]:
        """The items of the caller's trash, newest first, each with its root node (as
        it lies in the trash: named by its id; the name it had is the last of
        `item.path`). One query per item besides the listing: trashes are short."""
        entries = []
        for item in self.trash_items(actor):
            node = self.catalog.tree.get(item.id)
            if node is not None:  # purged meanwhile
                entries.append((item, node))
        return entries

    def trash_item(self, actor: Actor, item_id: int) -> TrashItemRecord:
        """Item `item_id` of the caller's trash; `NotFound` if it is not theirs."""
        return self.catalog.trash.item(_account(actor), item_id)

    def trashed_node(self, actor: Actor, item_id: int, names: Sequence[str]) -> NodeRecord | None:
        """The node at `names` inside item `item_id` of the caller's trash (the item's
        root for none), or None if nothing is there; `NotFound` for an item that is
        not theirs. Its members are the catalog's listing of it (`Tree.children`)."""
        item = self.trash_item(actor, item_id)
        found = self.catalog.tree.resolve_path(item.id, list(names))
        return None if found is None else found[0]

    def restore_trashed(self, actor: Actor, item_id: int, to: str | None = None) -> str:
        """Put item `item_id` back: at `to` (a path in the caller's home, which must be
        free: `Conflict`), or where it was deleted from, as `name (restored)` if that
        name is taken again, or at the top of the home if its folder is gone. Returns
        the path it is at now. `NotFound` for an item not in the caller's trash."""
        user_id = _account(actor)
        names = split_path(to or self.catalog.trash.origin(user_id, item_id))
        if not names or name_key(names[0]) == SHARED_KEY:
            raise Forbidden("restore into your own files")
        view = self.view(actor)
        parent = view.locate(names[:-1])
        if parent is None and to is not None:
            raise NotFound(f"{'/'.join(names[:-1])}: no such folder")
        if parent is None:
            parent = view.locate([])
            assert parent is not None
        folder = self.folder(parent)
        name = self._free_name(view, parent, names[-1], strict=to is not None)
        self.check_lock(actor, parent.place, is_dir=True, depth="0")
        path = parent.place.owner_path.rstrip("/") + "/" + name
        node = self.catalog.trash.restore(user_id, item_id, folder.id, name, path)
        self.publish(events.MKDIR if node.is_dir else events.PUT, actor, node, path)
        return path

    def purge_trashed(self, actor: Actor, item_id: int) -> None:
        """Delete item `item_id` of the caller's trash for good."""
        self.catalog.trash.purge(_account(actor), item_id)

    def empty_trash(self, actor: Actor) -> int:
        """Delete every item of the caller's trash for good; how many there were."""
        user_id = _account(actor)
        items = self.catalog.trash.items(user_id)
        for item in items:
            self.catalog.trash.purge(user_id, item.id)
        return len(items)

    @staticmethod
    def _free_name(view: View, parent: Located, name: str, *, strict: bool) -> str:
        """`name` if free in `parent`, else (unless `strict`: `Conflict`) the first of
        `name (restored)`, `name (restored 2)`... (before the extension)."""
        if view.locate([*parent.shown, name]) is None:
            return name
        if strict:
            raise Conflict(f"{name!r} exists")
        dot = name.rfind(".")
        stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
        for n in range(1, MAX_TRIES + 1):
            candidate = f"{stem} (restored{'' if n == 1 else f' {n}'}){ext}"
            if view.locate([*parent.shown, candidate]) is None:
                return candidate
        raise Conflict(f"too many items named like {name!r}")


def _account(actor: Actor) -> int:
    if actor.link is not None:
        raise Forbidden("a share link has no trash")
    return actor.user.id
