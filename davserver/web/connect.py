"""The connect page at `/`: the server's WebDAV URL and, per system (Windows, macOS,
Linux, rclone, cadaver), how to connect to it, each command with a copy button.

The URL is `public_url` when it is set (the address users know, e.g. behind a reverse
proxy), else the request's own scheme and Host (which `davserver.http.proxy` has set
from a trusted proxy's `X-Forwarded-*`). A Host that is not a host name or address is
not echoed: the page then shows a placeholder, so no request can put text of its
choosing into a command users copy. The page is rendered per request, since the URL
depends on it; a template render is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from davserver.http.environ import WSGIEnvironment
from davserver.http.proxy import DEFAULT_PORTS, valid_host
from davserver.web.render import render

PLACEHOLDER_HOST = "SERVER"


@dataclass(frozen=True)
class Endpoint:
    """Where clients connect: `dav` is the WebDAV URL (ending in '/'); `host` and
    `path` its parts without scheme, for URL forms of other schemes (davs://...)."""

    scheme: str
    host: str
    path: str

    @property
    def dav(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def as_scheme(self, scheme: str) -> str:
        return f"{scheme}://{self.host}{self.path}"


def endpoint(environ: WSGIEnvironment, public_url: str, dav_path: str) -> Endpoint:
    """The WebDAV endpoint users should connect to (see the module docstring)."""
    path = dav_path.rstrip("/") + "/"
    if public_url:
        parts = urlsplit(public_url.rstrip("/"))
        return Endpoint(parts.scheme or "https", parts.netloc, parts.path + path)
    scheme = environ.get("wsgi.url_scheme", "http")
    scheme = scheme if scheme in DEFAULT_PORTS else "http"
    host = environ.get("HTTP_HOST", "")
    if not host:
        port = str(environ.get("SERVER_PORT", ""))
        host = str(environ.get("SERVER_NAME", ""))
        if port and port != str(DEFAULT_PORTS[scheme]):
            host = f"{host}:{port}"
    return Endpoint(scheme, host if valid_host(host) else PLACEHOLDER_HOST, path)


def connect_page(environ: WSGIEnvironment, public_url: str, dav_path: str) -> bytes:
    """The page's HTML for this request (`templates/connect.html`)."""
    where = endpoint(environ, public_url, dav_path)
    return render("connect.html", title="Connect to davserver", where=where)
