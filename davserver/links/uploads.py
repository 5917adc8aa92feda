"""Writing through share links: resumable uploads (TUS 1.0) and the edit endpoint.

`register(site, files)` installs, on `upload` and `edit` links:

    OPTIONS upload/          Tus-Version, Tus-Extension (creation, termination), Tus-Max-Size
    POST    upload/          create: Upload-Length, Upload-Metadata (`filename`, base64;
                             optional `relativePath`, "a/b/name": the upload goes into
                             sub-folders a/b of the shared folder, created at the commit,
                             which is how dropped folders arrive) -> 201, Location
    HEAD    upload/<id>      Upload-Offset, Upload-Length (and, once committed,
                             X-Davserver-Name: the stored name, percent-encoded UTF-8)
    PATCH   upload/<id>      application/offset+octet-stream at Upload-Offset (409 if it is
                             not the server's) -> 204, Upload-Offset; the PATCH that
                             completes the file commits it and carries X-Davserver-Name
    DELETE  upload/<id>      terminate: the upload and its parts are dropped -> 204
    GET     upload/          the drop page (`?folder=a/b`: into that sub-folder), for edit
                             links; an upload link's own page is the drop page too

and on `edit` links `POST edit` (below). Every TUS answer carries `Tus-Resumable: 1.0.0`;
requests other than OPTIONS and GET must send it (412 otherwise), which also keeps
cross-site forms out (they cannot set headers). Upload ids are random and bound to the
link: another link's token never reaches them. Uploads never replace anything: a taken
name becomes "name (2).ext" in the commit (`providers.uploads`). A PATCH body is
streamed (bounded memory, no size limit beyond the upload's length); if the client
goes away mid-body, what arrived is kept and HEAD tells where to resume.

The edit endpoint: `POST edit` with JSON `{"op": "rename"|"delete"|"mkdir", "path":
"/sub/a.txt", "name": "new name"}` (`path`: the item to rename or delete, or the folder
to make the new folder in) and the header `X-Davserver-Edit: 1`. That header is the
CSRF defence: a form on another site can POST here with the visitor's unlock cookie,
but cannot add a header, and a script there could only with our CORS consent, which we
never give. Answers: 201 (rename, mkdir: JSON `name`, `path`), 204 (delete); errors as
JSON `{"error": ...}`: 400 bad request or name, 403 no header or the shared folder
itself, 404 no such path (or one leaving the share), 409 the name is taken.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote

from davserver.links import drop_page as share_drop
from davserver.links.site import Action, ShareRequest, ShareSite, not_found, respond
from providers.errors import Conflict, InvalidName, NotFound, QuotaExceeded, StorageError
from providers.filestore import FileStore
from providers.names import check_name, split_path
from providers.uploads import ResumableUploads

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
MAX_UPLOAD = 1 << 40  # Tus-Max-Size: 1 TiB per file (the owner's quota may say less)
BLOCK = 1 << 20  # bytes read from the request body at a time
NAME_HEADER = "X-Davserver-Name"
OFFSET_TYPE = "application/offset+octet-stream"
MAX_EDIT_BODY = 16 * 1024


def register(site: ShareSite, files: FileStore) -> None:
    """Install the `upload` and `edit` actions and the drop page on `site`."""
    tus = TusHandler(ResumableUploads(site.catalog, files))
    site.actions["upload"] = Action(tus, frozenset({"upload", "edit"}), resolve=False)
    site.actions["edit"] = Action(EditHandler(site), frozenset({"edit"}), resolve=False)
    site.drop_page = share_drop.drop_page


class BodyTooLong(Exception):
    """A chunked PATCH body went on past the upload's length."""


