"""The virtual `Shared/` collection at the root of every home (see `providers.access`).

It lists what others granted the user, one member per `Entry`, and holds nothing of
its own: every write to it (a new member, a property, a delete, a move, a copy of it,
a lock) is refused with 403. The members are the owners' real nodes with the granted
rights; the provider serves them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, _DAVResource

from providers.access import Place

if TYPE_CHECKING:
    from providers.dav.provider import HomeProvider

READ_ONLY = "Shared/ only lists what others shared with you"


class SharedFolder(DAVCollection):
    """`Shared/`: members are the user's received entries (see the module docstring)."""

    def __init__(
        self, path: str, environ: dict[str, Any], provider: HomeProvider, place: Place
    ) -> None:
        super().__init__(path, environ)
        self.provider = provider
        self.place = place
        self._created = time.time()

    def _entries(self) -> list[Any]:
        user = self.provider.user(self.environ)
        return list(self.provider.shares.entries(user.id).values())

    def get_member_names(self) -> list[str]:
        return [entry.name for entry in self._entries()]

    def get_member(self, name: str) -> _DAVResource | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    def get_member_list(self) -> list[_DAVResource]:
        user_id = self.provider.user(self.environ).id
        members = []
        for entry in self._entries():
            owner, names = entry.node.owner_id, entry.grant.owner_path
            access = self.provider.shares.access_at(user_id, owner, names)
            place = Place(owner, names, access, fixed=True)
            path = util.join_uri(self.path, entry.name)
            members.append(self.provider.resource(path, entry.node, self.environ, place))
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

    def get_ref_url(self) -> str:
        return quote(self.provider.share_path + self.place.lock_path + "/")

    def get_used_bytes(self) -> int:
        return self.provider.user(self.environ).used_bytes

    def get_available_bytes(self) -> int | None:
        return None

    def refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise DAVError(HTTP_FORBIDDEN, READ_ONLY)

    require_write = refuse
    create_empty_resource = refuse
    create_collection = refuse
    handle_delete = refuse
    handle_copy = refuse
    handle_move = refuse
    set_property_value = refuse
    set_last_modified = refuse
