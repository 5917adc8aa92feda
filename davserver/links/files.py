"""A shared file's bytes over HTTP: `raw` (inline previews) and `download` (attachment).

What a response carries, and why:

- `ETag` is the content's strong digest (quoted) and `Last-Modified` its mtime in
  whole seconds; `If-Match`/`If-Unmodified-Since` fail with 412, `If-None-Match`/
  `If-Modified-Since` answer 304 (RFC 9110 13.2.2 order), `If-Range` guards a Range.
- One byte range (`bytes=a-b`, `a-`, `-n`) gets 206, an unsatisfiable one 416 with
  `Content-Range: bytes */size`; a multi-range or malformed header is ignored (200 with
  everything, which RFC 9110 14.2 allows). Seeking in `<video>` needs only this.
- `Cache-Control` (`cache_control`): a link with a download limit is `no-store` (each
  download must reach us to be counted); a password link `private, no-cache` (only
  the browser that holds the cookie keeps it, and revalidates); any other link
  `public, max-age=0, must-revalidate`, so a CDN may keep the bytes but asks us every
  time, and a revoked or expired link stops at once.
- Previews are inline only for types a browser shows without running anything:
  raster images, audio, video, PDF, and text, which is always `text/plain;
  charset=utf-8` (HTML and SVG are therefore never rendered as documents: SVG is
  download-only). Everything else gets `Content-Disposition: attachment` (RFC 6266,
  `filename*=UTF-8''...`), and everything a sandboxing Content-Security-Policy.
- Bytes stream from `FileStore.reader` a block at a time; the first block is read
  before the status is sent, so a blob store that is down gets 503, not a cut 200.

Download counting (`max_downloads`): a `download` GET counts once when it sends the
file from byte 0: a plain GET, or a Range starting at 0. A Range starting later is a
resumption or a player seeking, so it is not counted again; a HEAD, a 304, a 412 or
a 416 send nothing and count nothing. Previews (`raw`) are never counted. When the
count is refused (the last download went to someone else) the answer is the 404 page.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import logging
import mimetypes
import re
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from davserver.links.site import BASE_HEADERS, ShareRequest, not_found, respond
from providers.catalog import Catalog, NodeRecord, ShareLinkRecord
from providers.errors import IntegrityError, StorageError
from providers.filestore import ChunkReader, FileStore

log = logging.getLogger(__name__)
BLOCK = 1024 * 1024
FILE_CSP = (
    "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"
)
IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)
AUDIO_TYPES = frozenset(
    {"audio/mpeg", "audio/ogg", "audio/wav", "audio/x-wav", "audio/flac", "audio/x-flac",
     "audio/webm", "audio/aac", "audio/mp4", "audio/x-m4a", "audio/opus"}
)  # fmt: skip
VIDEO_TYPES = frozenset({"video/mp4", "video/webm", "video/ogg", "video/quicktime"})
TEXT_APPLICATION = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/x-sh",
     "application/x-python", "application/toml", "application/yaml", "application/x-yaml",
     "application/sql", "application/x-httpd-php", "application/x-tex"}
)  # fmt: skip
CODE_SUFFIXES = frozenset(
    {
        ".asm", ".bash", ".c", ".cc", ".cfg", ".clj", ".cmake", ".conf", ".cpp", ".cs", ".css",
        ".csv", ".dart", ".diff", ".dockerfile", ".el", ".env", ".erl", ".ex", ".exs", ".f90",
        ".fish", ".gitignore", ".go", ".gradle", ".h", ".hpp", ".hs", ".htm", ".html", ".ini",
        ".java", ".jl", ".js", ".json", ".jsx", ".kt", ".less", ".log", ".lua", ".m", ".md",
        ".mjs", ".mk", ".ml", ".nix", ".patch", ".php", ".pl", ".properties", ".ps1", ".py",
        ".pyi", ".r", ".rb", ".rs", ".rst", ".s", ".scala", ".scss", ".sh", ".sql", ".srt",
        ".svelte", ".swift", ".tex", ".toml", ".ts", ".tsv", ".tsx", ".txt", ".vtt", ".vue",
        ".xml", ".yaml", ".yml", ".zsh",
    }
)  # fmt: skip
TEXT_NAMES = frozenset(
    {
        "authors", "changelog", "copying", "dockerfile", "gemfile", "justfile", "licence",
        "license", "makefile", "notice", "procfile", "rakefile", "readme", "vagrantfile",
    }
)  # fmt: skip


@functools.lru_cache(maxsize=4096)
def guessed_type(name: str) -> str | None:
    return mimetypes.guess_type(name, strict=False)[0]


def preview_kind(node: NodeRecord) -> str | None:
    """How the file page shows `node`: "image", "audio", "video", "pdf", "text", or
    None (download only). Decided from the name (then the stored type): never from
    what the bytes claim to be."""
    media = guessed_type(node.name) or (node.content_type or "").split(";")[0].strip().lower()
    if media in IMAGE_TYPES:
        return "image"
    if media in AUDIO_TYPES:
        return "audio"
    if media in VIDEO_TYPES:
        return "video"
    if media == "application/pdf":
        return "pdf"
    path = PurePosixPath(node.name.lower())
    if path.suffix in CODE_SUFFIXES or path.stem in TEXT_NAMES or path.name in TEXT_NAMES:
        return "text"
    if media == "image/svg+xml":
        return None
    if media.startswith("text/") or media in TEXT_APPLICATION:
        return "text"
    return None


def inline_type(node: NodeRecord, kind: str) -> str:
    """The Content-Type of an inline preview of `kind`."""
    if kind == "text":
        return "text/plain; charset=utf-8"
    if kind == "pdf":
        return "application/pdf"
    return guessed_type(node.name) or (node.content_type or "application/octet-stream")


def content_disposition(kind: str, name: str) -> str:
    """RFC 6266: an ASCII fallback `filename` and the exact name as `filename*`."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def cache_control(link: ShareLinkRecord) -> str:
    """See the module docstring."""
    if link.max_downloads is not None:
        return "no-store"
    if link.password_hash:
        return "private, no-cache"
    return "public, max-age=0, must-revalidate"


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(int(timestamp), usegmt=True)


