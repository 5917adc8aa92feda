"""The composition of the share-link site (`/s/`) and the Nextcloud door: part of the
composition root (`davserver.app.build_app` calls these), kept apart so that each
module stays readable. Like `davserver.app`, only this module and it know the
concrete classes they wire."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from davserver.dav import app as dav_app
from davserver.http.environ import WSGIApplication, base_url
from davserver.links import archive, edit, pages, password, uploads
from davserver.links import dav as link_dav
from davserver.links.signer import FormTokens
from davserver.links.site import ShareSite
from davserver.nextcloud import history as nextcloud_history
from davserver.nextcloud import site as nextcloud_site
from davserver.nextcloud.files import FilesMounts
from davserver.nextcloud.flow_store import build_flow_store
from davserver.nextcloud.login_flow import GRANT_SALT, LoginFlow
from davserver.nextcloud.notify_push import NotifyPushServer
from davserver.nextcloud.ocs import Capabilities, PushEndpoints
from davserver.nextcloud.pre_auth import PRE_AUTH_PATH, PRE_AUTH_PREFIX, PreAuthEndpoint
from davserver.nextcloud.uploads import ChunkedUploads
from providers.catalog import UserRecord
from providers.catalog.history_usage import Usage
from providers.dav import DavProvider

if TYPE_CHECKING:
    from davserver.app import Services


def build_nextcloud(
    services: Services,
    free_bytes: Callable[[], int | None],
    options: dav_app.DavOptions,
    webdav: Any,
    gated: Callable[[WSGIApplication], WSGIApplication],
) -> WSGIApplication:
    """The Nextcloud door (`davserver.nextcloud`), behind the logins of `/dav/`."""
    ops = services.ops
    files = FilesMounts(ops, free_bytes, services.lock_manager, options)
    users = services.catalog.users

    def usage_of(user: UserRecord) -> tuple[Usage, int | None]:
        return services.catalog.history_usage.usage(user.id), free_bytes()

    def signed_in(app: WSGIApplication) -> WSGIApplication:
        return gated(dav_app.authenticated(webdav, app))

    # Login Flow v2: flows in Redis when configured, else in the catalog (either way
    # shared by every process), the grant form's key in the catalog (every instance
    # signs alike).
    flow_key = bytes.fromhex(users.ensure_setting("login_flow_key", secrets.token_hex(32)))
    login_flow = LoginFlow(
        users,
        services.limiter,
        build_flow_store(services.settings.redis_url, services.catalog),
        FormTokens(flow_key, GRANT_SALT),
        services.settings.public_base,
    )
    notify_push, public = services.notify_push, list(login_flow.routes())
    if notify_push is not None:
        public.append((PRE_AUTH_PREFIX, signed_in(PreAuthEndpoint(notify_push.pre_auth))))
    push = push_endpoints(notify_push, services.settings.public_base)
    return nextcloud_site.NextcloudSite(
        capabilities=Capabilities(
            chunking=True, versions=True, trash=True, push=push, upload_conflict_copies=True
        ),
        signed_in=signed_in,
        user_of=users.get,
        usage_of=usage_of,
        legacy=files.legacy,
        dav_doors={
            "files": files,
            "uploads": ChunkedUploads(DavProvider(ops, free_bytes)),
            "versions": nextcloud_history.versions_door(ops, options),
            "trashbin": nextcloud_history.trashbin_door(ops, options),
        },
        public=public,
    )


def push_endpoints(notify_push: NotifyPushServer | None, public_url: str) -> PushEndpoints | None:
    """What the capabilities say of notify_push: its WebSocket URL, and the pre-auth
    URL on `public_url` or else the address the client used."""
    if notify_push is None:
        return None
    return PushEndpoints(
        websocket=notify_push.websocket_url,
        pre_auth=lambda environ: base_url(environ, public_url) + PRE_AUTH_PATH,
    )


def build_share_site(
    services: Services, free_bytes: Callable[[], int | None], options: dav_app.DavOptions
) -> ShareSite:
    """The `/s/` app with every action; its signing key is kept in the catalog, so all
    instances make and accept the same tokens."""
    ops, settings = services.ops, services.settings
    gate = password.PasswordGate(services.signer, services.limiter)
    link_options = link_dav.LinkDavOptions(options, settings.max_xml_body)
    actions = {
        **pages.actions(pages.SharePages(services.catalog, services.files)),
        **archive.actions(services.catalog, services.files),
        **password.actions(gate),
        **uploads.actions(ops),
        **edit.actions(ops),
        **link_dav.actions(ops, free_bytes, services.lock_manager, services.limiter, link_options),
    }
    return ShareSite(services.catalog, services.signer, actions, gate.password_page)
