"""The composition root: builds every service from `Settings` and wires the WSGI app.

Only this module (with `davserver.sites`, which composes the share-link site and the
Nextcloud door for it) knows the concrete classes. `build_services(settings)` creates the
catalog, blob store, chunker, filestore, the lock manager and the operations layer over
them (the CLI uses these too); `build_app(services)` the
WSGI application: `/` landing page, `/healthz` and `/readyz`, WebDAV under `/dav/`,
the read-only snapshots of homes under `/snapshots/` (`davserver.dav.snapshots`),
the JSON API under `/api/v1/` (`davserver.api.app`), accounts' resumable (TUS) uploads
under `/tus/` (`davserver.dav.tus`, created by a POST to a `/dav/` collection, behind
`/dav/`'s logins), share links under `/s/` (`davserver.links.site`) and the delta API's
signed block URLs under `/blocks/` (`davserver.api.block_urls`), and the paths of the
Nextcloud and ownCloud clients (`/status.php`, `/ocs/`, `/remote.php/`, `/index.php/`,
`/login/`: `davserver.nextcloud`, docs/nextcloud.md), whose push WebSocket is a second
listener (`Services.notify_push`).
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

from davserver import sites
from davserver.api import account, blocks, changes, push, shares, trash, versions
from davserver.api.app import API_PATH, ApiContext, build_api
from davserver.api.block_urls import BLOCKS_PATH, BlockSite, BlockUrls
from davserver.auth import initial_password, passwords
from davserver.auth.credentials import PasswordLogins
from davserver.auth.domain import REALM, account_secrets
from davserver.auth.login_gate import DigestNonces, LoginGate
from davserver.auth.ratelimit import LoginLimiter, build_limiter
from davserver.dav import app as dav_app
from davserver.dav import snapshots as snapshot_dav
from davserver.dav import tus as tus_dav
from davserver.dav.app import MOUNT_PATH
from davserver.dav.snapshots import MOUNT_PATH as SNAPSHOTS
from davserver.dav.tus import MOUNT_PATH as TUS
from davserver.encryption import load_keys
from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.http.guards import RequestGuard
from davserver.http.observe import Observe
from davserver.http.proxy import ProxyHeaders
from davserver.http.shared_reads import SharedReads
from davserver.links.signer import SHARE_PATH, LinkSigner
from davserver.metrics import Metrics, TimedBlobStore, metrics_endpoint
from davserver.nextcloud import site as nextcloud_site
from davserver.nextcloud.notify_push import NotifyPushServer
from davserver.nextcloud.pre_auth import (
    PreAuthTokens,
)
from davserver.settings import Settings
from davserver.store import Purpose, open_catalog
from davserver.web.root import RootSite
from providers import redis_store
from providers.blobstore.base import BlobStore
from providers.blobstore.direct import DirectTransfers
from providers.blobstore.localdir import LocalDirBlobStore
from providers.blobstore.s3 import S3BlobStore
from providers.catalog import Catalog
from providers.chunker import FastCDCChunker
from providers.codec import ChunkCompressor, ChunkVault
from providers.dav import DavProvider
from providers.dav.locks import MemberTokenLockManager, WsgiDavLocks, lock_storage
from providers.dav.snapshots import SnapshotProvider
from providers.errors import StorageError
from providers.filestore import FileStore
from providers.local_channel import LocalChannel, WorkerSlot
from providers.operations import EventPublisher, InProcessEvents, Operations, SharedSpace
from providers.operations.blocks import BlockTransfers
from providers.operations.events import ChannelEvents
from providers.operations.expiry import HistoryKeeper, HistoryRules
from providers.operations.retention import DAY, RetentionPolicy
from providers.push import Push

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the app and the CLI need, built once per process: the engine, the
    process's one WebDAV lock manager, the operations layer over them, the login
    limiter, the share-link signer, push (waiting clients; a server starts it), the
    history keeper (retention in the background; a server starts it) and the metrics
    (the blob store reports to them)."""

    settings: Settings
    catalog: Catalog
    blobs: BlobStore
    files: FileStore
    lock_manager: MemberTokenLockManager
    ops: Operations
    limiter: LoginLimiter
    signer: LinkSigner
    push: Push
    history: HistoryKeeper
    metrics: Metrics = field(default_factory=Metrics)
    direct: DirectTransfers | None = None
    notify_push: NotifyPushServer | None = None

    def stop_waiters(self) -> None:
        """What a server does when it starts to stop: end every wait (push) and close
        the notify_push sockets."""
        self.push.close()
        if self.notify_push is not None:
            self.notify_push.stop()

    def check(self) -> None:
        """`Unavailable` unless the catalog, the blob store and Redis (when configured:
        locks and login counts live there) answer now."""
        self.catalog.check()
        self.blobs.check()
        if self.settings.redis_url:
            redis_store.ping(self.settings.redis_url)

    def close(self) -> None:
        self.history.close()
        self.stop_waiters()
        self.ops.events.close()
        self.limiter.close()
        self.files.close()
        self.blobs.close()
        self.catalog.close()


