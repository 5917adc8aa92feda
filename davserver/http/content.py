"""Sending a file's bytes: one implementation of GET and HEAD for every door.

`plan` decides the answer from the request's conditions and Range (`headers`):
304 or 412 (a condition), 416 (no satisfiable range), 206 (one range, or several as
`multipart/byteranges`), or 200. `send` answers it. Between the two, a door may act on
what will be sent (a share link counts a download when byte 0 goes out).

Every 200 and 206 carries `ETag`, `Last-Modified` and `Accept-Ranges: bytes`, and the
file's checksums when it has them (`davserver.http.digests`: `OC-Checksum`,
`Repr-Digest`, and `Content-Digest` on a 200). A file without them yet gets them
computed by a 200 GET that sends it whole (the bytes pass anyway; hashing them costs
less than reading them again later) and handed to `Representation.learn` once the last
byte was read (before it is sent). The first block is read before the status is sent,
so a blob store that is down fails the request cleanly (the caller answers 503)
instead of cutting a started 200; a file that ends early later raises, so the
connection is cut rather than left hanging.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from davserver.http.digests import checksum_headers
from davserver.http.environ import StartResponse
from davserver.http.headers import ByteRange, byte_ranges, http_date, precondition
from providers.checksums import Checksums, Hasher
from providers.errors import IntegrityError

Headers = list[tuple[str, str]]
log = logging.getLogger(__name__)


class Reader(Protocol):
    """A seekable stream of a file's bytes (`providers.filestore.ChunkReader`)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Representation:
    """A file as sent: size, strong entity tag (unquoted), whole-second mtime, media
    type, how to open its bytes, its stored checksums (None: none yet) and where to
    keep checksums computed while sending it whole (`learn`, None: nowhere)."""

    size: int
    etag: str
    last_modified: int
    content_type: str
    open: Callable[[], Reader]
    checksums: Checksums | None = None
    learn: Callable[[Checksums], object] | None = None


@dataclass(frozen=True)
class Plan:
    """The answer a GET or HEAD gets: `status` and the `ranges` it sends (the whole
    file for 200, nothing for 304/412/416)."""

    status: int
    ranges: tuple[ByteRange, ...] = ()

    @property
    def sends_first_byte(self) -> bool:
        """Whether the answer carries byte 0 of the file (what a download count counts)."""
        return any(r.start == 0 for r in self.ranges)


def plan(environ: Mapping[str, Any], rep: Representation) -> Plan:
    """The answer for `rep` (see the module docstring)."""
    verdict = precondition(environ, rep.etag, rep.last_modified)
    if verdict is not None:
        return Plan(verdict)
    ranges = byte_ranges(environ, rep.size, rep.etag, rep.last_modified)
    if ranges is None:
        return Plan(200, (ByteRange(0, rep.size),))
    return Plan(206, tuple(ranges)) if ranges else Plan(416)


def validators(rep: Representation) -> Headers:
    """`ETag` and `Last-Modified` of `rep`."""
    return [("ETag", f'"{rep.etag}"'), ("Last-Modified", http_date(rep.last_modified))]


def send(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    rep: Representation,
    answer: Plan,
    headers: Headers,
    *,
    block_size: int,
    admit: Callable[[], None] | None = None,
) -> Iterable[bytes]:
    """Answer `answer` for `rep`, with the caller's `headers` (type, disposition and
    caching policy are theirs: `Content-Type` defaults to `rep.content_type`).
    `admit` runs once the first block of a GET's bytes is in hand, just before the
    status goes out: whatever it raises aborts the answer (nothing sent)."""
    headers = [*headers, *validators(rep)]
    if answer.status in (304, 412, 416):
        return _without_body(start_response, rep, answer.status, headers)
    headers.append(("Accept-Ranges", "bytes"))
    headers += checksum_headers(rep.checksums, partial=answer.status == 206)
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", rep.content_type))
    parts = _Multipart.of(rep, answer, headers) if len(answer.ranges) > 1 else None
    if parts is not None:
        headers = parts.headers
    else:
        span = answer.ranges[0]
        headers.append(("Content-Length", str(span.length)))
        if answer.status == 206:
            headers.append(("Content-Range", f"bytes {span.start}-{span.end - 1}/{rep.size}"))
    if environ.get("REQUEST_METHOD") == "HEAD":
        start_response(_STATUS[answer.status], headers)
        return []
    reader = rep.open()
    first = _first_block(reader, answer.ranges[0], block_size, admit)
    start_response(_STATUS[answer.status], headers)
    if parts is not None:
        return _parts(reader, first, parts, answer.ranges, block_size)
    blocks = _blocks(reader, first, answer.ranges[0], block_size, close=True)
    if answer.status == 200 and rep.checksums is None and rep.learn is not None:
        return _hashed(blocks, rep.size, rep.learn)
    return blocks