def parse_http_date(value: str | None) -> int | None:
    """Seconds since the epoch of an HTTP date, None when absent or invalid."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": GMT all the same
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return int(parsed.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _etag_listed(header: str, etag: str, *, weak: bool) -> bool:
    """Whether `etag` is in an If-(None-)Match list; `weak` comparison drops W/."""
    for item in header.split(","):
        tag = item.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def precondition(environ: dict[str, Any], etag: str, mtime: int) -> str | None:
    """ "412", "304" or None (go on), in RFC 9110 13.2.2's order."""
    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is not None:
        if not _etag_listed(if_match, etag, weak=False):
            return "412"
    else:
        since = parse_http_date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
        if since is not None and mtime > since:
            return "412"
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        return "304" if _etag_listed(if_none_match, etag, weak=True) else None
    modified = parse_http_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    return "304" if modified is not None and mtime <= modified else None


_RANGE = re.compile(r"\s*bytes\s*=\s*(?:(\d+)-(\d*)|-(\d+))\s*", re.ASCII | re.IGNORECASE)


class Unsatisfiable(Exception):
    """A byte range that lies wholly past the end of the file (416)."""


def byte_range(environ: dict[str, Any], size: int, etag: str, mtime: int) -> tuple[int, int] | None:
    """The one range asked for as (start, end exclusive), or None for the whole file.
    Raises `Unsatisfiable` for a range past the end."""
    match = _RANGE.fullmatch(environ.get("HTTP_RANGE", ""))
    if match is None:
        return None  # absent, several ranges, another unit or malformed: all of it
    if_range = environ.get("HTTP_IF_RANGE")
    if if_range is not None and not (
        if_range.strip() == etag or parse_http_date(if_range) == mtime
    ):
        return None  # the client's copy is stale: it gets the whole new file
    first, last, suffix = match.groups()
    if suffix is not None:  # the final `suffix` bytes
        if int(suffix) == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - int(suffix)), size
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise Unsatisfiable
    return int(first), size if not last else min(size, int(last) + 1)


