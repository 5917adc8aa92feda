"""The virtual `Shared/` collection at the root of every home (see `providers.operations.access`).

It lists what others granted the user, one member per `Entry`, and holds nothing of
its own: every write to it (a new member, a property, a delete, a move, a copy of it,
a lock) is refused with 403. The members are the owners' real nodes with the granted
rights; the provider serves them.
"""

from __future__ import annotations

import time
from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, _DAVResource

from providers.dav.host import ResourceHost
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

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names: list[str] = super().get_property_names(is_allprop=is_allprop)
        return names + sync_property_names(self.provider, self.environ, is_allprop=is_allprop)

    def get_property_value(self, name: str) -> Any:
        """RFC 6578's properties (`providers.dav.sync`) besides WsgiDAV's."""
        if name in SYNC_LIVE:
            return sync_property_value(self.provider, self.environ, self.located, name)
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
