"""One read transaction for a read-only request's lookups, until its first bytes.

A GET of a small file took eight read transactions (the login's user, the path twice,
checksums, extents, locators...), each a BEGIN and a COMMIT costing more than its
query. `SharedReads` runs a request of a read-only method inside `reading()` (the
catalog's `Database.reading`) until the application yields its first piece of body:
that covers the login, the lookups and what a small answer needs, and stops before a
large body streams (a long read transaction holds back SQLite's WAL checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment

READ_ONLY = frozenset({"GET", "HEAD", "PROPFIND", "OPTIONS"})


class SharedReads:
    """WSGI middleware: requests whose method is in `methods` run in `reading()` until
    their first body piece (see the module docstring); others pass through."""

    def __init__(
        self,
        app: WSGIApplication,
        reading: Callable[[], AbstractContextManager[None]],
        methods: frozenset[str] = READ_ONLY,
    ) -> None:
        self._app = app
        self._reading = reading
        self._methods = methods

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in self._methods:
            return self._app(environ, start_response)
        return _Answer(self._app, environ, start_response, self._reading)


class _Answer:
    """The application's answer: produced up to its first piece in `reading()`, then
    streamed as it is; `close` reaches the application's iterable (PEP 3333)."""

    def __init__(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        reading: Callable[[], AbstractContextManager[None]],
    ) -> None:
        with reading():
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
