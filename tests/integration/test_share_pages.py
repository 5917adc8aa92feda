"""The share-link web pages (`davserver.links.pages`): listings, file pages, file bytes
with their caching and range headers, streamed zips, download limits, the one 404 page
for every dead end, and password links with their guess limit.

Files are put over WebDAV with fixed mtimes (X-OC-Mtime) so sorting is deterministic
(`tests.support.share_tree`); links are made through the server's operations layer and
signed with the site's key, as the CLI does (`tests.support.links`).
"""

from __future__ import annotations

import html
import http.client
import io
import re
import time
import zipfile
from collections.abc import Callable
from urllib.parse import quote

import pytest
import requests

from davserver.auth.passwords import hash_password
from davserver.links.signer import LinkSigner
from davserver.links.site import NOT_FOUND_PAGE
from tests.support.links import Link, make_link
from tests.support.servers import RunningServer
from tests.support.share_tree import BIG, MARKUP, TREE, UNICODE, build_tree


def signer(server: RunningServer) -> LinkSigner:
    key = server.services.catalog.users.get_setting("share_link_key")
    assert key is not None
    return LinkSigner(bytes.fromhex(key))


@pytest.fixture
def shared(server: RunningServer) -> RunningServer:
    build_tree(server)
    return server


def names_in(page: str) -> list[str]:
    """The row names of a listing, in order (data-name attributes, unescaped)."""
    return [
        html.unescape(n) for n in re.findall(r'<tr data-path="[^"]*" data-name="([^"]*)"', page)
    ]


