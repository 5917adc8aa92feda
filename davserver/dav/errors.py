"""WebDAV error bodies: a short plain-text reason and the request id, never WsgiDAV's
HTML page (which names WsgiDAV, prints the source exception's repr and, for a 5xx, the
engine's detail such as an S3 endpoint or a blob directory's path). `ShortAuthenticator`
does the same for WsgiDAV's 401 page.

`ShortErrors` is the WsgiDAV apps' error printer (in place of WsgiDAV's
`ErrorPrinter`): every `DAVError` from below, every engine error and any other
exception (logged once, with its traceback) is answered as a `ShortError` page. A 5xx
says only "storage unavailable" (503) or "internal error", its detail going to the log
with the request id; an error with a DAV:error condition (a 423 listing the locks in
the way, a 412 or 409 precondition) keeps its XML body, which clients read. An error
after the answer's first block went out cannot be answered any more: it becomes a
`ResponseCut`, which cuts the connection (WsgiDAV's printer sent its error page on
as more of the 200's body, and the client waited for the rest).
"""

from __future__ import annotations

import errno
import http
import logging
from collections.abc import Iterator
from typing import Any

from wsgidav.dav_error import DAVError
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.util import get_rfc1123_time

from davserver.http.errors import ResponseCut, status_line, with_request_id
from providers.dav.errors import dav_error
from providers.errors import StorageError

log = logging.getLogger(__name__)


class ShortError(DAVError):
    """A `DAVError` whose page is `reason (request id X)` in plain text, or its
    condition's XML."""

    def __init__(self, original: DAVError) -> None:
        super().__init__(
            original.value,
            original.context_info,
            src_exception=original.src_exception,
            err_condition=original.err_condition,
            add_headers=original.add_headers,
        )
        self.add_body = original.add_body

    def reason(self) -> str:
        if self.value == 503:
            return "storage unavailable"
        # A failure inside (500, or any 5xx from an exception) keeps its detail for the
        # log; WsgiDAV's own 502 (Destination on another server) and 507 (the quota's
        # words) name nothing internal.
        if self.value == 500 or (self.value > 500 and self.src_exception is not None):
            return "internal error"
        try:
            phrase = http.HTTPStatus(self.value).phrase.lower()
        except ValueError:
            phrase = "error"
        detail = (self.context_info or "").strip().splitlines()
        return f"{phrase}: {detail[0][:200]}" if detail else phrase

    def get_response_page(self) -> tuple[str, bytes]:
        if self.err_condition:
            return super().get_response_page()  # the DAV:error XML
        return "text/plain; charset=utf-8", (with_request_id(self.reason()) + "\n").encode()


class ShortErrors(BaseMiddleware):
    """See the module docstring."""

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        result = None
        sent = False  # whether a block went out (then the status did too)
        try:
            result = self.next_app(environ, start_response)
            for block in result:
                sent = True
                yield block
        except Exception as e:
            error = _short(e)
            if sent:
                raise ResponseCut(f"answer failed after its headers: {error.value}") from e
            yield from _page(error, start_response)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _short(e: Exception) -> ShortError:
    """The answer for `e`; an unexpected error is logged here with its traceback (an
    engine error was logged where it became a `DAVError`, `providers.dav.errors`)."""
    if isinstance(e, ShortError):
        return e
    if isinstance(e, StorageError):
        e = dav_error(e)
    elif isinstance(e, OSError) and e.errno == errno.EACCES:
        e = DAVError(403, e.strerror)
    elif not isinstance(e, DAVError):
        log.error("unexpected error answered 500", exc_info=e)
        e = DAVError(500, src_exception=e)
    elif e.value >= 500 and e.src_exception is not None:
        log.error("error answered %d", e.value, exc_info=e.src_exception)
    return ShortError(e)


def _page(error: ShortError, start_response: Any) -> Iterator[bytes]:
    """`error`'s answer: its page, or no body for 204 and 304 (as WsgiDAV's printer)."""
    status = status_line(error.value)
    date = ("Date", get_rfc1123_time())
    if error.value in (204, 304):
        start_response(status, [("Content-Length", "0"), date])
        return
    media, body = error.get_response_page()
    headers = [("Content-Type", media), ("Content-Length", str(len(body))), date]
    start_response(status, headers + (error.add_headers or []))
    if error.add_body:
        yield body


class ShortAuthenticator(HTTPAuthenticator):
    """WsgiDAV's `HTTPAuthenticator` whose 401 says `authentication required (request
    id X)` in plain text (the challenge headers are the login gate's)."""

    @property  # a per-request text where WsgiDAV keeps a constant
    def error_message_401(self) -> str:
        return with_request_id("authentication required") + "\n"

    @error_message_401.setter
    def error_message_401(self, _value: str) -> None:
        pass  # read-write like the attribute it replaces; an assigned page is ignored

    def send_basic_auth_response(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return super().send_basic_auth_response(environ, _plain_text(start_response))

    def send_digest_auth_response(
        self, environ: dict[str, Any], start_response: Any
    ) -> list[bytes]:
        return super().send_digest_auth_response(environ, _plain_text(start_response))


def _plain_text(start_response: Any) -> Any:
    """`start_response` with the Content-Type made plain text."""

    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        kept = [h for h in headers if h[0].lower() != "content-type"]
        return start_response(status, [*kept, ("Content-Type", "text/plain; charset=utf-8")], *args)

    return start
