"""The WsgiDAV applications: `/dav/` (every account's home) and a share link's
`/s/<token>/dav/`, configured in one place (`wsgidav_config`).

Both run `DavRequestServer` (`davserver.dav.request_server`) on a `DavProvider` over the
operations layer, and share the process's one lock manager, so a lock taken at one
mount binds the others. `/dav/` authenticates accounts (`CatalogDomainController`,
Basic and Digest); a link's mount does not (the link door checks the link and its
password first). Both show davserver's folder pages and plain-text status answers
(`davserver.dav.folder_pages`), never WsgiDAV's branded ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wsgidav.dav_provider import DAVProvider
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.lock_man.lock_manager import LockManager
from wsgidav.wsgidav_app import WsgiDAVApp

from davserver.auth.domain import CatalogDomainController
from davserver.dav.errors import ShortAuthenticator, ShortErrors
from davserver.dav.folder_pages import CONFIG_KEY, FolderPages, PlainStatusPages
from davserver.dav.request_server import DavDispatcher
from davserver.http.environ import StartResponse, WSGIApplication
from providers.catalog.users import Users

MOUNT_PATH = "/dav"


@dataclass(frozen=True)
class DavOptions:
    """The settings WsgiDAV apps take (`davserver.settings.Settings` has them all)."""

    block_size: int
    propfind_infinite_depth: bool
    verbose: int


def wsgidav_config(
    provider: DAVProvider,
    mount_path: str,
    options: DavOptions,
    *,
    accounts: Users | None,
    signed_in: bool = False,
) -> dict[str, Any]:
    """WsgiDAV's configuration for `provider` at `mount_path`; with `accounts`, logins
    (Basic and Digest, by `CatalogDomainController`); `signed_in` when an account
    logged in before the app runs (`authenticated`): its folder pages are a home's."""
    middleware: list[Any] = [
        PlainStatusPages,
        ShortErrors,
        FolderPages,
        DavDispatcher,
    ]
    config: dict[str, Any] = {
        "provider_mapping": {"/": provider},
        "mount_path": mount_path,
        "davserver_infinite_depth": options.propfind_infinite_depth,
        "lock_storage": None,  # WsgiDAV would build its own LockManager; see `build`
        "property_manager": None,
        "honor_mtime_header": True,
        "block_size": options.block_size,
        "verbose": options.verbose,
        "logging": {"enable": False},
        "suppress_version_info": True,
        "dir_browser": {"enable": False},
        CONFIG_KEY: {"root": "Home", "signed_in": True}
        if signed_in
        else {"root": "Shared folder", "signed_in": False},
        "hotfixes": {"emulate_win32_lastmod": True},
    }
    if accounts is not None:
        middleware = [
            PlainStatusPages,
            ShortErrors,
            ShortAuthenticator,
            FolderPages,
            DavDispatcher,
        ]
        config["http_authenticator"] = {
            "domain_controller": CatalogDomainController,
            "accept_basic": True,
            "accept_digest": True,
            "default_to_digest": False,
        }
        config["davserver_dc"] = {"users": accounts}
        config[CONFIG_KEY] = {"root": "Home", "signed_in": True}
    config["middleware_stack"] = middleware
    return config


def build(
    provider: DAVProvider,
    lock_manager: LockManager,
    mount_path: str,
    options: DavOptions,
    *,
    accounts: Users | None = None,
    signed_in: bool = False,
) -> WsgiDAVApp:
    """A WsgiDAV app (see `wsgidav_config`) using the process's `lock_manager`."""
    config = wsgidav_config(provider, mount_path, options, accounts=accounts, signed_in=signed_in)
    app = WsgiDAVApp(config)
    app.lock_manager = lock_manager
    provider.set_lock_manager(lock_manager)
    return app


def authenticated(dav_app: WsgiDAVApp, inner: WSGIApplication) -> WSGIApplication:
    """`inner` behind the very authentication of `dav_app` (its `HTTPAuthenticator`
    settings and domain controller: one password check, one verification cache)."""
    authenticate = HTTPAuthenticator(dav_app, inner, dav_app.config)
    authenticate.domain_controller = dav_app.http_authenticator.domain_controller

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        return authenticate(environ, start_response)

    return app


class AppCache:
    """WsgiDAV apps made on first use by `build(key)` and kept, at most `limit` of them
    (past it they are all dropped and made again as needed: a mount per share link or
    per account, whose apps are cheap to make but not free)."""

    def __init__(self, build: Callable[[str], WSGIApplication], limit: int) -> None:
        self._build = build
        self._limit = limit
        self._apps: dict[str, WSGIApplication] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> WSGIApplication:
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                if len(self._apps) >= self._limit:
                    self._apps.clear()
                app = self._apps[key] = self._build(key)
        return app
