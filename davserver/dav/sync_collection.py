"""The RFC 6578 `sync-collection` REPORT on every collection of an account's WebDAV
view (`/dav/`, `Shared/...` included), served from the change feed
(`providers.operations.feed`); WsgiDAV has no REPORT. See docs/api.md,
"WebDAV collection synchronization".

Request: `<D:sync-collection>` with `<D:sync-token>` (empty: an initial sync),
`<D:sync-level>` (`1`: direct members; `infinite`: everything below; absent: 1, as
clients written before the RFC send), an optional `<D:limit><D:nresults>`, and
`<D:prop>` (absent or `<D:allprop/>`: allprop). Depth must be 0 (or absent).

Answer: 207 with one `<D:response>` per member: 200 with the properties asked for
as the member is now (rendered as PROPFIND renders them, `davserver.dav.propfind`),
or 404 for one removed; then `<D:sync-token>` (`providers.dav.sync`). Which members
is `davserver.dav.sync_members`'. An initial sync takes the feed's position first,
then lists the tree: what changes meanwhile is reported again by the next sync.
With a limit, a truncated answer ends with a 507 response for the collection and a
token to continue (RFC 6578 3.6); an incremental sync stops between feed entries, an
initial one after a member (its token carries where). A limit too small for the
next entry's members is 507 `DAV:number-of-matches-within-limits`.

Errors: a token that is not this server's, another user's, another collection's,
compacted away (`change_retention`), or that cannot be brought up to date
(`TokenInvalid`) is 403 `DAV:valid-sync-token`: the client syncs again from empty.
Another report, a file, or a share link's mount: 403 `DAV:supported-report`. A
collection the caller does not see: 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_NOT_FOUND,
    DAVError,
    DAVErrorCondition,
)

from davserver.dav.propfind import HREF_SAFE, resource_response
from davserver.dav.sync_members import (
    ChangeSet,
    LiveTree,
    TokenInvalid,
    listing,
    names_below,
    parent_of,
)
from davserver.http.environ import StartResponse
from providers.dav import LINK, DavProvider
from providers.dav.errors import dav_error
from providers.dav.sync import SYNC_COLLECTION, parse_token, token_uri
from providers.errors import BadCursor, CursorExpired, Forbidden, StorageError
from providers.operations.feed import MAX_LIMIT
from providers.operations.feed_listing import Names

VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"
SUPPORTED_REPORT = "{DAV:}supported-report"
WITHIN_LIMITS = "{DAV:}number-of-matches-within-limits"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'


@dataclass(frozen=True)
class SyncRequest:
    """A parsed sync-collection body: `token` (None: initial), the level, `limit`
    (None: none) and the property names (`[]`: allprop)."""

    token: str | None
    infinite: bool
    limit: int | None
    names: list[str]


def parse_request(body: bytes) -> SyncRequest:
    """The sync-collection request in `body`; 400 for a malformed one, 403
    `DAV:supported-report` for another report."""
    try:
        root = etree.fromstring(body, _PARSER) if body.strip() else None
    except etree.XMLSyntaxError as e:
        raise DAVError(HTTP_BAD_REQUEST, "the REPORT body is not XML") from e
    if root is None:
        raise DAVError(HTTP_BAD_REQUEST, "a REPORT needs a body")
    if root.tag != SYNC_COLLECTION:
        raise unsupported(f"REPORT {etree.QName(root).localname} is not supported")
    token, infinite, limit, names = None, False, None, []
    for child in root:
        if child.tag == "{DAV:}sync-token":
            token = (child.text or "").strip() or None
        elif child.tag == "{DAV:}sync-level":
            infinite = _level(child.text)
        elif child.tag == "{DAV:}limit":
            limit = _limit(child)
        elif child.tag == "{DAV:}prop":
            names = [str(prop.tag) for prop in child if isinstance(prop.tag, str)]
            if not names:
                raise DAVError(HTTP_BAD_REQUEST, "DAV:prop names no property")
    return SyncRequest(token, infinite, limit, names)


def _level(text: str | None) -> bool:
    """Whether a `DAV:sync-level` says `infinite`; 400 unless it is that or 1."""
    level = (text or "").strip()
    if level not in ("1", "infinite"):
        raise DAVError(HTTP_BAD_REQUEST, "DAV:sync-level must be 1 or infinite")
    return level == "infinite"


def _limit(element: Any) -> int:
    """The `DAV:nresults` of a `DAV:limit`; 400 unless a positive number."""
    text = (element.findtext("{DAV:}nresults") or "").strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise DAVError(HTTP_BAD_REQUEST, "DAV:nresults must be a positive number")
    return int(text)


def unsupported(reason: str) -> DAVError:
    """403 with the `DAV:supported-report` precondition (RFC 3253 3.6)."""
    return DAVError(HTTP_FORBIDDEN, reason, err_condition=DAVErrorCondition(SUPPORTED_REPORT))


def invalid_token(reason: str) -> DAVError:
    """403 with the `DAV:valid-sync-token` precondition (RFC 6578 3.2)."""
    return DAVError(HTTP_FORBIDDEN, reason, err_condition=DAVErrorCondition(VALID_SYNC_TOKEN))


def removed_response(href: str) -> str:
    """The `<D:response>` of a member removed since the token."""
    status = "<D:status>HTTP/1.1 404 Not Found</D:status>"
    return f"<D:response><D:href>{href}</D:href>{status}</D:response>"


def multistatus(responses: list[str], token: str, truncated: str | None) -> bytes:
    """The 207 body: `responses`, then (with `truncated`, the collection's href) the
    507 response saying more is left (RFC 6578 3.6), then the new token."""
    more = ""
    if truncated is not None:
        more = (
            f"<D:response><D:href>{truncated}</D:href>"
            "<D:status>HTTP/1.1 507 Insufficient Storage</D:status>"
            "<D:error><D:number-of-matches-within-limits/></D:error></D:response>"
        )
    sync_token = f"<D:sync-token>{escape(token, quote=False)}</D:sync-token>"
    return f"{_HEAD}{''.join(responses)}{more}{sync_token}</D:multistatus>".encode()


def report(provider: DavProvider, environ: dict[str, Any], start_response: StartResponse) -> Any:
    """Answer a REPORT (see the module docstring)."""
    collection = provider.get_resource_inst(environ["PATH_INFO"], environ)
    if collection is None:
        raise DAVError(HTTP_NOT_FOUND, "nothing there")
    request = parse_request(environ["wsgi.input"].read())
    if environ.get(LINK) is not None:
        raise unsupported("sync-collection is for accounts, not share links")
    if not collection.is_collection:
        raise unsupported("only a collection can be synchronized")
    if environ.get("HTTP_DEPTH", "0") != "0":
        raise DAVError(HTTP_BAD_REQUEST, "the Depth of a sync-collection REPORT must be 0")
    body = _Sync(provider, environ, collection, request).answer()
    start_response(
        "207 Multi-Status",
        [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Date", util.get_rfc1123_time()),
        ],
    )
    return [body]


@contextmanager
def _token_errors() -> Iterator[None]:
    """A token the feed refuses, or that cannot be brought up to date, is
    `DAV:valid-sync-token`; other engine errors are answered as usual."""
    try:
        yield
    except (BadCursor, Forbidden, CursorExpired, TokenInvalid) as e:
        raise invalid_token(f"the sync-token is not valid here: {e}") from e
    except StorageError as e:
        raise dav_error(e) from e


class _Sync:
    """One sync-collection answer for `collection` (module docstring)."""

    def __init__(
        self, provider: DavProvider, environ: dict[str, Any], collection: Any, request: SyncRequest
    ) -> None:
        self._feed = provider.ops.feed
        self._actor = provider.actor(environ)
        self._request = request
        self._root: str = collection.path.rstrip("/") or "/"
        self._base: str = collection.get_href().rstrip("/") + "/"
        self._tree = LiveTree(provider, environ)

    def answer(self) -> bytes:
        """The 207 body: a listing for an empty token or one made mid-listing, the
        changes since the token otherwise."""
        if self._request.token is None:
            with _token_errors():
                cursor = self._feed.latest(self._actor, self._root)
            return self._listing(cursor, None)
        try:
            cursor, after = parse_token(self._request.token)
        except ValueError as e:
            raise invalid_token(str(e)) from e
        if after is None:
            return self._changes(cursor)
        with _token_errors():
            self._feed.read(self._actor, cursor, 1, self._root)  # the feed checks it
        return self._listing(cursor, after)

    def _listing(self, cursor: str, after: Names | None) -> bytes:
        """The members after `after`, as many as the limit allows; the token then
        says where the listing stopped, or, once it is whole, is `cursor`."""
        request = self._request
        found, more = listing(
            self._tree, self._root, infinite=request.infinite, after=after, limit=request.limit
        )
        responses = [self._present(path, member) for path, member in found]
        if not more:
            return multistatus(responses, token_uri(cursor), None)
        last = names_below(found[-1][0], self._root) if found else after
        return multistatus(responses, token_uri(cursor, last), self._base)

    def _changes(self, cursor: str) -> bytes:
        """The members the feed's entries after `cursor` touch, as they are now."""
        changes = ChangeSet(self._tree, self._root, infinite=self._request.infinite)
        with _token_errors():
            position, truncated = self._read(changes, cursor)
            changes.check()
        responses: list[str] = []
        gone: set[str] = set()
        for path, is_dir in changes.ordered():
            found = self._tree.get(path)
            if found is not None:
                responses.append(self._present(path, found))
                continue
            if parent_of(path) not in gone:  # a client drops what is below a 404 itself
                responses.append(removed_response(self._href(path, is_dir)))
            gone.add(path)
        return multistatus(responses, token_uri(position), self._base if truncated else None)

    def _read(self, changes: ChangeSet, cursor: str) -> tuple[str, bool]:
        """Feed `changes` the entries after `cursor` until the end, or until the next
        entry's members would pass the limit: (the cursor to go on from, whether it
        stopped short). 507 if not even the first entry fits."""
        limit, position, taken = self._request.limit, cursor, 0
        while True:
            page = self._feed.read(self._actor, position, MAX_LIMIT, self._root)
            for entry in page.entries:
                touched = changes.touched(entry)
                if limit is not None and len(changes.members) + len(touched) > limit:
                    if not taken:
                        raise DAVError(
                            HTTP_INSUFFICIENT_STORAGE,
                            f"the next change touches {len(touched)} members",
                            err_condition=DAVErrorCondition(WITHIN_LIMITS),
                        )
                    return position, True
                changes.add(entry, touched)
                position, taken = entry.cursor, taken + 1
            if not page.has_more:
                return page.cursor, False
            position = page.cursor

    def _href(self, path: str, is_dir: bool) -> str:
        """The href of `path`, quoted as PROPFIND quotes them (a folder's ends in /)."""
        names = names_below(path, self._root) or ()
        tail = quote("/".join(names), safe=HREF_SAFE)
        return self._base + tail + ("/" if is_dir else "")

    def _present(self, path: str, member: Any) -> str:
        """A member's response with the properties asked for; through WsgiDAV's own
        renderer when a value is not plain text (as PROPFIND falls back)."""
        href = self._href(path, member.is_collection)
        names = self._request.names
        rendered = resource_response(member, href, names, None)
        if rendered is not None:
            return rendered
        element = etree.Element("{DAV:}multistatus", nsmap={"D": "DAV:"})
        mode = "named" if names else "allprop"
        util.add_property_response(element, href, member.get_properties(mode, name_list=names))
        return str(etree.tostring(element[0], encoding="unicode"))
