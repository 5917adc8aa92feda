"""Uploads and edits through share links, over HTTP on both stacks: TUS 1.0 (create,
PATCH, HEAD, resume after a dropped connection, terminate), automatic renaming, quota,
who may upload, what an upload link shows, GC during an upload, and the edit endpoint."""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from urllib.parse import unquote, urlsplit

import requests

from davserver.links.signer import LinkSigner
from providers.gc import collect_garbage
from tests.support.servers import RunningServer

TUS = {"Tus-Resumable": "1.0.0"}
PIECE = {**TUS, "Content-Type": "application/offset+octet-stream"}
EDIT = {"X-Davserver-Edit": "1"}
MIB = 1024 * 1024


def share(server: RunningServer, perm: str, folder: str = "inbox") -> str:
    """A new `perm` link to admin's `/folder` (made if missing); returns its URL."""
    server.client().request("MKCOL", server.url(folder))
    link = server.services.catalog.links.create("admin", [folder], perm)
    key = server.services.catalog.users.get_setting("share_link_key")
    assert key is not None
    return f"{server.base}/s/{LinkSigner(bytes.fromhex(key)).token(link.id)}"


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(base: str, name: str, length: int, **extra: str) -> str:
    """POST a new upload; returns its absolute URL."""
    meta = metadata(filename=name, **extra)
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": meta}
    answer = requests.post(f"{base}/upload/", headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    location = answer.headers["Location"]
    assert location.startswith(urlsplit(base).path + "/upload/")
    return urlsplit(base)._replace(path=location).geturl()


def patch(url: str, offset: int, data: bytes) -> requests.Response:
    return requests.patch(url, data=data, headers={**PIECE, "Upload-Offset": str(offset)})


def offset_of(url: str) -> int:
    answer = requests.head(url, headers=TUS)
    assert answer.status_code == 200 and answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.headers["Cache-Control"] == "no-store"
    return int(answer.headers["Upload-Offset"])


def send_all(base: str, name: str, data: bytes, step: int = MIB, **extra: str) -> str:
    """Upload `data` in `step`-byte PATCHes; returns the stored name."""
    url = create(base, name, len(data), **extra)
    for start in range(0, max(len(data), 1), step):
        answer = patch(url, start, data[start : start + step])
        assert answer.status_code == 204, answer.text
        assert int(answer.headers["Upload-Offset"]) == min(start + step, len(data))
    return unquote(answer.headers["X-Davserver-Name"])


def owner_get(server: RunningServer, path: str) -> bytes:
    answer = server.client().get(server.url(path))
    assert answer.status_code == 200, path
    return answer.content


def test_tus_upload_in_pieces_lands_in_the_folder(server: RunningServer) -> None:
    base = share(server, "upload")
    options = requests.options(f"{base}/upload/")
    assert options.status_code == 204
    assert options.headers["Tus-Resumable"] == "1.0.0"
    assert options.headers["Tus-Version"] == "1.0.0"
    assert set(options.headers["Tus-Extension"].split(",")) == {"creation", "termination"}
    assert int(options.headers["Tus-Max-Size"]) >= 1 << 30
    data = os.urandom(3 * MIB + 12345)
    url = create(base, "vidéo clip.bin", len(data))
    assert offset_of(url) == 0
    head = requests.head(url, headers=TUS)
    assert int(head.headers["Upload-Length"]) == len(data)
    for start in range(0, len(data), MIB):
        answer = patch(url, start, data[start : start + MIB])
        assert answer.status_code == 204 and answer.headers["Tus-Resumable"] == "1.0.0"
        if start + MIB < len(data):
            assert offset_of(url) == start + MIB and "X-Davserver-Name" not in answer.headers
    assert unquote(answer.headers["X-Davserver-Name"]) == "vidéo clip.bin"
    assert owner_get(server, "inbox/vidéo clip.bin") == data
    finished = requests.head(url, headers=TUS)  # a receipt for a client whose answer was lost
    assert int(finished.headers["Upload-Offset"]) == len(data)
    assert unquote(finished.headers["X-Davserver-Name"]) == "vidéo clip.bin"
    assert patch(url, len(data), b"").status_code == 409
    assert send_all(base, "empty.txt", b"") == "empty.txt"
    assert owner_get(server, "inbox/empty.txt") == b""


def _drop_mid_body(
    server: RunningServer, url: str, offset: int, sent: bytes, declared: int
) -> None:
    """A PATCH announcing `declared` bytes whose client hangs up after `sent`."""
    head = (
        f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + sent)


def test_resume_after_a_dropped_connection(server: RunningServer) -> None:
    base = share(server, "upload")
    data = os.urandom(3 * MIB)
    url = create(base, "resumed.bin", len(data))
    assert patch(url, 0, data[:MIB]).status_code == 204
    cut = MIB + 300 * 1024
    _drop_mid_body(server, url, MIB, data[MIB:cut], declared=MIB)
    deadline = time.monotonic() + 20
    while (now := offset_of(url)) != cut:  # what arrived before the hang-up is kept
        assert now == MIB and time.monotonic() < deadline
        time.sleep(0.05)
    resume = offset_of(url)
    assert patch(url, resume, data[resume:]).status_code == 204
    assert owner_get(server, "inbox/resumed.bin") == data


def test_wrong_offset_and_bad_requests_are_refused(server: RunningServer) -> None:
    base = share(server, "upload")
    url = create(base, "a.bin", 100)
    assert patch(url, 0, b"x" * 40).status_code == 204
    stale = patch(url, 0, b"x" * 40)
    assert stale.status_code == 409 and stale.headers["Upload-Offset"] == "40"
    assert patch(url, 41, b"x").status_code == 409
    too_long = patch(url, 40, b"x" * 61)
    assert too_long.status_code == 413
    chunked = requests.patch(
        url, data=iter([b"y" * 30, b"z" * 31]), headers={**PIECE, "Upload-Offset": "40"}
    )
    assert chunked.status_code == 413 and offset_of(url) == 40
    chunked = requests.patch(
        url, data=iter([b"y" * 5, b"z" * 5]), headers={**PIECE, "Upload-Offset": "40"}
    )
    assert chunked.status_code == 204 and chunked.headers["Upload-Offset"] == "50"
    no_tus = requests.patch(
        url, data=b"x", headers={**PIECE, "Upload-Offset": "40", "Tus-Resumable": ""}
    )
    assert no_tus.status_code == 412 and no_tus.headers["Tus-Version"] == "1.0.0"
    wrong_type = requests.patch(url, data=b"x", headers={**TUS, "Upload-Offset": "40"})
    assert wrong_type.status_code == 415
    assert requests.post(f"{base}/upload/", headers=TUS).status_code == 400  # no length
    nameless = requests.post(f"{base}/upload/", headers={**TUS, "Upload-Length": "1"})
    assert nameless.status_code == 400
    bad = {**TUS, "Upload-Length": "1", "Upload-Metadata": metadata(filename="../x")}
    assert requests.post(f"{base}/upload/", headers=bad).status_code == 400
    assert (
        requests.post(f"{base}/upload/", headers={**TUS, "Upload-Length": str(1 << 41)}).status_code
        == 413
    )
    assert offset_of(url) == 50
    assert requests.head(f"{base}/upload/nosuchupload", headers=TUS).status_code == 404


def test_clashing_names_are_numbered(server: RunningServer) -> None:
    base = share(server, "upload")
    server.client().put(server.url("inbox/report.pdf"), data=b"the owner's")
    assert send_all(base, "report.pdf", b"first drop") == "report (2).pdf"
    assert send_all(base, "report.pdf", b"second drop", step=4) == "report (3).pdf"
    assert owner_get(server, "inbox/report.pdf") == b"the owner's"
    assert owner_get(server, "inbox/report (2).pdf") == b"first drop"
    assert owner_get(server, "inbox/report (3).pdf") == b"second drop"


def test_relative_paths_make_sub_folders(server: RunningServer) -> None:
    base = share(server, "upload")
    name = send_all(base, "a.txt", b"in a dropped folder", relativePath="trip/day 1/a.txt")
    assert name == "a.txt"
    assert owner_get(server, "inbox/trip/day 1/a.txt") == b"in a dropped folder"


def test_quota_refuses_an_upload_that_cannot_fit(server: RunningServer) -> None:
    server.services.catalog.users.set_quota("admin", 1000)
    base = share(server, "upload")
    headers = {**TUS, "Upload-Length": "1001", "Upload-Metadata": metadata(filename="big.bin")}
    assert requests.post(f"{base}/upload/", headers=headers).status_code == 507
    url = create(base, "fits.bin", 600)
    assert patch(url, 0, b"a" * 300).status_code == 204
    server.client().put(server.url("inbox/meanwhile.bin"), data=b"b" * 500)
    assert patch(url, 300, b"a" * 300).status_code == 507  # no longer fits: refused
    assert offset_of(url) == 300  # the part already sent is kept
    assert server.client().get(server.url("inbox/fits.bin")).status_code == 404


def test_only_upload_and_edit_links_take_uploads(server: RunningServer) -> None:
    for perm in ("view", "download"):
        base = share(server, perm)
        headers = {**TUS, "Upload-Length": "1", "Upload-Metadata": metadata(filename="x")}
        assert requests.post(f"{base}/upload/", headers=headers).status_code == 404
        assert requests.options(f"{base}/upload/").status_code == 404
    assert send_all(share(server, "edit"), "by-editor.txt", b"hi") == "by-editor.txt"
    url = create(share(server, "upload"), "mine.txt", 5)
    other = share(server, "upload")  # the same folder, another link: not its upload
    foreign = f"{other}/upload/{url.rsplit('/', 1)[1]}"
    assert requests.head(foreign, headers=TUS).status_code == 404
    assert patch(foreign, 0, b"12345").status_code == 404
    assert requests.delete(foreign, headers=TUS).status_code == 404
    assert offset_of(url) == 0


def test_an_upload_link_shows_nothing_of_the_folder(server: RunningServer) -> None:
    server.client().request("MKCOL", server.url("inbox"))
    server.client().put(server.url("inbox/secret-plans.txt"), data=b"private")
    base = share(server, "upload")
    page = requests.get(f"{base}/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'type="file"' in page.text and "<progress" not in page.text.split("<script")[0]
    assert "secret-plans" not in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert re.search(r'<script src="/static/[0-9a-f]+/drop\.js"></script>', page.text)
    for path in ("browse/", "browse/secret-plans.txt", "raw/secret-plans.txt", "zip/", "dav/"):
        assert requests.get(f"{base}/{path}").status_code in (401, 404), path
    assert "secret-plans" not in requests.request("PROPFIND", f"{base}/dav/").text


def test_terminated_uploads_are_gone(server: RunningServer) -> None:
    base = share(server, "upload")
    url = create(base, "gone.bin", 2 * MIB)
    assert patch(url, 0, os.urandom(MIB)).status_code == 204
    deleted = requests.delete(url, headers=TUS)
    assert deleted.status_code == 204 and deleted.headers["Tus-Resumable"] == "1.0.0"
    assert requests.head(url, headers=TUS).status_code == 404
    assert patch(url, MIB, os.urandom(MIB)).status_code == 404
    assert requests.delete(url, headers=TUS).status_code == 404
    assert server.client().get(server.url("inbox/gone.bin")).status_code == 404


def test_gc_during_an_upload_keeps_its_parts(server: RunningServer) -> None:
    base = share(server, "upload")
    data = os.urandom(3 * MIB)
    url = create(base, "slow.bin", len(data))
    assert patch(url, 0, data[: 2 * MIB]).status_code == 204
    services = server.services
    prefix = services.settings.blob_prefix
    report = collect_garbage(
        services.catalog, services.blobs, grace=0, apply=True, key_prefix=prefix
    )
    assert report.chunks == 0 and report.orphans == 0
    assert patch(url, 2 * MIB, data[2 * MIB :]).status_code == 204
    assert owner_get(server, "inbox/slow.bin") == data
    abandoned = create(base, "abandoned.bin", 2 * MIB)
    assert patch(abandoned, 0, os.urandom(MIB)).status_code == 204
    before = server.stored_bytes()
    report = collect_garbage(
        services.catalog, services.blobs, grace=0, apply=True, key_prefix=prefix, upload_ttl=0
    )
    assert report.uploads == 2 and report.chunk_bytes >= MIB  # and the finished one's receipt
    assert server.stored_bytes() <= before - MIB
    assert requests.head(abandoned, headers=TUS).status_code == 404
    assert owner_get(server, "inbox/slow.bin") == data


def edit(base: str, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{base}/edit", json=body, headers=EDIT if headers is None else headers)


def test_edit_links_rename_delete_and_make_folders(server: RunningServer) -> None:
    client = server.client()
    client.request("MKCOL", server.url("proj"))
    client.request("MKCOL", server.url("proj/sub"))
    client.put(server.url("proj/sub/a.txt"), data=b"A")
    client.put(server.url("proj/b.txt"), data=b"B")
    base = share(server, "edit", "proj")
    made = edit(base, {"op": "mkdir", "path": "/sub", "name": "new folder"})
    assert made.status_code == 201 and made.json()["path"] == "/sub/new folder"
    assert (
        client.request(
            "PROPFIND", server.url("proj/sub/new folder"), headers={"Depth": "0"}
        ).status_code
        == 207
    )
    renamed = edit(base, {"op": "rename", "path": "/sub/a.txt", "name": "ä.txt"})
    assert renamed.status_code == 201 and renamed.json() == {"name": "ä.txt", "path": "/sub/ä.txt"}
    assert owner_get(server, "proj/sub/ä.txt") == b"A"
    assert edit(base, {"op": "delete", "path": "/b.txt"}).status_code == 204
    assert client.get(server.url("proj/b.txt")).status_code == 404
    page = requests.get(f"{base}/upload/", params={"folder": "sub"})
    assert page.status_code == 200 and 'data-folder="sub"' in page.text


def test_edit_refusals(server: RunningServer) -> None:
    client = server.client()
    client.request("MKCOL", server.url("proj"))
    client.put(server.url("proj/a.txt"), data=b"A")
    client.put(server.url("proj/b.txt"), data=b"B")
    base = share(server, "edit", "proj")
    rename = {"op": "rename", "path": "/a.txt", "name": "c.txt"}
    no_header = edit(base, rename, headers={})
    assert no_header.status_code == 403 and "error" in no_header.json()
    form = requests.post(f"{base}/edit", data={"op": "delete", "path": "/a.txt"})
    assert form.status_code == 403  # what a cross-site form can send
    assert edit(base, {"op": "rename", "path": "/", "name": "x"}).status_code == 403
    assert edit(base, {"op": "delete", "path": ""}).status_code == 403
    assert edit(base, {"op": "delete", "path": "/../proj/a.txt"}).status_code == 404
    assert edit(base, {"op": "delete", "path": "/nothing.txt"}).status_code == 404
    assert edit(base, {"op": "rename", "path": "/a.txt", "name": "b.txt"}).status_code == 409
    assert edit(base, {"op": "mkdir", "path": "/", "name": "a.txt"}).status_code == 409
    assert edit(base, {"op": "rename", "path": "/a.txt", "name": "x/y"}).status_code == 400
    assert edit(base, {"op": "chmod", "path": "/a.txt"}).status_code == 400
    assert requests.post(f"{base}/edit", data=b"not json", headers=EDIT).status_code == 400
    assert requests.get(f"{base}/edit", headers=EDIT).status_code == 405
    assert owner_get(server, "proj/a.txt") == b"A" and owner_get(server, "proj/b.txt") == b"B"
    for perm in ("view", "download", "upload"):
        other = share(server, perm, "proj")
        assert edit(other, {"op": "delete", "path": "/a.txt"}).status_code == 404
    assert owner_get(server, "proj/a.txt") == b"A"
