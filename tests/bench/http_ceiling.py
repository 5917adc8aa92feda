"""A WSGI app that does nothing, on cheroot, beside rows 1, 2 and 4 of
`tests.bench.sync_scale` (not a test).

Those rows compare small requests with WsgiDAV's FilesystemProvider, which runs on
cheroot as ours does, driven by the bench's Python client (`requests`, a thread per
connection). The client and cheroot take their share of every request whatever the
application does. This app reads a PUT's or MKCOL's body and answers 201, answers any
other request with 4 KiB, and does nothing else; it runs on cheroot with the thread
count of the `wsgidav` CLI (50). Its rates are the most an application on one cheroot
process can reach in those rows, with this client, on this machine: a target above
them cannot be met by any application served so.

    python -m tests.bench.http_ceiling --port N [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from cheroot import wsgi

from tests.bench.bench import HOST, Server, Target, checkout_env, launch
from tests.services.processes import free_port

NOOP = "cheroot-noop"
THREADS = 50  # as the `wsgidav` CLI starts cheroot
BODY = bytes(4096)  # the size of the bench's small files (`sync_workloads.SMALL_SIZE`)

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def noop_app(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    """201 after reading the body of a PUT or MKCOL; 4 KiB for anything else."""
    if environ["REQUEST_METHOD"] in ("PUT", "MKCOL"):
        length = int(str(environ.get("CONTENT_LENGTH") or 0))
        stream = environ["wsgi.input"]
        assert hasattr(stream, "read")
        stream.read(length)
        start_response("201 Created", [("Content-Length", "0")])
        return [b""]
    start_response(
        "200 OK",
        [("Content-Length", str(len(BODY))), ("Content-Type", "application/octet-stream")],
    )
    return [BODY]


def noop_target() -> Target:
    """The no-op app as a bench target: rows 1, 2 and 4 only (`sync_scale.run_target`)."""

    def start(workdir: Path) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "tests.bench.http_ceiling", "--port", str(port)]
        return launch(NOOP, argv, workdir, f"http://{HOST}:{port}/", checkout_env())

    return Target(NOOP, False, start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default=HOST)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    wsgi.Server((args.host, args.port), noop_app, numthreads=THREADS).safe_start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
