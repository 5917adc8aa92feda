"""Several server processes on one port (`workers`), and their supervisor.

`davserver serve` with more than one worker binds its sockets in this, the master
process, closes everything else it opened, and forks the workers: each builds its own
services (engine pools, threads) and serves on its inherited socket of the port (the
kernel spreads new connections over them, `davserver.cli.serving`). What workers share
goes through the catalog and Redis, as between instances (docs/operations.md
"Workers"); without Redis, events between workers go over local datagram sockets.

The master runs no request. It waits until every worker has said it serves (a byte
on a pipe), restarts a worker that dies (after a pause when it died young, so a worker
that cannot start does not spin), and on SIGINT or SIGTERM passes SIGTERM on and waits
for the workers' clean stops; a second signal kills them.

Forking is safe here because the master holds no thread when it forks (`Supervisor`
checks): a lock held by another thread at the fork would stay locked in the child.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

YOUNG = 5.0  # seconds: a worker that dies younger is restarted after `RESTART_PAUSE`
RESTART_PAUSE = 1.0
POLL = 0.2  # seconds between looks at the workers while they start
PR_SET_PDEATHSIG = 1  # from linux/prctl.h
HANDLED = (signal.SIGINT, signal.SIGTERM)  # stop the workers cleanly

# A worker's body: run serving as worker `index`, call `ready()` once it serves, and
# return its exit status when it has stopped.
Work = Callable[[int, Callable[[], None]], int]


class WorkersFailed(Exception):
    """The workers could not all start (the message says which and why)."""


class Supervisor:
    """Runs `count` processes, each `work(index, ready)` (see the module docstring);
    `on_exit(pid)` is told of every worker that ended (e.g. to retire its metrics)."""

    def __init__(self, count: int, work: Work, on_exit: Callable[[int], None] | None = None):
        self.count = count
        self._work = work
        self._on_exit = on_exit
        self._workers: dict[int, int] = {}  # pid -> worker index
        self._started: dict[int, float] = {}  # worker index -> when it was forked
        self._ready_read, self._ready_write = os.pipe()
        self._stopping = False
        self._signals = 0
        self._master = os.getpid()
        self._previous: dict[int, Any] = {}  # signal handlers to restore after `wait`

    @property
    def pids(self) -> list[int]:
        return sorted(self._workers)

    def start(self, timeout: float) -> None:
        """Fork every worker and return once all serve; `WorkersFailed` (after
        stopping the others) when one exits first or `timeout` seconds pass."""
        if threading.active_count() > 1:
            others = [t for t in threading.enumerate() if t is not threading.main_thread()]
            names = ", ".join(t.name for t in others)
            raise RuntimeError(f"workers: the master must not fork with threads running ({names})")
        gc.freeze()  # what start-up built stays shared with the workers, never copied by GC
        # a signal from now on stops the workers: none is missed between start and wait
        self._previous = {signum: signal.signal(signum, self._on_signal) for signum in HANDLED}
        for index in range(self.count):
            self._spawn(index)
        waiting, deadline = set(range(self.count)), time.monotonic() + timeout
        while waiting:
            if self._stopping:
                self._abort("stopped by a signal while starting")
            if time.monotonic() > deadline:
                self._abort(f"workers {sorted(waiting)} not serving after {timeout:.0f} s")
            readable, _, _ = select.select([self._ready_read], [], [], POLL)
            if readable:
                waiting.difference_update(os.read(self._ready_read, 64))
            ended = self._reap(block=False)
            if ended is not None:
                index, status = ended
                self._abort(f"worker {index} exited before it served ({_described(status)})")

    def wait(self) -> int:
        """Supervise until SIGINT or SIGTERM, then stop the workers; the exit status."""
        try:
            while self._workers:
                ended = self._reap(block=True)
                if ended is None or self._stopping:
                    continue
                index, status = ended
                log.warning("worker %d %s; starting another", index, _described(status))
                self._restart(index)
        finally:
            self._restore_signals()
        return 0

    def _restore_signals(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True
        self._signals += 1
        kill = signal.SIGTERM if self._signals == 1 else signal.SIGKILL
        for pid in list(self._workers):
            _send(pid, kill)

    def _restart(self, index: int) -> None:
        if time.monotonic() - self._started[index] < YOUNG:
            time.sleep(RESTART_PAUSE)
        if not self._stopping:
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._be_worker(index)
        self._workers[pid] = index
        self._started[index] = time.monotonic()

    def _be_worker(self, index: int) -> None:
        """The child's whole life: serve, then leave without returning into the
        master's code (its `finally` blocks and exit handlers are the master's)."""
        status = 1
        try:
            _die_with_master(self._master)
            for signum in HANDLED:
                signal.signal(signum, signal.SIG_DFL)
            os.close(self._ready_read)
            gc.unfreeze()
            status = self._work(index, lambda: _tell_ready(self._ready_write, index))
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _reap(self, *, block: bool) -> tuple[int, int] | None:
        """(index, wait status) of one worker that ended, or None (none yet, when not
        blocking; or a signal interrupted the wait)."""
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self._workers.clear()
            return None
        if pid == 0 or pid not in self._workers:
            return None
        index = self._workers.pop(pid)
        if self._on_exit is not None:
            self._on_exit(pid)
        return index, status

    def _abort(self, reason: str) -> None:
        self._stopping = True
        for pid in list(self._workers):
            _send(pid, signal.SIGTERM)
        while self._workers:
            self._reap(block=True)
        self._restore_signals()
        raise WorkersFailed(reason)


def _die_with_master(master: int) -> None:
    """Have the kernel kill this worker when the master dies, even by SIGKILL (Linux):
    workers never outlive it, so killing the master is killing the server."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != master:  # it died before the line above took effect
        os._exit(1)


def _tell_ready(fd: int, index: int) -> None:
    os.write(fd, bytes([index]))


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just ended
        os.kill(pid, signum)


def _described(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
