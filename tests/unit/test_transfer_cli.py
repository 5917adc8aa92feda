"""`davserver push`/`pull` as a user runs them, before any server answers: where the
server and the login come from, and one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from davserver.cli.sync import Tally
from davserver.cli.transfer import summary
from davserver.settings import load
from tests.services.processes import free_port
from tests.support.cli import cli_env, run_cli

LOGIN = {"DAVSERVER_URL": "http://127.0.0.1:9", "DAVSERVER_USER": "amy"}


def one_error(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("davserver: error:"), lines
    assert says in lines[0], lines[0]


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({}, (), "no server: give --server URL or set DAVSERVER_URL"),
        ({"DAVSERVER_URL": "http://h"}, (), "no user: give --user NAME or set DAVSERVER_USER"),
        (LOGIN, (), "no password: give --password-stdin or set DAVSERVER_PASSWORD"),
        (LOGIN, ("--password-stdin",), "empty password"),
        ({**LOGIN, "DAVSERVER_PASSWORD": "pw"}, ("--server", "ftp://h"), "not a server URL"),
        ({}, ("--workers", "0"), "--workers: a number from 1 to 32"),
    ],
)
def test_missing_or_bad_settings_are_one_line(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    for command in (("push", "f", "/f"), ("pull", "/f", "f")):
        done = run_cli(tmp_path, *command, *args, env=cli_env(**env))
        one_error(done, says)


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    env = cli_env(DAVSERVER_URL="ftp://wrong", DAVSERVER_USER="amy", DAVSERVER_PASSWORD="pw")
    done = run_cli(tmp_path, "push", "f", "/f", "--server", "gopher://flag", env=env)
    one_error(done, "not a server URL: 'gopher://flag'")


def test_no_server_listening_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    env = cli_env(DAVSERVER_USER="amy", DAVSERVER_PASSWORD="pw")
    url = f"http://127.0.0.1:{free_port()}"
    done = run_cli(tmp_path, "push", "f", "/f", "--server", url, env=env)
    one_error(done, "GET http://127.0.0.1:")
    assert "pw" not in done.stderr


def test_the_clients_variables_are_no_unknown_settings() -> None:
    """A user keeps DAVSERVER_URL/USER/PASSWORD exported; `davserver serve` still starts."""
    environ = {"DAVSERVER_URL": "http://h", "DAVSERVER_USER": "u", "DAVSERVER_PASSWORD": "p"}
    assert load(None, environ=environ).port == load(None, environ={}).port


def test_the_summary_line() -> None:
    tally = Tally(files=1, size=1073741824, blocks=1024, moved=3, moved_bytes=3_250_000)
    assert summary("push", "/docs/big.iso", tally, 4.21) == (
        "pushed /docs/big.iso: 1073741824 bytes, 1024 blocks, 3 sent (3.1 MiB), "
        "1021 already there, 4.2 s"
    )
    tree = Tally(files=2, size=10, blocks=2, moved=0, moved_bytes=0)
    assert summary("pull", "/d", tree, 0.04) == (
        "pulled /d: 2 files, 10 bytes, 2 blocks, 0 fetched (0 B), 2 reused, 0.0 s"
    )
