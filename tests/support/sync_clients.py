"""The Nextcloud and ownCloud command-line sync clients (Debian `nextcloud-desktop-cmd`
and `owncloud-client-cmd`), run against a server as a user would run them.

`run_sync` runs one sync of a local folder with the server's root URL (the clients
find `/status.php`, the OCS endpoints and `/remote.php/dav/files/<user>/` themselves),
with HOME in a temporary folder (no user configuration is read), the exclude list
davserver ships (`config/sync-exclude.lst`) and a timeout: nextcloudcmd can wait
forever "asking the user" (see ../shared/research/nextcloud.md), which fails the
test with the end of its log instead of hanging the suite. A missing client fails
the test, never skips it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXCLUDE_LIST = REPO / "config" / "sync-exclude.lst"
BINARIES = {"nextcloud": "nextcloudcmd", "owncloud": "owncloudcmd"}
PACKAGES = {"nextcloud": "nextcloud-desktop-cmd", "owncloud": "owncloud-client-cmd"}
# Small chunks so that chunked uploads are exercised by files of a few MiB.
SMALL_CHUNKS = {
    "OWNCLOUD_CHUNK_SIZE": str(2 * 1024 * 1024),
    "OWNCLOUD_MIN_CHUNK_SIZE": str(1024 * 1024),
    "OWNCLOUD_MAX_CHUNK_SIZE": str(2 * 1024 * 1024),
    "OWNCLOUD_TARGET_CHUNK_UPLOAD_DURATION": "0",
}


@dataclass(frozen=True)
class SyncRun:
    """One finished run: the exit status and everything the client logged."""

    returncode: int
    log: str

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:])


def client_binary(kind: str) -> str:
    """The `kind` (`nextcloud` or `owncloud`) command-line client on PATH."""
    binary = shutil.which(BINARIES[kind])
    if binary is None:
        pytest.fail(f"{BINARIES[kind]} is not installed (apt-get install {PACKAGES[kind]})")
    return binary


def sync_command(
    kind: str,
    local: Path,
    base_url: str,
    user: str,
    password: str,
    *,
    home: Path,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one sync (see `run_sync`); `options` go
    before the folder and URL (e.g. `--uplimit`)."""
    home.mkdir(parents=True, exist_ok=True)
    local.mkdir(parents=True, exist_ok=True)
    command = [
        client_binary(kind),
        "--non-interactive",
        "--exclude",
        str(EXCLUDE_LIST),
        "-u",
        user,
        "-p",
        password,
        *options,
        str(local),
        base_url.rstrip("/") + "/",
    ]
    environment = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    environment.pop("DISPLAY", None)
    return command, environment


def run_sync(
    kind: str,
    local: Path,
    base_url: str,
    user: str,
    password: str,
    *,
    home: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> SyncRun:
    """One sync of `local` with the server at `base_url` (its root URL) as `user`;
    `env` adds variables (e.g. `SMALL_CHUNKS`). Fails the test on a timeout."""
    command, environment = sync_command(kind, local, base_url, user, password, home=home, env=env)
    try:
        done = subprocess.run(
            command,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else ""
        pytest.fail(f"{kind} sync did not finish in {timeout} s:\n" + (out + err)[-4000:])
    return SyncRun(done.returncode, done.stdout + done.stderr)


def sync_ok(
    kind: str,
    local: Path,
    base_url: str,
    user: str,
    password: str,
    *,
    home: Path,
    env: dict[str, str] | None = None,
) -> SyncRun:
    """`run_sync` that must succeed (exit 0), else the test fails with the log's end."""
    result = run_sync(kind, local, base_url, user, password, home=home, env=env)
    if result.returncode != 0:
        pytest.fail(f"{kind} sync failed ({result.returncode}):\n{result.tail()}")
    return result
