"""Chunked uploads at /remote.php/dav/uploads/<user>/<transfer>/ (docs/nextcloud.md,
"Chunked uploads"), over raw HTTP on both stacks: each chunk naming the clients use,
resume by PROPFIND, abort by DELETE (GC frees the chunks), the MOVE's checks (total
length, checksum, If/etag, lock, quota), an overwrite's version and feed entry,
another account, a commit finished by a second instance."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
import requests

from providers.gc import collect_garbage
from tests.support.servers import RunningServer

MIB = 1024 * 1024
UPLOADS = "/remote.php/dav/uploads/admin"
FILES = "/remote.php/dav/files/admin"
LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>nc</D:owner></D:lockinfo>"""


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def nc_names(chunks: list[bytes]) -> list[str]:
    return [f"{i:016d}" for i in range(len(chunks))]


def oc_names(chunks: list[bytes]) -> list[str]:
    offsets = [sum(len(c) for c in chunks[:i]) for i in range(len(chunks))]
    return [f"{o:016d}" for o in offsets]


def rclone_names(chunks: list[bytes]) -> list[str]:
    names, start = [], 0
    for chunk in chunks:
        names.append(f"{start:015d}-{start + len(chunk) - 1:015d}")
        start += len(chunk)
    return names


def v2_names(chunks: list[bytes]) -> list[str]:
    return [str(i + 1) for i in range(len(chunks))]


class Upload:
    """One upload folder, driven as a client would."""

    def __init__(self, server: RunningServer, transfer: str, user: str = "admin") -> None:
        self.server, self.user = server, user
        self.client = server.client(user)
        self.url = f"{server.base}{UPLOADS}/{transfer}"

    def mkcol(self, length: int | None = None, **headers: str) -> requests.Response:
        if length is not None:
            headers["OC-Total-Length"] = str(length)
        return self.client.request("MKCOL", self.url, headers=headers)

    def put(self, name: str, data: bytes, **headers: str) -> requests.Response:
        return self.client.put(f"{self.url}/{name}", data=data, headers=headers)

    def move(self, path: str, length: int | None = None, **headers: str) -> requests.Response:
        headers.setdefault("Destination", f"{self.server.base}{FILES}/{path}")
        if length is not None:
            headers["OC-Total-Length"] = str(length)
        return self.client.request("MOVE", f"{self.url}/.file", headers=headers)

    def listing(self, depth: str = "1") -> dict[str, int | None]:
        got = self.client.request("PROPFIND", self.url, headers={"Depth": depth})
        assert got.status_code == 207, got.text
        assert got.headers["Content-Type"] == "application/xml; charset=utf-8"
        found: dict[str, int | None] = {}
        for response in re.findall(r"<d:response>(.*?)</d:response>", got.text):
            href = re.search(r"<d:href>(.*?)</d:href>", response)
            size = re.search(r"<d:getcontentlength>(\d+)<", response)
            assert href is not None and href.group(1).startswith(UPLOADS)
            found[href.group(1)] = int(size.group(1)) if size else None
        return found

    def send(self, data: bytes, names: list[str], chunks: list[bytes]) -> None:
        assert self.mkcol(len(data)).status_code == 201
        for name, chunk in zip(names, chunks, strict=True):
            assert self.put(name, chunk).status_code == 201


def read(server: RunningServer, path: str) -> bytes:
    got = server.client().get(server.url(path))
    assert got.status_code == 200
    return got.content


@pytest.mark.parametrize("naming", [nc_names, oc_names, rclone_names, v2_names])
def test_each_naming_commits_the_file(server: RunningServer, naming: object) -> None:
    data = os.urandom(5 * MIB + 7)
    chunks = pieces(data, 2 * MIB)
    names = naming(chunks)  # type: ignore[operator]
    upload = Upload(server, f"t-{names[0][:3]}-{len(names[-1])}")
    extra = {"Destination": f"{server.base}{FILES}/n.bin"} if naming is v2_names else {}
    assert upload.mkcol(len(data), **extra).status_code == 201
    for name, chunk in reversed(list(zip(names, chunks, strict=True))):  # any order
        assert upload.put(name, chunk).status_code == 201
    sha1 = hashlib.sha1(data).hexdigest()
    done = upload.move(
        "n.bin", len(data), **{"OC-Checksum": f"SHA1:{sha1}", "X-OC-Mtime": "1700000000"}
    )
    assert done.status_code == 201, done.text
    assert done.headers["OC-FileId"] and done.headers["OC-ETag"] == done.headers["ETag"]
    assert done.headers["X-OC-MTime"] == "accepted"
    assert read(server, "n.bin") == data
    head = server.client().head(server.url("n.bin"))
    assert head.headers["OC-Checksum"] == f"SHA1:{sha1}"
    assert head.headers["ETag"] == done.headers["ETag"]
    assert head.headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert upload.client.request("PROPFIND", upload.url).status_code == 404  # retired


