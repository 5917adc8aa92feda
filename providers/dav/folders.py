"""`FolderResource`: a directory (a home included): listings, new members."""

from __future__ import annotations

import time
from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVCollection, _DAVResource

from providers.catalog import NodeRecord, UserRecord
from providers.catalog.changes import folder_etag
from providers.checksums import Checksums
from providers.dav.errors import dav_error_context, dav_errors
from providers.dav.files import FileResource
from providers.dav.node import DEST, NodeMixin
from providers.dav.quota import QUOTA_SPLIT, quota_split_value
from providers.dav.sync import SYNC_LIVE, sync_property_names, sync_property_value
from providers.names import check_name, name_key
from providers.operations import SHARED, SHARED_KEY


class FolderResource(NodeMixin, DAVCollection):
    """A directory (a user's home included)."""

    _tree_bytes: int | None = None  # `oc:size`, when a listing looked it up

    def tree_bytes(self) -> int:
        """`oc:size`: the bytes of the files below it (one query, unless a listing
        gave it with `known_tree_bytes`)."""
        if self._tree_bytes is None:
            with dav_error_context():
                self._tree_bytes = self.provider.ops.catalog.tree.folder_bytes([self.node.id])[
                    self.node.id
                ]
        return self._tree_bytes

    def known_tree_bytes(self, size: int) -> None:
        """Set the `oc:size` a listing looked up for all its folders at once."""
        self._tree_bytes = size

    def get_etag(self) -> str:
        """Its id and the seq of the last change at or below it (`Node.rev`): it moves
        whenever anything inside changes, however deep (design invariant 16), so a
        sync client compares one value per folder to know where to look."""
        return folder_etag(self.node.id, self.node.rev)

    def support_etag(self) -> bool:
        return True

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        """Those of every node, and RFC 6578's (`providers.dav.sync`) and the quota
        split (`providers.dav.quota`) when named."""
        names = super().get_property_names(is_allprop=is_allprop)
        names += sync_property_names(self.provider, self.environ, is_allprop=is_allprop)
        if not is_allprop and self.provider.actor(self.environ).link is None:
            names += QUOTA_SPLIT
        return names

    def get_property_value(self, name: str) -> Any:
        if name in SYNC_LIVE:
            return sync_property_value(self.provider, self.environ, self.located, name)
        if name in QUOTA_SPLIT:
            with dav_error_context():
                usage = self.provider.ops.catalog.history_usage.usage(self._owner().id)
            return quota_split_value(usage, name)
        return super().get_property_value(name)

    @dav_errors
    def get_member_names(self) -> list[str]:
        return [r.name for r in self.get_member_list()]

    @dav_errors
    def get_member(self, name: str) -> _DAVResource | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    @dav_errors
    def get_member_list(self) -> list[_DAVResource]:
        """All members with their dead props: two queries in all (a home also lists
        the virtual `Shared/`)."""
        members = [self.member(node, props) for node, props in self.member_nodes()]
        shared = self.shared_member()
        if shared is not None:
            members.append(shared)
        return members

    @dav_errors
    def member_nodes(self) -> list[tuple[NodeRecord, dict[str, str]]]:
        """The stored members and their dead properties, by name, in one listing (a
        home hides a stored node named like the reserved `Shared`)."""
        nodes, props = self.provider.ops.catalog.tree.listing(self.node.id)
        hide_shared = self._is_home
        return [
            (node, props[node.id])
            for node in nodes
            if not (hide_shared and name_key(node.name) == SHARED_KEY)
        ]

    @dav_errors
    def member_checksums(self, nodes: list[NodeRecord]) -> dict[int, Checksums]:
        """The checksums of the files among `nodes`, by content id (one query for a
        listing that asks for `oc:checksums`)."""
        ids = [node.content_id for node in nodes if node.content_id]
        return self.provider.ops.catalog.checksums.of(ids)

    @dav_errors
    def member_tree_bytes(self, nodes: list[NodeRecord]) -> dict[int, int]:
        """The `oc:size` of the folders among `nodes`, by id (one query for a listing
        that asks for it)."""
        return self.provider.ops.catalog.tree.folder_bytes(n.id for n in nodes if n.is_dir)

    def member(self, node: NodeRecord, props: dict[str, str]) -> _DAVResource:
        """The resource of a member from `member_nodes`."""
        path = util.join_uri(self.path, node.name)
        return self.provider.resource(path, self.located.child(node), self.environ, props)

    def shared_member(self) -> _DAVResource | None:
        """The virtual `Shared/` of a home while the user has received something."""
        if not self._is_home:
            return None
        return self.provider.get_resource_inst(util.join_uri(self.path, SHARED), self.environ)

    @property
    def _is_home(self) -> bool:
        return self.node.parent_id is None

    @dav_errors
    def create_empty_resource(self, name: str) -> FileResource:
        """A PUT's new file stays pending until its body is committed (the operations
        layer checks it when the body starts); a LOCK of an unmapped URL commits an
        empty file now. The name is kept as the client spelled it."""
        name = check_name(name)
        now = time.time()
        pending = NodeRecord(
            0, self.node.id, name, "file", self.node.owner_id, 0, now, now, None, None, None
        )
        path = util.join_uri(self.path, name)
        located = self.located.child(pending)
        resource = FileResource(path, self.environ, self.provider, located)
        resource.parent = self.located
        if self.environ.get("REQUEST_METHOD") != "PUT":
            resource.create_empty()
        return resource

    @dav_errors
    def create_collection(self, name: str) -> None:
        """MKCOL of a new name, kept as spelled; `Conflict` if another spelling exists."""
        made = self.provider.ops.mkdir(self.provider.actor(self.environ), self.located, name)
        self.environ[DEST] = self.located.child(made)

    def get_used_bytes(self) -> int:
        """The folder's owner's usage (in `Shared/`, the sharing owner's: it is theirs
        that writes there count against): files, trash and what history alone keeps
        (design invariant 19)."""
        return self._owner().charged_bytes

    def get_available_bytes(self) -> int | None:
        available = self._owner().available_bytes
        return self.provider.free_bytes() if available is None else available

    def _owner(self) -> UserRecord:
        user = self.provider.actor(self.environ).user
        if self.node.owner_id == user.id:
            return user
        with dav_error_context():
            owner = self.provider.ops.catalog.users.by_id(self.node.owner_id)
        if owner is None:
            raise DAVError(HTTP_NOT_FOUND, "owner gone")
        return owner
