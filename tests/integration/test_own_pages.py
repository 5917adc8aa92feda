"""davserver's own pages where users land: the connect page at `/` (the WebDAV URL
from `public_url` or the request, per-system instructions, a Host header that is no
host never echoed) and the folder pages of `/dav/` and `/s/<token>/dav/` (our listing,
folders first, names escaped; WsgiDAV's branding gone from pages and status answers).

HTTP-level checks on the embedded stack (the pages do not depend on the stack); what a
browser makes of them is in test_own_pages_browser.py.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.support.links import make_link
from tests.support.servers import RunningServer
from tests.support.share_tree import MARKUP, TREE, build_tree

SYSTEMS = ("Windows", "macOS", "Linux", "rclone", "cadaver")


@pytest.fixture
def embedded(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server("embedded")


def raw_get(server: RunningServer, path: str, host: str) -> tuple[int, str]:
    """GET `path` with a Host header of our choosing (requests would fix it up)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def test_connect_page_shows_the_request_url_and_every_system(embedded: RunningServer) -> None:
    page = requests.get(embedded.base + "/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text and "style=" not in page.text  # CSP: files only
    dav = f"http://127.0.0.1:{embedded.port}/dav/"
    for system in SYSTEMS:
        assert re.search(rf"<h2 id=\"[a-z]+-h\">{system}</h2>", page.text), system
    assert f"<code>{dav}</code>" in page.text
    assert f"net use Z: {dav} /user:NAME *" in page.text
    assert "BasicAuthLevel" in page.text and 'id="plain-http"' in page.text
    assert f"dav://127.0.0.1:{embedded.port}/dav/" in page.text  # GNOME, plain HTTP
    assert f"webdav://127.0.0.1:{embedded.port}/dav/" in page.text  # Dolphin
    assert f"mount -t davfs {dav} /mnt/dav" in page.text and "/etc/davfs2/secrets" in page.text
    rclone = f"rclone config create mydav webdav url={dav} vendor=other user=NAME"
    assert rclone + " pass=$(rclone obscure -- &#39;PASSWORD&#39;)" in page.text
    assert f"cadaver {dav}" in page.text
    assert page.text.count('class="copy"') >= 10
    script = re.search(r'<script src="(/static/[0-9a-f]+/copy\.js)"></script>', page.text)
    assert script is not None
    js = requests.get(embedded.base + script.group(1))
    assert js.status_code == 200 and "clipboard" in js.text
    head = requests.head(embedded.base + "/")
    assert head.status_code == 200 and head.content == b""


def test_connect_page_follows_the_host_the_client_used(embedded: RunningServer) -> None:
    status, body = raw_get(embedded, "/", "files.example.org:8443")
    assert status == 200 and "<code>http://files.example.org:8443/dav/</code>" in body


def test_connect_page_prefers_public_url(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("embedded", public_url="https://files.example.org/")
    status, body = raw_get(server, "/", "internal-host:8080")
    assert status == 200 and "internal-host" not in body
    assert "<code>https://files.example.org/dav/</code>" in body
    assert "davs://files.example.org/dav/" in body and "webdavs://files.example.org/dav/" in body
    assert 'id="plain-http"' not in body  # no plain-HTTP warning for an HTTPS address


@pytest.mark.parametrize(
    "host",
    [
        'evil"><script>alert(1)</script>',
        "a.example/<img src=x onerror=alert(1)>",
        "x.example' onmouseover='alert(1)",
    ],
)
def test_a_hostile_host_header_is_never_echoed(embedded: RunningServer, host: str) -> None:
    status, body = raw_get(embedded, "/", host)
    assert status == 200
    for fragment in ("<script>alert", "<img", "onmouseover", "evil", "a.example"):
        assert fragment not in body, fragment
    assert "<code>http://SERVER/dav/</code>" in body


def test_dav_folder_page_is_ours(embedded: RunningServer) -> None:
    build_tree(embedded)
    client = embedded.client()
    page = client.get(embedded.url("folder/"))
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert "WsgiDAV" not in page.text and "wsgidav" not in page.text.lower()
    assert "Signed in as <strong>admin</strong>" in page.text
    crumbs = re.search(r'<nav aria-label="Breadcrumb">(.*?)</nav>', page.text)
    assert crumbs is not None
    assert '<a href="/dav/">Home</a>' in crumbs.group(1)
    assert '<li aria-current="page">folder</li>' in crumbs.group(1)
    names = re.findall(r'<a href="(/dav/folder/[^"]*)">([^<]*)</a>', page.text)
    members = [n[len("folder/") :] for n in TREE if n.count("/") == 1 and n != "folder/"]
    members += ["sub/", "zeta/"]
    assert len(names) == len(members)
    shown = [name for _href, name in names]
    assert shown[:2] == ["sub/", "zeta/"]  # folders first
    assert all(not name.endswith("/") for name in shown[2:])
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in shown and MARKUP not in page.text
    hrefs = dict((name, href) for href, name in names)
    assert hrefs["sub/"] == "/dav/folder/sub/"
    assert client.get(embedded.base + hrefs["a.txt"]).content == TREE["folder/a.txt"][0]
    assert '<span title="6 bytes">6 B</span>' in page.text  # a.txt
    # without the trailing slash the links still work: they are absolute
    bare = client.get(embedded.url("folder/sub"))
    assert bare.status_code == 200 and '<a href="/dav/folder/sub/deep.txt">' in bare.text
    head = client.head(embedded.url("folder/"))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(page.content))


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["folder/a.txt", "folder/"])
def test_a_get_or_head_locates_its_path_once(
    embedded: RunningServer, monkeypatch: pytest.MonkeyPatch, method: str, path: str
) -> None:
    """The folder-page check and WsgiDAV's answer share one lookup of the path."""
    build_tree(embedded)
    tree = embedded.services.catalog.tree
    located: list[list[str]] = []
    resolve = tree.resolve_path

    def counted(root_id: int, names: list[str]) -> object:
        located.append(names)
        return resolve(root_id, names)

    monkeypatch.setattr(tree, "resolve_path", counted)
    answer = embedded.client().request(method, embedded.url(path))
    assert answer.status_code == 200
    assert located == [path.strip("/").split("/")]


