"""A file's old versions in the JSON API (issue 16; see docs/api.md):

GET /api/v1/versions?path=P   {"versions": [{"id", "size", "sha256", "mtime", "created",
                               "author"}]}, newest first, without the current content

`path` is the caller's WebDAV path (home or `Shared/...`); anyone who can read the
file may list them: 404 if the caller does not see it, 409 for a folder.
"""

from __future__ import annotations

from typing import Any

from davserver.api.app import ApiRequest, Reply, Route, route
from davserver.api.changes import query_params
from davserver.http.errors import HttpError
from providers.catalog import VersionRecord
from providers.names import split_path
from providers.operations import Actor


def list_versions(request: ApiRequest) -> Reply:
    """`GET /versions?path=P`: the file's old versions, newest first."""
    path = query_params(request, ("path",)).get("path")
    if not path:
        raise HttpError(400, "path is required")
    ops, actor = request.context.ops, Actor(request.user)
    target = ops.view(actor).locate(split_path(path))
    if target is None:
        raise HttpError(404, f"{path}: not found")
    authors: dict[int, str] = {}

    def author(user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in authors:
            user = ops.catalog.users.by_id(user_id)
            authors[user_id] = user.name if user is not None else str(user_id)
        return authors[user_id]

    versions = ops.versions(actor, target)
    return Reply(200, {"versions": [_version_json(v, author(v.author_id)) for v in versions]})


def _version_json(version: VersionRecord, author: str | None) -> dict[str, Any]:
    return {
        "id": str(version.id),
        "size": version.size,
        "sha256": version.sha256,
        "mtime": version.mtime,
        "created": version.created,
        "author": author,
    }


ROUTES: tuple[Route, ...] = (route("GET", "/versions", list_versions),)
