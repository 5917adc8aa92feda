"""The `/metrics` guard, the blob-store timing decorator and log formatting, without a
server."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from davserver import logs
from davserver.metrics import Metrics, TimedBlobStore, metrics_allowed
from davserver.settings import Settings
from providers.blobstore.memory import MemoryBlobStore
from providers.errors import BlobNotFound, Unavailable


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
