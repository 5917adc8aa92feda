"""Helpers shared by the test services and the benchmark for child server processes."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not glibc
    _libc = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A `preexec_fn` that has the kernel send `sig` to the child when its parent dies,
    even by SIGKILL (Linux; a no-op elsewhere). Works after a uid switch."""

    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def stop_gracefully(
    proc: subprocess.Popen[Any], grace: float = 20.0, signum: int = signal.SIGINT
) -> int:
    """Send `signum` to `proc` (a clean shutdown), SIGKILL it after `grace` seconds; its status."""
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode
