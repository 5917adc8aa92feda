"""Quota enforcement over HTTP on both stacks.

A PUT announcing more than its owner may still store gets 507 before its body is read
(the connection is then closed, not reused with the body as the next request); a
streamed body crossing the quota stops with 507 and commits nothing; overwrites count
the difference; COPY charges the destination's owner; concurrent uploads never take
the committed bytes past the quota; the RFC 4331 quota props are exact after each.
"""

from __future__ import annotations

import base64
import random
import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from tests.support.dav import DAV, propfind, put
from tests.support.servers import RunningServer

MIB = 1024 * 1024
ANSWER_TIMEOUT = 10.0


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _set_quota(server: RunningServer, quota: int | None, user: str = "admin") -> None:
    server.services.catalog.users.set_quota(user, quota)


def _used(server: RunningServer, user: str = "admin") -> int:
    record = server.services.catalog.users.get(user)
    assert record is not None
    return record.used_bytes


def _file_sizes(server: RunningServer, user: str = "admin") -> int:
    """The sizes of the files in the user's home (top level), summed from the tree."""
    record = server.services.catalog.users.get(user)
    assert record is not None
    return sum(n.size for n in server.services.catalog.tree.children(record.home_id))


def _assert_quota_props(server: RunningServer, used: int, quota: int) -> None:
    """PROPFIND of the home answers exactly `used` and `quota - used`, as does the
    catalog, and `used` is what the files in the home add up to."""
    props = next(iter(propfind(server.client(), server.dav, depth="0").values()))
    assert int(props[f"{DAV}quota-used-bytes"]) == used
    assert int(props[f"{DAV}quota-available-bytes"]) == quota - used
    assert _used(server) == used == _file_sizes(server)


class _LazyBody:
    """A PUT body of `size` zero bytes made as the client reads it (a file object of
    known length, so `requests` sends a Content-Length); counts the bytes taken."""

    def __init__(self, size: int) -> None:
        self.size, self.taken = size, 0

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.taken if n < 0 else min(n, self.size - self.taken)
        self.taken += n
        return bytes(n)


class _CountingBlocks:
    """A chunked PUT body: `count` random blocks of `size` bytes, counting those taken."""

    def __init__(self, count: int, size: int, seed: int) -> None:
        self.count, self.size, self.taken = count, size, 0
        self._rng = random.Random(seed)

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            self.taken += 1
            yield self._rng.randbytes(self.size)


def _send_put_headers(server: RunningServer, name: str, headers: dict[str, str]) -> socket.socket:
    """Open a connection and send a PUT's request head only, no body byte."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT)
    token = base64.b64encode(f"admin:{server.users['admin']}".encode()).decode()
    head = [f"PUT /dav/{name} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Basic {token}"]
    head += [f"{key}: {value}" for key, value in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it waits (for the body)."""
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except TimeoutError:
        pytest.fail(f"no answer and no close before the body was sent: {received[:200]!r}")
    finally:
        sock.close()
    return received


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Length": str(64 * MIB)},
        {"Transfer-Encoding": "chunked", "X-Expected-Entity-Length": str(64 * MIB)},
    ],
    ids=["content-length", "finder-expected-length"],
)
def test_announced_body_over_quota_gets_507_before_it_is_sent(
    server: RunningServer, headers: dict[str, str]
) -> None:
    """The client sends the request head and no body: 507 must come anyway, and the
    server must close the connection (the unsent body must not be awaited or parsed)."""
    put(server.client(), server.url("old.bin"), _payload(MIB, seed=1))
    _set_quota(server, 2 * MIB)
    stored_before = server.stored_bytes()
    answer = _read_until_closed(_send_put_headers(server, "big.bin", headers))
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 507"), answer[:300]
    assert b"\r\nconnection: close" in head
    assert server.stored_bytes() == stored_before
    assert server.client().get(server.url("big.bin")).status_code == 404
    _assert_quota_props(server, MIB, 2 * MIB)
    put(server.client(), server.url("fits.bin"), _payload(MIB, seed=2))  # a new connection
    _assert_quota_props(server, 2 * MIB, 2 * MIB)


def test_client_sending_a_body_over_quota_gets_507_while_still_sending(
    server: RunningServer,
) -> None:
    _set_quota(server, MIB)
    body = _LazyBody(256 * MIB)  # socket buffers take a few MiB before the close
    stored_before = server.stored_bytes()
    response = server.client().put(server.url("huge.bin"), data=body)  # type: ignore[arg-type]
    assert response.status_code == 507
    assert body.taken < 64 * MIB, "the server read the body it had already refused"
    assert server.stored_bytes() == stored_before
    _assert_quota_props(server, 0, MIB)
    assert server.client().request("PROPFIND", server.dav, headers={"Depth": "0"}).ok


@pytest.mark.parametrize("announced", [False, True], ids=["chunked", "chunked-short-announce"])
def test_streamed_upload_crossing_the_quota_stops_and_commits_nothing(
    server: RunningServer, announced: bool
) -> None:
    """A chunked body with no usable length: the writer's limit (quota left plus the
    replaced file's size: 3 MiB here) stops it as soon as it passes, with 507."""
    old = _payload(MIB, seed=3)
    client = server.client()
    put(client, server.url("f.bin"), old)
    _set_quota(server, 3 * MIB)
    stored_before = server.stored_bytes()
    body = _CountingBlocks(count=64, size=MIB, seed=4)
    # a Finder-style announce that lies low passes the early check, not the limit
    headers = {"X-Expected-Entity-Length": str(MIB)} if announced else {}
    response = client.put(server.url("f.bin"), data=body, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 507
    assert body.taken < 32, "the server kept reading a body past the quota"
    assert server.stored_bytes() - stored_before <= 3 * MIB  # nothing stored past the limit
    assert server.client().get(server.url("f.bin")).content == old
    _assert_quota_props(server, MIB, 3 * MIB)


def test_overwrite_needs_only_the_difference(server: RunningServer) -> None:
    client = server.client()
    put(client, server.url("f.bin"), _payload(5 * MIB, seed=5))
    _set_quota(server, 6 * MIB - 1)  # 1 MiB - 1 byte free
    six = _payload(6 * MIB, seed=6)
    assert client.put(server.url("f.bin"), data=six).status_code == 507
    assert len(client.get(server.url("f.bin")).content) == 5 * MIB
    _assert_quota_props(server, 5 * MIB, 6 * MIB - 1)
    _set_quota(server, 6 * MIB)  # 1 MiB free: replacing 5 MiB by 6 MiB fits
    assert client.put(server.url("f.bin"), data=six).status_code == 204
    assert client.get(server.url("f.bin")).content == six
    _assert_quota_props(server, 6 * MIB, 6 * MIB)
    assert client.put(server.url("one"), data=b"x").status_code == 507  # full
    assert client.put(server.url("f.bin"), data=b"small").status_code == 204  # shrinking
    _assert_quota_props(server, 5, 6 * MIB)


def test_copy_over_quota_gets_507_and_copies_nothing(server: RunningServer) -> None:
    client = server.client()
    assert client.request("MKCOL", server.url("dir")).status_code == 201
    put(client, server.url("dir/a.bin"), _payload(2 * MIB, seed=7))
    put(client, server.url("dir/b.bin"), _payload(MIB, seed=8))
    _set_quota(server, 5 * MIB)
    copied = client.request("COPY", server.url("dir"), headers={"Destination": server.url("d2")})
    assert copied.status_code == 507
    assert client.request("PROPFIND", server.url("d2"), headers={"Depth": "0"}).status_code == 404
    assert _used(server) == 3 * MIB
    _set_quota(server, 6 * MIB)
    copied = client.request("COPY", server.url("dir"), headers={"Destination": server.url("d2")})
    assert copied.status_code == 201
    assert _used(server) == 6 * MIB
    # onto an existing file: only the difference counts (2 MiB replaces 1 MiB: +1 MiB)
    onto = {"Destination": server.url("dir/b.bin")}
    assert client.request("COPY", server.url("dir/a.bin"), headers=onto).status_code == 507
    assert len(client.get(server.url("dir/b.bin")).content) == MIB
    _set_quota(server, 7 * MIB)
    assert client.request("COPY", server.url("dir/a.bin"), headers=onto).status_code == 204
    props = next(iter(propfind(client, server.dav, depth="0").values()))
    assert int(props[f"{DAV}quota-used-bytes"]) == _used(server) == 7 * MIB
    assert int(props[f"{DAV}quota-available-bytes"]) == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_concurrent_uploads_never_pass_the_quota(server: RunningServer, chunked: bool) -> None:
    """Quota 10 MiB, four 4 MiB PUTs at once: exactly two fit; the others get 507."""
    _set_quota(server, 10 * MIB)
    bodies = [_payload(4 * MIB, seed=10 + i) for i in range(4)]
    start = threading.Barrier(len(bodies))
    statuses: dict[int, int] = {}

    def upload(i: int) -> None:
        client = server.client()
        data: object = bodies[i]
        if chunked:
            data = (bodies[i][at : at + MIB] for at in range(0, 4 * MIB, MIB))
        start.wait()
        try:
            statuses[i] = client.put(server.url(f"c{i}.bin"), data=data).status_code  # type: ignore[arg-type]
        except requests.ConnectionError:
            statuses[i] = -1

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses.values()) == [201, 201, 507, 507], statuses
    client = server.client()
    for i, status in statuses.items():
        got = client.get(server.url(f"c{i}.bin"))
        if status == 201:
            assert got.status_code == 200 and got.content == bodies[i]
        else:
            assert got.status_code == 404
    _assert_quota_props(server, 8 * MIB, 10 * MIB)


