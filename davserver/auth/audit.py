"""Security events on the `davserver.auth` logger, one line each with the client
address (as the proxy layer resolved it), so fail2ban and the like can act on them:

    2026-12-03T10:00:00.000Z WARNING auth login failed addr=1.2.3.4 user=bob rid=ab12...
    2026-12-03T10:00:00.000Z WARNING auth login rate-limited addr=1.2.3.4 user=bob ...

Each also marks the request (`AUTH_EVENT`) so the observer counts it in the metrics.
`what` says which door: `login` (accounts at /dav/ and /api/v1/) or `link password`.
"""

from __future__ import annotations

import logging

from davserver.http.environ import AUTH_EVENT, WSGIEnvironment
from davserver.logs import safe

log = logging.getLogger("davserver.auth")


def login_failed(environ: WSGIEnvironment, user: str, what: str = "login") -> None:
    """A password (or Digest response) was checked and was wrong, or the user is unknown."""
    environ[AUTH_EVENT] = "failed"
    _event(environ, f"{what} failed", user)


def rate_limited(environ: WSGIEnvironment, user: str, wait: int, what: str = "login") -> None:
    """A login was refused unchecked (429): the user or the address failed too often."""
    environ[AUTH_EVENT] = "limited"
    _event(environ, f"{what} rate-limited", user, f" retry_after={wait}")


def _event(environ: WSGIEnvironment, event: str, user: str, tail: str = "") -> None:
    """One WARNING line; the JSON format also gets `event`, `addr` and `user` fields."""
    address = str(environ.get("REMOTE_ADDR", "-"))
    fields = {"event": event, "addr": address, "user": user}
    line = f"{event} addr={address} user={safe(user, ' ', 256)}{tail}"
    log.warning("%s", line, extra={"fields": fields})
