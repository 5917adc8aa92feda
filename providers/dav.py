"""The WsgiDAV provider: WebDAV resources over the catalog and the filestore.

Each authenticated user sees their own home (`environ["wsgidav.auth.user_name"]`).
This is the only module where engine errors become `DAVError`s (`_dav_errors`).
COPY, MOVE and DELETE are handled whole (`handle_*` return True), each as one catalog
transaction; locks of removed or moved paths are dropped here. Dead properties live in
the catalog and are loaded for a whole listing in one query, so a PROPFIND costs a
constant number of queries whatever the folder size.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from lxml import etree
from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider, _DAVResource

from providers.access import (
    LOCK_KEY_PREFIX,
    SHARED,
    SHARED_KEY,
    Place,
    SharedSpace,
    home_place,
)
from providers.catalog import Catalog, NewContent, NodeRecord, UserRecord
from providers.errors import (
    Conflict,
    IntegrityError,
    InvalidName,
    NotFound,
    QuotaExceeded,
    StorageError,
    Unavailable,
)
from providers.filestore import ChunkReader, FileStore, FileWriter
from providers.names import check_name, name_key, split_path
from providers.shared_folder import SharedFolder

log = logging.getLogger(__name__)
HTTP_SERVICE_UNAVAILABLE = 503
DEST_CREATED = "davserver.dest_created"  # environ key set by COPY/MOVE handling
WIN32_MTIME = "{urn:schemas-microsoft-com:}Win32LastModifiedTime"
F = TypeVar("F", bound=Callable[..., Any])
_STATUS = [
    (InvalidName, HTTP_BAD_REQUEST),
    (NotFound, HTTP_NOT_FOUND),
    (Conflict, HTTP_CONFLICT),
    (QuotaExceeded, HTTP_INSUFFICIENT_STORAGE),
    (Unavailable, HTTP_SERVICE_UNAVAILABLE),
    (IntegrityError, HTTP_INTERNAL_ERROR),
]


@contextmanager
def _dav_errors() -> Iterator[None]:
    """Translate engine errors into DAVErrors with the right status and a short reason."""
    try:
        yield
    except StorageError as e:
        status = next((code for kind, code in _STATUS if isinstance(e, kind)), HTTP_INTERNAL_ERROR)
        if status >= 500:
            log.warning("storage error: %s", e)
        raise DAVError(status, context_info=str(e)) from e


def dav_errors(fn: F) -> F:
    """Decorator form of `_dav_errors`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _dav_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class HomeProvider(DAVProvider):
    """Maps `/<path>` to the authenticated user's tree, and `/Shared/...` to what others
    granted them (`providers.access`).

    `free_bytes` reports the space left in the blob store (None if unknown); it is the
    quota-available answer for users without a quota.
    """

    def __init__(
        self, catalog: Catalog, files: FileStore, free_bytes: Callable[[], int | None]
    ) -> None:
        super().__init__()
        self.catalog = catalog
        self.files = files
        self.free_bytes = free_bytes
        self.shares = SharedSpace(catalog)

    def is_readonly(self) -> bool:
        return False

    @dav_errors
    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> _DAVResource | None:
        """The resource at `path`, named by its stored spelling whatever spelling the
        request used (names match normalised): lock URLs and hrefs derive from it, so a
        lock taken through an NFD URL also guards writes through the NFC URL and can be
        released through either."""
        if path.startswith(LOCK_KEY_PREFIX):
            path = self._path_of_lock_key(path, environ)
        found = self.locate(split_path(path), environ)
        if found is None:
            return None
        node, shown, place = found
        return self.resource(
            _path_of(shown, trailing_slash=path.endswith("/")), node, environ, place
        )

    def locate(
        self, names: list[str], environ: dict[str, Any]
    ) -> tuple[NodeRecord | None, list[str], Place] | None:
        """(node, shown names, place) of `names` for the request's user, or None if they
        have nothing there; node is None for the virtual `Shared/` collection."""
        user = self.user(environ)
        if names and name_key(names[0]) == SHARED_KEY:
            return self.shares.locate(user.id, names[1:])
        found = self.catalog.tree.resolve_path(user.home_id, names)
        if found is None:
            return None
        node, stored = found
        return node, stored, home_place(user.id, stored)

    def _path_of_lock_key(self, key: str, environ: dict[str, Any]) -> str:
        """The user's path for a lock key (`Place.lock_path`): WsgiDAV maps a lock's
        root back to a resource to show it. A root the user cannot see (an owner's lock
        on a folder above what they were granted) shows as the nearest visible entry."""
        owner, _, rest = key[len(LOCK_KEY_PREFIX) :].partition("/")
        names = [n for n in rest.split("/") if n]
        user = self.user(environ)
        shown = self.shares.view_names(user.id, int(owner), names) if owner.isdigit() else []
        return _path_of(shown or [SHARED])

    def user(self, environ: dict[str, Any]) -> UserRecord:
        """The request's user (looked up once per request)."""
        user = environ.get("davserver.user")
        if user is None:
            name = environ.get("wsgidav.auth.user_name")
            user = self.catalog.users.get(name) if name else None
            if user is None:
                raise DAVError(HTTP_FORBIDDEN, "no such user")
            environ["davserver.user"] = user
        return user

    def resource(
        self,
        path: str,
        node: NodeRecord | None,
        environ: dict[str, Any],
        place: Place,
        props: dict[str, str] | None = None,
    ) -> _DAVResource:
        """The resource for a located node (None: the virtual `Shared/`)."""
        if node is None:
            return SharedFolder(path, environ, self, place)
        kind = FolderResource if node.is_dir else FileResource
        return kind(path, environ, self, node, place, props)


