"""Push figures: how fast a commit reaches a waiting client, and how many wait at once.

Run from the repository root (a script, not a test: pytest does not collect it):

    python -m tests.bench.push_latency                        # both parts, defaults
    python -m tests.bench.push_latency --writes 200 --stacks full
    python -m tests.bench.push_latency --writes 0 --waiters 1000

1. Latency (`--writes N`, per stack in `--stacks`): `davserver serve` processes, A and
   B (the full stack: two instances on one PostgreSQL, S3 and Redis; embedded: one
   process, A = B). An event stream is open on B; N small PUTs go to A one after the
   other. For each: the time from the PUT's 201 (received by the client) to its event
   on B's stream, and from the PUT sent to the event. p50, p99 and max. Negative:
   the event came before the 201 (it is published at the commit, before the answer).
2. Capacity (`--waiters N`, embedded): N long polls held on one instance (raw sockets,
   no client threads), with `push_waiters` = N and the default `server_threads`; then
   how fast a plain `GET /api/v1/me` is (median of 20) with none and with N waiting,
   the server's RSS and threads, and how long one PUT takes to answer all N.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import selectors
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from davserver.settings import Settings
from tests.support.sse import EventReader
from tests.support.subprocess_server import ServeProcess

ADMIN_PASSWORD = "bench-secret"
BODY = b"x" * 1024


@contextlib.contextmanager
def full_settings(workdir: Path) -> Iterator[Settings]:
    """Settings of the full stack on services started for the bench."""
    from tests.services.postgres import PostgresService
    from tests.services.redis import RedisService
    from tests.services.s3 import S3Service

    services = [PostgresService(), S3Service(), RedisService()]
    try:
        for service in services:
            service.start()
        postgres, s3, redis = services
        yield Settings(
            data_dir=workdir / "data",
            admin_password=ADMIN_PASSWORD,
            database_url=postgres.create_database(),  # type: ignore[attr-defined]
            s3_endpoint=s3.endpoint,  # type: ignore[attr-defined]
            s3_access_key=s3.access_key,  # type: ignore[attr-defined]
            s3_secret_key=s3.secret_key,  # type: ignore[attr-defined]
            s3_bucket="bench-push",
            redis_url=redis.url,  # type: ignore[attr-defined]
        )
    finally:
        for service in reversed(services):
            with contextlib.suppress(Exception):
                service.stop()  # type: ignore[attr-defined]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def api(server: ServeProcess, path: str) -> str:
    return f"http://127.0.0.1:{server.port}/api/v1/{path}"


def latency(settings: Settings, workdir: Path, writes: int, stack: str) -> list[str]:
    """Part 1 for one stack: the table's rows."""
    a = ServeProcess(settings, workdir / f"{stack}-a.log")
    b = a if stack == "embedded" else ServeProcess(settings, workdir / f"{stack}-b.log")
    try:
        stream = EventReader(b.client(), api(b, f"events?cursor={latest_cursor(b)}"))
        writer = a.client()
        for n in range(5):  # warm-up: connections, caches
            writer.put(a.url(f"warm{n}.txt"), data=BODY, timeout=30).raise_for_status()
        warm = stream.take(5, timeout=10)
        assert [e.data["path"] for e in warm] == [f"/warm{n}.txt" for n in range(5)], warm
        from_201, from_sent = [], []
        for n in range(writes):
            sent = time.monotonic()
            response = writer.put(a.url(f"f{n}.txt"), data=BODY, timeout=30)
            answered = time.monotonic()
            assert response.status_code == 201, response.status_code
            event = stream.next(timeout=10)
            assert event.data["path"] == f"/f{n}.txt", event.data
            from_201.append(event.at - answered)
            from_sent.append(event.at - sent)
        stream.close()
    finally:
        for server in {id(a): a, id(b): b}.values():
            server.stop()
    label = f"{stack} ({'A -> B' if stack == 'full' else 'one instance'})"
    return [
        f"| {label} | 201 -> event | {ms(percentile(from_201, 50))} "
        f"| {ms(percentile(from_201, 99))} | {ms(max(from_201))} |",
        f"| {label} | PUT sent -> event | {ms(percentile(from_sent, 50))} "
        f"| {ms(percentile(from_sent, 99))} | {ms(max(from_sent))} |",
    ]


def latest_cursor(server: ServeProcess) -> str:
    """The feed's position now (`GET /api/v1/changes/latest`)."""
    response = server.client().get(api(server, "changes/latest"), timeout=30)
    response.raise_for_status()
    return str(response.json()["cursor"])


