"""TUS upload throughput next to PUT's for the same file; prints figures.

    python -m tests.bench.tus_vs_put [--size-mib 256] [--rounds 3] [--piece-mib 32]
                                     [--stacks embedded]

Each round starts, for each stack and method, our server on a fresh data directory
(so no upload deduplicates against another) and sends the payload once as a new file:

- `put`: one PUT (Content-Length), as WebDAV clients send it;
- `tus 1 patch`: TUS creation (POST to `/dav/`) and the whole file in one PATCH;
- `tus pieces`: TUS creation and `--piece-mib` PATCHes, as TUS clients send it
  (tuspy, tus-js-client: a resumable client cuts the file so a break costs a piece).

The time runs from the first request to the answer of the last (the commit included).
The methods alternate their order from round to round. The table gives medians in
MB/s and each TUS variant's ratio to PUT. Not a test: pytest does not collect it.
Reuses the process handling of `tests.bench.bench`.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests

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

METHODS = ("put", "tus 1 patch", "tus pieces")
TUS = {"Tus-Resumable": "1.0.0"}


class Piece:
    """`size` bytes of a file from `offset`, streamed in `IO_BLOCK` pieces with a
    Content-Length (as `FileBody`)."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self.path, self.offset, self.size = path, offset, size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            left = self.size
            while left:
                block = f.read(min(IO_BLOCK, left))
                left -= len(block)
                yield block


def start(stack: str, workdir: Path, full: FullStack | None) -> Server:
    port = free_port()
    extra = {"DAVSERVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    if stack == "full":
        assert full is not None
        extra.update(full.environment())
    argv = [sys.executable, "-m", "davserver", "serve", "--host", HOST]
    argv += ["--port", str(port), "--data-dir", str(workdir / "data")]
    env = checkout_env(**extra)
    dav = f"http://{HOST}:{port}/dav/"
    return launch(f"ours/{stack}", argv, workdir, dav, env, ("admin", ADMIN_PASSWORD))


def tus_upload(s: requests.Session, dav: str, payload: Path, size: int, piece: int) -> None:
    """Create a TUS upload of `payload` in `dav` and send it in `piece`-byte PATCHes."""
    name = base64.b64encode(b"big.bin").decode()
    headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"}
    created = check(s.post(dav, headers=headers, timeout=TIMEOUT), 201)
    parts = urlsplit(dav)
    url = f"{parts.scheme}://{parts.netloc}{created.headers['Location']}"
    offset = 0
    while offset < size:
        n = min(piece, size - offset)
        patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
        patch["Upload-Offset"] = str(offset)
        answer = s.patch(url, data=Piece(payload, offset, n), headers=patch, timeout=TIMEOUT)
        offset = int(check(answer, 204).headers["Upload-Offset"])


def method(name: str, server: Server, payload: Path, size: int, piece: int) -> Callable[[], None]:
    session = server.session()

    def put() -> None:
        check(
            session.put(server.url("big.bin"), data=FileBody(payload, size), timeout=TIMEOUT), 201
        )

    if name == "put":
        return put
    whole = name == "tus 1 patch"
    return lambda: tus_upload(session, server.dav, payload, size, size if whole else piece)


def run(args: argparse.Namespace) -> dict[str, list[float]]:
    size, piece = args.size_mib * MIB, args.piece_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="davbench-tus-", dir="/tmp"))
    full = FullStack() if "full" in args.stacks else None
    runs: dict[str, list[float]] = {}
    try:
        payload = tmp / "payload.bin"
        make_payload(payload, size)
        settle(payload)
        if full is not None:
            full.start()
        for round_no in range(args.rounds):
            order = METHODS if round_no % 2 == 0 else tuple(reversed(METHODS))
            for stack in args.stacks:
                for name in order:
                    workdir = Path(tempfile.mkdtemp(prefix="tus-", dir=tmp))
                    server = start(stack, workdir, full)
                    try:
                        mbps = size / timed(method(name, server, payload, size, piece)) / 1e6
                    finally:
                        server.stop()
                        settle(payload)
                    runs.setdefault(f"{stack}/{name}", []).append(mbps)
                    print(f"round {round_no + 1}: {stack}/{name}: {mbps:.0f} MB/s", flush=True)
    finally:
        if full is not None:
            full.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return runs


def report(runs: dict[str, list[float]], stacks: list[str], args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.rounds}, {args.size_mib} MiB new file, MB/s")
    print(f"{'stack':<10} {'method':<24} {'MB/s':>7} {'vs PUT':>7}")
    for stack in stacks:
        put = statistics.median(runs[f"{stack}/put"])
        for name in METHODS:
            mbps = statistics.median(runs[f"{stack}/{name}"])
            shown = f"{name} ({args.piece_mib} MiB)" if name == "tus pieces" else name
            print(f"{stack:<10} {shown:<24} {mbps:>7.0f} {mbps / put:>6.2f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--piece-mib", type=int, default=32)
    p.add_argument("--stacks", default="embedded", help="embedded,full")
    args = p.parse_args(argv)
    args.stacks = [s for s in args.stacks.split(",") if s]
    report(run(args), args.stacks, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
