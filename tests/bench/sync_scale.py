"""Issue 20's rows at sync scale, ours against WebDAV peers, in one run (not a test).

    python -m tests.bench.sync_scale [--rounds 3] [--stacks embedded,full] [--workers 1,2]
                                     [--peers wsgidav-fs,rclone] [--big-mib 1024]
                                     [--huge-gib 10] [--no-ceiling] [--quick]

The targets are those of `tests.bench.bench` (each a separate process, fresh for every
round, alternated: ours, peer, ours, peer; reversed on odd rounds). On each, in order:
4 KiB PUTs on one connection and on 8 (rows 1-2), GETs of those files on 8 connections
(row 4), `rclone copy` of a tree of small files (row 3), a big PUT and GET (rows 6 and 5),
PROPFIND depth 1 of a folder of 10,000 entries (row 7), then a new client's HEAD while
idle and half-open connections are held (row 8); then, on ours only, a huge streamed PUT
to a freshly started server, sampling its RSS (row 9). Bounds measured beside them: a
WSGI app that does nothing, on cheroot (rows 1, 2, 4: `tests.bench.http_ceiling`), and
the full stack's S3 server alone (rows 5, 6: `tests.bench.s3_ceiling`). Then medians,
ratios of medians (> 1: ours better) and the issue's targets. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tests.bench import http_ceiling, s3_ceiling
from tests.bench import slow_clients as slow
from tests.bench import sync_workloads as work
from tests.bench.bench import (
    MIB,
    FullStack,
    Server,
    Target,
    find_tool,
    interleave,
    make_payload,
    ours_target,
    peer_targets,
    settle,
    split_targets,
    workspace,
)
from tests.bench.http_ceiling import NOOP
from tests.bench.sync_report import S3_RAW, goals, report

GIB = 1024 * MIB
Results = dict[str, float]


@dataclasses.dataclass
class Plan:
    """What one target is given: counts, payloads and tools, the same for all."""

    counts: work.Counts
    payload: Path
    big: int
    huge: int
    smalls: list[bytes]
    tree: Path
    rclone: str | None


def measure(server: Server, plan: Plan, workdir: Path) -> Results:
    """Rows 1-8 on one started `server` (in the module docstring's order), and the peak
    RSS of the server over them."""
    c = plan.counts
    out: Results = {}
    out["put1"] = work.put_rate(server, "s1/", plan.smalls, 1)
    out["put8"] = work.put_rate(server, "s8/", plan.smalls, work.THREADS)
    out["get8"] = work.get_rate(server, "s8/", len(plan.smalls), c.gets)
    if plan.rclone is not None:
        out["rclone_copy"] = work.rclone_copy(plan.rclone, server, plan.tree, workdir)
    out["big_put"], out["big_get"] = work.big_put_get(server, plan.payload, plan.big)
    out |= work.propfind_big_folder(server, c.entries, c.propfinds)
    out |= slow.held_open_heads(
        server, "s8/f00000.bin", c.idle, c.half_open, c.heads, c.head_timeout
    )
    out["rss_run"] = server.sampler.peak / MIB
    return out


def s3_raw_target(full: FullStack) -> Target:
    """The S3 server of the full stack on its own: rows 5 and 6 only, no server of ours."""

    def refuse(_workdir: Path) -> Server:
        raise RuntimeError("the S3 server is measured directly, not started")

    return Target(S3_RAW, False, refuse)


def measure_small(server: Server, plan: Plan) -> Results:
    """Rows 1, 2 and 4 only (for the no-op app of `tests.bench.http_ceiling`)."""
    out: Results = {}
    out["put1"] = work.put_rate(server, "s1/", plan.smalls, 1)
    out["put8"] = work.put_rate(server, "s8/", plan.smalls, work.THREADS)
    out["get8"] = work.get_rate(server, "s8/", len(plan.smalls), plan.counts.gets)
    return out


def run_target(target: Target, tmp: Path, plan: Plan, full: FullStack | None) -> Results:
    """Start `target` on a fresh data directory, measure it, stop it. The directory is
    kept until the run ends (see `tests.bench.bench.run_target` for why)."""
    if target.name == S3_RAW:
        assert full is not None
        put, get = s3_ceiling.raw_put_get(full.s3, plan.payload, plan.big)
        settle(plan.payload)
        return {"big_put": put, "big_get": get}
    prefix = target.name.replace("/", "-") + "-"
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp))
    server = target.start(workdir)
    try:
        out = measure_small(server, plan) if target.name == NOOP else measure(server, plan, workdir)
    finally:
        server.stop()
        settle(plan.payload)
    if target.ours and plan.huge:
        # on a server of its own, so the row shows what the upload costs, not what the
        # rows before it left behind (a PROPFIND of 10,000 entries leaves the heap large)
        server = target.start(Path(tempfile.mkdtemp(prefix=prefix + "huge-", dir=tmp)))
        try:
            out |= work.huge_put_rss(server, plan.huge)
        finally:
            server.stop()
            settle(plan.payload)
    return out


def run_rounds(
    rounds: int, targets: list[Target], tmp: Path, plan: Plan, full: FullStack | None
) -> dict[str, list[Results]]:
    runs: dict[str, list[Results]] = {t.name: [] for t in targets}
    for rnd in range(rounds):
        for target in targets if rnd % 2 == 0 else targets[::-1]:
            started = time.monotonic()
            try:
                result = run_target(target, tmp, plan, full)
            except Exception as e:  # report and carry on with the other targets
                print(f"round {rnd + 1} {target.name}: FAILED: {e}", flush=True)
                continue
            runs[target.name].append(result)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.items())
            took = time.monotonic() - started
            print(f"round {rnd + 1} {target.name} ({took:.0f}s): {shown}", flush=True)
    return runs


# --------------------------------------------------------------------------------------------
# what was run, and where


def git_head() -> str:
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%h %cI %s"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    line = done.stdout.strip()
    return line if len(line) <= 110 else line[:107] + "..."


def tool_version(exe: str | None, *args: str) -> str:
    if exe is None:
        return "not found"
    with_version = subprocess.run([exe, *args], capture_output=True, text=True)
    lines = (with_version.stdout or with_version.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


# our defaults that decide speed and capacity (whichever of these the Settings has)
SETTING_WORDS = ("worker", "thread", "fsync", "keep", "timeout", "idle", "connection", "backlog")
SETTING_NAMES = ("chunk_avg_size", "block_size", "compression", "digest_auth", "read_ahead")


def our_defaults() -> str:
    from davserver.settings import Settings

    shown = [
        f"{f.name}={getattr(Settings(), f.name)}"
        for f in dataclasses.fields(Settings)
        if f.name in SETTING_NAMES or any(w in f.name for w in SETTING_WORDS)
    ]
    return ", ".join(shown)


def print_header(args: argparse.Namespace, counts: work.Counts) -> None:
    vm = psutil.virtual_memory()
    print(f"davserver sync-scale bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {os.cpu_count()} CPUs ({psutil.cpu_count(logical=False)} cores), "
        f"{vm.total / GIB:.1f} GiB RAM ({vm.available / GIB:.1f} available), "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {platform.platform()}; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print(f"git HEAD: {git_head()}")
    print(f"ours: default settings: {our_defaults()}")
    print(
        f"wsgidav: {tool_version(find_tool('wsgidav'), '--version')}; "
        f"rclone: {tool_version(find_tool('rclone'), 'version')}"
    )
    print(
        f"run: {args.rounds} round(s), stacks {args.stacks}, workers {args.workers}, "
        f"peers {args.peers}, big file "
        f"{args.big_mib} MiB, huge PUT {args.huge_gib} GiB (ours only); counts {counts}",
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.sync_scale", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds over all targets (medians)")
    p.add_argument("--stacks", default="embedded,full", help="our stacks: embedded,full")
    p.add_argument("--peers", default="wsgidav-fs,rclone", help="peers: wsgidav-fs,rclone")
    p.add_argument("--workers", default="0", help="our worker counts, e.g. 1,2 (0: the default)")
    p.add_argument("--big-mib", type=int, default=1024, help="big PUT/GET file (MiB)")
    p.add_argument("--huge-gib", type=float, default=10, help="huge PUT for RSS (GiB; 0: skip)")
    p.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the no-op app on cheroot (rows 1, 2, 4: tests/bench/http_ceiling.py)",
    )
    p.add_argument("--quick", action="store_true", help="small counts, 64 MiB, 1 GiB huge, 1 round")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.big_mib, args.huge_gib = 1, 64, 1
    split_targets(p, args)
    try:
        args.workers = [int(n) for n in args.workers.split(",") if n]
    except ValueError:
        p.error("--workers: comma-separated numbers")
    if args.big_mib < 1 or args.rounds < 1 or args.huge_gib < 0:
        p.error("--big-mib and --rounds must be at least 1, --huge-gib at least 0")
    return args


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # so the `finally` blocks stop servers and remove files


def prepare(args: argparse.Namespace, tmp: Path, counts: work.Counts) -> Plan:
    started = time.monotonic()
    payload = tmp / "payload.bin"
    make_payload(payload, args.big_mib * MIB)
    tree = tmp / "tree"
    work.make_tree(tree, counts.tree_files, counts.tree_folders)
    rclone = find_tool("rclone")
    if rclone is None:
        print("note: rclone not found: the rclone copy row is skipped", flush=True)
    settle(payload)  # the first target must not run during the payload's writeback
    print(f"payloads ready in {time.monotonic() - started:.1f}s", flush=True)
    smalls = work.small_payloads(counts.small)
    return Plan(counts, payload, args.big_mib * MIB, int(args.huge_gib * GIB), smalls, tree, rclone)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    counts = work.QUICK if args.quick else work.Counts()
    slow.raise_fd_limit(4 * (counts.idle + counts.half_open) + 1024)
    print_header(args, counts)
    with workspace("davsync-", args.stacks) as (tmp, full):
        plan = prepare(args, tmp, counts)
        ours = [ours_target(st, full, n) for st in args.stacks for n in args.workers]
        targets = interleave(ours, peer_targets(args.peers))
        if args.ceiling:
            targets.append(http_ceiling.noop_target())
        if full is not None:
            targets.append(s3_raw_target(full))
        runs = run_rounds(args.rounds, targets, tmp, plan, full)
        report(targets, runs)
        goals(targets, runs)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
