"""How WebDAV requests are answered: WsgiDAV's request server, with our additions.

`DavDispatcher` replaces WsgiDAV's `RequestResolver` so requests reach
`DavRequestServer`, which adds what WsgiDAV lacks or does differently:

- GET and HEAD of files are answered by `davserver.http.content`, like every door's
  downloads: the same conditions, Range (multiple ranges as multipart/byteranges,
  units case-insensitive) and errors; HTTP conditions of every method are evaluated
  by `davserver.http.headers` (WsgiDAV keeps the WebDAV `If:` header);
- checksums (`davserver.http.digests`): a PUT's announced ones are parsed for the
  operations layer to verify, its answer carries the stored ones; GET/HEAD of a file
  send them, and a full GET of a file without them yet computes and keeps them;
- RFC 4918 status codes (201 vs 204) for COPY/MOVE that the provider handles in one
  transaction, and 403 for DELETE, COPY or MOVE of the mount's root;
- a configurable ban on PROPFIND Depth: infinity, and Depth 0/1 PROPFIND answers
  rendered without WsgiDAV's per-property machinery (`davserver.dav.propfind`);
- rights checked before a body is read (PUT, PROPPATCH, LOCK, UNLOCK); a PUT's locks
  checked by the operations layer alone (before the body and at the commit);
- REPORT, for RFC 6578's sync-collection (`davserver.dav.sync_collection`), which
  OPTIONS lists for the collections of an account;
- TUS (resumable uploads, `davserver.dav.tus`) on an account's collections: OPTIONS
  lists its capabilities, a POST with `Tus-Resumable` creates an upload;
- the ownCloud/Nextcloud headers (`oc_headers`, docs/nextcloud.md "Files"): PUT,
  MKCOL, COPY and MOVE answer the target's `OC-FileId` and `OC-ETag` (a PUT also
  `X-OC-MTime: accepted` when its `X-OC-Mtime` was applied), GET and HEAD `OC-ETag`;
  a PUT with `OC-Chunked` (ownCloud's old chunking, which we do not implement) is
  refused with 400 (its body read and dropped), never stored as a file named like a
  chunk (the clients would then believe the whole file uploaded).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_METHOD_NOT_ALLOWED,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.request_resolver import RequestResolver
from wsgidav.request_server import RequestServer

from davserver.dav import propfind, sync_collection, tus
from davserver.http import content
from davserver.http.body import stream_body
from davserver.http.digests import MalformedChecksum, announced_checksums, put_headers
from davserver.http.environ import (
    ANNOUNCED_CHECKSUMS,
    DEST,
    DEST_CREATED,
    STORED_CHECKSUMS,
    StartResponse,
)
from davserver.http.headers import precondition
from davserver.http.shared_reads import READ_ONLY
from providers.dav import LINK, client_mtime, etag_of, lookups_kept, oc_ids, oc_permissions
from providers.operations import Located

Environ = dict[str, Any]
HTTP_CONDITIONS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)


def representation(res: Any) -> content.Representation:
    """A file resource (`providers.dav.FileResource`) as `davserver.http.content`
    sends it."""
    return content.Representation(
        size=res.get_content_length(),
        etag=res.get_etag() or "",
        last_modified=int(res.get_last_modified()),
        content_type=res.get_content_type(),
        open=res.get_content,
        checksums=res.checksums(),
        learn=res.learn_checksums,
    )


class DavRequestServer(RequestServer):
    """WsgiDAV's request handler with the additions of the module docstring."""

    # whether an account's collections answer the sync-collection REPORT and take TUS
    # uploads (not in a read-only snapshot)
    sync_report = True

    def __init__(self, dav_provider: Any) -> None:
        super().__init__(dav_provider)
        if self.sync_report:
            self._possible_methods.append("REPORT")

    def do_REPORT(self, environ: Environ, start_response: StartResponse) -> Any:
        return sync_collection.report(self._davProvider, environ, start_response)

    def do_OPTIONS(self, environ: Environ, start_response: StartResponse) -> Any:
        """WsgiDAV's answer, with REPORT in `Allow` and TUS's capabilities for an
        account's collections."""
        res = None
        if environ.get(LINK) is None:
            res = self._davProvider.get_resource_inst(environ["PATH_INFO"], environ)

        def with_report(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            if self.sync_report and res is not None and res.is_collection:
                headers = [
                    (name, f"{value}, REPORT" if name == "Allow" else value)
                    for name, value in headers
                ]
                headers += tus.options_headers()
            return start_response(status, headers, *args)

        return super().do_OPTIONS(environ, with_report)

    def do_POST(self, environ: Environ, start_response: StartResponse) -> Any:
        """A TUS creation on an account's collection (`davserver.dav.tus`); any other
        POST is WsgiDAV's (405)."""
        if self.sync_report and environ.get(LINK) is None and tus.wants_tus(environ):
            return tus.create(self._davProvider, environ, start_response)
        raise DAVError(HTTP_METHOD_NOT_ALLOWED)

    def _require_write(self, environ: Environ, *, may_create: bool) -> None:
        """403 unless the request may write its resource (or, when it does not exist
        and the method creates it, its parent folder)."""
        provider = self._davProvider
        path = environ["PATH_INFO"]
        res = provider.get_resource_inst(path, environ)
        if res is None and may_create:
            res = provider.get_resource_inst(util.get_uri_parent(path), environ)
        if res is not None:
            res.require_write()

    def _evaluate_if_headers(self, res: Any, environ: Environ) -> None:
        """HTTP conditions by `davserver.http.headers` (as every door evaluates them),
        then WebDAV's `If:` header by WsgiDAV (with those conditions out of its sight)."""
        if res is not None:
            modified = res.get_last_modified()
            stamp = int(modified) if modified is not None else None
            verdict = precondition(environ, res.get_etag(), stamp)
            if verdict is not None:
                raise DAVError(verdict)
        hidden = {key: environ.pop(key) for key in HTTP_CONDITIONS if key in environ}
        try:
            super()._evaluate_if_headers(res, environ)
        finally:
            environ.update(hidden)

    def do_PUT(self, environ: Environ, start_response: StartResponse) -> Any:
        """The target and its parent are looked up once: the check here and WsgiDAV's
        PUT both ask for them, and only the commit, at the end, changes the tree. The
        checksums the request announces are read before the body (400 if malformed),
        and the answer carries those stored."""
        if environ.get("HTTP_OC_CHUNKED"):
            _refuse_oc_chunked(environ)
        try:
            environ[ANNOUNCED_CHECKSUMS] = announced_checksums(environ)
        except MalformedChecksum as e:
            raise DAVError(HTTP_BAD_REQUEST, context_info=str(e)) from e

        def with_checksums(status: str, headers: list[Any], *args: Any) -> Any:
            stored = put_headers(environ.get(STORED_CHECKSUMS))
            headers = [*headers, *stored, *oc_headers(self._davProvider, environ, headers)]
            return start_response(status, headers, *args)

        with self._davProvider.lookups_kept(environ):
            self._require_write(environ, may_create=True)
            return super().do_PUT(environ, with_checksums)

    def _check_write_permission(self, res: Any, depth: str, environ: Environ) -> Any:
        """WsgiDAV's lock check, except for a PUT, whose locks the operations layer
        checks before the body (`begin_write`) and again at the commit: WsgiDAV's two
        checks of the same locks were a quarter of a small PUT's catalog reads."""
        if environ.get("REQUEST_METHOD") == "PUT":
            return None
        return super()._check_write_permission(res, depth, environ)

    @contextmanager
    def _write_transaction(self, res: Any, environ: Environ) -> Iterator[None]:
        """WsgiDAV marks a PUT's target as being written after checking its locks, so
        this process refuses a LOCK of it until the body is in. For a PUT the
        operations layer's check at the commit does that for every process: a lock
        taken meanwhile fails the PUT (423), without the token, with nothing stored."""
        if environ.get("REQUEST_METHOD") == "PUT":
            yield
            return
        with super()._write_transaction(res, environ):
            yield

    def do_MKCOL(self, environ: Environ, start_response: StartResponse) -> Any:
        respond = _with_oc_headers(self._davProvider, environ, start_response)
        return super().do_MKCOL(environ, respond)

    def do_PROPPATCH(self, environ: Environ, start_response: StartResponse) -> Any:
        self._require_write(environ, may_create=False)
        return super().do_PROPPATCH(environ, start_response)

    def do_LOCK(self, environ: Environ, start_response: StartResponse) -> Any:
        self._require_write(environ, may_create=True)
        return super().do_LOCK(environ, start_response)

    def do_UNLOCK(self, environ: Environ, start_response: StartResponse) -> Any:
        self._require_write(environ, may_create=False)
        return super().do_UNLOCK(environ, start_response)

    def do_DELETE(self, environ: Environ, start_response: StartResponse) -> Any:
        _refuse_the_root(environ)
        return super().do_DELETE(environ, start_response)

    def do_COPY(self, environ: Environ, start_response: StartResponse) -> Any:
        return self._copy_or_move_with_status(environ, start_response, is_move=False)

    def do_MOVE(self, environ: Environ, start_response: StartResponse) -> Any:
        return self._copy_or_move_with_status(environ, start_response, is_move=True)

    def _copy_or_move_with_status(
        self, environ: Environ, start_response: StartResponse, *, is_move: bool
    ) -> Any:
        """Answer 201 when the destination was new (WsgiDAV says 204 for handled ones),
        with the ownCloud headers of the destination."""
        _refuse_the_root(environ)
        with_headers = _with_oc_headers(self._davProvider, environ, start_response)

        def fixed_start_response(status: str, headers: list[Any], *args: Any) -> Any:
            if status.startswith("204") and environ.get(DEST_CREATED) is True:
                status = "201 Created"
            return with_headers(status, headers, *args)

        return self._copy_or_move(environ, fixed_start_response, is_move)

    def do_PROPFIND(self, environ: Environ, start_response: StartResponse) -> Any:
        """Depth 0 and 1 answers are rendered by `davserver.dav.propfind`; WsgiDAV does
        the rest. The body was buffered by the request guard, so it is read here and
        put back for WsgiDAV when the fast path declines."""
        body = environ["wsgi.input"].read()
        names = propfind.parse_request(body)
        depth = environ.get("HTTP_DEPTH", "infinity")
        res = None
        if names is not None and depth in ("0", "1"):
            res = self._davProvider.get_resource_inst(environ["PATH_INFO"], environ)
        if res is not None:
            self._evaluate_if_headers(res, environ)
            xml = propfind.render(res, depth, names or [])
            if xml is not None:
                start_response(
                    "207 Multi-Status",
                    [
                        ("Content-Type", "application/xml; charset=utf-8"),
                        ("Content-Length", str(len(xml))),
                        ("Date", util.get_rfc1123_time()),
                    ],
                )
                return [xml]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return super().do_PROPFIND(environ, start_response)

    def do_GET(self, environ: Environ, start_response: StartResponse) -> Any:
        return self._send_file(environ, start_response)

    def do_HEAD(self, environ: Environ, start_response: StartResponse) -> Any:
        return self._send_file(environ, start_response)

    def _send_file(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """A file's bytes by `davserver.http.content`; anything else (a folder, a
        request with a body or a Depth, nothing there) gets WsgiDAV's answer."""
        res = self._davProvider.get_resource_inst(environ["PATH_INFO"], environ)
        plain = util.get_content_length(environ) == 0 and environ.get("HTTP_DEPTH", "0") == "0"
        if res is None or res.is_collection or not plain:
            is_head = environ["REQUEST_METHOD"] == "HEAD"
            return self._send_resource(environ, start_response, is_head_method=is_head)
        rep = representation(res)
        answer = content.plan(environ, rep)
        if answer.status not in (304, 412):
            self._evaluate_if_headers(res, environ)  # the `If:` header, if any
        headers = [("Date", util.get_rfc1123_time()), ("OC-ETag", f'"{rep.etag}"')]
        return content.send(
            environ, start_response, rep, answer, headers, block_size=self.block_size
        )


OC_CHUNKED_REFUSED = "OC-Chunked uploads are not supported: use chunking 1.0"
# An OC-Chunked piece up to this size is read and dropped before the 400: answered
# before its body, the connection closes under the client's upload, which the clients
# take for a network error that aborts their whole sync instead of failing one file.
OC_CHUNK_DRAIN = 64 * 1024 * 1024


def _refuse_oc_chunked(environ: Environ) -> None:
    """400 for a PUT with `OC-Chunked` (module docstring); nothing of it is stored."""
    length = util.get_content_length(environ)
    if 0 < length <= OC_CHUNK_DRAIN:
        for _block in stream_body(environ, length):  # ends early if the client gave up
            pass
        environ["wsgidav.some_input_read"] = environ["wsgidav.all_input_read"] = 1
    raise DAVError(HTTP_BAD_REQUEST, context_info=OC_CHUNKED_REFUSED)


def oc_headers(
    provider: Any, environ: Environ, sent: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The ownCloud/Nextcloud headers of a PUT, MKCOL, COPY or MOVE answer (module
    docstring) for what it left at its target (nothing after a failure): `OC-FileId`,
    `OC-ETag` (and `ETag` when `sent` lacks it) and the caller's `OC-Perm` there,
    which ownCloud reads instead of asking with a PROPFIND after each upload."""
    dest = environ.get(DEST)
    if not isinstance(dest, Located) or dest.node is None or not dest.node.id:
        return []
    node = dest.node
    etag = f'"{etag_of(node)}"'
    actor = provider.actor(environ)
    letters = oc_permissions(actor, dest.place, provider.ops.shares, is_dir=node.is_dir)
    headers = [("OC-FileId", oc_ids(node)[1]), ("OC-ETag", etag), ("OC-Perm", letters)]
    if not any(name.lower() == "etag" for name, _value in sent):
        headers.append(("ETag", etag))
    if environ.get("REQUEST_METHOD") == "PUT" and client_mtime(environ) is not None:
        headers.append(("X-OC-MTime", "accepted"))
    return headers


def _with_oc_headers(
    provider: Any, environ: Environ, start_response: StartResponse
) -> StartResponse:
    def respond(status: str, headers: list[Any], *args: Any) -> Any:
        return start_response(status, [*headers, *oc_headers(provider, environ, headers)], *args)

    return respond


def _refuse_the_root(environ: Environ) -> None:
    """403 for DELETE, COPY or MOVE of the mount's root (a home, or a link's node): it
    cannot go, and WsgiDAV, looking for the root's parent, would fail with a 500."""
    if environ.get("PATH_INFO", "/") in ("", "/"):
        method = environ.get("REQUEST_METHOD", "")
        raise DAVError(HTTP_FORBIDDEN, context_info=f"cannot {method} the root collection")


class DavDispatcher(RequestResolver):
    """Last middleware: hands each request to a `DavRequestServer` (OPTIONS * to WsgiDAV)."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        if environ["REQUEST_METHOD"] == "OPTIONS" and environ["PATH_INFO"] == "*":
            yield from super().__call__(environ, start_response)
            return
        provider = environ["wsgidav.provider"]
        if provider is None:
            raise DAVError(HTTP_NOT_FOUND, "no provider")
        server = self.request_server(provider, environ)
        if environ["REQUEST_METHOD"] not in READ_ONLY:
            yield from server(environ, start_response)
            return
        with lookups_kept(provider, environ):  # nothing changes the tree meanwhile
            yield from server(environ, start_response)

    def request_server(self, provider: Any, environ: Environ) -> DavRequestServer:
        """The request server for one request (`PROPFIND Depth: infinity` as configured)."""
        server = DavRequestServer(provider)
        server.allow_propfind_infinite = environ["wsgidav.config"]["davserver_infinite_depth"]
        return server
