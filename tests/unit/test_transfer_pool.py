"""The push/pull client's task pool (`davserver.cli.sync._Pool`): the first failure
stops the queue at once, not at the caller's next `submit` or `wait`."""

from __future__ import annotations

import threading

import pytest

from davserver.cli.sync import _Pool


class Boom(Exception):
    pass


def test_the_first_failure_cancels_the_tasks_not_started() -> None:
    ran: list[int] = []
    release = threading.Event()

    def fail() -> int:
        release.wait(5)
        raise Boom

    def record(n: int) -> int:
        ran.append(n)
        return n

    with pytest.raises(Boom), _Pool(1) as pool:
        pool.submit(fail)
        for n in range(1, 20):
            pool.submit(record, n)  # queued behind the failing task
        release.set()
        pool.wait()
    assert ran == []  # none started after the failure


def test_without_a_failure_every_task_runs() -> None:
    with _Pool(2) as pool:
        for n in range(1, 20):
            pool.submit(lambda n=n: n)
        pool.wait()
    assert pool.count == 19 and pool.bytes == sum(range(1, 20))
