"""What one small PUT costs in process, without HTTP (not a test): ours on the embedded
stack, WsgiDAV's FilesystemProvider, and our catalog's statements alone.

Row 1 of `tests.bench.sync_scale` (4 KiB PUTs on one connection) compares whole round
trips, and the no-op app of `tests.bench.http_ceiling` shows what the client and
cheroot leave for the application. This script shows what the applications spend: it
calls each WSGI app directly. It also replays the SQL one PUT of ours runs, traced
from a real PUT (every statement of its transactions), on a plain `sqlite3`
connection: each statement prepared once and bound per PUT, no other Python. That
replay is the least a PUT can cost on this catalog's schema, whatever is trimmed above
it; the script also counts the pages a replayed PUT writes to SQLite's log.

    python -m tests.bench.put_floor [--count 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.bench.bench import SETTLE_SECONDS, SMALL_SIZE, table

WARM_UP = 200  # PUTs before the timed ones (caches, the folder's pages)
PAGE_FRAME = 4096 + 24  # a WAL frame: the page and its header
TRACED = "traced"  # the name of the PUT whose statements are replayed
_LITERAL = re.compile(
    r"x'(?P<blob>[0-9a-f]*)'|'(?P<text>(?:[^']|'')*)'"
    r"|(?<![\w.\"])(?P<num>-?\d+(?:\.\d+)?)(?![\w\"])"
)
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Value = str | bytes | int | float


def call(app: WsgiApp, method: str, path: str, auth: str, body: bytes = b"") -> str:
    """One request straight into `app`; its status line."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost:8080",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": auth,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status: list[str] = []
    answer = app(environ, lambda line, _headers, _exc=None: status.append(line))
    for _ in answer:
        pass
    close = getattr(answer, "close", None)
    if close is not None:
        close()
    return status[0]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def put_times(app: WsgiApp, folder: str, auth: str, count: int) -> list[float]:
    """Seconds of each of `count` 4 KiB PUTs of new files into `folder`, made after
    `WARM_UP` others."""
    assert call(app, "MKCOL", folder, auth).startswith("201")
    for i in range(WARM_UP):
        call(app, "PUT", f"{folder}w{i}", auth, os.urandom(SMALL_SIZE))
    seconds = []
    for i in range(count):
        body = os.urandom(SMALL_SIZE)
        started = time.perf_counter()
        status = call(app, "PUT", f"{folder}f{i}", auth, body)
        seconds.append(time.perf_counter() - started)
        assert status.startswith("201"), status
    return seconds


@contextmanager
def traced_sql() -> Iterator[list[str]]:
    """Fills the list with the SQL (values inlined) of every statement run on the
    SQLite connections SQLAlchemy opens inside the block (the trace callback costs
    each statement a call and an expansion: never on while timing)."""
    seen: list[str] = []

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.set_trace_callback(seen.append)

    event.listen(Engine, "connect", on_connect)
    try:
        yield seen
    finally:
        event.remove(Engine, "connect", on_connect)


@dataclass
class Traced:
    """One PUT of ours: its statements, the values they name, and the catalog."""

    statements: list[str]
    chunk_hash: str
    content_id: int
    node_id: int
    database: str


@contextmanager
def our_app(workdir: Path) -> Iterator[tuple[WsgiApp, str]]:
    """Our WSGI app on the embedded stack in `workdir`, and its admin's credentials."""
    from davserver.app import build_app, build_services, ensure_admin
    from davserver.settings import Settings, validated

    password = "floor-admin-secret"
    services = build_services(validated(Settings(data_dir=workdir, admin_password=password)))
    try:
        ensure_admin(services, out=io.StringIO())
        yield build_app(services), basic("admin", password)
    finally:
        services.close()


def ours(workdir: Path, count: int) -> list[float]:
    """Seconds of each of `count` PUTs of ours (`put_times`)."""
    with our_app(workdir) as (app, auth):
        return put_times(app, "/dav/b/", auth, count)


def trace_ours(workdir: Path) -> Traced:
    """The statements of one PUT of ours (after `WARM_UP` others)."""
    body = os.urandom(SMALL_SIZE)
    with traced_sql() as seen, our_app(workdir) as (app, auth):
        put_times(app, "/dav/b/", auth, 0)
        first = len(seen)
        assert call(app, "PUT", f"/dav/b/{TRACED}", auth, body).startswith("201")
        statements = seen[first:]
    database = workdir / "catalog.db"
    with sqlite3.connect(database) as conn:
        node_id, content_id = conn.execute(
            "SELECT id, content_id FROM node WHERE name = ?", (TRACED,)
        ).fetchone()
    assert node_id != content_id, "the replay tells the two ids apart by value"
    chunk_hash = hashlib.sha256(body).hexdigest()
    return Traced(statements, chunk_hash, content_id, node_id, str(database))


def wsgidav(workdir: Path, count: int) -> list[float]:
    """Seconds of each of `count` PUTs of WsgiDAV's FilesystemProvider on `workdir`,
    configured as the bench's `wsgidav-fs` target (`bench.wsgidav_target`): anonymous,
    locks and properties in memory."""
    from wsgidav.wsgidav_app import WsgiDAVApp

    app = WsgiDAVApp(
        {
            "provider_mapping": {"/": str(workdir)},
            "simple_dc": {"user_mapping": {"*": True}},  # anonymous, as `--auth anonymous`
            "verbose": 0,
            "logging": {"enable": False},
            "lock_storage": True,
            "property_manager": True,
        }
    )
    return put_times(app, "/b/", "", count)


