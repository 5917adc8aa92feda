"""The WSGI environ keys davserver's layers hand each other, and the WSGI types.

Keys the WebDAV provider reads are defined beside it (`providers.dav`, which cannot
import this package) and re-exported here, so this module lists every key.
"""

from __future__ import annotations

from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from providers.dav import (
    ANNOUNCED_CHECKSUMS,
    DEST,
    DEST_CREATED,
    LINK,
    STORED_CHECKSUMS,
    USER,
)

AUTH_UNAVAILABLE = "davserver.auth_unavailable"  # a login failed because the DB is down
AUTH_EVENT = "davserver.auth_event"  # "failed" or "limited": counted by the observer
REQUEST_ID = "davserver.request_id"  # set by the outermost middleware (`http.observe`)

__all__ = [
    "ANNOUNCED_CHECKSUMS",
    "AUTH_EVENT",
    "AUTH_UNAVAILABLE",
    "REQUEST_ID",
    "DEST_CREATED",
    "DEST",
    "LINK",
    "STORED_CHECKSUMS",
    "USER",
    "StartResponse",
    "WSGIApplication",
    "WSGIEnvironment",
    "base_url",
]


def base_url(environ: dict[str, Any], public_url: str = "") -> str:
    """`public_url` when configured, else `scheme://host[:port]` the request came in by
    (after trusted proxy headers)."""
    if public_url:
        return public_url
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{scheme}://{host}"
