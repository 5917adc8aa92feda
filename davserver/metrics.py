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

`/metrics` is open to loopback clients and otherwise needs
`Authorization: Bearer <metrics_token>` (`metrics_allowed`); without a token set,
only loopback clients may read it.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
# `*_created` series (one timestamp per label set) double the page and say little here.
cast(Callable[[], None], disable_created_metrics)()  # unannotated in prometheus_client


class Metrics:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("davserver_info", "Version of this server", ["version"], registry=r).labels(
            __version__
        ).set(1)
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
            "davserver_uploads_in_flight", "PUT and PATCH requests in progress", registry=r
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
        self.registry.register(CatalogCollector(catalog))

    def watch_files(self, files: FileStore) -> None:
        """Count the corrupt chunks `files` reports (`davserver_corrupt_chunks_total`)."""
        files.on_corrupt(lambda _error: self.corrupt_chunks.inc())

    def watch_push(self, push: Push) -> None:
        """Add the gauges of `push`: clients waiting for changes, and how many may."""
        r = self.registry
        waiting = Gauge("davserver_push_waiters", "Long polls and event streams open", registry=r)
        waiting.set_function(lambda: push.waiting)
        Gauge("davserver_push_waiters_max", "Waiting clients one instance holds", registry=r).set(
            push.capacity
        )

    def _query(self, seconds: float, failed: bool) -> None:
        self.queries.observe(seconds)
        if failed:
            self.db_errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
