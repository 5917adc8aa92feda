"""TLS for the tests: a self-signed certificate made with the `openssl` command, and a
TLS terminator in front of a plain TCP service (as stunnel or a cloud load balancer
puts one in front of Redis), so clients speak real TLS to a real server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    openssl = shutil.which("openssl")
    if openssl is None:  # a skip would hide that TLS went untested
        pytest.fail("the openssl command is needed to make the test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key)]
        + ["-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def tls_terminator(backend_port: int, cert: Path, key: Path) -> Iterator[int]:
    """Accepts TLS connections on a free loopback port (yielded) and forwards each, in
    plain TCP, to `127.0.0.1:backend_port`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
                secure = context.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                continue
            backend = socket.create_connection(("127.0.0.1", backend_port))
            for source, sink in ((secure, backend), (backend, secure)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
