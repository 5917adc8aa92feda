"""The request-head gate (davserver.http_gate) on a real cheroot server over loopback,
driven with raw sockets: slow, silent and idle clients hold no worker thread, heads
that never complete and idle connections are closed, and requests still parse."""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from davserver.server import BackgroundServer
from tests.support.tls import make_certificate

WAIT = 5.0  # generous: without the gate these clients wait for a 60 s socket timeout
HALF_OPEN = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Pending: "


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answers `<method> <path> <sha256 of the body>`."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    text = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {hashlib.sha256(body).hexdigest()}"
    answer = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


@contextmanager
def serving(**options: Any) -> Iterator[int]:
    options.setdefault("threads", 4)
    server = BackgroundServer(echo, **options)
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


class Client:
    """A raw HTTP/1.1 connection that reads answers one by one (pipelining keeps
    what came after an answer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(WAIT)
        self.pending = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, bytes]:
        """The next answer's status and body (its Content-Length)."""
        while b"\r\n\r\n" not in self.pending:
            self._more()
        head, self.pending = self.pending.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", "0"))
        while len(self.pending) < length:
            self._more()
        body, self.pending = self.pending[:length], self.pending[length:]
        return int(lines[0].split()[1]), body

    def closed_by_server(self) -> bool:
        """The server closed the connection within `WAIT` seconds."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.pending += data


def connect(port: int, stack: ExitStack) -> Client:
    return Client(stack.enter_context(socket.create_connection(("127.0.0.1", port))))


def get(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def expected(method: str, path: str, body: bytes = b"") -> bytes:
    return f"{method} {path} {hashlib.sha256(body).hexdigest()}".encode()


def test_new_client_is_served_while_idle_silent_and_half_open_connections_wait() -> None:
    with serving(threads=4) as port, ExitStack() as stack:
        for _ in range(200):  # idle kept-alive connections, each after one request
            idle = connect(port, stack)
            idle.send(get("/idle"))
            assert idle.answer() == (200, expected("GET", "/idle"))
        for _ in range(200):  # requests whose head never ends
            connect(port, stack).send(HALF_OPEN)
        for _ in range(50):  # connections that never send anything
            connect(port, stack)
        client = connect(port, stack)
        client.send(get("/new"))
        assert client.answer() == (200, expected("GET", "/new"))


def test_head_sent_in_pieces_with_pauses_is_answered() -> None:
    with serving(threads=1) as port, ExitStack() as stack:
        client = connect(port, stack)
        for piece in (b"GE", b"T /split HTTP/1.1\r", b"\nHost: x\r\n", b"\r\n"):
            client.send(piece)
            time.sleep(0.2)
        assert client.answer() == (200, expected("GET", "/split"))


def test_head_that_never_completes_is_closed_after_the_head_timeout() -> None:
    with serving(head_timeout=1) as port, ExitStack() as stack:
        silent, slow = connect(port, stack), connect(port, stack)
        slow.send(HALF_OPEN)
        assert slow.closed_by_server() and silent.closed_by_server()


def test_idle_connection_is_closed_after_the_keepalive_timeout() -> None:
    with serving(keepalive_timeout=1, head_timeout=30) as port, ExitStack() as stack:
        client = connect(port, stack)
        client.send(get())
        assert client.answer()[0] == 200
        assert client.closed_by_server()


def test_pipelined_requests_are_all_answered() -> None:
    with serving() as port, ExitStack() as stack:
        client = connect(port, stack)
        client.send(get("/one") + get("/two") + b"GET /three HTTP/1.1\r\nHo")
        time.sleep(0.2)
        client.send(b"st: x\r\n\r\n")
        for path in ("/one", "/two", "/three"):
            assert client.answer() == (200, expected("GET", path))


def test_request_body_after_the_head_reaches_the_application() -> None:
    body = bytes(range(256)) * 4096 * 3  # 3 MiB: the reader's direct path
    with serving() as port, ExitStack() as stack:
        client = connect(port, stack)
        head = f"PUT /file HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        client.send(head.encode() + body[:1000])  # part of the body comes with the head
        time.sleep(0.2)
        client.send(body[1000:])
        assert client.answer() == (200, expected("PUT", "/file", body))
        client.send(get("/after"))
        assert client.answer() == (200, expected("GET", "/after"))


def test_oversized_head_is_refused() -> None:
    with serving() as port, ExitStack() as stack:
        client = connect(port, stack)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert client.answer()[0] == 413


def test_connection_past_the_limit_takes_the_place_of_an_idle_one() -> None:
    with serving(max_connections=2) as port, ExitStack() as stack:
        idle = connect(port, stack)
        idle.send(get())
        assert idle.answer()[0] == 200
        connect(port, stack).send(HALF_OPEN)
        client = connect(port, stack)
        client.send(get("/third"))
        assert client.answer() == (200, expected("GET", "/third"))
        assert idle.closed_by_server()


def test_connection_past_the_limit_is_refused_when_none_is_idle() -> None:
    with serving(max_connections=2) as port, ExitStack() as stack:
        for _ in range(2):  # new connections wait for a head: not idle
            connect(port, stack)
        refused = connect(port, stack)
        assert refused.answer()[0] == 503
        assert refused.closed_by_server()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def tls_connect(context: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port))
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def test_tls_client_is_served_while_others_stall_their_handshake_or_head(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(cafile=str(cert))
    with serving(threads=2, certfile=str(cert), keyfile=str(key)) as port, ExitStack() as stack:
        for _ in range(20):  # TCP only: no TLS handshake ever starts
            connect(port, stack)
        for _ in range(20):  # handshake done, head never ends
            stack.enter_context(tls_connect(context, port)).sendall(HALF_OPEN)
        client = Client(stack.enter_context(tls_connect(context, port)))
        client.send(get("/tls") + get("/again"))
        assert client.answer() == (200, expected("GET", "/tls"))
        assert client.answer() == (200, expected("GET", "/again"))
        plain = connect(port, stack)
        plain.send(get())
        assert plain.answer()[0] == 400
