"""Fault injection against a live server: what GET serves after a failure.

Each case breaks something mid-request (the client, the body, S3, PostgreSQL, the
input itself) and then checks what the server serves afterwards: the previous version
intact, nothing new visible, and an error status (4xx/5xx) for the failed request,
never a 2xx for a write that did not happen and never a 200 with wrong bytes.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import random
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from providers.errors import StorageError
from providers.gc import check_store
from tests.services.postgres import PostgresService
from tests.services.s3 import S3Service
from tests.support.dav import content_etag
from tests.support.servers import RunningServer

MiB = 1024 * 1024
TIMEOUT = (5.0, 60.0)  # requests: connect, read
HANG_LIMIT = 30.0  # seconds: an answer slower than this counts as a hang
OUTAGE_TIMEOUT = (5.0, HANG_LIMIT)  # requests made while a dependency is down
MakeServer = Callable[..., RunningServer]


# --- helpers -------------------------------------------------------------------------


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _auth(server: RunningServer) -> str:
    token = base64.b64encode(f"admin:{server.users['admin']}".encode()).decode("ascii")
    return f"Basic {token}"


def _put(server: RunningServer, path: str, body: bytes) -> requests.Response:
    return server.client().put(server.url(path), data=body, timeout=TIMEOUT)


def _put_ok(server: RunningServer, path: str, body: bytes) -> None:
    response = _put(server, path, body)
    assert response.status_code in (201, 204), (response.status_code, response.text[:500])


def _get(server: RunningServer, path: str) -> requests.Response:
    return server.client().get(server.url(path), timeout=TIMEOUT)


def _assert_content(server: RunningServer, path: str, expected: bytes) -> None:
    response = _get(server, path)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    assert len(response.content) == len(expected), (path, len(response.content), len(expected))
    assert response.content == expected, f"{path}: served bytes differ from the stored version"
    assert response.headers.get("ETag", "") == content_etag(expected)


def _assert_absent(server: RunningServer, path: str) -> None:
    response = _get(server, path)
    assert response.status_code == 404, (path, response.status_code, response.text[:500])


def _listing(server: RunningServer) -> set[str]:
    """Names in the home collection (PROPFIND Depth: 1)."""
    response = server.client().request(
        "PROPFIND", server.url("/"), headers={"Depth": "1"}, timeout=TIMEOUT
    )
    assert response.status_code == 207, (response.status_code, response.text[:500])
    root = ET.fromstring(response.content)
    hrefs = [el.text or "" for el in root.iter("{DAV:}href")]
    names = {href.rstrip("/").rsplit("/", 1)[-1] for href in hrefs}
    return {name for name in names if name and name != "dav"}


def _wait_idle(server: RunningServer, timeout: float = 30.0) -> None:
    """Wait until no cheroot worker is handling a request (aborted ones have finished)."""
    pool: Any = server.background.server.requests
    deadline = time.monotonic() + timeout
    while pool.idle < len(pool._threads):
        if time.monotonic() > deadline:
            pytest.fail(f"server still busy {timeout:.0f} s after the client went away")
        time.sleep(0.05)


def _request_head(server: RunningServer, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} /dav/{path.lstrip('/')} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"Authorization: {_auth(server)}",
        *(f"{key}: {value}" for key, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=HANG_LIMIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_status(sock: socket.socket) -> int | None:
    """The status code of the answer on `sock`, or None if it closed without one."""
    sock.settimeout(HANG_LIMIT)
    data = b""
    try:
        while b"\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except TimeoutError:
        pytest.fail(f"no answer within {HANG_LIMIT:.0f} s")
    except ConnectionError:
        pass
    if not data.startswith(b"HTTP/"):
        return None
    return int(data.split(b" ", 2)[1])


def _interrupted_put(server: RunningServer, path: str, declared: int, body: bytes) -> None:
    """Start a PUT announcing `declared` bytes, send `body` (fewer), then drop the socket."""
    sock = _connect(server)
    try:
        sock.sendall(_request_head(server, "PUT", path, {"Content-Length": str(declared)}))
        sock.sendall(body)
    finally:
        sock.close()


def _http(
    server: RunningServer,
    method: str,
    raw_path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request with `raw_path` sent exactly as given (http.client does not re-encode)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HANG_LIMIT)
    try:
        conn.putrequest(method, raw_path, skip_accept_encoding=True)
        sent = {"Authorization": _auth(server), "Content-Length": str(len(body))}
        for key, value in {**sent, **(headers or {})}.items():
            conn.putheader(key, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _timed(fn: Callable[[], requests.Response]) -> requests.Response | Exception:
    """Run one request; its response or the exception it raised. Fails on a hang."""
    start = time.monotonic()
    try:
        result: requests.Response | Exception = fn()
    except requests.RequestException as e:
        result = e
    elapsed = time.monotonic() - start
    assert elapsed < HANG_LIMIT, f"request took {elapsed:.1f} s"
    return result


def _status(result: requests.Response | Exception) -> int | str:
    return result.status_code if isinstance(result, requests.Response) else repr(result)


# --- 1, 2: the client goes away or sends too little ----------------------------------


def test_client_disconnect_mid_body_keeps_old_version(server: RunningServer) -> None:
    old = _random(2 * MiB + 123, seed=1)
    _put_ok(server, "existing.bin", old)

    _interrupted_put(server, "existing.bin", 8 * MiB, _random(3 * MiB, seed=2))
    _interrupted_put(server, "brand-new.bin", 8 * MiB, _random(3 * MiB, seed=3))

    _assert_content(server, "existing.bin", old)
    _assert_absent(server, "brand-new.bin")
    _wait_idle(server)
    _assert_content(server, "existing.bin", old)
    _assert_absent(server, "brand-new.bin")
    assert _listing(server) == {"existing.bin"}


def test_client_disconnect_mid_chunked_body_keeps_old_version(server: RunningServer) -> None:
    """The same with Transfer-Encoding: chunked (no length to compare against)."""
    old = _random(MiB + 9, seed=6)
    _put_ok(server, "chunked.bin", old)
    block = _random(2 * MiB, seed=7)
    for path in ("chunked.bin", "chunked-new.bin"):
        for cut in (len(block) // 2, len(block)):  # inside a chunk, and between two chunks
            sock = _connect(server)
            try:
                sock.sendall(_request_head(server, "PUT", path, {"Transfer-Encoding": "chunked"}))
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sock.sendall(b"%x\r\n%s" % (len(block), block[:cut]))
                sock.shutdown(socket.SHUT_WR)
                status = _read_status(sock)
            finally:
                sock.close()
            assert status is None or status >= 400, f"{path}: truncated body answered {status}"

    _wait_idle(server)
    _assert_content(server, "chunked.bin", old)
    _assert_absent(server, "chunked-new.bin")


def test_body_shorter_than_content_length_is_refused(server: RunningServer) -> None:
    old = _random(MiB, seed=4)
    _put_ok(server, "short.bin", old)

    for path in ("short.bin", "short-new.bin"):
        sock = _connect(server)
        try:
            sock.sendall(_request_head(server, "PUT", path, {"Content-Length": str(2 * MiB)}))
            sock.sendall(_random(MiB + 17, seed=5))
            sock.shutdown(socket.SHUT_WR)
            status = _read_status(sock)
        finally:
            sock.close()
        assert status is None or 400 <= status < 500, f"{path}: short body answered {status}"

    _wait_idle(server)
    _assert_content(server, "short.bin", old)
    _assert_absent(server, "short-new.bin")


# --- 3: racing writers -----------------------------------------------------------------


def _racing_put(
    server: RunningServer,
    bodies: list[bytes],
    i: int,
    barrier: threading.Barrier,
    statuses: list[int | str],
) -> None:
    try:
        barrier.wait(timeout=10)
        statuses[i] = _put(server, "race.bin", bodies[i]).status_code
    except Exception as e:  # reported by the test, never lost in the thread
        statuses[i] = repr(e)


def test_concurrent_puts_leave_exactly_one_body(server: RunningServer) -> None:
    writers = 8
    for round_no in range(3):
        bodies = [
            _random(random.Random(round_no * 100 + i).randint(3 * MiB, 6 * MiB), seed=1000 + i)
            for i in range(writers)
        ]
        statuses: list[int | str] = [0] * writers
        barrier = threading.Barrier(writers)

        threads = [
            threading.Thread(target=_racing_put, args=(server, bodies, i, barrier, statuses))
            for i in range(writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert all(isinstance(s, int) for s in statuses), statuses
        assert all(s in (201, 204, 423) or 500 <= int(s) < 600 for s in statuses), statuses
        assert any(s in (201, 204) for s in statuses), statuses

        response = _get(server, "race.bin")
        assert response.status_code == 200, (round_no, response.status_code)
        winners = [i for i, body in enumerate(bodies) if body == response.content]
        assert len(winners) == 1, f"round {round_no}: GET matches none of the bodies"
        assert statuses[winners[0]] in (201, 204), (round_no, winners, statuses)
        assert response.headers.get("ETag", "") == content_etag(response.content)


# --- 4, 5: S3 goes away ----------------------------------------------------------------


def _restart_s3(s3: S3Service, server: RunningServer, timeout: float = 60.0) -> None:
    """Restart S3 and wait until it reads every stored object and takes writes again:
    `restart()` returns once weed's S3 port answers, possibly before its volume server."""
    s3.restart()
    blobs = server.services.blobs
    deadline = time.monotonic() + timeout
    while True:
        try:
            for info in list(blobs.iter_keys("")):
                blobs.get(info.key)
            blobs.put("probe/ready", b"ready")
            blobs.delete("probe/ready")
            return
        except StorageError as e:
            if time.monotonic() > deadline:
                pytest.fail(f"S3 not serving {timeout:.0f} s after its restart: {e}")
            time.sleep(0.5)


