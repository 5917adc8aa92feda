"""Logs, request ids, error bodies and metrics, on a real server: the embedded stack
(these are door concerns), and the full one where the catalog or Redis takes part
(usage gauges on PostgreSQL, the login limiter in Redis).

Log lines are read from the handler `davserver.logs.configure` installs, in the format
an operator gets."""

from __future__ import annotations

import io
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from davserver import __version__, logs
from davserver.auth.passwords import hash_password
from providers.gc import collect_garbage
from tests.support.links import make_link
from tests.support.servers import (
    RunningServer,
    embedded_settings,
    stack_settings,
    start_server,
)
from tests.support.subprocess_server import ServeProcess

ACCESS = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO access rid=(?P<rid>\S+) addr=(?P<addr>\S+) "
    r'user=(?P<user>\S+) "(?P<method>[A-Z]+) (?P<path>[^"]+)" (?P<status>\d{3}) '
    r"in=(?P<bytes_in>\d+) out=(?P<bytes_out>\d+) (?P<ms>[\d.]+)ms$"
)
PROXY = "127.0.0.1/32"  # the test client is the trusted proxy; X-Forwarded-For the client


class Logged:
    """What the server logged, as an operator would read it."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def access(self, rid: str) -> re.Match[str]:
        """The access line of `rid`, which is written once the answer is sent: the
        client may see the answer first."""

        def found() -> list[re.Match[str]]:
            return [m for line in self.lines() if (m := ACCESS.match(line)) and m["rid"] == rid]

        eventually(lambda: len(found()) == 1, lambda: (rid, self.lines()))
        return found()[0]

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.lines() if re.search(pattern, line)]


def eventually(check: Callable[[], bool], explain: Callable[[], object], wait: float = 5) -> None:
    """Poll `check` until true (request metrics and the access line are recorded when
    the answer's iterable closes, just after the client has the last byte)."""
    deadline = time.monotonic() + wait
    while not check():
        assert time.monotonic() < deadline, explain()
        time.sleep(0.02)


Start = Callable[..., tuple[RunningServer, Logged]]


@pytest.fixture
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Start]:
    """`start(stack="embedded", **settings)`: a server whose logs are captured."""
    started: list[RunningServer] = []
    root = logging.getLogger()
    level = root.level

    def make(stack: str = "embedded", **extra: Any) -> tuple[RunningServer, Logged]:
        settings = stack_settings(request, tmp_path / f"data{len(started)}", stack, **extra)
        stream = io.StringIO()
        logs.configure(settings, stream)
        started.append(start_server(settings))
        return started[-1], Logged(stream)

    yield make
    for server in started:
        server.stop()
    for handler in [h for h in root.handlers if h.get_name() == "davserver"]:
        root.removeHandler(handler)
    root.setLevel(level)


def metric(server: RunningServer, name: str, **labels: str) -> float:
    """One sample of `/metrics` (0 when absent); see `settled` for fresh counts."""
    text = requests.get(server.base + "/metrics", timeout=30).text
    wanted = name + (
        "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
    )
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0


def settled(server: RunningServer, name: str, expected: float, **labels: str) -> None:
    """`name` reaches `expected` (see `eventually`)."""
    eventually(
        lambda: metric(server, name, **labels) == expected, lambda: metric(server, name, **labels)
    )


def rid_of(response: requests.Response) -> str:
    return response.headers["X-Request-Id"]


def test_a_put_leaves_one_access_line_with_every_field(start: Start) -> None:
    server, logged = start()
    put = server.client().put(server.url("a.txt"), data=b"x" * 4096)
    assert put.status_code == 201
    rid = put.headers["X-Request-Id"]
    line = logged.access(rid)
    assert (line["addr"], line["user"], line["method"], line["path"]) == (
        "127.0.0.1",
        "admin",
        "PUT",
        "/dav/a.txt",
    )
    assert (line["status"], line["bytes_in"]) == ("201", "4096")
    got = server.client().get(server.url("a.txt"))
    assert logged.access(got.headers["X-Request-Id"])["bytes_out"] == "4096"


