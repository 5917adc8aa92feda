"""The notify_push protocol (nextcloud/notify_push), without the socket: the messages,
the login steps and the debouncing, so they are tested apart from the WebSocket
listener (`davserver.nextcloud.notify_push`, the only module that speaks WebSocket).

A client sends the user name, then the password (the account's or an app password),
each as a text message; or `""` and a pre-auth token (`davserver.nextcloud.pre_auth`).
The server answers `authenticated`, or `err: <reason>` and closes. It then sends
`notify_file` when something in the user's view changed (their own files and what is
shared with them), or, to a client that sent `listen notify_file_id`, `notify_file_id`
and a JSON list of the file ids (`oc:fileid`) that changed, when those are known.

Debouncing as notify_push does, so a burst of changes costs each client one message:
a notification waits `SETTLE` seconds after the first wake-up (changes committed
together go in one), and follows the previous one by at least
`interval(connections)` seconds: 1 s per 10 connections of the instance, between 1 s
and `MAX_DEBOUNCE`, times a random factor from 0.5 to 1.5 per connection so that
clients do not all come back at once.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence

from davserver.auth.credentials import INVALID, Login, PasswordLogins
from davserver.nextcloud.pre_auth import PreAuthTokens
from providers.catalog import UserRecord
from providers.operations.feed import FeedEntry

AUTHENTICATED = "authenticated"
NOTIFY_FILE = "notify_file"
NOTIFY_FILE_ID = "notify_file_id"
LISTEN_FILE_ID = "listen notify_file_id"
AUTH_TIMEOUT_TEXT = "Authentication timeout"
INVALID_MESSAGE = "Invalid authentication message"
CONNECTION_LIMIT = "Connection limit exceeded for user"
SETTLE = 0.1  # seconds from a wake-up to the notification (changes committed together)
MAX_DEBOUNCE = 15.0  # seconds at most between two notifications of a connection
MAX_IDS = 100  # more changed files than this in one notification: plain `notify_file`


def error(reason: str) -> str:
    """The message that refuses a login (then the server closes)."""
    return f"err: {reason}"


def notification(ids: Sequence[int] | None, listen_ids: bool) -> str:
    """The message for changes of files `ids` (None: not known): `notify_file_id [..]`
    to a client that listens for ids, when they are known, else `notify_file`."""
    if listen_ids and ids is not None:
        return f"{NOTIFY_FILE_ID} {json.dumps(list(ids), separators=(',', ':'))}"
    return NOTIFY_FILE


def changed_ids(entries: Sequence[FeedEntry]) -> list[int] | None:
    """The file ids of `entries` in order, each once; None when there are more than
    `MAX_IDS` (or one is not a number: the client then looks at everything)."""
    ids: list[int] = []
    for entry in entries:
        if not entry.id.isdigit():
            return None
        file_id = int(entry.id)
        if file_id not in ids:
            ids.append(file_id)
        if len(ids) > MAX_IDS:
            return None
    return ids


def wants_file_ids(message: object) -> bool:
    """Whether a client message asks for `notify_file_id` (anything else is ignored,
    as notify_push does)."""
    return isinstance(message, str) and message.strip() == LISTEN_FILE_ID


def interval(connections: int, factor: float) -> float:
    """Seconds between two notifications of one connection (module docstring)."""
    return max(1.0, min(connections / 10, MAX_DEBOUNCE)) * factor


def spread(pick: Callable[[float, float], float] = random.uniform) -> float:
    """A connection's random debounce factor, 0.5 to 1.5."""
    return pick(0.5, 1.5)


class Debounce:
    """When one connection may send its next notification (module docstring). The
    session marks wake-ups with `woken(now)`, asks `ready_at()`, and after reading the
    feed calls `sent(now, seconds)` if it sent something, else `idle()`."""

    def __init__(self) -> None:
        self._woken_at: float | None = None
        self._next_at = float("-inf")

    @property
    def pending(self) -> bool:
        return self._woken_at is not None

    def woken(self, now: float) -> None:
        """A wake-up came at `now`. The settle time runs from the first one since the
        last notification: a steady stream of changes cannot hold notifications back."""
        if self._woken_at is None:
            self._woken_at = now

    def ready_at(self) -> float | None:
        """When the feed should be read and a notification sent; None: nothing pending."""
        if self._woken_at is None:
            return None
        return max(self._woken_at + SETTLE, self._next_at)

    def sent(self, now: float, seconds: float) -> None:
        self._woken_at = None
        self._next_at = now + seconds

    def idle(self) -> None:
        """The feed had nothing for this client: nothing pending, no delay added."""
        self._woken_at = None


class Authenticator:
    """The login steps: `login(name, password, address)` gives the account, or a
    refusal. A password that is a pre-auth token we issued logs in as its account
    whatever the name (notify_push checks tokens first); otherwise an empty name is
    refused, and a name is checked with the password as at `/dav/` (login limiter,
    audit)."""

    def __init__(
        self,
        logins: PasswordLogins,
        tokens: PreAuthTokens,
        user_by_id: Callable[[int], UserRecord | None],
    ) -> None:
        self._logins = logins
        self._tokens = tokens
        self._user_by_id = user_by_id

    def login(self, name: object, password: object, address: str) -> Login:
        if not isinstance(name, str) or not isinstance(password, str):
            return Login(None, INVALID_MESSAGE)
        user_id = self._tokens.redeem(password)
        if user_id is not None:
            user = self._user_by_id(user_id)
            return Login(user) if user is not None else Login(None, INVALID)
        if not name:
            return self._logins.refuse(address)
        return self._logins.check(name, password, address)
