"""HTTP and WebDAV behaviour on both stacks: ranges, conditionals, methods, properties."""

from __future__ import annotations

import random
import time

import pytest
import requests

from tests.support.dav import DAV, content_etag, propfind, put
from tests.support.servers import RunningServer


def _payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _extent_bounds(server: RunningServer, name: str) -> list[int]:
    catalog = server.services.catalog
    home = catalog.users.get("admin")
    assert home is not None
    node = catalog.tree.resolve(home.home_id, [name])
    assert node is not None and node.content_id is not None
    return [e.offset for e in catalog.contents.extents(node.content_id)]


def test_ranges_at_chunk_boundaries(server: RunningServer) -> None:
    body = _payload(6 * 1024 * 1024)
    client = server.client()
    put(client, server.url("r.bin"), body)
    bounds = _extent_bounds(server, "r.bin")
    assert len(bounds) > 2, "the file should span several chunks"
    for cut in bounds[1:]:
        for start, end in ((cut - 1, cut), (cut, cut), (cut - 10, cut + 10), (cut, cut + 100000)):
            got = client.get(server.url("r.bin"), headers={"Range": f"bytes={start}-{end}"})
            assert got.status_code == 206
            assert got.content == body[start : end + 1]
            last = min(end, len(body) - 1)
            assert got.headers["Content-Range"] == f"bytes {start}-{last}/{len(body)}"
    suffix = client.get(server.url("r.bin"), headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.content == body[-5:]
    unsatisfiable = client.get(server.url("r.bin"), headers={"Range": f"bytes={len(body)}-"})
    assert unsatisfiable.status_code == 416


def test_multiple_ranges_answer_multipart(server: RunningServer) -> None:
    body = _payload(3 * 1024 * 1024, seed=3)
    client = server.client()
    put(client, server.url("m.bin"), body)
    got = client.get(server.url("m.bin"), headers={"Range": "bytes=0-9,1048570-1048590,-4"})
    assert got.status_code == 206
    assert got.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    boundary = got.headers["Content-Type"].split("boundary=")[1].encode()
    parts = got.content.split(b"--" + boundary)[1:-1]
    payloads = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts]
    assert payloads == [body[0:10], body[1048570:1048591], body[-4:]]
    assert int(got.headers["Content-Length"]) == len(got.content)


def test_zero_byte_file(server: RunningServer) -> None:
    client = server.client()
    put(client, server.url("empty"), b"")
    got = client.get(server.url("empty"))
    assert got.status_code == 200 and got.content == b""
    assert got.headers["ETag"] == content_etag(b"")
    props = propfind(client, server.url("empty"), depth="0")
    assert next(iter(props.values()))[f"{DAV}getcontentlength"] == "0"


def test_strong_etag_and_conditionals(server: RunningServer) -> None:
    body = b"hello conditional world"
    client = server.client()
    put(client, server.url("c.txt"), body)
    got = client.get(server.url("c.txt"))
    etag = got.headers["ETag"]
    assert etag == content_etag(body) and not etag.startswith("W/")
    assert "Last-Modified" in got.headers
    assert client.get(server.url("c.txt"), headers={"If-None-Match": etag}).status_code == 304
    since = got.headers["Last-Modified"]
    assert client.get(server.url("c.txt"), headers={"If-Modified-Since": since}).status_code == 304
    assert client.get(server.url("c.txt"), headers={"If-Match": '"nope"'}).status_code == 412
    stale = client.put(server.url("c.txt"), data=b"x", headers={"If-Match": '"nope"'})
    assert stale.status_code == 412
    assert client.get(server.url("c.txt")).content == body


def test_options_advertises_class_2(server: RunningServer) -> None:
    response = server.client().options(server.url(""))
    assert response.status_code == 200
    assert {"1", "2"} <= {v.strip() for v in response.headers["DAV"].split(",")}


