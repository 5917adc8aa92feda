"""The Nextcloud door's router: every path the Nextcloud and ownCloud clients use
(docs/nextcloud.md lists them with what we answer).

- `/status.php` (and `/nextcloud/status.php`, nextcloudcmd's second try) and
  `/ocs/v{1,2}.php/cloud/capabilities`: no login, as on Nextcloud.
- `/ocs/v{1,2}.php/cloud/user` and everything under `/remote.php/`: the account's
  login first (`NextcloudSite.signed_in` wraps them: the very logins of `/dav/`).
- `/remote.php/webdav/...` and `/remote.php/dav/<kind>/...`: `kind` names a DAV door
  (`files`, and the others the composition root adds: `uploads`, `versions`,
  `trashbin`), which gets SCRIPT_NAME `/remote.php/dav/<kind>` and the rest as
  PATH_INFO.
- `public`: further (prefix, app) pairs served without a login (Login Flow v2's pages
  and its polling endpoint, under `/index.php/login/v2` and `/login/v2`), given
  PATH_INFO unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.responses import plain_response
from davserver.nextcloud import ocs
from davserver.nextcloud.files import LEGACY_PATH
from providers.catalog import UserRecord
from providers.catalog.history_usage import Usage

STATUS_PATHS = ("/status.php", "/nextcloud/status.php")
OCS_PREFIXES = ("/ocs/v1.php", "/ocs/v2.php")
DAV_PATH = "/remote.php/dav"
PREFIXES = ("/status.php", "/nextcloud/", "/ocs/", "/remote.php/", "/index.php/", "/login/v2")


def handles(path: str) -> bool:
    """Whether `path` belongs to this door (the composition root routes by it)."""
    return path.startswith(PREFIXES) or path in ("/remote.php", "/index.php")


@dataclass
class NextcloudSite:
    """The router (see the module docstring).

    `signed_in(app)` is `app` behind the account logins (it sets the environ's
    `wsgidav.auth.user_name`); `user_of(name)` finds the account; `usage_of(user)` its
    space as (usage, free bytes without a quota); `legacy` serves `/remote.php/webdav`;
    `dav_doors` maps a kind to its app."""

    capabilities: ocs.Capabilities
    signed_in: Callable[[WSGIApplication], WSGIApplication]
    user_of: Callable[[str], UserRecord | None]
    usage_of: Callable[[UserRecord], tuple[Usage, int | None]]
    legacy: WSGIApplication
    dav_doors: Mapping[str, WSGIApplication]
    public: Sequence[tuple[str, WSGIApplication]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self._user = self.signed_in(self._cloud_user)
        self._remote = self.signed_in(self._remote_dav)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in STATUS_PATHS:
            return ocs.status(start_response)
        for prefix in OCS_PREFIXES:
            if path.startswith(prefix + "/"):
                return self._ocs(environ, start_response, path[len(prefix) :])
        if path == "/remote.php" or path.startswith("/remote.php/"):
            return self._remote(environ, start_response)
        for prefix, app in self.public:
            if path == prefix or path.startswith(prefix + "/"):
                return app(environ, start_response)
        return plain_response(start_response, 404, "not found")

    def _ocs(
        self, environ: WSGIEnvironment, start_response: StartResponse, endpoint: str
    ) -> Iterable[bytes]:
        endpoint = endpoint.rstrip("/")
        if endpoint == "/cloud/capabilities":
            data = self.capabilities.document(environ)
            return ocs.ocs_response(environ, start_response, 200, data)
        if endpoint == "/cloud/user":
            return self._user(environ, start_response)
        return ocs.ocs_response(environ, start_response, 404, [], "Invalid query")

    def _cloud_user(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        user = self.user_of(environ.get("wsgidav.auth.user_name", ""))
        if user is None:  # deleted since the login
            return ocs.ocs_response(environ, start_response, 401, [], "Unauthorised")
        usage, free = self.usage_of(user)
        data = ocs.user_document(user, usage, free)
        return ocs.ocs_response(environ, start_response, 200, data)

    def _remote_dav(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == LEGACY_PATH or path.startswith(LEGACY_PATH + "/"):
            return _mount(environ, LEGACY_PATH, self.legacy, start_response)
        if path.startswith(DAV_PATH + "/"):
            kind = path[len(DAV_PATH) + 1 :].partition("/")[0]
            door = self.dav_doors.get(kind)
            if door is not None:
                return _mount(environ, f"{DAV_PATH}/{kind}", door, start_response)
        return plain_response(start_response, 404, "not found")


def _mount(
    environ: WSGIEnvironment, mount: str, app: WSGIApplication, start_response: StartResponse
) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + mount
    environ["PATH_INFO"] = path[len(mount) :] or "/"
    return app(environ, start_response)