def _path_of(names: list[str], *, trailing_slash: bool = False) -> str:
    """The path of `names` below the home ('/' for none), optionally ending in '/'."""
    joined = "/" + "/".join(names)
    return joined + "/" if names and trailing_slash else joined


@dataclass(frozen=True)
class _Destination:
    """Where a COPY or MOVE goes: the parent folder, the name as the client gave it,
    the node already there (None if new) and the key that locks of the destination are
    kept under (`Place.lock_path`, with the existing node's spelling, else the given
    one)."""

    parent: NodeRecord
    name: str
    target: NodeRecord | None
    lock_path: str


class _NodeMixin:
    """What files and folders share: live props from the node, dead props, MOVE/COPY/DELETE."""

    provider: HomeProvider
    environ: dict[str, Any]
    path: str
    node: NodeRecord
    place: Place
    _props: dict[str, str] | None

    def get_ref_url(self) -> str:
        """Locks are keyed by the node's place in its owner's tree (`Place.lock_path`)."""
        trailing = "/" if self.node.is_dir else ""
        return quote(self.provider.share_path + self.place.lock_path + trailing)

    def require_write(self, *, removing: bool = False) -> None:
        """403 unless the user may write here (`removing`: delete or move this itself)."""
        allowed = self.place.can_remove if removing else self.place.can_write
        if not allowed:
            what = "it is shared with you read-only"
            if self.place.can_write:
                what = "only its owner can remove or rename it"
            raise DAVError(HTTP_FORBIDDEN, context_info=what)

    def get_creation_date(self) -> float:
        return self.node.created

    def get_last_modified(self) -> float:
        # HTTP dates have whole seconds: compare If-Modified-Since against the same.
        return float(int(self.node.mtime))

    def get_display_name(self) -> str:
        return self.node.name

    def dead_props(self) -> dict[str, str]:
        if self._props is None:
            with _dav_errors():
                self._props = self.provider.catalog.tree.props([self.node.id])[self.node.id]
        return self._props

    def get_property_names(self, *, is_allprop: bool) -> list[str]:
        names = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        return names + list(self.dead_props())

    def get_property_value(self, name: str) -> Any:
        if name == WIN32_MTIME:
            # Live, so it never disagrees with getlastmodified after a later PUT.
            element = etree.Element(name)
            element.text = util.get_rfc1123_time(self.get_last_modified())
            return element
        value = self.dead_props().get(name)
        if value is not None:
            return etree.fromstring(value)
        return super().get_property_value(name)  # type: ignore[misc]

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        """Dead props are stored; Windows' Win32LastModifiedTime sets the mtime and its
        other Win32 props (creation/access time, attributes) are kept as dead props, so
        Explorer reads back what it wrote (WsgiDAV alone would answer 200 and drop them)."""
        if name.startswith("{DAV:}"):
            return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
        if name == WIN32_MTIME:
            if value is None:
                return None
            return self.set_last_modified(self.path, value.text, dry_run=dry_run)
        self.require_write()
        if dry_run:
            return None
        text = None if value is None else etree.tostring(value).decode("utf-8")
        with _dav_errors():
            self.provider.catalog.tree.set_prop(self.node.id, name, text)
        self._props = None
        return None

    @dav_errors
    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        if isinstance(time_stamp, int | float):
            mtime = float(time_stamp)
        else:
            parsed = util.parse_time_string(str(time_stamp))
            if parsed is None:
                raise DAVError(HTTP_BAD_REQUEST, "unparseable time")
            mtime = float(parsed)
        self.require_write()
        if not dry_run:
            self.provider.catalog.tree.set_mtime(self.node.id, mtime)
        return True

    @dav_errors
    def handle_delete(self) -> bool:
        self.require_write(removing=True)
        self._check_subtree_unlocked()
        self.provider.catalog.tree.delete(self.node.id, self.path)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        return True

    @dav_errors
    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        dest = self._destination(dest_path)
        if dest.target is not None and dest.target.id == self.node.id:
            # Another spelling of the source's own path: WsgiDAV refuses the same path
            # with 403, so the same node gets that answer too.
            raise DAVError(HTTP_FORBIDDEN, "cannot copy a resource onto itself")
        tree = self.provider.catalog.tree
        if self.node.is_dir and not depth_infinity:
            node = tree.mkdir(dest.parent.id, dest.name, dest.parent.owner_id, dest_path)
        else:
            node = tree.copy(self.node.id, dest.parent.id, dest.name, dest_path)
        self._drop_locks(dest.lock_path)
        return node is not None

    @dav_errors
    def handle_move(self, dest_path: str) -> bool:
        """Move or rename; a destination that is the source under another spelling is
        a rename that only changes the spelling."""
        self.require_write(removing=True)
        dest = self._destination(dest_path)
        self.provider.catalog.tree.move(self.node.id, dest.parent.id, dest.name, dest_path)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        self._drop_locks(dest.lock_path)
        return True

    def _destination(self, dest_path: str) -> _Destination:
        """Resolve a COPY/MOVE destination: 403 where the user may not write (or the
        reserved `Shared` name), 409 if its parent is not a folder. Records in the
        environ whether the target is new (`davserver.dest_created`), so the request
        server can answer 201 vs 204."""
        names = split_path(dest_path)
        if not names or (len(names) == 1 and name_key(names[0]) == SHARED_KEY):
            raise DAVError(HTTP_FORBIDDEN, "cannot replace the home or Shared collection")
        found = self.provider.locate(names[:-1], self.environ)
        if found is None or (found[0] is not None and not found[0].is_dir):
            raise DAVError(HTTP_CONFLICT, "destination parent must be a collection")
        parent, _shown, parent_place = found
        if parent is None or not parent_place.can_write:
            raise DAVError(HTTP_FORBIDDEN, "no write access to the destination folder")
        target = self.provider.catalog.tree.resolve(parent.id, names[-1:])
        self.environ[DEST_CREATED] = target is None
        stored_name = names[-1] if target is None else target.name
        return _Destination(parent, names[-1], target, parent_place.child(stored_name).lock_path)

    def _drop_locks(self, lock_path: str) -> None:
        """Release every lock at or below `lock_path` (a `Place.lock_path`)."""
        manager = self.provider.lock_manager
        if manager is not None:
            url = quote(self.provider.share_path + lock_path)
            manager.remove_all_locks_from_url(url, recursive=True)

    def _check_subtree_unlocked(self) -> None:
        manager = self.provider.lock_manager
        if manager is not None:
            manager.check_write_permission(
                url=self.get_ref_url(),
                depth="infinity",
                token_list=self.environ.get("wsgidav.ifLockTokenList", []),
                principal=self.environ.get("wsgidav.user_name"),
            )


