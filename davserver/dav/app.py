"""The WsgiDAV application mounted at /dav/: configuration and request handling.

WsgiDAV's own `RequestResolver` is replaced by `DavDispatcher` so requests reach
`DavRequestServer`, which adds what WsgiDAV lacks: multipart/byteranges answers to
multi-range GETs, RFC 4918 status codes (201 vs 204) for COPY/MOVE that the provider
handles in one transaction, a configurable ban on PROPFIND Depth: infinity, and Depth
0/1 PROPFIND answers rendered without WsgiDAV's per-property machinery (`propfind`).
`MemberTokenLockManager` lets a lock owner MOVE or DELETE a folder holding its locked
files when it submits their tokens (davfs2 does; WsgiDAV alone answers 423).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from typing import Any

from wsgidav import util
from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_NOT_FOUND, HTTP_NOT_MODIFIED, DAVError
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.lock_man.lock_manager import LockManager
from wsgidav.request_resolver import RequestResolver
from wsgidav.request_server import RequestServer
from wsgidav.wsgidav_app import WsgiDAVApp

from davserver.auth.domain import CatalogDomainController
from davserver.dav import propfind
from providers.catalog.users import Users
from providers.dav import DEST_CREATED, HomeProvider

MOUNT_PATH = "/dav"
StartResponse = Any


def parse_ranges(header: str, size: int) -> list[tuple[int, int, int]]:
    """Satisfiable (start, end, length) ranges of a `Range: bytes=...` header, in order."""
    unit, _, spec = header.partition("=")
    ranges = []
    for item in spec.split(",") if unit.strip() == "bytes" else []:
        first, dash, last = item.strip().partition("-")
        if not dash or not (first.isdigit() or last.isdigit()):
            return []
        if first.isdigit():
            start, end = int(first), min(int(last), size - 1) if last.isdigit() else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
        if start <= end:
            ranges.append((start, end, end - start + 1))
    return ranges


class MemberTokenLockManager(LockManager):
    """WsgiDAV's lock manager, except that a lock on a member of a collection does not
    block a Depth-infinity write to the collection (a MOVE or DELETE of the folder) when
    the request comes from the lock's owner and submits its token in `If:`.

    RFC 4918 (7.4, 9.9.4) asks for exactly that: the tokens of locked members must be
    submitted, and then the request may proceed. WsgiDAV 4.4 counts every member lock
    as a conflict ("TODO: verify assumptions" in `check_write_permission`), so davfs2,
    which locks each file it has open for writing and sends those tokens with the MOVE,
    got 423 renaming a folder that held a file not yet uploaded: `mv` failed with EIO.
    """

    def _get_write_conflicts(
        self, url: str, depth: str, token_list: list[str], principal: str
    ) -> Any:
        conflicts = super()._get_write_conflicts(url, "0", token_list, principal)
        if depth == "infinity":
            members = self.storage.get_lock_list(
                url, include_root=False, include_children=True, token_only=False
            )
            for lock in members:
                if lock["principal"] != principal or lock["token"] not in token_list:
                    conflicts.add_href(lock["root"])
        return conflicts


class DavRequestServer(RequestServer):
    """WsgiDAV's request handler with the additions listed in the module docstring.

    Rights (`providers.access`) are enforced by the provider's resources on every
    change they make; PUT, PROPPATCH, LOCK and UNLOCK are also checked here first, so
    a refused PUT is answered 403 before its body is read and a refused PROPPATCH gets
    a plain 403 rather than a 207 listing a 403 per property.
    """

    def _require_write(self, environ: dict[str, Any], *, may_create: bool) -> None:
        """403 unless the user may write the request's resource (or, when it does not
        exist and the method creates it, its parent folder)."""
        provider = self._davProvider
        path = environ["PATH_INFO"]
        res = provider.get_resource_inst(path, environ)
        if res is None and may_create:
            res = provider.get_resource_inst(util.get_uri_parent(path), environ)
        if res is not None:
            res.require_write()

    def do_PUT(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        """The target and its parent are looked up once: the check here and WsgiDAV's
        PUT both ask for them, and only the commit, at the end, changes the tree."""
        with self._davProvider.lookups_kept(environ):
            self._require_write(environ, may_create=True)
            return super().do_PUT(environ, start_response)

    def do_PROPPATCH(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        self._require_write(environ, may_create=False)
        return super().do_PROPPATCH(environ, start_response)

    def do_LOCK(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        self._require_write(environ, may_create=True)
        return super().do_LOCK(environ, start_response)

    def do_UNLOCK(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        self._require_write(environ, may_create=False)
        return super().do_UNLOCK(environ, start_response)

    def do_DELETE(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        _refuse_the_root(environ)
        return super().do_DELETE(environ, start_response)

    def do_COPY(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        return self._copy_or_move_with_status(environ, start_response, is_move=False)

    def do_MOVE(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        return self._copy_or_move_with_status(environ, start_response, is_move=True)

    def _copy_or_move_with_status(
        self, environ: dict[str, Any], start_response: StartResponse, *, is_move: bool
    ) -> Any:
        """Answer 201 when the destination was new (WsgiDAV says 204 for handled ones)."""
        _refuse_the_root(environ)

        def fixed_start_response(status: str, headers: list[Any], *args: Any) -> Any:
            if status.startswith("204") and environ.get(DEST_CREATED) is True:
                status = "201 Created"
            return start_response(status, headers, *args)

        return self._copy_or_move(environ, fixed_start_response, is_move)

    def do_PROPFIND(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        """Depth 0 and 1 answers are rendered by `davserver.dav.propfind`; WsgiDAV does the rest.

        The body was buffered by the request guard, so it is read here and put back for
        WsgiDAV when the fast path declines.
        """
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

    def do_HEAD(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        self._check_modified_since(environ)
        return self._send_resource(environ, start_response, is_head_method=True)

    def _check_modified_since(self, environ: dict[str, Any]) -> None:
        """304 when Last-Modified <= If-Modified-Since (WsgiDAV only answers 304 for <)."""
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if not since or "HTTP_IF_NONE_MATCH" in environ:
            return
        res = self._davProvider.get_resource_inst(environ["PATH_INFO"], environ)
        when = util.parse_time_string(since)
        fresh = res is not None and not res.is_collection and when is not None
        if fresh and res.get_last_modified() <= when:
            raise DAVError(HTTP_NOT_MODIFIED, "not modified since " + since)

    def do_GET(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        self._check_modified_since(environ)
        multi = self._multi_range(environ)
        if multi is None:
            return self._send_resource(environ, start_response)
        return self._send_multipart(environ, start_response, *multi)

    def _multi_range(self, environ: dict[str, Any]) -> tuple[Any, list[Any]] | None:
        """(resource, ranges) for a satisfiable multi-range GET, else None."""
        header = environ.get("HTTP_RANGE", "")
        if "," not in header or "HTTP_IF_RANGE" in environ:
            return None
        res = self._davProvider.get_resource_inst(environ["PATH_INFO"], environ)
        if res is None or res.is_collection:
            return None
        ranges = parse_ranges(header, res.get_content_length())
        return (res, ranges) if len(ranges) > 1 else None

    def _send_multipart(
        self, environ: dict[str, Any], start_response: StartResponse, res: Any, ranges: list[Any]
    ) -> Iterator[bytes]:
        etag = res.get_etag()
        util.evaluate_http_conditionals(res, res.get_last_modified(), etag, environ)
        size = res.get_content_length()
        boundary = secrets.token_hex(16)
        heads = [
            (
                f"--{boundary}\r\nContent-Type: {res.get_content_type()}\r\n"
                f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n"
            ).encode()
            for start, end, _length in ranges
        ]
        tail = f"--{boundary}--\r\n".encode()
        total = sum(len(h) + length + 2 for h, (_s, _e, length) in zip(heads, ranges, strict=True))
        start_response(
            "206 Partial Content",
            [
                ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
                ("Content-Length", str(total + len(tail))),
                ("ETag", f'"{etag}"'),
                ("Last-Modified", util.get_rfc1123_time(res.get_last_modified())),
                ("Accept-Ranges", "bytes"),
            ],
        )
        stream = res.get_content()
        try:
            for head, (start, _end, length) in zip(heads, ranges, strict=True):
                yield head
                stream.seek(start)
                while length > 0 and (data := stream.read(min(length, self.block_size))):
                    length -= len(data)
                    yield data
                yield b"\r\n"
            yield tail
        finally:
            stream.close()


def _refuse_the_root(environ: dict[str, Any]) -> None:
    """403 for DELETE, COPY or MOVE of the mount's root (a home): it cannot go, and
    WsgiDAV, looking for the root's parent, would fail with a 500."""
    if environ.get("PATH_INFO", "/") in ("", "/"):
        method = environ.get("REQUEST_METHOD", "")
        raise DAVError(HTTP_FORBIDDEN, context_info=f"cannot {method} the root collection")


