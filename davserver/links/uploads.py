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

The protocol (headers, answers, the upload URL's methods) is `davserver.http.tus`,
shared with accounts' uploads (`davserver.dav.tus`); requests other than OPTIONS and
GET must send `Tus-Resumable: 1.0.0` (412 otherwise). Upload ids are random and bound
to the link: another link's token never reaches them. The operations layer checks
each step as it checks a PUT (rights, the folder's WebDAV locks: 423, quota: 507),
and uploads never replace anything: a taken name becomes "name (2).ext" in the commit
(`providers.operations.uploads`). A PATCH body is streamed (bounded memory, no size
limit beyond the upload's length); if the client goes away mid-body, what arrived is
kept and HEAD tells where to resume. Links take neither deferred lengths nor concatenation.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from davserver.http import tus
from davserver.http.environ import StartResponse
from davserver.links import drop_page
from davserver.links.site import BASE_HEADERS, Action, ShareRequest, link_actor, not_found
from providers.errors import InvalidName, NotFound
from providers.names import check_name, split_path
from providers.operations import Operations
from providers.operations.actor import Actor
from providers.operations.uploads import ResumableUploads

log = logging.getLogger(__name__)
EXTENSIONS = ("creation", "termination")


def actions(ops: Operations) -> dict[str, Action]:
    """The `upload` action (see the module docstring)."""
    handler = TusHandler(ops)
    return {"upload": Action(handler, frozenset({"upload", "edit"}), resolve=False)}


class TusHandler:
    """The `upload` action (see the module docstring)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.uploads = ResumableUploads(ops)
        self.upload_url = tus.UploadUrl(self.uploads, BASE_HEADERS)

    def __call__(self, req: ShareRequest, start_response: StartResponse) -> Any:
        method = tus.method_of(req.environ)
        if len(req.names) > 1:
            return not_found(start_response)
        if method == "OPTIONS":
            return _answer(start_response, 204, tus.capabilities(EXTENSIONS))
        if method == "GET" and not req.names:
            return self._drop_page(req, start_response)
        context = f"share link {req.link.id} upload"
        if req.names:

            def actor() -> Actor:
                return link_actor(self.ops, req.link)

            return self.upload_url(req.environ, start_response, actor, req.names[0], context)
        if method != "POST":
            return _answer(start_response, 405, [("Allow", "OPTIONS, GET, POST")], "not allowed")
        try:
            tus.require_version(req.environ)
            return self._create(req, start_response)
        except tus.ANSWERED as e:
            error = tus.refusal(e, context)
            return _answer(start_response, error.status, error.headers, error.reason)

    def _create(self, req: ShareRequest, start_response: StartResponse) -> Any:
        creation = tus.parse_creation(req.environ, extended=False)
        assert creation.length is not None
        if creation.length > tus.MAX_UPLOAD:
            return _answer(start_response, 413, tus.capabilities(EXTENSIONS), "too large")
        meta = creation.metadata
        if not meta.get("filename"):
            raise ValueError("Upload-Metadata must name the file (filename)")
        folders = split_path(meta.get("relativePath", ""))[:-1]
        name = check_name(meta["filename"])
        actor = link_actor(self.ops, req.link)
        root = self.ops.view(actor).locate([])
        if root is None:
            raise NotFound("the shared folder is gone")
        upload = self.uploads.create(actor, root, name, creation.length, subfolders=folders)
        location = f"{req.base}/upload/{upload.id}"
        return _answer(
            start_response, 201, [("Location", location), *self.upload_url.state(upload)]
        )

    def _drop_page(self, req: ShareRequest, start_response: StartResponse) -> Any:
        """GET upload/: the drop page, into `?folder=a/b` below the shared folder."""
        query = parse_qs(req.environ.get("QUERY_STRING", ""))
        try:
            folder = split_path(query.get("folder", [""])[0])
        except InvalidName:
            return not_found(start_response)
        return drop_page.render(req, start_response, folder)


def _answer(
    start_response: StartResponse, status: int, headers: tus.Headers, reason: str = ""
) -> list[bytes]:
    return tus.answer(start_response, status, headers, reason, BASE_HEADERS)
