"""TUS 1.0 (resumable uploads), the protocol side both doors share: share links'
drop pages (`davserver.links.uploads`) and accounts' WebDAV collections
(`davserver.dav.tus`), over the one engine (`providers.operations.uploads`).

Here: reading a creation (`parse_creation`: `Upload-Length` or `Upload-Defer-Length`,
`Upload-Metadata` with `filename`, `mtime` (seconds) and `checksum`
("sha256 <hex>", "sha1 <hex>" or "md5 <hex>": the whole file's, checked at the
commit), `Upload-Concat`), a piece's `Upload-Checksum` ("<algorithm> <base64>", TUS's
form), the capabilities an OPTIONS answers, every answer (`answer`: `Tus-Resumable`,
no caching, an error's reason with the request id and nothing internal), and the
upload URL's methods (`UploadUrl`: HEAD, PATCH, DELETE), which the doors call with
the request's actor.

    HEAD   <upload>   Upload-Offset, Upload-Length or Upload-Defer-Length: 1,
                      Upload-Expires, Upload-Concat: partial for a partial upload, and
                      once committed X-Davserver-Name (the stored name, percent-encoded)
    PATCH  <upload>   application/offset+octet-stream at Upload-Offset (409 with the
                      server's offset otherwise; 415 for another type); may declare a
                      deferred Upload-Length; a wrong Upload-Checksum is 460 and the
                      piece is dropped -> 204, Upload-Offset, Upload-Expires
    DELETE <upload>   terminate: the upload and its parts are dropped -> 204

Requests other than OPTIONS must send `Tus-Resumable: 1.0.0` (412 otherwise), which
also keeps cross-site forms out (they cannot set headers). A PATCH body is streamed
(bounded memory, design invariant 6); if the client goes away mid-body, what arrived
is kept and HEAD tells where to resume.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from davserver.http.body import BodyTooLong, declared_length, stream_body
from davserver.http.environ import StartResponse
from davserver.http.errors import HttpError, from_storage, status_line, with_request_id
from davserver.http.headers import http_date
from davserver.http.responses import TEXT_TYPE
from providers.catalog.uploads import UploadRecord
from providers.errors import NotFound, StorageError
from providers.operations.actor import Actor
from providers.operations.uploads import PartResult, ResumableUploads

TUS_VERSION = "1.0.0"
OFFSET_TYPE = "application/offset+octet-stream"
MAX_UPLOAD = 1 << 40  # Tus-Max-Size: 1 TiB per file (the owner's quota may say less)
NAME_HEADER = "X-Davserver-Name"
CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")  # TUS names, hashlib's too
_HEX_SIZES = {"sha256": 64, "sha1": 40, "md5": 32}
_HEX = re.compile(r"[0-9a-fA-F]+")

Headers = list[tuple[str, str]]
# what a TUS request may raise and is answered for: by `refusal`
ANSWERED = (StorageError, HttpError, ValueError)


@dataclass(frozen=True)
class Creation:
    """What a creation (POST) asks for: `length` (None: deferred), the `metadata`,
    the file's `mtime` and whole `checksum` (algorithm, hex) from it, and
    `concat`: None, "partial", or the upload URLs a final upload joins."""

    length: int | None
    metadata: Mapping[str, str]
    mtime: float | None = None
    checksum: tuple[str, str] | None = None
    concat: str | tuple[str, ...] | None = None


def parse_creation(environ: Mapping[str, Any], *, extended: bool) -> Creation:
    """A creation's headers; `ValueError` (400) when malformed. Without `extended`
    (share links) a length is required and deferral and concatenation are refused."""
    concat = _concat(environ.get("HTTP_UPLOAD_CONCAT")) if extended else None
    deferred = environ.get("HTTP_UPLOAD_DEFER_LENGTH")
    if deferred is not None and (not extended or deferred.strip() != "1"):
        raise ValueError("Upload-Defer-Length is not supported" if not extended else "bad value")
    length: int | None = None
    if isinstance(concat, tuple):
        if "HTTP_UPLOAD_LENGTH" in environ:
            raise ValueError("a final upload has no Upload-Length")
    elif deferred is None:
        length = number(environ.get("HTTP_UPLOAD_LENGTH"), "Upload-Length")
    metadata = parse_metadata(environ.get("HTTP_UPLOAD_METADATA", ""))
    mtime = _mtime(metadata.get("mtime")) if extended else None
    checksum = parse_checksum_metadata(metadata.get("checksum")) if extended else None
    return Creation(length, metadata, mtime, checksum, concat)


def parse_metadata(value: str) -> dict[str, str]:
    """TUS Upload-Metadata: comma-separated `key base64(value)` pairs (the value may be
    missing); values decoded as UTF-8. `ValueError` for a malformed header."""
    found: dict[str, str] = {}
    for pair in value.split(","):
        if not pair.strip():
            continue
        key, _, encoded = pair.strip().partition(" ")
        if not key.isascii() or key in found:
            raise ValueError(f"bad Upload-Metadata key {key!r}")
        try:
            found[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise ValueError(f"Upload-Metadata {key!r} is not base64 of UTF-8") from e
    return found


def number(value: str | None, header: str) -> int:
    """A non-negative decimal header value; `ValueError` (400) otherwise."""
    if value is None or not (value.isascii() and value.isdigit()):
        raise ValueError(f"{header} must be a non-negative integer")
    return int(value)


def parse_upload_checksum(value: str | None) -> tuple[str, str] | None:
    """TUS Upload-Checksum, "<algorithm> <base64 digest>", as (algorithm, hex); None
    when absent; `ValueError` (400) for an unknown algorithm or a malformed digest."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ValueError(f"Upload-Checksum: unsupported algorithm {algorithm!r}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as e:
        raise ValueError("Upload-Checksum: the digest is not base64") from e
    if len(digest) * 2 != _HEX_SIZES[algorithm]:
        raise ValueError(f"Upload-Checksum: not a {algorithm} digest")
    return algorithm, digest.hex()


