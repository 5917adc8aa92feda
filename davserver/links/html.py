"""HTML for the share-link pages: server-rendered, one small stylesheet, a few lines of
script only on edit links.

Every function here takes plain values and returns a complete document or a fragment.
Contract: text from users (names, file contents, errors) is escaped here, always, with
`escape`; `href`s arrive already percent-encoded from `share_pages` and are escaped
again as attribute values. Scripts and styles carry the per-response `nonce`, which
the page's Content-Security-Policy (`page_csp`) requires, so no injected markup runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from davserver.links.site import escape


@dataclass(frozen=True)
class Crumb:
    """One breadcrumb; the last (current) one has `href` None."""

    label: str
    href: str | None


@dataclass(frozen=True)
class Row:
    """One listing row; `path` is the member's path inside the share (`/sub/a.txt`)."""

    name: str
    href: str
    is_dir: bool
    size: int
    mtime: float
    path: str


@dataclass(frozen=True)
class Column:
    """A sortable column header: its link and, when it is the sort key, the order."""

    key: str
    label: str
    href: str
    order: str | None  # "asc" / "desc" when sorted by it


def page_csp(nonce: str) -> str:
    """The pages' Content-Security-Policy: nothing but our own previews, styles and
    scripts carrying `nonce`, and fetches back to us (the edit endpoint)."""
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "img-src 'self'; media-src 'self'; frame-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
    )


CSS = """
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;
--soft:#f6f8fa;--accent:#0a58ca;--danger:#b42318}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--line:#30363d;
--bg:#0d1117;--soft:#161b22;--accent:#6ea8fe;--danger:#ff7b72}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:60rem;margin:0 auto;padding:1rem}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid var(--accent);
outline-offset:2px}
h1{font-size:1.5rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
nav ol{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem;padding:0;margin:0;
color:var(--muted)}
nav li+li::before{content:"/";margin-right:.25rem}
nav li{overflow-wrap:anywhere}
.bar{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:0 0 1rem}
.button,button{display:inline-block;font:inherit;padding:.45rem .9rem;border-radius:.4rem;
border:1px solid var(--line);background:var(--soft);color:var(--fg);text-decoration:none;
cursor:pointer;min-height:2.5rem}
.button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{color:var(--danger)}
input{font:inherit;padding:.4rem;border:1px solid var(--line);border-radius:.4rem;
background:var(--bg);color:var(--fg);min-height:2.5rem}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.5rem .4rem;border-bottom:1px solid var(--line);
vertical-align:middle}
th a{color:inherit}
td.name{overflow-wrap:anywhere;width:60%}
.entry{display:flex;gap:.4rem;align-items:flex-start}
.entry svg{flex:none;margin-top:.15em}
td.modified{white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
td.ops{white-space:nowrap;text-align:right}
td.ops button{min-height:2rem;padding:.2rem .5rem;font-size:.9rem}
.meta{color:var(--muted);margin:-.5rem 0 1rem}
.note{color:var(--muted)}
.error{color:var(--danger);font-weight:600}
.preview{margin:1rem 0}
.preview img,.preview video{max-width:100%;height:auto;display:block}
.preview audio{width:100%}
.preview iframe{width:100%;height:80vh;border:1px solid var(--line)}
pre{background:var(--soft);border:1px solid var(--line);padding:.75rem;overflow:auto;
font-size:.875rem;line-height:1.4;max-height:80vh;white-space:pre-wrap;
overflow-wrap:anywhere}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media (max-width:40rem){th.modified,td.modified{display:none}td.name{width:auto}}
"""

