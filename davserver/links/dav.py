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
  it asks for the file's first byte (no Range, or a Range including byte 0). Fetching
  a file whole therefore costs one download however it is split into ranges, and a
  link whose downloads are used up dies here as on the web pages. HEAD, PROPFIND and
  GETs of later parts only are free.
- The WsgiDAV app is the one of /dav/ in all but the provider (`LinkProvider`, rooted
  at the link's node) and the mount path (`/s/<token>/dav`, so hrefs and COPY/MOVE
  destinations are the link's; a destination outside it answers 502). It shares the
  lock manager of /dav/, so locks bind across the link and the owner's own mounts.
  One app per token is kept (they are small and cheap to make).
- Every answer carries the share site's headers and `Content-Security-Policy:
  sandbox`, so a file served from a link can never script this origin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from wsgidav.error_printer import ErrorPrinter
from wsgidav.wsgidav_app import WsgiDAVApp

from davserver.auth.login_gate import basic_credentials
from davserver.auth.passwords import VerifiedCache
from davserver.auth.ratelimit import LoginLimiter
from davserver.dav.app import DavDispatcher, parse_ranges
from davserver.http.guards import RequestGuard
from davserver.links.site import (
    BASE_HEADERS,
    SHARE_PATH,
    Action,
    ShareRequest,
    ShareSite,
    guess_subjects,
    not_found,
    respond,
)
from davserver.settings import Settings
from providers.catalog import ShareLinkRecord
from providers.dav import HomeProvider
from providers.dav.link_provider import LINK_ENVIRON, LinkProvider
from providers.errors import StorageError

log = logging.getLogger(__name__)
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
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


def principal(link: ShareLinkRecord) -> str:
    """The lock principal of requests through `link` (no account can be named so)."""
    return f"\x00share-link:{link.id}"


class LinkDav:
    """The `dav` action (see the module docstring)."""

    def __init__(self, provider: HomeProvider, limiter: LoginLimiter, settings: Settings) -> None:
        self._provider = provider
        self._limiter = limiter
        self._settings = settings
        self._verified = VerifiedCache()
        self._apps: dict[str, WsgiApp] = {}
        self._lock = threading.Lock()

    def __call__(self, request: ShareRequest, start_response: Callable[..., Any]) -> Any:
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
            return respond(start_response, "503 Service Unavailable", b"try again later\n", PLAIN)
        if not allowed:
            return not_found(start_response)
        environ[LINK_ENVIRON] = link
        environ["wsgidav.auth.user_name"] = principal(link)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix) :] or "/"
        if environ["PATH_INFO"] == "/" and request.method in ("DELETE", "MOVE"):
            # WsgiDAV fails on these at a root (500); the shared node is fixed anyway.
            return respond(start_response, "403 Forbidden", FIXED_ROOT, PLAIN)
        app = self._app(request.token)
        return app(environ, _with_share_headers(start_response))

    def _authenticate(
        self, environ: dict[str, Any], link: ShareLinkRecord, start_response: Callable[..., Any]
    ) -> list[bytes] | None:
        """None when the request carries the link's password; else the answer: 401
        with the Basic challenge, or 429 while the link or the address is blocked."""
        password = basic_password(environ.get("HTTP_AUTHORIZATION", ""))
        if password is None:
            return _challenge(start_response)
        subjects = guess_subjects(link, environ.get("REMOTE_ADDR", ""))
        wait = self._limiter.blocked_for(subjects)
        if wait:
            body = b"too many failed logins; try again later\n"
            retry = [("Retry-After", str(wait))]
            return respond(start_response, "429 Too Many Requests", body, PLAIN, retry)
        if self._verified.verify(principal(link), link.password_hash, password):
            return None
        self._limiter.failed(subjects)
        return _challenge(start_response)

    def _count_download(self, request: ShareRequest) -> bool:
        """Count a download for a GET of a file that asks for its first byte (see the
        module docstring); False when the link has no download left."""
        environ = request.environ
        if environ.get("REQUEST_METHOD") != "GET":
            return True
        catalog = self._provider.catalog
        found = catalog.tree.resolve_path(request.link.node.id, request.names)
        if found is None or found[0].is_dir:
            return True
        ranges = parse_ranges(environ.get("HTTP_RANGE", ""), found[0].size)
        later_part = ranges and "HTTP_IF_RANGE" not in environ and min(r[0] for r in ranges) > 0
        return bool(later_part) or catalog.links.count_download(request.link.id)

    def _app(self, token: str) -> WsgiApp:
        """The WsgiDAV app mounted at `/s/<token>/dav` (made once, then kept)."""
        with self._lock:
            app = self._apps.get(token)
            if app is None:
                if len(self._apps) >= MAX_APPS:
                    self._apps.clear()
                app = self._apps[token] = self._build(token)
        return app

    def _build(self, token: str) -> WsgiApp:
        """Configured as `davserver.dav.app.build_dav_app` is, without its authentication
        and directory browser, on a `LinkProvider` and the lock manager of /dav/."""
        main = self._provider
        provider = LinkProvider(main.catalog, main.files, main.free_bytes)
        settings = self._settings
        config = {
            "provider_mapping": {"/": provider},
            "mount_path": f"{SHARE_PATH}/{token}/{ACTION}",
            "davserver_infinite_depth": settings.propfind_infinite_depth,
            "lock_storage": None,
            "property_manager": None,
            "honor_mtime_header": True,
            "block_size": settings.block_size,
            "verbose": settings.verbose,
            "logging": {"enable": False},
            "suppress_version_info": True,
            "dir_browser": {"enable": False},
            "hotfixes": {"emulate_win32_lastmod": True},
            "middleware_stack": [ErrorPrinter, DavDispatcher],
        }
        app = WsgiDAVApp(config)
        app.lock_manager = main.lock_manager
        provider.set_lock_manager(main.lock_manager)
        return RequestGuard(app, max_xml_body=settings.max_xml_body)


def _challenge(start_response: Callable[..., Any]) -> list[bytes]:
    challenge = [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')]
    body = b"this link needs its password\n"
    return respond(start_response, "401 Unauthorized", body, PLAIN, challenge)


def _with_share_headers(start_response: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        return start_response(status, [*headers, *DAV_HEADERS], *args)

    return wrapped


def register(
    site: ShareSite, provider: HomeProvider, limiter: LoginLimiter, settings: Settings
) -> None:
    """Serve links as WebDAV at `/s/<token>/dav/` (view, download and edit links)."""
    site.actions[ACTION] = Action(LinkDav(provider, limiter, settings), DAV_PERMS, resolve=False)