def parameterised(sql: str) -> tuple[str, list[Value]]:
    """`sql` with each inlined value replaced by `?`, and the values in order."""
    values: list[Value] = []

    def take(m: re.Match[str]) -> str:
        if m["blob"] is not None:
            values.append(bytes.fromhex(m["blob"]))
        elif m["text"] is not None:
            values.append(m["text"].replace("''", "'"))
        else:
            values.append(float(m["num"]) if "." in m["num"] else int(m["num"]))
        return "?"

    return _LITERAL.sub(take, sql), values


class Replay:
    """Runs a traced PUT's statements again for new files, each with a new chunk, name
    and path, and the ids its own inserts return."""

    def __init__(self, traced: Traced) -> None:
        self._traced = traced
        self._statements = [parameterised(s) for s in traced.statements]

    def put(self, conn: sqlite3.Connection, number: int) -> None:
        t = self._traced
        new: dict[Value, Value] = {
            t.chunk_hash: os.urandom(32).hex(),
            TRACED: f"r{number}",
            f"/b/{TRACED}": f"/b/r{number}",
        }
        for sql, values in self._statements:
            bound = [os.urandom(len(v)) if isinstance(v, bytes) else new.get(v, v) for v in values]
            rows = conn.execute(sql, bound).fetchall()
            if sql.startswith("INSERT INTO content "):
                new[t.content_id] = rows[0][0]
            elif sql.startswith("INSERT INTO node "):
                new[t.node_id] = rows[0][0]


def replay(traced: Traced, workdir: Path, count: int) -> tuple[list[float], float]:
    """Seconds of each of `count` replayed PUTs on a copy of the catalog, and the log
    pages one writes (counted over a second pass with no checkpoint)."""
    source = Path(traced.database)
    shutil.copy(source, workdir / source.name)  # `trace_ours` closed it: no log left
    conn = sqlite3.connect(workdir / source.name, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")  # as `providers.catalog.db` opens its connections
    steps = Replay(traced)
    seconds = []
    for number in range(count):
        started = time.perf_counter()
        steps.put(conn, number)
        seconds.append(time.perf_counter() - started)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    logged = 200
    for number in range(count, count + logged):
        steps.put(conn, number)
    pages = (workdir / f"{source.name}-wal").stat().st_size / PAGE_FRAME / logged
    conn.close()
    return seconds, pages


def run_one(target: str, workdir: Path, count: int) -> dict[str, Any]:
    """One target in this process (`--one`): its seconds per PUT, and for the replay
    what one traced PUT ran."""
    if target == "ours":
        return {"seconds": ours(workdir, count)}
    if target == "wsgidav":
        return {"seconds": wsgidav(workdir, count)}
    (workdir / "traced").mkdir()
    (workdir / "replayed").mkdir()
    traced = trace_ours(workdir / "traced")
    seconds, pages = replay(traced, workdir / "replayed", count)
    begins = sum(s.startswith("BEGIN") for s in traced.statements)
    statements = len(traced.statements) - 2 * begins
    return {"seconds": seconds, "pages": pages, "statements": statements, "transactions": begins}


TARGETS = {
    "ours": "ours (embedded, in process)",
    "wsgidav": "WsgiDAV FS (in process)",
    "replay": "our catalog's statements alone (replayed)",
}


def in_child(target: str, count: int) -> dict[str, Any]:
    """`run_one` in a fresh interpreter: no target inherits another's heap or threads
    (WsgiDAV run after ours in one process took half the time it took before it)."""
    os.sync()  # the last target's writes, flushed now, would slow this one's
    time.sleep(SETTLE_SECONDS)
    with tempfile.TemporaryDirectory(prefix="put-floor-") as tmp:
        command = [sys.executable, "-m", "tests.bench.put_floor", "--one", target]
        command += ["--count", str(count), "--workdir", tmp]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(runs: dict[str, list[dict[str, Any]]]) -> str:
    def ms(target: str, how: Callable[[list[float]], float]) -> float:
        return statistics.median(1000 * how(run["seconds"]) for run in runs[target])

    mean, median = statistics.mean, statistics.median
    peer = ms("wsgidav", mean)

    def spread(target: str) -> str:
        means = [1000 * mean(run["seconds"]) for run in runs[target]]
        return f"{min(means):.3f}-{max(means):.3f}"

    rows = [
        [
            label,
            f"{ms(t, median):.3f}",
            f"{ms(t, mean):.3f}",
            spread(t),
            f"{peer / ms(t, mean):.2f}x",
        ]
        for t, label in TARGETS.items()
    ]
    replayed = runs["replay"][-1]
    pages = statistics.median(run["pages"] for run in runs["replay"])
    return "\n".join(
        [
            table(
                ["one 4 KiB PUT", "median ms", "mean ms", "means, min-max", "rate vs WsgiDAV"],
                rows,
            ),
            "",
            f"one PUT of ours runs {replayed['statements']} statements in"
            f" {replayed['transactions']} transactions and writes {pages:.1f} pages to"
            " SQLite's log",
            "medians over rounds of each round's median and mean (the rate: of the means);"
            " each target in a process of its own",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.put_floor", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="timed PUTs per target")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians)")
    parser.add_argument("--one", choices=list(TARGETS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.workdir, args.count)))
        return 0
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
    for number in range(args.rounds):
        for target in TARGETS:
            runs[target].append(in_child(target, args.count))
        print(f"round {number + 1} of {args.rounds} done", flush=True)
    print(report(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
