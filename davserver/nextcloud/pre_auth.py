"""notify_push's pre-authentication: `POST /index.php/apps/notify_push/pre_auth`, with
the account's login, answers a short-lived token (text/plain); a WebSocket client that
holds no password (a web page with a session, say) then logs in to the notify_push
socket with the user name `""` and that token as the password
(`davserver.nextcloud.notify_push`).

A token is `<user id>.<issued, ms>.<nonce>.<HMAC-SHA-256>` under a key every instance
shares (kept in the catalog), so a token fetched through one instance opens a socket on
any other. It is good for `TOKEN_TTL` seconds (as notify_push's) and once per instance:
each instance remembers the tokens it accepted until they expire (a token replayed on
a second instance within those seconds is not caught; it names only the account that
fetched it, and is as secret as that account's session).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable

from davserver.http.environ import USER, StartResponse, WSGIEnvironment
from davserver.http.responses import plain_response
from providers.catalog import UserRecord

PRE_AUTH_PREFIX = "/index.php/apps/notify_push"
PRE_AUTH_PATH = PRE_AUTH_PREFIX + "/pre_auth"
TOKEN_TTL = 15.0  # seconds
CLOCK_SKEW = 5.0  # seconds an instance's clock may run ahead of another's
MAX_TOKEN = 200  # characters: anything longer is not ours


class PreAuthTokens:
    """Issues and redeems pre-auth tokens (see the module docstring) under `key`."""

    def __init__(
        self, key: bytes, ttl: float = TOKEN_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self._ttl = ttl
        self._clock = clock
        self._used: dict[str, float] = {}  # token -> when it expires
        self._lock = threading.Lock()

    def issue(self, user: UserRecord) -> str:
        body = f"{user.id}.{int(self._clock() * 1000)}.{secrets.token_hex(8)}"
        return f"{body}.{self._mac(body)}"

    def redeem(self, token: str) -> int | None:
        """The id of the account `token` was issued to, once; None for a token that is
        not ours, expired, or already redeemed here."""
        if len(token) > MAX_TOKEN:
            return None
        body, _, mac = token.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        user_text, issued_text, _nonce = (body.split(".") + ["", ""])[:3]
        if not (user_text.isdigit() and issued_text.isdigit()):
            return None
        now = self._clock()
        age = now - int(issued_text) / 1000
        if not -CLOCK_SKEW <= age <= self._ttl:
            return None
        with self._lock:
            self._used = {t: end for t, end in self._used.items() if end > now}
            if token in self._used:
                return None
            self._used[token] = now + self._ttl + CLOCK_SKEW
        return int(user_text)

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


class PreAuthEndpoint:
    """`POST PRE_AUTH_PATH` (behind the account logins, which leave the account in the
    environ): 200 with a token as text/plain; another method 405, another path 404."""

    def __init__(self, tokens: PreAuthTokens) -> None:
        self._tokens = tokens

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") != PRE_AUTH_PATH:
            return plain_response(start_response, 404, "not found")
        if environ.get("REQUEST_METHOD") != "POST":
            return plain_response(start_response, 405, "use POST", [("Allow", "POST")])
        user = environ.get(USER)
        if not isinstance(user, UserRecord):
            return plain_response(start_response, 403, "no such user")
        token = self._tokens.issue(user).encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(token))),
            ("Cache-Control", "no-store"),
        ]
        start_response("200 OK", headers)
        return [token]