EDIT_JS = """
const base = document.body.dataset.base;
async function edit(body) {
  const r = await fetch(base + "/edit", {method: "POST", headers: {
    "Content-Type": "application/json", "X-Davserver-Edit": "1"},
    body: JSON.stringify(body)});
  if (r.ok) return location.reload();
  const answer = await r.json().catch(() => ({}));
  alert("Could not " + body.op + ": " + (answer.error || r.status + " " + r.statusText));
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-op]");
  if (!b) return;
  const row = b.closest("tr"), path = row.dataset.path, name = row.dataset.name;
  if (b.dataset.op === "rename") {
    const n = prompt("New name for " + name, name);
    if (n && n !== name) edit({op: "rename", path: path, name: n});
  } else if (b.dataset.op === "delete" && confirm("Delete " + name + "?")) {
    edit({op: "delete", path: path});
  }
});
const form = document.getElementById("mkdir");
if (form) form.addEventListener("submit", (e) => {
  e.preventDefault();
  const n = form.elements.name.value.trim();
  if (n) edit({op: "mkdir", path: form.dataset.path, name: n});
});
"""

FOLDER_ICON = (
    '<svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24"><path fill="#d39e00" '
    'd="M2 5a2 2 0 0 1 2-2h5l2 2h9a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2z"/></svg>'
)
FILE_ICON = (
    '<svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24"><path fill="#8c959f" '
    'd="M6 2h8l6 6v12a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1.5V9h5.5z"/></svg>'
)


def document(title: str, body: str, nonce: str, *, base: str = "", script: str = "") -> bytes:
    """A whole page: `body` is trusted markup (built by this module), `title` text."""
    scripts = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><style nonce="{nonce}">{CSS}</style></head>'
        f'<body data-base="{escape(base)}"><main>{body}</main>{scripts}</body></html>'
    ).encode()