def build_blobstore(settings: Settings) -> BlobStore:
    if settings.uses_s3:
        return S3BlobStore(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region or None,
        )
    return LocalDirBlobStore(settings.data_dir / "blobs", fsync=settings.local_fsync)


def build_direct(settings: Settings, store: BlobStore) -> DirectTransfers | None:
    """Direct transfers on the S3 store when `direct_transfers` is on, presigned for
    `s3_public_url` when clients reach S3 there rather than at `s3_endpoint`."""
    if not settings.direct_transfers or not isinstance(store, S3BlobStore):
        return None
    public = urlsplit(settings.s3_public_url) if settings.s3_public_url else None
    if public is None:
        return store.direct()
    return store.direct(public.netloc, secure=public.scheme == "https")


def build_chunker(settings: Settings, catalog: Catalog) -> FastCDCChunker:
    """The chunker recorded at first start wins over later settings (dedup stays exact)."""
    wanted = FastCDCChunker(
        settings.chunk_min_size, settings.chunk_avg_size, settings.chunk_max_size
    )
    recorded = catalog.users.ensure_setting("chunker", wanted.params())
    match = re.fullmatch(r"fastcdc2020:min=(\d+),avg=(\d+),max=(\d+)", recorded)
    if match is None:
        raise StorageError(f"unknown chunker recorded in the catalog: {recorded}")
    if recorded != wanted.params():
        log.warning("using the chunker recorded in the catalog: %s", recorded)
    low, avg, high = (int(g) for g in match.groups())
    return FastCDCChunker(low, avg, high)


def build_services(
    settings: Settings, *, purpose: Purpose = "serve", worker: WorkerSlot | None = None
) -> Services:
    """Open the catalog named by `settings` as `purpose` allows (`serve` creates or
    upgrades it, `admin` neither: `davserver.store`), connect to the blob store, and
    build the operations layer over them; `worker` is which of a server's worker
    processes this is (None: the only one), for the events between them."""
    catalog, _ = open_catalog(settings, purpose)
    metrics = Metrics()
    metrics.watch_catalog(catalog)
    store = build_blobstore(settings)
    blobs = TimedBlobStore(store, metrics)
    vault = ChunkVault(
        blobs,
        prefix=settings.blob_prefix,
        compressor=ChunkCompressor() if settings.compression == "auto" else None,
        keys=load_keys(settings, catalog, purpose),
    )
    files = FileStore(
        catalog,
        blobs,
        build_chunker(settings, catalog),
        key_prefix=settings.blob_prefix,
        workers=settings.upload_workers,
        max_in_flight=settings.uploads_in_flight,
        read_ahead=settings.read_ahead,
        vault=vault,
        inline_max=settings.inline_max_bytes,
    )
    metrics.watch_files(files)
    lock_manager = MemberTokenLockManager(lock_storage(settings.redis_url, catalog))
    ops = build_operations(catalog, files, lock_manager, build_events(settings, worker))
    limits = {
        "user": settings.login_failures_per_user,
        "link": settings.login_failures_per_user,  # guesses of a share link's password
        "addr": settings.login_failures_per_address,
    }
    limiter = build_limiter(settings.redis_url, catalog, limits, settings.login_failure_window)
    signer = share_signer(catalog)
    push = Push(ops.events, ops.feed, capacity=settings.push_waiters)
    metrics.watch_push(push)
    history = HistoryKeeper(catalog, history_rules(settings), settings.history_interval)
    return Services(
        settings,
        catalog,
        blobs,
        files,
        lock_manager,
        ops,
        limiter,
        signer,
        push,
        history,
        metrics,
        build_direct(settings, store),
        build_notify_push(settings, catalog, push, limiter),
    )


