"""litmus (Debian `litmus`), all five suites, against a live server on both stacks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import RunningServer

SUITES = ["basic", "copymove", "props", "locks", "http"]


def test_litmus_all_suites_pass(server: RunningServer, tmp_path: Path) -> None:
    litmus = shutil.which("litmus")
    if litmus is None:
        pytest.fail("litmus is not installed (apt-get install litmus)", pytrace=False)
    result = subprocess.run(
        [litmus, server.dav, "admin", server.users["admin"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(*re.findall(r"<- summary for .*", result.stdout), sep="\n")  # kept in the test report
    summaries = dict(
        re.findall(
            r"summary for `(\w+)': of \d+ tests run: \d+ passed, (\d+) failed", result.stdout
        )
    )
    assert sorted(summaries) == sorted(SUITES), result.stdout[-3000:]
    assert all(failed == "0" for failed in summaries.values()), result.stdout[-3000:]
