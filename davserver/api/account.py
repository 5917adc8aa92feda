"""The caller's account in the JSON API (see docs/api.md):

GET    /api/v1/me           {"user", "quota_bytes", "used_bytes", "available_bytes",
                             "current_bytes", "versions_bytes", "trash_bytes"}
GET    /api/v1/grants       [{"id", "path", "to", "perm", "created_at"}], oldest first
POST   /api/v1/grants       {"path", "to", "perm"}: 201 new grant, 200 perm changed
DELETE /api/v1/grants/<id>  204; 404 unless the caller made that grant
GET    /api/v1/shared       [{"name", "owner", "perm", "kind"}], as under /dav/Shared/
                            (kind: `file` or `folder`, as everywhere in the API)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from davserver.api.app import ApiRequest, Reply, Route, path_id, route
from davserver.http.errors import HttpError
from providers.catalog import GrantRecord
from providers.names import split_path
from providers.operations.feed_view import api_kind


def me(request: ApiRequest) -> Reply:
    """`GET /me`: the caller's name and space; `available_bytes` is what the quota leaves,
    or the store's free space without a quota (None if unknown), as WebDAV reports.
    `used_bytes` is what the quota is charged, split into the files (`current_bytes`),
    what old versions alone keep (`versions_bytes`) and the trash (`trash_bytes`)."""
    user = request.user
    usage = request.context.ops.catalog.history_usage.usage(user.id)
    available = None if usage.quota is None else max(0, usage.quota - usage.charged)
    if available is None:
        available = request.context.free_bytes()
    body = {
        "user": user.name,
        "quota_bytes": usage.quota,
        "used_bytes": usage.charged,
        "available_bytes": available,
        "current_bytes": usage.current,
        "versions_bytes": usage.versions,
        "trash_bytes": usage.trash,
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
    records = request.context.ops.catalog.grants.of_owner(request.user.name)
    return Reply(200, [_grant_json(r) for r in records])


def string_fields(body: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The values of exactly the fields `names`, each a non-empty string; 400 otherwise."""
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r}")
    values = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise HttpError(400, f"{name!r} must be a non-empty string")
        values.append(value)
    return values


def create_grant(request: ApiRequest) -> Reply:
    """`POST /grants` {"path", "to", "perm"}: share a node of the caller's home with a
    user or `@group`. 201 with the new grant; 200 when that grantee already had a grant
    of that node (its perm is now `perm`). Items under Shared/ are others': 403."""
    path, to, perm = string_fields(request.json_object(), ("path", "to", "perm"))
    record, created = request.context.ops.grant(request.user.name, split_path(path), to, perm)
    return Reply(201 if created else 200, _grant_json(record))


def delete_grant(request: ApiRequest) -> Reply:
    """`DELETE /grants/<id>`: withdraw one of the caller's grants; 404 for any other id."""
    grant_id = path_id(request, "no such grant")
    if not request.context.ops.revoke_grant(request.user.name, grant_id):
        raise HttpError(404, "no such grant")
    return Reply(204)


def shared(request: ApiRequest) -> Reply:
    """`GET /shared`: what others granted the caller, as the entries of /dav/Shared/."""
    entries = request.context.ops.shares.entries(request.user.id).values()
    body = [
        {
            "name": e.name,
            "owner": e.grant.owner,
            "perm": e.grant.perm,
            "kind": api_kind(e.node.kind),
        }
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
