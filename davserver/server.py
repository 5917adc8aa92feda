"""Runs a WSGI app on cheroot (the only module that imports cheroot)."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, cast

from cheroot import makefile, server, wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from davserver.http.environ import WSGIApplication
from davserver.http.errors import ResponseCut
from davserver.http_gate import GatedConnection, GatedConnections, Limits

DIRECT_READ = 64 * 1024  # reads at least this large bypass cheroot's buffer
DIRECT_WRITE = 64 * 1024  # and so do writes
MAX_DIRECT_READ = 8 * 1024 * 1024  # larger reads fill buffers of this size one by one
DRAIN_LIMIT = 64 * 1024  # a refused request's unread body up to this is read, past it closes
LISTEN_BACKLOG = 1024  # connections the kernel completes before cheroot accepts them
WORKER_HEADER = b"X-Davserver-Worker"  # which worker process answered, when several do
HTTPServer = wsgi.Server  # what `make_server` returns, for callers' annotations


# cheroot's stubs leave these untyped; their signatures, for the overrides below
_buffered_read: Callable[[makefile.StreamReader, int | None], bytes] = makefile.StreamReader.read
_buffered_write: Callable[..., Any] = makefile.StreamWriter.write
_gateway_environ: Callable[[wsgi.Gateway_10], dict[str, Any]] = wsgi.Gateway_10.get_environ
_bind_socket: Callable[[socket.socket, Any], socket.socket] = wsgi.Server.bind_socket


class _BodyReader(makefile.StreamReader):
    """cheroot's socket reader with a fast path for large reads (PUT body blocks).

    cheroot builds its reader on the pure-Python `_pyio.BufferedReader`, which allocates a
    new buffer for every `recv` and copies each byte four times; that capped uploads at a
    few hundred MB/s. A large read takes what is already buffered, then receives straight
    into one buffer until it has `size` bytes or the peer closes (the `read` contract).
    """

    # _pyio.BufferedReader's internals, which cheroot's stubs do not declare
    _read_lock: threading.Lock
    _read_buf: bytes
    _read_pos: int

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < DIRECT_READ:
            return bytes(_buffered_read(self, size))
        if size > MAX_DIRECT_READ:
            return self._read_in_pieces(size)
        buffer = bytearray(size)
        filled = self.readinto(buffer)
        return bytes(buffer[:filled]) if filled < size else bytes(buffer)

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` with what is buffered, then straight from the socket, until it
        is full or the peer closes; return the bytes placed."""
        with self._read_lock, memoryview(buffer) as view:
            start = self._read_pos
            filled = min(len(self._read_buf) - start, len(view))
            view[:filled] = memoryview(self._read_buf)[start : start + filled]
            self._read_pos += filled
            while filled < len(view) and (received := self.raw.readinto(view[filled:])):
                filled += received
        self.bytes_read += filled
        return filled

    def _read_in_pieces(self, size: int) -> bytes:
        """A huge read (cheroot reads a whole chunk of a chunked body at once, whatever
        size its header claims) allocates only as the bytes arrive, not up front."""
        pieces: list[bytes] = []
        wanted = size
        while wanted > 0 and (piece := self.read(min(wanted, MAX_DIRECT_READ))):
            pieces.append(piece)
            wanted -= len(piece)
        return b"".join(pieces)


