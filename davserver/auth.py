"""Authentication: a WsgiDAV domain controller over the catalog's users (HTTP Basic).

WsgiDAV instantiates the controller itself with `(wsgidav_app, config)`, so the user
lookup is handed over in `config["davserver_dc"]["users"]`. Digest (needed for
Windows over plain HTTP) comes with the users issue; until then Basic only.
"""

from __future__ import annotations

from typing import Any

from wsgidav.dc.base_dc import BaseDomainController

from davserver.passwords import VerifiedCache
from providers.catalog.users import Users
from providers.errors import StorageError

REALM = "davserver"


class CatalogDomainController(BaseDomainController):
    """Checks Basic credentials against argon2id hashes in the catalog."""

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
        return False

    def basic_auth_user(
        self, realm: str, user_name: str, password: str, environ: dict[str, Any]
    ) -> bool:
        try:
            user = self._users.get(user_name)
        except StorageError:
            environ["davserver.auth_unavailable"] = True
            return False
        return self._verified.verify(user_name, user.password_hash if user else None, password)
