"""The caller's trash as Nextcloud serves it, at `/remote.php/dav/trashbin/<user>/trash/`
(layout: `providers.dav.history_tree`).

- `trash/` lists the items of the caller's trash, newest first; `DELETE trash/`
  empties it (204);
- an item is named `<original name>.d<item id>` (Nextcloud's `<name>.d<deletion
  time>`, with the item id in place of the time, which two deletes in one second
  share; the id is `/api/v1/trash`'s `id`). A name whose id is not an item of the
  caller's trash, or whose first part is not that item's name, is not found (404).
  It carries `nc:trashbin-filename` (the name it had), `nc:trashbin-original-location`
  (its path in the home, without the leading `/`), `nc:trashbin-deletion-time`
  (seconds), `oc:fileid`, `oc:size` (the bytes of the files it holds),
  `getcontentlength`/`getcontenttype` for a file, `getlastmodified`, `getetag`;
  GET of a file streams its bytes; a trashed folder lists what it held, down to any
  depth, with the same properties (their location is below the item's);
- `MOVE <item>` to `.../trashbin/<user>/restore/<any name>` puts it back where it was
  deleted from (`Operations.restore_trashed`: as `name (restored)` if that name is
  taken again, at the top of the home if its folder is gone): 201; `DELETE <item>`
  purges it (204). What lies inside an item can only come back with it (403).
"""

from __future__ import annotations

from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, _DAVResource

from providers.catalog import NodeRecord, TrashItemRecord
from providers.dav.errors import dav_error_context, dav_errors
from providers.dav.files import StoredContent
from providers.dav.history_tree import HistoryProvider, Refusing, nc_name
from providers.dav.node import DEST_CREATED, last_modified_of
from providers.dav.oc_props import OC_FILEID, OC_NS
from providers.errors import NotFound
from providers.names import name_key

TRASHBIN_FILENAME = nc_name("trashbin-filename")
TRASHBIN_ORIGINAL_LOCATION = nc_name("trashbin-original-location")
TRASHBIN_DELETION_TIME = nc_name("trashbin-deletion-time")
OC_SIZE = f"{{{OC_NS}}}size"
TRASH_PROPS = (
    TRASHBIN_FILENAME,
    TRASHBIN_ORIGINAL_LOCATION,
    TRASHBIN_DELETION_TIME,
    OC_FILEID,
    OC_SIZE,
)
INSIDE = "what a trashed folder held comes back with it: restore the item"


def item_name(item: TrashItemRecord) -> str:
    """An item's name in `trash/`: `<original name>.d<item id>`."""
    return f"{item.path.rsplit('/', 1)[-1]}.d{item.id}"


def item_id_of(name: str) -> int | None:
    """The item id a name of `trash/` gives (`item_name`), or None."""
    _stem, dot_d, digits = name.rpartition(".d")
    return int(digits) if dot_d and digits.isascii() and digits.isdigit() else None


class TrashbinProvider(HistoryProvider):
    """See the module docstring."""

    collection = "trash"

    def below(self, path: str, environ: dict[str, Any], names: list[str]) -> _DAVResource | None:
        actor = self.actor(environ)
        if not names:
            return TrashRoot(path, environ, self)
        item_id = item_id_of(names[0])
        if item_id is None:
            return None
        try:
            item = self.ops.trash_item(actor, item_id)
            node = self.ops.trashed_node(actor, item_id, names[1:])
        except NotFound:
            return None
        if node is None or name_key(item_name(item)) != name_key(names[0]):
            return None
        return self.entry(path, environ, item, node, tuple(names[1:]))

    def entry(
        self,
        path: str,
        environ: dict[str, Any],
        item: TrashItemRecord,
        node: NodeRecord,
        inner: tuple[str, ...],
    ) -> _DAVResource:
        """The resource of `node`, at `inner` names below item `item`'s root."""
        kind = TrashFolder if node.is_dir else TrashFile
        return kind(path, environ, self, item, node, inner)