def test_status_answers_are_plain_text_without_wsgidav(embedded: RunningServer) -> None:
    client = embedded.client()
    missing = client.get(embedded.url("no-such-file"))
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "text/plain; charset=utf-8"
    rid = missing.headers["X-Request-Id"]
    assert missing.text == f"not found: /no-such-file (request id {rid})\n"
    made = client.request("MKCOL", embedded.url("made"))
    assert made.status_code == 201 and made.text == "201 Created\n"
    again = client.request("MKCOL", embedded.url("made"))
    assert again.status_code == 405 and "WsgiDAV" not in again.text
    assert again.headers["Content-Type"].startswith("text/plain")
    put = client.put(embedded.url("made/x.txt"), data=b"x")
    assert put.status_code == 201 and "WsgiDAV" not in put.text
    for response in (missing, made, again, put):
        assert "WsgiDAV" not in response.headers.get("Server", "")
    # an RFC 4918 precondition answer stays XML
    copy = client.request(
        "COPY", embedded.url("made/x.txt"), headers={"Destination": "/dav/nowhere/x.txt"}
    )
    assert copy.status_code == 409 and "WsgiDAV" not in copy.text


def test_a_link_mount_shows_the_same_listing(embedded: RunningServer) -> None:
    build_tree(embedded)
    link = make_link(embedded, "folder", "view")
    page = requests.get(link.dav + "sub/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "WsgiDAV" not in page.text and "Signed in" not in page.text
    base = urlsplit(link.dav).path
    assert f'<a href="{base}sub/deep.txt">deep.txt</a>' in page.text
    assert f'<a href="{base}">Shared folder</a>' in page.text
    assert requests.get(link.dav + quote("sub/deep.txt")).content == b"deep"
