"""`FileResource`: a stored file, its streamed GET and PUT, its checksums, and the body
adapters between WsgiDAV and the filestore.

Checksums (`providers.checksums`, `docs/checksums.md`): the door parses what a PUT
announces and leaves it in `environ[ANNOUNCED_CHECKSUMS]` (hashlib name -> hex); the
upload hands it to the operations layer, which verifies it before the commit. The
committed content's checksums are left in `environ[STORED_CHECKSUMS]` for the door to
answer with. `oc:checksums` is a live property of files (`SHA1:.. MD5:.. SHA256:..`);
404 for a file whose content has none yet.
"""

from __future__ import annotations

import dataclasses
import functools
import mimetypes
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVNonCollection

from providers.catalog import ContentView, NewContent, NodeRecord
from providers.checksums import Checksums
from providers.chunk_reader import ChunkReader
from providers.dav.errors import dav_error_context, dav_errors
from providers.dav.node import DEST, NodeMixin
from providers.dav.oc_props import OC_CHECKSUMS, OC_NS
from providers.filestore import FileWriter, file_label
from providers.operations import Located, Operations, PendingWrite

ANNOUNCED_CHECKSUMS = "davserver.announced_checksums"  # environ: what a PUT says its body is
STORED_CHECKSUMS = "davserver.stored_checksums"  # environ: the checksums a PUT committed
_UNKNOWN: Any = object()  # checksums not looked up yet


class _HasNode(Protocol):
    @property
    def node(self) -> NodeRecord: ...


class FileFacts:
    """What a file resource tells from its record `node`: size, type, its content
    digest as ETag, and byte ranges (a stored file, or one in a snapshot)."""

    def get_content_length(self: _HasNode) -> int:
        return self.node.size

    def get_content_type(self: _HasNode) -> str:
        return content_type_of(self.node)

    def get_etag(self: _HasNode) -> str | None:
        return self.node.digest

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True


class StoredContent(FileFacts):
    """A read-only file whose bytes are its record's stored content (`node`), read
    with `ops`: a file in a snapshot, an old version, a trashed file. GET and Range
    are answered by the door as any file's, with the content's checksums."""

    ops: Operations
    node: NodeRecord

    @dav_errors
    def get_content(self) -> _DavReader:
        """The bytes, read as any file's (engine errors become DAVErrors)."""
        return _DavReader(
            self.ops.files.reader(self.node.content_id, self.node.size, label=file_label(self.node))
        )

    @dav_errors
    def checksums(self) -> Checksums | None:
        """The content's stored checksums (None: none yet)."""
        return self.ops.checksums(self.node)

    @dav_errors
    def learn_checksums(self, checksums: Checksums) -> None:
        """Keep checksums a full GET computed (of the content: not a change of a file)."""
        self.ops.learn_checksums(self.node, checksums)