def test_propfind_lists_chunks_to_resume(server: RunningServer) -> None:
    data = os.urandom(3 * MIB)
    chunks = pieces(data, MIB)
    upload = Upload(server, "resume")
    assert upload.mkcol(len(data)).status_code == 201
    for i in (0, 2):  # chunk 1 is missing: the connection broke
        assert upload.put(f"{i:016d}", chunks[i]).status_code == 201
    listing = upload.listing()
    base = f"{UPLOADS}/resume/"
    assert listing == {base: None, f"{base}{0:016d}": MIB, f"{base}{2:016d}": MIB}
    assert upload.listing("0") == {base: None}
    assert upload.move("r.bin", len(data)).status_code == 400  # a chunk is missing
    assert upload.put(f"{1:016d}", chunks[1]).status_code == 201
    assert upload.move("r.bin", len(data)).status_code == 201
    assert read(server, "r.bin") == data


def ending_in_a_kept_chunk(server: RunningServer, size: int) -> bytes:
    """`size` random bytes whose last chunk is small enough to be kept in the catalog
    (design invariant 27): stored partly as objects and partly in the catalog."""
    chunker = server.services.files.chunker
    limit = server.settings.inline_max_bytes
    for _ in range(1000):  # about one draw in eighteen ends so with the default chunker
        data = os.urandom(size)
        last = 0
        for chunk in chunker.split([data]):  # each view is valid until the next
            last = len(chunk)
        if last <= limit:
            return data
    raise AssertionError(f"no {size}-byte draw ended in a chunk of {limit} bytes or less")


def test_delete_aborts_and_gc_frees_the_chunks(server: RunningServer) -> None:
    upload = Upload(server, "abort")
    assert upload.mkcol(2 * MIB).status_code == 201
    data = ending_in_a_kept_chunk(server, MIB)
    assert upload.put(f"{0:016d}", data).status_code == 201
    services = server.services
    prefix = services.settings.blob_prefix
    report = collect_garbage(
        services.catalog, services.blobs, grace=0, apply=True, key_prefix=prefix
    )
    assert report.chunks == 0  # an upload in progress keeps its chunks
    assert server.blob_bytes() < MIB <= server.stored_bytes()
    assert upload.client.delete(upload.url).status_code == 204
    assert upload.client.request("PROPFIND", upload.url).status_code == 404
    assert upload.put(f"{1:016d}", b"late").status_code == 404
    collect_garbage(services.catalog, services.blobs, grace=0, apply=True, key_prefix=prefix)
    assert server.stored_bytes() == 0


def test_an_abandoned_upload_expires_with_its_chunks(server: RunningServer) -> None:
    upload = Upload(server, "abandoned")
    upload.send(b"x" * 1000, ["0000000000000000"], [b"x" * 1000])
    services = server.services
    report = collect_garbage(
        services.catalog,
        services.blobs,
        grace=0,
        apply=True,
        key_prefix=services.settings.blob_prefix,
        upload_ttl=0,
    )
    assert report.uploads == 1
    assert server.stored_bytes() == 0


def test_a_wrong_total_length_or_checksum_commits_nothing(server: RunningServer) -> None:
    data = os.urandom(MIB)
    upload = Upload(server, "checks")
    upload.send(data, ["0000000000000000"], [data])
    assert upload.move("c.bin", len(data) + 1).status_code == 400
    wrong = {"OC-Checksum": "SHA1:" + "0" * 40}
    refused = upload.move("c.bin", len(data), **wrong)
    assert refused.status_code == 400 and "request id" in refused.text
    assert server.client().get(server.url("c.bin")).status_code == 404
    legacy = {"Destination": "/remote.php/webdav/c.bin", "OC-Total-File-Length": str(len(data))}
    assert upload.move("c.bin", **legacy).status_code == 201
    assert read(server, "c.bin") == data


def test_if_etag_and_lock_guard_the_destination(server: RunningServer) -> None:
    client = server.client()
    assert client.put(server.url("g.bin"), data=b"v1").status_code == 201
    etag = client.head(server.url("g.bin")).headers["ETag"].strip('"')
    upload = Upload(server, "guarded")
    upload.send(b"v2", ["0000000000000000"], [b"v2"])
    dest = f"{FILES}/g.bin"
    stale = upload.move("g.bin", 2, If=f'<{dest}> (["{"f" * 64}"])')
    assert stale.status_code == 412
    assert upload.move("g.bin", 2, **{"If-Match": '"nope"'}).status_code == 412
    locked = client.request("LOCK", server.url("g.bin"), data=LOCK_BODY)
    token = locked.headers["Lock-Token"]
    assert upload.move("g.bin", 2, If=f'<{dest}> (["{etag}"])').status_code == 423
    both = f'<{dest}> ({token} ["{etag}"])'
    assert upload.move("g.bin", 2, If=both).status_code == 204
    assert read(server, "g.bin") == b"v2"


