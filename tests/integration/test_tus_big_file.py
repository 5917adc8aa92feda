"""A file larger than 6 GiB sent through TUS (accounts, `/dav/`), streamed from a
generator (never on disk), cut mid-way and resumed, read back equal, with the
server's peak memory flat (design invariant 6). Embedded stack, a server process of
its own so its peak RSS is its own."""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.servers import embedded_settings
from tests.support.subprocess_server import ServeProcess

MIB = 1024 * 1024
SIZE = 6 * 1024 * MIB + 7 * MIB + 321  # past 6 GiB, not a multiple of anything
CUT = SIZE // 2 + 12345  # where the first PATCH's connection breaks
PEAK_RSS = 300 * MIB  # the whole server's, against a 6 GiB file (measured: 165 MiB)


def blocks(start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of the file: 1 MiB blocks of a few random ones, each made
    unique by its counter, so chunks differ a little (as test_big_file's)."""
    rng = random.Random(6)
    pool = [rng.randbytes(MIB) for _ in range(4)]
    counter = start // MIB
    position = counter * MIB
    while position < end:
        block = counter.to_bytes(8, "big") + pool[counter % 4][8:]
        block = block[max(0, start - position) : end - position]
        position = counter * MIB + MIB
        counter += 1
        yield block


class SizedBody:
    """An iterable with a length, so `requests` streams it with a Content-Length."""

    def __init__(self, source: Iterator[bytes], size: int) -> None:
        self._source, self._size = source, size

    def __iter__(self) -> Iterator[bytes]:
        return self._source

    def __len__(self) -> int:
        return self._size


def hashed(source: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    for block in source:
        digest.update(block)
        yield block


def peak_rss(pid: int) -> int:
    """The process's peak resident set (Linux `VmHWM`), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_over_6_gib_through_tus_cut_and_resumed_with_flat_memory(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path / "data")
    serve = ServeProcess(settings, tmp_path / "serve.log")
    try:
        token = base64.b64encode(f"admin:{settings.admin_password}".encode()).decode()
        tus = {"Tus-Resumable": "1.0.0", "Authorization": f"Basic {token}"}
        name = base64.b64encode(b"huge.bin").decode()
        created = requests.post(
            serve.dav,
            headers={**tus, "Upload-Length": str(SIZE), "Upload-Metadata": f"filename {name}"},
        )
        assert created.status_code == 201, created.text
        url = f"http://127.0.0.1:{serve.port}{urlsplit(created.headers['Location']).path}"
        sent = hashlib.sha256()
        head = (
            f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1:{serve.port}\r\n"
            f"Authorization: {tus['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {SIZE}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", serve.port)) as sock:
            sock.sendall(head.encode())
            for block in hashed(blocks(0, CUT), sent):
                sock.sendall(block)
        deadline = time.monotonic() + 120
        while (offset := int(requests.head(url, headers=tus).headers["Upload-Offset"])) != CUT:
            assert time.monotonic() < deadline, f"offset {offset}: the first half was not kept"
            time.sleep(0.5)
        rest = SizedBody(hashed(blocks(CUT, SIZE), sent), SIZE - CUT)
        piece = {**tus, "Content-Type": "application/offset+octet-stream"}
        resumed = requests.patch(url, data=rest, headers={**piece, "Upload-Offset": str(CUT)})
        assert resumed.status_code == 204, resumed.text
        assert int(resumed.headers["Upload-Offset"]) == SIZE

        received, total = hashlib.sha256(), 0
        with serve.client().get(serve.url("huge.bin"), stream=True) as got:
            assert got.status_code == 200
            for block in got.iter_content(MIB):
                received.update(block)
                total += len(block)
        assert total == SIZE and received.hexdigest() == sent.hexdigest()
        assert peak_rss(serve.pid) < PEAK_RSS, serve.log_tail()
    finally:
        serve.stop()