class TrashRoot(Refusing, DAVCollection):
    """`trash/`: the items; DELETE empties the trash."""

    def __init__(self, path: str, environ: dict[str, Any], provider: TrashbinProvider) -> None:
        super().__init__(path, environ)
        self.history = provider

    @dav_errors
    def get_member_list(self) -> list[_DAVResource]:
        ops = self.history.ops
        entries = ops.trash_entries(self.history.actor(self.environ))
        base = self.path.rstrip("/")
        return [
            self.history.entry(f"{base}/{item_name(item)}", self.environ, item, node, ())
            for item, node in entries
        ]

    def get_member_names(self) -> list[str]:
        return [member.name for member in self.get_member_list()]

    def get_member(self, name: str) -> _DAVResource | None:
        return self.history.member(self, name)

    @dav_errors
    def handle_delete(self) -> bool:
        self.history.ops.empty_trash(self.history.actor(self.environ))
        return True


class TrashEntry(Refusing):
    """What items and what they hold share: the Nextcloud properties; MOVE (restore)
    and DELETE (purge) of an item itself."""

    history: TrashbinProvider
    environ: dict[str, Any]

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: TrashbinProvider,
        item: TrashItemRecord,
        node: NodeRecord,
        inner: tuple[str, ...],
    ) -> None:
        super().__init__(path, environ)  # type: ignore[call-arg]  # the WsgiDAV base
        self.history, self.ops = provider, provider.ops
        self.item, self.inner = item, inner
        # an item's root lies in the trash named by its id: show the name it had
        self.node = node if inner else node._replace(name=self.original_name)

    def get_display_name(self) -> str:
        return self.original_name

    @property
    def original_name(self) -> str:
        return self.inner[-1] if self.inner else self.item.path.rsplit("/", 1)[-1]

    def get_last_modified(self) -> float:
        return last_modified_of(self.node)

    def get_creation_date(self) -> float:
        return self.node.created

    def size(self) -> int | None:
        """The bytes of the files it holds (None: a folder inside an item)."""
        if not self.inner:
            return self.item.size
        return None if self.node.is_dir else self.node.size

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)
        return names + [name for name in TRASH_PROPS if name != OC_SIZE or self.size() is not None]

    def get_property_value(self, name: str) -> Any:
        if name == TRASHBIN_FILENAME:
            return self.original_name
        if name == TRASHBIN_ORIGINAL_LOCATION:
            return "/".join([self.item.path.strip("/"), *self.inner])
        if name == TRASHBIN_DELETION_TIME:
            return str(int(self.item.deleted))
        if name == OC_FILEID:
            return str(self.node.id)
        if name == OC_SIZE and self.size() is not None:
            return str(self.size())
        return super().get_property_value(name)

    def handle_move(self, dest_path: str) -> bool:
        """Restore the item where it was deleted from (201)."""
        if self.inner:
            raise DAVError(HTTP_FORBIDDEN, INSIDE)
        self.history.require_restore(self.environ, dest_path)
        with dav_error_context():
            self.history.ops.restore_trashed(self.history.actor(self.environ), self.item.id)
        self.environ[DEST_CREATED] = True
        return True

    def handle_delete(self) -> bool:
        """Purge the item for good (204)."""
        if self.inner:
            raise DAVError(HTTP_FORBIDDEN, INSIDE)
        with dav_error_context():
            self.history.ops.purge_trashed(self.history.actor(self.environ), self.item.id)
        return True


class TrashFile(TrashEntry, StoredContent, DAVNonCollection):
    """A trashed file (an item, or a file inside a trashed folder)."""


class TrashFolder(TrashEntry, DAVCollection):
    """A trashed folder: lists what it held."""

    def get_etag(self) -> str:
        return f"{self.node.id}-{self.node.rev}"

    def support_etag(self) -> bool:
        return True

    @dav_errors
    def get_member_list(self) -> list[_DAVResource]:
        base = self.path.rstrip("/")
        return [
            self.history.entry(
                f"{base}/{child.name}", self.environ, self.item, child, (*self.inner, child.name)
            )
            for child in self.history.ops.catalog.tree.children(self.node.id)
        ]

    def get_member_names(self) -> list[str]:
        return [member.name for member in self.get_member_list()]

    def get_member(self, name: str) -> _DAVResource | None:
        return self.history.member(self, name)