class FileResource(_NodeMixin, DAVNonCollection):
    """A stored file. A pending one (PUT of a new name) has `node.id == 0` until commit."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: HomeProvider,
        node: NodeRecord,
        place: Place,
        props: dict[str, str] | None = None,
    ) -> None:
        super().__init__(path, environ)
        self.provider = provider
        self.node = node
        self.place = place
        self._props = props if node.id else {}
        self._writer: FileWriter | None = None

    def get_content_length(self) -> int:
        return self.node.size

    def get_content_type(self) -> str:
        if self.node.content_type:
            return self.node.content_type
        return _guess_type(self.node.name)

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
        return RequestBodyWriter(self._writer)

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

    WsgiDAV answers any exception from `writelines` that is not a DAVError with 500, so
    errors are translated here: a failure to read the body (malformed chunked encoding,
    a client that stalls or hangs up) is the client's (400); a storage failure while the
    body streams in is 503.
    """

    def __init__(self, writer: FileWriter) -> None:
        self._writer = writer

    @dav_errors
    def writelines(self, blocks: Iterable[bytes]) -> None:
        self._writer.writelines(_client_blocks(blocks))

    def close(self) -> None:
        """Nothing to do: `end_write` finishes or aborts the upload."""

    @dav_errors
    def finish(self) -> NewContent:
        return self._writer.finish()


