"""One read transaction for a request's lookups, until its body moves.

A GET of a small file took eight read transactions (the login's user, the path twice,
checksums, extents, locators...), each a BEGIN and a COMMIT costing more than its
query; a small PUT took five before its body. `SharedReads` runs every request inside
`reading()` (the catalog's `Database.reading`) until the application yields its first
piece of answer or, for a method whose body may stream (PUT, PATCH, POST...), reads
the first byte of that body, whichever comes first (an XML body, PROPFIND's or
LOCK's, is a bounded question `RequestGuard` buffers before the lookups). That covers
the login, the lookups and the precondition and lock checks, and stops before a large
body streams either way (a long read transaction holds back SQLite's WAL
checkpoints). The first write a request makes ends the sharing too
(`Database.reading`): what a PUT does after its body, or a MOVE after its checks,
takes transactions of its own, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any

from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.guards import XML_METHODS
from davserver.http.input_proxy import InputProxy, ReadintoProxy, proxy_input

READ_ONLY = frozenset({"GET", "HEAD", "PROPFIND", "OPTIONS"})
_BOUNDED_BODIES = READ_ONLY | XML_METHODS  # their bodies end no block


class SharedReads:
    """WSGI middleware: every request runs in `reading()` until its first answer
    piece, or its first body read if that body may stream (see the module
    docstring)."""

    def __init__(
        self, app: WSGIApplication, reading: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self._app = app
        self._reading = reading

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        ends_at_body = environ.get("REQUEST_METHOD") not in _BOUNDED_BODIES
        return _Answer(self._app, environ, start_response, self._reading, ends_at_body)


class _Answer:
    """The application's answer: produced up to its first piece in `reading()` (or up
    to its first body read, if `ends_at_body`), then streamed as it is; `close` reaches
    the application's iterable (PEP 3333)."""

    def __init__(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        reading: Callable[[], AbstractContextManager[None]],
        ends_at_body: bool,
    ) -> None:
        with ExitStack() as block:  # `close()` ends it early; a second end does nothing
            block.enter_context(reading())
            body = environ.get("wsgi.input")
            if ends_at_body and body is not None:
                environ["wsgi.input"] = ending_on_read(body, block.close)
            self._pieces: Iterable[bytes] = app(environ, start_response)
            self._rest = iter(self._pieces)
            try:
                self._first = next(self._rest, None)
            except BaseException:
                self.close()  # nobody else holds the iterable to close it (PEP 3333)
                raise

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            yield self._first
        yield from self._rest

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class _EndingOnRead(InputProxy):
    """`wsgi.input` that calls `on_read` once, before the first read through it."""

    def __init__(self, inner: Any, on_read: Callable[[], None]) -> None:
        super().__init__(inner)
        self._on_read: Callable[[], None] | None = on_read

    def _before(self) -> None:
        if self._on_read is not None:
            on_read, self._on_read = self._on_read, None
            on_read()


class _EndingOnReadinto(_EndingOnRead, ReadintoProxy):
    """An `_EndingOnRead` over an input with `readinto`."""


def ending_on_read(inner: Any, on_read: Callable[[], None]) -> _EndingOnRead:
    """`inner` wrapped to call `on_read` before its first read (see
    `davserver.http.input_proxy`)."""
    return proxy_input(inner, _EndingOnRead, _EndingOnReadinto, on_read)
