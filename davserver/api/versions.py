"""A file's old versions in the JSON API (issue 16; see docs/api.md):

GET  /api/v1/versions?path=P        {"versions": [{"id", "size", "sha256", "mtime",
                                    "created", "author"}]}, newest first, without the
                                    current content
POST /api/v1/versions/restore       {"path", "id"}: that version becomes current (the
                                    replaced content becomes a version); 200 {"etag"}

`path` is the caller's WebDAV path (home or `Shared/...`); anyone who can read the
file may list them, whoever may write it restore one: 404 if the caller does not
see it (or no such version), 409 for a folder, 403 read-only, 423 locked, 507 quota.
"""

from __future__ import annotations

from typing import Any

from davserver.api.account import string_fields
from davserver.api.app import ApiRequest, Reply, Route, route
from davserver.api.changes import query_params
from davserver.http.errors import HttpError
from providers.catalog import VersionRecord
from providers.operations import Actor


def list_versions(request: ApiRequest) -> Reply:
    """`GET /versions?path=P`: the file's old versions, newest first."""
    path = query_params(request, ("path",)).get("path")
    if not path:
        raise HttpError(400, "path is required")
    ops, actor = request.context.ops, Actor(request.user)
    target = request.context.ops.locate_path(Actor(request.user), path)
    versions = ops.versions(actor, target)
    names = ops.catalog.users.names_by_id(v.author_id for v in versions)

    def author(user_id: int | None) -> str | None:
        return None if user_id is None else names.get(user_id, str(user_id))

    return Reply(200, {"versions": [_version_json(v, author(v.author_id)) for v in versions]})


def restore_version(request: ApiRequest) -> Reply:
    """`POST /versions/restore` {"path", "id"}: make that version current."""
    path, version_id = string_fields(request.json_object(), ("path", "id"))
    if not version_id.isdigit():
        raise HttpError(404, "no such version of this file")
    target = request.context.ops.locate_path(Actor(request.user), path)
    node = request.context.ops.restore_version(Actor(request.user), target, int(version_id))
    return Reply(200, {"etag": node.digest, "size": node.size})


def _version_json(version: VersionRecord, author: str | None) -> dict[str, Any]:
    return {
        "id": str(version.id),
        "size": version.size,
        "sha256": version.sha256,
        "mtime": version.mtime,
        "created": version.created,
        "author": author,
    }


ROUTES: tuple[Route, ...] = (
    route("GET", "/versions", list_versions),
    route("POST", "/versions/restore", restore_version),
)
