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

log = logging.getLogger("davserver.auth")


def _clean(text: str) -> str:
    """A user name safe in one log field: no spaces, quotes or control characters."""
    return "".join(
        f"\\x{ord(c):02x}" if ord(c) <= 0x20 or c in '"\\\x7f' else c for c in text[:256]
    )


def login_failed(environ: WSGIEnvironment, user: str, what: str = "login") -> None:
    """A password (or Digest response) was checked and was wrong, or the user is unknown."""
    environ[AUTH_EVENT] = "failed"
    address = environ.get("REMOTE_ADDR", "-")
    log.warning("%s failed addr=%s user=%s", what, address, _clean(user))


def rate_limited(environ: WSGIEnvironment, user: str, wait: int, what: str = "login") -> None:
    """A login was refused unchecked (429): the user or the address failed too often."""
    environ[AUTH_EVENT] = "limited"
    address = environ.get("REMOTE_ADDR", "-")
    log.warning("%s rate-limited addr=%s user=%s retry_after=%d", what, address, _clean(user), wait)
