"""`/s/<token>/dav/`: a share link mounted as WebDAV, with exactly the link's rights.

Registered as the `dav` action of `ShareSite`, which has already answered 404 for a
dead link (tampered, unknown, revoked, expired or used up) before `LinkDav` runs.

- Rights: `view` and `download` links are read-only (GET, HEAD, PROPFIND, OPTIONS;
  every write answers 403); an `edit` link reads and writes inside the shared folder
  (PUT, MKCOL, DELETE, COPY and MOVE within the link, PROPPATCH, LOCK). The shared
  node itself cannot be deleted, moved or renamed (403). `upload` links (drop boxes,
  which list nothing) have no WebDAV: 404.
- Password links take HTTP Basic with any user name and the link's password (no
  Digest: the link has no Digest secret). Failures count against the link and the
  client address in the login limiter of /dav/ (429 with Retry-After when blocked).
  Links without a password need no credentials; credentials sent anyway are ignored.
- Downloads: a GET of a file counts one download of the link (`count_download`) when
  its answer carries the file's first byte (no Range, or ranges including byte 0, as
  `davserver.http.content` decides for every door). Fetching a file whole therefore
  costs one download however it is split into ranges, and a link whose downloads are
  used up dies here as on the web pages. HEAD, PROPFIND and GETs of later parts only
  are free.
- The WsgiDAV app is configured as /dav/'s (`davserver.dav.app`), without logins (its
  folder pages list the link's folders), on a `DavProvider` serving the link's view
  (`environ[LINK]`: rooted at the link's node, with its rights) at `/s/<token>/dav`
  (so hrefs and COPY/MOVE destinations are the link's; a destination outside it
  answers 502). It shares the process's lock manager, so locks bind across the link
  and the owner's own mounts, and every write goes through the operations layer like
  any other door's. One app per token is kept (they are small and cheap to make).
- Every answer carries the share site's headers and `Content-Security-Policy:
  sandbox`, so a file served from a link can never script this origin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from davserver.auth import audit
from davserver.auth.login_gate import basic_credentials
from davserver.auth.passwords import VerifiedCache
from davserver.auth.ratelimit import LoginLimiter
from davserver.dav import app as dav_app
from davserver.http import content
from davserver.http.environ import LINK, StartResponse, WSGIApplication
from davserver.http.errors import with_request_id
from davserver.http.guards import RequestGuard
from davserver.links.files import representation
from davserver.links.signer import SHARE_PATH
from davserver.links.site import (
    BASE_HEADERS,
    Action,
    ShareRequest,
    guess_subjects,
    not_found,
    respond,
)
from providers.catalog import ShareLinkRecord
from providers.dav import DavProvider
from providers.errors import StorageError
from providers.operations import Operations, link_principal

log = logging.getLogger(__name__)
ACTION = "dav"
DAV_PERMS = frozenset({"view", "download", "edit"})
REALM = "davserver share link"
MAX_APPS = 256  # WsgiDAV apps kept, one per recently used token
DAV_HEADERS = [*BASE_HEADERS, ("Content-Security-Policy", "sandbox")]
PLAIN = "text/plain; charset=utf-8"
FIXED_ROOT = b"the shared item itself cannot be deleted, moved or renamed through its link\n"


def basic_password(header: str) -> str | None:
    """The password of a Basic Authorization header (any user name), or None when
    there is none or it is malformed."""
    credentials = basic_credentials(header)
    return credentials[1] if credentials else None


class LinkDav:
    """The `dav` action (see the module docstring)."""

    def __init__(
        self,
        ops: Operations,
        free_bytes: Callable[[], int | None],
        lock_manager: Any,
        limiter: LoginLimiter,
        options: LinkDavOptions,
    ) -> None:
        self._ops = ops
        self._free_bytes = free_bytes
        self._lock_manager = lock_manager
        self._limiter = limiter
        self._options = options
        self._verified = VerifiedCache()
        self._apps = dav_app.AppCache(self._build, MAX_APPS)

    def __call__(self, request: ShareRequest, start_response: StartResponse) -> Any:
        environ, link = request.environ, request.link
        prefix = f"{request.base}/{ACTION}"
        path = environ.get("PATH_INFO", "")
        if path != prefix and not path.startswith(prefix + "/"):
            return not_found(start_response)
        if link.password_hash:
            refused = self._authenticate(environ, link, start_response)
            if refused is not None:
                return refused
        try:
            allowed = self._count_download(request)
        except StorageError as e:
            log.warning("share link %s: %s", link.id, e)
            body = with_request_id("storage unavailable").encode() + b"\n"
            return respond(start_response, "503 Service Unavailable", body, PLAIN)
        if not allowed:
            return not_found(start_response)
        environ[LINK] = link
        environ["wsgidav.auth.user_name"] = link_principal(link.id)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix) :] or "/"
        if environ["PATH_INFO"] == "/" and request.method in ("DELETE", "MOVE"):
            # WsgiDAV fails on these at a root (500); the shared node is fixed anyway.
            return respond(start_response, "403 Forbidden", FIXED_ROOT, PLAIN)
        app = self._apps.get(request.token)
        return app(environ, _with_share_headers(start_response))

    def _authenticate(
        self, environ: dict[str, Any], link: ShareLinkRecord, start_response: StartResponse
    ) -> list[bytes] | None:
        """None when the request carries the link's password; else the answer: 401
        with the Basic challenge, or 429 while the link or the address is blocked."""
        password = basic_password(environ.get("HTTP_AUTHORIZATION", ""))
        if password is None:
            return _challenge(start_response)
        subjects = guess_subjects(link, environ.get("REMOTE_ADDR", ""))
        wait = self._limiter.blocked_for(subjects)
        if wait:
            audit.rate_limited(environ, f"link:{link.id}", wait, "link password")
            body = with_request_id("too many failed logins; try again later").encode() + b"\n"
            retry = [("Retry-After", str(wait))]
            return respond(start_response, "429 Too Many Requests", body, PLAIN, retry)
        if self._verified.verify(link_principal(link.id), link.password_hash, password):
            return None
        self._limiter.failed(subjects)
        audit.login_failed(environ, f"link:{link.id}", "link password")
        return _challenge(start_response)

    def _count_download(self, request: ShareRequest) -> bool:
        """Count a download for a GET of a file that asks for its first byte (see the
        module docstring); False when the link has no download left."""
        environ = request.environ
        if environ.get("REQUEST_METHOD") != "GET":
            return True
        catalog = self._ops.catalog
        found = catalog.tree.resolve_path(request.link.node.id, request.names)
        if found is None or found[0].is_dir:
            return True
        answer = content.plan(environ, representation(found[0], self._ops.files))
        return not answer.sends_first_byte or catalog.links.count_download(request.link.id)

    def _build(self, token: str) -> WSGIApplication:
        """The WsgiDAV app mounted at `/s/<token>/dav` (`davserver.dav.app.build`,
        without logins), behind the request guard of /dav/."""
        provider = DavProvider(self._ops, self._free_bytes)
        mount = f"{SHARE_PATH}/{token}/{ACTION}"
        options = self._options
        app = dav_app.build(provider, self._lock_manager, mount, options.dav)
        return RequestGuard(app, max_xml_body=options.max_xml_body)


def _challenge(start_response: StartResponse) -> list[bytes]:
    challenge = [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')]
    body = b"this link needs its password\n"
    return respond(start_response, "401 Unauthorized", body, PLAIN, challenge)


def _with_share_headers(start_response: StartResponse) -> Callable[..., Any]:
    def wrapped(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        return start_response(status, [*headers, *DAV_HEADERS], *args)

    return wrapped


@dataclass(frozen=True)
class LinkDavOptions:
    """What the link mounts take from the settings."""

    dav: dav_app.DavOptions
    max_xml_body: int


def actions(
    ops: Operations,
    free_bytes: Callable[[], int | None],
    lock_manager: Any,
    limiter: LoginLimiter,
    options: LinkDavOptions,
) -> dict[str, Action]:
    """The `dav` action: links as WebDAV at `/s/<token>/dav/` (view, download, edit)."""
    handler = LinkDav(ops, free_bytes, lock_manager, limiter, options)
    return {ACTION: Action(handler, DAV_PERMS, resolve=False, own_password=True)}