def serve_file(
    req: ShareRequest,
    start_response: Callable[..., Any],
    files: FileStore,
    catalog: Catalog,
    *,
    attachment: bool,
) -> Any:
    """Answer GET/HEAD for the file `req.node` (see the module docstring); `attachment`
    is the `download` action (counted), otherwise `raw` (previews only)."""
    node = req.node
    assert node is not None and not node.is_dir
    kind = preview_kind(node)
    if not attachment and kind is None:
        return not_found(start_response)  # raw serves previews, nothing else
    etag, mtime = f'"{node.digest}"', int(node.mtime)
    headers = [
        ("ETag", etag),
        ("Last-Modified", http_date(mtime)),
        ("Cache-Control", cache_control(req.link)),
    ]
    verdict = precondition(req.environ, etag, mtime)
    if verdict == "304":
        start_response("304 Not Modified", [*headers, *BASE_HEADERS])
        return []
    if verdict == "412":
        return respond(start_response, "412 Precondition Failed", b"", "text/plain")
    headers += _representation(node, None if attachment else kind)
    headers += [("Accept-Ranges", "bytes"), *BASE_HEADERS]
    try:
        span = byte_range(req.environ, node.size, etag, mtime)
    except Unsatisfiable:
        start_response(
            "416 Range Not Satisfiable",
            [*headers, ("Content-Range", f"bytes */{node.size}"), ("Content-Length", "0")],
        )
        return []
    return _send(req, start_response, files, catalog, headers, span, counted=attachment)


def _representation(node: NodeRecord, inline: str | None) -> list[tuple[str, str]]:
    """Type, disposition and CSP: inline as preview kind `inline`, or (None) as an
    attachment of the name's type."""
    if inline is None:
        media = guessed_type(node.name) or "application/octet-stream"
        disposition = content_disposition("attachment", node.name)
    else:
        media, disposition = inline_type(node, inline), content_disposition("inline", node.name)
    return [
        ("Content-Type", media),
        ("Content-Disposition", disposition),
        ("Content-Security-Policy", FILE_CSP),
    ]


def _send(
    req: ShareRequest,
    start_response: Callable[..., Any],
    files: FileStore,
    catalog: Catalog,
    headers: list[tuple[str, str]],
    span: tuple[int, int] | None,
    *,
    counted: bool,
) -> Any:
    node = req.node
    assert node is not None
    start, end = span if span is not None else (0, node.size)
    status = "200 OK"
    if span is not None:
        status = "206 Partial Content"
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{node.size}"))
    headers.append(("Content-Length", str(end - start)))
    if req.method == "HEAD":
        start_response(status, headers)
        return []
    reader = files.reader(node.content_id, node.size)
    try:
        reader.seek(start)
        first = reader.read(min(BLOCK, end - start)) if end > start else b""
    except StorageError as e:
        reader.close()
        log.warning("share link %s: reading %s failed: %s", req.link.id, node.id, e)
        return respond(start_response, "503 Service Unavailable", b"try again later", "text/plain")
    if counted and start == 0 and not catalog.links.count_download(req.link.id):
        reader.close()
        return not_found(start_response)
    start_response(status, headers)
    return _blocks(reader, first, end - start)


def _blocks(reader: ChunkReader, first: bytes, length: int) -> Iterator[bytes]:
    """`length` bytes from `reader`, `first` already read; a file that ends early
    raises, so the connection is cut instead of hanging on a short body."""
    try:
        sent = len(first)
        if first:
            yield first
        while sent < length:
            data = reader.read(min(BLOCK, length - sent))
            if not data:
                raise IntegrityError(f"content ended at {sent} of {length} bytes")
            sent += len(data)
            yield data
    finally:
        reader.close()