def _hashed(
    blocks: Iterator[bytes], size: int, learn: Callable[[Checksums], object]
) -> Iterator[bytes]:
    """`blocks` (the `size` bytes of a whole file), checksummed on the way; `learn`
    gets the checksums once the last byte was read, before it is sent (a client that
    has every byte may ask again at once); a download cut earlier learns nothing."""
    hasher, seen = Hasher(), 0
    if size == 0:
        _keep(learn, hasher)
    for block in blocks:
        hasher.update(block)
        seen += len(block)
        if seen == size:
            _keep(learn, hasher)
        yield block


def _keep(learn: Callable[[Checksums], object], hasher: Hasher) -> None:
    """Hand the checksums to `learn`. A failure is not the client's: it only means
    that a later full GET computes them again."""
    try:
        learn(hasher.checksums())
    except Exception:
        log.warning("keeping the checksums computed by a GET failed", exc_info=True)


def _without_body(
    start_response: StartResponse, rep: Representation, status: int, headers: Headers
) -> list[bytes]:
    """304 (validators only), 412, or 416 (with the size in `Content-Range`)."""
    if status == 416:
        headers += [("Accept-Ranges", "bytes"), ("Content-Range", f"bytes */{rep.size}")]
    if status != 304:
        headers.append(("Content-Length", "0"))
    start_response(_STATUS[status], headers)
    return []


@dataclass(frozen=True)
class _Multipart:
    """The framing of a `multipart/byteranges` answer (RFC 9110 14.6): one head per
    range, the closing line, and the answer's headers with its total length."""

    heads: tuple[bytes, ...]
    tail: bytes
    headers: Headers

    @classmethod
    def of(cls, rep: Representation, answer: Plan, headers: Headers) -> _Multipart:
        boundary = secrets.token_hex(16)
        media = next(v for k, v in headers if k.lower() == "content-type")
        heads = tuple(
            (
                f"--{boundary}\r\nContent-Type: {media}\r\n"
                f"Content-Range: bytes {r.start}-{r.end - 1}/{rep.size}\r\n\r\n"
            ).encode()
            for r in answer.ranges
        )
        tail = f"--{boundary}--\r\n".encode()
        total = sum(len(h) + r.length + 2 for h, r in zip(heads, answer.ranges, strict=True))
        kept = [(k, v) for k, v in headers if k.lower() != "content-type"]
        kept += [
            ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
            ("Content-Length", str(total + len(tail))),
        ]
        return cls(heads, tail, kept)


def _parts(
    reader: Reader,
    first: bytes,
    parts: _Multipart,
    ranges: tuple[ByteRange, ...],
    block_size: int,
) -> Iterator[bytes]:
    try:
        for index, (head, span) in enumerate(zip(parts.heads, ranges, strict=True)):
            yield head
            if index:
                reader.seek(span.start)
                first = b""
            yield from _blocks(reader, first, span, block_size, close=False)
            yield b"\r\n"
        yield parts.tail
    finally:
        reader.close()


def _first_block(
    reader: Reader, span: ByteRange, block_size: int, admit: Callable[[], None] | None
) -> bytes:
    """The first block of `span`, then `admit` (both before answering; `reader` is
    closed if either fails)."""
    try:
        reader.seek(span.start)
        first = reader.read(min(block_size, span.length)) if span.length else b""
        if admit is not None:
            admit()
        return first
    except BaseException:
        reader.close()
        raise


def _blocks(
    reader: Reader, first: bytes, span: ByteRange, block_size: int, *, close: bool
) -> Iterator[bytes]:
    """`span.length` bytes from `reader`, `first` already read; a file that ends
    early raises (`IntegrityError`), so the connection is cut."""
    try:
        sent = len(first)
        if first:
            yield first
        while sent < span.length:
            data = reader.read(min(block_size, span.length - sent))
            if not data:
                raise IntegrityError(f"content ended at {sent} of {span.length} bytes")
            sent += len(data)
            yield data
    finally:
        if close:
            reader.close()


_STATUS = {
    200: "200 OK",
    206: "206 Partial Content",
    304: "304 Not Modified",
    412: "412 Precondition Failed",
    416: "416 Range Not Satisfiable",
}
