"""The JSON API under `/api/v1/`: the caller's account, the grants they made, and what
others shared with them (see docs/api.md).

    GET    /api/v1/me           {"user", "quota_bytes", "used_bytes", "available_bytes"}
    GET    /api/v1/grants       [{"id", "path", "to", "perm", "created_at"}], oldest first
    POST   /api/v1/grants       {"path", "to", "perm"}: 201 new grant, 200 perm changed
    DELETE /api/v1/grants/<id>  204; 404 unless the caller made that grant
    GET    /api/v1/shared       [{"name", "owner", "perm", "kind"}], as under /dav/Shared/

Authentication is WebDAV's, not a copy of it: WsgiDAV's `HTTPAuthenticator` with the
very domain controller of /dav/ (Basic with the account or an app password, Digest),
behind a `RequestGuard` and a `LoginGate` on /dav/'s limiter and nonces. A failed login
here counts against the same user and address, and a 401 carries the same challenge.
Every answer is JSON, errors `{"error": "short reason"}`, those of the layers in front
of the router included (`JsonErrors`).

Endpoints are a table of `Route(method, pattern, handler)`; a handler takes an
`ApiRequest` and returns a `Reply` or raises `ApiError` (or an engine error, mapped by
`STORAGE_STATUS`). Another module adds endpoints by passing its routes to `build_api`
along with `ROUTES`. A change made here invalidates this process's `SharedSpace`, so it
shows under /dav/Shared/ at once (other processes follow the catalog's `acl` counter).
"""

from __future__ import annotations

import http
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from wsgidav.http_authenticator import HTTPAuthenticator

from davserver.auth.domain import REALM
from davserver.auth.login_gate import DigestNonces, LoginGate
from davserver.auth.ratelimit import LoginLimiter
from davserver.http.guards import RequestGuard
from providers.access import SHARED_KEY, SharedSpace
from providers.catalog import Catalog, GrantRecord, UserRecord
from providers.errors import Conflict, InvalidName, NotFound, StorageError, Unavailable
from providers.names import name_key, split_path

log = logging.getLogger(__name__)
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
API_PATH = "/api/v1"
MAX_BODY = 64 * 1024
MAX_ID = 2**31 - 1  # ids are 32-bit integers in PostgreSQL
JSON_TYPE = "application/json"
# Engine errors as statuses, most specific first.
STORAGE_STATUS: tuple[tuple[type[StorageError], int], ...] = (
    (Unavailable, 503),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidName, 400),
)


class ApiError(Exception):
    """An answer other than success: HTTP `status`, a short `reason`, extra headers."""

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


@dataclass(frozen=True)
class ApiContext:
    """What handlers use: the catalog, this process's `SharedSpace` (invalidated after
    a change made through the API), and the free space reported to users without a
    quota (the same function WebDAV's quota properties use)."""

    catalog: Catalog
    shares: SharedSpace
    free_bytes: Callable[[], int | None]


@dataclass(frozen=True)
class Reply:
    """A success: `status` and a JSON-able `body` (None: no body, as for 204)."""

    status: int
    body: Any = None


@dataclass
class ApiRequest:
    """One authenticated call: the caller's record and the route's path `params`."""

    context: ApiContext
    environ: dict[str, Any]
    user: UserRecord
    params: dict[str, str] = field(default_factory=dict)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; `ApiError` 413 over `MAX_BODY` bytes, 400 when it
        is not a JSON object."""
        try:
            value = json.loads(read_body(self.environ, MAX_BODY))
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            raise ApiError(400, "the body is not valid JSON") from e
        if not isinstance(value, dict):
            raise ApiError(400, "the body must be a JSON object")
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


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, at most `limit` bytes (`ApiError` 413 beyond, 400 for a bad
    Content-Length); b"" when there is none."""
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length:
        if not length.isdigit():
            raise ApiError(400, "bad Content-Length")
        if int(length) > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes")
        return bytes(stream.read(int(length)))
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = bytes(stream.read(limit + 1))
        if len(body) > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes")
        return body
    return b""


