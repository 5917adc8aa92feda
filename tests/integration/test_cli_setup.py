"""Finding and checking the configuration, the version, the first start and the
start-up wait, with the real `davserver` command run as subprocesses."""

from __future__ import annotations

import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from davserver import __version__
from tests.services.postgres import PostgresService
from tests.support.cli import Serve, cli_env, fails, ok, run_cli, without_info_logs

PASSWORD = re.compile(r"Created user 'admin' with password: (\S+)")


def one_line_error(done: subprocess.CompletedProcess[str], says: str) -> str:
    """The command failed with exit 2 and one `davserver: error:` line naming `says`."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("davserver: error:"), done.stderr
    assert says in lines[0], lines[0]
    return lines[0]


def test_version(tmp_path: Path) -> None:
    assert ok(tmp_path, "--version") == f"davserver {__version__}\n"
    assert __version__ == "0.1.0"


def test_misspelt_environment_variable_is_named(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "user", "list", env=cli_env(DAVSERVER_PORTT="9000"))
    line = one_line_error(done, "DAVSERVER_PORTT")
    assert "DAVSERVER_PORT?" in line
    assert not (tmp_path / "davdata").exists()


@pytest.mark.parametrize("url", ["mysql://dav:hunter2@db/dav", "notaurl"])
@pytest.mark.parametrize("command", [["serve"], ["gc"]])
def test_bad_database_url_is_one_line(tmp_path: Path, url: str, command: list[str]) -> None:
    done = run_cli(tmp_path, *command, env=cli_env(DAVSERVER_DATABASE_URL=url))
    assert "hunter2" not in one_line_error(done, "database_url")


@pytest.mark.parametrize("grace", ["-5", "soon", "inf"])
def test_gc_grace_must_be_seconds_not_negative(tmp_path: Path, grace: str) -> None:
    fails(tmp_path, "gc", "--grace", grace, says="--grace")


def test_a_bad_flag_is_one_line(tmp_path: Path) -> None:
    fails(tmp_path, "user", "add", says="name")


def test_config_discovery_order(tmp_path: Path) -> None:
    """./davserver.toml is found from the working directory; DAVSERVER_CONFIG wins over
    it, and --config (before or after the command) over both."""
    for name in ("cwd", "env", "flag"):
        (tmp_path / f"{name}.toml").write_text(f'data_dir = "store-{name}"\n', encoding="utf-8")
    (tmp_path / "cwd.toml").rename(tmp_path / "davserver.toml")

    def add(user: str, *flags: str, env: dict[str, str] | None = None) -> None:
        made = run_cli(tmp_path, *flags, "db", "upgrade", env=env)  # the store, found alike
        assert made.returncode == 0, made.stderr
        done = run_cli(
            tmp_path, *flags, "user", "add", user, "--password-stdin", stdin="pw\n", env=env
        )
        assert done.returncode == 0, done.stderr

    add("a")
    add("b", env=cli_env(DAVSERVER_CONFIG=str(tmp_path / "env.toml")))
    add("c", env=cli_env(DAVSERVER_CONFIG="env.toml"))  # relative to the working dir
    add("d", "--config", "flag.toml", env=cli_env(DAVSERVER_CONFIG="env.toml"))
    add("e", "--data-dir", "store-top")
    users = {
        store: [
            row.split()[0]
            for row in ok(tmp_path, "user", "list", "--data-dir", store).splitlines()[1:]
        ]
        for store in ("store-cwd", "store-env", "store-flag", "store-top")
    }
    assert users == {
        "store-cwd": ["a"],
        "store-env": ["b", "c"],
        "store-flag": ["d"],
        "store-top": ["e"],
    }
    assert not (tmp_path / "davdata").exists()
    missing = run_cli(tmp_path, "gc", env=cli_env(DAVSERVER_CONFIG="nowhere.toml"))
    one_line_error(missing, "DAVSERVER_CONFIG: no config file at nowhere.toml")


def test_initial_admin_password_file_until_passwd(tmp_path: Path) -> None:
    first = Serve(tmp_path, cli_env())
    first.stop()
    assert "davserver: config file: none (defaults and environment)" in first.lines
    password = first.password()
    assert password
    saved = tmp_path / "davdata/initial-admin-password"
    assert saved.read_text(encoding="utf-8") == password + "\n"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert any(str(Path("davdata/initial-admin-password")) in line for line in first.lines)

    again = Serve(tmp_path, cli_env())
    again.stop()
    assert any("admin still has the generated password" in line for line in again.lines)

    changed = ok(tmp_path, "user", "passwd", "admin", "--password-stdin", stdin="new-pass\n")
    assert "Deleted davdata/initial-admin-password" in changed
    assert not saved.exists()
    third = Serve(tmp_path, cli_env())
    assert third.dav("PROPFIND", "", ("admin", "new-pass"), headers={"Depth": "0"}).ok
    third.stop()
    assert not any("generated password" in line for line in third.lines)


def test_share_create_prints_the_public_url(tmp_path: Path) -> None:
    env = cli_env(DAVSERVER_PUBLIC_URL="https://dav.example.com/files/")
    ok(tmp_path, "db", "upgrade")
    ok(tmp_path, "user", "add", "alice", "--password-stdin", stdin="pw\n")
    done = run_cli(tmp_path, "user", "list", env=env)
    assert done.returncode == 0, done.stderr
    server = Serve(tmp_path, env)
    try:
        assert server.dav("MKCOL", "docs", ("alice", "pw")).status_code == 201
        created = run_cli(tmp_path, "share", "create", "/docs", "--owner", "alice", env=env)
        assert created.returncode == 0 and created.stderr == "", created.stderr
        url = created.stdout.splitlines()[-1]
        assert re.fullmatch(r"https://dav\.example\.com/files/s/[\w.-]+", url), created.stdout
        listed = run_cli(tmp_path, "share", "list", env=env).stdout
        assert url in listed
        assert "davserver public URL: https://dav.example.com/files/dav/" in server.lines
    finally:
        server.stop()
    plain = run_cli(tmp_path, "share", "create", "/docs", "--owner", "alice")
    assert "set public_url" in plain.stderr
    assert plain.stdout.splitlines()[-1].startswith("http://127.0.0.1:8080/s/")


def test_unreachable_s3_endpoint_gives_up_after_startup_wait(tmp_path: Path) -> None:
    env = cli_env(
        DAVSERVER_S3_ENDPOINT="127.0.0.1:1",
        DAVSERVER_S3_ACCESS_KEY="key",
        DAVSERVER_S3_SECRET_KEY="secret",
        DAVSERVER_STARTUP_WAIT="3",
    )
    started = time.monotonic()
    done = run_cli(tmp_path, "serve", "--port", "0", env=env)
    assert time.monotonic() - started < 10
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "listening" not in done.stdout
    *waiting, last = without_info_logs(done.stderr.splitlines())
    assert waiting and all("waiting for the S3 endpoint 127.0.0.1:1" in w for w in waiting)
    assert all("retrying in" in w and "giving up in" in w for w in waiting)
    assert last.startswith("davserver: error: cannot reach the S3 endpoint 127.0.0.1:1")
    assert "after 3 s" in last and "secret" not in done.stderr


def test_unreachable_redis_gives_up_after_startup_wait(tmp_path: Path) -> None:
    env = cli_env(DAVSERVER_REDIS_URL="redis://:secret@127.0.0.1:1/0", DAVSERVER_STARTUP_WAIT="1")
    done = run_cli(tmp_path, "serve", "--port", "0", env=env)
    assert done.returncode == 2 and "listening" not in done.stdout
    *waiting, last = without_info_logs(done.stderr.splitlines())
    assert waiting and all("waiting for Redis at redis://127.0.0.1:1/0" in w for w in waiting)
    assert last.startswith("davserver: error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def stopped_postgres(postgres_service: PostgresService) -> Iterator[tuple[PostgresService, str]]:
    """A fresh database URL on the shared server, stopped; running again afterwards."""
    url = postgres_service.create_database()
    postgres_service.stop_temporarily()
    try:
        yield postgres_service, url
    finally:
        if not postgres_service.running:
            postgres_service.restart()


def _lines(stream: IO[str] | None, into: queue.Queue[str]) -> None:
    assert stream is not None
    for line in stream:
        into.put(line.rstrip("\n"))


def _drain(lines: queue.Queue[str]) -> str:
    said = []
    while not lines.empty():
        said.append(lines.get_nowait())
    return "\n".join(said)


@pytest.mark.slow
def test_serve_waits_for_a_database_that_comes_up_late(
    tmp_path: Path, stopped_postgres: tuple[PostgresService, str]
) -> None:
    service, url = stopped_postgres
    env = cli_env(DAVSERVER_DATABASE_URL=url, DAVSERVER_STARTUP_WAIT="60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "davserver", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True).start()
    try:
        waiting = err.get(timeout=30)
        while not without_info_logs([waiting]):  # serve's start line comes first
            waiting = err.get(timeout=30)
        assert "waiting for the database at postgresql" in waiting, waiting
        password = url.split("//", 1)[1].split("@", 1)[0].partition(":")[2]
        assert not password or password not in waiting
        service.restart()
        deadline = time.monotonic() + 60
        started = False
        while not started and time.monotonic() < deadline:
            try:
                line = out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            started = "davserver listening on" in line
        assert started, f"serve did not start once the database was up:\n{_drain(err)}"
    finally:
        proc.terminate()
        proc.wait(30)


def test_password_of_a_first_start_that_failed_is_kept(tmp_path: Path) -> None:
    """The port is taken: the start fails after creating admin, and the password it
    printed is still in the file, and named by the next start."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        failed = run_cli(tmp_path, "serve", "--port", port)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    printed = PASSWORD.search(failed.stdout)
    assert printed, failed.stdout
    saved = tmp_path / "davdata/initial-admin-password"
    assert saved.read_text(encoding="utf-8") == printed.group(1) + "\n"
    again = Serve(tmp_path, cli_env())
    again.stop()
    assert any(f"kept in {Path('davdata/initial-admin-password')}" in x for x in again.lines)
