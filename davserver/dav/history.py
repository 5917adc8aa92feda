"""The WsgiDAV apps of the Nextcloud door's versions and trash
(`davserver.nextcloud.history`): `/remote.php/dav/versions/<user>/...`
(`providers.dav.versions`) and `/remote.php/dav/trashbin/<user>/...`
(`providers.dav.trashbin`).

Each is a WsgiDAV app whose requests go through `DavRequestServer`, so PROPFIND is
WsgiDAV's and a GET of a version or a trashed file is answered by
`davserver.http.content` like any file's (conditions, Range, checksums). PROPFIND,
GET, HEAD, OPTIONS, MOVE (restore) and DELETE (purge, empty) are the methods these
trees take; every other one is refused (403) before anything is looked up. The
router runs them after the account's login and the request guard (XML body bound,
no DTD: `NextcloudSite.signed_in`).
"""

from __future__ import annotations

from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.wsgidav_app import WsgiDAVApp

from davserver.dav import app as dav_app
from davserver.dav.request_server import DavDispatcher, DavRequestServer
from davserver.http.environ import StartResponse
from providers.dav.history_tree import NOT_HERE, HistoryProvider

Environ = dict[str, Any]
REFUSED = ("PUT", "MKCOL", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "POST", "REPORT", "SEARCH")


class HistoryRequestServer(DavRequestServer):
    """`DavRequestServer` without REPORT and TUS, refusing the methods that would
    write anything but a restore or a purge (see the module docstring)."""

    sync_report = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any:
        if environ.get("REQUEST_METHOD", "").upper() in REFUSED:
            raise DAVError(HTTP_FORBIDDEN, NOT_HERE)
        return super().__call__(environ, start_response)

    def do_OPTIONS(self, environ: Environ, start_response: StartResponse) -> Any:
        """WsgiDAV's answer, its `Allow` without the refused methods."""

        def allowed(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            headers = [
                (name, _without_refused(value) if name == "Allow" else value)
                for name, value in headers
            ]
            return start_response(status, headers, *args)

        return super().do_OPTIONS(environ, allowed)


class HistoryDispatcher(DavDispatcher):
    """Hands each request to a `HistoryRequestServer` (never `Depth: infinity`)."""

    def request_server(self, provider: Any, environ: Environ) -> DavRequestServer:
        server = HistoryRequestServer(provider)
        server.allow_propfind_infinite = False
        return server


def _without_refused(allow: str) -> str:
    methods = (method.strip() for method in allow.split(","))
    return ", ".join(method for method in methods if method and method not in REFUSED)


def build(provider: HistoryProvider, mount_path: str, options: dav_app.DavOptions) -> WsgiDAVApp:
    """The WsgiDAV app of `provider` at `mount_path`, for a caller already logged in;
    no lock manager (the operations layer checks the locks a restore meets)."""
    config = dav_app.wsgidav_config(provider, mount_path, options, accounts=None, signed_in=True)
    config["middleware_stack"] = [
        HistoryDispatcher if layer is DavDispatcher else layer
        for layer in config["middleware_stack"]
    ]
    return WsgiDAVApp(config)
