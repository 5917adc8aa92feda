"""A corrupt chunk is never served (design invariant 24), as the WSGI server sees the
answer: before the first block a clean 500; after it, `ResponseCut` reaches the server
(which closes the connection) and no error text is ever sent as more of the body."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from wsgidav.error_printer import ErrorPrinter

from davserver.dav.errors import ShortErrors
from davserver.dav.folder_pages import PlainStatusPages
from davserver.http import content
from davserver.http.errors import ResponseCut
from davserver.http.observe import Observe
from davserver.logs import request_id
from davserver.metrics import Metrics
from providers.blobstore.base import chunk_key
from providers.blobstore.memory import MemoryBlobStore
from providers.errors import CorruptChunk
from providers.filestore import FileStore
from tests.unit.test_observe import Started, environ

KIB = 1024
GOOD = b"abcde"


def failing_app(*, after_first_block: bool) -> Any:
    """A file answer of 10 bytes whose read fails (a corrupt chunk) before or after its
    first block."""

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "10"), ("Content-Type", "text/plain")])
        if after_first_block:
            yield GOOD
        raise CorruptChunk("ab" * 32, "its bytes do not hash to its name")

    return app


def through(app: Any, layers: Iterable[type]) -> Any:
    """`app` inside the WsgiDAV middleware `layers` (outermost first), under `Observe`."""
    for layer in reversed(list(layers)):
        app = layer(None, app, {})
    return Observe(app, [], Metrics())


def serve(app: Any) -> tuple[Started, list[bytes], BaseException | None]:
    """Iterate the answer as cheroot does: the blocks sent and what ended it."""
    started, sent = Started(), []
    result = app(environ(), started)
    try:
        for block in result:
            sent.append(block)
    except Exception as e:
        return started, sent, e
    finally:
        result.close()
    return started, sent, None


@pytest.mark.parametrize("printer", [ShortErrors, ErrorPrinter], ids=["ours", "wsgidav"])
def test_an_error_after_the_first_block_cuts_the_connection(printer: type) -> None:
    """With WsgiDAV's printer (which sends an error status and page after the 200 began)
    `PlainStatusPages` refuses the second status, so both cut the answer."""
    app = through(failing_app(after_first_block=True), [PlainStatusPages, printer])
    started, sent, ended = serve(app)
    assert started.status == "200 OK"
    assert b"".join(sent) == GOOD  # what went out is the good first block, nothing else
    assert isinstance(ended, ResponseCut)


def test_an_error_before_the_first_block_is_a_short_500() -> None:
    app = through(failing_app(after_first_block=False), [PlainStatusPages, ShortErrors])
    started, sent, ended = serve(app)
    assert ended is None
    assert started.status.startswith("500")
    text = b"".join(sent).decode()
    assert text.startswith("internal error (request id ") and "chunk" not in text
    assert started.headers["Content-Length"] == str(len(text))


def test_a_door_without_wsgidav_cuts_a_started_answer(
    files: FileStore, blobs: MemoryBlobStore
) -> None:
    """`davserver.http.content.send` at a share link or snapshot door: the reader
    fails past the first block, `Observe` turns it into `ResponseCut`; the file store
    reported the chunk once, on the request's thread."""
    seen: list[tuple[str, str]] = []
    files.on_corrupt(lambda e: seen.append((e.chunk_hash, request_id())))
    data = random.Random(3).randbytes(64 * KIB)
    written = files.writer().write_all([data])
    second = written.extents[1]
    key = chunk_key(second.chunk_hash)
    stored = blobs.get(key)
    blobs.put(key, stored[:-1] + bytes([stored[-1] ^ 1]))
    rep = content.Representation(
        size=len(data),
        etag="e",
        last_modified=0,
        content_type="application/octet-stream",
        open=lambda: files.extents_reader(written.extents),
    )

    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return content.send(env, start_response, rep, content.plan(env, rep), [], block_size=KIB)

    started, sent, ended = serve(Observe(app, [], Metrics()))
    assert started.status == "200 OK"
    assert started.headers["Content-Length"] == str(len(data))
    body = b"".join(sent)
    assert len(body) <= second.offset and data.startswith(body)
    assert isinstance(ended, ResponseCut) and isinstance(ended.__cause__, CorruptChunk)
    assert seen == [(second.chunk_hash, started.headers["X-Request-Id"])]


def test_a_corrupt_chunk_no_door_answered_is_a_short_500(caplog: pytest.LogCaptureFixture) -> None:
    """A page that reads a file (a share link's text preview) and meets a corrupt
    chunk: `Observe` answers 500 with the request id and logs no second traceback."""

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        raise CorruptChunk("ab" * 32, "its bytes do not match its SHA-256")

    started, sent, ended = serve(Observe(app, [], Metrics()))
    assert ended is None and started.status.startswith("500")
    assert b"".join(sent).decode().startswith("internal error (request id ")
    assert not [r for r in caplog.records if r.exc_info]
