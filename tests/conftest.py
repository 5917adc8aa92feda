"""Session-wide fixtures: the real services (S3, PostgreSQL, Redis), started once, and a
`server` fixture that runs davserver on both stacks (`embedded` and `full`).

In CI (`CI=true`) a skipped test counts as a failure: a missing tool must fail the run.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.services.postgres import PostgresService
from tests.services.redis import RedisService
from tests.services.s3 import S3Service
from tests.support.browser import browser, page  # noqa: F401  (fixtures for the share-link pages)
from tests.support.servers import RunningServer, stack_settings, start_server, two_instances
from tests.support.workers import serving_workers

STACKS = ["embedded", "full"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("CI", "").lower() == "true":
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (a skip is a failure here): {report.longrepr}"
    if report.failed and call.excinfo is not None and call.excinfo.errisinstance(TIMEOUTS):
        report.sections.append(("threads when the request timed out", _thread_stacks()))


# A request that times out against a server running in this process (`start_server`)
# leaves no trace of why; the stacks of every thread show where it waits. Threads with
# the same stack (thousands of idle pool threads) are shown once, with their count.
TIMEOUTS = (requests.exceptions.Timeout, TimeoutError)  # socket.timeout is TimeoutError


def _thread_stacks() -> str:
    here = threading.get_ident()  # the test's own thread: its stack is the traceback
    stacks = Counter(
        "".join(traceback.format_stack(frame, limit=14))
        for ident, frame in sys._current_frames().items()
        if ident != here
    )
    return "\n".join(f"--- {n} thread(s):\n{stack}" for stack, n in stacks.most_common())


def _started(service: Any, name: str) -> Any:
    try:
        service.start()
    except Exception as e:  # a missing binary or a failed start must fail, not skip
        pytest.fail(f"cannot start the test {name} server: {e}", pytrace=False)
    return service


@pytest.fixture(scope="session")
def s3_service() -> Iterator[S3Service]:
    service = _started(S3Service(), "S3")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[PostgresService]:
    service = _started(PostgresService(), "PostgreSQL")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisService]:
    service = _started(RedisService(), "Redis")
    yield service
    service.stop()


@pytest.fixture
def make_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Factory: `make_server(stack, **settings)` starts a server; all are stopped after."""
    started: list[RunningServer] = []

    def make(stack: str, **extra: Any) -> RunningServer:
        settings = stack_settings(request, tmp_path / f"data{len(started)}", stack, **extra)
        started.append(start_server(settings))
        return started[-1]

    yield make
    for server in started:
        server.stop()


@pytest.fixture(params=STACKS)
def server(request: pytest.FixtureRequest, make_server: Any) -> RunningServer:
    """A running davserver, once per stack."""
    return make_server(request.param)


@pytest.fixture(params=["instances", "workers"])
def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """A and B sharing everything: two instances on the same database, bucket and Redis
    db (full stack), or two workers of one `davserver serve` on the embedded default
    (SQLite, a blob directory, no Redis: locks in the catalog, events between workers
    over local sockets)."""
    if request.param == "instances":
        settings = stack_settings(request, tmp_path / "data", "full")
        with two_instances(settings) as both:
            yield both
        return
    settings = stack_settings(request, tmp_path / "data", "embedded")
    with serving_workers(settings, tmp_path / "serve.log") as (a, b):
        yield a, b
