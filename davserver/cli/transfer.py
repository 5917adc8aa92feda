"""`davserver push` and `davserver pull`: send or fetch only the blocks that differ,
through the delta protocol of a running server (docs/api.md).

    davserver push LOCAL REMOTE_PATH [--server URL] [--user U] [--password-stdin]
    davserver pull REMOTE_PATH LOCAL [--server URL] [--user U] [--password-stdin]

REMOTE_PATH is a path in the user's WebDAV home (`/docs/big.iso`); LOCAL a file or a
folder (every file below it, at the same places below REMOTE_PATH; folders are made
as needed). Pushing a file to a REMOTE_PATH ending in `/` puts it in that folder under
its own name; pulling a file into an existing folder does the same. The server is
`--server` (its base URL) or `DAVSERVER_URL`; the login `--user` or `DAVSERVER_USER`
and the password from stdin (`--password-stdin`), else `DAVSERVER_PASSWORD`, else a
prompt on a terminal. An interrupted push or pull is resumed by running it again.
Unlike the other commands, these are clients: they read no config file and open no
store. Progress bars go to stderr when it is a terminal; a summary line ends on stdout.
Exit status: 0 done; 1 some files failed, or a transfer broke off (network, server
errors after retries: run again); 2 a usage, login, configuration or protocol error.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Never

from tqdm import tqdm

from davserver.cli.output import CommandError, format_size
from davserver.cli.sync import Tally, Transfers, files_below
from davserver.cli.transfer_http import Login, Remote, TransferError
from davserver.settings import CLIENT_PASSWORD_ENV, CLIENT_URL_ENV, CLIENT_USER_ENV

COMMANDS = ("push", "pull")
DEFAULT_WORKERS = 4


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `push` and `pull` on `sub` (`common`'s store flags do not apply)."""
    push = sub.add_parser("push", help="send a file or folder, only the blocks the server lacks")
    push.add_argument("local", type=Path, help="a local file or folder")
    push.add_argument("remote", help="where, in your WebDAV home, e.g. /docs/big.iso")
    pull = sub.add_parser("pull", help="fetch a file or folder, only the blocks missing here")
    pull.add_argument("remote", help="what, in your WebDAV home, e.g. /docs/big.iso")
    pull.add_argument("local", type=Path, help="a local file or folder")
    for cmd in (push, pull):
        cmd.add_argument("--server", metavar="URL", help=f"base URL (else ${CLIENT_URL_ENV})")
        cmd.add_argument("--user", help=f"account name (else ${CLIENT_USER_ENV})")
        cmd.add_argument(
            "--password-stdin",
            action="store_true",
            help=f"read the password from stdin (else ${CLIENT_PASSWORD_ENV}, else a prompt)",
        )
        cmd.add_argument(
            "--workers",
            type=_workers,
            default=DEFAULT_WORKERS,
            metavar="N",
            help=f"blocks moved at once (default {DEFAULT_WORKERS})",
        )


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError("a number from 1 to 32")
    return int(text)


def login_of(args: argparse.Namespace) -> tuple[str, Login]:
    """The server URL and login from the flags, else the environment (else a prompt
    for the password on a terminal); `CommandError` naming what is missing."""
    server = args.server or os.environ.get(CLIENT_URL_ENV)
    user = args.user or os.environ.get(CLIENT_USER_ENV)
    if not server:
        raise CommandError(f"no server: give --server URL or set {CLIENT_URL_ENV}")
    if not user:
        raise CommandError(f"no user: give --user NAME or set {CLIENT_USER_ENV}")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif CLIENT_PASSWORD_ENV in os.environ:
        password = os.environ[CLIENT_PASSWORD_ENV]
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {user} at {server}: ")
    else:
        raise CommandError(f"no password: give --password-stdin or set {CLIENT_PASSWORD_ENV}")
    if not password:
        raise CommandError("empty password")
    return server, Login(user, password)


