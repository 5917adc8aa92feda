"""Password hashing (argon2id), HTTP Digest secrets, and generated passwords.

App passwords look like `abcde-fghij-klmno-pqrst-uvwxy` (25 base32 characters, 125
random bits). The first group is a public key id: a login finds the one stored hash
to check by (user, key id), so an app password costs one argon2id run like an
account password does, however many a user has.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import string
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from providers.catalog.app_passwords import AppPasswords
from providers.catalog.records import AppPasswordRecord
from providers.errors import Conflict

# OWASP's argon2id setting (m = 19 MiB, t = 2, p = 1; Password Storage Cheat Sheet)
# rather than the library default of 64 MiB: each login in flight holds that memory, and
# 64 MiB put the server over its 150 MiB budget. Stored hashes carry their own
# parameters, so older hashes still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """A real hash to verify against for unknown users, so both paths cost the same.
    Made on first use, after the server has tuned malloc (see `davserver.server`):
    hashing at import left the 19 MiB work area resident."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; an unknown user (None) costs as much as a known one."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_password() -> str:
    """16 letters and digits (95 random bits). No punctuation: a password starting
    with '-' reads as an option to `rclone obscure` and other commands."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(16))


def digest_ha1(user: str, realm: str, password: str) -> str:
    """HTTP Digest's HA1 = MD5(user:realm:password) (RFC 7616 with algorithm MD5).

    MD5 because it is the one algorithm the Windows mini-redirector and most clients
    speak; the value is a password equivalent for `realm` (see docs/auth.md).
    """
    data = f"{user}:{realm}:{password}".encode()
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


_APP_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
APP_PASSWORD = re.compile(r"([a-z2-7]{5})(?:-[a-z2-7]{5}){4}")


def generate_app_password() -> tuple[str, str]:
    """A new app password and its key id (its first group)."""
    groups = ["".join(secrets.choice(_APP_ALPHABET) for _ in range(5)) for _ in range(5)]
    return groups[0], "-".join(groups)


def issue_app_password(
    apps: AppPasswords, user_name: str, label: str
) -> tuple[AppPasswordRecord, str]:
    """A new app password of `user_name` named `label`, stored as its argon2id hash:
    the row and the password (to show once; it is kept nowhere). `NotFound` if there is
    no such user; a key id the user already has is drawn again."""
    for attempt in range(5):
        key_id, password = generate_app_password()
        try:
            return apps.add(user_name, key_id, hash_password(password), label), password
        except Conflict:  # the user already has this key id (1 in 33 million)
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def app_password_key(password: str) -> str | None:
    """The key id if `password` has the app-password shape, else None."""
    match = APP_PASSWORD.fullmatch(password)
    return match.group(1) if match else None


class VerifiedCache:
    """Remembers recent successful verifications so Basic auth does not pay argon2id
    (tens of milliseconds and 64 MiB) on every request of a session.

    An entry is a keyed HMAC of the password (never the password), bound to the stored
    hash it was checked against: a changed password or hash misses the cache. Entries
    expire after `ttl` seconds. Process memory only.
    """

    def __init__(self, ttl: float = 300.0, max_entries: int = 10_000) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        # One argon2 run per user at a time: a client opening 8 connections at once
        # would otherwise cost 8 x 64 MiB of argon2 memory for the same answer.
        self._user_locks: dict[str, threading.Lock] = {}

    def _mac(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    def verify(self, user: str, password_hash: str | None, password: str) -> bool:
        """Like `verify_password`, answered from the cache when possible."""
        if password_hash is None:
            return verify_password(None, password)
        key, mac = (user, password_hash), self._mac(password)
        if self._cached(key, mac):
            return True
        with self._lock:
            user_lock = self._user_locks.setdefault(user, threading.Lock())
        with user_lock:
            if self._cached(key, mac):
                return True
            if not verify_password(password_hash, password):
                return False
            with self._lock:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                    self._user_locks.clear()
                self._entries[key] = (mac, time.monotonic() + self._ttl)
        return True

    def _cached(self, key: tuple[str, str], mac: bytes) -> bool:
        with self._lock:
            entry = self._entries.get(key)
        return bool(entry and entry[1] > time.monotonic() and hmac.compare_digest(entry[0], mac))