def me_latency(server: ServeProcess, rounds: int = 20) -> float:
    session = server.client()
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        session.get(api(server, "me"), timeout=30).raise_for_status()
        times.append(time.monotonic() - started)
    return statistics.median(times)


def waiting(server: ServeProcess) -> int:
    """The `davserver_push_waiters` gauge of `/metrics` (open from loopback)."""
    text = server.client().get(f"http://127.0.0.1:{server.port}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("davserver_push_waiters "):
            return int(float(line.split()[1]))
    return 0


def open_polls(server: ServeProcess, cursor: str, count: int) -> list[socket.socket]:
    """`count` long polls of 120 s, each on its own connection, left waiting."""
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    request = (
        f"GET /api/v1/changes/wait?cursor={cursor}&timeout=120 HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Basic {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(request)
        sockets.append(sock)
    return sockets


def read_all(sockets: list[socket.socket], timeout: float) -> list[bytes]:
    """Each socket's whole answer (they close after it), within `timeout`."""
    selector = selectors.DefaultSelector()
    answers = {sock: b"" for sock in sockets}
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_count = len(sockets)
    while open_count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            answers[sock] += data
            if not data:
                selector.unregister(sock)
                sock.close()
                open_count -= 1
    return list(answers.values())


def capacity(workdir: Path, waiters: int) -> list[str]:
    """Part 2 (see the module docstring): the table's rows."""
    settings = Settings(
        data_dir=workdir / "capacity", admin_password=ADMIN_PASSWORD, push_waiters=waiters
    )
    server = ServeProcess(settings, workdir / "capacity.log")
    try:
        process = psutil.Process(server.pid)
        idle_me, idle_rss = me_latency(server), process.memory_info().rss
        threads = process.num_threads()
        cursor = latest_cursor(server)
        opened = time.monotonic()
        polls = open_polls(server, cursor, waiters)
        probe = server.client()
        # Watch the gauge, not probes: a probe is admitted as a waiter for a moment,
        # and a poll arriving then is refused (503), so the count never got there.
        while waiting(server) < waiters and time.monotonic() - opened < 120:
            time.sleep(0.2)
        settled = time.monotonic() - opened
        refused = probe.get(api(server, f"changes/wait?cursor={cursor}&timeout=0"), timeout=30)
        busy_me, busy_rss = me_latency(server), process.memory_info().rss
        started = time.monotonic()
        server.client().put(server.url("wake.txt"), data=BODY, timeout=30).raise_for_status()
        answers = read_all(polls, timeout=60)
        woke = time.monotonic() - started
        changed = sum(b'{"changes": true}' in answer for answer in answers)
    finally:
        server.stop()
    return [
        f"| server threads (server_threads 32 + push_waiters {waiters}) | {threads} |",
        f"| RSS idle / with {waiters} waiting | {idle_rss >> 20} MiB / {busy_rss >> 20} MiB "
        f"({(busy_rss - idle_rss) / waiters / 1024:.0f} KiB per waiter) |",
        f"| GET /api/v1/me median, idle / with {waiters} waiting | {ms(idle_me)} ms / "
        f"{ms(busy_me)} ms |",
        f"| all {waiters} taken (one more refused: {refused.status_code}) after | "
        f"{settled:.1f} s |",
        f"| one PUT answers all {waiters} waits with changes: true | {changed} in "
        f"{woke * 1000:.0f} ms |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--stacks", default="full,embedded")
    parser.add_argument("--waiters", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="davbench-push-") as tmp:
        workdir = Path(tmp)
        if args.writes:
            rows = []
            for stack in filter(None, args.stacks.split(",")):
                if stack == "full":
                    with full_settings(workdir) as settings:
                        rows += latency(settings, workdir, args.writes, stack)
                else:
                    settings = Settings(data_dir=workdir / "data", admin_password=ADMIN_PASSWORD)
                    rows += latency(settings, workdir, args.writes, stack)
            print(f"\nPush latency over {args.writes} PUTs of 1 KiB, ms:\n")
            print("| stack | from | p50 | p99 | max |\n|---|---|---|---|---|")
            print("\n".join(rows))
        if args.waiters:
            rows = capacity(workdir, args.waiters)
            print(f"\nWaiting clients on one embedded instance ({args.waiters} long polls):\n")
            print("| measure | value |\n|---|---|")
            print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
