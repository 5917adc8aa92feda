"""Static files (`davserver/web/static/`): CSS and JavaScript, served at `/static/`.

Each file's URL carries a digest of its content (`/static/<digest>/share.css`,
`static_url`), so it can be cached for a year (`immutable`): a new release changes
the URL, never the bytes behind one. A URL with another digest (a page from an older
release) still gets the current file, revalidated on every use. Files are read once,
when first asked for; the set is fixed (no path from a request reaches the disk).
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from typing import Any

from davserver.http.environ import StartResponse
from davserver.http.headers import precondition
from davserver.http.responses import plain_response

STATIC_PATH = "/static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"


@dataclass(frozen=True)
class Asset:
    """A static file's bytes, media type and content digest."""

    body: bytes
    media_type: str
    digest: str


@functools.cache
def _assets() -> dict[str, Asset]:
    folder = resources.files("davserver.web") / "static"
    found = {}
    for entry in folder.iterdir():
        if entry.is_file():
            body = entry.read_bytes()
            media = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            if media.startswith("text/") or media.endswith("javascript"):
                media += "; charset=utf-8"
            digest = hashlib.sha256(body).hexdigest()[:16]
            found[entry.name] = Asset(body, media, digest)
    return found


def static_url(name: str) -> str:
    """The versioned URL of static file `name` (`KeyError` for an unknown one)."""
    return f"{STATIC_PATH}/{_assets()[name].digest}/{name}"


def serve_static(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Answer GET/HEAD of `/static/<digest>/<name>` (see the module docstring)."""
    digest, _, name = environ.get("PATH_INFO", "")[len(STATIC_PATH) + 1 :].partition("/")
    asset = _assets().get(name)
    if asset is None:
        return plain_response(start_response, 404, "not found")
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return plain_response(start_response, 405, "GET or HEAD", [("Allow", "GET, HEAD")])
    caching = IMMUTABLE if digest == asset.digest else REVALIDATE
    headers = [
        ("Content-Type", asset.media_type),
        ("ETag", f'"{asset.digest}"'),
        ("Cache-Control", caching),
        ("X-Content-Type-Options", "nosniff"),
    ]
    if precondition(environ, asset.digest, None) == 304:
        start_response("304 Not Modified", headers)
        return []
    start_response("200 OK", [*headers, ("Content-Length", str(len(asset.body)))])
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [asset.body]
