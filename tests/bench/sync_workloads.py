"""The workloads of `tests.bench.sync_scale` (issue 20's rows), each against one running
`Server` from `tests.bench.bench`. Every function returns its figures and raises
`RuntimeError` when a request gets an unexpected answer. Not a test; never run in CI.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from tests.bench.bench import (
    IO_BLOCK,
    MIB,
    NAMED_PROPS,
    RESPONSE_TAG,
    SEED,
    TIMEOUT,
    FileBody,
    RssSampler,
    Server,
    check,
    process_rss,
)

SMALL_SIZE = 4096
THREADS = 8
CREATE_THREADS = 16  # for the PROPFIND folder's entries: setup, not a row
STAMP_EVERY = 4096  # the huge body's block counter, so no chunk of it repeats (no dedup)


@dataclass(frozen=True)
class Counts:
    """How much each workload does (`--quick` shrinks them)."""

    small: int = 1000  # rows 1 and 2: 4 KiB PUTs
    gets: int = 2000  # row 4: GETs over row 2's files
    tree_files: int = 2000  # row 3: rclone copy
    tree_folders: int = 20
    entries: int = 10_000  # row 7: the PROPFIND folder
    propfinds: int = 20
    idle: int = 200  # row 8: idle keep-alive connections
    half_open: int = 200  # row 8: request line sent, headers never finished
    heads: int = 20
    head_timeout: float = 10.0


QUICK = Counts(
    small=200, gets=400, tree_files=200, tree_folders=10, entries=1000, propfinds=10, heads=10
)


def pool_run(
    server: Server, threads: int, count: int, one: Callable[[requests.Session, int], None]
) -> None:
    """`one(session, i)` for i in range(count) on `threads` threads, each with its own
    keep-alive session; the first error is raised."""
    local = threading.local()

    def task(i: int) -> None:
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = server.session()
        one(s, i)

    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        for future in [pool.submit(task, i) for i in range(count)]:
            future.result()
    finally:  # on an error or a signal, do not wait for the requests not yet sent
        pool.shutdown(wait=True, cancel_futures=True)


def mkcol(server: Server, path: str) -> None:
    with server.session() as s:
        check(s.request("MKCOL", server.url(path), timeout=TIMEOUT), 201)


def small_payloads(count: int) -> list[bytes]:
    rng = random.Random(SEED + 1)
    return [rng.randbytes(SMALL_SIZE) for _ in range(count)]


def put_rate(server: Server, folder: str, bodies: list[bytes], threads: int) -> float:
    """Rows 1 and 2: PUTs of new files into a new `folder` per second."""
    mkcol(server, folder)

    def one(s: requests.Session, i: int) -> None:
        check(s.put(server.url(f"{folder}f{i:05d}.bin"), data=bodies[i], timeout=TIMEOUT), 201, 204)

    started = time.perf_counter()
    pool_run(server, threads, len(bodies), one)
    return len(bodies) / (time.perf_counter() - started)


def get_rate(server: Server, folder: str, files: int, gets: int) -> float:
    """Row 4: `gets` GETs, round-robin over `folder`'s `files` 4 KiB files, 8 connections."""

    def one(s: requests.Session, i: int) -> None:
        r = check(s.get(server.url(f"{folder}f{i % files:05d}.bin"), timeout=TIMEOUT), 200)
        if len(r.content) != SMALL_SIZE:
            raise RuntimeError(f"GET returned {len(r.content)} bytes, expected {SMALL_SIZE}")

    started = time.perf_counter()
    pool_run(server, THREADS, gets, one)
    return gets / (time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# row 3: rclone copy of a tree


def make_tree(root: Path, files: int, folders: int) -> None:
    """`files` files of 1-8 KiB of seeded random bytes, spread over `folders` folders;
    every fourth folder holds its files one level further down (two levels deep)."""
    rng = random.Random(SEED + 3)
    per = files // folders
    for f in range(folders):
        folder = root / f"d{f:02d}" / (f"sub{f:02d}" if f % 4 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per + (files % folders if f == folders - 1 else 0)):
            (folder / f"f{i:03d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 8192)))


def rclone_copy(exe: str, server: Server, source: Path, scratch: Path) -> float:
    """Row 3: wall seconds of `rclone copy source :webdav:/dest` (8 transfers, no pacer)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    env |= {"HOME": str(scratch), "RCLONE_CONFIG": "/dev/null"}
    flags = ["--webdav-url", server.dav, "--webdav-vendor", "other"]
    flags += ["--transfers", "8", "--webdav-pacer-min-sleep", "0"]
    if server.auth is not None:
        obscured = subprocess.run(
            [exe, "obscure", server.auth[1]], capture_output=True, text=True, check=True
        ).stdout.strip()
        flags += ["--webdav-user", server.auth[0], "--webdav-pass", obscured]
    command = [exe, "copy", str(source), ":webdav:/dest", *flags]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"rclone copy exited with {done.returncode}: {done.stderr[-600:]}")
    return took


# --------------------------------------------------------------------------------------------
# rows 5 and 6: one big file


def big_put_get(server: Server, payload: Path, size: int) -> tuple[float, float]:
    """PUT then GET of the `size`-byte `payload`: (PUT MB/s, GET MB/s)."""
    big = server.url("big.bin")
    with server.session() as s:
        started = time.perf_counter()
        check(s.put(big, data=FileBody(payload, size), timeout=TIMEOUT), 200, 201, 204)
        put = size / (time.perf_counter() - started) / 1e6
        started = time.perf_counter()
        with check(s.get(big, stream=True, timeout=TIMEOUT), 200) as r:
            got = sum(len(b) for b in r.iter_content(IO_BLOCK))
        get = size / (time.perf_counter() - started) / 1e6
    if got != size:
        raise RuntimeError(f"GET returned {got} bytes, expected {size}")
    return put, get


# --------------------------------------------------------------------------------------------
# row 7: PROPFIND of a big folder


def propfind_big_folder(server: Server, entries: int, repeat: int) -> dict[str, float]:
    """Creates `entries` empty files in `/many/` (timed apart: `setup_s`), then `repeat`
    PROPFINDs depth 1 asking for the 6 properties clients ask for: median and p99 in ms."""
    mkcol(server, "many/")

    def one(s: requests.Session, i: int) -> None:
        check(s.put(server.url(f"many/e{i:05d}"), data=b"", timeout=TIMEOUT), 201, 204)

    started = time.perf_counter()
    pool_run(server, CREATE_THREADS, entries, one)
    setup = time.perf_counter() - started
    headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
    times = []
    with server.session() as s:
        for _ in range(repeat):
            started = time.perf_counter()
            r = s.request(
                "PROPFIND", server.url("many/"), data=NAMED_PROPS, headers=headers, timeout=TIMEOUT
            )
            times.append(time.perf_counter() - started)
            found = len(RESPONSE_TAG.findall(check(r, 207).content))
            if found != entries + 1:
                raise RuntimeError(f"PROPFIND listed {found} entries, expected {entries + 1}")
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return {
        "propfind_p50": statistics.median(times) * 1000,
        "propfind_p99": p99 * 1000,
        "propfind_setup": setup,
    }


# --------------------------------------------------------------------------------------------
# row 9: RSS during a huge streamed PUT


class StampedBody:
    """`size` bytes streamed from a generator (no file on disk): one random 1 MiB block,
    stamped with a counter every `STAMP_EVERY` bytes so no chunk repeats (no dedup).
    At each quarter of the body it records the RSS of the server's largest process."""

    def __init__(self, size: int, pid: int) -> None:
        self.size = size
        self.pid = pid
        self.quarters: list[float] = []
        self._base = random.Random(SEED + 9).randbytes(IO_BLOCK)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        sent, marks = 0, [self.size * q // 4 for q in (1, 2, 3, 4)]
        block = bytearray(self._base)
        n = 0
        while sent < self.size:
            for off in range(0, IO_BLOCK, STAMP_EVERY):
                block[off : off + 8] = n.to_bytes(8, "big")
                n += 1
            piece = bytes(block[: min(IO_BLOCK, self.size - sent)])
            yield piece
            sent += len(piece)
            while marks and sent >= marks[0]:
                marks.pop(0)
                self.quarters.append(largest_rss(self.pid) / MIB)


def largest_rss(pid: int) -> int:
    """The RSS of the largest of process `pid` and its children (with several workers,
    the one taking the upload), in bytes (0 once it is gone)."""
    try:
        return max(process_rss(psutil.Process(pid)), default=0)
    except psutil.Error:
        return 0


def huge_put_rss(server: Server, size: int) -> dict[str, float]:
    """Row 9: peak RSS (MiB) of the server's largest process (the worker taking it)
    while it takes a `size`-byte streamed PUT, that RSS just before, and when 25, 50,
    75 and 100 % of the body had been sent."""
    before = largest_rss(server.proc.pid) / MIB
    sampler = RssSampler(server.proc.pid)  # its peak counts from now on
    body = StampedBody(size, server.proc.pid)
    with server.session() as s:
        started = time.perf_counter()
        check(s.put(server.url("huge.bin"), data=body, timeout=TIMEOUT), 200, 201, 204)
        took = time.perf_counter() - started
    sampler.stop()
    out = {"huge_before": before, "huge_peak": sampler.peak_one / MIB}
    out["huge_mbps"] = size / took / 1e6
    for q, rss in zip((25, 50, 75, 100), body.quarters, strict=False):
        out[f"huge_q{q}"] = rss
    return out