class TusHandler:
    """The `upload` action (see the module docstring)."""

    def __init__(self, uploads: ResumableUploads) -> None:
        self.uploads = uploads

    def __call__(self, req: ShareRequest, start_response: StartResponse) -> Any:
        method = req.method
        if method == "POST" and "HTTP_X_HTTP_METHOD_OVERRIDE" in req.environ:
            method = req.environ["HTTP_X_HTTP_METHOD_OVERRIDE"].upper()  # TUS asks for it
        if len(req.names) > 1:
            return not_found(start_response)
        if method == "OPTIONS":
            return _tus(start_response, "204 No Content", _capabilities())
        if method == "GET" and not req.names:
            return self._drop_page(req, start_response)
        if req.environ.get("HTTP_TUS_RESUMABLE") != TUS_VERSION:
            return _tus(start_response, "412 Precondition Failed", [("Tus-Version", TUS_VERSION)])
        if req.names:
            routes = {"HEAD": self._head, "PATCH": self._patch, "DELETE": self._delete}
        else:
            routes = {"POST": self._create}
        handler = routes.get(method)
        if handler is None:
            allow = ", ".join(["OPTIONS", *([] if req.names else ["GET"]), *routes])
            return _tus(start_response, "405 Method Not Allowed", [("Allow", allow)])
        try:
            return handler(req, start_response)
        except StorageError as e:
            return _tus(start_response, _status(req, e), body=str(e))
        except ValueError as e:  # a malformed header
            return _tus(start_response, "400 Bad Request", body=str(e))

    def _create(self, req: ShareRequest, start_response: StartResponse) -> Any:
        env = req.environ
        if "HTTP_UPLOAD_DEFER_LENGTH" in env:
            raise ValueError("Upload-Defer-Length is not supported")
        length = _number(env.get("HTTP_UPLOAD_LENGTH"), "Upload-Length")
        if length > MAX_UPLOAD:
            return _tus(start_response, "413 Content Too Large", _capabilities())
        meta = parse_metadata(env.get("HTTP_UPLOAD_METADATA", ""))
        if not meta.get("filename"):
            raise ValueError("Upload-Metadata must name the file (filename)")
        folders = split_path(meta.get("relativePath", ""))[:-1]
        name = check_name(meta["filename"])
        upload = self.uploads.create(req.link.id, req.link.node, folders, name, length)
        location = f"{req.base}/upload/{upload.id}"
        return _tus(start_response, "201 Created", [("Location", location), ("Upload-Offset", "0")])

    def _head(self, req: ShareRequest, start_response: StartResponse) -> Any:
        upload = self.uploads.get(req.link.id, req.names[0])
        if upload is None:
            raise NotFound("no such upload")
        headers = [("Upload-Offset", str(upload.offset)), ("Upload-Length", str(upload.length))]
        if upload.finished_name is not None:
            headers.append((NAME_HEADER, quote(upload.finished_name, safe="")))
        return _tus(start_response, "200 OK", headers)

    def _patch(self, req: ShareRequest, start_response: StartResponse) -> Any:
        env = req.environ
        if env.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != OFFSET_TYPE:
            return _tus(start_response, "415 Unsupported Media Type", body=OFFSET_TYPE)
        offset = _number(env.get("HTTP_UPLOAD_OFFSET"), "Upload-Offset")
        upload = self.uploads.get(req.link.id, req.names[0])
        if upload is None:
            raise NotFound("no such upload")
        if upload.finished or offset != upload.offset:
            return _tus(start_response, "409 Conflict", [("Upload-Offset", str(upload.offset))])
        left = upload.length - offset
        declared = (
            _number(env["CONTENT_LENGTH"], "Content-Length") if env.get("CONTENT_LENGTH") else None
        )
        if declared is not None and declared > left:
            return _tus(start_response, "413 Content Too Large", body=f"{left} bytes left")
        blocks = _body(env["wsgi.input"], declared, left)
        try:
            result = self.uploads.write(upload, blocks, path=req.link.path)
        except BodyTooLong:
            return _tus(start_response, "413 Content Too Large", body=f"{left} bytes left")
        headers = [("Upload-Offset", str(result.upload.offset))]
        if result.node is not None:
            headers = [("Upload-Offset", str(upload.length))]
            headers.append((NAME_HEADER, quote(result.node.name, safe="")))
        return _tus(start_response, "204 No Content", headers)

    def _delete(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if not self.uploads.cancel(req.link.id, req.names[0]):
            raise NotFound("no such upload")
        return _tus(start_response, "204 No Content")

    def _drop_page(self, req: ShareRequest, start_response: StartResponse) -> Any:
        """GET upload/: the drop page, into `?folder=a/b` below the shared folder."""
        query = parse_qs(req.environ.get("QUERY_STRING", ""))
        try:
            folder = split_path(query.get("folder", [""])[0])
        except InvalidName:
            return not_found(start_response)
        return share_drop.render(req, start_response, folder)


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


def _body(stream: Any, declared: int | None, left: int) -> Iterator[bytes]:
    """The PATCH body in blocks: `declared` bytes (Content-Length), or for a chunked
    body whatever comes, at most `left` (`BodyTooLong` past it). If the client goes
    away or stalls mid-body the blocks just end: what arrived is stored as the part
    (the bytes are right, only fewer) and the client resumes from HEAD's offset."""
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


def _capabilities() -> list[tuple[str, str]]:
    return [
        ("Tus-Version", TUS_VERSION),
        ("Tus-Extension", TUS_EXTENSIONS),
        ("Tus-Max-Size", str(MAX_UPLOAD)),
    ]


def _tus(
    start_response: StartResponse,
    status: str,
    headers: list[tuple[str, str]] | None = None,
    body: str = "",
) -> list[bytes]:
    """A TUS answer: `Tus-Resumable` and no caching (TUS requires both on HEAD)."""
    data = (body + "\n").encode() if body else b""
    extra = [("Tus-Resumable", TUS_VERSION), *(headers or [])]
    return respond(start_response, status, data, "text/plain; charset=utf-8", extra)


def _status(req: ShareRequest, error: StorageError) -> str:
    """The TUS answer's status for an engine error."""
    for kind, status in (
        (InvalidName, "400 Bad Request"),
        (QuotaExceeded, "507 Insufficient Storage"),
        (NotFound, "404 Not Found"),
        (Conflict, "409 Conflict"),
    ):
        if isinstance(error, kind):
            return status
    log.warning("share link %s upload: %s", req.link.id, error)
    return "503 Service Unavailable"


def _number(value: str | None, header: str) -> int:
    """A non-negative decimal header value; `ValueError` (400) otherwise."""
    if value is None or not (value.isascii() and value.isdigit()):
        raise ValueError(f"{header} must be a non-negative integer")
    return int(value)


class EditError(Exception):
    """An edit refused: `status` line and a reason for the JSON answer."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class EditHandler:
    """The `edit` action (see the module docstring); one per site."""

    def __init__(self, site: ShareSite) -> None:
        self.catalog = site.catalog

    def __call__(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.names:
            return not_found(start_response)
        try:
            if req.method != "POST":
                raise EditError("405 Method Not Allowed", "use POST")
            if req.environ.get("HTTP_X_DAVSERVER_EDIT") != "1":
                raise EditError("403 Forbidden", "the X-Davserver-Edit: 1 header is required")
            op, names, name = _edit_request(req.environ)
            ops = {"rename": self._rename, "delete": self._delete, "mkdir": self._mkdir}
            status, answer = ops[op](req, names, name)
        except EditError as e:
            status, answer = e.status, {"error": str(e)}
        except StorageError as e:
            status, answer = _status(req, e), {"error": str(e)}
        body = json.dumps(answer).encode() if answer else b""
        headers = [("Allow", "POST")] if status.startswith("405") else []
        return respond(start_response, status, body, "application/json", headers)

    def _node(self, req: ShareRequest, names: list[str]) -> tuple[Any, list[str]]:
        """The node at `names` inside the share and their stored spellings; 404 if none."""
        found = self.catalog.tree.resolve_path(req.link.node.id, names)
        if found is None:
            raise EditError("404 Not Found", "no such file or folder")
        return found

    def _rename(self, req: ShareRequest, names: list[str], name: str) -> tuple[str, dict[str, str]]:
        node, stored = self._node(req, names)
        if not names:
            raise EditError("403 Forbidden", "the shared folder itself cannot be renamed")
        taken = self.catalog.tree.resolve(node.parent_id, [name])
        if taken is not None and taken.id != node.id:
            raise EditError("409 Conflict", f"{name!r} exists")
        path = [*stored[:-1], name]
        moved = self.catalog.tree.move(node.id, node.parent_id, name, _owner_path(req, path))
        return "201 Created", {"name": moved.name, "path": "/" + "/".join(path)}

    def _delete(self, req: ShareRequest, names: list[str], name: str) -> tuple[str, dict[str, str]]:
        node, stored = self._node(req, names)
        if not names:
            raise EditError("403 Forbidden", "the shared folder itself cannot be deleted")
        self.catalog.tree.delete(node.id, _owner_path(req, stored))
        return "204 No Content", {}

    def _mkdir(self, req: ShareRequest, names: list[str], name: str) -> tuple[str, dict[str, str]]:
        parent, stored = self._node(req, names)
        if not parent.is_dir:
            raise EditError("409 Conflict", "not a folder")
        path = [*stored, name]
        made = self.catalog.tree.mkdir(parent.id, name, parent.owner_id, _owner_path(req, path))
        return "201 Created", {"name": made.name, "path": "/" + "/".join(path)}


def _edit_request(environ: dict[str, Any]) -> tuple[str, list[str], str]:
    """(op, names of `path` inside the share, checked `name`) from the JSON body;
    `EditError` 400 for a malformed request or name, 404 for a path that cannot be in
    the share ('..', NUL...: nothing to say about it but "not found")."""
    length = environ.get("CONTENT_LENGTH") or ""
    if not (length.isascii() and length.isdigit()) or int(length) > MAX_EDIT_BODY:
        raise EditError("400 Bad Request", f"a JSON body of at most {MAX_EDIT_BODY} bytes")
    try:
        request = json.loads(environ["wsgi.input"].read(int(length)))
    except ValueError as e:
        raise EditError("400 Bad Request", "the body is not JSON") from e
    if not isinstance(request, dict) or request.get("op") not in ("rename", "delete", "mkdir"):
        raise EditError("400 Bad Request", "op must be rename, delete or mkdir")
    op, path, name = request["op"], request.get("path"), request.get("name")
    if not isinstance(path, str):
        raise EditError("400 Bad Request", "path must be a string")
    try:
        names = split_path(path)
    except InvalidName as e:
        raise EditError("404 Not Found", "no such file or folder") from e
    if op == "delete":
        return op, names, ""
    if not isinstance(name, str):
        raise EditError("400 Bad Request", "name must be a string")
    try:
        return op, names, check_name(name)
    except InvalidName as e:
        raise EditError("400 Bad Request", str(e)) from e


def _owner_path(req: ShareRequest, names: list[str]) -> str:
    """A path inside the share as its owner sees it (for the change log)."""
    return "/".join((req.link.path.rstrip("/"), *names))
