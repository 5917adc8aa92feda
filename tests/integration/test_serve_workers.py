"""`davserver serve` with two workers (embedded default): new connections reach both,
a killed worker is replaced while the server keeps answering, SIGINT stops it cleanly.
What the workers share (locks, events, logins) is tested by the `pair` tests, which
also run across two workers of one server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.servers import embedded_settings
from tests.support.subprocess_server import ServeProcess
from tests.support.workers import WORKER_HEADER

CONNECTIONS = 40  # fresh ones: each reaches either worker, so all on one is 2**-39


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(embedded_settings(tmp_path / "data", workers=2), tmp_path / "log")
    try:
        yield process
    finally:
        process.kill()


def _answering(process: ServeProcess) -> list[str]:
    """Which worker answered each of `CONNECTIONS` requests on fresh connections."""
    found = []
    for _ in range(CONNECTIONS):
        response = requests.get(
            f"http://127.0.0.1:{process.port}/healthz", headers={"Connection": "close"}, timeout=10
        )
        assert response.status_code == 200
        found.append(response.headers[WORKER_HEADER])
    return found


def _workers(process: ServeProcess) -> list[int]:
    with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
        return sorted(int(pid) for pid in children.read().split())


def test_new_connections_reach_every_worker(serving: ServeProcess) -> None:
    assert set(_answering(serving)) == {"0", "1"}
    assert len(_workers(serving)) == 2


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(
    serving: ServeProcess,
) -> None:
    first = _workers(serving)
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while set(_workers(serving)) & {first[0]} or len(_workers(serving)) < 2:
        assert time.monotonic() < deadline, "the worker was not replaced"
        time.sleep(0.1)
    assert set(_answering(serving)) == {"0", "1"}
    assert "was killed by signal 9; starting another" in serving.log_tail(50)
    workers = _workers(serving)
    assert serving.stop() == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
