"""What verified reads (design invariant 24) cost a GET; prints figures.

    python -m tests.bench.verify_cost [--size-mib 256] [--rounds 3] [--gets 3]
                                      [--targets ours,ours-sealed,wsgidav-fs]

The server is never rebuilt without verification (a build that skips it is not a
server anyone runs). Instead, three measurements side by side:

- GET MB/s of a `--size-mib` random (incompressible) file from davserver's embedded
  stack with default settings (`ours`: raw chunks, verified by their SHA-256) and with
  encryption on (`ours-sealed`: each chunk sealed with AES-GCM-SIV, verified by its
  tag), each a separate process started fresh per round with an empty data directory;
- the same GET from WsgiDAV's FilesystemProvider (`wsgidav-fs`), which verifies
  nothing: the peer that reads a plain file;
- in this process, the CPU each verified read costs per MiB: SHA-256 of 1 MiB
  chunks, `ChunkVault.get` of a raw chunk (read from memory, then hashed) and of a
  sealed one (opened and checked against its tag), on this machine.

Each round PUTs the file once, then times `--gets` GETs (the median is kept); the
tables give medians over the rounds, the share of a GET's time per MiB that the
verified read of its chunks is (raw or sealed), and the GET rate one SHA-256 pass
alone would cap a single core at. Not a
test: pytest does not collect it. Reuses the process handling of `tests.bench.bench`.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Locator
from providers.codec import ChunkVault, KeyRing
from tests.bench.bench import (
    IO_BLOCK,
    MIB,
    TIMEOUT,
    FileBody,
    Server,
    check,
    find_tool,
    fmt,
    make_payload,
    settle,
    start_ours,
    table,
    timed,
    wsgidav_target,
)

Rates = dict[str, tuple[float, float]]  # target -> (PUT MB/s, GET MB/s)
TARGETS = ("ours", "ours-sealed", "wsgidav-fs")
CHUNK = MIB  # the default mean chunk size: what one verification covers
CPU_SAMPLE = 64  # MiB hashed / opened per in-process figure


def start(name: str, workdir: Path) -> Server:
    if name == "ours":
        return start_ours("embedded", workdir, None)
    if name == "ours-sealed":
        return start_ours("embedded", workdir, None, DAVSERVER_ENCRYPTION="true")
    exe = find_tool("wsgidav")
    if exe is None:
        raise RuntimeError("the wsgidav command is not installed")
    return wsgidav_target(exe).start(workdir)


def get_rates(server: Server, payload: Path, size: int, gets: int) -> tuple[float, float]:
    """(PUT MB/s, median GET MB/s of `gets` GETs) of the file on `server`."""
    url = server.url("big.bin")
    with server.session() as s:
        put = timed(lambda: check(s.put(url, data=FileBody(payload, size), timeout=TIMEOUT), 201))

        def get() -> None:
            with check(s.get(url, stream=True, timeout=TIMEOUT), 200) as r:
                got = sum(len(block) for block in r.iter_content(IO_BLOCK))
            if got != size:
                raise RuntimeError(f"GET returned {got} bytes, expected {size}")

        times = [timed(get) for _ in range(gets)]
    return size / put / 1e6, size / statistics.median(times) / 1e6


def run_round(names: list[str], payload: Path, size: int, gets: int) -> Rates:
    found = {}
    for name in names:
        workdir = Path(tempfile.mkdtemp(prefix="davbench-verify-"))
        try:
            settle(payload)
            server = start(name, workdir)
            try:
                found[name] = get_rates(server, payload, size, gets)
            finally:
                server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"  {name}: PUT {fmt(found[name][0])} MB/s, GET {fmt(found[name][1])} MB/s")
    return found


def ms_per_mib(work: Callable[[], object], mib: int) -> float:
    """Best of three timings of `work` (which handles `mib` MiB), in ms per MiB."""
    best = min(timed(work) for _ in range(3))
    return best * 1000 / mib


def cpu_costs() -> dict[str, float]:
    """ms/MiB of SHA-256 and of the vault's verified reads (raw, sealed), in memory."""
    rng = random.Random(1)
    data = [rng.randbytes(CHUNK) for _ in range(CPU_SAMPLE)]
    hashes = [hashlib.sha256(c).hexdigest() for c in data]
    costs = {"SHA-256": ms_per_mib(lambda: [hashlib.sha256(c).digest() for c in data], CPU_SAMPLE)}
    for label, keys in (("raw", None), ("sealed", KeyRing(bytes(range(32))))):
        vault = ChunkVault(MemoryBlobStore(), keys=keys)
        stored = [(h, vault.put(h, c)) for h, c in zip(hashes, data, strict=True)]

        def read_all(vault: ChunkVault = vault, stored: list[tuple[str, Locator]] = stored) -> None:
            for chunk_hash, locator in stored:
                vault.get(chunk_hash, CHUNK, locator)

        costs[f"vault get, {label}"] = ms_per_mib(read_all, CPU_SAMPLE)
    return costs


def report(runs: list[Rates], names: list[str], costs: dict[str, float]) -> None:
    put = {n: statistics.median(r[n][0] for r in runs) for n in names}
    get = {n: statistics.median(r[n][1] for r in runs) for n in names}
    sha = costs["SHA-256"]
    read_cost = {"ours": costs["vault get, raw"], "ours-sealed": costs["vault get, sealed"]}
    rows = []
    for name in names:
        ms = 1000 / (get[name] * 1e6 / MIB)  # ms per MiB of GET
        share = f"{100 * read_cost[name] / ms:.0f} %" if name in read_cost else "-"
        rows.append([name, fmt(put[name]), fmt(get[name]), f"{ms:.2f}", share])
    header = ["target", "PUT MB/s", "GET MB/s", "GET ms/MiB", "verified read CPU"]
    print("\nGET of the file (medians over rounds; the last column: the in-process cost")
    print("of reading its chunks through the vault, as a share of the GET's time per MiB)")
    print(table(header, rows))
    print("\nCPU per verified MiB in this process (1 MiB chunks, best of 3)")
    print(table(["work", "ms/MiB"], [[k, f"{v:.3f}"] for k, v in costs.items()]))
    cap = MIB / (sha / 1000) / 1e6
    print(f"\none SHA-256 pass alone caps a single core at {fmt(cap)} MB/s of GET")
    if "wsgidav-fs" in get and "ours" in get:
        print(f"ours / wsgidav-fs GET: {get['ours'] / get['wsgidav-fs']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gets", type=int, default=3)
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args(argv)
    names = [n for n in args.targets.split(",") if n]
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="davbench-verify-payload-") as tmp:
        payload = Path(tmp) / "payload.bin"
        make_payload(payload, size)
        runs = []
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds}", flush=True)
            runs.append(run_round(names if number % 2 else names[::-1], payload, size, args.gets))
            time.sleep(0.5)
    report(runs, names, cpu_costs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
