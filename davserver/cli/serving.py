"""How `davserver serve` serves: one process, or `workers` processes on one port.

With one worker, `davserver.cli.serve` builds the app and serves in its own process.
With several (`Settings.worker_count`), `run_workers` binds the HTTP and notify_push
sockets here, closes the services it used to start (the master forks with nothing
open, `davserver.workers`), and each worker builds its own services and app and
serves on its own socket of the port (`Listeners`; notify_push: worker 0 alone,
`PUSH_WORKER`). The master prints the lines a start ends with once every worker
serves.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from davserver import metrics
from davserver.app import Services, build_app, build_services
from davserver.cli.output import CommandError
from davserver.http.environ import WSGIApplication
from davserver.server import HTTPServer, bind_listener, make_server, serve_forever
from davserver.settings import Settings
from davserver.workers import Supervisor, WorkersFailed
from providers.local_channel import WorkerSlot

START_MARGIN = 60  # seconds a worker may take to serve, beyond `startup_wait`
# The worker serving notify_push: one, since its library's accept loop blocks on the
# socket (a second worker would wait there forever for a connection the first took);
# events bring it every worker's changes.
PUSH_WORKER = 0


@dataclass(frozen=True)
class Listeners:
    """Sockets a master bound for its workers: an HTTP socket per worker, all on one
    port (SO_REUSEPORT: the kernel spreads new connections evenly over them, where one
    shared socket let the quickest worker accept them all, and kept-alive clients then
    stayed there), and notify_push's when enabled. The master keeps them open, so a
    restarted worker serves the same socket and its connections only wait meanwhile."""

    http: list[socket.socket]
    push: socket.socket | None


def build_server(
    services: Services,
    app: WSGIApplication,
    *,
    listening: socket.socket | None = None,
    worker: int | None = None,
) -> HTTPServer:
    """The cheroot server of `app` on the settings' address (or `listening`);
    `CommandError` when the certificate pair cannot be used."""
    settings = services.settings
    try:
        return make_server(
            app,
            settings.host,
            settings.port,
            threads=settings.server_threads,
            # waiting clients get threads of their own (davserver.api.push), when they come
            max_threads=settings.server_threads + settings.push_waiters,
            certfile=settings.certfile,
            keyfile=settings.keyfile,
            on_stop=services.stop_waiters,
            head_timeout=settings.request_head_timeout,
            keepalive_timeout=settings.keepalive_timeout,
            max_connections=settings.max_connections,
            listening=listening,
            worker=worker,
        )
    except ssl.SSLError as e:
        raise CommandError(
            f"certfile/keyfile: cannot use {settings.certfile} with {settings.keyfile}: {e}"
        ) from e


def start_notify_push(services: Services, sock: socket.socket | None = None) -> int | None:
    """Start the notify_push listener on `notify_push_port` (port + 1 by default, a
    free port when the HTTP port was 0), or on `sock`; its port, or None when it is
    off. `CommandError` when it cannot bind."""
    settings, listener = services.settings, services.notify_push
    if listener is None:
        return None
    wanted = settings.notify_push_listen_port
    try:
        return listener.start(settings.host, wanted, settings.certfile, settings.keyfile, sock)
    except OSError as e:
        raise CommandError(
            f"notify_push_port: cannot listen on {settings.host}:{wanted}: {e.strerror or e}"
        ) from e


def announce(settings: Settings, port: int, push_port: int | None) -> None:
    """The lines a start ends with ("listening" last: scripts wait for it)."""
    if settings.public_url:
        print(f"davserver public URL: {settings.public_base}/dav/", flush=True)
    if push_port is not None:
        scheme = "wss" if settings.uses_tls else "ws"
        print(f"davserver notify_push on {scheme}://{settings.host}:{push_port}/ws", flush=True)
    scheme = "https" if settings.uses_tls else "http"
    print(f"davserver listening on {scheme}://{settings.host}:{port}/dav/", flush=True)


def run_workers(services: Services) -> int:
    """Serve in `worker_count` processes until SIGINT or SIGTERM (module docstring);
    `services` (the master's, used to start) are closed here."""
    settings = services.settings
    _check_certificate(settings)
    listeners = _bind(services)
    services.close()
    count = settings.worker_count
    shared = settings.data_dir / "run" / "metrics"
    metrics.prepare_shared_metrics(shared)
    group = hashlib.sha256(f"{settings.data_dir.resolve()}:{os.getpid()}".encode()).hexdigest()
    work = functools.partial(_serve_worker, settings, listeners, WorkerSlot(group[:16], 0, count))
    supervisor = Supervisor(
        count, work, on_exit=functools.partial(metrics.mark_worker_gone, shared)
    )
    try:
        supervisor.start(timeout=settings.startup_wait + START_MARGIN)
    except WorkersFailed as e:
        raise CommandError(f"workers: {e}") from e
    print(f"davserver: {count} workers (pids {' '.join(map(str, supervisor.pids))})", flush=True)
    push_port = None if listeners.push is None else int(listeners.push.getsockname()[1])
    announce(settings, int(listeners.http[0].getsockname()[1]), push_port)
    return supervisor.wait()


def _check_certificate(settings: Settings) -> None:
    """`CommandError` now, in one line, when the workers could not use the pair."""
    if not settings.certfile:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.certfile, settings.keyfile)
    except (ssl.SSLError, OSError) as e:
        raise CommandError(
            f"certfile/keyfile: cannot use {settings.certfile} with {settings.keyfile}: {e}"
        ) from e


def _bind(services: Services) -> Listeners:
    settings = services.settings
    port, http = settings.port, []
    try:
        for _ in range(settings.worker_count):
            http.append(bind_listener(settings.host, port, reuse_port=True))
            port = int(http[0].getsockname()[1])  # port 0: the others join the first's
    except OSError as e:
        raise CommandError(f"port: cannot listen on {settings.host}:{port}: {e}") from e
    if services.notify_push is None:
        return Listeners(http, None)
    wanted = settings.notify_push_listen_port
    try:
        push = bind_listener(settings.host, wanted)
    except OSError as e:
        raise CommandError(
            f"notify_push_port: cannot listen on {settings.host}:{wanted}: {e}"
        ) from e
    return Listeners(http, push)


def _serve_worker(
    settings: Settings,
    listeners: Listeners,
    slot: WorkerSlot,
    index: int,
    ready: Callable[[], None],
) -> int:
    """Worker `index`'s life: its own services and app on the shared sockets."""
    metrics.share_metrics(settings.data_dir / "run" / "metrics", index)
    services = build_services(
        settings, purpose="serve", worker=WorkerSlot(slot.group, index, slot.count)
    )
    try:
        server = build_server(
            services, build_app(services), listening=listeners.http[index], worker=index
        )
        if index == PUSH_WORKER:
            start_notify_push(services, listeners.push)
        elif services.notify_push is not None and listeners.push is not None:
            port = int(listeners.push.getsockname()[1])
            services.notify_push.advertise(port, settings.uses_tls)
        serve_forever(server, lambda port: ready())
    finally:
        services.close()
    return 0