def test_s3_unreachable_gives_503_and_recovers(
    make_server: MakeServer, s3_service: S3Service
) -> None:
    server = make_server("full")
    old = _random(MiB + 5, seed=10)
    _put_ok(server, "kept.bin", old)
    fresh = _random(300 * 1024, seed=11)

    s3_service.stop_temporarily()
    try:
        put = _timed(
            lambda: server.client().put(
                server.url("during-outage.bin"), data=fresh, timeout=OUTAGE_TIMEOUT
            )
        )
        assert isinstance(put, requests.Response), f"PUT failed without an answer: {put!r}"
        assert put.status_code == 503, (put.status_code, put.text[:500])
        assert "S3" in put.text or "unavailable" in put.text.lower(), put.text[:500]

        get = _timed(lambda: server.client().get(server.url("kept.bin"), timeout=OUTAGE_TIMEOUT))
        if isinstance(get, requests.Response):
            assert get.status_code == 503, (get.status_code, get.content[:300])

        propfind = _timed(
            lambda: server.client().request(
                "PROPFIND", server.url("/"), headers={"Depth": "1"}, timeout=OUTAGE_TIMEOUT
            )
        )
        assert _status(propfind) in (207, 503), _status(propfind)
    finally:
        _restart_s3(s3_service, server)

    _assert_content(server, "kept.bin", old)
    _assert_absent(server, "during-outage.bin")
    _put_ok(server, "during-outage.bin", fresh)
    _assert_content(server, "during-outage.bin", fresh)


