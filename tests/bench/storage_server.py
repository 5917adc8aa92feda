"""One `davserver serve` on a fresh data directory for `tests.bench.storage_cost`: users,
PUT and GET over HTTP, and what the store holds (blob directory and catalog).

The catalog's size is read after a `wal_checkpoint(TRUNCATE)` from this process (the
server keeps its connections; SQLite lets another process checkpoint), so the growth
counts rows written, not how far the WAL file happened to grow.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import requests

from davserver.settings import ENV_PREFIX, Settings
from tests.bench.bench import (
    ADMIN_PASSWORD,
    IO_BLOCK,
    TIMEOUT,
    FileBody,
    check,
    checkout_env,
    start_ours,
)
from tests.bench.storage_report import Growth
from tests.bench.storage_workloads import dir_bytes

TREE_THREADS = 4
# Not what this bench measures: the Nextcloud push listener stays off (its second
# port, the HTTP port + 1, was once taken by another process and the start failed).
BASE_SETTINGS = {"notify_push": "false"}
_noted: set[str] = set()


def known_settings(configs: dict[str, dict[str, str]]) -> str:
    """Which of the settings `configs` use this server knows ('all', or what it lacks)."""
    known = {f.name for f in dataclasses.fields(Settings)}
    missing = sorted({k for c in configs.values() for k in c} - known)
    return "all" if not missing else f"all but {', '.join(missing)} (left out)"


def settings_env(settings: dict[str, str]) -> dict[str, str]:
    """`DAVSERVER_<NAME>` for each setting this server knows; a note for the others
    (the server refuses unknown `DAVSERVER_*` variables)."""
    known = {f.name for f in dataclasses.fields(Settings)}
    for name in sorted(set(settings) - known - _noted):
        print(f"note: this server has no setting {name!r}: left out", flush=True)
        _noted.add(name)
    return {ENV_PREFIX + k.upper(): v for k, v in settings.items() if k in known}


@dataclasses.dataclass
class Usage:
    blob_bytes: int
    objects: int
    catalog_bytes: int


class Store:
    """A server with `settings` on `workdir/data`, user `admin` (and more by `add_user`);
    a context manager that stops it. Paths are relative to the user's home."""

    def __init__(self, workdir: Path, settings: dict[str, str]) -> None:
        workdir.mkdir(parents=True)
        self.data = workdir / "data"
        self.env = settings_env({**BASE_SETTINGS, **settings})
        self.server = start_ours("embedded", workdir, None, **self.env)
        self.passwords = {"admin": ADMIN_PASSWORD}
        self.puts = 0
        self.peak_rss = 0
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.peak_rss = self.server.stop()
        if isinstance(error, Exception):  # what the server said about it
            print(f"{error}\nserver log (tail):\n{self.server.log_tail(40)}", flush=True)

    def cpu_seconds(self) -> float:
        """The server process's CPU time so far (user and system, all its threads)."""
        times = psutil.Process(self.server.proc.pid).cpu_times()
        return float(times.user + times.system)

    def add_user(self, name: str) -> None:
        """`davserver user add NAME` against the running server's store."""
        password = f"{name}-storage-bench"
        env = checkout_env(**self.env, DAVSERVER_DATA_DIR=str(self.data))
        done = subprocess.run(
            [sys.executable, "-m", "davserver", "user", "add", name, "--password-stdin"],
            input=password + "\n",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"user add {name} failed: {done.stderr}")
        self.passwords[name] = password

    def _session(self, user: str) -> requests.Session:
        """This thread's keep-alive session for `user`."""
        sessions: dict[str, requests.Session] = self._local.__dict__.setdefault("sessions", {})
        if user not in sessions:
            sessions[user] = self.server.session()
            sessions[user].auth = (user, self.passwords[user])
        return sessions[user]

    def _url(self, rel: str) -> str:
        return self.server.url(urllib.parse.quote(rel))

    def put(self, user: str, rel: str, path: Path) -> float:
        """PUT the file `path` at `rel`; the seconds it took."""
        size = path.stat().st_size
        started = time.perf_counter()
        response = self._session(user).put(
            self._url(rel), data=FileBody(path, size), timeout=TIMEOUT
        )
        check(response, 201, 204)
        self.puts += 1
        return time.perf_counter() - started

    def put_tree(self, prefix: str, tree: Path, rels: list[str]) -> None:
        """MKCOL the folders, then PUT every file of `tree` under `prefix/` (admin),
        `TREE_THREADS` at a time."""
        folders = {prefix}
        for rel in rels:
            parts = rel.split("/")[:-1]
            folders.update(f"{prefix}/{'/'.join(parts[: n + 1])}" for n in range(len(parts)))
        for folder in sorted(folders, key=lambda f: (f.count("/"), f)):
            response = self._session("admin").request("MKCOL", self._url(folder + "/"))
            check(response, 201, 405)  # 405: it exists (the tree's second upload)
        with concurrent.futures.ThreadPoolExecutor(TREE_THREADS) as pool:
            done = pool.map(lambda rel: self.put("admin", f"{prefix}/{rel}", tree / rel), rels)
            for _ in done:  # re-raise the first failure
                pass

    def get(self, user: str, rel: str, size: int) -> float:
        """GET `rel` whole, counting its bytes (they must be `size`); the seconds."""
        started = time.perf_counter()
        with check(self._session(user).get(self._url(rel), stream=True, timeout=TIMEOUT), 200) as r:
            got = sum(len(block) for block in r.iter_content(IO_BLOCK))
        if got != size:
            raise RuntimeError(f"GET {rel}: {got} bytes, expected {size}")
        return time.perf_counter() - started

    def verify(self, user: str, rel: str, path: Path) -> str:
        """GET `rel` and compare it with the file `path` (untimed): "ok", or what went
        wrong (printed too: a benchmark reports a bad read and carries on)."""
        digest = hashlib.sha256()
        try:
            url = self._url(rel)
            with check(self._session(user).get(url, stream=True, timeout=TIMEOUT), 200) as r:
                for block in r.iter_content(IO_BLOCK):
                    digest.update(block)
        except (requests.RequestException, RuntimeError) as e:
            print(f"read-back of {rel} by {user} FAILED: {e}", flush=True)
            return "FAILED"
        with open(path, "rb") as f:
            expected = hashlib.file_digest(f, "sha256").hexdigest()
        if digest.hexdigest() != expected:
            print(f"read-back of {rel} by {user} FAILED: not the content PUT", flush=True)
            return "WRONG"
        return "ok"

    def usage(self) -> Usage:
        blobs = self.data / "blobs"
        blob_bytes, objects = dir_bytes(blobs)
        return Usage(blob_bytes, objects, _catalog_bytes(self.data / "catalog.db"))

    def measure(self, action: Callable[[], Any]) -> Growth:
        """Run `action`; how much the store grew, and how many PUTs it made."""
        before, puts = self.usage(), self.puts
        action()
        after = self.usage()
        return Growth(
            blob_bytes=after.blob_bytes - before.blob_bytes,
            objects=after.objects - before.objects,
            catalog_bytes=after.catalog_bytes - before.catalog_bytes,
            files=self.puts - puts,
        )


def _catalog_bytes(db: Path) -> int:
    """The SQLite catalog's bytes (database and WAL) after folding the WAL in."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
