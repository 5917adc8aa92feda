"""The drop page: where a share link's visitor sends files (TUS, `davserver.links.uploads`).

A template (`links/drop.html`) and one small script (`static/drop.js`): files chosen
with the file input or dropped (folders too, with their sub-folders) are sent one after
the other, each created with a TUS POST and sent in `PIECE`-byte PATCHes; a PATCH that
fails (network, 409, 5xx other than 507) is followed by a HEAD and the upload goes on
from the server's offset, up to `RETRIES` times in a row. Each file has a `<progress>`
bar and a status line; the final name (after an automatic rename) comes from the last
answer's `X-Davserver-Name` header. The page names the folder and nothing in it: an
upload link shows none of the folder's contents.
"""

from __future__ import annotations

from urllib.parse import quote

from davserver.http.environ import StartResponse
from davserver.links.site import ShareRequest, page

PIECE = 8 * 1024 * 1024  # bytes per PATCH: a failure costs at most this much again
RETRIES = 6


def render(req: ShareRequest, start_response: StartResponse, folder: list[str]) -> list[bytes]:
    """The drop page sending into `folder` (names below the shared folder; created at
    the commit if missing). Only the shared folder's own name and `folder` are shown."""
    target = "/".join([req.link.node.name, *folder])
    back = None
    if req.link.perm != "upload":
        browse = "/".join(quote(name, safe="") for name in folder)
        back = f"{req.base}/browse/{browse}/" if folder else f"{req.base}/"
    return page(
        req,
        start_response,
        "200 OK",
        "links/drop.html",
        title=f"Send files to {target}",
        target=target,
        back_href=back,
        endpoint=f"{req.base}/upload/",
        folder="/".join(folder),
        piece=PIECE,
        retries=RETRIES,
    )