def json_response(
    start_response: Callable[..., Any],
    status: int,
    body: Any,
    headers: Sequence[tuple[str, str]] = (),
    exc_info: Any = None,
) -> list[bytes]:
    """Answer `status` with `body` as JSON (no body when None), never cached."""
    line = f"{status} {http.HTTPStatus(status).phrase}"
    out = [("Cache-Control", "no-store"), *headers]
    data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    if body is not None:
        out += [("Content-Type", JSON_TYPE), ("Content-Length", str(len(data)))]
    _start(start_response, line, out, exc_info)
    return [data] if data else []


def _start(
    start_response: Callable[..., Any], status: str, headers: list[tuple[str, str]], exc_info: Any
) -> Any:
    """Call `start_response`, passing `exc_info` only when there is one."""
    if exc_info is None:
        return start_response(status, headers)
    return start_response(status, headers, exc_info)


class ApiRouter:
    """Dispatches authenticated requests to the route matching path and method: 404 for
    no path, 405 with `Allow` for no method; engine errors per `STORAGE_STATUS`."""

    def __init__(self, context: ApiContext, routes: Sequence[Route]) -> None:
        self._context = context
        self._routes = list(routes)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            reply = self._dispatch(environ)
        except ApiError as e:
            return json_response(start_response, e.status, {"error": e.reason}, e.headers)
        except StorageError as e:
            status = next((code for kind, code in STORAGE_STATUS if isinstance(e, kind)), 500)
            if status >= 500:
                log.warning("API %s: %s", environ.get("PATH_INFO"), e)
            return json_response(start_response, status, {"error": str(e)})
        return json_response(start_response, reply.status, reply.body)

    def _dispatch(self, environ: dict[str, Any]) -> Reply:
        path = environ.get("PATH_INFO", "")[len(API_PATH) :].rstrip("/") or "/"
        found = [(r, m) for r in self._routes if (m := r.pattern.fullmatch(path))]
        if not found:
            raise ApiError(404, "no such endpoint")
        method = environ.get("REQUEST_METHOD", "")
        for candidate, match in found:
            if candidate.method == method:
                request = ApiRequest(self._context, environ, _caller(environ), match.groupdict())
                return candidate.handler(request)
        allow = ", ".join(sorted({r.method for r, _ in found}))
        raise ApiError(405, f"{method} is not allowed here", [("Allow", allow)])


def _caller(environ: dict[str, Any]) -> UserRecord:
    """The authenticated user's record, which the domain controller left in the environ."""
    user = environ.get("davserver.user")
    if not isinstance(user, UserRecord):
        raise ApiError(403, "no such user")
    return user


class JsonErrors:
    """Gives the error answers of the layers below a JSON body: a status of 400 or more
    without `application/json` gets `{"error": ...}` (its plain-text body, else a reason
    from the status), keeping its other headers (WWW-Authenticate, Retry-After). An
    exception before any answer becomes a 500 (logged)."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        held: list[Any] = []  # [status, headers, exc_info] of an answer to rewrite

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if int(status[:3]) >= 400 and not _is_json(headers):
                held[:] = [status, headers, exc_info]
                return lambda _data: None  # the body is replaced: discard writes
            return _start(start_response, status, headers, exc_info)

        try:
            result = self._app(environ, capture)
        except Exception:
            log.exception("API request %s failed", environ.get("PATH_INFO"))
            error = {"error": "internal error"}
            return json_response(start_response, 500, error, exc_info=sys.exc_info())
        return self._body(result, held, start_response)

    def _body(
        self, result: Iterable[bytes], held: list[Any], start_response: Callable[..., Any]
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
        return text[0][:200]
    if status.startswith("401"):
        return "authentication required"
    return status[4:].strip().lower() or "error"


def path_id(request: ApiRequest, missing: str) -> int:
    """The `{id}` of the path as a row id; `ApiError(404, missing)` for anything that
    cannot be one (not digits, zero, past the 32-bit ids of PostgreSQL)."""
    text = request.params["id"]
    row_id = int(text) if text.isdigit() and len(text) <= 10 else 0
    if not 0 < row_id <= MAX_ID:
        raise ApiError(404, missing)
    return row_id


def me(request: ApiRequest) -> Reply:
    """`GET /me`: the caller's name and space; `available_bytes` is what the quota leaves,
    or the store's free space without a quota (None if unknown), as WebDAV reports."""
    user = request.user
    if user.quota_bytes is not None:
        available: int | None = max(0, user.quota_bytes - user.used_bytes)
    else:
        available = request.context.free_bytes()
    body = {
        "user": user.name,
        "quota_bytes": user.quota_bytes,
        "used_bytes": user.used_bytes,
        "available_bytes": available,
    }
    return Reply(200, body)


