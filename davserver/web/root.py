"""What the server answers outside its doors: the connect page `/`, `OPTIONS /` for
Windows, `/healthz` (the process answers), `/readyz` (the database and blob store
answer too; the body names the version), `/metrics` (`davserver.metrics`), and the
static files under `/static/`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from davserver import __version__
from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.errors import server_reason
from davserver.http.responses import plain_response
from davserver.web.assets import STATIC_PATH, serve_static
from davserver.web.connect import connect_page
from davserver.web.render import PAGE_CSP
from providers.errors import StorageError

log = logging.getLogger(__name__)


class RootSite:
    """See the module docstring. `readiness` raises a `StorageError` when a dependency
    does not answer; `dav_path` is where WebDAV is mounted and `public_url` the address
    users know the server by ("": the request's own), both shown on the connect page;
    `metrics` answers `/metrics` (404 without)."""

    def __init__(
        self,
        readiness: Callable[[], None],
        dav_path: str,
        metrics: WSGIApplication | None = None,
        *,
        public_url: str = "",
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._dav_path = dav_path
        self._public_url = public_url

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(STATIC_PATH + "/"):
            return serve_static(environ, start_response)
        if path == "/healthz":
            return plain_response(start_response, 200, "ok")
        if path == "/readyz":
            return self._ready(start_response)
        if path == "/metrics" and self._metrics is not None:
            return self._metrics(environ, start_response)
        if path == "/" and environ.get("REQUEST_METHOD") == "OPTIONS":
            return _root_options(start_response)
        if path == "/":
            return self._connect(environ, start_response)
        return plain_response(start_response, 404, "not found")

    def _connect(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        """The connect page (`davserver.web.connect`), rendered for this request's URL."""
        body = connect_page(environ, self._public_url, self._dav_path)
        html = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Security-Policy", PAGE_CSP),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        start_response("200 OK", [*html, ("Content-Length", str(len(body)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _ready(self, start_response: StartResponse) -> list[bytes]:
        try:
            self._readiness()
        except StorageError as e:
            log.warning("not ready: %s", e)
            return plain_response(start_response, 503, f"not ready: {server_reason(e)}")
        return plain_response(start_response, 200, f"ready davserver {__version__}")


def _root_options(start_response: StartResponse) -> list[bytes]:
    """`OPTIONS /` without credentials: the DAV headers Windows needs before it mounts.

    The Windows mini-redirector probes the server root (not the share path) first and
    caches a verdict without `DAV:` as "not WebDAV" until reboot, so the root answers like
    the share does (https://github.com/mickael-kerjean/filestash/issues/669). It reveals
    nothing about any user, hence no authentication.
    """
    start_response(
        "200 OK",
        [
            ("DAV", "1,2"),
            ("MS-Author-Via", "DAV"),
            ("Allow", "OPTIONS, GET, HEAD"),
            ("Content-Length", "0"),
        ],
    )
    return []
