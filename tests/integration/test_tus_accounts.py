"""Resumable uploads (TUS 1.0) for accounts on /dav/ collections, over HTTP with the
real TUS client (PyPI `tuspy`): OPTIONS, uploads cut and resumed after a restart and
through another instance, a connection cut mid-PATCH, checksums (460), quota (507 at
the creation), an overwrite that keeps a version and makes one feed entry, ownership."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from tests.conftest import STACKS
from tests.support.servers import RunningServer, stack_settings, start_server, two_instances

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
PIECE = {**TUS, "Content-Type": "application/offset+octet-stream"}


def auth(server: RunningServer, user: str = "admin") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{server.users[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def payload(tmp_path: Path, size: int, name: str = "payload.bin") -> Path:
    """`size` random bytes in a file (written in 8 MiB blocks)."""
    path = tmp_path / name
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MIB))
            out.write(block)
            left -= len(block)
    return path


def uploader(
    server: RunningServer, path: Path, folder: str = "", *, url: str | None = None, **meta: str
) -> Uploader:
    """A tuspy uploader of `path` into `/dav/<folder>` (or resuming `url`), 4 MiB pieces."""
    client = TusClient(server.url(folder), headers=auth(server))
    metadata = {"filename": path.name, **meta}
    return client.uploader(str(path), url=url, chunk_size=4 * MIB, metadata=metadata)


def moved(url: str, server: RunningServer) -> str:
    """The upload URL `url` on `server` (another instance, or one restarted elsewhere)."""
    return server.base + urlsplit(url).path


def digest_of(server: RunningServer, path: str) -> str:
    sha = hashlib.sha256()
    with server.client().get(server.url(path), stream=True) as got:
        assert got.status_code == 200
        for block in got.iter_content(MIB):
            sha.update(block)
    return sha.hexdigest()


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            sha.update(block)
    return sha.hexdigest()


def offset_of(server: RunningServer, url: str) -> int:
    answer = requests.head(url, headers={**TUS, **auth(server)})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return int(answer.headers["Upload-Offset"])


def drop_mid_body(server: RunningServer, url: str, offset: int, sent: bytes, declared: int) -> None:
    """A PATCH announcing `declared` bytes whose client hangs up after `sent`."""
    head = (
        f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {auth(server)['Authorization']}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + sent)


def wait_offset(server: RunningServer, url: str, wanted: int) -> None:
    deadline = time.monotonic() + 20
    while offset_of(server, url) != wanted:
        assert time.monotonic() < deadline, "what arrived before the hang-up was not kept"
        time.sleep(0.05)


def test_options_of_a_collection_advertise_tus(server: RunningServer) -> None:
    server.client().request("MKCOL", server.url("docs"))
    answer = server.client().options(server.url("docs/"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["Tus-Resumable"] == "1.0.0"
    assert answer.headers["Tus-Version"] == "1.0.0"
    assert set(answer.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "checksum",
        "termination",
        "expiration",
        "concatenation",
    }
    assert answer.headers["Tus-Checksum-Algorithm"] == "sha256,sha1,md5"
    assert int(answer.headers["Tus-Max-Size"]) >= 1 << 40
    assert "Tus-Version" in server.client().options(f"{server.base}/tus/").headers
    assert requests.post(server.url("docs/"), headers=TUS).status_code == 401  # logins first


def _cut_restart_resume(
    request: pytest.FixtureRequest, tmp_path: Path, stack: str, size: int
) -> None:
    """Upload `size` bytes with tuspy, stop at a third, restart the server (same store),
    resume, cut a PATCH mid-body, resume again: the file arrives byte-equal."""
    source = payload(tmp_path, size)
    settings = stack_settings(request, tmp_path / "data", stack)
    first = start_server(settings)
    try:
        up = uploader(first, source)
        up.upload(stop_at=size // 3)
        url = up.url
        assert offset_of(first, url) >= size // 3
    finally:
        first.stop()
    second = start_server(settings, flush_redis=False)
    try:
        url = moved(url, second)
        resumed = uploader(second, source, url=url)
        assert resumed.offset >= size // 3  # nothing stored is sent again
        start = resumed.offset
        with open(source, "rb") as f:
            f.seek(start)
            sent = f.read(3 * MIB + 12345)
        drop_mid_body(second, url, start, sent, declared=8 * MIB)
        wait_offset(second, url, start + len(sent))  # every byte that arrived is kept
        last = uploader(second, source, url=url)
        assert last.offset == start + len(sent)
        last.upload()
        assert digest_of(second, source.name) == file_digest(source)
    finally:
        second.stop()


@pytest.mark.parametrize("stack", STACKS)
def test_an_upload_cut_twice_resumes_after_a_restart(
    request: pytest.FixtureRequest, tmp_path: Path, stack: str
) -> None:
    _cut_restart_resume(request, tmp_path, stack, 20 * MIB + 7)


def _through_another_instance(
    pair: tuple[RunningServer, RunningServer], tmp_path: Path, size: int
) -> None:
    a, b = pair
    source = payload(tmp_path, size)
    up = uploader(a, source)
    up.upload(stop_at=size // 3)
    on_b = uploader(b, source, url=moved(up.url, b))
    assert on_b.offset >= size // 3
    on_b.upload(stop_at=2 * size // 3)
    on_a = uploader(a, source, url=up.url)
    assert on_a.offset >= 2 * size // 3
    on_a.upload()
    assert digest_of(b, source.name) == file_digest(source)


def test_an_upload_resumes_through_another_instance(
    pair: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    _through_another_instance(pair, tmp_path, 20 * MIB + 3)


@pytest.mark.slow
def test_300_mib_cut_twice_resumes_through_another_instance_and_after_a_restart(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Started on A, cut, resumed on B, cut, every instance restarted, resumed: the
    file arrives byte-equal (S3 stack, where instances share a store)."""
    size = 300 * MIB
    source = payload(tmp_path, size)
    settings = stack_settings(request, tmp_path / "data", "full")
    with two_instances(settings) as (a, b):
        up = uploader(a, source)
        up.upload(stop_at=size // 3)
        on_b = uploader(b, source, url=moved(up.url, b))
        assert on_b.offset >= size // 3
        on_b.upload(stop_at=2 * size // 3)
    restarted = start_server(settings, flush_redis=False)
    try:
        last = uploader(restarted, source, url=moved(up.url, restarted))
        assert last.offset >= 2 * size // 3  # nothing stored is sent again
        last.upload()
        assert digest_of(restarted, source.name) == file_digest(source)
    finally:
        restarted.stop()


def test_a_piece_with_a_wrong_checksum_is_460_and_dropped(
    server: RunningServer, tmp_path: Path
) -> None:
    source = payload(tmp_path, 5 * MIB + 1)
    data = source.read_bytes()
    up = uploader(server, source)
    up.upload_chunk()  # one 4 MiB piece
    url = up.url
    wrong = base64.b64encode(hashlib.sha1(b"other bytes").digest()).decode()
    headers = {**PIECE, **auth(server), "Upload-Offset": str(4 * MIB)}
    answer = requests.patch(
        url, data=data[4 * MIB :], headers={**headers, "Upload-Checksum": f"sha1 {wrong}"}
    )
    assert answer.status_code == 460 and "request id" in answer.text
    assert offset_of(server, url) == 4 * MIB  # the piece was dropped
    unknown = requests.patch(url, data=b"x", headers={**headers, "Upload-Checksum": "crc32 AAAA"})
    assert unknown.status_code == 400
    resumed = uploader(server, source, url=url)
    resumed.upload_checksum = True  # tuspy sends "sha1 <base64>" with each piece
    resumed.upload()
    assert server.client().get(server.url(source.name)).content == data


def test_a_file_unlike_its_checksum_metadata_is_460_and_not_committed(
    server: RunningServer, tmp_path: Path
) -> None:
    source = payload(tmp_path, 2 * MIB)
    wrong = uploader(server, source, checksum="sha256 " + "0" * 64)
    with pytest.raises(Exception) as refused:
        wrong.upload()
    assert getattr(refused.value, "status_code", None) == 460
    assert server.client().head(server.url(source.name)).status_code == 404
    right = hashlib.sha256(source.read_bytes()).hexdigest()
    uploader(server, source, checksum=f"sha256 {right}", mtime="1700000000.5").upload()
    head = server.client().head(server.url(source.name))
    assert head.status_code == 200
    assert head.headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"


def test_an_upload_over_quota_is_507_at_its_creation(server: RunningServer, tmp_path: Path) -> None:
    server.services.catalog.users.set_quota("admin", 3 * MIB)
    source = payload(tmp_path, 4 * MIB)
    with pytest.raises(TusCommunicationError) as refused:
        uploader(server, source).upload()
    assert refused.value.status_code == 507
    assert server.stored_bytes() == 0  # refused before any byte


def test_an_overwrite_keeps_a_version_and_makes_one_feed_entry(
    server: RunningServer, tmp_path: Path
) -> None:
    client = server.client()
    assert client.put(server.url("doc.bin"), data=b"first version").status_code == 201
    cursor = client.get(f"{server.base}/api/v1/changes/latest").json()["cursor"]
    versions = f"{server.base}/api/v1/versions"
    assert client.get(versions, params={"path": "/doc.bin"}).json()["versions"] == []
    source = payload(tmp_path, 6 * MIB, "doc.bin")
    uploader(server, source).upload()
    assert client.get(server.url("doc.bin")).content == source.read_bytes()
    kept = client.get(versions, params={"path": "/doc.bin"}).json()["versions"]
    assert [v["size"] for v in kept] == [13]  # the replaced content, kept as history
    feed = client.get(f"{server.base}/api/v1/changes", params={"cursor": cursor}).json()
    assert [(c["op"], c["path"]) for c in feed["changes"]] == [("modified", "/doc.bin")]


def test_an_empty_file_is_committed_at_its_creation(server: RunningServer, tmp_path: Path) -> None:
    source = payload(tmp_path, 0, "empty.txt")
    uploader(server, source).upload()  # tuspy sends only the POST for an empty file
    got = server.client().get(server.url("empty.txt"))
    assert got.status_code == 200 and got.content == b""


def test_creation_with_upload_and_parallel_parts(server: RunningServer) -> None:
    headers = {**PIECE, **auth(server)}
    name = base64.b64encode(b"joined.bin").decode()
    parts, urls = [os.urandom(MIB + n) for n in range(3)], []
    for part in parts:  # each a partial upload sent with its creation
        made = requests.post(
            server.dav,
            data=part,
            headers={**headers, "Upload-Concat": "partial", "Upload-Length": str(len(part))},
        )
        assert made.status_code == 201, made.text
        assert made.headers["Upload-Offset"] == str(len(part))
        urls.append(made.headers["Location"])
    final = requests.post(
        server.dav,
        headers={
            **TUS,
            **auth(server),
            "Upload-Concat": "final;" + " ".join([server.base + urls[0], *urls[1:]]),
            "Upload-Metadata": f"filename {name}",
        },
    )
    assert final.status_code == 201, final.text
    assert final.headers["Upload-Offset"] == str(sum(map(len, parts)))
    assert server.client().get(server.url("joined.bin")).content == b"".join(parts)
    gone = requests.head(server.base + urls[0], headers={**TUS, **auth(server)})
    assert gone.status_code == 404  # the partials were consumed


def test_an_upload_is_its_account_s_only(server: RunningServer, tmp_path: Path) -> None:
    server.add_user("bob", "bob-pass")
    source = payload(tmp_path, 5 * MIB)
    up = uploader(server, source)
    up.upload_chunk()
    bob = {**TUS, **auth(server, "bob")}
    assert requests.head(up.url, headers=bob).status_code == 404
    assert requests.delete(up.url, headers=bob).status_code == 404
    patched = requests.patch(up.url, data=b"x", headers={**PIECE, **bob, "Upload-Offset": "0"})
    assert patched.status_code == 404
    assert requests.head(up.url, headers=TUS).status_code == 401
    assert requests.delete(up.url, headers={**TUS, **auth(server)}).status_code == 204
    assert requests.head(up.url, headers={**TUS, **auth(server)}).status_code == 404


LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>tus</D:owner></D:lockinfo>"""


def test_a_locked_file_takes_an_upload_only_with_its_token(
    server: RunningServer, tmp_path: Path
) -> None:
    client = server.client()
    assert client.put(server.url("locked.bin"), data=b"v1").status_code == 201
    locked = client.request("LOCK", server.url("locked.bin"), data=LOCK_BODY)
    assert locked.status_code == 200
    token = locked.headers["Lock-Token"]
    source = payload(tmp_path, MIB, "locked.bin")
    with pytest.raises(TusCommunicationError) as refused:
        uploader(server, source).upload()
    assert refused.value.status_code == 423
    with_token = TusClient(server.dav, headers={**auth(server), "If": f"({token})"})
    up = with_token.uploader(str(source), chunk_size=4 * MIB, metadata={"filename": "locked.bin"})
    up.upload()
    assert client.get(server.url("locked.bin")).content == source.read_bytes()
