"""The image's install steps work, without a Docker daemon: the Dockerfile's own COPY
and `pip install` lines are replayed into a fresh virtual environment (no project code
on the path but what they installed), then its CMD serves (host, port and data dir
swapped for a loopback port and a temp dir) and its HEALTHCHECK command passes against
that server. A package file left out of the wheel (a template, a static file) or a
missing dependency fails here before it fails in a container.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.services.processes import die_with_parent, stop_gracefully
from tests.support.subprocess_server import LISTENING

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
PASSWORD = "image-test-secret"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def replay_install(workdir: Path, venv: Path) -> None:
    """Copy what the Dockerfile COPYs into `workdir` (its WORKDIR) and run its pip
    installs there with `venv`'s pip."""
    for word, args in instructions():
        if word == "COPY":
            *sources, dest = shlex.split(args)
            target = workdir / dest
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, target / path.name if dest.endswith("/") else target)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target / path.name)
        elif word == "RUN" and "pip install" in args:
            for step in args.split("&&"):
                argv = shlex.split(step)
                if argv[:2] == ["pip", "install"]:
                    run([str(venv / "bin" / "python"), "-m", *argv], workdir)


def run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-3000:])
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment without this checkout on the path or any davserver setting."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("DAVSERVER_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


@pytest.mark.slow
def test_dockerfile_install_steps_serve_and_pass_the_health_check(tmp_path: Path) -> None:
    venv, workdir, data = tmp_path / "venv", tmp_path / "app", tmp_path / "data"
    workdir.mkdir()
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    replay_install(workdir, venv)
    python = str(venv / "bin" / "python")
    where = run([python, "-c", "import davserver; print(davserver.__file__)"], tmp_path)
    assert where.startswith(str(venv)), where  # the installed copy, not this checkout

    cmd = exec_form(next(args for word, args in instructions() if word == "CMD"))
    swap = {"0.0.0.0": "127.0.0.1", "8080": "0", "/data": str(data)}
    argv = [str(venv / "bin" / cmd[0]), *(swap.get(a, a) for a in cmd[1:])]
    env = {**clean_env(), "DAVSERVER_ADMIN_PASSWORD": PASSWORD}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
    try:
        port = wait_listening(proc, log)
        base = f"http://127.0.0.1:{port}"
        check = exec_form(
            next(args for word, args in instructions() if word == "HEALTHCHECK").split(" CMD ")[1]
        )
        assert check[0] == "python"
        probe = [python, *(a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in check[1:])]
        assert subprocess.run(probe, env=clean_env(), timeout=30).returncode == 0
        page = requests.get(base + "/", timeout=10)
        assert page.status_code == 200 and f"{base}/dav/" in page.text
        assert "copy.js" in page.text
        folder = requests.get(base + "/dav/", auth=("admin", PASSWORD), timeout=10)
        assert folder.status_code == 200 and "Signed in as" in folder.text
    finally:
        stop_gracefully(proc)


def wait_listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = LISTENING.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"the installed davserver did not start:\n{log.read_text()[-3000:]}")