def _grant_json(record: GrantRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "path": record.path,
        "to": record.grantee,
        "perm": record.perm,
        "created_at": record.created_at,
    }


def list_grants(request: ApiRequest) -> Reply:
    """`GET /grants`: the grants the caller made, oldest first."""
    records = request.context.catalog.grants.of_owner(request.user.name)
    return Reply(200, [_grant_json(r) for r in records])


def _string_fields(body: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The values of exactly the fields `names`, each a non-empty string; 400 otherwise."""
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}")
    values = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"{name!r} must be a non-empty string")
        values.append(value)
    return values


def create_grant(request: ApiRequest) -> Reply:
    """`POST /grants` {"path", "to", "perm"}: share a node of the caller's home with a
    user or `@group`. 201 with the new grant; 200 when that grantee already had a grant
    of that node (its perm is now `perm`). Items under Shared/ are others': 403."""
    path, to, perm = _string_fields(request.json_object(), ("path", "to", "perm"))
    names = split_path(path)
    if names and name_key(names[0]) == SHARED_KEY:
        raise ApiError(403, "only the owner can share what is under Shared/")
    grants = request.context.catalog.grants
    owner = request.user.name
    before = {g.id for g in grants.of_owner(owner)}
    record = grants.grant(owner, names, to, perm)
    request.context.shares.invalidate()
    return Reply(200 if record.id in before else 201, _grant_json(record))


def delete_grant(request: ApiRequest) -> Reply:
    """`DELETE /grants/<id>`: withdraw one of the caller's grants; 404 for any other id."""
    grant_id = path_id(request, "no such grant")
    if not request.context.catalog.grants.revoke_by_id(request.user.name, grant_id):
        raise ApiError(404, "no such grant")
    request.context.shares.invalidate()
    return Reply(204)


def shared(request: ApiRequest) -> Reply:
    """`GET /shared`: what others granted the caller, as the entries of /dav/Shared/."""
    entries = request.context.shares.entries(request.user.id).values()
    body = [
        {"name": e.name, "owner": e.grant.owner, "perm": e.grant.perm, "kind": e.node.kind}
        for e in entries
    ]
    return Reply(200, body)


ROUTES: tuple[Route, ...] = (
    route("GET", "/me", me),
    route("GET", "/grants", list_grants),
    route("POST", "/grants", create_grant),
    route("DELETE", "/grants/{id}", delete_grant),
    route("GET", "/shared", shared),
)


def build_api(
    context: ApiContext,
    dav_app: Any,
    limiter: LoginLimiter,
    nonces: DigestNonces | None,
    routes: Sequence[Route] = ROUTES,
) -> WsgiApp:
    """The API application, authenticated as `dav_app` (the WsgiDAV app of /dav/) is:
    its `HTTPAuthenticator` settings and domain controller (one password check, one
    verification cache), a `RequestGuard`, and a `LoginGate` on the same `limiter` and
    Digest `nonces`. Serve it for paths under `API_PATH`, unchanged."""
    authenticate = HTTPAuthenticator(dav_app, ApiRouter(context, routes), dav_app.config)
    authenticate.domain_controller = dav_app.http_authenticator.domain_controller
    guarded = RequestGuard(authenticate, max_xml_body=MAX_BODY)
    return JsonErrors(LoginGate(guarded, limiter, REALM, nonces))
