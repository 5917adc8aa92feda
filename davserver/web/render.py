"""HTML pages from Jinja2 templates (`davserver/web/templates/`), the one place pages are made.

Autoescaping is on for every template, so text from users (file and folder names,
file contents shown as previews, errors) is escaped wherever it lands, and no Python
code builds markup. Pages link their stylesheet and scripts from `/static/`
(`static_url`, versioned by content so they are cached for a year), and carry
`PAGE_CSP` (`UNFRAMED_PAGE_CSP` for pages that grant access): nothing runs or loads
but our own files.
"""

from __future__ import annotations

import time
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from davserver.formats import human_size
from davserver.web.assets import static_url

_PAGE_SOURCES = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "media-src 'self'; frame-src 'self'; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'"
)
PAGE_CSP = _PAGE_SOURCES + "; frame-ancestors 'self'"
# Pages whose buttons grant access (Login Flow v2) may not be framed at all: a framing
# page could trick a click onto them.
UNFRAMED_PAGE_CSP = _PAGE_SOURCES + "; frame-ancestors 'none'"


def _iso_time(mtime: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))


def _short_time(mtime: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))


_ENV = Environment(
    loader=PackageLoader("davserver.web", "templates"),
    autoescape=select_autoescape(("html",), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals["static"] = static_url
_ENV.filters["human_size"] = human_size
_ENV.filters["iso_time"] = _iso_time
_ENV.filters["short_time"] = _short_time


def render(template: str, **context: Any) -> bytes:
    """The page `template` with `context` (every page takes `title`; `base` is the
    link's URL prefix where page scripts need it), as UTF-8."""
    context.setdefault("base", "")
    return _ENV.get_template(template).render(**context).encode("utf-8")
