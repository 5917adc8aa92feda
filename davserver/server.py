"""Runs a WSGI app on cheroot (the only module that imports cheroot)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import wsgi

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_server(app: WsgiApp, host: str, port: int, *, threads: int = 32) -> wsgi.Server:
    """A cheroot server bound to (host, port); port 0 picks a free port."""
    server = wsgi.Server((host, port), app, numthreads=threads, server_name="davserver")
    server.max_request_body_size = 0  # uploads are streamed: no size limit here
    server.timeout = 60
    return server


def bound_port(server: wsgi.Server) -> int:
    return int(server.bind_addr[1])


def serve_forever(server: wsgi.Server, on_ready: Callable[[int], None] | None = None) -> None:
    """Bind, report the port, serve until interrupted, then stop cleanly."""
    server.prepare()
    if on_ready:
        on_ready(bound_port(server))
    try:
        server.serve()
    finally:
        server.stop()


class BackgroundServer:
    """A server on a thread (for tests and benchmarks): `start()` returns the port."""

    def __init__(self, app: WsgiApp, host: str = "127.0.0.1", port: int = 0, threads: int = 32):
        self.server = make_server(app, host, port, threads=threads)
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
