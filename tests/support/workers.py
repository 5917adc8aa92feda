"""One `davserver serve` with several worker processes, seen as one server per worker.

`serving_workers(settings, log)` starts the real command with `workers = 2` and yields
a `RunningServer` per worker: each one's sessions only ever talk to that worker.
A new connection reaches whichever worker accepts it first, so a pinned connection
asks `/healthz` which worker it reached (`X-Davserver-Worker`) and reconnects until it
is the wanted one; requests then reuse it (keep-alive). Tests written for two
instances (`pair`) thus run unchanged across two workers of one server.
"""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from davserver.app import build_services
from davserver.settings import Settings
from tests.support.servers import ADMIN_PASSWORD, RunningServer
from tests.support.subprocess_server import ServeProcess

WORKER_HEADER = "X-Davserver-Worker"
TRIES = 200  # connections tried to reach one worker (each lands on either at random)


def served_by(sock: Any, host: str) -> str:
    """Which worker answers on the connected socket `sock` (a `/healthz` round trip
    that leaves the connection ready for the next request)."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        response.read()
        return response.getheader(WORKER_HEADER) or ""
    finally:
        response.close()


class _PinnedConnection(HTTPConnection):
    worker = ""

    def connect(self) -> None:
        for _ in range(TRIES):
            super().connect()
            if served_by(self.sock, f"{self.host}:{self.port}") == self.worker:
                return
            self.sock.close()
        raise ConnectionError(f"worker {self.worker} never accepted in {TRIES} connections")


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, worker: int) -> None:
        self._worker = worker
        super().__init__(pool_connections=1, pool_maxsize=4)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        connection = type("Pinned", (_PinnedConnection,), {"worker": str(self._worker)})
        pool = type("PinnedPool", (HTTPConnectionPool,), {"ConnectionCls": connection})
        self.poolmanager.pool_classes_by_scheme = {"http": pool}


@dataclass
class WorkerServer(RunningServer):
    """A `RunningServer` whose sessions talk to worker `worker` of `process` only;
    `services` are the test's own, on the same store (as a command-line run's)."""

    worker: int = 0
    process: ServeProcess | None = None

    def client(self, user: str = "admin") -> requests.Session:
        session = super().client(user)
        session.trust_env = False
        session.mount("http://", _PinnedAdapter(self.worker))
        return session

    def stop(self) -> None:
        """The server is stopped by `serving_workers`."""


@contextlib.contextmanager
def serving_workers(settings: Settings, log: Path, count: int = 2) -> Iterator[list[WorkerServer]]:
    """`davserver serve` with `count` workers on `settings`; a view per worker."""
    process = ServeProcess(settings.replace(workers=count), log)
    services = build_services(settings, purpose="admin")
    try:
        users = {"admin": ADMIN_PASSWORD}
        yield [
            # no BackgroundServer: the process serves, and `stop` leaves it alone
            WorkerServer(settings, services, None, process.port, users, i, process)  # type: ignore[arg-type]
            for i in range(count)
        ]
    finally:
        services.close()
        assert process.stop() == 0, process.log_tail()