class _BodyWriter(makefile.StreamWriter):
    """cheroot's socket writer with a fast path for large writes (listings, file blocks).

    Its `_pyio`-based writer copies the whole pending buffer for every partial `send`,
    so a 1 MiB block was copied several times over; a large write now flushes what is
    buffered, then hands the block to `sendall`.
    """

    # _pyio.BufferedWriter's internals, which cheroot's stubs do not declare
    _write_lock: threading.Lock
    _flush_unlocked: Callable[[], None]

    def __init__(self, sock: Any, mode: str, bufsize: int) -> None:
        super().__init__(sock, mode, bufsize)
        self._socket = sock

    def write(self, val: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # cheroot's stubs disagree with each other
        if len(val) < DIRECT_WRITE:
            return _buffered_write(self, val, *args, **kwargs)
        with self._write_lock:
            self._flush_unlocked()
            self._socket.sendall(val)
        self.bytes_written += len(val)
        return len(val)


def _make_file(sock: Any, mode: str = "r", bufsize: int = 8192) -> Any:
    if "r" in mode:
        return _BodyReader(sock, mode, bufsize)
    return _BodyWriter(sock, mode, bufsize)


class _KnownLengthBody:
    """The `wsgi.input` of a Content-Length request: cheroot's `KnownLengthRFile`, plus
    `readinto` bounded by the body's end, so an upload is received straight into its
    consumer's buffer (the chunker's) instead of through a new `bytes` per block."""

    def __init__(self, body: server.KnownLengthRFile) -> None:
        self._body = body
        self.read = body.read
        self.readline = body.readline
        self.readlines = body.readlines
        self.close = body.close

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view:
            wanted = min(len(view), self._body.remaining)
            if wanted <= 0:
                return 0
            received: int = self._body.rfile.readinto(view[:wanted])
        self._body.remaining -= received
        return received

    def __iter__(self) -> Any:
        return iter(self._body)


class _Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, giving Content-Length bodies a `readinto`."""

    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # the stub says None
        environ = _gateway_environ(self)
        body = environ["wsgi.input"]
        if isinstance(body, server.KnownLengthRFile) and isinstance(body.rfile, _BodyReader):
            environ["wsgi.input"] = _KnownLengthBody(body)
        return environ


class _Request(server.HTTPRequest):
    """cheroot's request, closing the connection when the answer goes out before the
    request body was read to its end (a 401, or a 507 refusing an upload over quota),
    unless what is left is a Content-Length body of at most `DRAIN_LIMIT` bytes, which
    cheroot reads and drops to keep the connection.

    cheroot would otherwise read the rest of any Content-Length body before answering,
    in one `read(remaining)` (so `_BodyReader` allocated the whole claimed length: an
    unauthenticated `Content-Length: 1G` PUT cost 1 GiB), and would keep a connection
    whose chunked body was left unread, parsing that body as the next request.
    """

    def send_headers(self) -> None:
        rfile: Any = self.rfile
        if self.chunked_read:
            unread = not rfile.closed
        else:
            unread = getattr(rfile, "remaining", 0) > DRAIN_LIMIT
        if unread:
            self.close_connection = True  # cheroot then sends `Connection: close`
        label = self.server.worker_label
        if label:
            self.outheaders.append((WORKER_HEADER, label))
        super().send_headers()


class _Connection(GatedConnection):
    """A plain-HTTP connection with `_BodyReader` and `_BodyWriter` on its socket (TLS
    connections get them from `_TLSAdapter.makefile`) and `_Request`s, passing the
    request-head gate (`davserver.http_gate`)."""

    RequestHandlerClass = _Request

    def __init__(self, srv: Any, sock: Any, make_file: Any = makefile.MakeFile) -> None:
        super().__init__(srv, sock, _make_file if make_file is makefile.MakeFile else make_file)


class _TLSAdapter(BuiltinSSLAdapter):
    """cheroot's `ssl` module adapter, handing out `_BodyReader`/`_BodyWriter` too.

    cheroot asks the adapter, not the connection class, for a TLS socket's file objects,
    and the builtin one returns the slow `_pyio` streams; both fast paths only use
    `recv_into`/`sendall`, which an `ssl.SSLSocket` provides with the same contract.
    """

    def makefile(self, sock: Any, mode: str = "r", bufsize: int = 8192) -> Any:
        return _make_file(sock, mode, bufsize)

    def wrap(self, sock: Any) -> tuple[Any, dict[str, Any]]:
        """`sock` as TLS, its handshake not done yet and no environ entries: the
        request-head gate shakes hands without blocking and adds them then."""
        tls = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return tls, {}


def tune_allocator() -> None:
    """Keep glibc malloc from hoarding freed upload buffers (a no-op elsewhere).

    Every request thread allocates and frees megabyte buffers (body blocks, chunks). With
    glibc's defaults each thread gets its own arena and the mmap threshold rises to 32 MiB
    after the first large free, so those buffers stay in per-thread arenas: 8 parallel
    4 KiB PUTs took the server from 82 to 320 MiB RSS. Two arenas and a fixed 4 MiB
    threshold keep it at about 90 MiB with no measurable cost in throughput.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold, m_arena_max = -3, -8  # from glibc's malloc.h
    libc.mallopt(m_arena_max, 2)
    libc.mallopt(m_mmap_threshold, 4 * 1024 * 1024)


def freeze_startup_objects() -> None:
    """Leave what start-up built (modules, the application, SQLAlchemy's metadata and
    compiled statements) out of every later garbage collection: it lives as long as the
    process, and each full collection scanned all of it. A PROPFIND of 10,000 entries
    took 100 or 200 ms by turns (a full collection every other one), 100 ms after this."""
    gc.collect()
    gc.freeze()


class _Server(wsgi.Server):
    """cheroot's WSGI server, calling `on_stop` first when it stops: cheroot then
    waits (its shutdown timeout, 5 s) for the requests in flight before it closes
    their sockets, so the ones that would wait far longer (long polls, event streams)
    are told to end cleanly first."""

    on_stop: Callable[[], None] | None = None
    limits = Limits()
    listening: socket.socket | None = None  # bound by a master process (davserver.workers)
    worker_label = b""  # sent as `X-Davserver-Worker` when there are several
    _connections: Any  # cheroot's, which its stubs do not declare

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        """cheroot's bind, or the socket a master process bound for this worker
        (cheroot then only calls `listen` on it again)."""
        if self.listening is None:
            return cast(socket.socket, super().bind(family, type, proto))
        self.socket = self.listening
        self.bind_addr = self.listening.getsockname()[:2]
        return self.listening

    def prepare(self) -> None:
        """cheroot's prepare, then its connection manager replaced by the gate."""
        super().prepare()
        cheroot_manager: Any = self._connections
        self._connections = GatedConnections(self, self.limits)
        cheroot_manager._selector.close()  # it held only the listening socket

    def process_conn(self, conn: Any) -> None:
        """cheroot's hand-over of a connection whose head has arrived, after one more
        thread is started if none is free for it (see `_grow_if_all_busy`)."""
        self._grow_if_all_busy()
        super().process_conn(conn)

    def _grow_if_all_busy(self) -> None:
        """Start one more request thread, up to the pool's maximum, when every thread is
        serving a connection or spoken for by one already queued.

        cheroot starts its pool's minimum at once and grows it only when told. The
        maximum counts the push waiters (long polls, each holding a thread) too: 1,032
        threads started up front cost 19 MiB of RSS, most of them never used. cheroot's
        own `grow` is not used: it polls each new thread's readiness with 0.1 s sleeps,
        and this runs on the gate's one thread, which would stop accepting meanwhile.
        Only that thread calls this, so two hand-overs never start a thread for one need.
        """
        pool: Any = self.requests  # cheroot's ThreadPool; its stubs omit these parts
        if len(pool._threads) >= pool.max or pool.idle > pool._queue.qsize():
            return
        pool._threads.append(pool._spawn_worker())

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        """cheroot's report of an error; a `ResponseCut` (an answer cut on purpose,
        logged where it failed) is not reported again."""
        if isinstance(sys.exc_info()[1], ResponseCut):
            return
        super().error_log(msg, level, traceback)

    def stop(self) -> None:
        if self.ready and self.on_stop is not None:
            self.on_stop()
        super().stop()


def make_server(
    app: WSGIApplication,
    host: str,
    port: int,
    *,
    threads: int = 32,
    max_threads: int = 0,
    certfile: str = "",
    keyfile: str = "",
    on_stop: Callable[[], None] | None = None,
    head_timeout: float = Limits.head_timeout,
    keepalive_timeout: float = Limits.keepalive_timeout,
    max_connections: int = Limits.max_connections,
    listening: socket.socket | None = None,
    worker: int | None = None,
) -> wsgi.Server:
    """A cheroot server bound to (host, port) with `threads` request threads started,
    growing one at a time to `max_threads` (0: `threads`) when every thread is busy;
    port 0 picks a free port. `on_stop` is called when it starts to stop (see `_Server`).
    With `listening` (a socket bound by `bind_listener`) it serves on that socket, as
    worker number `worker` of several processes sharing it (`davserver.workers`).
    A connection gets a thread only once its request head has arrived, within
    `head_timeout` seconds; one idle for `keepalive_timeout` is closed; at most
    `max_connections` are open (`davserver.http_gate`).

    With `certfile` (PEM, the chain after the leaf) and `keyfile` it speaks only HTTPS;
    an unusable pair raises `ssl.SSLError` (an `OSError`) here, before anything binds.
    """
    tune_allocator()
    cheroot = _Server(
        (host, port),
        app,
        numthreads=threads,
        max=max(threads, max_threads),
        server_name="davserver",
    )
    cheroot.on_stop = on_stop
    cheroot.listening = listening
    cheroot.worker_label = b"" if worker is None else str(worker).encode()
    cheroot.limits = Limits(head_timeout, keepalive_timeout, max_connections)
    cheroot.max_request_header_size = cheroot.limits.max_head  # the gate hands over past it
    cheroot.ConnectionClass = _Connection
    cheroot.gateway = _Gateway
    if certfile:
        cheroot.ssl_adapter = _TLSAdapter(certfile, keyfile)
    cheroot.max_request_body_size = 0  # uploads are streamed: no size limit here
    cheroot.timeout = 60
    cheroot.request_queue_size = LISTEN_BACKLOG
    return cheroot


def bind_listener(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on (host, port) as cheroot makes one (address reuse,
    no Nagle, dual-stack for `::`), for worker processes; port 0 picks one. With
    `reuse_port`, more sockets may bind the same port so (SO_REUSEPORT), and the kernel
    spreads new connections over them. `OSError` when it cannot bind."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    sock = wsgi.Server.prepare_socket(address, family, kind, proto, True, None)
    if reuse_port:  # set here: cheroot refuses it with port 0, which the first may be
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock = _bind_socket(sock, address)
    sock.listen(LISTEN_BACKLOG)
    return sock


def bound_port(server: wsgi.Server) -> int:
    return int(server.bind_addr[1])


def serve_forever(server: wsgi.Server, on_ready: Callable[[int], None] | None = None) -> None:
    """Bind, report the port, serve until SIGINT or SIGTERM, then stop cleanly.

    Must run on the main thread. The signals do not raise KeyboardInterrupt here: an
    exception thrown into whatever cheroot's loop happened to be doing (holding a queue
    lock, say) could leave it unable to stop. They start `server.stop()` on a thread
    instead, which ends the loop, lets requests in flight finish (cheroot's shutdown
    timeout) and aborts the rest, so an interrupted upload commits nothing.
    """
    server.prepare()
    freeze_startup_objects()
    stopper = threading.Thread(target=server.stop, name="shutdown", daemon=True)

    def request_stop(signum: int, frame: object) -> None:
        if stopper.ident is not None:  # a second signal: the operator will not wait
            os._exit(128 + signum)  # commits are transactions, so this loses nothing
        stopper.start()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, request_stop) for signum in handled}
    try:
        if on_ready:
            on_ready(bound_port(server))
        server.serve()
    finally:
        if stopper.ident is not None:
            stopper.join()
        server.stop()  # returns at once when the stopper already stopped it
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class BackgroundServer:
    """A server on a thread (for tests and benchmarks): `start()` returns the port."""

    def __init__(
        self,
        app: WSGIApplication,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 32,
        *,
        max_threads: int = 0,
        certfile: str = "",
        keyfile: str = "",
        on_stop: Callable[[], None] | None = None,
        head_timeout: float = Limits.head_timeout,
        keepalive_timeout: float = Limits.keepalive_timeout,
        max_connections: int = Limits.max_connections,
    ):
        self.server = make_server(
            app,
            host,
            port,
            threads=threads,
            max_threads=max_threads,
            certfile=certfile,
            keyfile=keyfile,
            on_stop=on_stop,
            head_timeout=head_timeout,
            keepalive_timeout=keepalive_timeout,
            max_connections=max_connections,
        )
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        self.server.prepare()
        self._thread = threading.Thread(target=self.server.serve, name="cheroot", daemon=True)
        self._thread.start()
        return bound_port(self.server)

    def stop(self) -> None:
        self.server.stop()
        if self._thread:
            self._thread.join(timeout=10)
