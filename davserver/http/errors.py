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

from davserver.logs import request_id
from providers.errors import CorruptChunk, QuotaExceeded, StorageError, Unavailable

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


class ResponseCut(Exception):
    """An answer failed after its status and headers went out: the connection must be
    cut (the server closes it), so the client sees a short body, never a complete
    wrong one. Raised toward the server once the failure was logged (its cause is
    chained); the server logs nothing more for it."""


def from_storage(error: StorageError, context: str = "") -> HttpError:
    """The answer for an engine error: its class's status and its message. A server
    side failure (5xx) is logged with its detail and `context` saying where, and
    answered with `server_reason` only, since its message may name internal hosts or
    paths; except 507, whose message is the quota's own words."""
    if error.http_status >= 500 and not isinstance(error, CorruptChunk):  # logged when found
        log.warning("%s: %s", context or "request", error)
    if error.http_status >= 500 and not isinstance(error, QuotaExceeded):
        return HttpError(error.http_status, server_reason(error))
    return HttpError(error.http_status, str(error))


def server_reason(error: BaseException | None) -> str:
    """What a client is told of a server-side failure: "storage unavailable" when a
    dependency is down, else "internal error"; never the detail."""
    return "storage unavailable" if isinstance(error, Unavailable) else "internal error"


def with_request_id(reason: str) -> str:
    """`reason (request id X)` during a request, so a user can quote the id that finds
    the detail in the log; `reason` unchanged outside one."""
    rid = request_id()
    return f"{reason} (request id {rid})" if rid and "request id" not in reason else reason
