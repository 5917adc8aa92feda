"""The virtual `Shared/` collection at the root of every home (see `providers.operations.access`).

It lists what others granted the user, one member per `Entry`, and holds nothing of
its own: every write to it (a new member, a property, a delete, a move, a copy of it,
a lock) is refused with 403. The members are the owners' real nodes with the granted
rights; the provider serves them.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, _DAVResource

from providers.dav.errors import dav_error_context
from providers.dav.host import ResourceHost
from providers.dav.oc_props import OC_EMPTY, OC_ID, OC_PERMISSIONS, OC_RIGHTS, OC_SIZE
from providers.dav.sync import SYNC_LIVE, sync_property_names, sync_property_value
from providers.operations import Located, Place, lock_url
from providers.operations.base import SHARED_READ_ONLY


class SharedFolder(DAVCollection):
    """`Shared/`: members are the user's received entries (see the module docstring)."""

    provider: ResourceHost

    def __init__(
        self, path: str, environ: dict[str, Any], provider: ResourceHost, located: Located
    ) -> None:
        super().__init__(path, environ)
        self.provider = provider
        self.located = located
        self._created = time.time()

    def _entries(self) -> list[Any]:
        user = self.provider.actor(self.environ).user
        return list(self.provider.ops.shares.entries(user.id).values())

    def get_member_names(self) -> list[str]:
        return [entry.name for entry in self._entries()]

    def get_member(self, name: str) -> _DAVResource | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def get_member_list(self) -> list[_DAVResource]:
        """The entries, each with its place (no lookup: `SharedSpace` has them)."""
        user_id = self.provider.actor(self.environ).user.id
        shares = self.provider.ops.shares
        members = []
        for entry in self._entries():
            owner, names = entry.node.owner_id, entry.grant.owner_path
            place = Place(owner, names, shares.access_at(user_id, owner, names), fixed=True)
            located = Located(entry.node, (*self.located.shown, entry.name), place)
            path = util.join_uri(self.path, entry.name)
            members.append(self.provider.resource(path, located, self.environ))
        return members

    def get_creation_date(self) -> float:
        return self._created

    def get_last_modified(self) -> float:
        return float(int(max((e.node.mtime for e in self._entries()), default=self._created)))

    def get_display_name(self) -> str:
        return self.name

    def get_etag(self) -> str:
        """Moves when an entry comes, goes or is renamed, or anything below one changes
        (its node's `rev`, read fresh: the entries are cached), as a folder's does
        (design invariant 16): the sync clients only descend where ETags moved."""
        tree = self.provider.ops.catalog.tree
        parts = []
        for entry in self._entries():
            with dav_error_context():
                node = tree.get(entry.node.id)
            parts.append(f"{entry.name}/{entry.node.id}/{node.rev if node else 0}")
        digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
        return f"shared-{digest}"

    def support_etag(self) -> bool:
        return True

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)
        names += [] if is_allprop else [OC_ID, *OC_RIGHTS]
        return names + sync_property_names(self.provider, self.environ, is_allprop=is_allprop)

    def get_property_value(self, name: str) -> Any:
        """RFC 6578's properties (`providers.dav.sync`) besides WsgiDAV's, and the
        ownCloud ones (`providers.dav.oc_props`): an `oc:id` of its own (no node
        has it), read-only permissions (`G`: nothing can be added, deleted or
        renamed here), the size of what it lists."""
        if name in SYNC_LIVE:
            return sync_property_value(self.provider, self.environ, self.located, name)
        if name == OC_ID:
            return f"shared{self.provider.actor(self.environ).user.id}ocdav"
        if name == OC_PERMISSIONS:
            return "G"
        if name == OC_SIZE:
            ids = [entry.node.id for entry in self._entries()]
            with dav_error_context():
                return str(sum(self.provider.ops.catalog.tree.folder_bytes(ids).values()))
        if name in OC_EMPTY:
            return ""
        return super().get_property_value(name)

    def get_ref_url(self) -> str:
        return lock_url(self.located.place, is_dir=True)

    def get_used_bytes(self) -> int:
        return self.provider.actor(self.environ).user.charged_bytes

    def get_available_bytes(self) -> int | None:
        return None

    def refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise DAVError(HTTP_FORBIDDEN, SHARED_READ_ONLY)

    require_write = refuse
    create_empty_resource = refuse
    create_collection = refuse
    handle_delete = refuse
    handle_copy = refuse
    handle_move = refuse
    set_property_value = refuse
    set_last_modified = refuse
