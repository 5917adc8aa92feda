"""`DavProvider`: WsgiDAV's provider over the operations layer, for every WebDAV mount.

A request is served in its actor's view (`providers.operations.views`): an account's
home and `Shared/` at `/dav/`, or a share link's folder at `/s/<token>/dav/`. The door
in front says which: it leaves the link in `environ[LINK]`; otherwise the account
that logged in is in `environ[USER]` (the domain controller puts it there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, cast

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVProvider, _DAVResource

from providers.catalog import ShareLinkRecord, UserRecord
from providers.dav.errors import dav_error_context, dav_errors
from providers.dav.files import FileResource
from providers.dav.folders import FolderResource
from providers.dav.shared import SharedFolder
from providers.names import split_path
from providers.operations import Actor, Located, Operations, View, path_of
from providers.operations.access import LOCK_KEY_PREFIX

USER = "davserver.user"  # environ: the account the request logged in as (`UserRecord`)
LINK = "davserver.share_link"  # environ: the share link of a link mount (`ShareLinkRecord`)
_LINK_OWNER = "davserver.share_link_owner"  # environ: the owner of that link's node
_KEPT_LOOKUPS = "davserver.kept_lookups"  # environ: {path: resource} (`lookups_kept`)


class DavProvider(DAVProvider):
    """Maps request paths to resources of the request's view (module docstring).

    `free_bytes` reports the space left in the blob store (None if unknown); it is the
    quota-available answer for owners without a quota.
    """

    def __init__(self, ops: Operations, free_bytes: Callable[[], int | None]) -> None:
        super().__init__()
        self.ops = ops
        self._free_bytes = free_bytes

    def is_readonly(self) -> bool:
        """Never: rights are per place, and a refused write is answered 403 by the
        operations layer (WsgiDAV would answer a read-only provider with 405)."""
        return False

    def free_bytes(self) -> int | None:
        return self._free_bytes()

    def actor(self, environ: dict[str, Any]) -> Actor:
        link = environ.get(LINK)
        tokens = submitted_tokens(environ)
        if isinstance(link, ShareLinkRecord):
            return Actor(self._link_owner(environ, link), link, tokens)
        return Actor(self.user(environ), None, tokens)

    def view(self, environ: dict[str, Any]) -> View:
        link = environ.get(LINK)
        if isinstance(link, ShareLinkRecord):
            return self.ops.view(Actor(self._link_owner(environ, link), link))
        return self.ops.view(Actor(self.user(environ)))

    def user(self, environ: dict[str, Any]) -> UserRecord:
        """The account the request logged in as (looked up once per request)."""
        return request_user(self.ops, environ)

    def _link_owner(self, environ: dict[str, Any], link: ShareLinkRecord) -> UserRecord:
        """The owner of the link's node (looked up once per request): what the link
        writes is charged to them, and theirs are the quota reports."""
        owner = environ.get(_LINK_OWNER)
        if not isinstance(owner, UserRecord):
            with dav_error_context():
                owner = self.ops.catalog.users.by_id(link.node.owner_id)
            if owner is None:
                raise DAVError(HTTP_NOT_FOUND, "the link's owner is gone")
            environ[_LINK_OWNER] = owner
        return owner

    @contextmanager
    def lookups_kept(self, environ: dict[str, Any]) -> Iterator[None]:
        """Within the block, `get_resource_inst` answers each path of this request once
        and then from memory. Only for work that changes the tree at its very end (a
        PUT's commit): a lookup after a change would see the tree before it. Within an
        outer block of the same request, the outer block's lookups are used and kept."""
        if _KEPT_LOOKUPS in environ:
            yield
            return
        environ[_KEPT_LOOKUPS] = {}
        try:
            yield
        finally:
            del environ[_KEPT_LOOKUPS]

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        """The resource at `path`, named by its stored spelling whatever spelling the
        request used (names match normalised): hrefs derive from it. A lock key
        (`Place.lock_path`, which WsgiDAV passes to show a lock's root) resolves to
        what the viewer sees of it."""
        kept = environ.get(_KEPT_LOOKUPS)
        if kept is None:
            return self._resource_at(path, environ)
        if path not in kept:
            kept[path] = self._resource_at(path, environ)
        resource: _DAVResource | None = kept[path]
        return resource

    @dav_errors
    def _resource_at(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        view = self.view(environ)
        if path.startswith(LOCK_KEY_PREFIX):
            path = view.path_of_lock(path)
        located = view.locate(split_path(path))
        if located is None:
            return None
        shown = path_of(located.shown, trailing_slash=path.endswith("/"))
        return self.resource(shown, located, environ)

    def resource(
        self,
        path: str,
        located: Located,
        environ: dict[str, Any],
        props: dict[str, str] | None = None,
    ) -> _DAVResource:
        """The resource for a located node (None: the virtual `Shared/`)."""
        if located.node is None:
            return SharedFolder(path, environ, self, located)
        kind = FolderResource if located.node.is_dir else FileResource
        return kind(path, environ, self, located, props)


def lookups_kept(provider: Any, environ: dict[str, Any]) -> AbstractContextManager[None]:
    """`provider.lookups_kept(environ)` for a request that changes nothing in the tree,
    or a block that keeps nothing for a provider without it (the snapshots')."""
    keep = getattr(provider, "lookups_kept", None)
    return nullcontext() if keep is None else cast(AbstractContextManager[None], keep(environ))


def submitted_tokens(environ: dict[str, Any]) -> tuple[str, ...]:
    """The lock tokens the request's `If:` header submits."""
    if "wsgidav.conditions.if" not in environ:
        util.parse_if_header_dict(environ)  # fills wsgidav.ifLockTokenList
    return tuple(environ.get("wsgidav.ifLockTokenList") or ())


def request_user(ops: Operations, environ: dict[str, Any]) -> UserRecord:
    """The account the request logged in as, looked up once per request (kept in
    `environ`); 403 if it is gone."""
    user = environ.get(USER)
    if not isinstance(user, UserRecord):
        name = environ.get("wsgidav.auth.user_name")
        with dav_error_context():
            user = ops.catalog.users.get(name) if name else None
        if user is None:
            raise DAVError(HTTP_FORBIDDEN, "no such user")
        environ[USER] = user
    return user
