"""What files and folders share (`NodeMixin`): live and dead properties, lock keys,
and the changes WebDAV makes to a node (properties, mtime, DELETE, COPY, MOVE), each
handed to the operations layer, which checks rights and locks and commits it."""

from __future__ import annotations

from typing import Any

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import _DAVResource

from providers.catalog import NodeRecord
from providers.catalog.changes import folder_etag
from providers.dav.errors import dav_error_context, dav_errors
from providers.dav.host import ResourceHost
from providers.dav.oc_props import (
    OC_CHECKSUMS,
    OC_EMPTY,
    OC_FILEID,
    OC_ID,
    OC_PERMISSIONS,
    OC_RIGHTS,
    OC_SIZE,
    oc_permissions,
)
from providers.names import name_key, split_path
from providers.operations import SHARED_KEY, Located, Place, lock_url

DEST_CREATED = "davserver.dest_created"  # environ key set by COPY/MOVE handling
DEST = "davserver.dest"  # environ: the `Located` a PUT, MKCOL, COPY or MOVE left
WIN32_MTIME = "{urn:schemas-microsoft-com:}Win32LastModifiedTime"
OC_LIVE = (OC_FILEID, OC_ID)
OC_NAMED = (*OC_LIVE, *OC_RIGHTS)  # listed only when asked by name (`get_property_names`)


def oc_ids(node: NodeRecord) -> tuple[str, str]:
    """(`oc:fileid`, `oc:id`) of a node: its row id, which a MOVE keeps, as the
    ownCloud/Nextcloud sync clients expect (they follow renames by it)."""
    return str(node.id), f"{node.id:08d}ocdav"


def etag_of(node: NodeRecord) -> str:
    """A node's ETag (unquoted): a file's content digest, a folder's id and `rev`."""
    return folder_etag(node.id, node.rev) if node.is_dir else node.digest or ""


def last_modified_of(node: NodeRecord) -> float:
    """The node's mtime in whole seconds, as HTTP dates carry it (so If-Modified-Since
    compares against what the client was shown)."""
    return float(int(node.mtime))


