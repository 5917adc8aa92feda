"""The change feed in the JSON API (see docs/api.md, "Change feed"):

GET /api/v1/changes/latest[?path=/sub]   {"cursor"}: the position now
GET /api/v1/changes?cursor=&limit=&path= {"changes": [entry...], "cursor", "has_more"}

Without `cursor`, the pages list the caller's current tree (or the `path` subtree) as
`created` entries, then hand a cursor that continues with the log. Paths are the
caller's WebDAV paths (their home, `Shared/...`). The read side, its contract and
its errors are `providers.operations.feed.Feed`'s: 400 for a cursor this server did
not make (or made for another `path`), 403 for another user's, 410 `{"error":
"reset"}` for one older than the log keeps (`change_retention`).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from davserver.api.app import ApiRequest, Reply, Route, route
from davserver.http.errors import HttpError
from providers.operations import Actor
from providers.operations.feed import MAX_LIMIT

DEFAULT_LIMIT = 500


def query_params(request: ApiRequest, names: tuple[str, ...]) -> dict[str, str]:
    """The query parameters `names` given once each; 400 for unknown or repeated ones."""
    raw = parse_qs(request.environ.get("QUERY_STRING", ""), keep_blank_values=True)
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise HttpError(400, f"unknown parameter {unknown[0]!r}")
    found = {}
    for name, values in raw.items():
        if len(values) != 1:
            raise HttpError(400, f"{name!r} given more than once")
        found[name] = values[0]
    return found


def _limit(text: str | None) -> int:
    """`limit` as 1..MAX_LIMIT (DEFAULT_LIMIT when absent); 400 otherwise."""
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise HttpError(400, f"limit must be a number from 1 to {MAX_LIMIT}")
    return int(text)


def latest(request: ApiRequest) -> Reply:
    """`GET /changes/latest`: the cursor of now (for `path`, default the root)."""
    params = query_params(request, ("path",))
    cursor = request.context.ops.feed.latest(Actor(request.user), params.get("path") or "/")
    return Reply(200, {"cursor": cursor})


def changes(request: ApiRequest) -> Reply:
    """`GET /changes`: a page of entries after `cursor` (a bootstrap page without)."""
    params = query_params(request, ("cursor", "limit", "path"))
    cursor = params.get("cursor") or None
    feed = request.context.ops.feed
    page = feed.read(
        Actor(request.user), cursor, _limit(params.get("limit")), params.get("path") or "/"
    )
    body = {
        "changes": [entry.to_json() for entry in page.entries],
        "cursor": page.cursor,
        "has_more": page.has_more,
    }
    return Reply(200, body)


ROUTES: tuple[Route, ...] = (
    route("GET", "/changes/latest", latest),
    route("GET", "/changes", changes),
)