def build_notify_push(
    settings: Settings, catalog: Catalog, push: Push, limiter: LoginLimiter
) -> NotifyPushServer | None:
    """The notify_push listener (not started: a server starts it), None when the
    `notify_push` setting is off; its pre-auth key is kept in the catalog, so a token
    from one instance opens a socket on another."""
    if not settings.notify_push:
        return None
    key = bytes.fromhex(catalog.users.ensure_setting("notify_push_key", secrets.token_hex(32)))
    return NotifyPushServer(
        push,
        PasswordLogins(catalog.users, limiter),
        PreAuthTokens(key),
        catalog.users.by_id,
        capacity=settings.push_waiters,
        trusted=settings.trusted_networks,
        url=settings.notify_push_url,
    )


def history_rules(settings: Settings) -> HistoryRules:
    """What history the settings keep (`versions_max_*`, `trash_retention`)."""
    policy = RetentionPolicy(
        max_age=settings.versions_max_age * DAY, max_count=settings.versions_max_count or None
    )
    return HistoryRules(policy, settings.trash_retention * DAY)


def build_events(settings: Settings, worker: WorkerSlot | None = None) -> EventPublisher:
    """Events for every instance on the Redis of `redis_url`; without Redis, for the
    workers of this server on this machine when `worker` is one of several (local
    datagram sockets), else in this process only (one process serves)."""
    if settings.redis_url:
        return ChannelEvents(redis_store.Channel(settings.redis_url, "events"))
    if worker is not None and worker.count > 1:
        return ChannelEvents(LocalChannel(worker.group, worker.index, worker.count, "events"))
    return InProcessEvents()


def build_operations(
    catalog: Catalog,
    files: FileStore,
    lock_manager: MemberTokenLockManager,
    events: EventPublisher | None = None,
) -> Operations:
    """The operations layer over the engine, the process's lock manager and `events`
    (in-process when None)."""
    locks = WsgiDavLocks(lock_manager)
    events = InProcessEvents() if events is None else events
    return Operations(catalog, files, locks, events, SharedSpace(catalog))


def ensure_admin(services: Services, out: TextIO = sys.stdout) -> bool:
    """On first start (no users), create `admin` and return True; a generated password
    is printed once and kept in `<data_dir>/initial-admin-password` until changed."""
    users = services.catalog.users
    if users.count():
        return False
    settings = services.settings
    password = settings.admin_password or passwords.generate_password()
    if not settings.admin_password:  # saved first: a start that fails later keeps it
        saved = initial_password.write(settings.data_dir, password)
    users.create("admin", *account_secrets("admin", password, digest=settings.digest_auth))
    if not settings.admin_password:
        print(f"Created user 'admin' with password: {password}", file=out)
        print(f"(also in {saved} until `davserver user passwd admin`)", file=out, flush=True)
    return True


def free_bytes_function(settings: Settings) -> Callable[[], int | None]:
    """Space left for users without a quota: the disk's, or the configured S3 capacity."""
    if settings.uses_s3:
        return lambda: settings.s3_capacity_bytes
    root = settings.data_dir
    return lambda: shutil.disk_usage(root).free