class NodeMixin(_DAVResource):
    """What files and folders share (see the module docstring)."""

    provider: ResourceHost
    environ: dict[str, Any]
    path: str
    located: Located
    _props: dict[str, str] | None

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: ResourceHost,
        located: Located,
        props: dict[str, str] | None = None,
    ) -> None:
        """`props`: the node's dead properties when already loaded (a listing), else
        None (fetched on first use); a pending file (id 0, a PUT not yet committed)
        has none."""
        super().__init__(path, environ)  # type: ignore[call-arg]  # the WsgiDAV base
        self.provider = provider
        self.located = located
        self._props = props if self.node.id else {}

    @property
    def node(self) -> NodeRecord:
        node = self.located.node
        assert node is not None  # only the virtual Shared/ has none, and it is no NodeMixin
        return node

    @property
    def place(self) -> Place:
        return self.located.place

    def get_ref_url(self) -> str:
        """Locks are keyed by the node's place in its owner's tree (`lock_url`)."""
        return lock_url(self.place, is_dir=self.node.is_dir)

    @dav_errors
    def require_write(self, *, removing: bool = False) -> None:
        """403 unless the request may write here (`removing`: delete or move this
        itself); the rule is the operations layer's."""
        self.provider.ops.require(self.place, removing=removing)

    def get_creation_date(self) -> float:
        return self.node.created

    def get_last_modified(self) -> float:
        return last_modified_of(self.node)

    def get_display_name(self) -> str:
        return self.node.name

    def dead_props(self) -> dict[str, str]:
        if self._props is None:
            with dav_error_context():
                self._props = self.provider.ops.catalog.tree.props([self.node.id])[self.node.id]
        return self._props

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        """The live properties (the oc: ones only when names are listed: allprop
        gives RFC 4918's, as Nextcloud does) and the dead ones."""
        names: list[str] = super().get_property_names(is_allprop=is_allprop)
        live = [] if is_allprop else list(OC_NAMED)
        return names + live + list(self.dead_props())

    def get_property_value(self, name: str) -> Any:
        if name in OC_LIVE:
            if not self.node.id:
                raise DAVError(HTTP_NOT_FOUND)  # a PUT not committed yet has no id
            return oc_ids(self.node)[OC_LIVE.index(name)]
        if name in OC_RIGHTS:
            return self.oc_value(name)
        if name == WIN32_MTIME:
            # Live, so it never disagrees with getlastmodified after a later PUT.
            element = etree.Element(name)
            element.text = util.get_rfc1123_time(self.get_last_modified())
            return element
        value = self.dead_props().get(name)
        if value is not None:
            return etree.fromstring(value)
        return super().get_property_value(name)

    def oc_value(self, name: str) -> str:
        """The text of an `OC_RIGHTS` property (`providers.dav.oc_props`)."""
        if name in OC_EMPTY:
            return ""
        if name == OC_SIZE:
            return str(self.tree_bytes())
        assert name == OC_PERMISSIONS
        actor = self.provider.actor(self.environ)
        return oc_permissions(actor, self.place, self.provider.ops.shares, is_dir=self.node.is_dir)

    def tree_bytes(self) -> int:
        """`oc:size`: a file's size (a folder's is the bytes below it)."""
        return self.node.size

    @dav_errors
    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        """Dead props are stored; Windows' Win32LastModifiedTime sets the mtime and its
        other Win32 props (creation/access time, attributes) are kept as dead props, so
        Explorer reads back what it wrote (WsgiDAV alone would answer 200 and drop them).
        `oc:checksums` is accepted and dropped: the checksums are the stored bytes', and
        rclone sets its own with the mtime in one PROPPATCH that must not fail."""
        if name.startswith("{DAV:}"):
            return super().set_property_value(name, value, dry_run=dry_run)
        if name == WIN32_MTIME:
            if value is None:
                return None
            return self.set_last_modified(self.path, value.text, dry_run=dry_run)
        ops, actor = self.provider.ops, self.provider.actor(self.environ)
        if dry_run or name == OC_CHECKSUMS:
            ops.check_change(actor, self.located)
            return None
        text = None if value is None else etree.tostring(value).decode("utf-8")
        ops.set_property(actor, self.located, name, text)
        self._props = None
        return None

    @dav_errors
    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        if isinstance(time_stamp, int | float):
            mtime = float(time_stamp)
        else:
            parsed = util.parse_time_string(str(time_stamp))
            if parsed is None:
                raise DAVError(HTTP_BAD_REQUEST, "unparseable time")
            mtime = float(parsed)
        ops, actor = self.provider.ops, self.provider.actor(self.environ)
        if dry_run:
            ops.check_change(actor, self.located)
        else:
            ops.set_mtime(actor, self.located, mtime)
        return True

    @dav_errors
    def handle_delete(self) -> bool:
        self.provider.ops.delete(self.provider.actor(self.environ), self.located)
        return True

    @dav_errors
    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        parent, name = self._destination(dest_path)
        actor = self.provider.actor(self.environ)
        placed = self.provider.ops.copy(actor, self.located, parent, name, recursive=depth_infinity)
        self.environ[DEST_CREATED] = placed.created
        self.environ[DEST] = parent.child(placed.node)
        return True

    @dav_errors
    def handle_move(self, dest_path: str) -> bool:
        """Move or rename; a destination that is the source under another spelling is
        a rename that only changes the spelling."""
        self.require_write(removing=True)
        parent, name = self._destination(dest_path)
        actor = self.provider.actor(self.environ)
        placed = self.provider.ops.move(actor, self.located, parent, name)
        self.environ[DEST_CREATED] = placed.created
        self.environ[DEST] = parent.child(placed.node)
        return True

    def _destination(self, dest_path: str) -> tuple[Located, str]:
        """The folder and name of a COPY/MOVE destination, in the request's view:
        403 for the home or `Shared` themselves, 409 if the parent is not a folder.
        Whether the target is new is recorded in the environ (`DEST_CREATED`) by the
        caller, so the request server can answer 201 vs 204."""
        names = split_path(dest_path)
        if not names or (len(names) == 1 and name_key(names[0]) == SHARED_KEY):
            raise DAVError(HTTP_FORBIDDEN, "cannot replace the home or Shared collection")
        parent = self.provider.view(self.environ).locate(names[:-1])
        if parent is None or not parent.is_dir:
            raise DAVError(HTTP_CONFLICT, "destination parent must be a collection")
        return parent, names[-1]
