"""What a folder page lists, for every door that renders one (share links' pages and
the WebDAV mounts' folder pages): the breadcrumb trail and the member rows the
templates in `davserver/web/templates` read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Crumb:
    """One breadcrumb; the last (current folder's) has `href` None."""

    label: str
    href: str | None


@dataclass(frozen=True)
class Row:
    """One member of the listed folder; `path` is its path inside a share link's
    folder (`/sub/a.txt`), "" where a page has no use for it."""

    name: str
    href: str
    is_dir: bool
    size: int
    mtime: float
    path: str = ""
