"""Request bodies, read with a bound: the one reader every door uses.

`read_body` returns a small body whole (JSON, forms, WebDAV XML): at most `limit`
bytes whether it comes with a Content-Length or chunked, 413 beyond, 400 for a
malformed Content-Length. `stream_body` yields a large one in blocks (resumable
upload parts) without holding it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from davserver.http.errors import HttpError

BLOCK = 1 << 20  # bytes read from a streamed body at a time


def declared_length(environ: Mapping[str, Any]) -> int | None:
    """The Content-Length, None when absent; `HttpError` 400 when malformed."""
    value = environ.get("CONTENT_LENGTH") or ""
    if not value:
        return None
    if not (value.isascii() and value.isdigit()):
        raise HttpError(400, "bad Content-Length")
    return int(value)


def is_chunked(environ: Mapping[str, Any]) -> bool:
    return str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower() == "chunked"


def read_body(environ: Mapping[str, Any], limit: int) -> bytes:
    """The whole body, at most `limit` bytes (see the module docstring); b"" when
    there is none."""
    length = declared_length(environ)
    stream = environ["wsgi.input"]
    if length is not None:
        if length > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes")
        return bytes(stream.read(length))
    if is_chunked(environ):
        body = bytes(stream.read(limit + 1))
        if len(body) > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes")
        return body
    return b""


class BodyTooLong(Exception):
    """A chunked body went on past the bytes the request may send."""


def stream_body(environ: Mapping[str, Any], left: int) -> Iterator[bytes]:
    """The body in blocks: its Content-Length's worth (the caller checked it against
    `left`), or for a chunked body whatever comes, at most `left` bytes (`BodyTooLong`
    past it). If the client goes away or stalls mid-body the blocks just end: what
    arrived is kept (the bytes are right, only fewer), and a resumable client asks
    where to resume."""
    stream = environ["wsgi.input"]
    declared = declared_length(environ)
    wanted = left if declared is None else declared
    while wanted > 0:
        try:
            block = stream.read(min(BLOCK, wanted))
        except Exception:  # a reset or timed-out connection: keep what arrived
            return
        if not block:
            return
        wanted -= len(block)
        yield block
    if declared is None and stream.read(1):
        raise BodyTooLong()
