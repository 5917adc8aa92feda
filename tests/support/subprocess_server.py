"""The real `davserver` command line as child processes, configured from a `Settings`.

`settings_env(settings)` turns a `Settings` into the `DAVSERVER_*` variables the CLI
reads, so a subprocess sees exactly the configuration an in-process server was built
from. `ServeProcess` runs `davserver serve --port 0` and returns once it listens;
`kill()` sends SIGKILL (a crash), `stop()` SIGINT (a clean shutdown). `run_cli` runs a
one-shot command (`gc`, `fsck`, ...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from davserver.settings import ENV_PREFIX, Settings
from tests.services.processes import die_with_parent, stop_gracefully

LISTENING = re.compile(r"davserver listening on http://[^:]+:(\d+)/dav/")
START_TIMEOUT = 60.0
CLI_TIMEOUT = 120.0


def settings_env(settings: Settings) -> dict[str, str]:
    """`DAVSERVER_<KEY>` for every field of `settings` (booleans as true/false)."""
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[ENV_PREFIX + f.name.upper()] = text
    return env


def child_env(settings: Settings) -> dict[str, str]:
    """This process's environment without its own `DAVSERVER_*`, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"  # the "listening" line must reach the log at once
    env.update(settings_env(settings))
    return env


def run_cli(
    settings: Settings,
    *args: str,
    stdin: str = "",
    extra_env: dict[str, str] | None = None,
    timeout: float | None = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run `davserver ARGS` to completion with `settings` (and `extra_env`, e.g. the
    PYTHONPATH of another release), fed `stdin`; output is captured. `timeout`
    seconds at most (None: no limit)."""
    return subprocess.run(
        [sys.executable, "-m", "davserver", *args],
        env={**child_env(settings), **(extra_env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=die_with_parent(signal.SIGKILL),
    )


class ServeProcess:
    """`davserver serve` on a free loopback port, its output in `log`.

    The constructor returns once the server printed its address (it fails with the
    log's tail otherwise). The child dies with its parent, even on SIGKILL.
    """

    def __init__(
        self, settings: Settings, log: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.log = log
        self._log_start = log.stat().st_size if log.exists() else 0  # earlier runs' output
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "davserver", "serve", "--host", "127.0.0.1", "--port", "0"],
                env={**child_env(settings), **(extra_env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        self.port = self._wait_listening()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def dav(self) -> str:
        return f"http://127.0.0.1:{self.port}/dav/"

    def url(self, path: str) -> str:
        return self.dav + path.lstrip("/")

    def client(self, user: str = "admin", password: str | None = None) -> requests.Session:
        """A session with Basic credentials (the settings' admin password by default)."""
        session = requests.Session()
        session.trust_env = False  # loopback only: no proxy from the environment
        session.auth = (user, self.settings.admin_password if password is None else password)
        return session

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-request, with nothing flushed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """Stop cleanly (SIGINT, then SIGKILL after 20 s); return the exit status."""
        return stop_gracefully(self.proc)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def _wait_listening(self) -> int:
        """Poll the log for the "listening" line written after this start; its port."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                f.seek(self._log_start)
                match = LISTENING.search(f.read().decode(errors="replace"))
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"davserver serve did not start:\n{self.log_tail()}")
