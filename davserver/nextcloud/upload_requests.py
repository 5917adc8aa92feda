"""What the chunked-upload door (`davserver.nextcloud.uploads`) reads from a request
and the one XML answer it writes.

- `destination`: a MOVE's (or v2 MKCOL's) `Destination`, an absolute URL or a path,
  under `/remote.php/dav/files/<user>/` or `/remote.php/webdav/` (behind whatever
  prefix the app is mounted at), as the names of the file in the caller's view.
- `if_header_holds`: the entity tags of a WebDAV `If:` header (`<dest> (["etag"])`,
  as the clients send it when they replace a file) against the destination's ETag;
  lock tokens in it are the operations layer's to check (design invariant 12).
- `total_length`, `client_mtime`: `OC-Total-Length` (ownCloud also
  `OC-Total-File-Length`) and `X-OC-Mtime`.
- `multistatus`: a PROPFIND answer listing an upload folder and its chunks
  (`resourcetype`, `getcontentlength`, `getlastmodified`, `getetag`), hrefs under the
  path asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from davserver.dav.propfind import http_date
from davserver.http.errors import HttpError
from davserver.nextcloud.files import FILES_PATH, LEGACY_PATH
from providers.names import split_path

UPLOADS_PATH = "/remote.php/dav/uploads"
XML_TYPE = "application/xml; charset=utf-8"


def number_header(environ: Mapping[str, Any], *keys: str) -> int | None:
    """The first of the headers `keys` (environ keys) present, as a non-negative
    integer; None when none is; 400 when malformed."""
    for key in keys:
        value = str(environ.get(key, "")).strip()
        if value:
            if not (value.isascii() and value.isdigit()):
                raise HttpError(400, f"{key[5:].replace('_', '-')} must be a number")
            return int(value)
    return None


def total_length(environ: Mapping[str, Any]) -> int | None:
    """The whole file's length the client announced, if it did."""
    return number_header(environ, "HTTP_OC_TOTAL_LENGTH", "HTTP_OC_TOTAL_FILE_LENGTH")


def client_mtime(environ: Mapping[str, Any]) -> float | None:
    """X-OC-Mtime: seconds since the epoch (a fraction allowed); 400 when malformed."""
    value = str(environ.get("HTTP_X_OC_MTIME", "")).strip()
    if not value:
        return None
    try:
        mtime = float(value)
    except ValueError as e:
        raise HttpError(400, "X-OC-Mtime must be seconds since the epoch") from e
    if not 0 <= mtime < 1e11:
        raise HttpError(400, "X-OC-Mtime is out of range")
    return mtime


def app_root(environ: Mapping[str, Any]) -> str:
    """What precedes `/remote.php` in this request's URL path (a proxy's prefix)."""
    script = str(environ.get("SCRIPT_NAME", ""))
    return script[: -len(UPLOADS_PATH)] if script.endswith(UPLOADS_PATH) else ""


def destination(environ: Mapping[str, Any], user: str) -> tuple[str, list[str]]:
    """The `Destination` header as (its path as sent, the file's names in the caller's
    view); 400 when missing or not a file of the caller's under a files root."""
    value = str(environ.get("HTTP_DESTINATION", "")).strip()
    if not value:
        raise HttpError(400, "Destination is missing")
    path = urlsplit(value).path
    decoded, root = unquote(path), app_root(environ)
    for base in (f"{root}{FILES_PATH}/{user}/", f"{root}{LEGACY_PATH}/"):
        if decoded.startswith(base):
            names = split_path(decoded[len(base) :])  # InvalidName: 400
            if names:
                return path, names
    raise HttpError(400, "Destination must be a file under /remote.php/dav/files/<user>/")


def if_header_holds(conditions: Any, dest_path: str, etag: str | None) -> bool:
    """Whether the `If:` header's conditions (WsgiDAV's parse, `wsgidav.conditions.if`:
    resource -> lists of (flag, kind, value)) that apply to `dest_path` (or to no
    resource in particular) hold for a resource whose ETag is `etag` (None: none).
    A list holds when each of its entity tags matches as it should."""
    if not isinstance(conditions, dict):
        return True
    applying = [
        lists
        for resource, lists in conditions.items()
        if resource == "*" or urlsplit(resource).path in (dest_path, unquote(dest_path))
    ]
    for lists in applying:
        if not any(_list_holds(conditions_list, etag) for conditions_list in lists):
            return False
    return True


def _list_holds(conditions: Sequence[tuple[bool, str, str]], etag: str | None) -> bool:
    for wanted, kind, value in conditions:
        if kind == "entity" and (etag is not None and value.strip('"W/') == etag) != wanted:
            return False
    return True


@dataclass(frozen=True)
class Entry:
    """One member of a PROPFIND answer: `name` below the listed path ("" for the
    folder itself), a chunk's `size` (None: a collection), its time and ETag."""

    name: str
    size: int | None
    mtime: float
    etag: str


def multistatus(base: str, entries: Sequence[Entry]) -> bytes:
    """A 207 body listing `entries`, hrefs `base` (the path asked for, ending in `/`
    for a collection) plus their names."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:">']
    for entry in entries:
        href = base + quote(entry.name)
        if entry.size is None:
            kind, length = "<d:resourcetype><d:collection/></d:resourcetype>", ""
        else:
            kind = "<d:resourcetype/>"
            length = f"<d:getcontentlength>{entry.size}</d:getcontentlength>"
        parts.append(
            f"<d:response><d:href>{escape(href, quote=False)}</d:href><d:propstat><d:prop>"
            f"{kind}{length}<d:getlastmodified>{http_date(entry.mtime)}</d:getlastmodified>"
            f'<d:getetag>"{escape(entry.etag)}"</d:getetag></d:prop>'
            "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
        )
    parts.append("</d:multistatus>\n")
    return "".join(parts).encode("utf-8")
