"""WSGI middleware in front of the WebDAV app: throttles failed logins and owns the
authentication challenge.

- A request with credentials whose user name or client address has too many recent
  failures gets 429 with Retry-After, before any password check (so a blocked
  attacker learns nothing, not even from a right guess). Every 401 answered to a
  request that carried credentials counts one failure against both.
- Every 401 leaves with our challenge: `Digest` (when enabled) and `Basic`. Clients
  pick the strongest they speak: Windows and davfs2 take Digest, most others Basic.
- Digest nonces are ours: `timestamp.random.HMAC(key)`. WsgiDAV accepts any nonce a
  client sends, so a captured Authorization header would be valid for that method and
  URL forever; we refuse nonces we did not issue and expire ours after `nonce_ttl`
  seconds (answered with `stale=true`, so clients retry without asking the user).
  The key is shared by every instance through the catalog, so a nonce from one
  instance is good on another behind a load balancer.
- With Digest disabled, a Digest Authorization header is answered with the Basic
  challenge, whatever WsgiDAV is configured to accept.

The user name and address subjects are equal for unknown users and wrong passwords,
and so is the answer: the same 401 and challenge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from davserver.auth import audit
from davserver.auth.ratelimit import LoginLimiter, Subject
from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.errors import with_request_id
from davserver.http.responses import plain_response

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
OK, STALE, INVALID = "ok", "stale", "invalid"


class DigestNonces:
    """Issues and checks Digest nonces bound to `key` (see the module docstring)."""

    def __init__(self, key: bytes, ttl: float = 600.0) -> None:
        self._key = key
        self._ttl = ttl

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        body = f"{int(time.time()):x}.{secrets.token_hex(8)}"
        return f"{body}.{self._mac(body)}"

    def check(self, nonce: str) -> str:
        """`OK`, `STALE` (ours but expired) or `INVALID` (not ours)."""
        body, _, mac = nonce.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return INVALID
        try:
            issued = int(body.partition(".")[0], 16)
        except ValueError:
            return INVALID
        age = time.time() - issued
        return OK if -60 <= age <= self._ttl else STALE


def digest_params(header: str) -> dict[str, str]:
    """The name=value pairs of a Digest Authorization header (quoted or bare)."""
    return {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(header)}


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of a Basic Authorization header, None if it is not Basic or
    is malformed (bad base64, no colon, or not UTF-8: WsgiDAV would fail on those with
    a 500)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, colon, password = text.partition(":")
    return (name, password) if colon else None


def basic_user(header: str) -> str | None:
    """The user name of a Basic Authorization header (see `basic_credentials`)."""
    credentials = basic_credentials(header)
    return credentials[0] if credentials else None


class LoginGate:
    """Wraps the WebDAV app (see the module docstring); `nonces` None disables Digest."""

    def __init__(
        self, app: WSGIApplication, limiter: LoginLimiter, realm: str, nonces: DigestNonces | None
    ) -> None:
        self._app = app
        self._limiter = limiter
        self._realm = realm
        self._nonces = nonces

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header:
            return self._app(environ, self._rechallenging(environ, start_response, []))
        scheme = header.partition(" ")[0].lower()
        user, stale = None, False
        if scheme == "basic":
            user = basic_user(header)
        elif scheme == "digest" and self._nonces is not None:
            params = digest_params(header)
            user = params.get("username") or None
            verdict = self._nonces.check(params.get("nonce", ""))
            if verdict != OK:
                user, stale = None, verdict == STALE
        if user is None:
            # Malformed, unsupported or with a nonce we cannot accept: ask again. Not
            # a failed login: no password was checked.
            return self._challenge(start_response, stale=stale)
        subjects = [("user", user), ("addr", environ.get("REMOTE_ADDR", ""))]
        wait = self._limiter.blocked_for(subjects)
        if wait:
            audit.rate_limited(environ, user, wait)
            return self._too_many(start_response, wait)
        return self._app(environ, self._rechallenging(environ, start_response, subjects))

    def _challenges(self, *, stale: bool = False) -> list[tuple[str, str]]:
        headers = []
        if self._nonces is not None:
            digest = (
                f'Digest realm="{self._realm}", qop="auth", algorithm=MD5, '
                f'nonce="{self._nonces.issue()}"'
            )
            headers.append(("WWW-Authenticate", digest + (", stale=true" if stale else "")))
        headers.append(("WWW-Authenticate", f'Basic realm="{self._realm}", charset="UTF-8"'))
        return headers

    def _rechallenging(
        self, environ: WSGIEnvironment, start_response: StartResponse, subjects: list[Subject]
    ) -> Callable[..., Any]:
        """A start_response that counts (and logs) a 401 as a failure of `subjects` and
        puts our challenge in place of WsgiDAV's."""

        def wrapped(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            if status.startswith("401"):
                if subjects:
                    self._limiter.failed(subjects)
                    audit.login_failed(environ, subjects[0][1])
                headers = [h for h in headers if h[0].lower() != "www-authenticate"]
                headers += self._challenges()
            return start_response(status, headers, *args)

        return wrapped

    def _challenge(self, start_response: StartResponse, *, stale: bool) -> list[bytes]:
        body = (with_request_id("authentication required") + "\n").encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        start_response("401 Unauthorized", headers + self._challenges(stale=stale))
        return [body]

    def _too_many(self, start_response: StartResponse, wait: int) -> list[bytes]:
        return plain_response(
            start_response,
            429,
            "too many failed logins; try again later",
            [("Retry-After", str(wait))],
        )