def test_s3_failure_mid_upload_keeps_old_version(
    make_server: MakeServer, s3_service: S3Service
) -> None:
    server = make_server("full")
    old = _random(2 * MiB + 7, seed=20)
    _put_ok(server, "mid.bin", old)
    blocks = [_random(MiB, seed=200 + i) for i in range(20)]
    stopped = threading.Event()

    def body() -> Iterator[bytes]:
        for i, block in enumerate(blocks):
            if i == 5:
                s3_service.stop_temporarily()
                stopped.set()
            time.sleep(0.05)
            yield block

    try:
        # Connection: close, since if the failure is only noticed once the whole body is
        # in, the 5xx may come on a kept-alive connection, which would look busy
        result = _timed(
            lambda: server.client().put(
                server.url("mid.bin"),
                data=body(),
                headers={"Connection": "close"},
                timeout=OUTAGE_TIMEOUT,
            )
        )
        assert stopped.is_set()
        if isinstance(result, requests.Response):
            assert 500 <= result.status_code < 600, (result.status_code, result.text[:500])
    finally:
        _restart_s3(s3_service, server)

    _wait_idle(server)
    _assert_content(server, "mid.bin", old)
    assert _listing(server) == {"mid.bin"}
    report = check_store(server.services.catalog, server.services.blobs, deep=False)
    assert report.ok, report
    new = b"".join(blocks)
    _put_ok(server, "mid.bin", new)
    _assert_content(server, "mid.bin", new)


