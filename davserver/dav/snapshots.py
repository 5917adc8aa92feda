"""The `/snapshots/` door: WsgiDAV on a `SnapshotProvider` (`providers.dav.snapshots`),
read-only, behind the same logins as `/dav/`.

Requests go through `DavRequestServer` (so a GET of a file is answered by
`davserver.http.content` as at `/dav/`: conditions, Range, checksums) except that every
method that could write (PUT, MKCOL, DELETE, COPY, MOVE, PROPPATCH, LOCK, UNLOCK,
POST, REPORT) is refused with 403 before anything is looked up or read. COPY is
refused as a whole, even to `/dav/`: copy out with a client (rclone, cadaver `get`)
or restore with `davserver restore`.
"""

from __future__ import annotations

from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.lock_man.lock_manager import LockManager
from wsgidav.wsgidav_app import WsgiDAVApp

from davserver.dav import app as dav_app
from davserver.dav.folder_pages import CONFIG_KEY
from davserver.dav.request_server import DavDispatcher, DavRequestServer
from davserver.http.environ import StartResponse
from providers.catalog.users import Users
from providers.dav.snapshots import READ_ONLY, SnapshotProvider

MOUNT_PATH = "/snapshots"
Environ = dict[str, Any]
WRITES = ("PUT", "MKCOL", "DELETE", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK", "POST", "REPORT")


class SnapshotRequestServer(DavRequestServer):
    """`DavRequestServer` that refuses every write (see the module docstring) and
    offers no REPORT."""

    sync_report = False

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any:
        if environ.get("REQUEST_METHOD", "").upper() in WRITES:
            raise DAVError(HTTP_FORBIDDEN, READ_ONLY)
        return super().__call__(environ, start_response)


class SnapshotDispatcher(DavDispatcher):
    """Hands each request to a `SnapshotRequestServer` (never `Depth: infinity`)."""

    def request_server(self, provider: Any, environ: Environ) -> DavRequestServer:
        server = SnapshotRequestServer(provider)
        server.allow_propfind_infinite = False
        return server


def build(
    provider: SnapshotProvider,
    lock_manager: LockManager,
    options: dav_app.DavOptions,
    accounts: Users,
) -> WsgiDAVApp:
    """The `/snapshots/` WsgiDAV app, with `/dav/`'s logins (Basic and Digest)."""
    config = dav_app.wsgidav_config(provider, MOUNT_PATH, options, accounts=accounts)
    config["middleware_stack"] = [
        SnapshotDispatcher if layer is DavDispatcher else layer
        for layer in config["middleware_stack"]
    ]
    config[CONFIG_KEY] = {"root": "Snapshots", "signed_in": True}
    app = WsgiDAVApp(config)
    app.lock_manager = lock_manager
    provider.set_lock_manager(lock_manager)
    return app
