"""`FileResource`: a stored file, its streamed GET and PUT, and the body adapters
between WsgiDAV and the filestore."""

from __future__ import annotations

import functools
import mimetypes
import time
from collections.abc import Iterable, Iterator
from typing import Any

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_INSUFFICIENT_STORAGE,
    DAVError,
)
from wsgidav.dav_provider import DAVNonCollection

from providers.catalog import NewContent, NodeRecord
from providers.dav.errors import dav_errors
from providers.dav.node import NodeMixin
from providers.errors import Conflict
from providers.filestore import ChunkReader, FileWriter
from providers.names import split_path


class FileResource(NodeMixin, DAVNonCollection):
    """A stored file. A pending one (PUT of a new name) has `node.id == 0` until commit."""

    _writer: FileWriter | None = None  # the upload of a PUT in progress

    def get_content_length(self) -> int:
        return self.node.size

    def get_content_type(self) -> str:
        return content_type_of(self.node)

    def get_etag(self) -> str | None:
        return self.node.digest

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    @dav_errors
    def get_content(self) -> Any:
        return _DavReader(self.provider.files.reader(self.node.content_id, self.node.size))

    @dav_errors
    def begin_write(self, *, content_type: str | None = None) -> RequestBodyWriter:
        """Start an upload of at most the bytes the file's owner may still store (the
        quota left plus the size of the content it replaces; the owner, never the
        requesting user, is charged). A PUT announcing more (Content-Length, or
        Finder's X-Expected-Entity-Length) gets 507 here, before its body is read; a
        body that grows past the limit stops with 507 as soon as it does. The binding
        check is the commit's (`Contents.commit_file`)."""
        self.require_write()
        self._content_type = content_type
        user = self.provider.user(self.environ)
        if user.id == self.node.owner_id:  # as read when this request logged in
            available = user.available_bytes
        else:
            available = self.provider.catalog.users.available_bytes(self.node.owner_id)
        limit = None if available is None else available + self.node.size
        is_put = self.environ.get("REQUEST_METHOD") == "PUT"
        announced = _announced_length(self.environ) if is_put else None
        if limit is not None and announced is not None and announced > limit:
            raise DAVError(
                HTTP_INSUFFICIENT_STORAGE,
                context_info=f"quota exceeded: {announced} bytes announced, {limit} allowed",
            )
        self._writer = self.provider.files.writer(limit)
        return RequestBodyWriter(self._writer, self.environ)

    @dav_errors
    def end_write(self, *, with_errors: bool) -> None:
        """Commit the received body; with errors (the body or its storing failed) drop
        it: nothing is committed and its stored chunks are left for GC."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if with_errors:
            writer.abort()
            return
        expected = _announced_length(self.environ)
        try:
            content = writer.finish()
        except BaseException:
            writer.abort()
            raise
        if expected is not None and content.size != expected:
            raise DAVError(HTTP_BAD_REQUEST, "request body length differs from the announced one")
        self._commit(content)

    def _commit(self, content: Any) -> None:
        """Commit `content` under this resource's name. If another spelling of a new
        name was created meanwhile, that file is overwritten and keeps its spelling,
        and this resource takes its path, so a lock taken next is keyed correctly."""
        user = self.provider.user(self.environ)
        mtime = _client_mtime(self.environ) or time.time()
        parent_path = util.get_uri_parent(self.path)
        found = self.provider.locate(split_path(parent_path), self.environ)
        parent = found[0] if found else None
        if parent is None or not parent.is_dir:
            raise Conflict("parent collection vanished during the upload")
        self.node, _created = self.provider.catalog.contents.commit_file(
            parent.id,
            self.node.name,
            parent.owner_id,
            content,
            mtime=mtime,
            content_type=getattr(self, "_content_type", None),
            path=self.path,
            author_id=user.id,
        )
        self.path = util.join_uri(parent_path, self.node.name)
        self.name = self.node.name


class _DavReader:
    """The stream WsgiDAV reads: engine errors (a chunk that cannot be fetched) become
    DAVErrors, so a GET failing before its first block is answered 503, not 500."""

    def __init__(self, reader: ChunkReader) -> None:
        self._reader = reader

    @dav_errors
    def read(self, size: int = -1) -> bytes:
        return self._reader.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()


class RequestBodyWriter:
    """The file object WsgiDAV writes a PUT body into.

    WsgiDAV hands `writelines` its generator of body blocks. When the WSGI input offers
    `readinto` (davserver's server gives Content-Length bodies one, bounded by the body's
    end) the body is read from it straight into the chunker's buffer instead, saving a
    copy of every byte and a new `bytes` per block; WsgiDAV's flags are then set as its
    generator would have, so it neither reads the body again nor closes the connection.

    WsgiDAV answers any exception from `writelines` that is not a DAVError with 500, so
    errors are translated here: a failure to read the body (malformed chunked encoding,
    a client that stalls or hangs up) is the client's (400); a storage failure while the
    body streams in is 503.
    """

    def __init__(self, writer: FileWriter, environ: dict[str, Any]) -> None:
        self._writer = writer
        self._environ = environ

    @dav_errors
    def writelines(self, blocks: Iterable[bytes]) -> None:
        body = self._environ.get("wsgi.input")
        if not callable(getattr(body, "readinto", None)):
            self._writer.writelines(_client_blocks(blocks))
            return
        self._environ["wsgidav.some_input_read"] = 1
        self._writer.write_from(_ClientReader(body))
        self._environ["wsgidav.all_input_read"] = 1

    def close(self) -> None:
        """Nothing to do: `end_write` finishes or aborts the upload."""

    @dav_errors
    def finish(self) -> NewContent:
        return self._writer.finish()


class _ClientReader:
    """The request body as a `Reader`; failing to read it is the client's fault (400)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readinto(self, buffer: memoryview) -> int:
        try:
            received: int = self._body.readinto(buffer)
        except Exception as e:
            raise _body_error(e) from e
        return received


def _body_error(e: Exception) -> DAVError:
    return DAVError(HTTP_BAD_REQUEST, context_info=f"reading the body failed: {e!r:.80}")


def _client_blocks(blocks: Iterable[bytes]) -> Iterator[bytes]:
    iterator = iter(blocks)
    while True:
        try:
            block = next(iterator)
        except StopIteration:
            return
        except Exception as e:
            raise _body_error(e) from e
        yield block


def content_type_of(node: NodeRecord) -> str:
    """A file's media type: as uploaded, else guessed from its name."""
    return node.content_type or _guess_type(node.name)


@functools.lru_cache(maxsize=4096)
def _guess_type(name: str) -> str:
    """The media type for a name (cached: a listing asks twice per member)."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _announced_length(environ: dict[str, Any]) -> int | None:
    """The body length the client announced: Content-Length, else the
    X-Expected-Entity-Length macOS Finder sends with a chunked PUT. A body that differs
    (a proxy that cut a chunked stream short) is refused, never stored as a short file."""
    if "CONTENT_LENGTH" in environ:
        return util.get_content_length(environ)
    value = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH", "")
    return int(value) if value.isdigit() else None


def _client_mtime(environ: dict[str, Any]) -> float | None:
    """X-OC-Mtime (seconds since the epoch), as rclone and ownCloud clients send it."""
    value = environ.get("HTTP_X_OC_MTIME", "")
    return float(value) if value.isdigit() else None
