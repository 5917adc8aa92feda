"""Signed share-link tokens and unlock cookies, and signed form tokens (`FormTokens`,
for Login Flow v2's grant form): the only user of itsdangerous.

A link is `/s/<token>`, the token an itsdangerous signature over the link row's id
with its own salt; a password link, once unlocked, sets a cookie signed with another
salt, scoped to that one link and valid for `UNLOCK_MAX_AGE`. Signatures only say "we
made this": whether the link still works (revoked, expired, downloads used up) is the
row's answer (`ShareLinkRecord.live`). The key is kept in the catalog, so every
instance signs and verifies alike.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

SHARE_PATH = "/s"  # where share links live
LINK_SALT = "davserver.share-link"
UNLOCK_SALT = "davserver.share-unlock"
UNLOCK_MAX_AGE = 12 * 3600


class LinkSigner:
    """Makes and checks link tokens and unlock cookies under one secret key."""

    def __init__(self, key: bytes) -> None:
        self._links = URLSafeSerializer(key, salt=LINK_SALT)
        self._unlocks = URLSafeTimedSerializer(key, salt=UNLOCK_SALT)

    def token(self, link_id: int) -> str:
        return str(self._links.dumps(link_id))

    def path(self, link_id: int) -> str:
        """The link's URL path, `/s/<token>`."""
        return f"{SHARE_PATH}/{self.token(link_id)}"

    def link_id(self, token: str) -> int | None:
        """The link id a token names, or None for anything we did not sign."""
        try:
            value = self._links.loads(token)
        except BadData:
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def unlock_cookie(self, link_id: int) -> str:
        return str(self._unlocks.dumps(link_id))

    def unlocked(self, cookie: str, link_id: int) -> bool:
        """Whether `cookie` unlocks link `link_id` (ours, recent enough, that link)."""
        try:
            value = self._unlocks.loads(cookie, max_age=UNLOCK_MAX_AGE)
        except BadData:
            return False
        return isinstance(value, int) and value == link_id


class FormTokens:
    """Timed tokens signed under `key` with `salt` (one salt per use): `make(value)`
    signs a JSON-able value with the time; `value(token, max_age)` gives it back if we
    signed it under this salt less than `max_age` seconds ago, else None. A page puts
    one in a form it serves, so a POST carrying it is known to come from that form."""

    def __init__(self, key: bytes, salt: str) -> None:
        self._tokens = URLSafeTimedSerializer(key, salt=salt)

    def make(self, value: Any) -> str:
        return str(self._tokens.dumps(value))

    def value(self, token: str, max_age: int) -> Any:
        try:
            return self._tokens.loads(token, max_age=max_age)
        except BadData:
            return None
