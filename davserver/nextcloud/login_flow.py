"""Login Flow v2: how the Nextcloud desktop GUI and the mobile apps get an app password
without ever holding the account password (docs/nextcloud.md, "Login Flow v2").

    POST /index.php/login/v2                 start: {"poll": {"token", "endpoint"}, "login"}
    GET  /index.php/login/v2/flow/<login>    the sign-in page (account name and password)
    POST /index.php/login/v2/flow/<login>    sign in -> the "Grant access to <device>?" page
    POST /index.php/login/v2/flow/<login>/grant   approve or deny (the signed `grant` field)
    POST /index.php/login/v2/poll  token=<poll>   404 until approved, then the credentials once

The same paths answer under `/login/v2` (Nextcloud with pretty URLs). None needs a login:
the app starts the flow, the user signs in in a browser, the app polls.

- A flow is two random tokens (`secrets`, 64 characters): the poll token, which only the
  app knows, and the login token in the page's URL. The store (`flow_store.FlowStore`:
  Redis with `redis_url`, else memory) holds, under the SHA-256 of the login token, the
  device's name (the app's User-Agent) and the poll token's digest, for `FLOW_TTL`.
  Lookups are by digest, so answer times say nothing about a token, and whoever reads
  the store cannot act with what they read.
- Signing in checks the account password (never an app password) like `/dav/`'s logins:
  throttled by the login limiter (user name and address), a failure counted and audited.
  It answers the grant page, whose form carries a `grant` token signed with the time
  (`FormTokens`, key in the catalog) naming the flow and the user: the proof of the
  sign-in, and what makes the form CSRF-proof. The decision takes the flow out of the
  store (one decision per flow); approving puts the user under the poll token's digest.
- The first poll after approval takes that entry and only then issues the app password
  (`issue_app_password`, argon2id-hashed in the catalog like every app password, named
  after the device): the password exists in no store, and a second poll finds nothing.
- Pages are templates with a strict CSP that forbids framing (`UNFRAMED_PAGE_CSP`,
  `X-Frame-Options: DENY`), never cached; every change of state is a POST.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import parse_qs

from davserver.auth import audit
from davserver.auth.passwords import app_password_key, issue_app_password, verify_password
from davserver.auth.ratelimit import LoginLimiter
from davserver.http.body import read_body
from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment, base_url
from davserver.http.errors import HttpError, server_reason
from davserver.http.responses import json_response, plain_response
from davserver.links.signer import FormTokens
from davserver.logs import request_id
from davserver.nextcloud.flow_store import FlowStore
from davserver.web.render import UNFRAMED_PAGE_CSP, render
from providers.catalog.users import Users
from providers.errors import NotFound, StorageError

log = logging.getLogger(__name__)

FLOW_TTL = 20 * 60  # seconds a flow lives, from its start (as on Nextcloud)
PREFIXES = ("/index.php/login/v2", "/login/v2")
ENDPOINT = "/index.php/login/v2"  # what the answers name
GRANT_SALT = "davserver.login-flow-grant"
MAX_FORM = 8192  # a form or poll body larger than this is refused unread
MAX_DEVICE = 128  # an app password's label in the catalog
UNKNOWN_DEVICE = "Unknown device"
PAGE_HEADERS = [
    ("Content-Security-Policy", UNFRAMED_PAGE_CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
GONE_TEXT = "This sign-in link does not exist or has expired. Start again from your app."


@dataclass(frozen=True)
class Flow:
    """A flow in the store: the poll token's key, the device's name, when it ends
    (epoch seconds) and, once approved, the user it was granted for."""

    poll_key: str
    device: str
    expires: float
    user: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> Flow | None:
        """The flow stored as `data`, None for nothing or for an ended flow."""
        if data is None:
            return None
        flow = cls(**json.loads(data))
        return flow if flow.expires > time.time() else None


def token_key(kind: str, token: str) -> str:
    """The store key of a token: its kind and SHA-256 (see the module docstring)."""
    return f"{kind}:{hashlib.sha256(token.encode('utf-8', 'replace')).hexdigest()}"


class LoginFlow:
    """The WSGI app of every Login Flow v2 path (module docstring). `users` are the
    accounts (with their app passwords), `limiter` the logins' limiter, `store` where
    flows live, `grants` signs the grant form, `public_url` ("" for the request's own
    address) is the server's address in the answers."""

    def __init__(
        self,
        users: Users,
        limiter: LoginLimiter,
        store: FlowStore,
        grants: FormTokens,
        public_url: str = "",
    ) -> None:
        self._users = users
        self._limiter = limiter
        self._store = store
        self._grants = grants
        self._public_url = public_url.rstrip("/")

    def routes(self) -> tuple[tuple[str, WSGIApplication], ...]:
        """The (prefix, app) pairs the Nextcloud site serves without a login."""
        return tuple((prefix, self) for prefix in PREFIXES)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        rest = next((path[len(p) :] for p in PREFIXES if path.startswith(p)), "")
        try:
            return self._route(environ, start_response, rest)
        except StorageError as e:
            log.warning("login flow: %s", e)
            if rest.startswith("/flow/"):
                text = "The server cannot sign you in right now. Try again later."
                return self._page(environ, start_response, "503 Service Unavailable", text)
            return json_response(start_response, 503, {"error": server_reason(e)})

    def _route(
        self, environ: WSGIEnvironment, start_response: StartResponse, rest: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = rest.split("/")  # "", "flow", <login token>[, "grant"]
        if rest in ("", "/", "/poll"):
            if method != "POST":
                return plain_response(start_response, 405, "use POST", [("Allow", "POST")])
            if rest == "/poll":
                return self._poll(environ, start_response)
            return self._start(environ, start_response)
        if len(parts) == 3 and parts[1] == "flow" and parts[2]:
            if method in ("GET", "HEAD"):
                return self._sign_in_page(environ, start_response, parts[2])
            if method == "POST":
                return self._sign_in(environ, start_response, parts[2])
            return plain_response(start_response, 405, "use GET or POST", [("Allow", "GET, POST")])
        if len(parts) == 4 and parts[1] == "flow" and parts[2] and parts[3] == "grant":
            if method == "POST":
                return self._decide(environ, start_response, parts[2])
            return plain_response(start_response, 405, "use POST", [("Allow", "POST")])
        return json_response(start_response, 404, [])

    def _start(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        """A new flow for the device the User-Agent names."""
        agent = " ".join(str(environ.get("HTTP_USER_AGENT", "")).split())
        device = agent[:MAX_DEVICE] or UNKNOWN_DEVICE
        poll_token, login_token = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        flow = Flow(token_key("poll", poll_token), device, time.time() + FLOW_TTL)
        self._store.put(token_key("login", login_token), flow.encode(), FLOW_TTL)
        base = self._base(environ)
        answer = {
            "poll": {"token": poll_token, "endpoint": f"{base}{ENDPOINT}/poll"},
            "login": f"{base}{ENDPOINT}/flow/{login_token}",
        }
        return json_response(start_response, 200, answer)

    def _poll(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        """404 until the flow is approved; then, once, the new app password."""
        token = _poll_token(environ)
        key = token_key("poll", token)
        data = self._store.take(key) if token else None
        flow = Flow.decode(data)
        if data is None or flow is None:
            return json_response(start_response, 404, [])
        try:
            _row, password = issue_app_password(self._users.app_passwords, flow.user, flow.device)
        except NotFound:  # the account was removed since it approved
            return json_response(start_response, 404, [])
        except StorageError:
            # Nothing was issued: put the approval back, so the app's next poll can work.
            self._store.put(key, data, flow.expires - time.time())
            raise
        log.info("login flow: app password issued to %r for %r", flow.user, flow.device)
        answer = {"server": self._base(environ), "loginName": flow.user, "appPassword": password}
        return json_response(start_response, 200, answer)

    def _sign_in_page(
        self, environ: WSGIEnvironment, start_response: StartResponse, token: str
    ) -> list[bytes]:
        """The sign-in form; `?user=` fills in the name (the desktop client sends it)."""
        flow = self._pending(token)
        if flow is None:
            return self._page(environ, start_response, "404 Not Found", GONE_TEXT)
        query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=10)
        user = query.get("user", [""])[0]
        return self._sign_in_form(environ, start_response, "200 OK", token, flow, user, "")

    def _sign_in(
        self, environ: WSGIEnvironment, start_response: StartResponse, token: str
    ) -> list[bytes]:
        """Check the account password (throttled as at /dav/); the grant page on success."""
        flow = self._pending(token)
        if flow is None:
            return self._page(environ, start_response, "404 Not Found", GONE_TEXT)
        fields = _form(environ)
        name, password = fields.get("user", ""), fields.get("password", "")
        subjects = [("user", name), ("addr", str(environ.get("REMOTE_ADDR", "")))]
        wait = self._limiter.blocked_for(subjects)
        if wait:
            audit.rate_limited(environ, name, wait, "login flow")
            text = f"Too many failed sign-ins. Try again in {wait} seconds."
            retry = [("Retry-After", str(wait))]
            return self._page(environ, start_response, "429 Too Many Requests", text, retry)
        account = self._users.get(name) if name else None
        # Only the account password signs in here; one argon2id run whatever the case.
        is_account_password = app_password_key(password) is None
        stored = account.password_hash if account and is_account_password else None
        verified = verify_password(stored, password)
        if account is None or not verified:
            self._limiter.failed(subjects)
            audit.login_failed(environ, name, "login flow")
            error = "Wrong user name or password."
            return self._sign_in_form(
                environ, start_response, "401 Unauthorized", token, flow, name, error
            )
        grant = self._grants.make([token_key("login", token), account.name])
        return self._render(
            environ,
            start_response,
            "200 OK",
            "login_flow/grant.html",
            title="Grant access",
            action=f"{token}/grant",
            device=flow.device,
            user=account.name,
            grant=grant,
        )

    def _decide(
        self, environ: WSGIEnvironment, start_response: StartResponse, token: str
    ) -> list[bytes]:
        """Approve or deny, given the grant token of this flow's sign-in; either way the
        flow leaves the store, and an approval waits under the poll token's key."""
        key = token_key("login", token)
        fields = _form(environ)
        signed = self._grants.value(fields.get("grant", ""), FLOW_TTL)
        if not _names_flow(signed, key):
            text = "This form is no longer valid. Start again from your app."
            return self._page(environ, start_response, "403 Forbidden", text)
        flow = Flow.decode(self._store.take(key))
        if flow is None:
            return self._page(environ, start_response, "404 Not Found", GONE_TEXT)
        if fields.get("decision") != "approve":
            text = f"{flow.device} was not given access. You can close this window."
            return self._page(environ, start_response, "200 OK", text, title="Access denied")
        approved = replace(flow, user=signed[1])
        self._store.put(flow.poll_key, approved.encode(), flow.expires - time.time())
        text = f"{flow.device} is now connected to your account. You can close this window."
        return self._page(environ, start_response, "200 OK", text, title="Access granted")

    def _pending(self, token: str) -> Flow | None:
        """The flow the login token names, while no decision was taken and it lives."""
        return Flow.decode(self._store.get(token_key("login", token)))

    def _base(self, environ: WSGIEnvironment) -> str:
        return base_url(environ, self._public_url)

    def _sign_in_form(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        status: str,
        token: str,
        flow: Flow,
        user: str,
        error: str,
    ) -> list[bytes]:
        return self._render(
            environ,
            start_response,
            status,
            "login_flow/login.html",
            title="Connect a device",
            device=flow.device,
            user=user,
            error=error,
            action=token,
        )

    def _page(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        status: str,
        text: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        title: str = "",
    ) -> list[bytes]:
        """A message page (`message.html`); errors show the request id."""
        title = title or status.partition(" ")[2]
        rid = request_id() if int(status[:3]) >= 400 else ""
        return self._render(
            environ,
            start_response,
            status,
            "message.html",
            headers,
            title=title,
            text=text,
            request_id=rid,
        )

    def _render(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        status: str,
        template: str,
        headers: Sequence[tuple[str, str]] = (),
        **context: Any,
    ) -> list[bytes]:
        body = render(template, **context)
        start_response(
            status,
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *PAGE_HEADERS,
                *headers,
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _names_flow(signed: Any, key: str) -> bool:
    """Whether a grant token's value is [this flow's key, a user name]."""
    if not (isinstance(signed, list) and len(signed) == 2):
        return False
    flow_key, user = signed
    return (
        isinstance(flow_key, str)
        and isinstance(user, str)
        and hmac.compare_digest(flow_key.encode(), key.encode())
    )


def _form(environ: WSGIEnvironment) -> dict[str, str]:
    """The fields of a small urlencoded body (first value of each); {} for anything else."""
    try:
        body = read_body(environ, MAX_FORM).decode("utf-8")
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=10)
    except (HttpError, UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def _poll_token(environ: WSGIEnvironment) -> str:
    """The poll's `token`: from a urlencoded body (the desktop client), a JSON body
    (newer mobile libraries) or the query string; "" when there is none."""
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if content_type.startswith("application/json"):
        try:
            value = json.loads(read_body(environ, MAX_FORM) or b"{}")
        except (HttpError, ValueError):
            return ""
        token = value.get("token") if isinstance(value, dict) else None
        return token if isinstance(token, str) else ""
    token = _form(environ).get("token", "")
    if not token:
        query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=10)
        token = query.get("token", [""])[0]
    return token
