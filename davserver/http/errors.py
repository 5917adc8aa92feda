"""Answers other than success, the same at every door.

`HttpError(status, reason)` is what door code raises to refuse a request; each door
renders it in its own format (plain text, JSON, a page, a WebDAV error body). Engine
errors carry their status themselves (`providers.errors`, `http_status`): `from_storage`
turns one into an `HttpError`, and is the only place that does, outside WebDAV's
resources (`providers.dav.errors`, which build WsgiDAV's `DAVError` the same way).
"""

from __future__ import annotations

import http
import logging
from collections.abc import Sequence

from providers.errors import StorageError

log = logging.getLogger(__name__)


def status_line(status: int) -> str:
    """`404 Not Found`; RFC 9110's phrases where Python's are older."""
    phrase = _PHRASES.get(status) or http.HTTPStatus(status).phrase
    return f"{status} {phrase}"


_PHRASES = {413: "Content Too Large", 416: "Range Not Satisfiable", 460: "Checksum Mismatch"}


class HttpError(Exception):
    """Refuse the request with `status` and a short `reason` (no internals: it is shown
    to the client), plus extra `headers` (Allow, Retry-After...)."""

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)

    @property
    def status_line(self) -> str:
        return status_line(self.status)


def from_storage(error: StorageError, context: str = "") -> HttpError:
    """The answer for an engine error: its class's status and its message. A server
    side failure (5xx) is logged, with `context` saying where."""
    if error.http_status >= 500:
        log.warning("%s: %s", context or "request", error)
    return HttpError(error.http_status, str(error))
