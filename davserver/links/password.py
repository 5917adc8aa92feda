"""Password links: the form, and `unlock` (POST `password`: on success the unlock
cookie and 303 to the link's page).

The password is checked with argon2id, and wrong guesses are throttled per link and
per client address, in the login limiter of /dav/ (`guess_subjects`: one budget for
the form and the link's WebDAV alike). The cookie is signed for that one link
(`LinkSigner.unlock_cookie`), HttpOnly, SameSite=Lax, Secure over HTTPS, and scoped to
the link's path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from davserver.auth import audit
from davserver.auth.passwords import verify_password
from davserver.auth.ratelimit import LoginLimiter
from davserver.http.body import read_body
from davserver.http.environ import StartResponse
from davserver.http.errors import HttpError
from davserver.links.signer import UNLOCK_MAX_AGE, LinkSigner
from davserver.links.site import (
    ALL_PERMS,
    BASE_HEADERS,
    Action,
    ShareRequest,
    cookie_name,
    guess_subjects,
    not_found,
    page,
)

MAX_FORM = 4096  # an unlock form body larger than this is refused unread


def actions(gate: PasswordGate) -> dict[str, Action]:
    """The `unlock` action."""
    return {"unlock": Action(gate.unlock, ALL_PERMS, resolve=False, own_password=True)}


class PasswordGate:
    """The password form and the `unlock` action (see the module docstring)."""

    def __init__(self, signer: LinkSigner, limiter: LoginLimiter) -> None:
        self.signer = signer
        self.limiter = limiter

    def unlock(self, req: ShareRequest, start_response: StartResponse) -> Any:
        """Check the password (argon2id), throttled per link and per address; on
        success set the unlock cookie and send the visitor to the link's page."""
        link = req.link
        if req.names:
            return not_found(start_response)
        if req.method != "POST" or not link.password_hash:
            return _see_other(start_response, f"{req.base}/", [])
        subjects = guess_subjects(link, str(req.environ.get("REMOTE_ADDR", "")))
        wait = self.limiter.blocked_for(subjects)
        if wait:
            audit.rate_limited(req.environ, f"link:{link.id}", wait, "link password")
            text = f"Too many wrong passwords. Try again in {wait} seconds."
            retry = [("Retry-After", str(wait))]
            return page(
                req,
                start_response,
                "429 Too Many Requests",
                "message.html",
                retry,
                title="Too many attempts",
                text=text,
            )
        password = _form_password(req.environ)
        if password is not None and verify_password(link.password_hash, password):
            cookie = (
                f"{cookie_name(link.id)}={self.signer.unlock_cookie(link.id)}; "
                f"Path={req.base}/; Max-Age={UNLOCK_MAX_AGE}; HttpOnly; SameSite=Lax"
            )
            cookie += "; Secure" if req.secure else ""
            return _see_other(start_response, f"{req.base}/", [("Set-Cookie", cookie)])
        self.limiter.failed(subjects)
        audit.login_failed(req.environ, f"link:{link.id}", "link password")
        return self.password_page(req, start_response, "Wrong password.")

    def password_page(self, req: ShareRequest, start_response: StartResponse, error: str) -> Any:
        """The password form (401: this link needs its password), `error` above it."""
        return page(
            req,
            start_response,
            "401 Unauthorized",
            "links/password.html",
            title="Password required",
            error=error,
            action=f"{req.base}/unlock",
        )


def _see_other(
    start_response: StartResponse, location: str, headers: list[tuple[str, str]]
) -> list[bytes]:
    start_response(
        "303 See Other",
        [
            ("Location", location),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
            *BASE_HEADERS,
            *headers,
        ],
    )
    return []


def _form_password(environ: dict[str, Any]) -> str | None:
    """The `password` field of a small urlencoded form body, else None."""
    try:
        body = read_body(environ, MAX_FORM)
    except HttpError:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return fields.get("password", [None])[0]