def test_x_oc_mtime_is_kept(server: RunningServer) -> None:
    client = server.client()
    put(client, server.url("t.txt"), b"mtime", **{"X-OC-Mtime": "1500000000"})
    props = propfind(client, server.url("t.txt"), depth="0")
    modified = next(iter(props.values()))[f"{DAV}getlastmodified"]
    assert modified == "Fri, 14 Jul 2017 02:40:00 GMT"


def test_quota_properties_are_exact(server: RunningServer) -> None:
    client = server.client()
    put(client, server.url("q1"), b"a" * 1000)
    put(client, server.url("q2"), b"b" * 234)
    root = propfind(client, server.url(""), depth="0")
    props = next(iter(root.values()))
    assert props[f"{DAV}quota-used-bytes"] == "1234"
    assert int(props[f"{DAV}quota-available-bytes"]) > 0


def test_dead_properties_persist(server: RunningServer) -> None:
    client = server.client()
    put(client, server.url("p.txt"), b"props")
    body = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">'
        "<D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>"
    )
    assert client.request("PROPPATCH", server.url("p.txt"), data=body).status_code == 207
    props = propfind(client, server.url("p.txt"), depth="0")
    assert next(iter(props.values()))["{urn:z}color"] == "blue"
    client.request("MOVE", server.url("p.txt"), headers={"Destination": server.url("p2.txt")})
    props = propfind(client, server.url("p2.txt"), depth="0")
    assert next(iter(props.values()))["{urn:z}color"] == "blue"


def test_copy_stores_no_bytes_and_move_is_one_row(server: RunningServer) -> None:
    client = server.client()
    assert client.request("MKCOL", server.url("tree")).status_code == 201
    assert client.request("MKCOL", server.url("tree/sub")).status_code == 201
    big = _payload(8 * 1024 * 1024, seed=11)
    put(client, server.url("tree/sub/big.bin"), big)
    before = server.stored_bytes()
    started = time.perf_counter()
    copied = client.request(
        "COPY", server.url("tree/sub/big.bin"), headers={"Destination": server.url("copy.bin")}
    )
    assert copied.status_code == 201
    assert time.perf_counter() - started < 5
    assert server.stored_bytes() == before
    moved = client.request("MOVE", server.url("tree"), headers={"Destination": server.url("t2")})
    assert moved.status_code == 201
    assert client.get(server.url("t2/sub/big.bin")).content == big
    assert client.get(server.url("copy.bin")).content == big
    assert client.get(server.url("tree/sub/big.bin")).status_code == 404


def test_finder_style_chunked_put(server: RunningServer) -> None:
    body = _payload(3 * 1024 * 1024 + 17, seed=5)

    def blocks() -> object:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    client = server.client()
    response = client.put(
        server.url("chunked.bin"),
        data=blocks(),  # type: ignore[arg-type]
        headers={"X-Expected-Entity-Length": str(len(body))},
    )
    assert response.status_code == 201
    assert client.get(server.url("chunked.bin")).content == body


def test_users_see_only_their_home(server: RunningServer) -> None:
    server.add_user("bob", "bob-pass")
    put(server.client(), server.url("mine.txt"), b"admin's")
    bob = server.client("bob")
    assert bob.get(server.url("mine.txt")).status_code == 404
    put(bob, server.url("mine.txt"), b"bob's")
    assert server.client().get(server.url("mine.txt")).content == b"admin's"
    anonymous = requests.get(server.url("mine.txt"))
    assert anonymous.status_code == 401


@pytest.mark.parametrize("method", ["DELETE", "MOVE", "COPY"])
def test_the_home_itself_cannot_be_deleted_moved_or_copied(
    server: RunningServer, method: str
) -> None:
    client = server.client()
    assert client.put(server.url("kept.txt"), data=b"kept").status_code == 201
    response = client.request(method, server.dav, headers={"Destination": server.url("elsewhere")})
    assert response.status_code == 403
    assert client.get(server.url("kept.txt")).content == b"kept"
