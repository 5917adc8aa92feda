"""davserver's own HTML at the WebDAV mounts, in place of WsgiDAV's.

- `FolderPages`: a GET or HEAD of a folder answers our listing page
  (`templates/dav/folder.html`: breadcrumbs, then folders and files with size and
  modification time, folders first), listed through the provider's resources, so it
  shows exactly what PROPFIND shows the same actor. Every client gets it: file managers
  and sync tools list folders with PROPFIND, and a GET of a folder in a browser is what
  this page is for. Links are absolute (the member's href), so a folder URL without
  its trailing slash works too.
- `PlainStatusPages`: WsgiDAV answers errors and some successes (201 of PUT and MKCOL)
  with an HTML page that names and links WsgiDAV and its version; those become a short
  plain-text reason (the status line and WsgiDAV's one-line explanation). XML error
  bodies (RFC 4918 preconditions), file bodies and multistatus answers pass untouched.
  A second status once the first went out (an error in the middle of a body) is not
  taken for more body: it raises `ResponseCut`, which cuts the connection.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from wsgidav.mw.base_mw import BaseMiddleware

from davserver.dav.propfind import HREF_SAFE
from davserver.http.environ import StartResponse
from davserver.http.errors import ResponseCut
from davserver.web.listing import Crumb, Row
from davserver.web.render import PAGE_CSP, render
from providers.dav import lookups_kept

Environ = dict[str, Any]
CONFIG_KEY = "davserver_folder_pages"  # {"root": label of the mount's root, "signed_in": bool}
PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Security-Policy", PAGE_CSP),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]
_REASON = re.compile(r"<p>(.*?)</p>", re.S)


class FolderPages(BaseMiddleware):
    """See the module docstring. Other methods, and GETs of files, pass straight on."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        provider = environ.get("wsgidav.provider")
        if method not in ("GET", "HEAD") or provider is None:
            return self.next_app(environ, start_response)
        return self._get(provider, environ, start_response)

    def _get(
        self, provider: Any, environ: Environ, start_response: StartResponse
    ) -> Iterator[bytes]:
        """A GET or HEAD: the page of a folder, or the request passed on. Its lookups
        are kept for the whole request (nothing it does changes the tree), so a file's
        GET does not locate the path again where WsgiDAV serves it."""
        with lookups_kept(provider, environ):
            folder = provider.get_resource_inst(environ["PATH_INFO"], environ)
            if folder is None or not folder.is_collection or _has_body(environ):
                yield from self.next_app(environ, start_response)
                return
            body = self._page(provider, folder, environ)
        start_response("200 OK", [*PAGE_HEADERS, ("Content-Length", str(len(body)))])
        if environ["REQUEST_METHOD"] == "GET":
            yield body

    def _page(self, provider: Any, folder: Any, environ: Environ) -> bytes:
        """The listing page of `folder`."""
        options = self.config.get(CONFIG_KEY, {})
        root = options["root"]
        return render(
            "dav/folder.html",
            title=folder.get_display_name() if folder.path.strip("/") else root,
            trail=_trail(provider.mount_path + provider.share_path, folder.path, root),
            rows=_rows(folder),
            user=environ.get("wsgidav.auth.user_name") if options.get("signed_in") else None,
        )


def _has_body(environ: Environ) -> bool:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) != 0
    except ValueError:
        return True


def _rows(folder: Any) -> list[Row]:
    """The folder's members, folders first, then by name (case-insensitive)."""
    rows = []
    for member in folder.get_member_list():
        is_dir = bool(member.is_collection)
        href = member.get_href()
        rows.append(
            Row(
                name=member.get_display_name(),
                href=href if not is_dir or href.endswith("/") else href + "/",
                is_dir=is_dir,
                size=0 if is_dir else member.get_content_length() or 0,
                mtime=member.get_last_modified() or 0.0,
            )
        )
    return sorted(rows, key=lambda r: (not r.is_dir, r.name.casefold(), r.name))


def _trail(prefix: str, path: str, root: str) -> list[Crumb]:
    """Breadcrumbs from the mount's root (labelled `root`) to the folder at `path`."""
    names = [name for name in path.split("/") if name]
    crumbs = [Crumb(root, quote(prefix + "/", safe=HREF_SAFE))]
    for depth, name in enumerate(names, 1):
        target = prefix + "/" + "/".join(names[:depth]) + "/"
        crumbs.append(Crumb(name, quote(target, safe=HREF_SAFE)))
    last = crumbs[-1]
    crumbs[-1] = Crumb(last.label, None)
    return crumbs


class PlainStatusPages(BaseMiddleware):
    """See the module docstring; the outermost middleware of the WsgiDAV apps."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        started: list[Any] = []
        forwarded = False

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if forwarded:  # an error's status, after a body began: nothing more may go out
                raise ResponseCut(f"a second status ({status}) after the answer began")
            started[:] = [status, headers, exc_info]

        answer = self.next_app(environ, capture)
        try:
            chunks = iter(answer)
            first = next(chunks, None)  # WsgiDAV's apps start their answer by now
            status, headers, exc_info = started
            if not _is_status_page(status, headers):
                start_response(status, headers, exc_info)
                forwarded = True
                if first is not None:
                    yield first
                yield from chunks
                return
            page = b"".join([first or b"", *chunks])
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        body = _reason(status, page)
        kept = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
        plain = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        start_response(status, [*plain, *kept], exc_info)
        yield b"" if environ["REQUEST_METHOD"] == "HEAD" else body


def _is_status_page(status: str, headers: list[tuple[str, str]]) -> bool:
    """WsgiDAV's HTML status page: HTML that is not a 200 (files and folder pages are
    200 or 206; WsgiDAV sends its pages for 201 and for errors)."""
    if status.startswith(("200", "206")):
        return False
    kinds = [v for k, v in headers if k.lower() == "content-type"]
    return bool(kinds) and kinds[0].startswith("text/html")


def _reason(status: str, page: bytes) -> bytes:
    """WsgiDAV's one-line explanation ("404 Not Found: /a.txt"), or the status line.

    Only the first line is kept: WsgiDAV appends the repr of the exception behind an
    error, which may name internal hosts or paths; for the same reason a 500 (an
    unexpected error, logged with its traceback) says nothing but its status."""
    found = _REASON.search(page.decode("utf-8", "replace"))
    reason = html.unescape(found.group(1)).strip() if found else ""
    if not reason or status.startswith("500"):
        reason = status
    return (reason.splitlines()[0] + "\n").encode("utf-8")
