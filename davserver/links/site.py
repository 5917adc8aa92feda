"""Share links on the web: `/s/<token>/...`, for people without an account.

Every request goes through `ShareSite`: the token is verified (`davserver.links.signer`), its
row looked up and checked alive (`ShareLinkRecord.live`), the password cookie checked
for a password link, and the rest of the path resolved strictly inside the shared
node. Any failure on the way (a tampered, expired, revoked or unknown token, a path
that is not there, a name that is not allowed) gets the same 404 page: no oracle.

The rest of the URL is `<action>/<path inside the share>`:

    (nothing)       the shared folder's page (or the file's; an upload link: the drop page)
    browse/<path>   a folder listing or a file page          view, download, edit
    raw/<path>      a file inline, for previews               view, download, edit
    download/<path> a file as an attachment (counted)         download, edit
    zip/<path>      a folder as a streamed zip (counted)      download, edit
    unlock          POST: the link's password -> cookie       any
    upload/...      resumable uploads (TUS 1.0)               upload, edit
    edit            POST: rename, delete, new folder          edit
    dav/...         the share as WebDAV (Basic: the password) by the link's rights

Actions are a table (`ShareSite.actions`) of `Action(handler, perms)`, which the
modules that implement them provide (`pages`, `uploads`, `edit`, `dav`) and the
composition root puts together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote_to_bytes

from davserver.http.environ import StartResponse, WSGIEnvironment
from davserver.http.errors import HttpError, with_request_id
from davserver.http.guards import check_raw_path, raw_request_path
from davserver.links.signer import SHARE_PATH, LinkSigner
from davserver.logs import request_id
from davserver.web.render import PAGE_CSP, render
from providers.catalog import Catalog, NodeRecord, ShareLinkRecord
from providers.errors import InvalidName, NotFound, StorageError
from providers.names import split_path
from providers.operations import Actor, Operations

log = logging.getLogger(__name__)
ALL_PERMS = frozenset({"view", "download", "upload", "edit"})
SEE = frozenset({"view", "download", "edit"})
# Sent with every page and file of a share: user content must never be sniffed into
# something else, framed by another site, or leak the token in a Referer.
BASE_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "SAMEORIGIN"),
]


@dataclass
class ShareRequest:
    """One request to a live link.

    `base` is `/s/<token>` (links inside the share start there); `names` the path
    inside the share as stored (empty: the shared node itself) and `node` what is
    there, or None when nothing is (handlers that create things look at the parent).
    `unlocked` is False while the link's password is still needed (the site answers
    the password form then, except for the actions that check it themselves).
    """

    environ: dict[str, Any]
    link: ShareLinkRecord
    token: str
    base: str
    action: str
    names: list[str]
    node: NodeRecord | None
    unlocked: bool = True

    @property
    def secure(self) -> bool:
        return self.environ.get("wsgi.url_scheme") == "https"

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET"))


Handler = Callable[[ShareRequest, StartResponse], Iterable[bytes]]
PasswordPage = Callable[[ShareRequest, StartResponse, str], Iterable[bytes]]


@dataclass(frozen=True)
class Action:
    """A handler and the link permissions it serves (others get the 404 page)."""

    handler: Handler
    perms: frozenset[str]
    resolve: bool = True  # resolve the rest of the path to a node (False: raw names)
    own_password: bool = False  # checks the link's password itself (no form first)


def respond(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str = "text/html; charset=utf-8",
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """A complete answer with the share headers (`BASE_HEADERS`)."""
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *BASE_HEADERS,
            *(headers or []),
        ],
    )
    return [body] if status.split()[0] != "304" else []


def page(
    req: ShareRequest | None,
    start_response: StartResponse,
    status: str,
    template: str,
    headers: Sequence[tuple[str, str]] = (),
    **context: Any,
) -> list[bytes]:
    """A page from `template` (`davserver.web.render`) with the pages' CSP; HEAD gets
    its headers only."""
    csp = [("Content-Security-Policy", PAGE_CSP), *headers]
    if int(status[:3]) >= 400:
        context.setdefault("request_id", request_id())
    body = respond(start_response, status, render(template, **context), headers=csp)
    return [] if req is not None and req.method == "HEAD" else body


NOT_FOUND_PAGE = render(
    "message.html", title="Not found", text="This link does not exist or no longer works."
)


def not_found(start_response: StartResponse) -> list[bytes]:
    """The one answer for every dead end, always the same bytes (see the module
    docstring)."""
    csp = [("Content-Security-Policy", PAGE_CSP)]
    return respond(start_response, "404 Not Found", NOT_FOUND_PAGE, headers=csp)


def guess_subjects(link: ShareLinkRecord, address: str) -> list[tuple[str, str]]:
    """What a wrong link password counts against, through the password form and the
    link's WebDAV alike (one budget of guesses): the link itself (its own limiter kind,
    `link`, so no login to /dav/ can use up a link's budget) and the client address."""
    return [("link", str(link.id)), ("addr", address)]


