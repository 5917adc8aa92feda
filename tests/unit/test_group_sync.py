"""Unit tests of `providers.blobstore.group_sync.GroupSync`."""

from __future__ import annotations

import threading
import time

from providers.blobstore.group_sync import GroupSync
from providers.errors import Unavailable


class GatedSync:
    """A sync that records when each call starts, waits for `gate`, and fails the
    calls numbered in `fail_on` (1 is the first)."""

    def __init__(self, fail_on: frozenset[int] = frozenset()) -> None:
        self.starts: list[float] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail_on = fail_on

    def __call__(self) -> None:
        self.starts.append(time.monotonic())
        self.entered.set()
        assert self.gate.wait(10)
        if len(self.starts) in self.fail_on:
            raise Unavailable(f"sync {len(self.starts)} failed")


class Callers:
    """Threads calling one `GroupSync`; `errors[n]` is what caller n got (None: ok)."""

    def __init__(self, group: GroupSync) -> None:
        self.group = group
        self.errors: dict[int, Unavailable | None] = {}
        self.threads: list[threading.Thread] = []

    def start(self, *numbers: int) -> None:
        for n in numbers:
            thread = threading.Thread(target=self._call, args=(n,))
            thread.start()
            self.threads.append(thread)

    def _call(self, n: int) -> None:
        try:
            self.group()
            self.errors[n] = None
        except Unavailable as e:
            self.errors[n] = e

    def wait_until_waiting(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while self.group.waiting < count:
            assert time.monotonic() < deadline, "the callers did not come to wait"
            time.sleep(0.005)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()


def test_a_lone_caller_syncs_each_time() -> None:
    sync = GatedSync()
    sync.gate.set()
    group = GroupSync(sync)
    group()
    group()
    assert len(sync.starts) == 2


def test_callers_arriving_during_a_sync_share_the_next_one_which_starts_after_them() -> None:
    sync = GatedSync()
    callers = Callers(GroupSync(sync))
    callers.start(0)
    assert sync.entered.wait(10)
    arrived = time.monotonic()
    callers.start(1, 2, 3, 4, 5)
    callers.wait_until_waiting(5)
    assert callers.errors == {}  # nobody returns before a sync that began after them
    sync.gate.set()
    callers.join()
    assert len(sync.starts) == 2  # one for the first caller, one for the five others
    assert sync.starts[1] > arrived
    assert callers.errors == {n: None for n in range(6)}


def test_a_failed_sync_fails_exactly_the_callers_it_ran_for() -> None:
    sync = GatedSync(fail_on=frozenset({2}))
    callers = Callers(GroupSync(sync))
    callers.start(0)
    assert sync.entered.wait(10)
    callers.start(1, 2, 3)
    callers.wait_until_waiting(3)
    sync.gate.set()
    callers.join()
    assert callers.errors[0] is None
    assert all(isinstance(callers.errors[n], Unavailable) for n in (1, 2, 3))
    callers.group()  # the next round runs again
    assert len(sync.starts) == 3
