"""The caller's files as the Nextcloud and ownCloud clients address them:
`/remote.php/dav/files/<user>/` (the path both clients build from `cloud/user`'s id)
and the older `/remote.php/webdav/` (ownCloud without chunking, `--davpath`).

Both are the very resources of `/dav/`: the same `DavProvider` over the operations
layer (rights, locks, quotas, versions, the change feed) and the process's one lock
manager, in a WsgiDAV app mounted at the path the client asked for, so every href in
an answer and every COPY/MOVE `Destination` is under that path. An account reaches
only its own `files/<user>/` (another name answers 404, as for a file that does not
exist). The caller has logged in before this runs (`davserver.dav.app.authenticated`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from davserver.dav import app as dav_app
from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.responses import plain_response
from providers.dav import DavProvider
from providers.operations import Operations

LEGACY_PATH = "/remote.php/webdav"
FILES_PATH = "/remote.php/dav/files"
MAX_APPS = 1024  # WsgiDAV apps kept, one per recently seen account


class FilesMounts:
    """Serves `FILES_PATH/<user>/...` (PATH_INFO `/<user>/...`, SCRIPT_NAME ending in
    `FILES_PATH`) and `LEGACY_PATH` (`legacy`)."""

    def __init__(
        self,
        ops: Operations,
        free_bytes: Callable[[], int | None],
        lock_manager: Any,
        options: dav_app.DavOptions,
    ) -> None:
        self._ops = ops
        self._free_bytes = free_bytes
        self._lock_manager = lock_manager
        self._options = options
        self._apps = dav_app.AppCache(self._build, MAX_APPS)
        self.legacy = self._build(LEGACY_PATH)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        user = environ.get("wsgidav.auth.user_name", "")
        path = environ.get("PATH_INFO", "/")
        first, _, rest = path.lstrip("/").partition("/")
        if not first or first != user:
            return plain_response(start_response, 404, "not found")
        mount = f"{FILES_PATH}/{user}"
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "")[: -len(FILES_PATH)] + mount
        environ["PATH_INFO"] = "/" + rest
        return self._apps.get(mount)(environ, start_response)

    def _build(self, mount: str) -> WSGIApplication:
        provider = DavProvider(self._ops, self._free_bytes)
        return dav_app.build(provider, self._lock_manager, mount, self._options, signed_in=True)
