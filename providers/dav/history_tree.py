"""What the Nextcloud-form versions and trash trees share (`providers.dav.versions`,
`providers.dav.trashbin`; docs/nextcloud.md, "Versions and trash").

Both are WsgiDAV providers mounted at `/remote.php/dav/<kind>` (`versions`,
`trashbin`), for the account that logged in, laid out as Nextcloud lays them out:

- `/` lists one member, the caller's name; `/<user>/` holds the kind's collection
  (`versions` or `trash`) and `restore`; another user's name is not found (404);
- `/<user>/restore/` is empty: a MOVE into it (any name, e.g. `restore/target`) is how
  a client restores a version or a trash item (`HistoryProvider.require_restore`).

Everything else is read-only: every change goes through the operations layer (design
invariant 11), and every refused one is 403 (`Refusing`). There is no lock manager
here: the operations layer checks the locks of what a restore changes (invariant 12).
"""

from __future__ import annotations

from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVProvider, _DAVResource

from providers.catalog import UserRecord
from providers.dav.errors import dav_errors
from providers.dav.provider import request_user, submitted_tokens
from providers.names import split_path
from providers.operations import Actor, Operations

NC_NS = "http://nextcloud.org/ns"
RESTORE = "restore"
NOT_HERE = "not possible here"


class HistoryProvider(DAVProvider):
    """See the module docstring; a subclass names its `collection` and answers what
    lies below it (`below`)."""

    collection = ""

    def __init__(self, ops: Operations) -> None:
        super().__init__()
        self.ops = ops

    def is_readonly(self) -> bool:
        """Never as WsgiDAV sees it: MOVE restores and DELETE purges (403 elsewhere)."""
        return False

    def user(self, environ: dict[str, Any]) -> UserRecord:
        """The account the request logged in as (looked up once per request)."""
        return request_user(self.ops, environ)

    def actor(self, environ: dict[str, Any]) -> Actor:
        """The caller, with the lock tokens its `If:` header submits."""
        return Actor(self.user(environ), None, submitted_tokens(environ))

    @dav_errors
    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        names = split_path(path)
        user = self.user(environ)
        if not names:
            return Fixed(path, environ, self, [user.name])
        if names[0] != user.name:
            return None
        if len(names) == 1:
            return Fixed(path, environ, self, [self.collection, RESTORE])
        if names[1] == RESTORE:
            return Fixed(path, environ, self, []) if len(names) == 2 else None
        if names[1] != self.collection:
            return None
        return self.below(path, environ, names[2:])

    def below(self, path: str, environ: dict[str, Any], names: list[str]) -> _DAVResource | None:
        """The resource at `names` below `/<user>/<collection>/` (None: nothing)."""
        raise NotImplementedError

    def require_restore(self, environ: dict[str, Any], dest_path: str) -> None:
        """403 unless a MOVE's destination is a name in the caller's `restore/`."""
        names = split_path(dest_path)
        if len(names) != 3 or names[:2] != [self.user(environ).name, RESTORE]:
            raise DAVError(HTTP_FORBIDDEN, f"move it into /{RESTORE}/ to restore it")

    def member(self, collection: _DAVResource, name: str) -> _DAVResource | None:
        """A member of `collection` by name, found as any path is."""
        return self.get_resource_inst(util.join_uri(collection.path, name), collection.environ)


class Refusing(_DAVResource):
    """What these trees refuse unless a resource says otherwise (403)."""

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_FORBIDDEN, NOT_HERE)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN, NOT_HERE)

    def handle_move(self, dest_path: str) -> bool:
        raise DAVError(HTTP_FORBIDDEN, NOT_HERE)

    def delete(self) -> None:
        raise DAVError(HTTP_FORBIDDEN, NOT_HERE)

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        raise DAVError(HTTP_FORBIDDEN, NOT_HERE)


class Fixed(Refusing, DAVCollection):
    """A collection of the layout (`/`, `/<user>/`, `restore/`...): its members' names."""

    history: HistoryProvider

    def __init__(
        self, path: str, environ: dict[str, Any], provider: HistoryProvider, names: list[str]
    ) -> None:
        super().__init__(path, environ)
        self.history = provider
        self._names = names

    def get_member_names(self) -> list[str]:
        return list(self._names)

    def get_member(self, name: str) -> _DAVResource | None:
        return self.history.member(self, name) if name in self._names else None


def nc_name(local: str) -> str:
    """A property of Nextcloud's namespace, in Clark notation."""
    return f"{{{NC_NS}}}{local}"