# --- 6, 7: PostgreSQL goes away --------------------------------------------------------


def test_database_unreachable_gives_503_and_recovers(
    make_server: MakeServer, postgres_service: PostgresService
) -> None:
    server = make_server("full")
    old = _random(MiB, seed=30)
    _put_ok(server, "db.bin", old)
    client = server.client()
    fresh = _random(200 * 1024, seed=31)

    postgres_service.stop_temporarily()
    try:
        calls: dict[str, Callable[[], requests.Response]] = {
            "PROPFIND": lambda: client.request(
                "PROPFIND", server.url("/"), headers={"Depth": "1"}, timeout=OUTAGE_TIMEOUT
            ),
            "GET": lambda: client.get(server.url("db.bin"), timeout=OUTAGE_TIMEOUT),
            "PUT": lambda: client.put(server.url("db-new.bin"), data=fresh, timeout=OUTAGE_TIMEOUT),
        }
        for method, call in calls.items():
            result = _timed(call)
            assert _status(result) == 503, (method, _status(result))
    finally:
        postgres_service.restart()

    # The very first request after the restart must work (stale pooled connections).
    first = client.request("PROPFIND", server.url("/"), headers={"Depth": "1"}, timeout=TIMEOUT)
    assert first.status_code == 207, (first.status_code, first.text[:500])
    _assert_content(server, "db.bin", old)
    _assert_absent(server, "db-new.bin")
    _put_ok(server, "db-new.bin", fresh)
    _assert_content(server, "db-new.bin", fresh)


def test_database_lost_before_commit_keeps_old_version(
    make_server: MakeServer, postgres_service: PostgresService
) -> None:
    server = make_server("full")
    old = _random(MiB + 3, seed=40)
    _put_ok(server, "commit.bin", old)
    blocks = [_random(MiB, seed=400 + i) for i in range(8)]
    stopped = threading.Event()

    def body() -> Iterator[bytes]:
        for i, block in enumerate(blocks):
            if i == len(blocks) - 1:
                time.sleep(0.5)  # let the server take in (and store) everything before
                postgres_service.stop_temporarily()
                stopped.set()
            time.sleep(0.05)
            yield block

    try:
        result = _timed(  # Connection: close, as in the S3 case above
            lambda: server.client().put(
                server.url("commit.bin"),
                data=body(),
                headers={"Connection": "close"},
                timeout=OUTAGE_TIMEOUT,
            )
        )
        assert stopped.is_set()
        assert _status(result) == 503, _status(result)
    finally:
        if not postgres_service.running:
            postgres_service.restart()

    _wait_idle(server)
    _assert_content(server, "commit.bin", old)
    assert _listing(server) == {"commit.bin"}


# --- 8: bad input ----------------------------------------------------------------------

PROPPATCH_WITH_ENTITY = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE d [<!ENTITY xxe "pwned">]>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:faults">
  <D:set><D:prop><Z:probe>&xxe;</Z:probe></D:prop></D:set>
