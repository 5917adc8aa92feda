"""Prometheus metrics: the one module that imports `prometheus_client` (each app has its
own `CollectorRegistry`, so several servers in one process do not collide).

What is measured (names in docs/operations.md):

- requests by door, method and status, their latency, bytes in and out, uploads in
  flight, failed and refused logins: counted by `davserver.http.observe`;
- blob-store calls, their latency and failures: `TimedBlobStore`, a `BlobStore` that
  wraps the configured one;
- corrupt chunks found by reads (never served, design invariant 24): told by the file
  store (`watch_files`, `FileStore.on_corrupt`);
- logical vs stored bytes and the chunk count, and the last GC and fsck reports:
  asked of the catalog at scrape time (`CatalogCollector`).

With several workers (`davserver.workers`) each process counts in files of one
directory and `/metrics` renders their sum, whichever worker answers: the master calls
`prepare_shared_metrics`, each worker `share_metrics` before it builds its app, and the
master `mark_worker_gone` for each worker that ended (docs/operations.md "Metrics").

`/metrics` is open to loopback clients and otherwise needs
`Authorization: Bearer <metrics_token>` (`metrics_allowed`); without a token set,
only loopback clients may read it.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.values import MultiProcessValue

from davserver import __version__
from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.proxy import parse_address
from davserver.http.responses import plain_response
from providers.blobstore.base import BlobInfo, BlobStore
from providers.catalog import Catalog
from providers.catalog.db import on_query
from providers.errors import StorageError
from providers.filestore import FileStore
from providers.gc import LAST_FSCK, LAST_GC
from providers.push import Push

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset(
    [
        "GET",
        "HEAD",
        "PUT",
        "POST",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
    ]
)
T = TypeVar("T")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # where prometheus_client's shared values write
_shared: Path | None = None  # the directory `share_metrics` gave this process
# `*_created` series (one timestamp per label set) double the page and say little here.
cast(Callable[[], None], disable_created_metrics)()  # unannotated in prometheus_client


class Metrics:
    """The metrics of one app, in their own registry; in a worker that called
    `share_metrics`, `render` sums every worker's instead (one `Metrics` per worker:
    two in one process would write the same values over each other)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # What `render` shows: this registry, or every worker's files plus the
        # collectors that ask what all workers share (the catalog), once.
        self._page = self.registry if _shared is None else _summed(_shared)
        # Gauges: a mode says how workers' values add up (ignored in one process).
        info = Gauge(
            "davserver_info",
            "Version of this server",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        info.labels(__version__).set(1)
        self.requests = Counter(
            "davserver_requests", "Requests answered", ["door", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "davserver_request_duration_seconds",
            "Time from request to the end of the answer",
            ["door", "method"],
            registry=r,
        )
        self.bytes_in = Counter(
            "davserver_request_bytes", "Request body bytes read", ["door"], registry=r
        )
        self.bytes_out = Counter(
            "davserver_response_bytes", "Response body bytes sent", ["door"], registry=r
        )
        self.uploads = Gauge(
            "davserver_uploads_in_flight",
            "PUT and PATCH requests in progress",
            registry=r,
            multiprocess_mode="livesum",  # a dead worker's uploads are over
        )
        self.login_failures = Counter(
            "davserver_login_failures", "Failed logins and link passwords", ["door"], registry=r
        )
        self.rate_limited = Counter(
            "davserver_login_rate_limited", "Logins refused with 429", ["door"], registry=r
        )
        self.blob_calls = Histogram(
            "davserver_blobstore_duration_seconds", "Blob-store calls", ["op"], registry=r
        )
        self.blob_errors = Counter(
            "davserver_blobstore_errors", "Blob-store calls that failed", ["op"], registry=r
        )
        self.queries = Histogram(
            "davserver_db_query_duration_seconds", "Catalog statements", registry=r
        )
        self.db_errors = Counter(
            "davserver_db_errors", "Catalog statements that failed", registry=r
        )
        self.corrupt_chunks = Counter(
            "davserver_corrupt_chunks", "Reads that found a chunk corrupt", registry=r
        )

    def request(self, door: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        method = method if method in METHODS else "other"
        self.requests.labels(door, method, str(status)).inc()
        self.latency.labels(door, method).observe(seconds)

    def watch_catalog(self, catalog: Catalog) -> None:
        """Time `catalog`'s statements and add the gauges read from it at scrape time."""
        on_query(catalog.db, self._query)
        self._page.register(CatalogCollector(catalog))

    def watch_files(self, files: FileStore) -> None:
        """Count the corrupt chunks `files` reports (`davserver_corrupt_chunks_total`)."""
        files.on_corrupt(lambda _error: self.corrupt_chunks.inc())

    def watch_push(self, push: Push) -> None:
        """Add the gauges of `push`: clients waiting for changes, and how many may
        (each worker has its own `push`: both add up over the live workers)."""
        r = self.registry
        waiting = Gauge(
            "davserver_push_waiters",
            "Long polls and event streams open",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Kept up to date as waits come and go, not read at scrape time: the worker
        # that answers a scrape cannot ask the others' `push`.
        push.on_waiting(waiting.set)
        waiting.set(push.waiting)
        held = "Waiting clients one instance holds"
        Gauge("davserver_push_waiters_max", held, registry=r, multiprocess_mode="livesum").set(
            push.capacity
        )

    def _query(self, seconds: float, failed: bool) -> None:
        self.queries.observe(seconds)
        if failed:
            self.db_errors.inc()

    def render(self) -> bytes:
        return generate_latest(self._page)


def prepare_shared_metrics(directory: Path) -> None:
    """In the master, before it forks the workers: create `directory` and remove the
    value files (`*.db`) a previous run left there, which would be counted again."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink(missing_ok=True)


def share_metrics(directory: Path, worker: int) -> None:
    """In worker number `worker`, before its `Metrics` exist: the metrics this process
    makes from now on keep their values in files of `directory`, and render the sum of
    every worker's files there.

    Counters, histograms and the `max` gauges are in files named by `worker` alone: a
    worker started again in place of a dead one reads its predecessor's values and
    counts on from them, so a sum never goes back (Prometheus would take that for a
    counter reset) and the directory holds a fixed number of files. Gauges of a `live`
    mode are in files named by worker and pid, which `mark_worker_gone` removes."""
    global _shared
    os.environ[MULTIPROC_ENV] = str(directory)  # prometheus_client names the files from it
    values.ValueClass = _worker_values(worker, os.getpid())
    _shared = directory


def mark_worker_gone(directory: Path, pid: int) -> None:
    """In the master, when worker `pid` has ended: drop its `live` gauges (uploads and
    waits in flight), which ended with it. Its counters stay: they are counted."""
    for live in directory.glob(f"gauge_live*_*-{pid}.db"):
        live.unlink(missing_ok=True)


def _worker_values(worker: int, pid: int) -> Callable[..., Any]:
    """prometheus_client's `ValueClass` for worker `worker` running as `pid`: a value
    kept in a file of the shared directory (`share_metrics` says which)."""

    def kept_name() -> str:
        # A process the worker forks gets files of its own (two writers would clash).
        return str(worker) if os.getpid() == pid else f"{worker}-{os.getpid()}"

    shared_value = cast(Callable[[Callable[[], object]], Callable[..., Any]], MultiProcessValue)
    kept = shared_value(kept_name)
    live = shared_value(lambda: f"{worker}-{os.getpid()}")

    def value(*args: Any, multiprocess_mode: str = "", **kwargs: Any) -> Any:
        chosen = live if multiprocess_mode.startswith("live") else kept
        return chosen(*args, multiprocess_mode=multiprocess_mode, **kwargs)

    return value


def _summed(directory: Path) -> CollectorRegistry:
    """A registry that collects the sum of every worker's values in `directory`."""
    registry = CollectorRegistry(auto_describe=False)
    cast(Callable[..., object], MultiProcessCollector)(registry, path=str(directory))
    return registry


def metrics_endpoint(metrics: Metrics, token: str) -> WSGIApplication:
    """The `/metrics` app: the registry in Prometheus text format to those
    `metrics_allowed` admits; 401 (with a Bearer challenge) or 403 to others."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        verdict = metrics_allowed(environ, token)
        if verdict == 401:
            challenge = [("WWW-Authenticate", 'Bearer realm="metrics"')]
            return plain_response(start_response, 401, "metrics token required", challenge)
        if verdict != 200:
            return plain_response(start_response, 403, "metrics are not open to this client")
        body = metrics.render()
        headers = [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        start_response("200 OK", [*headers, ("Cache-Control", "no-store")])
        return [body]

    return app


def metrics_allowed(environ: WSGIEnvironment, token: str) -> int:
    """200 when the request may read `/metrics`, else 401 (a token is set but not given)
    or 403: loopback clients (`REMOTE_ADDR` after the proxy layer) always may, others
    only with `Authorization: Bearer <token>`."""
    address = parse_address(str(environ.get("REMOTE_ADDR", "")))
    if address is not None and address.is_loopback:
        return 200
    if not token:
        return 403
    scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "bearer" or not given:
        return 401
    return 200 if hmac.compare_digest(given.strip().encode(), token.encode()) else 403


class CatalogCollector(Collector):
    """Usage and the last GC/fsck reports, read from the catalog at each scrape; a
    catalog that does not answer yields no samples (logged), not a failed scrape."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def describe(self) -> list[Metric]:
        return []  # not known before a scrape: the registry must not collect at register

    def collect(self) -> Iterator[Metric]:
        try:
            logical, stored, chunks = self._catalog.contents.usage()
            reports = {name: self._catalog.users.get_setting(name) for name in (LAST_GC, LAST_FSCK)}
        except StorageError as e:
            log.warning("metrics: catalog unavailable: %s", e)
            return
        yield GaugeMetricFamily("davserver_logical_bytes", "Bytes of every file", logical)
        yield GaugeMetricFamily("davserver_stored_bytes", "Bytes of stored chunks", stored)
        yield GaugeMetricFamily("davserver_chunks", "Stored chunks", chunks)
        ratio = logical / stored if stored else 1.0
        yield GaugeMetricFamily("davserver_dedup_ratio", "Logical over stored bytes", ratio)
        for name, text in reports.items():
            yield from _report_gauges(name.removesuffix("_report"), text)


def _report_gauges(name: str, text: str | None) -> Iterator[Metric]:
    """`davserver_<name>_<field>` for each number of a JSON report (`providers.gc` records them)."""
    try:
        report = json.loads(text) if text else {}
    except ValueError:
        return
    for field, value in report.items() if isinstance(report, dict) else ():
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield GaugeMetricFamily(f"davserver_{name}_{field}", f"{name} report: {field}", value)


class TimedBlobStore(BlobStore):
    """A `BlobStore` that times every call to `inner` and counts its failures
    (`BlobNotFound` is an answer, not a failure)."""

    def __init__(self, inner: BlobStore, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    def _timed(self, op: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        except StorageError as e:
            if e.http_status >= 500:
                self._metrics.blob_errors.labels(op).inc()
            raise
        finally:
            self._metrics.blob_calls.labels(op).observe(time.perf_counter() - start)

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._timed("put", lambda: self.inner.put(key, data))

    def sync(self) -> None:
        self._timed("sync", self.inner.sync)

    def get(self, key: str) -> bytes:
        return self._timed("get", lambda: self.inner.get(key))

    def stat(self, key: str) -> BlobInfo | None:
        return self._timed("stat", lambda: self.inner.stat(key))

    def delete(self, key: str) -> None:
        self._timed("delete", lambda: self.inner.delete(key))

    def iter_keys(self, prefix: str = "") -> Iterator[BlobInfo]:
        return self.inner.iter_keys(prefix)  # a listing's time is the caller's loop

    def exists(self, key: str) -> bool:
        return self._timed("exists", lambda: self.inner.exists(key))

    def check(self) -> None:
        self._timed("check", self.inner.check)

    def probe(self, prefix: str = "") -> None:
        # The inner store's own probe: S3's checks the bucket first, to name it.
        self._timed("probe", lambda: self.inner.probe(prefix))

    def close(self) -> None:
        self.inner.close()


def door_of(path: str) -> str:
    """The door a request path belongs to: dav, snapshots, api (the delta API's signed
    block URLs included), links or web."""
    doors = (
        ("/dav", "dav"),
        ("/snapshots", "snapshots"),
        ("/api/", "api"),
        ("/blocks/", "api"),
        ("/s/", "links"),
    )
    for prefix, door in doors:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return door
    return "web"
