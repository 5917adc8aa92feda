"""The JSON API under `/api/v1/`: a router of endpoints behind /dav/'s logins (see
docs/api.md). Endpoints: `davserver.api.account` (me, grants, shared),
`davserver.api.shares` (share links), `changes`, `push`, `versions`, `trash` and
`blocks` (the delta API).

Authentication is WebDAV's, not a copy of it: WsgiDAV's `HTTPAuthenticator` with the
very domain controller of /dav/ (Basic with the account or an app password, Digest),
behind a `RequestGuard` and a `LoginGate` on /dav/'s limiter and nonces. A failed login
here counts against the same user and address, and a 401 carries the same challenge.
Every answer is JSON, errors `{"error": "short reason"}`, those of the layers in front
of the router included (`JsonErrors`).

Endpoints are a table of `Route(method, pattern, handler)`; a handler takes an
`ApiRequest` and returns a `Reply` or raises `HttpError` (or an engine error, whose
class names its status). Changes go through the operations layer (`ApiContext.ops`),
like every door's.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from davserver.api.block_urls import BlockUrls
from davserver.auth.domain import REALM
from davserver.auth.login_gate import DigestNonces, LoginGate
from davserver.auth.ratelimit import LoginLimiter
from davserver.dav.app import authenticated
from davserver.http.body import read_body
from davserver.http.environ import USER, StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.errors import HttpError, from_storage, status_line
from davserver.http.guards import RequestGuard
from davserver.http.responses import JSON_TYPE, json_response, start
from davserver.links.signer import LinkSigner
from providers.catalog import UserRecord
from providers.errors import StorageError
from providers.operations import Operations
from providers.operations.blocks import BlockTransfers
from providers.push import Push

log = logging.getLogger(__name__)
API_PATH = "/api/v1"
MAX_BODY = 64 * 1024
MAX_ID = 2**31 - 1  # ids are 32-bit integers in PostgreSQL


@dataclass(frozen=True)
class ApiContext:
    """What handlers use: the operations layer, the free space reported to users
    without a quota (the same function WebDAV's quota properties use), and the signer
    of share-link tokens, and the configured public URL ('' when unset: links are
    then on the address each request came in by), and push (waiting for changes;
    None: not served), and the delta API's engine and block URL signer (None: not
    served)."""

    ops: Operations
    free_bytes: Callable[[], int | None]
    signer: LinkSigner
    public_url: str = ""
    push: Push | None = None
    blocks: BlockTransfers | None = None
    block_urls: BlockUrls | None = None


@dataclass(frozen=True)
class Reply:
    """A success: `status` and a JSON-able `body` (None: no body, as for 204). Or a
    `stream`: a body sent as it is produced (no Content-Length: chunked), under
    `headers` that name its type; the server calls its `close` when the answer ends,
    also when the client left before it was iterated."""

    status: int
    body: Any = None
    headers: Sequence[tuple[str, str]] = ()
    stream: Iterable[bytes] | None = None


@dataclass
class ApiRequest:
    """One authenticated call: the caller's record and the route's path `params`."""

    context: ApiContext
    environ: dict[str, Any]
    user: UserRecord
    params: dict[str, str] = field(default_factory=dict)

    def json_object(self, limit: int = MAX_BODY) -> dict[str, Any]:
        """The body as a JSON object; `HttpError` 413 over `limit` bytes, 400 when it
        is not a JSON object."""
        try:
            value = json.loads(read_body(self.environ, limit))
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            raise HttpError(400, "the body is not valid JSON") from e
        if not isinstance(value, dict):
            raise HttpError(400, "the body must be a JSON object")
        return value


Handler = Callable[[ApiRequest], Reply]


@dataclass(frozen=True)
class Route:
    """`method` on paths below `API_PATH` that fully match `pattern` (named groups become
    `ApiRequest.params`)."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler) -> Route:
    """A route for `template` below `API_PATH`, where `{name}` is one path segment."""
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Route(method, re.compile(regex), handler)


