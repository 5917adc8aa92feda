"""Share links in the JSON API (see docs/api.md): the caller's `/s/<token>` links.

    GET    /api/v1/shares       [link], oldest first, revoked and expired ones included
    POST   /api/v1/shares       {"path", "perm", "expires_in" | "expires_at", "password",
                                 "max_downloads"}: 201 with the new link
    DELETE /api/v1/shares/<id>  204; 404 unless it is one of the caller's live links

A link is `{"id", "path", "perm", "token", "url", "expires_at", "max_downloads",
"downloads", "password", "state", "created_at"}`: `url` is absolute, on `public_url`
when that is set, else on the host and scheme the request came in by; `password` is
whether it has one; `state` is `live`, `expired`, `used` (no download left) or
`revoked`.
"""

from __future__ import annotations

import math
import time
from typing import Any

from davserver.api.app import MAX_ID, ApiRequest, Reply, Route, path_id, route
from davserver.auth.passwords import hash_password
from davserver.http.environ import base_url
from davserver.http.errors import HttpError
from davserver.links.signer import LinkSigner
from providers.catalog import DEFAULT_LINK_PERM, ShareLinkRecord
from providers.names import split_path

FIELDS = ("path", "perm", "expires_in", "expires_at", "password", "max_downloads")


def link_json(signer: LinkSigner, link: ShareLinkRecord, base: str) -> dict[str, Any]:
    path = signer.path(link.id)
    return {
        "id": link.id,
        "path": link.path,
        "perm": link.perm,
        "token": path.rsplit("/", 1)[1],
        "url": base + path,
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "downloads": link.downloads,
        "password": link.password_hash is not None,
        "state": link.state(time.time()),
        "created_at": link.created_at,
    }


def _number(body: dict[str, Any], name: str) -> float | None:
    """The optional positive finite number `name` (400 for anything else)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HttpError(400, f"{name!r} must be a number")
    if not math.isfinite(value) or value <= 0:
        raise HttpError(400, f"{name!r} must be a positive number")
    return float(value)


def _expiry(body: dict[str, Any], now: float) -> float | None:
    """`expires_at` from `expires_in` (seconds from now) or `expires_at` (epoch
    seconds, in the future); None when neither is given; 400 for both."""
    expires_in, expires_at = _number(body, "expires_in"), _number(body, "expires_at")
    if expires_in is not None and expires_at is not None:
        raise HttpError(400, "give 'expires_in' or 'expires_at', not both")
    if expires_at is not None and expires_at <= now:
        raise HttpError(400, "'expires_at' is in the past")
    return now + expires_in if expires_in is not None else expires_at


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise HttpError(400, f"{name!r} must be a non-empty string")
    return value


def _max_downloads(body: dict[str, Any]) -> int | None:
    value = body.get("max_downloads")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise HttpError(400, "'max_downloads' must be an integer")
    if value is not None and not 0 < value <= MAX_ID:
        raise HttpError(400, "'max_downloads' must be at least 1")
    return value


def list_links(request: ApiRequest) -> Reply:
    """`GET /shares`: every link the caller made, oldest first."""
    base = base_url(request.environ, request.context.public_url)
    signer = request.context.signer
    links = request.context.ops.catalog.links.of_owner(request.user.name)
    return Reply(200, [link_json(signer, link, base) for link in links])


def create_link(request: ApiRequest) -> Reply:
    """`POST /shares`: a new link to a file or folder of the caller's home (see the
    module docstring for the fields; only `path` is required, `perm` defaults to
    `download`). 201 with the link; 403 for what is under Shared/ (only its owner can
    share it); engine errors as usual (404 path, 409 the whole home or an upload or
    edit link to a file, 400 a bad perm)."""
    body = request.json_object()
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r}")
    path = _optional_string(body, "path")
    if path is None:
        raise HttpError(400, "'path' must be a non-empty string")
    expires_at = _expiry(body, time.time())
    password = _optional_string(body, "password")
    link = request.context.ops.create_link(
        request.user.name,
        split_path(path),
        _optional_string(body, "perm") or DEFAULT_LINK_PERM,
        password_hash=hash_password(password) if password is not None else None,
        expires_at=expires_at,
        max_downloads=_max_downloads(body),
    )
    return Reply(
        201,
        link_json(
            request.context.signer, link, base_url(request.environ, request.context.public_url)
        ),
    )


def revoke_link(request: ApiRequest) -> Reply:
    """`DELETE /shares/<id>`: revoke one of the caller's live links; 404 for any other
    id (another user's, unknown, or already revoked)."""
    link_id = path_id(request, "no such share link")
    if request.context.ops.revoke_link(link_id, request.user.name) is None:
        raise HttpError(404, "no such share link")
    return Reply(204)


ROUTES: tuple[Route, ...] = (
    route("GET", "/shares", list_links),
    route("POST", "/shares", create_link),
    route("DELETE", "/shares/{id}", revoke_link),
)