</D:propertyupdate>"""
PROPPATCH_PLAIN = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:faults">
  <D:set><D:prop><Z:probe>fine</Z:probe></D:prop></D:set>
</D:propertyupdate>"""
PROPFIND_PROBE = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:faults"><D:prop><Z:probe/></D:prop></D:propfind>"""


def _probe(server: RunningServer, path: str) -> tuple[str, str]:
    """(status line, text) of the urn:faults probe property of `path`."""
    status, body = _http(server, "PROPFIND", f"/dav/{path}", PROPFIND_PROBE, {"Depth": "0"})
    assert status == 207, (status, body[:500])
    for propstat in ET.fromstring(body).iter("{DAV:}propstat"):
        probe = propstat.find("{DAV:}prop/{urn:faults}probe")
        if probe is not None:
            return propstat.findtext("{DAV:}status") or "", probe.text or ""
    pytest.fail(f"no propstat for the probe property: {body[:500]!r}")


def _oversized_propfind(server: RunningServer, size: int) -> int | None:
    """PROPFIND with a `size`-byte body, sent while reading the answer."""
    filler = b"<!-- " + b"x" * size + b" -->"
    body = (PROPFIND_PROBE + filler)[:size]
    sock = _connect(server)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(body)
        except OSError:  # the server may close after answering 413
            pass
        except BaseException as e:
            errors.append(e)

    try:
        head = {"Content-Length": str(len(body)), "Depth": "0", "Content-Type": "text/xml"}
        sock.sendall(_request_head(server, "PROPFIND", "/", head))
        sender = threading.Thread(target=send)
        sender.start()
        status = _read_status(sock)
        with contextlib.suppress(OSError):  # unblocks the sender if it is still sending
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=HANG_LIMIT)
    finally:
        sock.close()
    assert not errors, errors
    return status


def test_bad_input_is_refused_and_server_keeps_serving(make_server: MakeServer) -> None:
    server = make_server("embedded")
    known = _random(64 * 1024, seed=50)
    _put_ok(server, "known.bin", known)

    def still_serving() -> None:
        _assert_content(server, "known.bin", known)

    bad_paths = {
        "NUL": "/dav/bad%00name",
        "invalid UTF-8": "/dav/bad%ff%fe",
        "300-byte name": "/dav/" + "n" * 300,
        "encoded slash": "/dav/a%2Fb",
    }
    for label, raw in bad_paths.items():
        for method in ("PUT", "GET"):
            status, body = _http(server, method, raw, b"data" if method == "PUT" else b"")
            assert status == 400, (label, method, status, body[:300])
        still_serving()

    long_path = "/dav/" + "/".join(["d" * 99] * 50)
    assert len(long_path) > 5000
    status, body = _http(server, "PUT", long_path, b"data")
    assert status in (400, 414), (status, body[:300])
    still_serving()

    assert _listing(server) == {"known.bin"}

    status, body = _http(
        server, "PROPPATCH", "/dav/known.bin", PROPPATCH_WITH_ENTITY, {"Content-Type": "text/xml"}
    )
    assert status == 400, (status, body[:300])
    prop_status, text = _probe(server, "known.bin")
    assert "404" in prop_status and "pwned" not in text, (prop_status, text)
    still_serving()

    assert _oversized_propfind(server, 2 * MiB) == 413
    still_serving()

    status, body = _http(server, "PROPFIND", "/dav/", PROPFIND_PROBE, {"Depth": "infinity"})
    assert status == 403, (status, body[:300])
    assert b"propfind-finite-depth" in body, body[:500]
    still_serving()

    # The property check above can see a property that is set.
    status, body = _http(
        server, "PROPPATCH", "/dav/known.bin", PROPPATCH_PLAIN, {"Content-Type": "text/xml"}
    )
    assert status == 207, (status, body[:300])
    assert _probe(server, "known.bin") == ("HTTP/1.1 200 OK", "fine")