class ApiRouter:
    """Dispatches authenticated requests to the route matching path and method: 404 for
    no path, 405 with `Allow` for no method; engine errors by their class's status."""

    def __init__(self, context: ApiContext, routes: Sequence[Route]) -> None:
        self._context = context
        self._routes = list(routes)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            reply = self._dispatch(environ)
        except StorageError as e:
            error = from_storage(e, f"API {environ.get('PATH_INFO')}")
            return json_response(start_response, error.status, {"error": error.reason})
        except HttpError as e:
            return json_response(start_response, e.status, {"error": e.reason}, e.headers)
        if reply.stream is not None:
            start_response(status_line(reply.status), list(reply.headers))
            return reply.stream
        return json_response(start_response, reply.status, reply.body, reply.headers)

    def _dispatch(self, environ: dict[str, Any]) -> Reply:
        path = environ.get("PATH_INFO", "")[len(API_PATH) :].rstrip("/") or "/"
        found = [(r, m) for r in self._routes if (m := r.pattern.fullmatch(path))]
        if not found:
            raise HttpError(404, "no such endpoint")
        method = environ.get("REQUEST_METHOD", "")
        for candidate, match in found:
            if candidate.method == method:
                request = ApiRequest(self._context, environ, _caller(environ), match.groupdict())
                return candidate.handler(request)
        allow = ", ".join(sorted({r.method for r, _ in found}))
        raise HttpError(405, f"{method} is not allowed here", [("Allow", allow)])


def _caller(environ: dict[str, Any]) -> UserRecord:
    """The authenticated user's record, which the domain controller left in the environ."""
    user = environ.get(USER)
    if not isinstance(user, UserRecord):
        raise HttpError(403, "no such user")
    return user


class JsonErrors:
    """Gives the error answers of the layers below a JSON body: a status of 400 or more
    without `application/json` gets `{"error": ...}` (its plain-text body, else a reason
    from the status), keeping its other headers (WWW-Authenticate, Retry-After). An
    exception before any answer becomes a 500 (logged)."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        held: list[Any] = []  # [status, headers, exc_info] of an answer to rewrite
        passed: list[bool] = []  # an answer went through as it is

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if int(status[:3]) >= 400 and not _is_json(headers):
                held[:] = [status, headers, exc_info]
                return lambda _data: None  # the body is replaced: discard writes
            passed.append(True)
            return start(start_response, status, headers, exc_info)

        try:
            result = self._app(environ, capture)
        except Exception:
            log.exception("API request %s failed", environ.get("PATH_INFO"))
            error = {"error": "internal error"}
            return json_response(start_response, 500, error, exc_info=sys.exc_info())
        if passed and not held:  # started already and not rewritten: hand it on whole
            return result  # (a stream's `close` must reach it even if never iterated)
        return self._body(result, held, start_response)

    def _body(
        self, result: Iterable[bytes], held: list[Any], start_response: StartResponse
    ) -> Iterator[bytes]:
        """Pass `result` through, or, once an error answer was held, collect it and
        send its JSON replacement instead."""
        collected: list[bytes] = []
        try:
            for chunk in result:
                if held:
                    collected.append(chunk)
                else:
                    yield chunk
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if held:
            status, headers, exc_info = held
            reason = _error_reason(status, headers, b"".join(collected))
            kept = [h for h in headers if h[0].lower() not in ("content-type", "content-length")]
            yield from json_response(
                start_response, int(status[:3]), {"error": reason}, kept, exc_info
            )


def _is_json(headers: Sequence[tuple[str, str]]) -> bool:
    return any(k.lower() == "content-type" and v.startswith(JSON_TYPE) for k, v in headers)


def _error_reason(status: str, headers: Sequence[tuple[str, str]], body: bytes) -> str:
    """The short reason of a non-JSON error answer (see `JsonErrors`)."""
    plain = any(k.lower() == "content-type" and v.startswith("text/plain") for k, v in headers)
    text = body.decode("utf-8", "replace").strip().splitlines() if plain else []
    if text and text[0]:
        return text[0].split(" (request id ")[0][:200]  # json_response adds it as a field
    if status.startswith("401"):
        return "authentication required"
    return status[4:].strip().lower() or "error"


def path_id(request: ApiRequest, missing: str) -> int:
    """The `{id}` of the path as a row id; `ApiError(404, missing)` for anything that
    cannot be one (not digits, zero, past the 32-bit ids of PostgreSQL)."""
    text = request.params["id"]
    row_id = int(text) if text.isdigit() and len(text) <= 10 else 0
    if not 0 < row_id <= MAX_ID:
        raise HttpError(404, missing)
    return row_id


def build_api(
    context: ApiContext,
    dav_app: Any,
    limiter: LoginLimiter,
    nonces: DigestNonces | None,
    routes: Sequence[Route],
) -> WSGIApplication:
    """The API application, authenticated as `dav_app` (the WsgiDAV app of /dav/) is:
    its `HTTPAuthenticator` settings and domain controller (one password check, one
    verification cache), a `RequestGuard`, and a `LoginGate` on the same `limiter` and
    Digest `nonces`. Serve it for paths under `API_PATH`, unchanged."""
    router = ApiRouter(context, routes)
    guarded = RequestGuard(authenticated(dav_app, router), max_xml_body=MAX_BODY)
    return JsonErrors(LoginGate(guarded, limiter, REALM, nonces))
