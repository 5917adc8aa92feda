"""What the whole-content checksums (SHA-1, MD5, SHA-256) cost a big PUT; prints figures.

    python -m tests.bench.checksum_cost [--size-mib 1024] [--rounds 3] [--stacks embedded]

Each round starts, for each stack, our server twice on a fresh data directory: as
shipped ("with"), and through `tests.bench.serve_without_checksums` ("without": the
hashing skipped, all else equal), alternating which goes first. Each PUTs the payload
(a new file), GETs it whole and PUTs it again (every chunk deduplicated: the upload is
then hashing-bound, which shows the checksums' share best). The table gives medians
in MB/s and the cost of the checksums as a share of the time. hashlib's single-thread
speed of each algorithm on this machine is printed first, for reference. Not a test:
pytest does not collect it. Reuses the process handling of `tests.bench.bench`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.bench import (
    ADMIN_PASSWORD,
    HOST,
    IO_BLOCK,
    MIB,
    TIMEOUT,
    FileBody,
    FullStack,
    Server,
    check,
    checkout_env,
    launch,
    make_payload,
    settle,
    timed,
)
from tests.services.processes import free_port

VARIANTS = {"with": "davserver", "without": "tests.bench.serve_without_checksums"}
METRICS = ("put", "get", "reput")


def hashlib_speeds(size: int = 256 * MIB) -> dict[str, float]:
    """MB/s of each algorithm over `size` bytes in 4 MiB updates, one thread."""
    block = os.urandom(4 * MIB)
    speeds = {}
    for name in ("sha1", "md5", "sha256"):
        h = hashlib.new(name)
        started = time.perf_counter()
        for _ in range(size // len(block)):
            h.update(block)
        speeds[name] = size / (time.perf_counter() - started) / 1e6
    return speeds


def start(variant: str, stack: str, workdir: Path, full: FullStack | None) -> Server:
    port = free_port()
    extra = {"DAVSERVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    if stack == "full":
        assert full is not None
        extra.update(full.environment())
    argv = [sys.executable, "-m", VARIANTS[variant], "serve", "--host", HOST]
    argv += ["--port", str(port), "--data-dir", str(workdir / "data")]
    env = checkout_env(**extra)
    dav = f"http://{HOST}:{port}/dav/"
    return launch(f"{variant}/{stack}", argv, workdir, dav, env, ("admin", ADMIN_PASSWORD))


def measure(server: Server, payload: Path, size: int) -> dict[str, float]:
    big = server.url("big.bin")
    with server.session() as s:

        def put() -> None:
            check(s.put(big, data=FileBody(payload, size), timeout=TIMEOUT), 201, 204)

        def get() -> None:
            with check(s.get(big, stream=True, timeout=TIMEOUT), 200) as r:
                got = sum(len(b) for b in r.iter_content(IO_BLOCK))
            if got != size:
                raise RuntimeError(f"GET returned {got} bytes, expected {size}")

        return {
            "put": size / timed(put) / 1e6,
            "get": size / timed(get) / 1e6,
            "reput": size / timed(put) / 1e6,
        }


def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    size = args.size_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="davbench-sums-", dir="/tmp"))
    full = FullStack() if "full" in args.stacks else None
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        payload = tmp / "payload.bin"
        make_payload(payload, size)
        settle(payload)
        if full is not None:
            full.start()
        for round_no in range(args.rounds):
            order = list(VARIANTS) if round_no % 2 == 0 else list(reversed(VARIANTS))
            for stack in args.stacks:
                for variant in order:
                    workdir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=tmp))
                    server = start(variant, stack, workdir, full)
                    try:
                        figures = measure(server, payload, size)
                    finally:
                        server.stop()
                        settle(payload)
                    runs.setdefault(f"{stack}/{variant}", []).append(figures)
                    shown = ", ".join(f"{k} {v:.0f} MB/s" for k, v in figures.items())
                    print(f"round {round_no + 1}: {stack}/{variant}: {shown}", flush=True)
    finally:
        if full is not None:
            full.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return runs


def report(runs: dict[str, list[dict[str, float]]], stacks: list[str]) -> None:
    print("\nmedians, MB/s (cost: share of the time the checksums add)")
    print(f"{'stack':<10} {'metric':<7} {'without':>9} {'with':>9} {'cost':>7}")
    for stack in stacks:
        for metric in METRICS:
            base = statistics.median(r[metric] for r in runs[f"{stack}/without"])
            sums = statistics.median(r[metric] for r in runs[f"{stack}/with"])
            cost = (base / sums - 1) * 100
            print(f"{stack:<10} {metric:<7} {base:>9.0f} {sums:>9.0f} {cost:>6.1f}%")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stacks", default="embedded", help="embedded,full")
    args = p.parse_args(argv)
    args.stacks = [s for s in args.stacks.split(",") if s]
    speeds = hashlib_speeds()
    print("hashlib, one thread: " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in speeds.items()))
    report(run(args), args.stacks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