def test_json_logs_parse_with_the_access_fields(start: Start) -> None:
    server, logged = start(log_format="json")
    put = server.client().put(server.url("b.txt"), data=b"y" * 100)
    rid = put.headers["X-Request-Id"]

    def access() -> list[dict[str, Any]]:
        records = [json.loads(line) for line in logged.lines()]
        return [r for r in records if r["logger"] == "access" and r["rid"] == rid]

    eventually(lambda: len(access()) == 1, logged.lines)
    record = access()[0]
    assert record["level"] == "INFO" and record["time"].endswith("Z")
    assert (record["method"], record["path"], record["status"]) == ("PUT", "/dav/b.txt", 201)
    assert (record["user"], record["addr"], record["bytes_in"]) == ("admin", "127.0.0.1", 100)
    assert isinstance(record["duration_ms"], float)


def test_client_address_through_a_trusted_proxy_and_its_request_id(start: Start) -> None:
    server, logged = start(trusted_proxies=PROXY)
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "proxy-id-1"}
    got = server.client().get(server.url(""), headers=headers)
    assert got.headers["X-Request-Id"] == "proxy-id-1"
    assert logged.access("proxy-id-1")["addr"] == "203.0.113.9"


def test_request_ids_from_untrusted_peers_are_replaced(start: Start) -> None:
    server, _ = start()
    got = requests.get(server.base + "/healthz", headers={"X-Request-Id": "forged"}, timeout=30)
    assert re.fullmatch(r"[0-9a-f]{12}", got.headers["X-Request-Id"])
    other = requests.get(server.base + "/healthz", timeout=30)
    assert other.headers["X-Request-Id"] != got.headers["X-Request-Id"]


@pytest.mark.parametrize("stack", ["embedded", "full"])
def test_failed_login_and_refusal_are_logged_with_the_address(start: Start, stack: str) -> None:
    server, logged = start(stack, login_failures_per_user=2, trusted_proxies=PROXY)
    headers = {"X-Forwarded-For": "198.51.100.7"}
    for _ in range(2):
        failed = requests.get(server.dav, auth=("admin", "wrong"), headers=headers, timeout=30)
        assert failed.status_code == 401
        rid = failed.headers["X-Request-Id"]
        line = f"WARNING auth login failed addr=198.51.100.7 user=admin rid={rid}"
        assert len(logged.matching(re.escape(line))) == 1, logged.lines()
    refused = requests.get(server.dav, auth=("admin", "wrong"), headers=headers, timeout=30)
    assert refused.status_code == 429
    rid = refused.headers["X-Request-Id"]
    assert rid in refused.text
    pattern = rf"WARNING auth login rate-limited addr=198\.51\.100\.7 user=admin .*rid={rid}"
    assert len(logged.matching(pattern)) == 1, logged.lines()
    settled(server, "davserver_login_failures_total", 2, door="dav")
    settled(server, "davserver_login_rate_limited_total", 1, door="dav")


def test_error_bodies_carry_the_request_id_at_every_door(start: Start) -> None:
    server, logged = start()
    missing = server.client().get(server.url("nothing-here.txt"))
    rid = missing.headers["X-Request-Id"]
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/plain")
    assert f"(request id {rid})" in missing.text and "<html" not in missing.text.lower()
    assert logged.access(rid)["status"] == "404"
    api = server.client().get(server.base + "/api/v1/nothing")
    assert api.status_code == 404
    assert api.json() == {"error": "no such endpoint", "request_id": api.headers["X-Request-Id"]}
    anonymous = requests.get(server.dav, timeout=30)
    assert anonymous.status_code == 401 and "<html" not in anonymous.text.lower()
    assert anonymous.text == f"authentication required (request id {rid_of(anonymous)})\n"
    assert anonymous.headers["Content-Type"].startswith("text/plain")
    link = requests.get(server.base + "/s/not-a-token/", timeout=30)
    assert link.status_code == 404 and "X-Request-Id" in link.headers


