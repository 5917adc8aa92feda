"""Unit tests of `davserver.http.shared_reads.SharedReads`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from davserver.http.shared_reads import SharedReads


class Reading:
    """A stand-in for `Database.reading`: records whether a block is open."""

    def __init__(self) -> None:
        self.open = False
        self.blocks = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        self.open, self.blocks = True, self.blocks + 1
        try:
            yield
        finally:
            self.open = False


class App:
    """A WSGI app yielding three pieces and noting, per piece, whether the block was open."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.seen: list[tuple[str, bool]] = []
        self.closed = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        self.seen.append(("call", self.reading.open))
        return self._pieces(start_response)

    def _pieces(self, start_response: Any) -> Iterator[bytes]:
        try:
            start_response("200 OK", [])
            for name in ("first", "second", "third"):
                self.seen.append((name, self.reading.open))
                yield name.encode()
        finally:
            self.closed = True


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


def test_a_read_only_request_reads_in_one_block_until_its_first_piece() -> None:
    reading = Reading()
    app = App(reading)
    body = SharedReads(app, reading)({"REQUEST_METHOD": "GET"}, _start)
    assert b"".join(body) == b"firstsecondthird"
    assert app.seen == [("call", True), ("first", True), ("second", False), ("third", False)]
    assert reading.blocks == 1


class Uploading(App):
    """An app that notes whether the block was open before and after reading the body."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        self.seen.append(("before the body", self.reading.open))
        assert environ["wsgi.input"].readinto(bytearray(4)) == 4
        self.seen.append(("after the body", self.reading.open))
        return self._pieces(start_response)


@pytest.mark.parametrize(
    ("method", "open_after_body"),
    [("PUT", False), ("PATCH", False), ("MOVE", False)]  # a body that may stream
    + [("PROPFIND", True), ("MKCOL", True), ("LOCK", True)],  # a bounded XML body
)
def test_a_streaming_body_ends_the_block_and_an_xml_body_does_not(
    method: str, open_after_body: bool
) -> None:
    reading = Reading()
    app = Uploading(reading)
    environ = {"REQUEST_METHOD": method, "wsgi.input": io.BytesIO(b"<x/>")}
    body = SharedReads(app, reading)(environ, _start)
    assert b"".join(body) == b"firstsecondthird"
    after = open_after_body
    assert app.seen[:3] == [("before the body", True), ("after the body", after), ("first", after)]
    assert reading.blocks == 1


def test_a_changing_request_without_a_body_read_keeps_its_block_to_the_first_piece() -> None:
    reading = Reading()
    app = App(reading)
    body = SharedReads(app, reading)(
        {"REQUEST_METHOD": "DELETE", "wsgi.input": io.BytesIO()}, _start
    )
    assert b"".join(body) == b"firstsecondthird"
    assert app.seen == [("call", True), ("first", True), ("second", False), ("third", False)]
    assert reading.blocks == 1


def test_closing_the_answer_early_closes_the_application_s() -> None:
    reading = Reading()
    app = App(reading)
    body: Any = SharedReads(app, reading)({"REQUEST_METHOD": "PROPFIND"}, _start)
    pieces = iter(body)
    assert next(pieces) == b"first"
    body.close()
    assert app.closed and not reading.open


class FailingPieces:
    """An application iterable whose first piece fails; it records being closed."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> FailingPieces:
        return self

    def __next__(self) -> bytes:
        raise OSError("the first piece failed")

    def close(self) -> None:
        self.closed = True


def test_a_first_piece_that_fails_closes_the_application_s_iterable() -> None:
    reading = Reading()
    pieces = FailingPieces()
    middleware = SharedReads(lambda environ, start: pieces, reading)
    with pytest.raises(OSError, match="first piece"):
        middleware({"REQUEST_METHOD": "GET"}, _start)
    assert pieces.closed and not reading.open
