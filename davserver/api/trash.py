"""The caller's trash in the JSON API (issue 16; see docs/api.md):

GET    /api/v1/trash            {"items": [{"id", "path", "kind", "size", "deleted",
                                "deleted_by"}]}, newest first
POST   /api/v1/trash/restore    {"id", "to"?}: back where it was (`name (restored)` if
                                that name is taken again), or at `to`; 200 {"path"}
DELETE /api/v1/trash/{id}       purge one item: 204
DELETE /api/v1/trash            empty the trash: 200 {"purged": n}

Deleting (WebDAV, links, the API) puts things in their owner's trash; 404 for an item
that is not in the caller's trash, 409 for a `to` that is taken.
"""

from __future__ import annotations

from typing import Any

from davserver.api.app import ApiRequest, Reply, Route, path_id, route
from davserver.http.errors import HttpError
from providers.catalog import TrashItemRecord
from providers.operations import Actor
from providers.operations.feed_view import api_kind

NO_ITEM = "no such item in the trash"


def list_trash(request: ApiRequest) -> Reply:
    """`GET /trash`: the items, newest first."""
    ops = request.context.ops
    items = ops.trash_items(Actor(request.user))
    names = ops.catalog.users.names_by_id(item.deleted_by for item in items)

    def name_of(user_id: int | None) -> str | None:
        return None if user_id is None else names.get(user_id, str(user_id))

    return Reply(200, {"items": [_item_json(item, name_of(item.deleted_by)) for item in items]})


def restore(request: ApiRequest) -> Reply:
    """`POST /trash/restore` {"id", "to"?}: put an item back."""
    body = request.json_object()
    unknown = sorted(set(body) - {"id", "to"})
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r}")
    item_id, to = body.get("id"), body.get("to")
    if not isinstance(item_id, str) or not item_id.isdigit():
        raise HttpError(404, NO_ITEM)
    if to is not None and (not isinstance(to, str) or not to):
        raise HttpError(400, "'to' must be a non-empty string")
    path = request.context.ops.restore_trashed(Actor(request.user), int(item_id), to)
    return Reply(200, {"path": path})


def purge(request: ApiRequest) -> Reply:
    """`DELETE /trash/{id}`: purge one item."""
    request.context.ops.purge_trashed(Actor(request.user), path_id(request, NO_ITEM))
    return Reply(204)


def empty(request: ApiRequest) -> Reply:
    """`DELETE /trash`: purge every item."""
    return Reply(200, {"purged": request.context.ops.empty_trash(Actor(request.user))})


def _item_json(item: TrashItemRecord, deleted_by: str | None) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "path": item.path,
        "kind": api_kind(item.kind),
        "size": item.size,
        "deleted": item.deleted,
        "deleted_by": deleted_by,
    }


ROUTES: tuple[Route, ...] = (
    route("GET", "/trash", list_trash),
    route("POST", "/trash/restore", restore),
    route("DELETE", "/trash/{id}", purge),
    route("DELETE", "/trash", empty),
)