def _client_blocks(blocks: Iterable[bytes]) -> Iterator[bytes]:
    iterator = iter(blocks)
    while True:
        try:
            block = next(iterator)
        except StopIteration:
            return
        except Exception as e:
            raise DAVError(
                HTTP_BAD_REQUEST, context_info=f"reading the body failed: {e!r:.80}"
            ) from e
        yield block


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


class FolderResource(_NodeMixin, DAVCollection):
    """A directory (a user's home included)."""

    def __init__(
        self,
        path: str,
        environ: dict[str, Any],
        provider: HomeProvider,
        node: NodeRecord,
        place: Place,
        props: dict[str, str] | None = None,
    ) -> None:
        super().__init__(path, environ)
        self.provider = provider
        self.node = node
        self.place = place
        self._props = props

    def get_etag(self) -> None:
        return None

    def support_etag(self) -> bool:
        return False

    @dav_errors
    def get_member_names(self) -> list[str]:
        return [r.name for r in self.get_member_list()]

    @dav_errors
    def get_member(self, name: str) -> _DAVResource | None:
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)

    @dav_errors
    def get_member_list(self) -> list[_DAVResource]:
        """All members with their dead props: two queries in all (a home also lists
        the virtual `Shared/`, and hides a stored node of that reserved name)."""
        nodes, props = self.provider.catalog.tree.listing(self.node.id)
        members = [
            self.provider.resource(
                util.join_uri(self.path, n.name),
                n,
                self.environ,
                self.place.child(n.name),
                props[n.id],
            )
            for n in nodes
            if not (self._is_home and name_key(n.name) == SHARED_KEY)
        ]
        shared = None
        if self._is_home:
            shared = self.provider.get_resource_inst(util.join_uri(self.path, SHARED), self.environ)
        if shared is not None:
            members.append(shared)
        return members

    @property
    def _is_home(self) -> bool:
        return self.node.parent_id is None

    def _require_new_member(self, name: str) -> str:
        """The checked name of a new member: 403 without write access, or for the
        reserved `Shared` at the home root."""
        name = check_name(name)
        self.require_write()
        if self._is_home and name_key(name) == SHARED_KEY:
            raise DAVError(HTTP_FORBIDDEN, context_info="'Shared' is reserved for shares")
        return name

    @dav_errors
    def create_empty_resource(self, name: str) -> FileResource:
        """A PUT's new file stays pending until its body is committed; others commit now.
        The name is kept as the client spelled it."""
        name = self._require_new_member(name)
        path = util.join_uri(self.path, name)
        pending = NodeRecord(
            id=0,
            parent_id=self.node.id,
            name=name,
            kind="file",
            owner_id=self.node.owner_id,
            size=0,
            mtime=time.time(),
            created=time.time(),
            content_id=None,
            digest=None,
            content_type=None,
        )
        place = self.place.child(name)
        resource = FileResource(path, self.environ, self.provider, pending, place)
        if self.environ.get("REQUEST_METHOD") != "PUT":
            writer = resource.begin_write()
            writer.writelines([])
            resource._commit(writer.finish())
        return resource

    @dav_errors
    def create_collection(self, name: str) -> None:
        """MKCOL of a new name, kept as spelled; `Conflict` if another spelling exists."""
        name = self._require_new_member(name)
        self.provider.catalog.tree.mkdir(
            self.node.id, name, self.node.owner_id, util.join_uri(self.path, name)
        )

    def get_used_bytes(self) -> int:
        """The folder's owner's usage (in `Shared/`, the sharing owner's: it is theirs
        that writes there count against)."""
        return self._owner().used_bytes

    def get_available_bytes(self) -> int | None:
        owner = self._owner()
        if owner.quota_bytes is not None:
            return max(0, owner.quota_bytes - owner.used_bytes)
        return self.provider.free_bytes()

    def _owner(self) -> UserRecord:
        user = self.provider.user(self.environ)
        if self.node.owner_id == user.id:
            return user
        with _dav_errors():
            owner = self.provider.catalog.users.by_id(self.node.owner_id)
        if owner is None:
            raise DAVError(HTTP_NOT_FOUND, "owner gone")
        return owner