def parse_checksum_metadata(value: str | None) -> tuple[str, str] | None:
    """The `checksum` metadata, "<algorithm> <hex>" (sha256, sha1 or md5), as
    (algorithm, lowercase hex); None when absent; `ValueError` (400) otherwise."""
    if value is None:
        return None
    algorithm, _, digest = value.strip().partition(" ")
    algorithm, digest = algorithm.lower(), digest.strip()
    size = _HEX_SIZES.get(algorithm)
    if size is None or len(digest) != size or not _HEX.fullmatch(digest):
        raise ValueError("checksum metadata must be 'sha256|sha1|md5 <hex digest>'")
    return algorithm, digest.lower()


def capabilities(extensions: Sequence[str]) -> Headers:
    """What an OPTIONS answers: version, `extensions`, the largest upload, and the
    checksum algorithms when `checksum` is one of them."""
    found = [
        ("Tus-Version", TUS_VERSION),
        ("Tus-Extension", ",".join(extensions)),
        ("Tus-Max-Size", str(MAX_UPLOAD)),
    ]
    if "checksum" in extensions:
        found.append(("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS)))
    return found


def answer(
    start_response: StartResponse,
    status: int,
    headers: Sequence[tuple[str, str]] = (),
    reason: str = "",
    extra: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    """A TUS answer: `Tus-Resumable`, no caching (TUS requires it on HEAD), `extra`
    (a door's own headers), `headers`, and for an error its `reason` with the request
    id as a plain-text body."""
    if reason and status >= 400:
        reason = with_request_id(reason)
    body = (reason + "\n").encode() if reason else b""
    start_response(
        status_line(status),
        [
            ("Content-Type", TEXT_TYPE),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
            ("Tus-Resumable", TUS_VERSION),
            *headers,
        ],
    )
    return [body] if body else []


def refusal(error: StorageError | HttpError | ValueError, context: str) -> HttpError:
    """The answer for what a TUS request raised: an engine error by its class's status
    (a server-side one without its detail), a malformed header 400."""
    if isinstance(error, StorageError):
        return from_storage(error, context)
    if isinstance(error, HttpError):
        return error
    return HttpError(400, str(error))


def require_version(environ: Mapping[str, Any]) -> None:
    """`HttpError` 412 (naming the version) unless the request speaks TUS 1.0.0."""
    if environ.get("HTTP_TUS_RESUMABLE") != TUS_VERSION:
        raise HttpError(412, "Tus-Resumable: 1.0.0 required", [("Tus-Version", TUS_VERSION)])


def method_of(environ: Mapping[str, Any]) -> str:
    """The request's method, or the one a POST names in X-HTTP-Method-Override (TUS
    asks servers to honour it for clients that can only POST)."""
    method = str(environ.get("REQUEST_METHOD", "")).upper()
    override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
    return str(override).upper() if method == "POST" and override else method


class UploadUrl:
    """HEAD, PATCH and DELETE of one upload's URL (see the module docstring), for the
    actor a door found; `extra` headers go on every answer."""

    def __init__(self, engine: ResumableUploads, extra: Sequence[tuple[str, str]] = ()) -> None:
        self.engine = engine
        self.extra = list(extra)

    def __call__(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        actor: Callable[[], Actor],
        upload_id: str,
        context: str,
    ) -> list[bytes]:
        """Answer `environ`'s method on upload `upload_id` of `actor()`; errors by
        `refusal`, `context` says where in the log."""
        routes = {"HEAD": self._head, "PATCH": self._patch, "DELETE": self._delete}
        handler = routes.get(method_of(environ))
        if handler is None:
            allow = [("Allow", ", ".join(["OPTIONS", *routes]))]
            return answer(start_response, 405, allow, "method not allowed", self.extra)
        try:
            require_version(environ)
            status, headers = handler(environ, actor(), upload_id)
        except ANSWERED as e:
            error = refusal(e, context)
            return answer(start_response, error.status, error.headers, error.reason, self.extra)
        return answer(start_response, status, headers, extra=self.extra)

    def state(self, upload: UploadRecord) -> Headers:
        """Where `upload` stands: offset, length (or deferred), expiry, partial."""
        headers = [("Upload-Offset", str(upload.offset))]
        if upload.length is None:
            headers.append(("Upload-Defer-Length", "1"))
        else:
            headers.append(("Upload-Length", str(upload.length)))
        if upload.partial:
            headers.append(("Upload-Concat", "partial"))
        if not upload.finished or upload.partial:  # a receipt's expiry is no promise
            headers.append(("Upload-Expires", http_date(self.engine.expires_at(upload))))
        if upload.finished_name is not None:
            headers.append((NAME_HEADER, quote(upload.finished_name, safe="")))
        return headers

    def _find(self, actor: Actor, upload_id: str) -> UploadRecord:
        upload = self.engine.get(actor, upload_id)
        if upload is None:
            raise NotFound("no such upload")
        return upload

    def _head(self, environ: dict[str, Any], actor: Actor, upload_id: str) -> tuple[int, Headers]:
        return 200, self.state(self._find(actor, upload_id))

    def _patch(self, environ: dict[str, Any], actor: Actor, upload_id: str) -> tuple[int, Headers]:
        _require_offset_type(environ)
        offset = number(environ.get("HTTP_UPLOAD_OFFSET"), "Upload-Offset")
        upload = self._find(actor, upload_id)
        if upload.finished or offset != upload.offset:
            raise HttpError(409, "wrong offset", [("Upload-Offset", str(upload.offset))])
        return 204, self.receive(environ, actor, upload)

    def receive(self, environ: dict[str, Any], actor: Actor, upload: UploadRecord) -> Headers:
        """Take the request's body as `upload`'s next piece (a PATCH, or a creation
        with upload): its type, a deferred length it declares, its checksum; the
        headers telling where the upload stands after it."""
        _require_offset_type(environ)
        if "HTTP_UPLOAD_LENGTH" in environ:
            length = number(environ.get("HTTP_UPLOAD_LENGTH"), "Upload-Length")
            if upload.length is None:
                upload = self.engine.declare_length(actor, upload, length)
            elif length != upload.length:
                raise ValueError("Upload-Length cannot change")
        piece = parse_upload_checksum(environ.get("HTTP_UPLOAD_CHECKSUM"))
        left = (MAX_UPLOAD if upload.length is None else upload.length) - upload.offset
        declared = declared_length(environ)
        if declared is not None and declared > left:
            raise HttpError(413, f"{left} bytes left")
        try:
            blocks = stream_body(environ, left)
            result = self.engine.write(actor, upload, blocks, piece_checksum=piece)
        except BodyTooLong as e:
            raise HttpError(413, f"{left} bytes left") from e
        return self.written(result)

    def written(self, result: PartResult) -> Headers:
        """Where the upload stands after a piece (the file's name once committed)."""
        upload = result.upload
        if result.node is None:
            return self.state(upload)
        return [
            ("Upload-Offset", str(upload.length)),
            (NAME_HEADER, quote(result.node.name, safe="")),
        ]

    def _delete(self, environ: dict[str, Any], actor: Actor, upload_id: str) -> tuple[int, Headers]:
        if not self.engine.cancel(actor, upload_id):
            raise NotFound("no such upload")
        return 204, []


def _require_offset_type(environ: Mapping[str, Any]) -> None:
    """415 unless the body is a piece of an upload (`OFFSET_TYPE`)."""
    if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != OFFSET_TYPE:
        raise HttpError(415, f"the body must be {OFFSET_TYPE}")


def _concat(value: str | None) -> str | tuple[str, ...] | None:
    """Upload-Concat: "partial", or "final;<url> <url>..." as the URLs."""
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return "partial"
    kind, _, urls = value.partition(";")
    parts = tuple(urls.split())
    if kind.strip() != "final" or not parts:
        raise ValueError("Upload-Concat must be 'partial' or 'final;<url> ...'")
    return parts


def _mtime(value: str | None) -> float | None:
    """The `mtime` metadata: seconds since the epoch (a decimal, fraction allowed)."""
    if value is None:
        return None
    try:
        mtime = float(value)
    except ValueError as e:
        raise ValueError("mtime metadata must be seconds since the epoch") from e
    if not 0 <= mtime < 1e11:
        raise ValueError("mtime metadata is out of range")
    return mtime
