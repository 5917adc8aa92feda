"""The outermost middleware called as a WSGI server calls it: ids, counted bodies,
close() passed on, and a crash answered without its traceback."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from davserver.http.observe import Observe
from davserver.metrics import Metrics
from davserver.settings import parse_networks


class Started:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}

    def __call__(self, status: str, headers: list[tuple[str, str]], *_exc: Any) -> Any:
        self.status, self.headers = status, dict(headers)
        return lambda _data: None


class Body(io.BytesIO):
    """A server's Content-Length input with the fast `readinto`."""


def environ(method: str = "GET", body: bytes = b"", **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/dav/x",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.input": Body(body),
        **extra,
    }


def run(app: Any, env: dict[str, Any], trusted: str = "") -> tuple[Started, bytes, Metrics]:
    metrics = Metrics()
    started = Started()
    result = Observe(app, parse_networks(trusted), metrics)(env, started)
    try:
        data = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return started, data, metrics


def test_bodies_are_counted_through_readinto_and_close_is_passed_on() -> None:
    closed = []

    class Answer:
        def __iter__(self) -> Iterator[bytes]:
            yield b"abc"
            yield b"de"

        def close(self) -> None:
            closed.append(True)

    def app(env: dict[str, Any], start: Any) -> Iterable[bytes]:
        buffer = bytearray(4)
        assert env["wsgi.input"].readinto(buffer) == 4 and env["wsgi.input"].read() == b"56"
        start("201 Created", [])
        return Answer()

    started, data, metrics = run(app, environ("PUT", b"123456"))
    assert (started.status, data, closed) == ("201 Created", b"abcde", [True])
    registry = metrics.registry
    assert registry.get_sample_value("davserver_request_bytes_total", {"door": "dav"}) == 6
    assert registry.get_sample_value("davserver_response_bytes_total", {"door": "dav"}) == 5
    assert registry.get_sample_value("davserver_uploads_in_flight") == 0


class Chunked:
    """A chunked body's input: `read` only (cheroot's ChunkedRFile has no readinto)."""

    def read(self, size: int = -1) -> bytes:
        return b"chunk"


def test_an_input_without_readinto_gets_none() -> None:
    def app(env: dict[str, Any], start: Any) -> Iterable[bytes]:
        assert not hasattr(env["wsgi.input"], "readinto")
        start("200 OK", [])
        return [env["wsgi.input"].read()]

    plain = environ("PUT")
    plain["wsgi.input"] = Chunked()
    assert run(app, plain)[1] == b"chunk"


def test_a_crash_is_a_short_500_with_the_id() -> None:
    def app(env: dict[str, Any], start: Any) -> Iterable[bytes]:
        raise RuntimeError("/srv/secret/path exploded")

    started, data, _ = run(app, environ())
    rid = started.headers["X-Request-Id"]
    assert started.status == "500 Internal Server Error"
    assert data == f"internal error (request id {rid})\n".encode()


@pytest.mark.parametrize(
    ("trusted", "incoming", "kept"),
    [("10.0.0.0/8", "lb-42", True), ("", "lb-42", False), ("10.0.0.0/8", "bad id!", False)],
)
def test_incoming_ids_are_kept_only_from_trusted_proxies(
    trusted: str, incoming: str, kept: bool
) -> None:
    def app(env: dict[str, Any], start: Any) -> Iterable[bytes]:
        start("200 OK", [("X-Request-Id", "from-below")])
        return []

    started, _, _ = run(app, environ(HTTP_X_REQUEST_ID=incoming), trusted)
    assert (started.headers["X-Request-Id"] == incoming) is kept
    assert started.headers["X-Request-Id"] != "from-below"