def test_no_quota_is_unlimited(server: RunningServer) -> None:
    client = server.client()
    _set_quota(server, MIB)
    assert client.put(server.url("f.bin"), data=_payload(2 * MIB, seed=20)).status_code == 507
    _set_quota(server, None)
    body = _payload(3 * MIB, seed=21)
    put(client, server.url("f.bin"), body)
    blocks = (body[at : at + MIB] for at in range(0, len(body), MIB))
    assert client.put(server.url("g.bin"), data=blocks).status_code == 201  # chunked
    assert client.get(server.url("g.bin")).content == body
    props = next(iter(propfind(client, server.dav, depth="0").values()))
    assert int(props[f"{DAV}quota-used-bytes"]) == _used(server) == 6 * MIB == _file_sizes(server)
    available = int(props[f"{DAV}quota-available-bytes"])
    if server.settings.uses_s3:
        assert available == server.settings.s3_capacity_bytes
    else:
        assert available > 0


def test_history_counts_and_is_expired_oldest_first(server: RunningServer) -> None:
    """Old versions cost what they alone keep and the trash its files' sizes, reported
    apart by `/api/v1/me` and the davserver quota properties; a write that would not
    fit expires the oldest history first (design invariant 19)."""
    client = server.client()
    first, second = _payload(2 * MIB, seed=11), _payload(2 * MIB, seed=12)
    put(client, server.url("doc.bin"), first)
    put(client, server.url("doc.bin"), second)  # the first is a version now
    put(client, server.url("gone.bin"), _payload(MIB, seed=13))
    assert client.delete(server.url("gone.bin")).status_code == 204
    me = client.get(server.base + "/api/v1/me").json()
    split = (me["current_bytes"], me["versions_bytes"], me["trash_bytes"])
    assert split == (2 * MIB, 2 * MIB, MIB) and me["used_bytes"] == 5 * MIB
    names = ("quota-current-bytes", "quota-versions-bytes", "quota-trash-bytes")
    body = (
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:d="http://davserver/ns">'
        "<D:prop><D:quota-used-bytes/>" + "".join(f"<d:{n}/>" for n in names) + "</D:prop>"
        "</D:propfind>"
    )
    answer = client.request("PROPFIND", server.dav, data=body, headers={"Depth": "0"})
    assert answer.status_code == 207
    for name, value in zip(names, split, strict=True):
        assert f">{value}</" in answer.text.split(name)[1]
    _set_quota(server, 6 * MIB)  # 1 MiB free; a 3 MiB file fits once history goes
    put(client, server.url("new.bin"), _payload(3 * MIB, seed=14))
    me = client.get(server.base + "/api/v1/me").json()
    assert (me["current_bytes"], me["versions_bytes"], me["trash_bytes"]) == (5 * MIB, 0, MIB)
    versions = client.get(server.base + "/api/v1/versions", params={"path": "/doc.bin"})
    assert versions.json()["versions"] == []  # the oldest history went first
