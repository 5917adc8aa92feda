"""The `/metrics` guard, the blob-store timing decorator, the sum over workers and log
formatting, without a server."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import cast

import pytest

from davserver import logs
from davserver.metrics import (
    MULTIPROC_ENV,
    Metrics,
    TimedBlobStore,
    mark_worker_gone,
    metrics_allowed,
    prepare_shared_metrics,
    share_metrics,
)
from davserver.settings import Settings
from providers.blobstore.memory import MemoryBlobStore
from providers.catalog import Catalog
from providers.errors import BlobNotFound, Unavailable
from providers.push import Push


def allowed(addr: str, token: str, authorization: str = "") -> int:
    environ = {"REMOTE_ADDR": addr, "HTTP_AUTHORIZATION": authorization}
    return metrics_allowed(environ, token)


def test_loopback_clients_may_always_read_metrics() -> None:
    for addr in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert allowed(addr, "") == 200, addr
        assert allowed(addr, "tok") == 200, addr


def test_other_clients_need_the_token() -> None:
    assert allowed("203.0.113.5", "") == 403
    assert allowed("203.0.113.5", "", "Bearer ") == 403
    assert allowed("203.0.113.5", "tok") == 401
    assert allowed("203.0.113.5", "tok", "Basic dG9rOg==") == 401
    assert allowed("203.0.113.5", "tok", "Bearer nope") == 403
    assert allowed("203.0.113.5", "tok", "Bearer tok") == 200
    assert allowed("203.0.113.5", "tok", "bearer  tok") == 200
    assert allowed("", "tok", "Bearer tok") == 200
    assert allowed("", "") == 403


class Failing(MemoryBlobStore):
    def put(self, key: str, data: bytes | memoryview) -> None:
        raise Unavailable("S3: HTTPConnectionPool(host='10.0.0.1', port=9000)")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_timed_store_counts_failures_but_not_missing_objects() -> None:
    metrics = Metrics()
    store = TimedBlobStore(Failing(), metrics)
    with pytest.raises(Unavailable):
        store.put("a/b", b"x")
    with pytest.raises(BlobNotFound):
        store.get("a/b")
    assert store.stat("a/b") is None
    assert sample(metrics, "davserver_blobstore_errors_total", op="put") == 1
    assert sample(metrics, "davserver_blobstore_errors_total", op="get") == 0
    assert sample(metrics, "davserver_blobstore_duration_seconds_count", op="get") == 1
    assert sample(metrics, "davserver_blobstore_duration_seconds_count", op="stat") == 1


class MissingBucket(MemoryBlobStore):
    """A store whose own probe fails before writing, as S3's does for a missing bucket."""

    def probe(self, prefix: str = "") -> None:
        raise Unavailable("S3 bucket 'dav' does not exist")


def test_the_timed_store_runs_the_inner_stores_own_probe() -> None:
    metrics = Metrics()
    store = TimedBlobStore(MissingBucket(), metrics)
    with pytest.raises(Unavailable, match="bucket 'dav' does not exist"):
        store.probe("p/")
    assert sample(metrics, "davserver_blobstore_errors_total", op="probe") == 1
    assert sample(metrics, "davserver_blobstore_duration_seconds_count", op="put") == 0


def test_two_apps_have_their_own_registries() -> None:
    first, second = Metrics(), Metrics()
    first.request("dav", "PUT", 201, 0.01)
    first.request("dav", "BREW", 418, 0.01)
    labels = {"door": "dav", "method": "PUT", "status": "201"}
    assert sample(first, "davserver_requests_total", **labels) == 1
    assert sample(second, "davserver_requests_total", **labels) == 0
    other = {"door": "dav", "method": "other", "status": "418"}
    assert sample(first, "davserver_requests_total", **other) == 1


class PushStub:
    """What `Metrics.watch_push` uses of a `Push`."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.waiting = capacity, 0
        self.counters: list[Callable[[int], None]] = []

    def on_waiting(self, counter: Callable[[int], None]) -> None:
        self.counters.append(counter)

    def wait(self, count: int) -> None:
        self.waiting = count
        for counter in self.counters:
            counter(count)


def count(metrics: Metrics, requests: int, push: PushStub) -> None:
    """What a worker counts in these tests: `requests` PUTs of 100 bytes, one upload
    still in flight and two clients waiting."""
    for _ in range(requests):
        metrics.request("dav", "PUT", 201, 0.01)
        metrics.bytes_in.labels("dav").inc(100)
    metrics.uploads.inc()
    metrics.watch_push(cast(Push, push))
    push.wait(2)


def work(directory: Path, index: int, requests: int, stay: Event | None = None) -> None:
    """Worker `index`: count, then wait for `stay` (when given) and exit."""
    share_metrics(directory, index)
    count(Metrics(), requests, PushStub(4))
    if stay is not None:
        stay.wait(30)


def read(directory: Path, index: int, catalog_url: str, page: Connection) -> None:
    """Worker `index` that counts nothing and sends what its `/metrics` shows."""
    share_metrics(directory, index)
    metrics = Metrics()
    metrics.watch_catalog(Catalog(catalog_url))
    page.send(metrics.render())


FORK = multiprocessing.get_context("fork")


class Workers:
    """Worker processes on one metrics directory, as `davserver.workers` runs them."""

    def __init__(self, directory: Path, catalog: Catalog) -> None:
        self.directory, self.url = directory, str(catalog.db.engine.url)
        self.stay = FORK.Event()
        self.alive: list[multiprocessing.process.BaseProcess] = []

    def run(self, index: int, requests: int) -> int:
        """Run worker `index` to its end and retire it as the master does; its pid."""
        process = FORK.Process(target=work, args=(self.directory, index, requests))
        process.start()
        process.join(30)
        assert process.exitcode == 0 and process.pid is not None
        mark_worker_gone(self.directory, process.pid)
        return process.pid

    def start(self, index: int, requests: int) -> None:
        """Start worker `index`; it counts and serves on until `stop`."""
        stay = (self.directory, index, requests, self.stay)
        process = FORK.Process(target=work, args=stay)
        process.start()
        self.alive.append(process)

    def page(self) -> dict[str, float]:
        """The samples one more worker's `/metrics` shows, by name and labels."""
        ours, theirs = FORK.Pipe()
        process = FORK.Process(target=read, args=(self.directory, 9, self.url, theirs))
        process.start()
        text = ours.recv().decode() if ours.poll(30) else ""
        process.join(30)
        mark_worker_gone(self.directory, cast(int, process.pid))
        lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert text.count("# TYPE davserver_chunks gauge") == 1  # the catalog's, once
        return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in lines}

    def stop(self) -> None:
        self.stay.set()
        for process in self.alive:
            process.join(30)


