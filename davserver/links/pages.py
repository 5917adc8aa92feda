"""The share-link web pages: folder listings, file pages with previews, file bytes,
streamed zips and the password form (the actions `ShareSite` routes, see its table).

`actions(pages)` gives them:

    ""        the link's own page: listing (folder), file page (file), drop page (upload)
    browse    a folder listing (`?sort=name|size|modified&order=asc|desc`) or a file page
    raw       a file inline, for previews; download  the file as an attachment
              (both in `davserver.links.files`)
    zip       a folder as a streamed zip (`davserver.links.zipstream`), counted as a download
    unlock    POST `password`: on success the unlock cookie and 303 to the link's page

Every URL a page links to is built here from stored names, percent-encoded name by
name, always below `/s/<token>/`: nothing a visitor types is ever echoed back as a
link or a redirect target. Pages carry a Content-Security-Policy with a per-response
nonce (`share_html.page_csp`), and are `no-store` (`share_site.respond`).
"""

from __future__ import annotations

import codecs
import functools
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote

from davserver.auth.passwords import verify_password
from davserver.auth.ratelimit import LoginLimiter
from davserver.http.body import read_body
from davserver.http.errors import HttpError
from davserver.links import drop_page, html
from davserver.links.files import (
    BLOCK,
    FILE_CSP,
    content_disposition,
    guessed_type,
    preview_kind,
    serve_file,
)
from davserver.links.signer import UNLOCK_MAX_AGE, LinkSigner
from davserver.links.site import (
    ALL_PERMS,
    BASE_HEADERS,
    SEE,
    Action,
    ShareRequest,
    cookie_name,
    guess_subjects,
    not_found,
    respond,
)
from davserver.links.zipstream import Member, zip_stream
from providers.catalog import Catalog, NodeRecord
from providers.errors import StorageError
from providers.filestore import FileStore

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
DOWNLOAD = frozenset({"download", "edit"})
TEXT_PREVIEW = 256 * 1024  # bytes of a text file shown on its page
MAX_FORM = 4096  # an unlock form body larger than this is refused unread
SORT_KEYS = ("name", "size", "modified")