def raw_get(server: RunningServer, path: str) -> tuple[int, bytes]:
    """GET exactly `path` (no client-side normalisation of dots or escapes)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_folder_listing_sorts_folders_first_and_links_inside(shared: RunningServer) -> None:
    link = make_link(shared, "folder")
    page = requests.get(link.url + "/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    files = sorted(
        (n.split("/", 1)[1] for n in TREE if n.count("/") == 1 and n[-1] != "/"), key=str.casefold
    )
    assert names_in(page.text) == ["sub", "zeta", *files]
    assert f'href="{link.path}/browse/sub/"' in page.text
    assert f'href="{link.path}/browse/a.txt"' in page.text
    assert f'href="{link.path}/zip"' in page.text and "Download all (zip)" in page.text

    by_size = requests.get(link.url + "/?sort=size&order=desc").text
    sizes = [len(TREE[f"folder/{n}"][0]) for n in names_in(by_size)[2:]]
    assert names_in(by_size)[:2] == ["zeta", "sub"]  # folders first, in the same order
    assert sizes == sorted(sizes, reverse=True)
    assert 'aria-sort="descending"' in by_size and 'href="?sort=size&amp;order=asc"' in by_size

    by_date = names_in(requests.get(link.url + "/?sort=modified&order=asc").text)[2:]
    mtimes = [TREE[f"folder/{n}"][1] for n in by_date]
    assert mtimes == sorted(mtimes)
    bogus = requests.get(link.url + "/?sort=<x>&order=sideways")
    assert names_in(bogus.text) == names_in(page.text)


def test_names_with_markup_are_escaped_and_encoded(shared: RunningServer) -> None:
    link = make_link(shared, "folder", "edit")
    response = requests.get(link.url + "/")
    page = response.text
    assert "<img src=x" not in page and "<i>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page
    assert "say &#34;hi&#34; &amp; &#39;bye&#39; &lt;i&gt;.md" in page
    assert f'href="{link.path}/browse/{quote(MARKUP, safe="")}"' in page
    assert f'href="{link.path}/browse/{quote(UNICODE, safe="")}"' in page
    # the edit controls are there, and their script, a static file (no inline script)
    script = re.search(r'<script src="(/static/[0-9a-f]+/edit\.js)"></script>', page)
    assert script is not None and "<script>" not in page
    assert 'data-op="rename"' in page and 'data-op="delete"' in page and 'id="mkdir"' in page
    code = requests.get(shared.base + script.group(1)).text
    assert '"X-Davserver-Edit": "1"' in code and 'base + "/edit"' in code
    assert 'data-path="/&lt;img src=x onerror=alert(1)&gt;.txt"' in page
    file_page = requests.get(f"{link.url}/browse/{quote(MARKUP, safe='')}").text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in file_page and "<script>alert" not in file_page


def test_view_links_list_without_downloads(shared: RunningServer) -> None:
    link = make_link(shared, "folder", "view")
    page = requests.get(link.url + "/").text
    assert "Download all" not in page and "/zip" not in page and 'data-op="rename"' not in page
    file_page = requests.get(link.url + "/browse/a.txt").text
    assert "/download/" not in file_page and "<pre>alpha\n</pre>" in file_page
    for action in ("download/a.txt", "zip", "zip/sub"):
        response = requests.get(f"{link.url}/{action}")
        assert (response.status_code, response.content) == (404, NOT_FOUND_PAGE)
    assert requests.get(link.url + "/raw/a.txt").content == b"alpha\n"


def test_breadcrumbs_never_leave_the_shared_folder(shared: RunningServer) -> None:
    link = make_link(shared, "folder/sub")
    root = requests.get(link.url + "/").text
    crumbs = re.search(r'<nav aria-label="Breadcrumb"><ol>(.*?)</ol></nav>', root)
    assert crumbs is not None and crumbs.group(1) == '<li aria-current="page">sub</li>'
    inner = requests.get(link.url + "/browse/empty/").text
    crumbs = re.search(r'<nav aria-label="Breadcrumb"><ol>(.*?)</ol></nav>', inner)
    assert crumbs is not None
    assert crumbs.group(1) == (
        f'<li><a href="{link.path}/">sub</a></li><li aria-current="page">empty</li>'
    )
    assert "This folder is empty." in inner
    assert "folder" not in crumbs.group(1)


def test_file_pages_preview_by_type(shared: RunningServer) -> None:
    link = make_link(shared, "folder")
    raw = f"{link.path}/raw/"
    expected = {
        "photo.png": f'<img src="{raw}photo.png" alt="photo.png">',
        "doc.pdf": f'<iframe src="{raw}doc.pdf"',
        "song.mp3": f'<audio controls preload="metadata" src="{raw}song.mp3"',
        "clip.mp4": f'<video controls preload="metadata" src="{raw}clip.mp4"',
        "a.txt": "<pre>alpha\n</pre>",
        "page.html": "<pre>&lt;script&gt;alert(1)&lt;/script&gt;</pre>",
        "logo.svg": "No preview for this kind of file.",
        "big.bin": "No preview for this kind of file.",
    }
    for name, markup in expected.items():
        page = requests.get(f"{link.url}/browse/{name}")
        assert page.status_code == 200, name
        assert markup in page.text, name
        assert f'href="{link.path}/download/{name}">Download</a>' in page.text
    notes = requests.get(f"{link.url}/browse/notes.log").text
    assert "Showing the beginning of the file." in notes
    assert "300.0 KiB" in notes


def test_raw_and_download_headers(shared: RunningServer) -> None:
    link = make_link(shared, "folder")
    found = shared.services.catalog.tree.resolve_path(link_node(shared, link), ["a.txt"])
    assert found is not None
    etag = f'"{found[0].digest}"'
    raw = requests.get(link.url + "/raw/a.txt")
    assert raw.content == b"alpha\n"
    assert raw.headers["ETag"] == etag
    assert raw.headers["Last-Modified"] == "Sun, 13 Sep 2020 12:31:40 GMT"
    assert raw.headers["Cache-Control"] == "public, max-age=0, must-revalidate"
    assert raw.headers["Accept-Ranges"] == "bytes"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.headers["Content-Disposition"].startswith("inline;")
    assert raw.headers["Content-Security-Policy"].startswith("sandbox;")
    html_raw = requests.get(link.url + "/raw/page.html")
    assert html_raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert requests.get(link.url + "/raw/photo.png").headers["Content-Type"] == "image/png"
    assert requests.get(link.url + "/raw/doc.pdf").headers["Content-Type"] == "application/pdf"
    for not_previewable in ("logo.svg", "big.bin"):
        response = requests.get(f"{link.url}/raw/{not_previewable}")
        assert (response.status_code, response.content) == (404, NOT_FOUND_PAGE)

    download = requests.get(f"{link.url}/download/{quote(UNICODE)}")
    assert download.content == "résumé".encode()
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_ _.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%82%AC.txt"
    )
    assert download.headers["Content-Security-Policy"].startswith("sandbox;")
    svg = requests.get(link.url + "/download/logo.svg")
    assert svg.headers["Content-Disposition"].startswith("attachment;")
    assert svg.content == TREE["folder/logo.svg"][0]
    head = requests.head(link.url + "/download/big.bin")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(BIG))
    assert head.content == b""
    assert requests.post(link.url + "/download/a.txt").status_code == 405


def link_node(server: RunningServer, link: Link) -> int:
    record = server.services.catalog.links.get(link.id)
    assert record is not None
    return record.node.id


def test_ranges(shared: RunningServer) -> None:
    link = make_link(shared, "folder")
    url = link.url + "/download/big.bin"
    size = len(BIG)
    cases = {
        "bytes=0-99": (0, 100),
        "bytes=1000-": (1000, size),
        "bytes=-500": (size - 500, size),
        f"bytes=100-{size + 50}": (100, size),
    }
    for header, (start, end) in cases.items():
        response = requests.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert response.content == BIG[start:end]
    for header in (f"bytes={size}-", "bytes=-0"):
        response = requests.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["Content-Range"] == f"bytes */{size}"
    for ignored in ("bytes=9-3", "pages=1-2", "bytes=x-"):
        response = requests.get(url, headers={"Range": ignored})
        assert (response.status_code, len(response.content)) == (200, size), ignored
    several = requests.get(url, headers={"Range": "bytes=0-1,5-9"})
    assert several.status_code == 206
    assert several.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert BIG[0:2] in several.content and BIG[5:10] in several.content
    video = requests.get(link.url + "/raw/clip.mp4", headers={"Range": "bytes=10-19"})
    assert (video.status_code, video.content) == (206, bytes(10))


def test_conditional_requests(shared: RunningServer) -> None:
    link = make_link(shared, "folder")
    url = link.url + "/raw/a.txt"
    first = requests.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    not_modified = requests.get(url, headers={"If-None-Match": etag})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    assert not_modified.headers["ETag"] == etag
    assert requests.get(url, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert requests.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert requests.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    earlier = "Sat, 12 Sep 2020 12:00:00 GMT"
    assert requests.get(url, headers={"If-Modified-Since": earlier}).status_code == 200
    assert requests.get(url, headers={"If-Match": '"other"'}).status_code == 412
    assert requests.get(url, headers={"If-Match": etag}).status_code == 200
    assert requests.get(url, headers={"If-Unmodified-Since": earlier}).status_code == 412
    assert requests.get(url, headers={"If-Unmodified-Since": modified}).status_code == 200
    stale = requests.get(url, headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert (stale.status_code, stale.content) == (200, b"alpha\n")
    fresh = requests.get(url, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert (fresh.status_code, fresh.content) == (206, b"al")


def test_cache_control_follows_the_link(shared: RunningServer) -> None:
    counted = make_link(shared, "folder", max_downloads=5)
    assert requests.get(counted.url + "/raw/a.txt").headers["Cache-Control"] == "no-store"
    assert requests.get(counted.url + "/download/a.txt").headers["Cache-Control"] == "no-store"
    locked = make_link(shared, "folder", password_hash=hash_password("pw"))
    session = requests.Session()
    assert session.post(locked.url + "/unlock", data={"password": "pw"}).status_code == 200
    assert session.get(locked.url + "/raw/a.txt").headers["Cache-Control"] == "private, no-cache"
    page = requests.get(make_link(shared, "folder").url + "/")
    assert page.headers["Cache-Control"] == "no-store"  # pages are never cached


def test_zip_holds_every_file_and_folder(shared: RunningServer) -> None:
    link = make_link(shared, "folder")
    response = requests.get(link.url + "/zip")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"folder.zip\"; filename*=UTF-8''folder.zip"
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(TREE)
    for name, (data, _mtime) in TREE.items():
        if not name.endswith("/"):
            assert archive.read(name) == data, name
    assert archive.getinfo("folder/sub/empty/").is_dir()
    sub = zipfile.ZipFile(io.BytesIO(requests.get(link.url + "/zip/sub/").content))
    assert sorted(sub.namelist()) == ["sub/", "sub/deep.txt", "sub/empty/"]
    not_a_folder = requests.get(link.url + "/zip/a.txt")
    assert (not_a_folder.status_code, not_a_folder.content) == (404, NOT_FOUND_PAGE)


def test_download_limit_counts_whole_downloads(shared: RunningServer) -> None:
    """max_downloads=3: a GET from byte 0 and a zip count; a HEAD, a preview, a 304
    and a Range resuming past byte 0 do not; the fourth start finds the link dead."""
    link = make_link(shared, "folder", max_downloads=3)
    url = link.url + "/download/big.bin"
    assert requests.get(url).content == BIG  # 1
    assert requests.head(url).status_code == 200
    assert requests.get(url, headers={"Range": "bytes=1000-"}).status_code == 206
    assert requests.get(link.url + "/raw/a.txt").status_code == 200
    etag = requests.head(url).headers["ETag"]
    assert requests.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert requests.get(url, headers={"Range": "bytes=0-9"}).status_code == 206  # 2
    assert requests.get(link.url + "/zip").status_code == 200  # 3
    record = shared.services.catalog.links.get(link.id)
    assert record is not None and record.downloads == 3
    for path in ("/", "/download/big.bin", "/zip", "/raw/a.txt"):
        response = requests.get(link.url + path)
        assert (response.status_code, response.content) == (404, NOT_FOUND_PAGE), path


def test_every_dead_link_gets_the_same_404(shared: RunningServer) -> None:
    live = make_link(shared, "folder")
    expired = make_link(shared, "folder", expires_at=time.time() - 1)
    revoked = make_link(shared, "folder")
    assert shared.services.catalog.links.revoke("admin", revoked.id)
    token = live.path.rsplit("/", 1)[1]
    # Not the last character: its low bits are base64 padding, so some changes there
    # decode to the very same signature bytes.
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    unknown = signer(shared).token(999_999)
    urls = [
        expired.url + "/",
        revoked.url + "/browse/a.txt",
        f"{shared.base}/s/{tampered}/",
        f"{shared.base}/s/{unknown}/",
        f"{shared.base}/s/garbage/",
        live.url + "/browse/missing.txt",
        live.url + "/nosuchaction/a.txt",
        live.url + "//a.txt",
    ]
    for url in urls:
        response = requests.get(url)
        assert (response.status_code, response.content) == (404, NOT_FOUND_PAGE), url
    assert requests.get(live.url + "/").status_code == 200


def test_paths_never_escape_the_shared_folder(shared: RunningServer) -> None:
    """Shared: folder/sub. Every way of naming folder/a.txt (its parent's file) or
    the parent itself answers the 404 page."""
    link = make_link(shared, "folder/sub")
    attempts = [
        "/browse/../a.txt",
        "/browse/%2e%2e/a.txt",
        "/browse/%2E%2E%2Fa.txt",
        "/browse/..%2Fa.txt",
        "/browse/..\\a.txt",
        "/browse/%5C..%5Ca.txt",
        "/browse/deep.txt/../../a.txt",
        "/raw/../../a.txt",
        "/download/%2e%2e/a.txt",
        "/zip/..",
        "/zip/%2e%2e/",
        "/browse/./deep.txt",
        "/browse/%00",
    ]
    for attempt in attempts:
        status, body = raw_get(shared, link.path + attempt)
        assert (status, body) == (404, NOT_FOUND_PAGE), attempt
    assert raw_get(shared, link.path + "/raw/deep.txt") == (200, b"deep")


def test_a_file_link_shows_its_file(shared: RunningServer) -> None:
    link = make_link(shared, "folder/photo.png")
    page = requests.get(link.url + "/").text
    assert f'<img src="{link.path}/raw" alt="photo.png">' in page
    assert f'href="{link.path}/download">Download</a>' in page
    assert requests.get(link.url + "/raw").content == TREE["folder/photo.png"][0]
    assert requests.get(link.url + "/download").content == TREE["folder/photo.png"][0]
    for path in ("/browse/photo.png", "/zip", "/raw/x"):
        assert requests.get(link.url + path).status_code == 404, path


def test_password_link_unlocks_with_a_cookie(shared: RunningServer) -> None:
    link = make_link(shared, "folder", password_hash=hash_password("open sesame"))
    for path in ("/", "/browse/a.txt", "/raw/a.txt", "/download/a.txt", "/zip"):
        form = requests.get(link.url + path)
        assert form.status_code == 401, path
        assert f'action="{link.path}/unlock"' in form.text and "alpha" not in form.text
    session = requests.Session()
    wrong = session.post(link.url + "/unlock", data={"password": "guess"}, allow_redirects=False)
    assert wrong.status_code == 401 and "Wrong password." in wrong.text
    assert "Set-Cookie" not in wrong.headers
    right = session.post(
        link.url + "/unlock",
        data={"password": "open sesame", "next": "https://evil.example/"},
        allow_redirects=False,
    )
    assert right.status_code == 303
    assert right.headers["Location"] == link.path + "/"
    cookie = right.headers["Set-Cookie"]
    assert cookie.startswith(f"davshare{link.id}=")
    assert f"Path={link.path}/;" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert "a.txt" in session.get(link.url + "/").text
    assert session.get(link.url + "/raw/a.txt").content == b"alpha\n"
    other = make_link(shared, "folder", password_hash=hash_password("open sesame"))
    stolen = {f"davshare{other.id}": session.cookies[f"davshare{link.id}"]}
    assert requests.get(other.url + "/", cookies=stolen).status_code == 401
    assert requests.get(link.url + "/unlock", allow_redirects=False).status_code == 303


def test_password_guesses_are_limited(make_server: Callable[..., RunningServer]) -> None:
    server = make_server("embedded", login_failures_per_user=3)
    build_tree(server)
    link = make_link(server, "folder", password_hash=hash_password("right"))
    for _ in range(3):
        response = requests.post(link.url + "/unlock", data={"password": "wrong"})
        assert response.status_code == 401
    blocked = requests.post(link.url + "/unlock", data={"password": "right"}, allow_redirects=False)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many wrong passwords" in blocked.text
    # another link's password is not blocked by this one's guesses
    other = make_link(server, "folder", password_hash=hash_password("right"))
    ok = requests.post(other.url + "/unlock", data={"password": "right"}, allow_redirects=False)
    assert ok.status_code == 303


def test_an_upload_link_never_lists(shared: RunningServer) -> None:
    """A drop box: its page is the uploads' drop page, never a listing, and none of
    the reading actions exist for it."""
    link = make_link(shared, "folder", "upload")
    page = requests.get(link.url + "/")
    assert "a.txt" not in page.text and "Download all" not in page.text
    for path in ("/browse/a.txt", "/raw/a.txt", "/download/a.txt", "/zip"):
        response = requests.get(link.url + path)
        assert (response.status_code, response.content) == (404, NOT_FOUND_PAGE), path
