"""`davserver serve` with its connection settings: slow and silent clients hold no
thread, so a WebDAV client is served beside them, and a head that never ends is closed
after `request_head_timeout` (the gate itself: tests/unit/test_http_gate.py)."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path

from tests.support.servers import embedded_settings
from tests.support.subprocess_server import ServeProcess

WAIT = 10.0  # generous: a pinned thread would keep these clients waiting 60 s


def test_serve_answers_beside_slow_clients_and_closes_late_heads(tmp_path: Path) -> None:
    settings = embedded_settings(
        tmp_path / "data",
        local_fsync=False,
        server_threads=2,
        push_waiters=0,
        request_head_timeout=1,
    )
    served = ServeProcess(settings, tmp_path / "serve.log")
    try:
        with ExitStack() as stack:
            slow = []
            for _ in range(20):  # ten times the threads
                sock = socket.create_connection(("127.0.0.1", served.port), timeout=WAIT)
                sock.sendall(b"PROPFIND /dav/ HTTP/1.1\r\nHost: x\r\nDepth: 1\r\n")
                slow.append(stack.enter_context(sock))
            with served.client() as client:
                answer = client.request(
                    "PROPFIND", served.dav, headers={"Depth": "0"}, timeout=WAIT
                )
            assert answer.status_code == 207
            assert all(sock.recv(1) == b"" for sock in slow)  # closed, not answered
    finally:
        served.stop()