PUTS = 'davserver_requests_total{door="dav",method="PUT",status="201"}'
PUT_TIMES = 'davserver_request_duration_seconds_count{door="dav",method="PUT"}'
BYTES_IN = 'davserver_request_bytes_total{door="dav"}'


def test_metrics_of_workers_add_up(tmp_path: Path, catalog: Catalog) -> None:
    directory = tmp_path / "run" / "metrics"
    workers = Workers(directory, catalog)
    prepare_shared_metrics(directory)
    workers.run(0, 50)  # a previous run: its files are not counted again
    prepare_shared_metrics(directory)
    workers.start(0, 2)
    try:
        workers.run(1, 3)
        page = workers.page()
        assert (page[PUTS], page[PUT_TIMES], page[BYTES_IN]) == (5, 5, 500)
        # gauges: only the live workers' uploads and waits, and their capacity
        assert page["davserver_uploads_in_flight"] == 1
        assert page["davserver_push_waiters"] == 2
        assert page["davserver_push_waiters_max"] == 4
        assert page['davserver_info{version="0.1.0"}'] == 1
    finally:
        workers.stop()


def test_a_restarted_worker_counts_on_from_its_predecessor(
    tmp_path: Path, catalog: Catalog
) -> None:
    directory = tmp_path / "metrics"
    workers = Workers(directory, catalog)
    prepare_shared_metrics(directory)
    workers.start(0, 1)
    try:
        workers.run(1, 3)
        workers.run(1, 4)  # worker 1 again, after the first one ended
        page = workers.page()
        assert (page[PUTS], page[PUT_TIMES], page[BYTES_IN]) == (8, 8, 800)
        assert page["davserver_uploads_in_flight"] == 1  # worker 0's: the others ended
        files = sorted(path.name for path in directory.iterdir())
        assert len([name for name in files if name.startswith("counter_")]) == 3, files
    finally:
        workers.stop()


def test_a_dead_workers_live_gauges_count_until_the_master_marks_it(
    tmp_path: Path, catalog: Catalog
) -> None:
    directory = tmp_path / "metrics"
    workers = Workers(directory, catalog)
    prepare_shared_metrics(directory)
    process = FORK.Process(target=work, args=(directory, 0, 1))
    process.start()
    process.join(30)
    assert workers.page()["davserver_uploads_in_flight"] == 1
    mark_worker_gone(directory, cast(int, process.pid))
    page = workers.page()
    assert (page["davserver_uploads_in_flight"], page[PUTS]) == (0, 1)


def test_without_share_metrics_each_app_counts_alone(tmp_path: Path) -> None:
    assert MULTIPROC_ENV not in os.environ  # the forked workers set it in themselves only
    metrics, push = Metrics(), PushStub(4)
    count(metrics, 3, push)
    assert sample(metrics, "davserver_requests_total", door="dav", method="PUT", status="201") == 3
    assert sample(metrics, "davserver_push_waiters") == 2
    push.wait(0)
    assert sample(metrics, "davserver_push_waiters") == 0
    assert b"davserver_uploads_in_flight 1.0" in metrics.render()
    assert sample(Metrics(), "davserver_uploads_in_flight") == 0


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_records_carry_the_request_id_in_both_formats() -> None:
    for log_format in ("text", "json"):
        stream = io.StringIO()
        logs.configure(Settings(log_format=log_format, log_level="debug"), stream)
        token = logs.set_request_id("abc123")
        try:
            logging.getLogger("davserver.auth").warning("login failed addr=%s", "1.2.3.4")
        finally:
            logs.reset_request_id(token)
        logging.getLogger("davserver.x").debug("outside\nsecond line")
        first, *rest = stream.getvalue().splitlines()
        if log_format == "text":
            assert first.endswith(" WARNING auth login failed addr=1.2.3.4 rid=abc123"), first
        else:
            record = json.loads(first)
            assert (record["level"], record["logger"], record["rid"]) == (
                "WARNING",
                "auth",
                "abc123",
            )
            assert json.loads(rest[0])["message"] == "outside\nsecond line"  # one line


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("name", ["debug", "INFO", "warning", "error", "critical"])
def test_every_accepted_log_level_is_the_one_set(name: str) -> None:
    logs.configure(Settings(log_level=name), io.StringIO())
    assert logging.getLogger().level == logging.getLevelNamesMapping()[name.upper()]


def test_configure_twice_keeps_one_handler_and_wsgidav_quiet() -> None:
    logs.configure(Settings(), io.StringIO())
    logs.configure(Settings(log_level="debug"), io.StringIO())
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "davserver"]
    assert len(ours) == 1
    assert logging.getLogger("wsgidav").level == logging.WARNING
    logs.configure(Settings(verbose=3, log_level="info"), io.StringIO())
    assert logging.getLogger("wsgidav").level == logging.INFO
