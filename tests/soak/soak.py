"""Soak davserver: N concurrent clients that verify everything they read, for M minutes.

    python -m tests.soak.soak [--clients 8] [--minutes 5] [--instances 1|2] [--workers 2]
                              [--stack embedded|full] [--interval 10] [--big-mib 12]

Starts its own `davserver serve` process(es) (the real CLI, each with `--workers`
processes; `full` also starts PostgreSQL, S3 and Redis from `tests/services`; two
instances share them, as behind a load balancer). Each client owns a folder, keeps a
model of it (name -> SHA-256) and mixes PUT/GET/PROPFIND/MOVE/DELETE on a random
instance, checking every status and every byte it reads against the model; all
clients also race on one shared file, where a read must return one complete body
somebody wrote. Every `--interval` seconds it prints ops, ops/s, errors and the RSS of
every serving process; at the end a final read-back of every file, `davserver fsck`, a
clean stop, and a summary. The exit status is 1 on any error. Not a test: pytest does
not collect it and CI never runs it. See tests/soak/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from davserver.settings import Settings
from tests.support.servers import embedded_settings, full_settings
from tests.support.subprocess_server import ServeProcess, run_cli

KiB, MiB = 1024, 1024 * 1024
TIMEOUT = (10.0, 120.0)  # requests: connect, read
NAMES = [f"f{i:02d}.bin" for i in range(16)]  # per client: small, so names get reused
SHARED = "shared/hot.bin"
POOL_BLOCKS = [random.Random(1000 + i).randbytes(256 * KiB) for i in range(8)]
SHOWN_ERRORS = 20
WEIGHTS = {"put": 30, "get": 30, "propfind": 12, "move": 8, "delete": 8, "shared": 12}


# --- shared state ----------------------------------------------------------------------


@dataclass
class Stats:
    """Counters shared by every client thread (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0

    def record(self, op: str, seconds: float) -> None:
        with self.lock:
            self.ops[op] += 1
            self.latency[op].append(seconds)

    def transfer(self, up: int = 0, down: int = 0) -> None:
        with self.lock:
            self.bytes_up += up
            self.bytes_down += down

    def error(self, message: str) -> None:
        """Count an error; the first `SHOWN_ERRORS` are printed at once."""
        with self.lock:
            self.errors.append(message)
            shown = len(self.errors) <= SHOWN_ERRORS
        if shown:
            print(f"ERROR: {message}", flush=True)

    def total(self) -> int:
        with self.lock:
            return sum(self.ops.values())


class SharedFile:
    """Every body ever PUT to the shared file: a read must match one of them, whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: set[str] = set()

    def will_write(self, digest: str) -> None:
        with self._lock:
            self._written.add(digest)

    def was_written(self, digest: str) -> bool:
        with self._lock:
            return digest in self._written


class Check(Exception):
    """A verification failed: the server answered something the model forbids."""


def expect(response: requests.Response, *codes: int) -> requests.Response:
    if response.status_code not in codes:
        raise Check(f"status {response.status_code}, wanted {codes}: {response.text[:200]!r}")
    return response


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- one client ------------------------------------------------------------------------


class Client:
    """One simulated user of folder `c<n>/`: random operations, each one verified."""

    def __init__(
        self, n: int, servers: list[ServeProcess], stats: Stats, shared: SharedFile, big: int
    ):
        self.folder = f"c{n}/"
        self.big = big  # the largest of the large bodies
        self.servers = servers
        self.sessions = [server.client() for server in servers]
        self.stats, self.shared = stats, shared
        self.rng = random.Random(n)
        self.model: dict[str, tuple[str, int]] = {}  # name -> (sha256, size) it must hold

    def run(self, stop: threading.Event) -> None:
        """Operate until `stop` is set; an unexpected answer or exception is an error."""
        ops: dict[str, Callable[[], None]] = {
            "put": self.put,
            "get": self.get,
            "propfind": self.propfind,
            "move": self.move,
            "delete": self.delete,
            "shared": self.shared_file,
        }
        names, weights = list(WEIGHTS), list(WEIGHTS.values())
        while not stop.is_set():
            op = self.rng.choices(names, weights)[0]
            if op in ("get", "move", "delete") and not self.model:
                op = "put"
            started = time.monotonic()
            try:
                ops[op]()
            except Exception as e:  # anything unexpected (a parse error too) is an error
                self.stats.error(f"{self.folder} {op}: {type(e).__name__}: {e}")
            else:
                self.stats.record(op, time.monotonic() - started)

    def _pick(self) -> tuple[ServeProcess, requests.Session]:
        i = self.rng.randrange(len(self.servers))
        return self.servers[i], self.sessions[i]

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        server, session = self._pick()
        return session.request(method, server.url(path), timeout=TIMEOUT, **kw)

    def body(self) -> bytes:
        """Mostly small bodies, some large; a quarter built from shared blocks (dedup)."""
        roll = self.rng.random()
        if roll < 0.25:
            blocks = self.rng.choices(POOL_BLOCKS, k=self.rng.randint(1, 12))
            return b"".join(blocks) + self.rng.randbytes(self.rng.randint(0, 4 * KiB))
        if roll < 0.85:
            return self.rng.randbytes(self.rng.randint(0, 64 * KiB))
        size = self.rng.randint(min(MiB, self.big), self.big)
        return self.rng.randbytes(size)

    def setup(self) -> None:
        expect(self.request("MKCOL", self.folder), 201)

    def put(self) -> None:
        name, data = self.rng.choice(NAMES), self.body()
        expect(
            self.request("PUT", self.folder + name, data=data), 204 if name in self.model else 201
        )
        self.model[name] = (sha(data), len(data))
        self.stats.transfer(up=len(data))

    def get(self) -> None:
        name = self.rng.choice(NAMES)
        response = self.request("GET", self.folder + name)
        if name not in self.model:
            expect(response, 404)
            return
        expect(response, 200)
        if sha(response.content) != self.model[name][0]:
            raise Check(f"{name}: {len(response.content)} bytes that are not what was PUT")
        self.stats.transfer(down=len(response.content))

    def propfind(self) -> None:
        response = expect(self.request("PROPFIND", self.folder, headers={"Depth": "1"}), 207)
        listed = listing(response.content, self.folder)
        wanted = {name: str(size) for name, (_digest, size) in self.model.items()}
        if listed != wanted:
            raise Check(f"listing {sorted(listed.items())} != model {sorted(wanted.items())}")

    def move(self) -> None:
        source, target = self.rng.choice(sorted(self.model)), self.rng.choice(NAMES)
        if source == target:
            return
        server, session = self._pick()  # Destination must name the same host
        headers = {"Destination": server.url(self.folder + target), "Overwrite": "T"}
        url = server.url(self.folder + source)
        response = session.request("MOVE", url, headers=headers, timeout=TIMEOUT)
        expect(response, 204 if target in self.model else 201)
        self.model[target] = self.model.pop(source)

    def delete(self) -> None:
        name = self.rng.choice(sorted(self.model))
        expect(self.request("DELETE", self.folder + name), 204)
        del self.model[name]
        expect(self.request("HEAD", self.folder + name), 404)

    def shared_file(self) -> None:
        """Race everyone on one file: write it, or read it and check it is one whole body."""
        if self.rng.random() < 0.4:
            data = self.body()
            self.shared.will_write(sha(data))
            expect(self.request("PUT", SHARED, data=data), 201, 204)
            return
        response = expect(self.request("GET", SHARED), 200, 404)
        if response.status_code == 200 and not self.shared.was_written(sha(response.content)):
            raise Check(f"shared file: {len(response.content)} bytes nobody wrote")

    def verify_all(self) -> None:
        """Read back every file of the model through every instance."""
        for i, server in enumerate(self.servers):
            for name, (digest, _size) in sorted(self.model.items()):
                response = self.sessions[i].get(server.url(self.folder + name), timeout=TIMEOUT)
                if response.status_code != 200 or sha(response.content) != digest:
                    self.stats.error(f"final {self.folder}{name} via instance {i + 1}: wrong")


def listing(xml: bytes, folder: str) -> dict[str, str]:
    """{member name: getcontentlength} from a Depth 1 PROPFIND of `folder`."""
    members: dict[str, str] = {}
    for item in ET.fromstring(xml).iter("{DAV:}response"):
        path = unquote(urlsplit(item.findtext("{DAV:}href") or "").path).rstrip("/")
        if path.endswith("/" + folder.rstrip("/")):
            continue
        members[path.rsplit("/", 1)[-1]] = item.findtext(".//{DAV:}getcontentlength") or ""
    return members


# --- servers and their memory ------------------------------------------------------------


def serving_pids(pid: int) -> list[int]:
    """The processes that serve for `davserver serve` process `pid`: its workers (its
    children) when it has several, else itself."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{pid}/children") as f:
        children = sorted(int(p) for p in f.read().split())
        if children:
            return children
    return [pid]


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid` (0 once it is gone)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KiB
    return 0


@contextlib.contextmanager
def stack_settings(stack: str, workdir: Path) -> Iterator[Settings]:
    """Settings for `stack`; `full` starts S3, PostgreSQL and Redis and stops them after."""
    if stack == "embedded":
        yield embedded_settings(workdir / "data")
        return
    import redis

    from tests.services.postgres import PostgresService
    from tests.services.redis import RedisService
    from tests.services.s3 import S3Service

    with contextlib.ExitStack() as cleanup:
        services: list[Any] = []
        for kind in (S3Service, PostgresService, RedisService):
            service = kind()
            service.start()
            cleanup.callback(service.stop)
            services.append(service)
        settings = full_settings(workdir / "data", *services)
        redis.Redis.from_url(settings.redis_url).flushdb()  # no locks from an earlier run
        yield settings


def start_servers(settings: Settings, count: int, workdir: Path) -> list[ServeProcess]:
    """`count` instances on the same settings, one after the other (the first creates the
    schema and the admin user; the others find them)."""
    servers: list[ServeProcess] = []
    try:
        for i in range(count):
            servers.append(ServeProcess(settings, workdir / f"serve{i + 1}.log"))
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers


class Monitor:
    """Prints progress every `interval` seconds and keeps the RSS samples of every
    serving process (each worker of each instance), by label ("#1", "#1 worker 2")."""

    def __init__(self, stats: Stats, servers: list[ServeProcess], interval: float) -> None:
        self.stats, self.servers, self.interval = stats, servers, interval
        self.rss: dict[str, list[int]] = defaultdict(list)
        self.started = time.monotonic()

    def sample(self) -> dict[str, int]:
        values = {}
        for i, server in enumerate(self.servers):
            pids = serving_pids(server.pid)
            for j, pid in enumerate(pids):
                label = f"#{i + 1}" if len(pids) == 1 else f"#{i + 1} worker {j + 1}"
                values[label] = rss_bytes(pid)
        for label, value in values.items():
            self.rss[label].append(value)
        return values

    def run(self, stop: threading.Event) -> None:
        """Sample at once, then at each interval until `stop` is set."""
        self.sample()
        last_ops, last_time = 0, time.monotonic()
        while not stop.wait(self.interval):
            ops, now = self.stats.total(), time.monotonic()
            rss = ", ".join(f"{label} {v / MiB:.1f}" for label, v in self.sample().items())
            rate = (ops - last_ops) / (now - last_time)
            print(
                f"[{now - self.started:6.0f} s] ops {ops:7d} ({rate:6.1f}/s) "
                f"errors {len(self.stats.errors)}  rss MiB {rss}",
                flush=True,
            )
            last_ops, last_time = ops, now


def run_clients(clients: list[Client], seconds: float, monitor: Monitor) -> float:
    """Run every client and the monitor for `seconds`; return the elapsed time."""
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), name=c.folder) for c in clients]
    reporter = threading.Thread(target=monitor.run, args=(stop,), name="monitor")
    started = time.monotonic()
    reporter.start()
    for thread in threads:
        thread.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        reporter.join()
    return time.monotonic() - started


# --- the run -----------------------------------------------------------------------------


def summary(args: argparse.Namespace, stats: Stats, monitor: Monitor, elapsed: float) -> None:
    """Print totals, per-operation counts and latencies, transfer and RSS figures."""
    total = stats.total()
    print(
        f"summary: {args.stack}, {args.instances} instance(s) of {args.workers} worker(s), "
        f"{args.clients} clients, "
        f"{elapsed:.0f} s"
    )
    counts = ", ".join(f"{op} {n}" for op, n in sorted(stats.ops.items()))
    print(f"  ops {total} ({total / elapsed:.1f}/s): {counts}")
    for op, values in sorted(stats.latency.items()):
        ms = sorted(v * 1000 for v in values)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        print(f"  {op:9s} ms p50 {statistics.median(ms):7.1f}  p95 {p95:7.1f}  max {ms[-1]:7.1f}")
    print(
        f"  transferred: up {stats.bytes_up / MiB:.1f} MiB, down {stats.bytes_down / MiB:.1f} MiB"
    )
    for label, samples in monitor.rss.items():
        first, last, peak = (v / MiB for v in (samples[0], samples[-1], max(samples)))
        print(
            f"  rss {label}: first {first:.1f} MiB, last {last:.1f} MiB, "
            f"max {peak:.1f} MiB ({len(samples)} samples)"
        )
    print(f"  errors: {len(stats.errors)}", flush=True)


def finish(settings: Settings, clients: list[Client], stats: Stats) -> None:
    """Read everything back through every instance, then `davserver fsck`."""
    for client in clients:
        client.verify_all()
    # no limit: fsck looks up every object, ~150,000 after 25 minutes on the full stack
    fsck = run_cli(settings, "fsck", timeout=None)
    print(f"  {fsck.stdout.strip() or fsck.stderr.strip()}", flush=True)
    if fsck.returncode != 0:
        stats.error(f"fsck exited {fsck.returncode}")


def soak(args: argparse.Namespace, settings: Settings, workdir: Path) -> int:
    """Start the servers, run the clients, check, stop, report; 1 on any error."""
    servers = start_servers(settings.replace(workers=args.workers), args.instances, workdir)
    pids = ", ".join(str(s.pid) for s in servers)
    print(
        f"soak: {args.stack}, {args.instances} instance(s) (pid {pids}), "
        f"{args.clients} clients, {args.minutes:g} min; logs in {workdir}",
        flush=True,
    )
    stats, shared = Stats(), SharedFile()
    monitor = Monitor(stats, servers, args.interval)
    elapsed = 0.0
    try:
        big = int(args.big_mib * MiB)
        clients = [Client(n, servers, stats, shared, big) for n in range(args.clients)]
        expect(clients[0].request("MKCOL", SHARED.split("/")[0] + "/"), 201)
        for client in clients:
            client.setup()
        elapsed = run_clients(clients, args.minutes * 60, monitor)
        monitor.sample()
        finish(settings, clients, stats)
    finally:
        for i, server in enumerate(servers):
            if (code := server.stop()) != 0:
                stats.error(f"instance {i + 1} exited {code} on SIGINT:\n{server.log_tail()}")
    summary(args, stats, monitor, max(elapsed, 1e-9))
    return 1 if stats.errors else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.soak", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--minutes", type=float, default=5.0, help="duration (5)")
    parser.add_argument("--instances", type=int, choices=(1, 2), default=1)
    parser.add_argument("--stack", choices=("embedded", "full"), default="embedded")
    parser.add_argument("--workers", type=int, default=2, help="processes per instance (2)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds per line (10)")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    parser.add_argument(
        "--big-mib",
        type=float,
        default=12.0,
        help="largest body, MiB (12): 15 %% of bodies are 1 MiB (or this, if less) to it",
    )
    args = parser.parse_args(argv)
    if args.instances == 2 and args.stack == "embedded":
        parser.error("--instances 2 needs --stack full (events between instances need Redis)")
    if args.clients < 1 or args.minutes <= 0:
        parser.error("--clients and --minutes must be positive")
    return args


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # so the `finally` blocks stop servers and services


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="davsoak-"))
    try:
        with stack_settings(args.stack, workdir) as settings:
            return soak(args, settings, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
