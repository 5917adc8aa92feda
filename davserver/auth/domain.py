"""Authentication: a WsgiDAV domain controller over the catalog's users.

WsgiDAV instantiates the controller itself with `(wsgidav_app, config)`, so the user
lookup is handed over in `config["davserver_dc"]["users"]`.

- Basic: the account password, or any live app password of the account. A password
  with the app-password shape (see `davserver.auth.passwords`) is only ever checked as an
  app password, so every attempt costs exactly one argon2id run: unknown user, wrong
  password and wrong app password are indistinguishable by time.
- Digest: WsgiDAV computes the response from the HA1 we return; we return the HA1
  stored for the realm, or False (unknown user, or no Digest secret stored). App
  passwords have no HA1, so they work with Basic only. Whether Digest is offered and
  which nonces are valid is decided in front of WsgiDAV (`davserver.auth.login_gate`).

On success the user's record is left in `environ["davserver.user"]`, which the
provider reads instead of querying the user again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from wsgidav.dc.base_dc import BaseDomainController

from davserver.auth.passwords import (
    VerifiedCache,
    app_password_key,
    digest_ha1,
    hash_password,
)
from providers.catalog.records import AppPasswordRecord, DigestSecret
from providers.catalog.users import Users
from providers.errors import StorageError

log = logging.getLogger(__name__)
REALM = "davserver"
# `last_used_at` of an app password is written at most this often (seconds): a write
# per request would cost more than the request.
TOUCH_INTERVAL = 60.0
UNAVAILABLE = "davserver.auth_unavailable"


def account_secrets(user: str, password: str, *, digest: bool) -> tuple[str, DigestSecret | None]:
    """What the catalog stores for an account password: its argon2id hash, and the
    Digest secret for `REALM` when `digest` (the `digest_auth` setting) is on.

    `ValueError` for a password with the app-password shape: logins check such a
    password only as an app password, so it could never log in as the account's.
    """
    if app_password_key(password) is not None:
        raise ValueError("that password has the shape of an app password; choose another")
    secret = DigestSecret(REALM, digest_ha1(user, REALM, password)) if digest else None
    return hash_password(password), secret


class CatalogDomainController(BaseDomainController):
    """Checks Basic and Digest credentials against the catalog (module docstring)."""

    def __init__(self, wsgidav_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, config)
        self._users: Users = config["davserver_dc"]["users"]
        self._verified = VerifiedCache()

    def __str__(self) -> str:
        return f"{self.__class__.__name__}()"

    def get_domain_realm(self, path_info: str, environ: dict[str, Any]) -> str:
        return REALM

    def require_authentication(self, realm: str, environ: dict[str, Any]) -> bool:
        return True

    def supports_http_digest_auth(self) -> bool:
        return True

    def basic_auth_user(
        self, realm: str, user_name: str, password: str, environ: dict[str, Any]
    ) -> bool:
        """True if `password` is the account password or a live app password.

        The stored hash is looked up on every request (a revoked app password or a
        changed password fails at once); `VerifiedCache` spares argon2 for a recently
        verified (user, stored hash, password).
        """
        key = app_password_key(password)
        app: AppPasswordRecord | None = None
        try:
            user = self._users.get(user_name)
            if key is not None:
                # Looked up for unknown users too (id 0 matches nothing): same work.
                app = self._users.app_passwords.find(user.id if user else 0, key)
        except StorageError:
            environ[UNAVAILABLE] = True
            return False
        if key is None:
            stored = user.password_hash if user else None
        else:
            stored = app.hash if app else None
        if not self._verified.verify(user_name, stored, password):
            return False
        environ["davserver.user"] = user
        if app is not None:
            self._touch(app)
        return True

    def _touch(self, app: AppPasswordRecord) -> None:
        now = time.time()
        if app.last_used_at is not None and now - app.last_used_at < TOUCH_INTERVAL:
            return
        try:
            self._users.app_passwords.touch(app.id, now)
        except StorageError as e:  # bookkeeping only: never fail a good login for it
            log.warning("could not record the use of app password %s: %s", app.id, e)

    def digest_auth_user(self, realm: str, user_name: str, environ: dict[str, Any]) -> str | bool:
        """The user's HA1 for `realm`, or False when there is none to check against.

        WsgiDAV only lets the request on if the client's response matches, so the
        record left in the environ is only ever used for an authenticated request.
        """
        try:
            user = self._users.get(user_name)
        except StorageError:
            environ[UNAVAILABLE] = True
            return False
        if user is None or user.digest is None or user.digest.realm != realm:
            return False
        environ["davserver.user"] = user
        return user.digest.ha1
