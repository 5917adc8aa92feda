"""The outermost WSGI middleware: a request id for every request, one access-log line
and the request metrics for every answer.

Request id. A sane incoming `X-Request-Id` (1-64 of `[A-Za-z0-9._:-]`) is kept when
the peer is a trusted proxy, so a proxy's id follows the request; otherwise one is
made (12 hex digits). It is the current request id (`davserver.logs`) while the
request is served, lands in the environ (`REQUEST_ID`) and leaves in the answer's
`X-Request-Id`.

Access log. When the answer is over (its iterable closed) one INFO record on the
`davserver.access` logger: time, request id, client address (`REMOTE_ADDR` as the
proxy layer left it), user, method, path, status, bytes in (read from `wsgi.input`)
and out (yielded by the app), duration. Its fields also ride in `record.fields` for
the JSON format.

Bodies are counted without copying: `wsgi.input` is wrapped by a reader that passes
`read`, `readline` and, when the server's input has one, the fast `readinto` straight
through; the answer's iterable is wrapped by a generator-free iterator that keeps
`close()`.

An answer that fails while its body is being sent is logged once here (unless the
engine already did, as for a corrupt chunk) and ends in `ResponseCut`: the server
closes the connection, so a client never takes a short body for the whole file.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from davserver.http.environ import AUTH_EVENT, REQUEST_ID, USER, StartResponse, WSGIApplication
from davserver.http.environ import WSGIEnvironment as Environ
from davserver.http.errors import ResponseCut, with_request_id
from davserver.http.input_proxy import InputProxy, ReadintoProxy, proxy_input
from davserver.http.proxy import is_trusted_peer, parse_address
from davserver.http.responses import TEXT_TYPE
from davserver.logs import reset_request_id, safe, set_request_id
from davserver.metrics import Metrics, door_of
from davserver.settings import Network
from providers.errors import CorruptChunk, StorageError

log = logging.getLogger(__name__)
access_log = logging.getLogger("davserver.access")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
UPLOAD_METHODS = ("PUT", "PATCH")


class _CountingInput(InputProxy):
    """`wsgi.input` that counts the bytes read through it."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.count = 0

    def _after(self, received: int) -> None:
        self.count += received


class _CountingReadinto(_CountingInput, ReadintoProxy):
    """A `_CountingInput` over an input with `readinto` (the server's Content-Length
    bodies)."""


def counting_input(inner: Any) -> _CountingInput:
    """`inner` wrapped to count bytes (see `davserver.http.input_proxy`)."""
    return proxy_input(inner, _CountingInput, _CountingReadinto)


class _Exchange:
    """One request in flight: what the access log and the metrics need at its end."""

    def __init__(self, environ: Environ, rid: str) -> None:
        self.environ = environ
        self.rid = rid
        self.start = time.perf_counter()
        self.method = str(environ.get("REQUEST_METHOD", ""))
        self.path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        self.status = 0
        self.out = 0
        self.input = counting_input(environ.get("wsgi.input"))
        environ["wsgi.input"] = self.input


class _Body:
    """The answer's iterable, counting bytes out and closing the exchange once."""

    def __init__(self, inner: Iterable[bytes], exchange: _Exchange, done: Callable[[], None]):
        self._inner = inner
        self._it = iter(inner)
        self._exchange = exchange
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        try:
            data = next(self._it)
        except StopIteration:
            raise
        except Exception as e:
            # The access line should not say 0; the server cuts the connection (or,
            # if nothing was sent yet, answers a bare 500).
            self._exchange.status = self._exchange.status or 500
            if isinstance(e, ResponseCut):
                raise
            _log_cut(e, self._exchange)
            raise ResponseCut(f"answer failed: {type(e).__name__}") from e
        self._exchange.out += len(data)
        return data

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            if self._done is not None:
                done, self._done = self._done, None
                done()


def _log_cut(error: Exception, exchange: _Exchange) -> None:
    """Log, once, an error that cut an answer under way: an engine error in a line (a
    corrupt chunk not even that: the file store logged it when it found it), anything
    else with its traceback."""
    where = f"{exchange.method} {safe(exchange.path)}"
    if isinstance(error, CorruptChunk):
        return
    if isinstance(error, StorageError):
        log.warning("%s cut: %s", where, error)
    else:
        log.error("%s cut by an unexpected error", where, exc_info=error)


