"""TLS and reverse proxies, end to end on the embedded stack.

`davserver serve --certfile F --keyfile F` speaks HTTPS only (a certificate made with
the `openssl` tool by `tests.support.tls`). Behind a proxy that terminates TLS,
forwarded headers from a trusted address make COPY/MOVE with public Destination URLs
work and give the login limit the real client; from any other address they change
nothing.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from davserver.settings import SettingsError, load
from tests.services.processes import die_with_parent, stop_gracefully
from tests.support.cli import without_info_logs
from tests.support.dav import propfind, put
from tests.support.servers import ADMIN_PASSWORD, embedded_settings
from tests.support.subprocess_server import START_TIMEOUT, child_env, run_cli
from tests.support.tls import make_certificate

LISTENING_TLS = re.compile(r"davserver listening on https://127\.0\.0\.1:(\d+)/dav/")
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@contextlib.contextmanager
def serve_https(tmp_path: Path, cert: Path, key: Path) -> Iterator[tuple[Any, int]]:
    """`davserver serve --certfile --keyfile` on a free port: (process, port) once it
    printed its https:// address. The test stops it; it is killed if still running.

    `ServeProcess` cannot be used: its "listening" pattern is http:// only.
    """
    log = tmp_path / "serve.log"
    settings = embedded_settings(tmp_path / "data", local_fsync=False)
    argv = ["serve", "--host", "127.0.0.1", "--port", "0"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "davserver",
                *argv,
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
            ],
            env=child_env(settings),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (found := LISTENING_TLS.search(log.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield proc, int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_https_serve_propfind_put_get_move(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with serve_https(tmp_path, cert, key) as (proc, port):
        dav = f"https://127.0.0.1:{port}/dav/"
        client = requests.Session()
        client.trust_env = False
        client.auth = ("admin", ADMIN_PASSWORD)
        client.verify = str(cert)
        body = random.Random(4).randbytes(3 * 1024 * 1024 + 17)  # past the large-I/O paths
        assert client.put(dav + "a.bin", data=body).status_code == 201
        got = client.get(dav + "a.bin")
        assert got.status_code == 200 and got.content == body
        moved = client.request("MOVE", dav + "a.bin", headers={"Destination": dav + "b.bin"})
        assert moved.status_code == 201
        assert client.get(dav + "a.bin").status_code == 404
        assert "/dav/b.bin" in propfind(client, dav, depth="1")
        assert client.get(dav + "b.bin").content == body

        # TLS only, and really with our certificate
        try:
            plain: int | None = requests.get(
                f"http://127.0.0.1:{port}/dav/", timeout=10
            ).status_code
        except requests.exceptions.ConnectionError:
            plain = None  # cheroot answers 400, but closing with our request unread resets
        assert plain in (400, None)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(dav, timeout=10)  # the system's CAs do not know it
        assert stop_gracefully(proc) == 0


def test_tls_settings_from_environment(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    env = {"DAVSERVER_CERTFILE": str(cert), "DAVSERVER_KEYFILE": str(key)}
    settings = load(None, environ=env)
    assert settings.uses_tls and (settings.certfile, settings.keyfile) == (str(cert), str(key))
    assert not load(None, environ={}).uses_tls


@pytest.mark.parametrize(
    ("certfile", "keyfile", "named"),
    [
        ("cert", "", "keyfile"),
        ("", "key", "certfile"),
        ("cert", "missing", "keyfile"),
        ("missing", "key", "certfile"),
    ],
)
def test_tls_settings_are_validated(
    certificate: tuple[Path, Path], certfile: str, keyfile: str, named: str
) -> None:
    cert, key = certificate
    paths = {"cert": str(cert), "key": str(key), "missing": "/nonexistent/x.pem", "": ""}
    env = {"DAVSERVER_CERTFILE": paths[certfile], "DAVSERVER_KEYFILE": paths[keyfile]}
    with pytest.raises(SettingsError, match=f"^{named}: "):
        load(None, environ=env)


def test_serve_refuses_bad_tls_in_one_line(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, _key = certificate
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    settings = embedded_settings(tmp_path / "data", local_fsync=False)
    serve = ["serve", "--host", "127.0.0.1", "--port", "0"]
    half = run_cli(settings, *serve, "--certfile", str(cert))
    broken = run_cli(settings, *serve, "--certfile", str(junk), "--keyfile", str(junk))
    for result, named in ((half, "keyfile"), (broken, "cannot use")):
        assert result.returncode == 2
        errors = without_info_logs(result.stderr.splitlines())  # serve's start line first
        assert len(errors) == 1, result.stderr
        assert errors[0].startswith("davserver: error:") and named in errors[0]


def test_move_behind_tls_terminating_proxy(make_server: Any) -> None:
    server = make_server("embedded", trusted_proxies="127.0.0.1")
    client = server.client()
    put(client, server.url("a.txt"), b"moved behind a proxy")
    moved = client.request(
        "MOVE",
        server.url("a.txt"),
        headers={**FORWARDED, "Destination": "https://public.example/dav/b.txt"},
    )
    assert moved.status_code == 201
    assert client.get(server.url("a.txt")).status_code == 404
    assert client.get(server.url("b.txt")).content == b"moved behind a proxy"
    # an explicit default port names the same origin (WsgiDAV alone compares the text)
    copied = client.request(
        "COPY",
        server.url("b.txt"),
        headers={**FORWARDED, "Destination": "https://PUBLIC.example:443/dav/c%20d.txt"},
    )
    assert copied.status_code == 201
    assert client.get(server.url("c d.txt")).content == b"moved behind a proxy"


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"])
def test_forwarded_headers_from_untrusted_peer_are_ignored(make_server: Any, trusted: str) -> None:
    server = make_server("embedded", trusted_proxies=trusted)
    client = server.client()
    put(client, server.url("a.txt"), b"stays")
    moved = client.request(
        "MOVE",
        server.url("a.txt"),
        headers={**FORWARDED, "Destination": "https://public.example/dav/b.txt"},
    )
    # WsgiDAV would take the forwarded scheme and host from anyone; stripped, the public
    # Destination is foreign to this http request.
    assert moved.status_code == 502
    assert "same scheme" in moved.text
    assert client.get(server.url("a.txt")).content == b"stays"
    assert client.get(server.url("b.txt")).status_code == 404


@pytest.mark.parametrize(("trusted", "fresh_client_status"), [("127.0.0.1", 207), ("", 429)])
def test_login_limit_counts_the_forwarded_client(
    make_server: Any, trusted: str, fresh_client_status: int
) -> None:
    server = make_server("embedded", trusted_proxies=trusted, login_failures_per_address=3)

    def propfind_from(client: str, user: str, password: str) -> int:
        headers = {"Depth": "0", "X-Forwarded-For": client}
        auth = (user, password)
        answer = requests.request("PROPFIND", server.dav, auth=auth, headers=headers, timeout=30)
        return answer.status_code

    for i in range(3):  # other user names each time: only the address limit is reached
        assert propfind_from("203.0.113.7", f"nobody{i}", "wrong") == 401
    assert propfind_from("203.0.113.7", "admin", ADMIN_PASSWORD) == 429
    # trusted: another client behind the same proxy is not blocked; untrusted: the
    # header is ignored and every attempt counted against the proxy's own address
    assert propfind_from("203.0.113.8", "admin", ADMIN_PASSWORD) == fresh_client_status
