"""WebDAV error bodies: a short plain-text reason and the request id, never WsgiDAV's
HTML page (which names WsgiDAV, prints the source exception's repr and, for a 5xx, the
engine's detail such as an S3 endpoint or a blob directory's path). `ShortAuthenticator`
does the same for WsgiDAV's 401 page.

`ShortErrors` sits just inside WsgiDAV's `ErrorPrinter`: every `DAVError` from below
(and any other exception, logged with its traceback) is re-raised as a `ShortError`,
whose page `ErrorPrinter` then sends. A 5xx says only "storage unavailable" (503) or
"internal error", its detail going to the log with the request id; an error with a
DAV:error condition (a 423 listing the locks in the way, a 412 or 409 precondition)
keeps its XML body, which clients read.
"""

from __future__ import annotations

import http
from collections.abc import Iterator
from typing import Any

from wsgidav.dav_error import DAVError
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator

from davserver.http.errors import with_request_id


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


class ShortErrors(ErrorPrinter):
    """See the module docstring. Subclasses `ErrorPrinter` only to be a WsgiDAV
    middleware (its constructor); it prints nothing itself."""

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        result = None
        try:
            result = self.next_app(environ, start_response)
            yield from result
        except ShortError:
            raise
        except DAVError as e:
            raise ShortError(e) from e
        except Exception as e:
            # ErrorPrinter logs a 500 with its traceback (this chain names `e`).
            raise ShortError(DAVError(500, src_exception=e)) from e
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


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