def test_unreachable_s3_answers_503_without_its_address(start: Start) -> None:
    server, logged = start(s3_endpoint="127.0.0.1:1", s3_access_key="k", s3_secret_key="s")
    put = server.client().put(server.url("c.bin"), data=b"z" * 70_000, timeout=60)
    assert put.status_code == 503, put.text
    rid = put.headers["X-Request-Id"]
    for internal in ("127.0.0.1:1", "HTTPConnectionPool", "Traceback", "<html"):
        assert internal not in put.text, put.text
    assert put.text == f"storage unavailable (request id {rid})\n"
    detail = logged.matching(rf"WARNING .*HTTPConnectionPool.*rid={rid}")
    assert detail, logged.lines()
    ready = requests.get(server.base + "/readyz", timeout=60)
    assert ready.status_code == 503 and "127.0.0.1:1" not in ready.text
    assert metric(server, "davserver_blobstore_errors_total", op="put") >= 1


def test_a_broken_blob_directory_is_not_shown_to_clients(start: Start) -> None:
    server, logged = start()
    # The chunk directory on a file system that refuses every new entry (chmod would
    # not stop root): each put fails with an OSError naming the server's path.
    chunks = server.settings.data_dir / "blobs" / "chunks"
    chunks.symlink_to("/proc", target_is_directory=True)
    put = server.client().put(server.url("d.bin"), data=b"w" * 50_000)
    assert put.status_code == 503, put.text
    rid = put.headers["X-Request-Id"]
    assert str(server.settings.data_dir) not in put.text and "blobs" not in put.text
    assert f"request id {rid}" in put.text
    assert logged.matching(rf"{re.escape(str(chunks))}.*rid={rid}"), logged.lines()


@pytest.mark.parametrize("stack", ["embedded", "full"])
def test_metrics_move_with_requests_bytes_and_dedup(start: Start, stack: str) -> None:
    server, _ = start(stack)
    client = server.client()
    before = metric(server, "davserver_requests_total", door="dav", method="PUT", status="201")
    data = random.Random(7).randbytes(256 * 1024)  # incompressible: stored as it is
    assert client.put(server.url("one.bin"), data=data).status_code == 201
    assert client.put(server.url("two.bin"), data=data).status_code == 201
    settled(server, "davserver_requests_total", before + 2, door="dav", method="PUT", status="201")
    assert metric(server, "davserver_request_bytes_total", door="dav") >= 2 * len(data)
    assert metric(server, "davserver_logical_bytes") == 2 * len(data)
    assert metric(server, "davserver_stored_bytes") == len(data)
    assert metric(server, "davserver_dedup_ratio") == 2.0
    assert metric(server, "davserver_chunks") >= 1
    assert metric(server, "davserver_info", version=__version__) == 1
    assert metric(server, "davserver_request_duration_seconds_count", door="dav", method="PUT") >= 2
    assert metric(server, "davserver_blobstore_duration_seconds_count", op="put") >= 1
    assert metric(server, "davserver_db_query_duration_seconds_count") > 0
    assert metric(server, "davserver_uploads_in_flight") == 0


def test_an_upload_in_progress_is_counted_in_flight(start: Start) -> None:
    server, _ = start()
    release = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"first part "
        release.wait(30)
        yield b"last part"

    with ThreadPoolExecutor(1) as pool:
        put = pool.submit(server.client().put, server.url("slow.txt"), data=body(), timeout=60)
        try:
            settled(server, "davserver_uploads_in_flight", 1)
        finally:
            release.set()
        assert put.result().status_code == 201
    settled(server, "davserver_uploads_in_flight", 0)


