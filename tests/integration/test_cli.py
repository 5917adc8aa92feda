"""The real `davserver` command line, run as subprocesses in a temporary directory."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.cli import Serve, cli_env, run_cli


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


# gc and fsck of chunk objects: no chunk kept in the catalog (tests/unit/test_inline_chunks.py)
OBJECTS_ONLY = {"DAVSERVER_ADMIN_PASSWORD": "pw", "DAVSERVER_INLINE_MAX_BYTES": "0"}


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
    if fresh:  # no store yet: refused, and nothing created (./davdata stays absent)
        refused = run_cli(tmp_path, "user", "add", "bob", "--password-stdin", stdin="bob-pass\n")
        assert refused.returncode == 2 and "no davserver store at" in refused.stderr
        assert not (tmp_path / "davdata").exists()
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
    server = serve(env=cli_env(**OBJECTS_ONLY))
    auth = ("admin", "pw")
    kept, gone = random.Random(1).randbytes(100_000), random.Random(2).randbytes(100_000)
    assert server.dav("PUT", "kept.bin", auth, data=kept).status_code == 201
    assert server.dav("PUT", "gone.bin", auth, data=gone).status_code == 201
    assert server.dav("DELETE", "gone.bin", auth).status_code == 204  # into the trash
    trash = f"http://127.0.0.1:{server.port}/api/v1/trash"
    assert requests.delete(trash, auth=auth, timeout=30).json() == {"purged": 1}
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
    assert "would drop" in dry.stdout and "dropped" not in dry.stdout
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
    assert f"missing: {victim}\n  damages admin:/kept.bin\n" in broken.stdout

    server = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="pw"))
    assert server.dav("GET", "gone.bin", auth).status_code == 404
    assert server.dav("HEAD", "kept.bin", auth).status_code == 200


def test_gc_apply_thins_old_versions_and_frees_their_chunks(
    tmp_path: Path, serve: type[Serve]
) -> None:
    server = serve(env=cli_env(**OBJECTS_ONLY))
    auth = ("admin", "pw")
    bodies = [random.Random(n).randbytes(50_000) for n in range(4)]
    for body in bodies:  # three old versions, then the current one
        assert server.dav("PUT", "doc.bin", auth, data=body).status_code in (201, 204)
    assert server.stop() == 0
    before = chunk_files(tmp_path)
    applied = run_cli(
        tmp_path, "gc", "--apply", "--grace", "0", env=cli_env(DAVSERVER_VERSIONS_MAX_COUNT="1")
    )
    assert applied.returncode == 0, applied.stderr
    assert "dropped 2 old versions that retention does not keep" in applied.stdout
    assert "purged 0 trash items older than 30 days" in applied.stdout
    assert len(chunk_files(tmp_path)) < len(before)  # the two dropped versions' chunks
    server = serve(env=cli_env(DAVSERVER_ADMIN_PASSWORD="pw"))
    assert server.dav("GET", "doc.bin", auth).content == bodies[-1]


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
