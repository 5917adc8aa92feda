"""The notify_push WebSocket: a second listener beside the HTTP one, on the threaded
server of the `websockets` library (the only module that imports it; its errors end
here). The protocol, the login steps and the debouncing are
`davserver.nextcloud.push_protocol`; docs/nextcloud.md says why a second port.

- `davserver serve` (and the test servers) `start` it on `notify_push_port`; the
  capabilities advertise `websocket_url` (`notify_push_url` when set, else
  `ws(s)://<the host the client used>:<port>/ws`). Any path ending in `/ws` is
  accepted, so a reverse proxy may publish it under a prefix.
- Each socket is a thread (and the library's reader thread). At most `capacity`
  sockets are open (503 at the handshake past it), at most `USER_LIMIT` per account;
  a socket that has not logged in after `AUTH_TIMEOUT` seconds is told so and closed.
- A logged-in socket follows the account's change feed through `providers.push`, the
  machinery of the long poll and the event stream: it is one of push's waiters (the
  same `push_waiters` bound), woken by this instance's commits at once and by other
  instances' through Redis, and it then reads the log itself (design invariant 17:
  a wake-up is never the message), so it is told only of changes in the account's
  own view (its files and what is shared with it).
- Keepalive: after `PING_INTERVAL` seconds without a message, a ping; no pong by the
  next one closes the socket. Client messages are read every `TICK` seconds.
- `stop` (the server stopping; push has closed first, which ends every follow) closes
  every socket with 1001 (going away) and waits for their threads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from davserver.auth.credentials import PasswordLogins
from davserver.http.environ import StartResponse, WSGIEnvironment
from davserver.http.proxy import ProxyHeaders
from davserver.nextcloud import push_protocol as protocol
from davserver.nextcloud.pre_auth import PreAuthTokens
from davserver.settings import Network
from providers.catalog import UserRecord
from providers.errors import StorageError, TooBusy
from providers.operations import Actor
from providers.operations.feed import FeedEntry
from providers.push import Follow, Push

log = logging.getLogger(__name__)
WS_PATH = "/ws"
AUTH_TIMEOUT = 15.0  # seconds from the handshake to the password
TICK = 0.5  # seconds between looks at client messages and keepalive
PING_INTERVAL = 30.0  # seconds without a message before a ping
USER_LIMIT = 64  # sockets per account (notify_push's limit)
MAX_MESSAGE = 4096  # bytes: a user name or a password, nothing larger
GOING_AWAY, INTERNAL_ERROR = 1001, 1011


class NotifyPushServer:
    """The listener (see the module docstring): logins by `logins` (passwords) and
    `pre_auth` (tokens, which the pre-auth endpoint issues), accounts by id from
    `user_by_id`. `url`: `notify_push_url` ('' = made from each request's host);
    `trusted`: the proxies whose X-Forwarded-For names the client (login limiter)."""

    def __init__(
        self,
        push: Push,
        logins: PasswordLogins,
        pre_auth: PreAuthTokens,
        user_by_id: Callable[[int], UserRecord | None],
        *,
        capacity: int,
        trusted: Sequence[Network] = (),
        url: str = "",
    ) -> None:
        self.pre_auth = pre_auth
        self._push = push
        self._auth = protocol.Authenticator(logins, pre_auth, user_by_id)
        self._capacity = capacity
        self._proxy = ProxyHeaders(_nothing, trusted)  # only its client_address
        self._url = url
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._tls = False
        self._port = 0
        self._lock = threading.Lock()
        self._open = 0  # sockets past the handshake
        self._per_user: dict[int, int] = {}  # logged-in sockets per account id
        self._sessions = 0  # their sum

    @property
    def port(self) -> int:
        """The bound port (0 before `start`)."""
        return self._port

    def advertise(self, port: int, tls: bool) -> None:
        """Tell clients of the listener another worker of this server serves on `port`
        (this one is not started)."""
        self._port, self._tls = port, tls

    @property
    def sessions(self) -> int:
        """Logged-in sockets now."""
        return self._sessions

    def start(
        self,
        host: str,
        port: int,
        certfile: str = "",
        keyfile: str = "",
        sock: socket.socket | None = None,
    ) -> int:
        """Listen on (host, port) (0: a free port), or on `sock` (bound and shared by a
        master process), TLS with `certfile`/`keyfile`, and serve on a thread; the
        bound port. `OSError` when it cannot bind (or read the certificate)."""
        context = None
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
        address: tuple[str | None, int | None] = (None, None) if sock else (host, port)
        self._server = serve(
            self._handle,
            *address,
            sock=sock,
            ssl=context,
            process_request=self._admit,
            compression=None,
            ping_interval=None,  # our own keepalive: one thread fewer per socket
            ping_timeout=None,
            open_timeout=10,
            close_timeout=5,
            max_size=MAX_MESSAGE,
            server_header="davserver",
            logger=log,
        )
        self._tls = context is not None
        self._port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="notify-push", daemon=True
        )
        self._thread.start()
        return self._port

    def stop(self) -> None:
        """Stop listening, close every socket (1001) and wait for them (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def websocket_url(self, environ: WSGIEnvironment) -> str:
        """The URL the capabilities advertise to the client of `environ`."""
        if self._url:
            return self._url
        scheme = "wss" if self._tls else "ws"
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        name = urlsplit(f"//{host}").hostname or "localhost"
        if ":" in name:  # an IPv6 literal
            name = f"[{name}]"
        return f"{scheme}://{name}:{self._port}{WS_PATH}"

    # -- the handshake and the socket ------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """404 off the WebSocket path, 503 past `capacity` or while stopping."""
        if not request.path.partition("?")[0].endswith(WS_PATH):
            return connection.respond(404, "not found\n")
        if self._open >= self._capacity or self._push.closing:
            return connection.respond(503, "too many connections, try again later\n")
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._open += 1
        try:
            self._converse(connection)
        except ConnectionClosed:
            pass  # the client left, or `stop` closed it
        except StorageError as e:  # the client reconnects later
            log.warning("notify_push socket closed: %s", e)
            _close(connection, INTERNAL_ERROR, "server error")
        finally:
            with self._lock:
                self._open -= 1

    def _converse(self, connection: ServerConnection) -> None:
        user = self._login(connection)
        if user is None:
            return
        if not self._enter(user.id):
            connection.send(protocol.error(protocol.CONNECTION_LIMIT))
            return
        try:
            actor = Actor(user)
            try:
                follow = self._push.follow(actor, self._push.feed.latest(actor))
            except TooBusy as e:
                connection.send(protocol.error(str(e)))
                return
            try:
                connection.send(protocol.AUTHENTICATED)
                _Session(connection, follow, self._push, self).run()
            finally:
                follow.close()
        finally:
            self._leave(user.id)

    def _login(self, connection: ServerConnection) -> UserRecord | None:
        """The account the first two messages log in as; None once refused (the
        refusal sent)."""
        deadline = time.monotonic() + AUTH_TIMEOUT
        messages: list[str | bytes] = []
        while len(messages) < 2:
            try:
                messages.append(connection.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                connection.send(protocol.AUTH_TIMEOUT_TEXT)
                return None
        login = self._auth.login(messages[0], messages[1], self._client_address(connection))
        if login.user is None:
            connection.send(protocol.error(login.refusal))
        return login.user

    def _client_address(self, connection: ServerConnection) -> str:
        """The client's address: the peer's, or, from a trusted proxy, the one its
        X-Forwarded-For names (`davserver.http.proxy`, as for HTTP requests)."""
        peer = str(connection.remote_address[0])
        request = connection.request
        chain = request.headers.get("X-Forwarded-For", "") if request is not None else ""
        return self._proxy.client_address(peer, chain)

    def _enter(self, user_id: int) -> bool:
        with self._lock:
            if self._per_user.get(user_id, 0) >= USER_LIMIT:
                return False
            self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
            self._sessions += 1
        return True

    def _leave(self, user_id: int) -> None:
        with self._lock:
            self._sessions -= 1
            left = self._per_user.get(user_id, 1) - 1
            if left:
                self._per_user[user_id] = left
            else:
                self._per_user.pop(user_id, None)


class _Session:
    """One logged-in socket: notifications from its follow of the feed, debounced
    (`push_protocol.Debounce`), the client's `listen notify_file_id`, keepalive."""

    def __init__(
        self, connection: ServerConnection, follow: Follow, push: Push, server: NotifyPushServer
    ) -> None:
        self._connection = connection
        self._follow = follow
        self._push = push
        self._server = server
        self._listen_ids = False
        self._factor = protocol.spread()
        self._carry: list[FeedEntry] = []  # entries read but not yet notified

    def run(self) -> None:
        """Until the client leaves (`ConnectionClosed`), push closes or a ping goes
        unanswered."""
        debounce = protocol.Debounce()
        # The page `follow` read at admission: a commit since `latest` is in it (later
        # ones wake the follow), and `next` hands it out before reading the log again.
        self._carry = self._follow.next(0) or []
        if self._carry:
            debounce.woken(time.monotonic())
        last_message = time.monotonic()
        pong: threading.Event | None = None
        while not self._push.closing:
            ready = debounce.ready_at()
            wait = TICK if ready is None else min(TICK, max(0.0, ready - time.monotonic()))
            if self._follow.due(wait):
                debounce.woken(time.monotonic())
            self._read_client()
            now = time.monotonic()
            ready = debounce.ready_at()
            if ready is not None and now >= ready:
                if self._notify(debounce, now):
                    last_message = now
                continue
            if now - last_message >= PING_INTERVAL:
                if pong is not None and not pong.is_set():
                    _close(self._connection, INTERNAL_ERROR, "keepalive ping timeout")
                    return
                pong, last_message = self._connection.ping(), now
        _close(self._connection, GOING_AWAY, "server stopping")

    def _notify(self, debounce: protocol.Debounce, now: float) -> bool:
        """Read the feed; whether a notification went out."""
        changed, ids = self._read_feed()
        if not changed:
            debounce.idle()
            return False
        self._connection.send(protocol.notification(ids, self._listen_ids))
        debounce.sent(now, protocol.interval(self._server.sessions, self._factor))
        return True

    def _read_feed(self) -> tuple[bool, list[int] | None]:
        """(whether the account's feed had entries since the last read, their file ids
        or None when too many), reading it to its end so the cursor moves past them."""
        kept, self._carry = self._carry, []
        changed, overflow = bool(kept), False
        while batch := self._follow.next(0):
            changed = True
            room = protocol.MAX_IDS + 1 - len(kept)
            kept.extend(batch[:room])
            overflow = overflow or len(batch) > room
        return changed, None if overflow else protocol.changed_ids(kept)

    def _read_client(self) -> None:
        """Take the client's messages that arrived (`ConnectionClosed` once it left)."""
        while True:
            try:
                message = self._connection.recv(timeout=0)
            except TimeoutError:
                return
            if protocol.wants_file_ids(message):
                self._listen_ids = True


def _close(connection: ServerConnection, code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        connection.close(code, reason)


def _nothing(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    return []
