"""The real `davserver` command line, run as subprocesses in a temporary directory."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.services.processes import stop_gracefully

LISTENING = re.compile(r"davserver listening on http://127\.0\.0\.1:(\d+)/dav/")
PASSWORD = re.compile(r"Created user 'admin' with password: (\S+)")
SMALL_CHUNKS = {
    "DAVSERVER_CHUNK_MIN_SIZE": "1024",
    "DAVSERVER_CHUNK_AVG_SIZE": "4096",
    "DAVSERVER_CHUNK_MAX_SIZE": "16384",
}


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAVSERVER_")}
    env.update(PYTHONUNBUFFERED="1", DAVSERVER_LOCAL_FSYNC="0", **SMALL_CHUNKS)
    env.update(extra)
    return env


def run_cli(
    cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "davserver", *args],
        cwd=cwd,
        env=env or cli_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


class Serve:
    """`davserver serve --port 0` in the background; stdout is collected line by line."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "davserver", "serve", "--port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = self._wait_listening()
        self.url = f"http://127.0.0.1:{self.port}/dav/"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _wait_listening(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if match := LISTENING.search(line):
                return int(match.group(1))
        self.stop()
        raise AssertionError(f"server did not start; output: {self.lines}")

    def password(self) -> str | None:
        found = [m.group(1) for line in self.lines if (m := PASSWORD.search(line))]
        assert len(found) <= 1
        return found[0] if found else None

    def dav(self, method: str, path: str, auth: tuple[str, str], **kw: Any) -> requests.Response:
        return requests.request(method, self.url + path, auth=auth, timeout=30, **kw)

    def stop(self, signum: int = signal.SIGINT) -> int:
        return stop_gracefully(self.proc, signum=signum)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Serve]]:
    started: list[Serve] = []

    class Tracked(Serve):
        def __init__(self, cwd: Path = tmp_path, env: dict[str, str] | None = None) -> None:
            super().__init__(cwd, env or cli_env())
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


def propfind(server: Serve, auth: tuple[str, str]) -> int:
    return server.dav("PROPFIND", "", auth, headers={"Depth": "0"}).status_code


def chunk_files(tmp_path: Path) -> dict[str, Path]:
    return {p.name: p for p in (tmp_path / "davdata/blobs/chunks").rglob("*") if p.is_file()}


def test_first_start_creates_admin_once(tmp_path: Path, serve: type[Serve]) -> None:
    first = serve()
    password = first.password()
    assert password
    assert propfind(first, ("admin", password)) == 207
    assert propfind(first, ("admin", password + "x")) == 401
    assert first.stop() == 0
    assert (tmp_path / "davdata/catalog.db").is_file()

    second = serve()
    assert second.password() is None
    assert propfind(second, ("admin", password)) == 207
    assert second.stop() == 0


def test_admin_password_from_environment(tmp_path: Path, serve: type[Serve]) -> None:
    server = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="s3cret-Admin"))
    assert server.password() is None
    assert not any("password" in line for line in server.lines)
    assert propfind(server, ("admin", "s3cret-Admin")) == 207


def test_sigterm_mid_upload_stops_cleanly_and_keeps_the_old_version(
    tmp_path: Path, serve: type[Serve]
) -> None:
    """`docker stop` sends SIGTERM: the server must exit 0 soon, committing no partial upload."""
    server = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="pw"))
    auth = ("admin", "pw")
    assert server.dav("PUT", "f.bin", auth, data=b"old" * 1000).status_code == 201
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for _ in range(400):
            yield os.urandom(65536)
            sent.set()
            time.sleep(0.05)

    def upload() -> None:
        headers = {"Content-Length": str(400 * 65536)}
        with contextlib.suppress(requests.RequestException):
            server.dav("PUT", "f.bin", auth, data=slow_body(), headers=headers)

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert sent.wait(10)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15  # cheroot's shutdown timeout is 5 s
    uploader.join(30)

    again = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="pw"))
    assert again.dav("GET", "f.bin", auth).content == b"old" * 1000


@pytest.mark.parametrize("fresh", [True, False])
def test_user_add(tmp_path: Path, serve: type[Serve], fresh: bool) -> None:
    if not fresh:
        serve().stop()  # the usual order: first start, then add users
    added = run_cli(tmp_path, "user", "add", "bob", "--password-stdin", stdin="bob-pass\n")
    assert added.returncode == 0, added.stderr
    assert "bob-pass" not in added.stdout
    again = run_cli(tmp_path, "user", "add", "bob", "--password-stdin", stdin="other\n")
    assert again.returncode != 0
    assert again.stderr.startswith("davserver: error:") and "bob" in again.stderr

    server = serve()
    assert propfind(server, ("bob", "bob-pass")) == 207
    assert propfind(server, ("bob", "other")) == 401


def test_gc_and_fsck(tmp_path: Path, serve: type[Serve]) -> None:
    server = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="pw"))
    auth = ("admin", "pw")
    kept, gone = random.Random(1).randbytes(100_000), random.Random(2).randbytes(100_000)
    assert server.dav("PUT", "kept.bin", auth, data=kept).status_code == 201
    assert server.dav("PUT", "gone.bin", auth, data=gone).status_code == 201
    assert server.dav("DELETE", "gone.bin", auth).status_code == 204
    assert server.stop() == 0
    before = chunk_files(tmp_path)
    assert len(before) > 10

    dry = run_cli(tmp_path, "gc")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 0 unreferenced chunks" in dry.stdout
    dry = run_cli(tmp_path, "gc", "--grace", "0")
    assert dry.returncode == 0, dry.stderr
    counted = re.search(r"would delete (\d+) unreferenced chunks", dry.stdout)
    assert counted and 0 < int(counted.group(1)) < len(before)
    assert chunk_files(tmp_path) == before

    applied = run_cli(tmp_path, "gc", "--apply", "--grace", "0")
    assert applied.returncode == 0, applied.stderr
    assert f"deleted {counted.group(1)} unreferenced chunks" in applied.stdout
    after = chunk_files(tmp_path)
    assert set(after) < set(before) and len(after) == len(before) - int(counted.group(1))

    for args in (["fsck"], ["fsck", "--deep"]):
        clean = run_cli(tmp_path, *args)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert f"checked {len(after)} chunks: 0 missing" in clean.stdout

    victim = sorted(after)[0]
    after[victim].unlink()
    broken = run_cli(tmp_path, "fsck")
    assert broken.returncode == 1
    assert f"missing: {victim}" in broken.stdout

    server = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="pw"))
    assert server.dav("GET", "gone.bin", auth).status_code == 404
    assert server.dav("HEAD", "kept.bin", auth).status_code == 200


@pytest.mark.parametrize("command", [["serve"], ["gc"], ["user", "add", "x"]])
def test_bad_configuration_is_one_line_on_stderr(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = 8080\nno_such_key = 1\n", encoding="utf-8")
    cases = [
        run_cli(tmp_path, *command, "--config", str(config)),
        run_cli(tmp_path, *command, env=cli_env(DAVSERVER_PORT="abc")),
    ]
    for result, named in zip(cases, ["no_such_key", "DAVSERVER_PORT"], strict=True):
        assert result.returncode != 0
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("davserver: error:") and named in lines[0]
    assert not (tmp_path / "davdata").exists()