def actions(pages: SharePages) -> dict[str, Action]:
    """The page actions (see the module docstring)."""
    return {
        "": Action(pages.root, ALL_PERMS),
        "browse": Action(pages.browse, SEE),
        "raw": Action(pages.raw, SEE),
        "download": Action(pages.download, DOWNLOAD),
        "zip": Action(pages.zip, DOWNLOAD),
        "unlock": Action(pages.unlock, ALL_PERMS, resolve=False, own_password=True),
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


class SharePages:
    """The page actions (see the module docstring) and the password form; one per site."""

    def __init__(
        self, catalog: Catalog, files: FileStore, signer: LinkSigner, limiter: LoginLimiter
    ) -> None:
        self.catalog = catalog
        self.files = files
        self.signer = signer
        self.limiter = limiter

    def root(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.link.perm == "upload":
            return drop_page.render(req, start_response, [])
        if req.names:
            return not_found(start_response)
        return self.browse(req, start_response)

    def browse(self, req: ShareRequest, start_response: StartResponse) -> Any:
        if req.method not in ("GET", "HEAD"):
            return _not_allowed(req, start_response)
        if req.node is None:
            return not_found(start_response)
        try:
            if req.node.is_dir:
                return self._listing(req, start_response, req.node)
            return self._file_page(req, start_response, req.node)
        except StorageError as e:
            log.warning("share link %s: %s", req.link.id, e)
            return _page(req, start_response, "503 Service Unavailable", _unavailable)

    def raw(self, req: ShareRequest, start_response: StartResponse) -> Any:
        return self._file(req, start_response, attachment=False)

    def download(self, req: ShareRequest, start_response: StartResponse) -> Any:
        return self._file(req, start_response, attachment=True)

    def _file(self, req: ShareRequest, start_response: StartResponse, *, attachment: bool) -> Any:
        if req.method not in ("GET", "HEAD"):
            return _not_allowed(req, start_response)
        if req.node is None or req.node.is_dir:
            return not_found(start_response)
        return serve_file(req, start_response, self.files, self.catalog, attachment=attachment)

    def _listing(self, req: ShareRequest, start_response: StartResponse, node: NodeRecord) -> Any:
        key, order = _sort_order(req.environ)
        children = _sorted(self.catalog.tree.children(node.id), key, order)
        rows = [
            html.Row(
                name=child.name,
                href=href(req.base, "browse", [*req.names, child.name], folder=child.is_dir),
                is_dir=child.is_dir,
                size=child.size,
                mtime=child.mtime,
                path=share_path([*req.names, child.name]),
            )
            for child in children
        ]
        columns = [
            html.Column(
                k,
                label,
                f"?sort={k}&order={'desc' if (k, order) == (key, 'asc') else 'asc'}",
                order if k == key else None,
            )
            for k, label in (("name", "Name"), ("size", "Size"), ("modified", "Modified"))
        ]
        perm = req.link.perm
        render = functools.partial(
            html.listing_page,
            title=node.name,
            trail=self._trail(req),
            columns=columns,
            rows=rows,
            zip_href=href(req.base, "zip", req.names) if perm in DOWNLOAD else None,
            edit_path=share_path(req.names) if perm == "edit" else None,
            base=req.base,
        )
        return _page(req, start_response, "200 OK", lambda nonce: render(nonce=nonce))

    def _file_page(self, req: ShareRequest, start_response: StartResponse, node: NodeRecord) -> Any:
        kind, text = preview_kind(node), None  # text: shown inline when set
        if kind == "text":
            text = self._head(node, TEXT_PREVIEW).decode("utf-8", errors="replace")
        elif kind is None and guessed_type(node.name) is None:  # no type: look
            text = _as_text(self._head(node, TEXT_PREVIEW))
            kind = "text" if text is not None else None
        cut = text is not None and node.size > TEXT_PREVIEW
        preview = html.preview_markup(
            kind, node.name, href(req.base, "raw", req.names), text, cut=cut
        )
        render = functools.partial(
            html.file_page,
            name=node.name,
            size=node.size,
            mtime=node.mtime,
            trail=self._trail(req),
            download_href=href(req.base, "download", req.names)
            if req.link.perm in DOWNLOAD
            else None,
            preview=preview,
        )
        return _page(req, start_response, "200 OK", lambda nonce: render(nonce=nonce))

    def _trail(self, req: ShareRequest) -> list[html.Crumb]:
        """Breadcrumbs from the shared node (never above it) down to `req.names`."""
        trail = [html.Crumb(req.link.node.name, f"{req.base}/")]
        for depth, name in enumerate(req.names, start=1):
            trail.append(html.Crumb(name, href(req.base, "browse", req.names[:depth], folder=True)))
        trail[-1] = html.Crumb(trail[-1].label, None)
        return trail

    def _head(self, node: NodeRecord, limit: int) -> bytes:
        """The first `limit` bytes of a file."""
        reader = self.files.reader(node.content_id, node.size)
        try:
            parts, got = [], 0
            while got < limit and (data := reader.read(limit - got)):
                parts.append(data)
                got += len(data)
            return b"".join(parts)
        finally:
            reader.close()

    def zip(self, req: ShareRequest, start_response: StartResponse) -> Any:
        """The folder as a zip named after it, streamed; counted once per GET."""
        if req.method not in ("GET", "HEAD"):
            return _not_allowed(req, start_response)
        node = req.node
        if node is None or not node.is_dir:
            return not_found(start_response)
        headers = [
            ("Content-Type", "application/zip"),
            ("Content-Disposition", content_disposition("attachment", f"{node.name}.zip")),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", FILE_CSP),
            *BASE_HEADERS,
        ]
        if req.method == "HEAD":
            start_response("200 OK", headers)
            return []
        try:
            children = self.catalog.tree.children(node.id)  # fails here, not mid-stream
        except StorageError as e:
            log.warning("share link %s: %s", req.link.id, e)
            return _page(req, start_response, "503 Service Unavailable", _unavailable)
        if not self.catalog.links.count_download(req.link.id):
            return not_found(start_response)
        start_response("200 OK", headers)
        return _logged(zip_stream(self._members(node, children)), req.link.id)

    def _members(self, root: NodeRecord, children: list[NodeRecord]) -> Iterator[Member]:
        """The folder's subtree, depth first, each folder before what it holds (so
        empty folders are entries too); one `children` query per folder, as it goes."""
        pending: list[tuple[tuple[str, ...], NodeRecord, list[NodeRecord] | None]]
        pending = [((root.name,), root, children)]
        while pending:
            path, folder, members = pending.pop()
            yield Member(path, folder.mtime)
            if members is None:
                members = self.catalog.tree.children(folder.id)
            for child in members:
                if not child.is_dir:
                    read = functools.partial(self._blocks, child)
                    yield Member((*path, child.name), child.mtime, child.size, read)
            subfolders = [child for child in members if child.is_dir]
            pending.extend(((*path, sub.name), sub, None) for sub in reversed(subfolders))

    def _blocks(self, node: NodeRecord) -> Iterator[bytes]:
        reader = self.files.reader(node.content_id, node.size)
        try:
            while data := reader.read(BLOCK):
                yield data
        finally:
            reader.close()

    def unlock(self, req: ShareRequest, start_response: StartResponse) -> Any:
        """Check the password (argon2id), throttled per link and per address; on
        success set the unlock cookie and send the visitor to the link's page."""
        link = req.link
        if req.names:
            return not_found(start_response)
        if req.method != "POST" or not link.password_hash:
            return _see_other(start_response, f"{req.base}/", [])
        subjects = guess_subjects(link, str(req.environ.get("REMOTE_ADDR", "")))
        wait = self.limiter.blocked_for(subjects)
        if wait:
            text = f"Too many wrong passwords. Try again in {wait} seconds."
            too_many = functools.partial(html.message_page, "Too many attempts", text)
            return _page(
                req, start_response, "429 Too Many Requests", too_many, [("Retry-After", str(wait))]
            )
        password = _form_password(req.environ)
        if password is not None and verify_password(link.password_hash, password):
            cookie = (
                f"{cookie_name(link.id)}={self.signer.unlock_cookie(link.id)}; "
                f"Path={req.base}/; Max-Age={UNLOCK_MAX_AGE}; HttpOnly; SameSite=Lax"
            )
            cookie += "; Secure" if req.secure else ""
            return _see_other(start_response, f"{req.base}/", [("Set-Cookie", cookie)])
        self.limiter.failed(subjects)
        return self.password_page(req, start_response, "Wrong password.")

    def password_page(self, req: ShareRequest, start_response: StartResponse, error: str) -> Any:
        """The password form (401: this link needs its password), `error` above it."""
        form = functools.partial(html.password_page, error=error, action=f"{req.base}/unlock")
        return _page(req, start_response, "401 Unauthorized", lambda nonce: form(nonce=nonce))


def _page(
    req: ShareRequest,
    start_response: StartResponse,
    status: str,
    render: Callable[[str], bytes],
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """A page rendered with a fresh CSP nonce; HEAD gets its headers only."""
    nonce = secrets.token_urlsafe(16)
    csp = [("Content-Security-Policy", html.page_csp(nonce)), *(headers or [])]
    body = respond(start_response, status, render(nonce), headers=csp)
    return [] if req.method == "HEAD" else body


def _unavailable(nonce: str) -> bytes:
    return html.message_page("Try again later", "The files are unavailable right now.", nonce)


def _not_allowed(req: ShareRequest, start_response: StartResponse) -> list[bytes]:
    text = functools.partial(html.message_page, "Not allowed", "This address only shows pages.")
    return _page(req, start_response, "405 Method Not Allowed", text, [("Allow", "GET, HEAD")])


def _see_other(
    start_response: StartResponse, location: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    start_response(
        "303 See Other",
        [
            ("Location", location),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
            *BASE_HEADERS,
            *headers,
        ],
    )
    return []


def _sort_order(environ: dict[str, Any]) -> tuple[str, str]:
    """The listing's sort key and order from the query string (defaults: name, asc)."""
    query = parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=20)
    key = query.get("sort", ["name"])[0]
    order = query.get("order", ["asc"])[0]
    return (key if key in SORT_KEYS else "name", order if order in ("asc", "desc") else "asc")


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


def _form_password(environ: dict[str, Any]) -> str | None:
    """The `password` field of a small urlencoded form body, else None."""
    try:
        body = read_body(environ, MAX_FORM)
    except HttpError:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return fields.get("password", [None])[0]


def _logged(stream: Iterator[bytes], link_id: int) -> Iterator[bytes]:
    """`stream`, logging a failure that cuts a zip already under way."""
    try:
        yield from stream
    except StorageError as e:
        log.warning("share link %s: zip cut short: %s", link_id, e)
        raise
