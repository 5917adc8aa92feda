"""Password hashing (argon2id) and generation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# A real hash to verify against for unknown users, so both paths cost the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; an unknown user (None) costs as much as a known one."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


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

    def _mac(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    def verify(self, user: str, password_hash: str | None, password: str) -> bool:
        """Like `verify_password`, answered from the cache when possible."""
        if password_hash is None:
            return verify_password(None, password)
        key, mac, now = (user, password_hash), self._mac(password), time.monotonic()
        with self._lock:
            cached = self._entries.get(key)
        if cached and cached[1] > now and hmac.compare_digest(cached[0], mac):
            return True
        if not verify_password(password_hash, password):
            return False
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (mac, now + self._ttl)
        return True
