"""What files and folders share (`NodeMixin`): live and dead properties, rights,
lock keys, and COPY, MOVE and DELETE as single catalog transactions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    DAVError,
)

from providers.access import (
    SHARED_KEY,
    Place,
)
from providers.catalog import NodeRecord
from providers.dav.errors import dav_error_context, dav_errors
from providers.names import name_key, split_path

if TYPE_CHECKING:
    from providers.dav.provider import HomeProvider

DEST_CREATED = "davserver.dest_created"  # environ key set by COPY/MOVE handling
WIN32_MTIME = "{urn:schemas-microsoft-com:}Win32LastModifiedTime"


def path_of(names: list[str], *, trailing_slash: bool = False) -> str:
    """The path of `names` below the home ('/' for none), optionally ending in '/'."""
    joined = "/" + "/".join(names)
    return joined + "/" if names and trailing_slash else joined


def last_modified_of(node: NodeRecord) -> float:
    """The node's mtime in whole seconds, as HTTP dates carry it (so If-Modified-Since
    compares against what the client was shown)."""
    return float(int(node.mtime))


@dataclass(frozen=True)
class _Destination:
    """Where a COPY or MOVE goes: the parent folder, the name as the client gave it,
    the node already there (None if new) and the key that locks of the destination are
    kept under (`Place.lock_path`, with the existing node's spelling, else the given
    one)."""

    parent: NodeRecord
    name: str
    target: NodeRecord | None
    lock_path: str


class NodeMixin:
    """What files and folders share: live props from the node, dead props, MOVE/COPY/DELETE."""

    provider: HomeProvider
    environ: dict[str, Any]
    path: str
    node: NodeRecord
    place: Place
    _props: dict[str, str] | None

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: HomeProvider,
        node: NodeRecord,
        place: Place,
        props: dict[str, str] | None = None,
    ) -> None:
        """`props`: the node's dead properties when already loaded (a listing), else
        None (fetched on first use); a pending file (id 0, a PUT not yet committed)
        has none."""
        super().__init__(path, environ)  # type: ignore[call-arg]  # the WsgiDAV base
        self.provider = provider
        self.node = node
        self.place = place
        self._props = props if node.id else {}

    def get_ref_url(self) -> str:
        """Locks are keyed by the node's place in its owner's tree (`Place.lock_path`)."""
        trailing = "/" if self.node.is_dir else ""
        return quote(self.provider.share_path + self.place.lock_path + trailing)

    def require_write(self, *, removing: bool = False) -> None:
        """403 unless the user may write here (`removing`: delete or move this itself)."""
        allowed = self.place.can_remove if removing else self.place.can_write
        if not allowed:
            what = "it is shared with you read-only"
            if self.place.can_write:
                what = "only its owner can remove or rename it"
            raise DAVError(HTTP_FORBIDDEN, context_info=what)

    def get_creation_date(self) -> float:
        return self.node.created

    def get_last_modified(self) -> float:
        return last_modified_of(self.node)

    def get_display_name(self) -> str:
        return self.node.name

    def dead_props(self) -> dict[str, str]:
        if self._props is None:
            with dav_error_context():
                self._props = self.provider.catalog.tree.props([self.node.id])[self.node.id]
        return self._props

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        return names + list(self.dead_props())

    def get_property_value(self, name: str) -> Any:
        if name == WIN32_MTIME:
            # Live, so it never disagrees with getlastmodified after a later PUT.
            element = etree.Element(name)
            element.text = util.get_rfc1123_time(self.get_last_modified())
            return element
        value = self.dead_props().get(name)
        if value is not None:
            return etree.fromstring(value)
        return super().get_property_value(name)  # type: ignore[misc]

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        """Dead props are stored; Windows' Win32LastModifiedTime sets the mtime and its
        other Win32 props (creation/access time, attributes) are kept as dead props, so
        Explorer reads back what it wrote (WsgiDAV alone would answer 200 and drop them)."""
        if name.startswith("{DAV:}"):
            return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
        if name == WIN32_MTIME:
            if value is None:
                return None
            return self.set_last_modified(self.path, value.text, dry_run=dry_run)
        self.require_write()
        if dry_run:
            return None
        text = None if value is None else etree.tostring(value).decode("utf-8")
        with dav_error_context():
            self.provider.catalog.tree.set_prop(self.node.id, name, text)
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
        self.require_write()
        if not dry_run:
            self.provider.catalog.tree.set_mtime(self.node.id, mtime)
        return True

    @dav_errors
    def handle_delete(self) -> bool:
        self.require_write(removing=True)
        self._check_subtree_unlocked()
        self.provider.catalog.tree.delete(self.node.id, self.path)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        return True

    @dav_errors
    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        dest = self._destination(dest_path)
        if dest.target is not None and dest.target.id == self.node.id:
            # Another spelling of the source's own path: WsgiDAV refuses the same path
            # with 403, so the same node gets that answer too.
            raise DAVError(HTTP_FORBIDDEN, "cannot copy a resource onto itself")
        tree = self.provider.catalog.tree
        if self.node.is_dir and not depth_infinity:
            node = tree.mkdir(dest.parent.id, dest.name, dest.parent.owner_id, dest_path)
        else:
            node = tree.copy(self.node.id, dest.parent.id, dest.name, dest_path)
        self._drop_locks(dest.lock_path)
        return node is not None

    @dav_errors
    def handle_move(self, dest_path: str) -> bool:
        """Move or rename; a destination that is the source under another spelling is
        a rename that only changes the spelling."""
        self.require_write(removing=True)
        dest = self._destination(dest_path)
        self.provider.catalog.tree.move(self.node.id, dest.parent.id, dest.name, dest_path)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        self._drop_locks(dest.lock_path)
        return True

    def _destination(self, dest_path: str) -> _Destination:
        """Resolve a COPY/MOVE destination: 403 where the user may not write (or the
        reserved `Shared` name), 409 if its parent is not a folder. Records in the
        environ whether the target is new (`davserver.dest_created`), so the request
        server can answer 201 vs 204."""
        names = split_path(dest_path)
        if not names or (len(names) == 1 and name_key(names[0]) == SHARED_KEY):
            raise DAVError(HTTP_FORBIDDEN, "cannot replace the home or Shared collection")
        found = self.provider.locate(names[:-1], self.environ)
        if found is None or (found[0] is not None and not found[0].is_dir):
            raise DAVError(HTTP_CONFLICT, "destination parent must be a collection")
        parent, _shown, parent_place = found
        if parent is None or not parent_place.can_write:
            raise DAVError(HTTP_FORBIDDEN, "no write access to the destination folder")
        target = self.provider.catalog.tree.resolve(parent.id, names[-1:])
        self.environ[DEST_CREATED] = target is None
        stored_name = names[-1] if target is None else target.name
        return _Destination(parent, names[-1], target, parent_place.child(stored_name).lock_path)

    def _drop_locks(self, lock_path: str) -> None:
        """Release every lock at or below `lock_path` (a `Place.lock_path`)."""
        manager = self.provider.lock_manager
        if manager is not None:
            url = quote(self.provider.share_path + lock_path)
            manager.remove_all_locks_from_url(url, recursive=True)

    def _check_subtree_unlocked(self) -> None:
        manager = self.provider.lock_manager
        if manager is not None:
            manager.check_write_permission(
                url=self.get_ref_url(),
                depth="infinity",
                token_list=self.environ.get("wsgidav.ifLockTokenList", []),
                principal=self.environ.get("wsgidav.user_name"),
            )
