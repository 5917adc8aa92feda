"""The edit endpoint of `edit` links: rename, delete and new folders, from the pages.

`POST edit` with JSON `{"op": "rename"|"delete"|"mkdir", "path": "/sub/a.txt",
"name": "new name"}` (`path`: the item to rename or delete, or the folder to make the
new folder in) and the header `X-Davserver-Edit: 1`. That header is the CSRF defence:
a form on another site can POST here with the visitor's unlock cookie, but cannot add
a header, and a script there could only with our CORS consent, which we never give.

Each edit is an operation of the operations layer, for the link's actor: the same
rights and WebDAV locks as every door (a locked item, or a folder holding one: 423).
Answers: 201 (rename, mkdir: JSON `name`, `path`), 204 (delete); errors as JSON
`{"error": ...}`: 400 bad request or name, 403 no header or the shared folder itself,
404 no such path (or one leaving the share), 409 the name is taken, 423 locked.
"""

from __future__ import annotations

import json
from typing import Any

from davserver.http.body import read_body
from davserver.http.environ import StartResponse
from davserver.http.errors import HttpError, from_storage
from davserver.http.responses import json_response
from davserver.links.site import BASE_HEADERS, Action, ShareRequest, link_actor, not_found
from providers.errors import InvalidName, StorageError
from providers.names import check_name, split_path
from providers.operations import Actor, Located, Operations

MAX_EDIT_BODY = 16 * 1024
Reply = tuple[int, dict[str, str] | None]


def actions(ops: Operations) -> dict[str, Action]:
    """The `edit` action (see the module docstring)."""
    return {"edit": Action(EditHandler(ops), frozenset({"edit"}), resolve=False)}


class EditHandler:
    """The `edit` action (see the module docstring)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def __call__(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.names:
            return not_found(start_response)
        headers = list(BASE_HEADERS)
        try:
            if req.method != "POST":
                headers.append(("Allow", "POST"))
                raise HttpError(405, "use POST")
            if req.environ.get("HTTP_X_DAVSERVER_EDIT") != "1":
                raise HttpError(403, "the X-Davserver-Edit: 1 header is required")
            op, names, name = _edit_request(req.environ)
            status, answer = self._edit(req, op, names, name)
        except HttpError as e:
            status, answer = e.status, {"error": e.reason}
        except StorageError as e:
            error = from_storage(e, f"share link {req.link.id} edit")
            status, answer = error.status, {"error": error.reason}
        return json_response(start_response, status, answer, headers)

    def _edit(self, req: ShareRequest, op: str, names: list[str], name: str) -> Reply:
        actor = link_actor(self.ops, req.link)
        target = self._located(actor, names)
        if op == "mkdir":
            made = self.ops.mkdir(actor, target, name)
            return 201, {"name": made.name, "path": _path([*target.shown, made.name])}
        if not names:
            raise HttpError(403, f"the shared folder itself cannot be {op}d")
        if op == "delete":
            self.ops.delete(actor, target)
            return 204, None
        parent = self._located(actor, names[:-1])
        moved = self.ops.move(actor, target, parent, name, overwrite=False).node
        return 201, {"name": moved.name, "path": _path([*parent.shown, moved.name])}

    def _located(self, actor: Actor, names: list[str]) -> Located:
        """The node at `names` inside the share; 404 if there is none."""
        located = self.ops.view(actor).locate(names)
        if located is None:
            raise HttpError(404, "no such file or folder")
        return located


def _path(names: list[str]) -> str:
    return "/" + "/".join(names)


def _edit_request(environ: dict[str, Any]) -> tuple[str, list[str], str]:
    """(op, names of `path` inside the share, checked `name`) from the JSON body;
    `HttpError` 400 for a malformed request or name, 404 for a path that cannot be in
    the share ('..', NUL...: nothing to say about it but "not found")."""
    try:
        request = json.loads(read_body(environ, MAX_EDIT_BODY) or b"null")
    except ValueError as e:
        raise HttpError(400, "the body is not JSON") from e
    if not isinstance(request, dict) or request.get("op") not in ("rename", "delete", "mkdir"):
        raise HttpError(400, "op must be rename, delete or mkdir")
    op, path, name = request["op"], request.get("path"), request.get("name")
    if not isinstance(path, str):
        raise HttpError(400, "path must be a string")
    try:
        names = split_path(path)
    except InvalidName as e:
        raise HttpError(404, "no such file or folder") from e
    if op == "delete":
        return op, names, ""
    if not isinstance(name, str):
        raise HttpError(400, "name must be a string")
    try:
        return op, names, check_name(name)
    except InvalidName as e:
        raise HttpError(400, str(e)) from e
