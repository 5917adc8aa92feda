"""RFC 6578 (collection synchronization) on collections: the `DAV:sync-token` and
`DAV:supported-report-set` live properties, and the sync-token's URI form.

A sync-token is a URI wrapping a change-feed cursor (`providers.operations.feed`)
made for the collection's path in the account's view: `http://davserver/ns/sync/
<cursor>`. A token handed out in the middle of an initial listing (a `DAV:limit`
truncated it) adds where the listing stops: `?after=<path below the collection>`.
The cursor is signed and bound to its user and path, so a token of another user or
another collection is refused by the feed, as a tampered one is.

Both properties are live and protected, and neither is in allprop (RFC 6578 section
4: the token is returned only when asked for by name); a share link's mount has no
feed, so there they do not exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from lxml import etree
from wsgidav.dav_error import HTTP_NOT_FOUND, DAVError

from providers.dav.errors import dav_error_context
from providers.dav.host import ResourceHost
from providers.operations import Located, path_of

SYNC_TOKEN = "{DAV:}sync-token"
SUPPORTED_REPORT_SET = "{DAV:}supported-report-set"
SYNC_COLLECTION = "{DAV:}sync-collection"
SYNC_LIVE = (SYNC_TOKEN, SUPPORTED_REPORT_SET)
TOKEN_PREFIX = "http://davserver/ns/sync/"
_AFTER = "?after="


def token_uri(cursor: str, after: tuple[str, ...] | None = None) -> str:
    """The sync-token for a feed cursor (and, mid-listing, the last member listed,
    as names below the collection)."""
    if after is None:
        return TOKEN_PREFIX + cursor
    return TOKEN_PREFIX + cursor + _AFTER + quote("/".join(after), safe="/")


def parse_token(uri: str) -> tuple[str, tuple[str, ...] | None]:
    """(cursor, names of the last member listed or None) of a token `token_uri` made;
    `ValueError` for anything else (the feed then checks the cursor itself)."""
    if not uri.startswith(TOKEN_PREFIX):
        raise ValueError("not a sync-token of this server")
    cursor, marker, after = uri[len(TOKEN_PREFIX) :].partition(_AFTER)
    if not cursor or "?" in cursor:
        raise ValueError("not a sync-token of this server")
    if not marker:
        return cursor, None
    names = tuple(name for name in unquote(after).split("/") if name)
    if not names:
        raise ValueError("not a sync-token of this server")
    return cursor, names


def sync_property_names(
    host: ResourceHost, environ: dict[str, Any], *, is_allprop: bool
) -> list[str]:
    """The RFC 6578 properties a collection lists: none for allprop or a link."""
    if is_allprop or host.actor(environ).link is not None:
        return []
    return list(SYNC_LIVE)


def sync_property_value(
    host: ResourceHost, environ: dict[str, Any], located: Located, name: str
) -> Any:
    """The value of `SYNC_TOKEN` (the token of now for the collection's path) or
    `SUPPORTED_REPORT_SET` (sync-collection); 404 through a share link."""
    actor = host.actor(environ)
    if actor.link is not None:
        raise DAVError(HTTP_NOT_FOUND, "sync-collection is for accounts")
    if name == SUPPORTED_REPORT_SET:
        element = etree.Element(SUPPORTED_REPORT_SET, nsmap={"D": "DAV:"})
        report = etree.SubElement(
            etree.SubElement(element, "{DAV:}supported-report"), "{DAV:}report"
        )
        etree.SubElement(report, SYNC_COLLECTION)
        return element
    with dav_error_context():
        return token_uri(host.ops.feed.latest(actor, path_of(located.shown)))
