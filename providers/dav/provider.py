"""`HomeProvider`: maps request paths to the user's home and their `Shared/` entries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    DAVError,
)
from wsgidav.dav_provider import DAVProvider, _DAVResource

from providers.access import (
    LOCK_KEY_PREFIX,
    SHARED,
    SHARED_KEY,
    Place,
    SharedSpace,
    home_place,
)
from providers.catalog import Catalog, NodeRecord, UserRecord
from providers.dav.errors import dav_errors
from providers.dav.files import FileResource
from providers.dav.folders import FolderResource
from providers.dav.node import path_of
from providers.dav.shared import SharedFolder
from providers.filestore import FileStore
from providers.names import name_key, split_path

_KEPT_LOOKUPS = "davserver.kept_lookups"  # environ key: {path: resource} (`lookups_kept`)


class HomeProvider(DAVProvider):
    """Maps `/<path>` to the authenticated user's tree, and `/Shared/...` to what others
    granted them (`providers.access`).

    `free_bytes` reports the space left in the blob store (None if unknown); it is the
    quota-available answer for users without a quota.
    """

    def __init__(
        self, catalog: Catalog, files: FileStore, free_bytes: Callable[[], int | None]
    ) -> None:
        super().__init__()
        self.catalog = catalog
        self.files = files
        self.free_bytes = free_bytes
        self.shares = SharedSpace(catalog)

    def is_readonly(self) -> bool:
        return False

    @contextmanager
    def lookups_kept(self, environ: dict[str, Any]) -> Iterator[None]:
        """Within the block, `get_resource_inst` answers each path of this request once
        and then from memory. Only for work that changes the tree at its very end (a
        PUT's commit): a lookup after a change would see the tree before it."""
        environ[_KEPT_LOOKUPS] = {}
        try:
            yield
        finally:
            del environ[_KEPT_LOOKUPS]

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        """The resource at `path`, named by its stored spelling whatever spelling the
        request used (names match normalised): lock URLs and hrefs derive from it, so a
        lock taken through an NFD URL also guards writes through the NFC URL and can be
        released through either."""
        kept = environ.get(_KEPT_LOOKUPS)
        if kept is None:
            return self._resource_at(path, environ)
        if path not in kept:
            kept[path] = self._resource_at(path, environ)
        return kept[path]

    @dav_errors
    def _resource_at(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        if path.startswith(LOCK_KEY_PREFIX):
            path = self._path_of_lock_key(path, environ)
        found = self.locate(split_path(path), environ)
        if found is None:
            return None
        node, shown, place = found
        return self.resource(
            path_of(shown, trailing_slash=path.endswith("/")), node, environ, place
        )

    def locate(
        self, names: list[str], environ: dict[str, Any]
    ) -> tuple[NodeRecord | None, list[str], Place] | None:
        """(node, shown names, place) of `names` for the request's user, or None if they
        have nothing there; node is None for the virtual `Shared/` collection."""
        user = self.user(environ)
        if names and name_key(names[0]) == SHARED_KEY:
            return self.shares.locate(user.id, names[1:])
        found = self.catalog.tree.resolve_path(user.home_id, names)
        if found is None:
            return None
        node, stored = found
        return node, stored, home_place(user.id, stored)

    def _path_of_lock_key(self, key: str, environ: dict[str, Any]) -> str:
        """The user's path for a lock key (`Place.lock_path`): WsgiDAV maps a lock's
        root back to a resource to show it. A root the user cannot see (an owner's lock
        on a folder above what they were granted) shows as the nearest visible entry."""
        owner, _, rest = key[len(LOCK_KEY_PREFIX) :].partition("/")
        names = [n for n in rest.split("/") if n]
        user = self.user(environ)
        shown = self.shares.view_names(user.id, int(owner), names) if owner.isdigit() else []
        return path_of(shown or [SHARED])

    def user(self, environ: dict[str, Any]) -> UserRecord:
        """The request's user (looked up once per request)."""
        user = environ.get("davserver.user")
        if user is None:
            name = environ.get("wsgidav.auth.user_name")
            user = self.catalog.users.get(name) if name else None
            if user is None:
                raise DAVError(HTTP_FORBIDDEN, "no such user")
            environ["davserver.user"] = user
        return user

    def resource(
        self,
        path: str,
        node: NodeRecord | None,
        environ: dict[str, Any],
        place: Place,
        props: dict[str, str] | None = None,
    ) -> _DAVResource:
        """The resource for a located node (None: the virtual `Shared/`)."""
        if node is None:
            return SharedFolder(path, environ, self, place)
        kind = FolderResource if node.is_dir else FileResource
        return kind(path, environ, self, node, place, props)
