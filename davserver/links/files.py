"""A shared file's bytes over HTTP: `raw` (inline previews) and `download` (attachment).

What a response carries, and why:

- `ETag` is the content's strong digest (quoted) and `Last-Modified` its mtime in
  whole seconds; `If-Match`/`If-Unmodified-Since` fail with 412, `If-None-Match`/
  `If-Modified-Since` answer 304 (RFC 9110 13.2.2 order), `If-Range` guards a Range.
- Conditions and ranges are every door's (`davserver.http.content`): one range gets
  206, several a `multipart/byteranges` 206, an unsatisfiable one 416 with
  `Content-Range: bytes */size`, a malformed header 200 with everything.
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
  before the status is sent (and before a download is counted), so a blob store that
  is down gets 503, not a cut 200.

Download counting (`max_downloads`): a `download` GET counts once when it sends the
file's byte 0: a plain GET, or ranges that include byte 0. Ranges starting later are a
resumption or a player seeking, so they are not counted again; a HEAD, a 304, a 412
or a 416 send nothing and count nothing. Previews (`raw`) are never counted. When the
count is refused (the last download went to someone else) the answer is the 404 page.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from davserver.http import content
from davserver.http.environ import StartResponse
from davserver.http.errors import from_storage, with_request_id
from davserver.links.site import BASE_HEADERS, ShareRequest, not_found, respond
from providers.catalog import Catalog, NodeRecord, ShareLinkRecord
from providers.checksums import Checksums
from providers.errors import StorageError
from providers.filestore import FileStore, file_label

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


def serve_file(
    req: ShareRequest,
    start_response: StartResponse,
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
    rep = representation(node, files, catalog)
    answer = content.plan(req.environ, rep)
    headers = [("Cache-Control", cache_control(req.link)), *BASE_HEADERS]
    if answer.status in (200, 206):
        headers += _representation(node, None if attachment else kind)
    admit = None
    if attachment and answer.sends_first_byte:

        def admit() -> None:
            if not catalog.links.count_download(req.link.id):
                raise DownloadsUsedUp

    try:
        return content.send(
            req.environ, start_response, rep, answer, headers, block_size=BLOCK, admit=admit
        )
    except DownloadsUsedUp:
        return not_found(start_response)
    except StorageError as e:
        error = from_storage(e, f"share link {req.link.id}: reading node {node.id}")
        body = with_request_id(error.reason).encode()
        return respond(start_response, error.status_line, body, "text/plain")


class DownloadsUsedUp(Exception):
    """The link's last download went to someone else meanwhile."""


def representation(
    node: NodeRecord, files: FileStore, catalog: Catalog | None = None
) -> content.Representation:
    """A stored file as `davserver.http.content` sends it; with the `catalog`, with its
    checksums, and a full download keeps those it computes for a file without them."""
    checksums: Checksums | None = None
    learn: Callable[[Checksums], object] | None = None
    if catalog is not None and node.content_id:
        checksums = catalog.checksums.get(node.content_id)
        learn = functools.partial(catalog.checksums.fill, node.content_id)
    return content.Representation(
        size=node.size,
        etag=node.digest or "",
        last_modified=int(node.mtime),
        content_type=guessed_type(node.name) or "application/octet-stream",
        open=lambda: files.reader(node.content_id, node.size, label=file_label(node)),
        checksums=checksums,
        learn=learn,
    )


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