class Observe:
    """See the module docstring. `trusted` are the proxy networks whose request ids are
    kept; `metrics` counts every request."""

    def __init__(self, app: WSGIApplication, trusted: Sequence[Network], metrics: Metrics):
        self._app = app
        self._trusted = tuple(trusted)
        self._metrics = metrics

    def request_id(self, environ: Environ) -> str:
        incoming = str(environ.get("HTTP_X_REQUEST_ID", "")).strip()
        peer = parse_address(str(environ.get("REMOTE_ADDR", "")))
        if is_trusted_peer(peer, self._trusted) and _SANE_ID.fullmatch(incoming):
            return incoming
        return secrets.token_hex(6)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        rid = self.request_id(environ)
        environ.pop("HTTP_X_REQUEST_ID", None)
        environ[REQUEST_ID] = rid
        token = set_request_id(rid)
        exchange = _Exchange(environ, rid)
        upload = exchange.method in UPLOAD_METHODS
        if upload:
            self._metrics.uploads.inc()

        def started(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            exchange.status = int(status[:3])
            headers = [h for h in headers if h[0].lower() != "x-request-id"]
            return start_response(status, [*headers, ("X-Request-Id", rid)], *args)

        def done() -> None:
            try:
                if upload:
                    self._metrics.uploads.dec()
                self._finish(exchange)
            finally:
                # close() runs on the request's thread, in its context; should a server
                # call it from elsewhere, the id simply stays until the next request.
                with contextlib.suppress(ValueError):
                    reset_request_id(token)

        try:
            result = self._app(environ, started)
        except Exception as e:
            # Nothing below answered: the traceback goes to the log (a corrupt chunk was
            # logged where it was found), the client gets a short reason and the id.
            if not isinstance(e, CorruptChunk):
                log.exception("unhandled error in %s %s", exchange.method, safe(exchange.path))
            body = (with_request_id("internal error") + "\n").encode()
            headers = [("Content-Type", TEXT_TYPE), ("Content-Length", str(len(body)))]
            started("500 Internal Server Error", headers, sys.exc_info())
            result = [body]
        except BaseException:
            exchange.status = exchange.status or 500
            done()
            raise
        return _Body(result, exchange, done)

    def _finish(self, exchange: _Exchange) -> None:
        seconds = time.perf_counter() - exchange.start
        environ = exchange.environ
        door = door_of(exchange.path)
        metrics = self._metrics
        metrics.request(door, exchange.method, exchange.status, seconds)
        metrics.bytes_in.labels(door).inc(exchange.input.count)
        metrics.bytes_out.labels(door).inc(exchange.out)
        event = environ.get(AUTH_EVENT)
        if event == "failed":
            metrics.login_failures.labels(door).inc()
        elif event == "limited":
            metrics.rate_limited.labels(door).inc()
        fields = {
            "rid": exchange.rid,
            "addr": str(environ.get("REMOTE_ADDR", "-")),
            "user": _user(environ),
            "method": exchange.method,
            "path": _readable(exchange.path),
            "status": exchange.status,
            "bytes_in": exchange.input.count,
            "bytes_out": exchange.out,
            "duration_ms": round(seconds * 1000, 1),
        }
        user, path = str(fields["user"]), str(fields["path"])
        text = {**fields, "user": safe(user, " "), "path": safe(path)}
        access_log.info(
            'rid=%s addr=%s user=%s "%s %s" %d in=%d out=%d %.1fms',
            *text.values(),
            extra={"fields": fields, "rid": exchange.rid},
        )


def _user(environ: Environ) -> str:
    """Who made the request: the account WsgiDAV authenticated, else "-"."""
    record = environ.get(USER)
    name = getattr(record, "name", None) or environ.get("wsgidav.auth.user_name") or "-"
    return str(name)


def _readable(path: str) -> str:
    """A WSGI path (bytes as latin-1) as the UTF-8 text the client meant."""
    try:
        return path.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return path