def test_quota_is_checked_before_the_chunks_and_at_the_commit(server: RunningServer) -> None:
    server.services.catalog.users.set_quota("admin", 3 * MIB)
    upload = Upload(server, "big")
    assert upload.mkcol(4 * MIB).status_code == 507
    assert upload.mkcol().status_code == 201
    assert upload.put("0000000000000000", os.urandom(2 * MIB)).status_code == 201
    assert upload.put("0000000000000001", os.urandom(2 * MIB)).status_code == 507
    assert server.client().put(server.url("other.bin"), data=os.urandom(2 * MIB)).status_code == 201
    assert upload.move("q.bin").status_code == 507  # binding at the commit
    assert server.client().get(server.url("q.bin")).status_code == 404


def test_an_overwrite_keeps_a_version_and_makes_one_feed_entry(server: RunningServer) -> None:
    client = server.client()
    assert client.put(server.url("doc.bin"), data=b"first version").status_code == 201
    cursor = client.get(f"{server.base}/api/v1/changes/latest").json()["cursor"]
    data = os.urandom(3 * MIB)
    upload = Upload(server, "over")
    chunks = pieces(data, MIB)
    upload.send(data, nc_names(chunks), chunks)
    assert upload.move("doc.bin", len(data)).status_code == 204
    assert read(server, "doc.bin") == data
    versions = client.get(f"{server.base}/api/v1/versions", params={"path": "/doc.bin"}).json()
    assert [v["size"] for v in versions["versions"]] == [13]
    feed = client.get(f"{server.base}/api/v1/changes", params={"cursor": cursor}).json()
    assert [(c["op"], c["path"]) for c in feed["changes"]] == [("modified", "/doc.bin")]


def test_another_account_s_upload_folder_is_404(server: RunningServer) -> None:
    server.add_user("bob", "bob-password-1")
    upload = Upload(server, "mine")
    upload.send(b"abc", ["0000000000000000"], [b"abc"])
    bob = server.client("bob")
    for method in ("PROPFIND", "DELETE", "MKCOL"):
        assert bob.request(method, upload.url).status_code == 404
    assert bob.put(f"{upload.url}/0000000000000001", data=b"x").status_code == 404
    bobs = Upload(server, "mine", user="bob")  # bob's own folder of that name
    assert bobs.client.request("PROPFIND", bobs.url.replace("/admin/", "/bob/")).status_code == 404


def test_unknown_requests_get_clean_errors(server: RunningServer) -> None:
    upload = Upload(server, "odd")
    assert upload.mkcol().status_code == 201
    assert upload.mkcol().status_code == 405  # exists
    assert Upload(server, "x" * 256).mkcol().status_code == 400
    assert upload.client.get(upload.url).status_code == 405
    assert upload.put("not-a-chunk", b"x").status_code == 400
    assert upload.client.get(f"{upload.url}/0000000000000000").status_code == 405
    assert upload.put("../escape", b"x").status_code == 405  # a PUT of an upload folder
    assert Upload(server, "none").put("0000000000000000", b"x").status_code == 404
    bad = upload.move("x.bin", Destination="/elsewhere/x.bin")
    assert bad.status_code == 400 and "request id" in bad.text
    assert upload.move("no/such/dir/x.bin").status_code == 409
    assert server.client().request("MKCOL", server.url("dir")).status_code == 201
    v2 = Upload(server, "v2-onto-a-folder")
    assert v2.mkcol(Destination=f"{server.base}{FILES}/dir").status_code == 409


def test_the_commit_finishes_on_another_instance(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    data = os.urandom(4 * MIB + 5)
    chunks = pieces(data, MIB)
    names = oc_names(chunks)
    first, second = Upload(a, "spread"), Upload(b, "spread")
    assert first.mkcol(len(data)).status_code == 201
    for i, (name, chunk) in enumerate(zip(names, chunks, strict=True)):
        assert (first if i % 2 else second).put(name, chunk).status_code == 201
    assert len(first.listing()) == len(chunks) + 1
    sha1 = hashlib.sha1(data).hexdigest()
    done = second.move("spread.bin", len(data), **{"OC-Checksum": f"SHA1:{sha1}"})
    assert done.status_code == 201, done.text
    assert read(a, "spread.bin") == data
