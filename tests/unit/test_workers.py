"""`davserver.workers.Supervisor`: forks, readiness, restarts, stops, and a master's
death. Each case runs a small master script as its own process (the supervisor forks
and installs signal handlers, which a test runner's process must not undergo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MASTER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from davserver.workers import Supervisor, WorkersFailed

    out = Path(sys.argv[1])
    fail_index = int(sys.argv[2])

    def work(index, ready):
        if index == fail_index:
            return 3
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        with open(out / f"worker-{index}-{os.getpid()}", "w"):
            pass
        ready()
        while not stopping:
            time.sleep(0.05)
        (out / f"stopped-{os.getpid()}").touch()
        return 0

    supervisor = Supervisor(2, work)
    try:
        supervisor.start(timeout=20)
    except WorkersFailed as e:
        print("failed:", e, flush=True)
        sys.exit(2)
    print("serving", *supervisor.pids, flush=True)
    sys.exit(supervisor.wait())
    """
)


@pytest.fixture
def master(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    proc = _start(tmp_path, fail_index=-1)
    yield proc, tmp_path
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _start(out: Path, *, fail_index: int) -> subprocess.Popen[str]:
    script = out / "master.py"
    script.write_text(MASTER)
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(fail_index)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _workers(out: Path) -> dict[int, int]:
    """pid -> index of every worker that has started."""
    found = {}
    for path in out.glob("worker-*"):
        _, index, pid = path.name.split("-")
        found[int(pid)] = int(index)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended too
        return stat.read().split()[2] != "Z"


def _until(condition: object, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def test_start_returns_once_every_worker_serves_and_sigterm_stops_them_cleanly(
    master: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, out = master
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[0] == "serving"
    started = _workers(out)
    assert sorted(started) == sorted(map(int, line[1:]))
    assert sorted(started.values()) == [0, 1]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    for pid in started:
        assert (out / f"stopped-{pid}").exists(), "a worker was not stopped cleanly"
        assert not _alive(pid)


def test_a_worker_that_dies_is_replaced_under_the_same_index(
    master: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, out = master
    assert proc.stdout is not None and proc.stdout.readline().startswith("serving")
    first = _workers(out)
    victim, index = next(iter(first.items()))
    os.kill(victim, signal.SIGKILL)
    _until(lambda: len(_workers(out)) == 3)
    (replacement,) = set(_workers(out)) - set(first)
    assert _workers(out)[replacement] == index
    assert _alive(replacement) and proc.poll() is None


def test_workers_die_with_a_killed_master(master: tuple[subprocess.Popen[str], Path]) -> None:
    proc, out = master
    assert proc.stdout is not None and proc.stdout.readline().startswith("serving")
    proc.kill()
    proc.wait()
    _until(lambda: not any(_alive(pid) for pid in _workers(out)))


def test_a_worker_that_cannot_start_fails_the_start_and_stops_the_others(tmp_path: Path) -> None:
    proc = _start(tmp_path, fail_index=1)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "failed: worker 1 exited before it served (exited with status 3)" in output
    for pid in _workers(tmp_path):
        _until(lambda pid=pid: not _alive(pid))  # type: ignore[misc]
