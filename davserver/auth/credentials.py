"""Checking a user name and password that did not come in an HTTP Authorization header
(the notify_push WebSocket sends them as messages): the very check of `/dav/`'s Basic
logins, behind the same login limiter and with the same audit lines.

- The password is the account password or a live app password of the account,
  verified by `CatalogDomainController.basic_auth_user` (argon2id, the same timing for
  unknown users and wrong passwords).
- Before any check, a user name or client address with too many recent failures is
  refused (`LIMITED`); a wrong password counts one failure against both and is logged
  as `login failed` (`davserver.auth.audit`), as a 401 at `/dav/` is.
- The database being down is `UNAVAILABLE`, not a failure: nobody guessed wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from davserver.auth import audit
from davserver.auth.domain import REALM, CatalogDomainController
from davserver.auth.domain import UNAVAILABLE as DB_DOWN
from davserver.auth.ratelimit import LoginLimiter, Subject
from davserver.http.environ import USER
from providers.catalog import UserRecord
from providers.catalog.users import Users

INVALID = "Invalid credentials"
LIMITED = "Too many failed logins, try again later"
UNAVAILABLE = "Server unavailable, try again later"


@dataclass(frozen=True)
class Login:
    """The outcome of a check: the account, or the refusal (one of the constants
    above, a short reason a client may be shown)."""

    user: UserRecord | None
    refusal: str = ""


class PasswordLogins:
    """Checks (name, password) pairs for `users` against `limiter` (module docstring)."""

    def __init__(self, users: Users, limiter: LoginLimiter) -> None:
        self._controller = CatalogDomainController(None, {"davserver_dc": {"users": users}})
        self._limiter = limiter

    def check(self, name: str, password: str, address: str) -> Login:
        """The account `name` logs in as with `password`, from client `address`."""
        environ: dict[str, object] = {"REMOTE_ADDR": address}
        subjects: list[Subject] = [("user", name), ("addr", address)]
        wait = self._limiter.blocked_for(subjects)
        if wait:
            audit.rate_limited(environ, name, wait)
            return Login(None, LIMITED)
        if self._controller.basic_auth_user(REALM, name, password, environ):
            user = environ.get(USER)
            if isinstance(user, UserRecord):
                return Login(user)
        if environ.get(DB_DOWN):
            return Login(None, UNAVAILABLE)
        self.failed(subjects, environ, name)
        return Login(None, INVALID)

    def refuse(self, address: str, name: str = "") -> Login:
        """A login that named no account (a pre-auth token we did not issue): one
        failure against the address, as a wrong password would be."""
        environ: dict[str, object] = {"REMOTE_ADDR": address}
        subjects: list[Subject] = [("addr", address)]
        if self._limiter.blocked_for(subjects):
            return Login(None, LIMITED)
        self.failed(subjects, environ, name)
        return Login(None, INVALID)

    def failed(self, subjects: list[Subject], environ: dict[str, object], name: str) -> None:
        self._limiter.failed(subjects)
        audit.login_failed(environ, name)
