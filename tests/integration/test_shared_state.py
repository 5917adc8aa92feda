"""Two servers on one embedded store (SQLite and a local blob directory, no Redis), as
the worker processes of one server are: locks, failed-login counts and Login Flow v2
flows live in the catalog, so what one takes or counts, the other honours. (The same
cases on the full stack, through Redis: `test_instances.py`,
`test_nextcloud_login_flow.py`.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.test_instances import test_lock_taken_on_a_is_honoured_by_b as lock_case
from tests.integration.test_nextcloud_login_flow import (
    test_a_flow_works_across_instances as flow_case,
)
from tests.support.servers import RunningServer, embedded_settings, two_instances


@pytest.fixture
def embedded_pair(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    settings = embedded_settings(tmp_path / "davdata", login_failures_per_user=2)
    with two_instances(settings) as both:
        yield both


def test_a_lock_taken_on_one_is_honoured_by_the_other(
    embedded_pair: tuple[RunningServer, RunningServer],
) -> None:
    lock_case(embedded_pair)


def test_a_login_flow_started_on_one_completes_on_the_other(
    embedded_pair: tuple[RunningServer, RunningServer],
) -> None:
    flow_case(embedded_pair)


def test_failed_logins_on_one_block_the_name_on_the_other(
    embedded_pair: tuple[RunningServer, RunningServer],
) -> None:
    first, second = embedded_pair
    first.add_user("bob", "bob-pass")
    for _ in range(2):
        wrong = requests.get(first.url("/"), auth=("bob", "wrong"), timeout=10)
        assert wrong.status_code == 401
    refused = requests.get(second.url("/"), auth=("bob", "bob-pass"), timeout=10)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
