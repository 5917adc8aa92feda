"""WSGI middleware in front of WsgiDAV: reject bad input with a clear 4xx before it can
turn into a 500 or a dropped connection, and report a down dependency as 503.

- Paths (the request URI and `Destination`): invalid UTF-8, NUL, an encoded '/' inside
  a name, a name over 255 bytes or a path over 4096 bytes: 400.
- XML request bodies (PROPFIND, PROPPATCH, LOCK, ...): over `max_xml_body`: 413; a
  DTD or entity declaration: 400 (no entity is ever expanded).
- Both `Content-Length` and `Transfer-Encoding`: 400 (ambiguous framing).
- A login that failed because the user table was unreachable: 503, not 401.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from davserver.http.body import read_body
from davserver.http.environ import AUTH_UNAVAILABLE, StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.errors import HttpError
from davserver.http.responses import plain_response
from providers.errors import InvalidName
from providers.names import split_path

XML_METHODS = {"PROPFIND", "PROPPATCH", "LOCK", "REPORT", "SEARCH", "ACL", "MKCOL"}
_ENCODED_SEPARATOR = re.compile(rb"%(2f|00)", re.IGNORECASE)
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def check_raw_path(raw: bytes) -> None:
    """Validate an undecoded URL path; raise `HttpError` (400) if it breaks the rules."""
    if _ENCODED_SEPARATOR.search(raw):
        raise HttpError(400, "encoded '/' or NUL in path")
    decoded = unquote_to_bytes(raw)
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HttpError(400, "path is not valid UTF-8") from e
    try:
        split_path(text)
    except InvalidName as e:
        raise HttpError(400, str(e)) from e


def raw_request_path(environ: dict[str, Any]) -> bytes:
    """The request's path as the client sent it (still percent-encoded)."""
    raw: str = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if raw:
        return urlsplit(raw.encode("latin-1")).path
    path: str = environ.get("PATH_INFO", "")
    return path.encode("latin-1")


def _read_xml_body(environ: dict[str, Any], limit: int) -> bytes:
    """The XML body (at most `limit` bytes: 413), refused with 400 if it declares a
    DTD or entities."""
    body = read_body(environ, limit)
    if _DTD.search(body):
        raise HttpError(400, "DTDs and entity declarations are not accepted")
    return body


class RequestGuard:
    """Wraps the WebDAV app (see the module docstring)."""

    def __init__(self, app: WSGIApplication, *, max_xml_body: int) -> None:
        self._app = app
        self._max_xml_body = max_xml_body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            self._check(environ)
        except HttpError as e:
            return plain_response(start_response, e.status, e.reason, e.headers)

        def guarded_start_response(status: str, headers: list[Any], *args: Any) -> Any:
            if status.startswith("401") and environ.get(AUTH_UNAVAILABLE):
                status = "503 Service Unavailable"
                headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
            return start_response(status, headers, *args)

        return self._app(environ, guarded_start_response)

    def _check(self, environ: dict[str, Any]) -> None:
        if environ.get("HTTP_TRANSFER_ENCODING") and environ.get("CONTENT_LENGTH"):
            # RFC 9112 6.1: ambiguous framing, the classic request-smuggling shape.
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        check_raw_path(raw_request_path(environ))
        destination = environ.get("HTTP_DESTINATION")
        if destination:
            check_raw_path(urlsplit(destination.encode("latin-1")).path)
        if environ["REQUEST_METHOD"] in XML_METHODS:
            body = _read_xml_body(environ, self._max_xml_body)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