def build_app(services: Services) -> WSGIApplication:
    """The WSGI application for `services` (see the module docstring); starts push
    (`Services.push`), which its server must close when it stops (`on_stop`), and the
    history keeper (`Services.history`, closed with the services)."""
    settings = services.settings
    free_bytes = free_bytes_function(settings)
    options = dav_app.DavOptions(
        settings.block_size, settings.propfind_infinite_depth, settings.verbose
    )
    provider = DavProvider(services.ops, free_bytes)
    webdav = dav_app.build(
        provider, services.lock_manager, MOUNT_PATH, options, accounts=services.catalog.users
    )
    nonces = _digest_nonces(services)

    def gated(wsgi: WSGIApplication) -> WSGIApplication:
        """A WebDAV mount behind the XML body bound and the account logins."""
        guarded = RequestGuard(wsgi, max_xml_body=settings.max_xml_body)
        return SharedReads(
            LoginGate(guarded, services.limiter, REALM, nonces), services.catalog.db.reading
        )

    dav = gated(webdav)
    snapshot_provider = SnapshotProvider(services.ops)
    snapshots = gated(
        snapshot_dav.build(
            snapshot_provider, services.lock_manager, options, services.catalog.users
        )
    )
    uploads = gated(dav_app.authenticated(webdav, tus_dav.TusMount(provider)))
    nextcloud = sites.build_nextcloud(services, free_bytes, options, webdav, gated)
    services.push.start()
    services.history.start()
    block_urls = BlockUrls(block_url_key(services.catalog))
    context = ApiContext(
        services.ops,
        free_bytes,
        services.signer,
        settings.public_base,
        services.push,
        BlockTransfers(services.ops, services.direct, settings.transfer_url_ttl),
        block_urls,
    )
    api = build_api(
        context,
        webdav,
        services.limiter,
        nonces,
        (
            *account.ROUTES,
            *shares.ROUTES,
            *changes.ROUTES,
            *push.ROUTES,
            *versions.ROUTES,
            *trash.ROUTES,
            *blocks.ROUTES,
        ),
    )
    block_site = BlockSite(block_urls, services.files)
    links = sites.build_share_site(services, free_bytes, options)
    root = RootSite(
        services.check,
        MOUNT_PATH,
        metrics_endpoint(services.metrics, settings.metrics_token),
        public_url=settings.public_url,
    )

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for mount, mounted in ((MOUNT_PATH, dav), (SNAPSHOTS, snapshots), (TUS, uploads)):
            if path == mount or path.startswith(mount + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + mount
                environ["PATH_INFO"] = path[len(mount) :] or "/"
                return mounted(environ, start_response)
        if path == API_PATH or path.startswith(API_PATH + "/"):
            return api(environ, start_response)
        if path.startswith(SHARE_PATH + "/"):
            return links(environ, start_response)
        if path.startswith(BLOCKS_PATH + "/"):  # signed URLs: no login (a CDN sends none)
            return block_site(environ, start_response)
        if nextcloud_site.handles(path):
            return nextcloud(environ, start_response)
        return root(environ, start_response)

    # ProxyHeaders: every layer below must see the client's address, scheme and host.
    # Observe outside it: it judges an incoming request id by the real peer, and logs
    # the client address the proxy layer leaves in the shared environ.
    proxied = ProxyHeaders(app, settings.trusted_networks, settings.public_base)
    return Observe(proxied, settings.trusted_networks, services.metrics)


def share_signer(catalog: Catalog) -> LinkSigner:
    """The signer of share-link tokens, under the key kept in the catalog (made on
    first use), so every instance and the CLI make and accept the same tokens."""
    key = catalog.users.ensure_setting("share_link_key", secrets.token_hex(32))
    return LinkSigner(bytes.fromhex(key))


def block_url_key(catalog: Catalog) -> bytes:
    """The key of signed block URLs, kept in the catalog (made on first use), so every
    instance makes and accepts the same URLs."""
    return bytes.fromhex(catalog.users.ensure_setting("block_url_key", secrets.token_hex(32)))


def _digest_nonces(services: Services) -> DigestNonces | None:
    """Digest nonces under a key every instance shares (kept in the catalog), or None
    when `digest_auth` is off."""
    if not services.settings.digest_auth:
        return None
    key = services.catalog.users.ensure_setting("digest_nonce_key", secrets.token_hex(32))
    return DigestNonces(bytes.fromhex(key))
