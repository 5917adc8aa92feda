"""Row 8 of `tests.bench.sync_scale`: a new client's HEAD latency while idle keep-alive
connections and half-open requests are held open on raw sockets. Not a test.
"""

from __future__ import annotations

import base64
import contextlib
import resource
import selectors
import socket
import statistics
import time
from urllib.parse import urlsplit

from tests.bench.bench import Server

CONNECT_TIMEOUT = 10.0
IDLE_WAIT = 15.0  # seconds, in all, for the idle connections' first answers
MAX_TIMEOUTS = 2  # a server that let two new clients time out is not asked again


def raise_fd_limit(needed: int) -> None:
    """Raises this process's (and so the servers' it starts) open-file limit to at least
    `needed`, up to the hard limit: hundreds of held sockets need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def head_request(server: Server, path: str, keep_alive: bool) -> bytes:
    parts = urlsplit(server.url(path))
    lines = [f"HEAD {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    if server.auth is not None:
        token = base64.b64encode(f"{server.auth[0]}:{server.auth[1]}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(server: Server) -> socket.socket:
    parts = urlsplit(server.dav)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT)


def open_idle(server: Server, path: str, count: int) -> tuple[list[socket.socket], int]:
    """`count` connections that each had one HEAD answered and then stay idle (keep-alive).
    All requests are sent first, then the answers awaited together (`IDLE_WAIT` in all):
    a server with fewer threads than connections may not answer them all. Returns the
    sockets and how many were answered."""
    request = head_request(server, path, keep_alive=True)
    socks = []
    for _ in range(count):
        sock = connect(server)
        sock.sendall(request)
        sock.setblocking(False)
        socks.append(sock)
    answered = 0
    buffers = {s: b"" for s in socks}
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + IDLE_WAIT
        while buffers and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                chunk = b""
                with contextlib.suppress(OSError):
                    chunk = sock.recv(65536)
                buffers[sock] += chunk
                if b"\r\n\r\n" in buffers[sock] or not chunk:
                    answered += b"\r\n\r\n" in buffers[sock]
                    sel.unregister(sock)
                    del buffers[sock]
    return socks, answered


def open_half(server: Server, path: str, count: int) -> list[socket.socket]:
    """`count` connections that sent a request line and one header, and never finish."""
    parts = urlsplit(server.url(path))
    partial = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
    socks = []
    for _ in range(count):
        sock = connect(server)
        sock.sendall(partial)
        socks.append(sock)
    return socks


def one_head(server: Server, path: str, timeout: float) -> float | None:
    """Seconds from connect to the end of a new client's HEAD answer's headers (None:
    no answer within `timeout`)."""
    request = head_request(server, path, keep_alive=False)
    started = time.perf_counter()
    try:
        with socket.create_connection(_address(server), timeout=timeout) as sock:
            sock.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got:
                sock.settimeout(max(0.001, timeout - (time.perf_counter() - started)))
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"HEAD: connection closed after {got[:100]!r}")
                got += chunk
    except TimeoutError:
        return None
    if not got.startswith(b"HTTP/1.1 200") and not got.startswith(b"HTTP/1.0 200"):
        status = got.split(b"\r\n", 1)[0]
        raise RuntimeError(f"HEAD {path}: {status!r}")
    return time.perf_counter() - started


def _address(server: Server) -> tuple[str, int]:
    parts = urlsplit(server.dav)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def held_open_heads(
    server: Server, path: str, idle: int, half: int, heads: int, timeout: float
) -> dict[str, float]:
    """Row 8: `heads` new clients' HEAD of `path` (ms: median, max; a timeout counts as
    `timeout`) while `idle` keep-alive and `half` half-open connections are held."""
    held: list[socket.socket] = []
    try:
        idle_socks, answered = open_idle(server, path, idle)
        held += idle_socks
        held += open_half(server, path, half)
        times: list[float] = []
        timeouts = 0
        for _ in range(heads):
            took = one_head(server, path, timeout)
            timeouts += took is None
            times.append(timeout if took is None else took)
            if timeouts >= MAX_TIMEOUTS:
                break
    finally:
        for sock in held:
            sock.close()
    return {
        "head_p50": statistics.median(times) * 1000,
        "head_max": max(times) * 1000,
        "head_timeouts": float(timeouts),
        "idle_answered": float(answered),
    }
