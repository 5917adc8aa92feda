"""A request-head gate in front of cheroot's worker threads (used by `davserver.server`).

cheroot hands a connection to a worker thread as soon as it is readable (a new one at
once), and the worker then blocks reading the request head: a few dozen clients that
connect and send nothing, or start a request and never finish its head (a slowloris),
pin every thread for the socket timeout, and nobody else is served.

`GatedConnections` replaces cheroot's `ConnectionManager` (its selector thread). It reads
each connection's head there without blocking, into a buffer of the connection's own,
and hands the connection to a worker only once the head is complete (up to its blank
line), or longer than `Limits.max_head` (cheroot then answers 413/414, as
`max_request_header_size` is set to it), or the peer closed after sending part of one.
Heads that take longer than `head_timeout`, and connections idle between requests for
longer than `keepalive_timeout`, are closed by the selector thread. At most
`max_connections` are open: past it a new connection takes the place of the longest-idle
kept-alive one, and when none is idle it is answered 503 (plain HTTP) and closed,
never queued for a thread.

How the bytes reach the worker: on hand-over they become the read buffer of the
connection's `rfile` (cheroot's `StreamReader`, a `_pyio.BufferedReader`: `_read_buf`,
`_read_pos`), which every read consumes before it touches the socket. No socket is
wrapped, so cheroot's parsing, `_BodyReader`'s fast path and TLS sockets are unchanged.
When cheroot gives a connection back after a response, bytes already in that buffer (a
pipelined request) are moved back into the gate's.

TLS: cheroot shakes hands in its accept path, on the selector thread, blocking (one
client that connects and stays silent would stall every accept for the socket timeout).
The adapter's `wrap` must therefore return the socket without a handshake (see
`davserver.server._TLSAdapter`); the gate drives the handshake without blocking, then
fills the connection's `ssl_env`. A handshake step that has to wait for the socket to
become writable waits for it to become readable instead (the server's first flight fits
a fresh socket's send buffer) and, failing that, ends at the head timeout.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from cheroot import connections, server

RECEIVE_SIZE = 64 * 1024
REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
PLAIN_ON_TLS = (  # cheroot's answer to plain HTTP on the TLS port
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 67\r\n"
    b"Connection: close\r\n\r\n"
    b"The client sent a plain HTTP request, but this server speaks HTTPS."
)
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


@dataclass(frozen=True)
class Limits:
    """The gate's settings: seconds a request head may take from its first byte (from
    the accept on a new connection), seconds a connection may wait idle between
    requests, connections open at most, bytes a head may have."""

    head_timeout: float = 10
    keepalive_timeout: float = 60
    max_connections: int = 1000
    max_head: int = 64 * 1024


class GatedConnection(server.HTTPConnection):
    """A connection with the gate's state: the head bytes received so far, when they
    began (None: idle between requests), whether its TLS handshake is still due."""

    head: bytearray
    head_since: float | None = None
    handshaking: bool = False
    gate: GatedConnections | None = None  # the manager counting it, until it closes

    def close(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.forget()
        super().close()


class GatedConnections(connections.ConnectionManager):
    """cheroot's connection manager with the request-head gate (see the module)."""

    # cheroot's internals, which its stubs do not declare
    _selector: Any
    _stop_requested: bool
    _from_server_socket: Any
    _remove_invalid_sockets: Any

    def __init__(self, srv: Any, limits: Limits) -> None:
        super().__init__(srv)
        self.limits = limits
        self._open = 0  # connections accepted and not yet closed
        self._count_lock = threading.Lock()

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def can_add_keepalive_connection(self) -> bool:
        """An idle connection costs a selector slot only; `max_connections` bounds them."""
        return True

    def forget(self) -> None:
        """A counted connection closed (called from any thread)."""
        with self._count_lock:
            self._open -= 1

    def put(self, conn: GatedConnection) -> None:
        """Take back a connection whose response went out (on its worker thread): what
        its reader already buffered (a pipelined request) starts its next head."""
        conn.last_used = time.time()
        conn.head = bytearray(_take_buffered(conn.rfile))
        conn.head_since = conn.last_used if conn.head else None
        conn.socket.settimeout(0)
        pending = getattr(conn.socket, "pending", None)  # TLS bytes already decrypted
        if _ends_head(conn.head, 0, self.limits.max_head):
            self._hand_over(conn)
            return
        if pending is not None and pending():
            ready = self._receive(conn)
            if ready is None:
                conn.close()
                return
            if ready:
                self._hand_over(conn)
                return
        self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)

    def _run(self, expiration_interval: float) -> None:
        """cheroot's selector loop, with the gate: accept, advance heads, expire."""
        last_check = time.time()
        while not self._stop_requested:
            try:
                ready = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            for fd, conn in ready:
                if conn is self.server:
                    self._accept()
                else:
                    self._advance(fd, conn)
            now = time.time()
            if now - last_check > expiration_interval:
                self._expire_waiting(now)
                last_check = now

    def _accept(self) -> None:
        """Accept one connection and start waiting for its head (its TLS handshake
        first), or refuse it when `max_connections` are open and none is idle."""
        tls = self.server.ssl_adapter is not None
        if not self._make_room():
            _refuse(self.server.socket, tls)
            return
        conn = self._from_server_socket(self.server.socket)
        if conn is None:
            return
        if not isinstance(conn, GatedConnection):
            raise TypeError(f"the gate needs a GatedConnection, got {type(conn).__name__}")
        with self._count_lock:
            self._open += 1
        conn.gate = self
        conn.head = bytearray()
        conn.head_since = conn.last_used = time.time()
        conn.handshaking = tls
        conn.socket.settimeout(0)
        self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)

    def _make_room(self) -> bool:
        """True when a new connection may be accepted, closing the longest-idle
        kept-alive connection first when `max_connections` are open."""
        if self._open < self.limits.max_connections:
            return True
        idle = [
            (conn.last_used, fd, conn)
            for fd, conn in self._selector.connections
            if conn is not self.server and conn.head_since is None
        ]
        if not idle:
            return False
        _, fd, conn = min(idle, key=lambda entry: entry[0])
        self._selector.unregister(fd)
        conn.close()
        return True

    def _advance(self, fd: int, conn: GatedConnection) -> None:
        """`conn` is readable: go on with its handshake and head; hand it to a worker
        when its head is complete, close it when the peer left or broke it."""
        try:
            ready = self._handshake(conn) if conn.handshaking else True
            if ready:
                ready = self._receive(conn)
        except Exception:  # one broken connection must not stop the loop for all
            self.server.error_log("request-head gate", level=40, traceback=True)
            ready = None
        if ready is False:
            return
        self._selector.unregister(fd)
        if ready:
            self._hand_over(conn)
        else:
            conn.close()

    def _handshake(self, conn: GatedConnection) -> bool | None:
        """One non-blocking step of `conn`'s TLS handshake: True when done, False while
        it waits for the peer, None when it failed."""
        sock = conn.socket
        try:
            sock.do_handshake()
        except _WOULD_BLOCK:
            return False
        except ssl.SSLError as e:
            if "http request" in str(e).lower():
                with suppress(OSError):
                    socket.socket.send(sock, PLAIN_ON_TLS)  # past the TLS layer
            return None
        except OSError:
            return None
        conn.handshaking = False
        conn.ssl_env = self.server.ssl_adapter.get_environ(sock)
        return True

    def _receive(self, conn: GatedConnection) -> bool | None:
        """Read what `conn` sent without blocking: True when its head is complete (or
        over `max_head`, or the peer stopped sending after part of it), False while it
        is not, None when the peer closed or failed before sending any."""
        head = conn.head
        start = max(0, len(head) - 2)  # what came before was looked at already
        while not _ends_head(head, start, self.limits.max_head):
            try:
                data = conn.socket.recv(RECEIVE_SIZE)
            except _WOULD_BLOCK:
                return False
            except OSError:
                return None
            if not data:
                return True if head.strip() else None
            if conn.head_since is None:
                conn.head_since = time.time()
            start = max(0, len(head) - 2)
            head += data
        return True

    def _hand_over(self, conn: GatedConnection) -> None:
        """Give `conn` to a worker thread, its head first in its reader's buffer."""
        rfile: Any = conn.rfile
        with rfile._read_lock:
            rfile._read_buf = bytes(conn.head)
            rfile._read_pos = 0
        conn.head = bytearray()
        conn.head_since = None
        conn.socket.settimeout(self.server.timeout)
        self.server.process_conn(conn)

    def _expire_waiting(self, now: float) -> None:
        """Close the connections whose head is late and those idle for too long."""
        limits = self.limits
        stale = [
            (fd, conn)
            for fd, conn in self._selector.connections
            if conn is not self.server
            and (
                now - conn.last_used > limits.keepalive_timeout
                if conn.head_since is None
                else now - conn.head_since > limits.head_timeout
            )
        ]
        for fd, conn in stale:
            self._selector.unregister(fd)
            conn.close()


def _ends_head(head: bytearray, start: int, max_head: int) -> bool:
    """`head` holds a blank line (searched from `start`: the bytes before were looked at
    already) or more than `max_head` bytes."""
    return (
        len(head) > max_head or head.find(b"\n\r\n", start) >= 0 or head.find(b"\n\n", start) >= 0
    )


def _take_buffered(rfile: Any) -> bytes:
    """Empty cheroot's reader buffer; return what it held unread."""
    with rfile._read_lock:
        unread = bytes(rfile._read_buf[rfile._read_pos :])
        rfile._read_buf = b""
        rfile._read_pos = 0
    return unread


def _refuse(listener: socket.socket, tls: bool) -> None:
    """Accept one connection and close it at once (a 503 first, on plain HTTP)."""
    try:
        sock, _ = listener.accept()
    except OSError:
        return
    with suppress(OSError):
        if not tls:
            sock.setblocking(False)
            sock.send(REFUSAL)
    sock.close()
