"""The request threads of `davserver.server`: the pool's minimum is started at once, and
one more thread is started for a connection only when every thread is busy, up to the
maximum (a real cheroot server over loopback, driven with raw sockets)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from davserver.server import BackgroundServer

WAIT = 5.0
REQUEST = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"


class HoldingApp:
    """Holds every request until `release` is set; counts the requests inside."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.inside = 0
        self.changed = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.changed:
            self.inside += 1
            self.changed.notify_all()
        self.release.wait(WAIT * 2)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    def wait_inside(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.inside >= count, timeout)


def request_threads(server: BackgroundServer) -> int:
    pool: Any = server.server.requests  # cheroot's ThreadPool
    return len(pool._threads)


@contextmanager
def serving(app: HoldingApp, threads: int, max_threads: int) -> Iterator[BackgroundServer]:
    server = BackgroundServer(app, threads=threads, max_threads=max_threads)
    server.start()
    try:
        yield server
    finally:
        app.release.set()
        server.stop()


def send(port: int, stack: ExitStack) -> socket.socket:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=WAIT))
    sock.sendall(REQUEST)
    return sock


def test_threads_start_at_the_minimum_and_grow_to_the_maximum_when_all_are_busy() -> None:
    app = HoldingApp()
    with serving(app, threads=2, max_threads=4) as server, ExitStack() as stack:
        port = server.server.bind_addr[1]
        assert request_threads(server) == 2
        socks = [send(port, stack) for _ in range(4)]
        assert app.wait_inside(4, WAIT), f"only {app.inside} of 4 requests reached the app"
        assert request_threads(server) == 4

        socks.append(send(port, stack))  # past the maximum: waits for a free thread
        assert not app.wait_inside(5, 0.5)
        assert request_threads(server) == 4

        app.release.set()
        for sock in socks:
            assert sock.recv(64).startswith(b"HTTP/1.1 200 "), "a held request was not answered"
        assert app.inside == 5


def test_a_free_thread_takes_the_next_connection_without_growth() -> None:
    app = HoldingApp()
    app.release.set()
    with serving(app, threads=2, max_threads=8) as server, ExitStack() as stack:
        port = server.server.bind_addr[1]
        for _ in range(6):
            sock = send(port, stack)
            assert sock.recv(64).startswith(b"HTTP/1.1 200 ")
        assert request_threads(server) == 2