class DavDispatcher(RequestResolver):
    """Last middleware: hands each request to a `DavRequestServer` (OPTIONS * to WsgiDAV)."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        if environ["REQUEST_METHOD"] == "OPTIONS" and environ["PATH_INFO"] == "*":
            yield from super().__call__(environ, start_response)
            return
        provider = environ["wsgidav.provider"]
        if provider is None:
            raise DAVError(HTTP_NOT_FOUND, "no provider")
        server = DavRequestServer(provider)
        server.allow_propfind_infinite = environ["wsgidav.config"]["davserver_infinite_depth"]
        yield from server(environ, start_response)


class FolderPages(WsgiDavDirBrowser):
    """WsgiDAV's HTML page of a folder, for GET and HEAD. WsgiDAV's looks up the
    request's resource for every method, to find folders; other methods now pass
    straight on (a lookup fewer for each of them)."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return self.next_app(environ, start_response)
        return super().__call__(environ, start_response)


def build_dav_app(
    provider: HomeProvider,
    users: Users,
    lock_storage: Any,
    *,
    block_size: int,
    propfind_infinite_depth: bool,
    verbose: int,
) -> WsgiDAVApp:
    """The WsgiDAV WSGI app serving every user's home under `MOUNT_PATH`."""
    config = {
        "provider_mapping": {"/": provider},
        "mount_path": MOUNT_PATH,
        "http_authenticator": {
            "domain_controller": CatalogDomainController,
            "accept_basic": True,
            "accept_digest": True,
            "default_to_digest": False,
        },
        "davserver_dc": {"users": users},
        "davserver_infinite_depth": propfind_infinite_depth,
        "lock_storage": None,  # WsgiDAV would build its own LockManager; see below
        "property_manager": None,
        "honor_mtime_header": True,
        "block_size": block_size,
        "verbose": verbose,
        "logging": {"enable": False},
        "suppress_version_info": True,
        "dir_browser": {"enable": True, "response_trailer": "davserver", "davmount": True},
        "hotfixes": {"emulate_win32_lastmod": True},
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, FolderPages, DavDispatcher],
    }
    app = WsgiDAVApp(config)
    if lock_storage:
        app.lock_manager = MemberTokenLockManager(lock_storage)
        provider.set_lock_manager(app.lock_manager)
    return app