def cookie_name(link_id: int) -> str:
    return f"davshare{link_id}"


class ShareSite:
    """The WSGI app under `/s/` (see the module docstring): `actions` by name, and the
    password form for a link whose password is still needed."""

    def __init__(
        self,
        catalog: Catalog,
        signer: LinkSigner,
        actions: dict[str, Action],
        password_page: PasswordPage,
    ) -> None:
        self.catalog = catalog
        self.signer = signer
        self.actions = actions
        self.password_page = password_page

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            request = self._request(environ)
        except (HttpError, InvalidName, LookupError):
            return not_found(start_response)
        except StorageError as e:
            log.warning("share link: %s", e)
            body = with_request_id("storage unavailable").encode()
            return respond(start_response, "503 Service Unavailable", body, "text/plain")
        if request is None:
            return not_found(start_response)
        if not request.unlocked:
            return self.password_page(request, start_response, "")
        return self.actions[request.action].handler(request, start_response)

    def _request(self, environ: dict[str, Any]) -> ShareRequest | None:
        """The request for a live link and a known action, or None (the 404 page)."""
        raw = raw_request_path(environ)
        check_raw_path(raw)
        parts = unquote_to_bytes(raw).decode("utf-8").split("/")
        # parts: ['', 's', token, action, *names]
        if len(parts) < 3 or parts[1] != SHARE_PATH.strip("/"):
            return None
        token = parts[2]
        action_name = parts[3] if len(parts) > 3 else ""
        link_id = self.signer.link_id(token)
        link = self.catalog.links.get(link_id) if link_id is not None else None
        if link is None or not link.live(time.time()):
            return None
        action = self.actions.get(action_name)
        if action is None or link.perm not in action.perms:
            return None
        names = split_path("/".join(parts[4:]))
        node: NodeRecord | None = link.node
        if action.resolve and names:
            found = self.catalog.tree.resolve_path(link.node.id, names)
            node, names = (found[0], found[1]) if found else (None, names)
        unlocked = not link.password_hash or action.own_password or self._unlocked(environ, link.id)
        base = f"{SHARE_PATH}/{token}"
        return ShareRequest(environ, link, token, base, action_name, names, node, unlocked)

    def _unlocked(self, environ: dict[str, Any], link_id: int) -> bool:
        cookies = SimpleCookie()
        try:
            cookies.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # a malformed Cookie header is just no cookie
            return False
        morsel = cookies.get(cookie_name(link_id))
        return morsel is not None and self.signer.unlocked(morsel.value, link_id)


def link_actor(ops: Operations, link: ShareLinkRecord) -> Actor:
    """The actor of requests through `link`: the link, writing as its node's owner;
    `NotFound` if the owner is gone."""
    owner = ops.catalog.users.by_id(link.node.owner_id)
    if owner is None:
        raise NotFound("the link's owner is gone")
    return Actor(owner, link)
