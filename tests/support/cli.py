"""The real `davserver` command line run as subprocesses in a working directory, with
the defaults a user gets there (`./davdata`, the admin password printed on first start).

`cli_env(**extra)` is this process's environment without its own `DAVSERVER_*`, plus
small chunk sizes and `extra`. `run_cli(cwd, *args)` runs one command to completion;
`ok` and `fails` run one that must succeed (its stdout) or fail with one
`davserver: error:` line. `Serve` runs `davserver serve --port 0` in the background and
collects its stdout line by line. Unlike `tests.support.subprocess_server`, which
configures a child from a `Settings`, nothing here is configured beyond the environment.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from davserver.settings import ENV_PREFIX
from tests.services.processes import stop_gracefully
from tests.support.subprocess_server import CLI_TIMEOUT, START_TIMEOUT

LISTENING = re.compile(r"davserver listening on http://127\.0\.0\.1:(\d+)/dav/")
PASSWORD = re.compile(r"Created user 'admin' with password: (\S+)")
SMALL_CHUNKS = {
    "DAVSERVER_CHUNK_MIN_SIZE": "1024",
    "DAVSERVER_CHUNK_AVG_SIZE": "4096",
    "DAVSERVER_CHUNK_MAX_SIZE": "16384",
}


LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO) ")


def without_info_logs(lines: list[str]) -> list[str]:
    """`lines` of stderr without the log records below WARNING that `serve` writes
    there (its start line, for one)."""
    return [line for line in lines if not LOG_RECORD.match(line)]


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without `DAVSERVER_*`, small chunks, and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(PYTHONUNBUFFERED="1", DAVSERVER_LOCAL_FSYNC="0", **SMALL_CHUNKS)
    env.update(extra)
    return env


def run_cli(
    cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`davserver ARGS` run to completion in `cwd`, fed `stdin`; output is captured."""
    return subprocess.run(
        [sys.executable, "-m", "davserver", *args],
        cwd=cwd,
        env=env or cli_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def ok(cwd: Path, *args: str, stdin: str = "") -> str:
    """Run a command that must succeed; its stdout."""
    done = run_cli(cwd, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(cwd: Path, *args: str, stdin: str = "", says: str = "") -> str:
    """Run a command that must fail with one `davserver: error:` line naming `says`."""
    done = run_cli(cwd, *args, stdin=stdin)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("davserver: error:"), done.stderr
    assert says in lines[0], lines[0]
    return lines[0]


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
        deadline = time.monotonic() + START_TIMEOUT
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