def test_metrics_show_the_last_gc_report(start: Start) -> None:
    server, _ = start()
    client = server.client()
    assert client.put(server.url("gone.bin"), data=b"q" * 10_000).status_code == 201
    assert client.delete(server.url("gone.bin")).status_code == 204
    assert client.delete(server.base + "/api/v1/trash").json() == {"purged": 1}
    collect_garbage(server.services.catalog, server.services.blobs, grace=0, apply=True)
    assert metric(server, "davserver_last_gc_chunks") == 1
    assert metric(server, "davserver_last_gc_applied") == 1
    assert metric(server, "davserver_last_gc_timestamp") > 0


def test_metrics_need_loopback_or_the_token(start: Start) -> None:
    server, _ = start(trusted_proxies=PROXY, metrics_token="s3cret")
    remote = {"X-Forwarded-For": "203.0.113.20"}
    url = server.base + "/metrics"
    assert requests.get(url, timeout=30).status_code == 200  # loopback
    assert requests.get(url, headers=remote, timeout=30).status_code == 401
    wrong = {**remote, "Authorization": "Bearer nope"}
    assert requests.get(url, headers=wrong, timeout=30).status_code == 403
    right = requests.get(url, headers={**remote, "Authorization": "Bearer s3cret"}, timeout=30)
    assert right.status_code == 200 and "davserver_requests_total" in right.text


def test_metrics_without_a_token_are_loopback_only(start: Start) -> None:
    server, _ = start(trusted_proxies=PROXY)
    remote = {"X-Forwarded-For": "203.0.113.20", "Authorization": "Bearer "}
    assert requests.get(server.base + "/metrics", headers=remote, timeout=30).status_code == 403


def test_readyz_names_the_version(start: Start) -> None:
    server, _ = start()
    ready = requests.get(server.base + "/readyz", timeout=30)
    assert ready.status_code == 200 and __version__ in ready.text


def test_serve_logs_its_start_and_each_request_in_json(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path / "data", log_format="json")
    log = tmp_path / "serve.log"
    served = ServeProcess(settings, log)
    try:
        got = served.client().get(served.url(""))
        rid = got.headers["X-Request-Id"]

        def records() -> list[dict[str, Any]]:
            lines = log.read_text().splitlines()
            return [json.loads(line) for line in lines if line.startswith("{")]

        eventually(lambda: any(r.get("rid") == rid for r in records()), served.log_tail)
    finally:
        assert served.stop() == 0
    messages = [r["message"] for r in records()]
    assert f"davserver {__version__} starting" in messages, messages
    access = [r for r in records() if r["rid"] == rid]
    assert access[0]["logger"] == "access" and access[0]["status"] == 200


def test_share_links_log_wrong_passwords_and_answer_errors_with_the_id(start: Start) -> None:
    server, logged = start(trusted_proxies=PROXY)
    assert server.client().request("MKCOL", server.url("box")).status_code == 201
    link = make_link(server, "box", "edit", password_hash=hash_password("pw"))
    remote = {"X-Forwarded-For": "192.0.2.33"}
    wrong = requests.post(link.url + "/unlock", data={"password": "no"}, headers=remote, timeout=30)
    assert wrong.status_code == 401
    line = (
        f"WARNING auth link password failed addr=192.0.2.33 user=link:{link.id} rid={rid_of(wrong)}"
    )
    eventually(lambda: bool(logged.matching(re.escape(line))), logged.lines)
    dav = requests.get(link.dav + "missing.txt", auth=("x", "no"), headers=remote, timeout=30)
    assert dav.status_code == 401
    assert logged.matching(rf"link password failed addr=192\.0\.2\.33 .*rid={rid_of(dav)}")
    missing = requests.get(link.dav + "missing.txt", auth=("x", "pw"), timeout=30)
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/plain")
    assert missing.text.endswith(f"(request id {rid_of(missing)})\n"), missing.text
    settled(server, "davserver_login_failures_total", 2, door="links")
