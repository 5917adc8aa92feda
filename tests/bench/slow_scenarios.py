"""A new client's latency while idle and slow clients hold connections; prints a table
(not a test, never run in CI).

    python -m tests.bench.slow_scenarios [--tries 20] [--idle 200] [--half-open 200]
                                       [--peers wsgidav-fs,rclone] [--no-ours]
                                       [--set KEY=VALUE ...] [--label NAME]

For each target (a fresh `davserver serve` process on the embedded stack, then the
peers `wsgidav` and `rclone serve webdav`, started as `tests.bench.bench` does), four
scenarios: (a) nothing else open, (b) `--idle` kept-alive connections, each after one
answered HEAD, (c) `--half-open` requests whose head never ends (request line and one
header sent), (d) both. In each, `--tries` new clients one after another open a
connection and send a HEAD of the WebDAV root (Basic auth on ours); the table gives the
median and the maximum of connect-to-answer-head, and how many got no answer within
`--timeout` seconds (counted at the timeout); one HEAD before them warms the server
up (its first request imports and logs in). `idle kept` is how many of the idle
connections the server still held when the tries began. Run it from the checkout to
measure (`PYTHONPATH` is the working directory); `--set` passes `DAVSERVER_<KEY>` to ours.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.bench.bench import (
    ADMIN_PASSWORD,
    Server,
    find_tool,
    rclone_target,
    start_ours,
    table,
    wsgidav_target,
)
from tests.bench.slow_clients import one_head, open_half, open_idle

SCENARIOS = ("a: none", "b: idle", "c: half-open", "d: both")


def still_open(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has not closed (nothing to read means open)."""
    kept = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            kept += sock.recv(1) != b""
        except BlockingIOError:
            kept += 1
        except OSError:
            pass
    return kept


def scenario(server: Server, name: str, args: argparse.Namespace) -> list[str]:
    """One table row's cells for `name` on `server`."""
    with ExitStack() as stack:
        idle = open_idle(server, "", args.idle)[0] if name in SCENARIOS[1::2] else []
        half = open_half(server, "", args.half_open) if name in SCENARIOS[2:] else []
        for sock in idle + half:
            stack.enter_context(sock)
        time.sleep(0.5)  # let the server settle what it does with them
        kept = still_open(idle) if idle else 0
        times = [one_head(server, "", args.timeout) for _ in range(args.tries)]
    time.sleep(1)  # the server sees those connections close before the next scenario
    answered = [t for t in times if t is not None]
    failed = len(times) - len(answered)
    counted = answered + [args.timeout] * failed
    return [
        name,
        f"{statistics.median(counted) * 1000:.1f}",
        f"{max(counted) * 1000:.1f}",
        str(failed),
        str(kept) if idle else "-",
    ]


def targets(args: argparse.Namespace) -> Iterator[tuple[str, Callable[[Path], Server]]]:
    if not args.no_ours:
        settings = dict(item.split("=", 1) for item in args.set)
        env = {f"DAVSERVER_{key.upper()}": value for key, value in settings.items()}
        yield args.label, lambda workdir: start_ours("embedded", workdir, None, **env)
    for peer in filter(None, args.peers.split(",")):
        exe = find_tool("wsgidav" if peer == "wsgidav-fs" else peer)
        if exe is None:
            print(f"note: {peer} not found, skipped", file=sys.stderr)
            continue
        target = wsgidav_target(exe) if peer == "wsgidav-fs" else rclone_target(exe)
        yield target.name, target.start


@contextmanager
def running(start: Callable[[Path], Server]) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="davbench-slow-") as tmp:
        server = start(Path(tmp))
        try:
            yield server
        finally:
            server.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--half-open", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--peers", default="wsgidav-fs,rclone")
    parser.add_argument("--no-ours", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label", default="ours/embedded")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    assert ADMIN_PASSWORD  # ours is asked with the bench's admin login
    rows = []
    for name, start in targets(args):
        with running(start) as server:
            one_head(server, "", args.timeout)  # warm-up: first imports, first login
            for which in SCENARIOS:
                rows.append([name, *scenario(server, which, args)])
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    header = ["target", "scenario", "median ms", "max ms", "no answer", "idle kept"]
    print(table(header, rows, left=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
