"""The share-link web pages: folder listings and file pages with previews (the
actions `ShareSite` routes, see its table).

`actions(pages)` gives them, with the file actions of `davserver.links.files`:

    ""        the link's own page: listing (folder), file page (file), drop page (upload)
    browse    a folder listing (`?sort=name|size|modified&order=asc|desc`) or a file page
    raw       a file inline, for previews; download  the file as an attachment

Every URL a page links to is built here from stored names, percent-encoded name by
name, always below `/s/<token>/`: nothing a visitor types is ever echoed back as a
link or a redirect target. Pages are templates (`davserver.web`, autoescaped) with the
pages' Content-Security-Policy, and are `no-store` (`davserver.links.site.respond`).
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from davserver.http.environ import StartResponse
from davserver.links import drop_page
from davserver.links.files import guessed_type, preview_kind, serve_file
from davserver.links.site import ALL_PERMS, SEE, Action, ShareRequest, not_found, page
from davserver.web.listing import Crumb, Row
from providers.catalog import Catalog, NodeRecord
from providers.errors import StorageError
from providers.filestore import FileStore, file_label

log = logging.getLogger(__name__)
DOWNLOAD = frozenset({"download", "edit"})
TEXT_PREVIEW = 256 * 1024  # bytes of a text file shown on its page
SORT_KEYS = (("name", "Name"), ("size", "Size"), ("modified", "Modified"))


def actions(pages: SharePages) -> dict[str, Action]:
    """The page actions (see the module docstring)."""
    return {
        "": Action(pages.root, ALL_PERMS),
        "browse": Action(pages.browse, SEE),
        "raw": Action(pages.raw, SEE),
        "download": Action(pages.download, DOWNLOAD),
    }


def href(base: str, action: str, names: list[str], *, folder: bool = False) -> str:
    """`{base}/{action}/{names...}`, each name percent-encoded; `folder` adds '/'."""
    path = "/".join(quote(name, safe="") for name in names)
    if not path:
        return f"{base}/{action}" if action else f"{base}/"
    return f"{base}/{action}/{path}" + ("/" if folder else "")


def share_path(names: list[str]) -> str:
    """A path inside the share as the edit endpoint takes it: `/sub/a.txt`, `/`."""
    return "/" + "/".join(names)


@dataclass(frozen=True)
class Column:
    """A sortable column header: its link and, when it is the sort key, the order."""

    key: str
    label: str
    href: str
    order: str | None  # "asc" / "desc" when sorted by it


class SharePages:
    """The page actions (see the module docstring); one per site."""

    def __init__(self, catalog: Catalog, files: FileStore) -> None:
        self.catalog = catalog
        self.files = files

    def root(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.link.perm == "upload":
            return drop_page.render(req, start_response, [])
        if req.names:
            return not_found(start_response)
        return self.browse(req, start_response)

    def browse(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.method not in ("GET", "HEAD"):
            return not_allowed(req, start_response)
        if req.node is None:
            return not_found(start_response)
        try:
            if req.node.is_dir:
                return self._listing(req, start_response, req.node)
            return self._file_page(req, start_response, req.node)
        except StorageError as e:
            log.warning("share link %s: %s", req.link.id, e)
            return unavailable(req, start_response)

    def raw(self, req: ShareRequest, start_response: StartResponse) -> Any:
        return self._file(req, start_response, attachment=False)

    def download(self, req: ShareRequest, start_response: StartResponse) -> Any:
        return self._file(req, start_response, attachment=True)

    def _file(self, req: ShareRequest, start_response: StartResponse, *, attachment: bool) -> Any:
        if req.method not in ("GET", "HEAD"):
            return not_allowed(req, start_response)
        if req.node is None or req.node.is_dir:
            return not_found(start_response)
        return serve_file(req, start_response, self.files, self.catalog, attachment=attachment)

    def _listing(self, req: ShareRequest, start_response: StartResponse, node: NodeRecord) -> Any:
        key, order = _sort_order(req.environ)
        children = _sorted(self.catalog.tree.children(node.id), key, order)
        rows = [
            Row(
                name=child.name,
                href=href(req.base, "browse", [*req.names, child.name], folder=child.is_dir),
                is_dir=child.is_dir,
                size=child.size,
                mtime=child.mtime,
                path=share_path([*req.names, child.name]),
            )
            for child in children
        ]
        perm = req.link.perm
        return page(
            req,
            start_response,
            "200 OK",
            "links/listing.html",
            title=node.name,
            trail=self._trail(req),
            columns=_columns(key, order),
            rows=rows,
            zip_href=href(req.base, "zip", req.names) if perm in DOWNLOAD else None,
            edit_path=share_path(req.names) if perm == "edit" else None,
            base=req.base,
        )

    def _file_page(self, req: ShareRequest, start_response: StartResponse, node: NodeRecord) -> Any:
        kind, text = preview_kind(node), None  # text: shown inline when set
        if kind == "text":
            text = self._head(node, TEXT_PREVIEW).decode("utf-8", errors="replace")
        elif kind is None and guessed_type(node.name) is None:  # no type: look
            text = _as_text(self._head(node, TEXT_PREVIEW))
            kind = "text" if text is not None else None
        download = href(req.base, "download", req.names) if req.link.perm in DOWNLOAD else None
        return page(
            req,
            start_response,
            "200 OK",
            "links/file.html",
            title=node.name,
            name=node.name,
            size=node.size,
            mtime=node.mtime,
            trail=self._trail(req),
            download_href=download,
            preview=kind,
            raw_href=href(req.base, "raw", req.names),
            text=text,
            cut=text is not None and node.size > TEXT_PREVIEW,
        )

    def _trail(self, req: ShareRequest) -> list[Crumb]:
        """Breadcrumbs from the shared node (never above it) down to `req.names`."""
        trail = [Crumb(req.link.node.name, f"{req.base}/")]
        for depth, name in enumerate(req.names, start=1):
            trail.append(Crumb(name, href(req.base, "browse", req.names[:depth], folder=True)))
        trail[-1] = Crumb(trail[-1].label, None)
        return trail

    def _head(self, node: NodeRecord, limit: int) -> bytes:
        """The first `limit` bytes of a file."""
        reader = self.files.reader(node.content_id, node.size, label=file_label(node))
        try:
            parts, got = [], 0
            while got < limit and (data := reader.read(limit - got)):
                parts.append(data)
                got += len(data)
            return b"".join(parts)
        finally:
            reader.close()


def not_allowed(req: ShareRequest, start_response: StartResponse) -> list[bytes]:
    """405 for a method a page does not take."""
    allow = [("Allow", "GET, HEAD")]
    text = "This address only shows pages."
    return page(
        req,
        start_response,
        "405 Method Not Allowed",
        "message.html",
        allow,
        title="Not allowed",
        text=text,
    )


def unavailable(req: ShareRequest, start_response: StartResponse) -> list[bytes]:
    """503 when the catalog or the blob store cannot answer."""
    text = "The files are unavailable right now."
    return page(
        req,
        start_response,
        "503 Service Unavailable",
        "message.html",
        title="Try again later",
        text=text,
    )


def _columns(key: str, order: str) -> list[Column]:
    """The column headers; the sorted one links to the other order."""
    return [
        Column(
            k,
            label,
            f"?sort={k}&order={'desc' if (k, order) == (key, 'asc') else 'asc'}",
            order if k == key else None,
        )
        for k, label in SORT_KEYS
    ]


def _sort_order(environ: dict[str, Any]) -> tuple[str, str]:
    """The listing's sort key and order from the query string (defaults: name, asc)."""
    query = parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=20)
    key = query.get("sort", ["name"])[0]
    order = query.get("order", ["asc"])[0]
    known = {k for k, _label in SORT_KEYS}
    return (key if key in known else "name", order if order in ("asc", "desc") else "asc")


def _sorted(children: list[NodeRecord], key: str, order: str) -> list[NodeRecord]:
    """Folders first, then files, each group by `key` (ties by name) in `order`."""

    def by(node: NodeRecord) -> tuple[Any, ...]:
        name = (node.name.casefold(), node.name)
        if key == "size":
            return (node.size, *name)
        if key == "modified":
            return (node.mtime, *name)
        return name

    desc = order == "desc"
    folders = sorted((c for c in children if c.is_dir), key=by, reverse=desc)
    return folders + sorted((c for c in children if not c.is_dir), key=by, reverse=desc)


def _as_text(data: bytes) -> str | None:
    """`data` as text if it looks like text (UTF-8 without NULs; a character cut at
    the end is fine), else None."""
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        return decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return None