def human_size(size: int) -> str:
    """`1.5 MiB`-style size (binary units, as file managers on Linux show them)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable; keeps mypy sure of the return


def when(mtime: float) -> str:
    """A `<time>` element with the UTC date and time (the same for every visitor)."""
    stamp = time.gmtime(mtime)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)
    return f'<time datetime="{iso}">{time.strftime("%Y-%m-%d %H:%M", stamp)} UTC</time>'


def crumbs(items: list[Crumb]) -> str:
    """The breadcrumb trail; the current item is marked for screen readers."""
    parts = []
    for item in items:
        if item.href is None:
            parts.append(f'<li aria-current="page">{escape(item.label)}</li>')
        else:
            parts.append(f'<li><a href="{escape(item.href)}">{escape(item.label)}</a></li>')
    return f'<nav aria-label="Breadcrumb"><ol>{"".join(parts)}</ol></nav>'


def listing_page(
    *,
    title: str,
    trail: list[Crumb],
    columns: list[Column],
    rows: list[Row],
    zip_href: str | None,
    edit_path: str | None,
    base: str,
    nonce: str,
) -> bytes:
    """A folder's page. `zip_href` adds the "Download all (zip)" button; `edit_path`
    (the folder's path inside the share) adds rename/delete buttons and a new-folder
    form driven by `EDIT_JS`."""
    bar = []
    if zip_href:
        bar.append(f'<a class="button primary" href="{escape(zip_href)}">Download all (zip)</a>')
    if edit_path is not None:
        bar.append(
            f'<form id="mkdir" class="bar" data-path="{escape(edit_path)}">'
            '<label for="newname" class="sr">New folder name</label>'
            '<input id="newname" name="name" placeholder="New folder name" required '
            'maxlength="255"><button type="submit">New folder</button></form>'
        )
    head = "".join(_header(column) for column in columns)
    if edit_path is not None:
        head += '<th scope="col"><span class="sr">Actions</span></th>'
    body = "".join(_row(row, editable=edit_path is not None) for row in rows)
    table = (
        f'<table><caption class="sr">Contents of {escape(title)}</caption><thead><tr>{head}'
        f"</tr></thead><tbody>{body}</tbody></table>"
        if rows
        else '<p class="note">This folder is empty.</p>'
    )
    html = f'{crumbs(trail)}<h1>{escape(title)}</h1><div class="bar">{"".join(bar)}</div>{table}'
    script = EDIT_JS if edit_path is not None else ""
    return document(title, html, nonce, base=base, script=script)


def _header(column: Column) -> str:
    arrow = {"asc": " ▲", "desc": " ▼"}.get(column.order or "", "")
    sort = {"asc": "ascending", "desc": "descending"}.get(column.order or "")
    aria = f' aria-sort="{sort}"' if sort else ""
    numeric = " num" if column.key == "size" else ""
    return (
        f'<th scope="col" class="{column.key}{numeric}"{aria}>'
        f'<a href="{escape(column.href)}">{escape(column.label)}{arrow}</a></th>'
    )


def _row(row: Row, *, editable: bool) -> str:
    icon = FOLDER_ICON if row.is_dir else FILE_ICON
    size = "—" if row.is_dir else f'<span title="{row.size} bytes">{human_size(row.size)}</span>'
    ops = ""
    if editable:
        name = escape(row.name)
        ops = (
            f'<td class="ops"><button type="button" data-op="rename" aria-label="Rename {name}">'
            f'Rename</button> <button type="button" class="danger" data-op="delete" '
            f'aria-label="Delete {name}">Delete</button></td>'
        )
    return (
        f'<tr data-path="{escape(row.path)}" data-name="{escape(row.name)}">'
        f'<td class="name"><div class="entry">{icon}<a href="{escape(row.href)}">'
        f"{escape(row.name)}{'/' if row.is_dir else ''}</a></div></td>"
        f'<td class="num size">{size}</td><td class="modified">{when(row.mtime)}</td>{ops}</tr>'
    )


def file_page(
    *,
    name: str,
    size: int,
    mtime: float,
    trail: list[Crumb],
    download_href: str | None,
    preview: str,
    nonce: str,
) -> bytes:
    """A file's page: name, size, date, the download button (when the link allows it)
    and `preview` (trusted markup from `preview_markup`)."""
    button = (
        f'<a class="button primary" href="{escape(download_href)}">Download</a>'
        if download_href
        else ""
    )
    html = (
        f"{crumbs(trail)}<h1>{escape(name)}</h1>"
        f'<p class="meta">{human_size(size)} · modified {when(mtime)}</p>'
        f'<div class="bar">{button}</div>{preview}'
    )
    return document(name, html, nonce)


def preview_markup(
    kind: str | None, name: str, raw_href: str, text: str | None = None, *, cut: bool = False
) -> str:
    """The inline preview for a file of `kind` ("image", "audio", "video", "pdf",
    "text"): media load `raw_href`; text is shown from `text` (already read; `cut`
    when that is only the file's beginning)."""
    src, label = escape(raw_href), escape(name)
    if kind == "image":
        inner = f'<img src="{src}" alt="{label}">'
    elif kind == "audio":
        inner = f'<audio controls preload="metadata" src="{src}" aria-label="{label}"></audio>'
    elif kind == "video":
        inner = f'<video controls preload="metadata" src="{src}" aria-label="{label}"></video>'
    elif kind == "pdf":
        inner = f'<iframe src="{src}" title="{label}"></iframe>'
    elif kind == "text" and text is not None:
        more = '<p class="note">Showing the beginning of the file.</p>' if cut else ""
        inner = f"<pre>{escape(text)}</pre>{more}"
    else:
        return '<p class="note">No preview for this kind of file.</p>'
    return f'<section class="preview" aria-label="Preview">{inner}</section>'


def password_page(*, error: str, action: str, nonce: str) -> bytes:
    """The form that unlocks a password link (POST `password` to `action`)."""
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    html = (
        "<h1>This link is protected</h1><p>Enter the password you were given.</p>"
        f'{message}<form method="post" action="{escape(action)}" class="bar">'
        '<label for="password" class="sr">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" '
        'placeholder="Password" required autofocus>'
        '<button type="submit" class="button primary">Open</button></form>'
    )
    return document("Password required", html, nonce)


def message_page(title: str, text: str, nonce: str) -> bytes:
    """A short page with a heading and one sentence (429, 405, 503...)."""
    return document(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>", nonce)
