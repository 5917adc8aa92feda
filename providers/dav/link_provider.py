"""`LinkProvider`: one share link's node served as a WebDAV root (`/s/<token>/dav/`).

The link comes with each request, fresh from the catalog, in
`environ[LINK_ENVIRON]` (a `ShareLinkRecord`; the web layer has checked that it is
live and its password given). Paths resolve strictly below the link's node: there is
no way up, and no `Shared/`. Every resource gets the `Place` it has in its owner's
tree, with `Access.WRITE` for an `edit` link and `Access.READ` for the others, and the
root is `fixed` (it cannot be deleted, moved or renamed through the link). Locks are
therefore keyed exactly as for the owner and their grantees (`Place.lock_path`): a
lock taken through the link binds them, and theirs bind the link.

The "user" of a request is the owner of the link's node: quota reports are theirs
and what is written through the link is charged to them (as any write below their
folder is).
"""

from __future__ import annotations

from typing import Any

from wsgidav.dav_error import HTTP_NOT_FOUND, DAVError

from providers.access import LOCK_KEY_PREFIX, Access, Place
from providers.catalog import NodeRecord, ShareLinkRecord, UserRecord
from providers.dav.errors import dav_error_context
from providers.dav.node import path_of
from providers.dav.provider import HomeProvider
from providers.names import name_key

LINK_ENVIRON = "davserver.share_link"  # the request's live `ShareLinkRecord`
_OWNER_ENVIRON = "davserver.share_link_owner"


def request_link(environ: dict[str, Any]) -> ShareLinkRecord:
    """The link the request came through; 404 when there is none (a bug upstream)."""
    link = environ.get(LINK_ENVIRON)
    if not isinstance(link, ShareLinkRecord):
        raise DAVError(HTTP_NOT_FOUND, "no share link")
    return link


def link_root_names(link: ShareLinkRecord) -> tuple[str, ...]:
    """The names of the link's node in its owner's home (stored spellings)."""
    return tuple(name for name in link.path.split("/") if name)


class LinkProvider(HomeProvider):
    """Maps `/<path>` below a share link's node (see the module docstring).

    Rights are the resources' (`Place`): the provider is never `is_readonly`, so a
    write through a read-only link gets 403 from them, as for a read-only grantee,
    rather than WsgiDAV's 405.
    """

    def locate(
        self, names: list[str], environ: dict[str, Any]
    ) -> tuple[NodeRecord | None, list[str], Place] | None:
        """(node, stored names below the link's node, place), or None if nothing is
        there. The place is the node's in its owner's tree, with the link's rights."""
        link = request_link(environ)
        found = self.catalog.tree.resolve_path(link.node.id, names)
        if found is None:
            return None
        node, stored = found
        access = Access.WRITE if link.perm == "edit" else Access.READ
        owner_names = (*link_root_names(link), *stored)
        return node, stored, Place(node.owner_id, owner_names, access, fixed=not stored)

    def _path_of_lock_key(self, key: str, environ: dict[str, Any]) -> str:
        """The link path of a lock key (`Place.lock_path`); a lock rooted above the
        link's node (or elsewhere) shows as the link's root."""
        link = request_link(environ)
        owner, _, rest = key[len(LOCK_KEY_PREFIX) :].partition("/")
        names = [n for n in rest.split("/") if n]
        root = [name_key(n) for n in link_root_names(link)]
        inside = [name_key(n) for n in names[: len(root)]] == root
        if owner == str(link.node.owner_id) and inside:
            return path_of(names[len(root) :])
        return "/"

    def user(self, environ: dict[str, Any]) -> UserRecord:
        """The owner of the link's node (looked up once per request)."""
        owner = environ.get(_OWNER_ENVIRON)
        if owner is None:
            link = request_link(environ)
            with dav_error_context():
                owner = self.catalog.users.by_id(link.node.owner_id)
            if owner is None:
                raise DAVError(HTTP_NOT_FOUND, "the link's owner is gone")
            environ[_OWNER_ENVIRON] = owner
        assert isinstance(owner, UserRecord)
        return owner
