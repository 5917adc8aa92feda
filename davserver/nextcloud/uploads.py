"""Chunked uploads, as the Nextcloud and ownCloud clients and rclone send them, at
`/remote.php/dav/uploads/<user>/<transfer>/` (docs/nextcloud.md, "Chunked uploads"),
over the upload-folder engine (`providers.operations.upload_folders`):

    MKCOL    <transfer>          make the upload folder: 201 (405 if it exists);
                                 OC-Total-Length (507 when it does not fit), v2's
                                 Destination (a PUT's checks there, now)
    PUT      <transfer>/<chunk>  store a chunk: 201. Names: Nextcloud 3.7's 16-digit
                                 indexes, ownCloud 2.11's byte offsets, rclone's
                                 `%015d-%015d` ranges, newer Nextcloud's 1..10000
    PROPFIND <transfer>          Depth 0 or 1: the folder and its chunks
                                 (getcontentlength), 207, to resume
    DELETE   <transfer>[/<chunk>] abort (the chunks' blobs go to GC) or drop a chunk
    MOVE     <transfer>/.file    join the chunks in numeric order and commit them to
                                 Destination (/remote.php/dav/files/<user>/<path> or
                                 /remote.php/webdav/<path>, a URL or a path):
                                 201 new / 204 replaced, OC-FileId, OC-ETag, ETag,
                                 X-OC-MTime: accepted with X-OC-Mtime

A MOVE checks `OC-Total-Length` (or `OC-Total-File-Length`: 400 when the chunks
hold another length), `OC-Checksum` (and the other digest headers a PUT reads: 400
when the bytes differ), `If-Match`/`If-None-Match` and the `If:` header's entity tags
against the destination (412), `Overwrite: F` (412), then commits through the one
commit of every PUT (rights 403, the WebDAV lock 423 unless its token is in `If:`,
quota 507, a version when it replaces a file, one change-feed entry): nothing is
committed when any check fails, and the upload folder stays for another try.

Only the account itself reaches `uploads/<user>/` (another name answers 404); the
login has run before this (`NextcloudSite.signed_in`). Errors are a short plain-text
reason with the request id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from davserver.http import digests
from davserver.http.body import BodyTooLong, declared_length, is_chunked, read_body, stream_body
from davserver.http.environ import USER, StartResponse, WSGIEnvironment
from davserver.http.errors import HttpError, from_storage, status_line
from davserver.http.headers import precondition
from davserver.http.responses import plain_response
from davserver.nextcloud import upload_requests as requests
from providers.catalog.upload_folders import UploadFolder
from providers.dav import DavProvider
from providers.dav.node import oc_ids
from providers.errors import NotFound, StorageError
from providers.operations.actor import Actor
from providers.operations.upload_folders import UploadFolders
from providers.operations.views import Located

FINAL_NAME = ".file"  # the MOVE source that stands for the joined file
MAX_CHUNK = 1 << 40  # bytes a chunk sent without Content-Length may have
MAX_PROPFIND_BODY = 1 << 16
Answer = tuple[int, list[tuple[str, str]], bytes]
_DAV_ALLOW = "OPTIONS, PROPFIND, MKCOL, PUT, MOVE, DELETE"


class ChunkedUploads:
    """The `/remote.php/dav/uploads` door (see the module docstring); `provider` is
    `/dav/`'s, for the request's actor (its account and the lock tokens of `If:`)."""

    def __init__(self, provider: DavProvider) -> None:
        self.provider = provider
        self.engine = UploadFolders(provider.ops)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        user = environ.get("wsgidav.auth.user_name", "")
        names = [n for n in environ.get("PATH_INFO", "").split("/") if n]
        if not names or names[0] != user:
            return plain_response(start_response, 404, "not found")
        try:
            status, headers, body = _Request(self, environ).run(names[1:])
        except HttpError as e:
            return plain_response(start_response, e.status, e.reason, e.headers)
        except (StorageError, ValueError) as e:
            error = from_storage(e, "chunked upload") if isinstance(e, StorageError) else None
            status, reason = (error.status, error.reason) if error else (400, str(e))
            return plain_response(start_response, status, reason)
        start_response(status_line(status), [*headers, ("Content-Length", str(len(body)))])
        return [body] if body else []


class _Request:
    """One request to the door."""

    def __init__(self, door: ChunkedUploads, environ: dict[str, Any]) -> None:
        self.door = door
        self.engine = door.engine
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "")).upper()
        self.dest_path = ""  # the Destination's path as sent, once read

    def run(self, names: list[str]) -> Answer:
        routes: dict[tuple[int, str], Callable[[list[str]], Answer]] = {
            (0, "PROPFIND"): self._list_root,
            (1, "MKCOL"): self._open,
            (1, "PROPFIND"): self._list,
            (1, "DELETE"): self._cancel,
            (2, "PUT"): self._put_chunk,
            (2, "PROPFIND"): self._list,
            (2, "DELETE"): self._drop_chunk,
            (2, "MOVE"): self._commit,
        }
        if self.method == "OPTIONS":
            return 200, [("Allow", _DAV_ALLOW), ("DAV", "1, 2")], b""
        if len(names) > 2:
            raise NotFound("not found")
        handler = routes.get((len(names), self.method))
        if handler is None:
            what = ("the uploads folder", "an upload folder", "a chunk")[len(names)]
            raise HttpError(405, f"{self.method} is not allowed on {what}", [("Allow", _DAV_ALLOW)])
        return handler(names)

    def actor(self) -> Actor:
        """The caller, with the lock tokens its `If:` header submits."""
        if USER not in self.environ:
            user = self.engine.ops.catalog.users.get(self.environ["wsgidav.auth.user_name"])
            if user is None:
                raise HttpError(403, "no such user")
            self.environ[USER] = user
        return self.door.provider.actor(self.environ)

    def folder(self, actor: Actor, transfer: str) -> UploadFolder:
        found = self.engine.find(actor, transfer)
        if found is None:
            raise NotFound("no such upload folder")
        return found

    def base(self, names: list[str]) -> str:
        """The href of `names` below the user's uploads folder, as asked for."""
        script = self.environ.get("SCRIPT_NAME", "")
        user = quote(self.environ["wsgidav.auth.user_name"])
        return f"{script}/{user}/" + "".join(quote(n) + "/" for n in names)

    def _list_root(self, names: list[str]) -> Answer:
        read_body(self.environ, MAX_PROPFIND_BODY)
        entries = [requests.Entry("", None, 0.0, "uploads")]
        return self._multistatus(self.base([]), entries)

    def _open(self, names: list[str]) -> Answer:
        actor = self.actor()
        if self.engine.find(actor, names[0]) is not None:
            raise HttpError(405, "the upload folder exists", [("Allow", _DAV_ALLOW)])
        length = requests.total_length(self.environ)
        target = None
        if self.environ.get("HTTP_DESTINATION"):
            target = self._target(actor)[0]
        self.engine.open(actor, names[0], length, target)
        return 201, [], b""

    def _list(self, names: list[str]) -> Answer:
        read_body(self.environ, MAX_PROPFIND_BODY)
        folder = self.folder(self.actor(), names[0])
        chunks = self.engine.chunks(folder)
        if len(names) == 2:
            chunk = next((c for c in chunks if c.name == names[1]), None)
            if chunk is None:
                raise NotFound("no such chunk")
            entry = requests.Entry("", chunk.size, chunk.touched_at, chunk.id)
            return self._multistatus(self.base(names[:1]) + quote(names[1]), [entry])
        entries = [requests.Entry("", None, folder.touched_at, folder.id)]
        if self.environ.get("HTTP_DEPTH", "1").strip() != "0":
            entries += [requests.Entry(c.name, c.size, c.touched_at, c.id) for c in chunks]
        return self._multistatus(self.base(names), entries)

    def _cancel(self, names: list[str]) -> Answer:
        self.engine.cancel(self.folder(self.actor(), names[0]))
        return 204, [], b""

    def _drop_chunk(self, names: list[str]) -> Answer:
        self.engine.drop_chunk(self.folder(self.actor(), names[0]), names[1])
        return 204, [], b""

    def _put_chunk(self, names: list[str]) -> Answer:
        actor = self.actor()
        folder = self.folder(actor, names[0])
        declared = declared_length(self.environ)
        if declared is None and not is_chunked(self.environ):
            declared = 0  # no Content-Length, not chunked: no body
        try:
            blocks = stream_body(self.environ, MAX_CHUNK) if declared != 0 else iter(())
            self.engine.write_chunk(actor, folder, names[1], blocks, declared)
        except BodyTooLong as e:
            raise HttpError(413, f"a chunk has at most {MAX_CHUNK} bytes") from e
        return 201, [], b""

    def _commit(self, names: list[str]) -> Answer:
        if names[1] != FINAL_NAME:
            raise HttpError(403, f"only {FINAL_NAME} can be moved out of an upload folder")
        actor = self.actor()
        folder = self.folder(actor, names[0])
        target, existing = self._target(actor)
        self._preconditions(existing)
        mtime = requests.client_mtime(self.environ)
        node, created = self.engine.commit(
            actor,
            folder,
            target,
            length=requests.total_length(self.environ),
            expected=digests.announced_checksums(self.environ),
            mtime=mtime,
        )
        etag = f'"{node.digest}"'
        headers = [("OC-FileId", oc_ids(node)[1]), ("OC-ETag", etag), ("ETag", etag)]
        headers += digests.put_headers(self.engine.ops.checksums(node))
        if mtime is not None:
            headers.append(("X-OC-MTime", "accepted"))
        return (201 if created else 204), headers, b""

    def _target(self, actor: Actor) -> tuple[tuple[Located, str], Located | None]:
        """The Destination as (its folder, the name) and what is there now (None)."""
        user = self.environ["wsgidav.auth.user_name"]
        self.dest_path, names = requests.destination(self.environ, user)
        view = self.engine.ops.view(actor)
        parent = view.locate(names[:-1])
        if parent is None or (parent.node is not None and not parent.node.is_dir):
            raise HttpError(409, "the destination's folder does not exist")
        return (parent, names[-1]), view.locate(names)

    def _preconditions(self, existing: Located | None) -> None:
        """412 unless `If-Match`, `If-None-Match`, `If:` and `Overwrite` allow
        replacing `existing` (None: nothing at the destination)."""
        node = existing.node if existing is not None else None
        if node is not None and node.is_dir:
            raise HttpError(409, "the destination is a folder")
        if node is not None and self.environ.get("HTTP_OVERWRITE", "T").strip().upper() == "F":
            raise HttpError(412, "the destination exists and Overwrite is F")
        etag = node.digest if node is not None else None
        modified = int(node.mtime) if node is not None else None
        asks = node is not None or "HTTP_IF_MATCH" in self.environ
        if asks and precondition(self.environ, etag, modified) is not None:
            raise HttpError(412, "the destination changed (If-Match)")
        conditions = self.environ.get("wsgidav.conditions.if")
        if not requests.if_header_holds(conditions, self.dest_path, etag):
            raise HttpError(412, "the destination changed (If)")

    def _multistatus(self, base: str, entries: list[requests.Entry]) -> Answer:
        body = requests.multistatus(base, entries)
        return 207, [("Content-Type", requests.XML_TYPE)], body