class FileResource(NodeMixin, FileFacts, DAVNonCollection):
    """A stored file. A pending one (PUT of a new name) has `node.id == 0` until
    commit, and knows the folder it goes into (`parent`)."""

    parent: Located | None = None  # the folder of a pending file
    _pending: PendingWrite | None = None  # the upload of a PUT in progress
    _content_type: str | None = None
    _checksums: Checksums | None = _UNKNOWN
    _view: ContentView | None = None  # a small file's content, looked up with its checksums

    def checksums(self) -> Checksums | None:
        """The content's stored checksums (looked up once; None: none yet). A small
        file's come with its extents and locators, kept for `get_content`: a GET asks
        for both, and one query answers."""
        if self._checksums is _UNKNOWN:
            found = None
            if self.node.id:
                with dav_error_context():
                    files = self.provider.ops.files
                    self._view = files.content_view(self.node.content_id, self.node.size)
                    if self._view is None:
                        found = self.provider.ops.checksums(self.node)
                    else:
                        found = self._view.checksums
            self._checksums = found
        return self._checksums

    def known_checksums(self, checksums: Checksums | None) -> None:
        """Set the checksums a listing looked up for all its members at once."""
        self._checksums = checksums

    def learn_checksums(self, checksums: Checksums) -> None:
        """Keep checksums a full GET computed (the content had none)."""
        with dav_error_context():
            self.provider.ops.learn_checksums(self.node, checksums)
        self._checksums = checksums

    def get_property_value(self, name: str) -> Any:
        """`oc:checksums` is live (and wins over a dead one a client once set)."""
        if name != OC_CHECKSUMS:
            return super().get_property_value(name)
        checksums = self.checksums()
        if checksums is None:
            raise DAVError(HTTP_NOT_FOUND, "no checksums yet")
        element = etree.Element(OC_CHECKSUMS, nsmap={"oc": OC_NS})
        etree.SubElement(element, f"{{{OC_NS}}}checksum").text = checksums.oc_value
        return element

    @dav_errors
    def get_content(self) -> Any:
        files = self.provider.ops.files
        reader = files.reader(
            self.node.content_id, self.node.size, label=file_label(self.node), view=self._view
        )
        return _DavReader(reader)

    @dav_errors
    def begin_write(self, *, content_type: str | None = None) -> RequestBodyWriter:
        """Start an upload, checked by the operations layer before the body is read:
        rights, locks, and the owner's quota against the announced size
        (Content-Length, or Finder's X-Expected-Entity-Length): 507 here rather than
        after the body; a body that grows past the quota stops with 507 as soon as it
        does. The binding quota check is the commit's."""
        self._content_type = content_type
        ops, actor = self.provider.ops, self.provider.actor(self.environ)
        is_put = self.environ.get("REQUEST_METHOD") == "PUT"
        announced = _announced_length(self.environ) if is_put else None
        expected = self.environ.get(ANNOUNCED_CHECKSUMS) if is_put else None
        if self.node.id:
            self._pending = ops.overwrite(
                actor, self.located, announced=announced, expected=expected
            )
        else:
            assert self.parent is not None
            self._pending = ops.create_file(
                actor, self.parent, self.name, announced=announced, expected=expected
            )
        return RequestBodyWriter(self._pending.writer, self.environ)

    @dav_errors
    def end_write(self, *, with_errors: bool) -> None:
        """Commit the received body; with errors (the body or its storing failed) drop
        it: nothing is committed and its stored chunks are left for GC."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if with_errors:
            pending.writer.abort()
            return
        expected = _announced_length(self.environ)
        try:
            content = pending.writer.finish()
        except BaseException:
            pending.writer.abort()
            raise
        if expected is not None and content.size != expected:
            raise DAVError(HTTP_BAD_REQUEST, "request body length differs from the announced one")
        self._commit(pending, content)

    def _commit(self, pending: PendingWrite, content: NewContent) -> None:
        """Commit `content`. If another spelling of a new name was created meanwhile,
        that file is overwritten and keeps its spelling, and this resource takes its
        path, so a lock taken next is keyed correctly."""
        actor = self.provider.actor(self.environ)
        mtime = client_mtime(self.environ) or time.time()
        node = self.provider.ops.commit(
            actor, pending, content, mtime=mtime, content_type=self._content_type
        )
        self._checksums, self._view = content.checksums, None  # the old content's view
        self.environ[STORED_CHECKSUMS] = content.checksums
        shown = (*self.located.shown[:-1], node.name)
        names = (*pending.place.owner_names[:-1], node.name)
        self.located = Located(node, shown, dataclasses.replace(pending.place, owner_names=names))
        self.path = util.join_uri(util.get_uri_parent(self.path), node.name)
        self.name = node.name
        self.environ[DEST] = self.located

    def create_empty(self) -> None:
        """Commit this pending file empty (a LOCK of an unmapped URL creates it)."""
        writer = self.begin_write()
        writer.writelines([])
        assert self._pending is not None
        self._commit(self._pending, writer.finish())
        self._pending = None


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


def _guess_type(name: str) -> str:
    """The media type `mimetypes` guesses for a name, cached by the name's last two
    extensions (a listing asks for every member, and few extensions recur).

    `mimetypes.guess_type` reads no more of a name than its last two extensions (the
    last, and the one before when the last is an encoding such as `.gz`), split as
    `posixpath.splitext` does, so "x" and that tail give the same answer as the name.
    Two kinds of name are read further and are looked up whole: a leading dot (which
    `splitext` does not count as an extension) and a colon (a URL scheme to it)."""
    if name.startswith(".") or ":" in name:
        return _guessed(name)
    last = name.rfind(".")
    if last < 0:
        return _guessed("x")
    before = name.rfind(".", 0, last)
    return _guessed("x" + name[before if before > 0 else last :])


@functools.lru_cache(maxsize=4096)
def _guessed(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _announced_length(environ: dict[str, Any]) -> int | None:
    """The body length the client announced: Content-Length, else the
    X-Expected-Entity-Length macOS Finder sends with a chunked PUT. A body that differs
    (a proxy that cut a chunked stream short) is refused, never stored as a short file."""
    if "CONTENT_LENGTH" in environ:
        return util.get_content_length(environ)
    value = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH", "")
    return int(value) if value.isdigit() else None


def client_mtime(environ: dict[str, Any]) -> float | None:
    """X-OC-Mtime (seconds since the epoch), as rclone and ownCloud clients send it."""
    value = environ.get("HTTP_X_OC_MTIME", "")
    return float(value) if value.isdigit() else None