def run(args: argparse.Namespace) -> int:
    """Run `push` or `pull` (see the module docstring); the exit status."""
    server, login = login_of(args)
    try:
        remote = Remote(server, login, workers=args.workers)
    except TransferError as e:
        raise CommandError(str(e)) from e
    bar = _Bar()
    try:
        transfers = _connect(remote, args.workers, bar)
        started = time.monotonic()
        if args.command == "push":
            where, tally, failures = _push(transfers, args.local, args.remote, bar)
        else:
            where, tally, failures = _pull(transfers, args.remote, args.local, bar)
    except TransferError as e:
        bar.close()
        print(f"davserver: error: {e}", file=sys.stderr)
        return 1 if e.transient else 2
    except KeyboardInterrupt:
        bar.close()
        print("davserver: error: interrupted; run it again to resume", file=sys.stderr)
        return 130
    finally:
        bar.close()
        remote.close()
    print(summary(args.command, where, tally, time.monotonic() - started))
    return 1 if failures else 0


def _connect(remote: Remote, workers: int, bar: _Bar) -> Transfers:
    """The server's chunking, or `CommandError` (exit 2) for any failure to learn it:
    a wrong address or login is no transient failure."""
    try:
        return Transfers(remote, workers=workers, progress=bar.advance)
    except TransferError as e:
        hint = " (wrong user or password?)" if e.status == 401 else ""
        raise CommandError(f"{e}{hint}") from e


def _push(transfers: Transfers, local: Path, remote: str, bar: _Bar) -> tuple[str, Tally, int]:
    if local.is_dir():
        bar.open("push", sum(path.stat().st_size for path in files_below(local)))
        failures = _Failures("push")
        return remote, transfers.push_tree(local, remote, failures), failures.count
    if not local.is_file():
        raise CommandError(f"no such file or folder: {local}")
    if remote.endswith("/"):
        remote += local.name
    bar.open("push", local.stat().st_size)
    return remote, transfers.push_file(local, remote), 0


def _pull(transfers: Transfers, remote: str, local: Path, bar: _Bar) -> tuple[str, Tally, int]:
    entries = transfers.listing(remote)
    item = next((entry for entry in entries if entry.path == remote.rstrip("/")), None)
    if item is not None and item.kind == "file":
        if local.is_dir():
            local = local / PurePosixPath(remote).name
        if not local.parent.is_dir():
            raise CommandError(f"no such folder: {local.parent}")
        bar.open("pull", item.size or 0)
        return remote, transfers.pull_file(remote, local), 0
    below = [entry for entry in entries if entry is not item]
    bar.open("pull", sum(entry.size or 0 for entry in below if entry.kind == "file"))
    local.mkdir(parents=True, exist_ok=True)
    failures = _Failures("pull")
    return remote, transfers.pull_tree(remote, local, below, failures), failures.count


def summary(command: str, where: str, tally: Tally, seconds: float) -> str:
    """The line that ends a push or pull (see the module docstring)."""
    files = f"{tally.files} files, " if tally.files != 1 else ""
    moved, other = ("sent", "already there") if command == "push" else ("fetched", "reused")
    return (
        f"{command}ed {where}: {files}{tally.size} bytes, {tally.blocks} blocks, "
        f"{tally.moved} {moved} ({format_size(tally.moved_bytes)}), "
        f"{tally.blocks - tally.moved} {other}, {seconds:.1f} s"
    )


class _Failures:
    """Reports each file of a tree that failed, on its own line, and counts them."""

    def __init__(self, command: str) -> None:
        self.command, self.count = command, 0

    def __call__(self, relative: str, error: Exception) -> None:
        self.count += 1
        print(f"davserver: error: {self.command} {relative}: {error}", file=sys.stderr)


class _Bar:
    """A byte progress bar on stderr when it is a terminal (else nothing); workers
    advance it from their threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bar: tqdm[Never] | None = None

    def open(self, what: str, total: int) -> None:
        quiet = not sys.stderr.isatty()
        self._bar = tqdm(
            desc=what, total=total, unit="B", unit_scale=True, file=sys.stderr,
            leave=False, disable=quiet,
        )  # fmt: skip

    def advance(self, size: int, moved: bool) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(size)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
