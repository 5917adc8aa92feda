"""All HTTP of `davserver push` and `pull` (urllib3): the server's JSON API with the
user's login, and the block URLs it hands out, which carry their own signature.

Contract: every failure leaves as one `TransferError` (urllib3's own errors are
translated here): `status` is the HTTP status (None when no answer came), `body` the
JSON error answer when there was one, and the message is one line naming the request
and the reason, never the password. Transient failures (no connection, a reset, a
timeout, 429 and 5xx) are retried `retries` times with exponential backoff
(`Retry-After` is honoured up to `MAX_WAIT`) before they are raised. Bodies are bytes
the caller already holds (a block is at most the chunker's `max_size`), so a retry
sends them again as they are. The login is sent only to the origin of `server`: an
`auth: true` upload URL elsewhere is refused (the credentials stay with the server
they were given for). One `Remote` is shared by the worker threads (urllib3's pool
is thread-safe).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.util import Timeout, make_headers

TRANSIENT = frozenset({429, 500, 502, 503, 504})
MAX_WAIT = 30.0
# urllib3 logs each dropped connection it replaces; a retry here says it once.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
log = logging.getLogger("davserver.transfer")


class TransferError(Exception):
    """A request that failed (see the module contract)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in TRANSIENT


@dataclass(frozen=True)
class Login:
    """An account name and its password (or app password)."""

    user: str
    password: str


@dataclass(frozen=True)
class Upload:
    """How to send one block, as `check` answered it (docs/api.md)."""

    method: str
    url: str
    headers: Mapping[str, str]
    auth: bool

    @classmethod
    def of(cls, entry: Any) -> Upload:
        try:
            return cls(
                str(entry["method"]),
                str(entry["url"]),
                {str(k): str(v) for k, v in entry.get("headers", {}).items()},
                bool(entry["auth"]),
            )
        except (TypeError, KeyError, AttributeError) as e:
            raise TransferError(f"the server's upload entry is malformed: {entry!r}") from e


class Remote:
    """The server at `server` (its base URL, e.g. `https://dav.example.org`)."""

    def __init__(
        self, server: str, login: Login, *, workers: int = 4, retries: int = 4, backoff: float = 0.5
    ) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TransferError(f"not a server URL: {server!r} (use e.g. https://dav.example.org)")
        self.base = server.rstrip("/")
        self._origin = (parts.scheme, parts.netloc)
        self._auth = make_headers(basic_auth=f"{login.user}:{login.password}")
        self._retries, self._backoff = retries, backoff
        self._pool = urllib3.PoolManager(
            maxsize=workers + 2, retries=False, timeout=Timeout(connect=15, read=300)
        )

    def close(self) -> None:
        self._pool.clear()

    def get_json(self, endpoint: str, /, **query: str) -> Any:
        """The JSON answer of `GET /api/v1/<endpoint>?<query>` (2xx), with the login."""
        url = f"{self.base}/api/v1/{endpoint}" + (f"?{urlencode(query)}" if query else "")
        return _json(self._request("GET", url, auth=True))

    def post_json(self, endpoint: str, body: Any) -> Any:
        """The JSON answer of `POST /api/v1/<endpoint>` with `body` as JSON (2xx)."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        url = f"{self.base}/api/v1/{endpoint}"
        return _json(self._request("POST", url, data, headers, True))

    def send_block(self, upload: Upload, data: bytes) -> None:
        """Send one block as `upload` says: with the login, or exactly the signed
        method, URL and headers and no login."""
        if upload.auth and self._origin_of(upload.url) != self._origin:
            raise TransferError(f"the server asked for the login at another host: {upload.url}")
        self._request(upload.method, upload.url, data, dict(upload.headers), upload.auth)

    def fetch_block(self, url: str) -> bytes:
        """The body of a signed block URL (no login: it carries its own signature)."""
        return self._request("GET", url, auth=False).data

    @staticmethod
    def _origin_of(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        return parts.scheme, parts.netloc

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """The answer (2xx) to one request, after retrying transient failures."""
        sent = {**(headers or {}), **(self._auth if auth else {})}
        for attempt in range(self._retries + 1):
            try:
                return self._once(method, url, body, sent)
            except TransferError as e:
                if not e.transient or attempt == self._retries:
                    raise
                wait = min(self._backoff * 2**attempt, MAX_WAIT)
                log.info("%s (retry %d in %.1f s)", e, attempt + 1, wait)
                time.sleep(e.retry_after or wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _once(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> urllib3.BaseHTTPResponse:
        where = f"{method} {_shown(url)}"
        try:
            response = self._pool.request(
                method, url, body=body, headers=headers, redirect=False, preload_content=True
            )
        except urllib3.exceptions.HTTPError as e:
            raise TransferError(f"{where}: {_reason(e)}") from e
        if 200 <= response.status < 300:
            return response
        raise TransferError(
            f"{where}: {response.status} {_error_text(response)}",
            response.status,
            _body(response),
            _retry_after(response),
        )


def _shown(url: str) -> str:
    """`url` without its query (a signature is noise in a message)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _reason(e: urllib3.exceptions.HTTPError) -> str:
    """The innermost reason of a connection failure, in a few words."""
    inner = getattr(e, "reason", None) or e
    return str(inner).split(": ", 1)[-1] or type(inner).__name__


def _body(response: urllib3.BaseHTTPResponse) -> Any:
    try:
        return json.loads(response.data)
    except ValueError:
        return None


def _error_text(response: urllib3.BaseHTTPResponse) -> str:
    """The `error` of a JSON answer, else the first line of the body, else the reason."""
    body = _body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    text = response.data[:200].decode("utf-8", "replace").strip().splitlines()
    return text[0] if text else (response.reason or "")


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    return min(float(value), MAX_WAIT) if value.isdigit() else None


def _json(response: urllib3.BaseHTTPResponse) -> Any:
    try:
        return json.loads(response.data)
    except ValueError as e:
        raise TransferError(f"the server's answer is not JSON: {response.data[:80]!r}") from e
