"""Uploads through share links: resumable uploads (TUS 1.0), on `upload` and `edit` links.

`actions(ops)` gives the `upload` action:

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

Every TUS answer carries `Tus-Resumable: 1.0.0`; requests other than OPTIONS and GET
must send it (412 otherwise), which also keeps cross-site forms out (they cannot set
headers). Upload ids are random and bound to the link: another link's token never
reaches them. The operations layer checks each step as it checks a PUT (rights, the
folder's WebDAV locks: 423, quota: 507), and uploads never replace anything: a taken
name becomes "name (2).ext" in the commit (`providers.operations.uploads`). A PATCH
body is streamed (bounded memory, no size limit beyond the upload's length); if the
client goes away mid-body, what arrived is kept and HEAD tells where to resume.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any
from urllib.parse import parse_qs, quote

from davserver.http.body import BodyTooLong, declared_length, stream_body
from davserver.http.environ import StartResponse
from davserver.http.errors import HttpError, from_storage, with_request_id
from davserver.links import drop_page
from davserver.links.site import Action, ShareRequest, link_actor, not_found, respond
from providers.errors import InvalidName, NotFound, StorageError
from providers.names import check_name, split_path
from providers.operations import Operations
from providers.operations.uploads import ResumableUploads

log = logging.getLogger(__name__)
TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
MAX_UPLOAD = 1 << 40  # Tus-Max-Size: 1 TiB per file (the owner's quota may say less)
NAME_HEADER = "X-Davserver-Name"
OFFSET_TYPE = "application/offset+octet-stream"


def actions(ops: Operations) -> dict[str, Action]:
    """The `upload` action (see the module docstring)."""
    tus = TusHandler(ops)
    return {"upload": Action(tus, frozenset({"upload", "edit"}), resolve=False)}


class TusHandler:
    """The `upload` action (see the module docstring)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.uploads = ResumableUploads(ops)

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
            error = from_storage(e, f"share link {req.link.id} upload")
            return _tus(start_response, error.status_line, body=error.reason)
        except HttpError as e:
            return _tus(start_response, e.status_line, body=e.reason)
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
        actor = link_actor(self.ops, req.link)
        root = self.ops.view(actor).locate([])
        if root is None:
            raise NotFound("the shared folder is gone")
        upload = self.uploads.create(actor, root, folders, name, length)
        location = f"{req.base}/upload/{upload.id}"
        return _tus(start_response, "201 Created", [("Location", location), ("Upload-Offset", "0")])

    def _head(self, req: ShareRequest, start_response: StartResponse) -> Any:
        upload = self.uploads.get(link_actor(self.ops, req.link), req.names[0])
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
        actor = link_actor(self.ops, req.link)
        upload = self.uploads.get(actor, req.names[0])
        if upload is None:
            raise NotFound("no such upload")
        if upload.finished or offset != upload.offset:
            return _tus(start_response, "409 Conflict", [("Upload-Offset", str(upload.offset))])
        left = upload.length - offset
        declared = declared_length(env)
        if declared is not None and declared > left:
            return _tus(start_response, "413 Content Too Large", body=f"{left} bytes left")
        try:
            result = self.uploads.write(actor, upload, stream_body(env, left))
        except BodyTooLong:
            return _tus(start_response, "413 Content Too Large", body=f"{left} bytes left")
        headers = [("Upload-Offset", str(result.upload.offset))]
        if result.node is not None:
            headers = [("Upload-Offset", str(upload.length))]
            headers.append((NAME_HEADER, quote(result.node.name, safe="")))
        return _tus(start_response, "204 No Content", headers)

    def _delete(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if not self.uploads.cancel(link_actor(self.ops, req.link), req.names[0]):
            raise NotFound("no such upload")
        return _tus(start_response, "204 No Content")

    def _drop_page(self, req: ShareRequest, start_response: StartResponse) -> Any:
        """GET upload/: the drop page, into `?folder=a/b` below the shared folder."""
        query = parse_qs(req.environ.get("QUERY_STRING", ""))
        try:
            folder = split_path(query.get("folder", [""])[0])
        except InvalidName:
            return not_found(start_response)
        return drop_page.render(req, start_response, folder)


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
    if body and int(status[:3]) >= 400:
        body = with_request_id(body)
    data = (body + "\n").encode() if body else b""
    extra = [("Tus-Resumable", TUS_VERSION), *(headers or [])]
    return respond(start_response, status, data, "text/plain; charset=utf-8", extra)


def _number(value: str | None, header: str) -> int:
    """A non-negative decimal header value; `ValueError` (400) otherwise."""
    if value is None or not (value.isascii() and value.isdigit()):
        raise ValueError(f"{header} must be a non-negative integer")
    return int(value)
