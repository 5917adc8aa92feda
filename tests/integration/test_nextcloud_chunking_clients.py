"""The real clients' chunked uploads (docs/nextcloud.md, "Chunked uploads"):
nextcloudcmd and owncloudcmd with small chunks, and rclone's `nextcloud` vendor
(copy, check with hashes, an upload killed and restarted). Each asserts from the
access log that the file went through `/remote.php/dav/uploads/` (MKCOL, chunk PUTs,
MOVE .file), and reads it back through `/dav/` by SHA-256; a sync client killed
mid-file resumes its upload folder (PROPFIND) instead of starting over."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.clients import rclone_binary
from tests.support.servers import RunningServer
from tests.support.sync_clients import SMALL_CHUNKS, sync_command, sync_ok

MIB = 1024 * 1024
UPLOADS = "/remote.php/dav/uploads/admin/"


def random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`; their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MIB))
            out.write(block)
            sha.update(block)
            left -= len(block)
    return sha.hexdigest()


def served_sha256(server: RunningServer, path: str) -> str:
    got = server.client().get(server.url(path), stream=True)
    assert got.status_code == 200
    sha = hashlib.sha256()
    for block in got.iter_content(MIB):
        sha.update(block)
    return sha.hexdigest()


def chunked_requests(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The access log's `METHOD path` of requests to the uploads folder."""
    lines = [r.getMessage() for r in caplog.records if r.name == "davserver.access"]
    return [line.split('"')[1] for line in lines if f" {UPLOADS}" in line]


def assert_chunked(caplog: pytest.LogCaptureFixture, chunks_at_least: int) -> None:
    seen = chunked_requests(caplog)
    methods = [line.split()[0] for line in seen]
    assert "MKCOL" in methods and methods.count("PUT") >= chunks_at_least, seen[:20]
    assert any(line.startswith("MOVE ") and line.endswith("/.file") for line in seen), seen


@pytest.mark.parametrize("kind", ["nextcloud", "owncloud"])
def test_sync_clients_upload_20_mib_in_chunks(
    server: RunningServer, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="davserver.access")
    local = tmp_path / "local"
    digest = random_file(local / "big" / "twenty.bin", 20 * MIB)
    password = server.users["admin"]
    sync_ok(kind, local, server.base, "admin", password, home=tmp_path / "home", env=SMALL_CHUNKS)
    assert served_sha256(server, "big/twenty.bin") == digest
    assert_chunked(caplog, 10)


@pytest.mark.parametrize("kind", ["nextcloud", "owncloud"])
def test_sync_clients_resume_a_killed_upload_by_propfind(
    make_server: object, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="davserver.access")
    server: RunningServer = make_server("embedded")  # type: ignore[operator]
    local, home = tmp_path / "local", tmp_path / "home"
    digest = random_file(local / "twenty.bin", 20 * MIB)  # 10 chunks of 2 MiB
    password = server.users["admin"]
    slow = ("--uplimit", "4000")  # KB/s: the kill comes mid-file
    command, env = sync_command(
        kind, local, server.base, "admin", password, home=home, env=SMALL_CHUNKS, options=slow
    )
    running = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _puts(chunked_requests(caplog)) < 3:
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)
    running.wait(timeout=30)
    folder = next(line.split()[1] for line in chunked_requests(caplog) if line.startswith("MKCOL"))
    caplog.clear()
    sync_ok(kind, local, server.base, "admin", password, home=home, env=SMALL_CHUNKS)
    resumed = chunked_requests(caplog)
    assert f"PROPFIND {folder}" in resumed and not any(r.startswith("MKCOL") for r in resumed)
    assert f"PUT {folder}/{0:016d}" not in resumed  # what the server had is not sent again
    assert resumed[-1] == f"MOVE {folder}/.file"
    assert served_sha256(server, "twenty.bin") == digest


def _puts(requests: list[str]) -> int:
    return sum(line.startswith("PUT ") for line in requests)


def rclone_env(server: RunningServer, scratch: Path) -> dict[str, str]:
    """A clean environment with one remote `nc:`: /remote.php/dav/files/admin with the
    nextcloud vendor and 8 MiB chunks (no user config, cache or RCLONE_* leaks in)."""
    obscured = subprocess.run(
        [rclone_binary(), "obscure", server.users["admin"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
    return env | {
        "HOME": str(scratch),
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CACHE_DIR": str(scratch / "cache"),
        "RCLONE_CONFIG_NC_TYPE": "webdav",
        "RCLONE_CONFIG_NC_URL": f"{server.base}/remote.php/dav/files/admin",
        "RCLONE_CONFIG_NC_VENDOR": "nextcloud",
        "RCLONE_CONFIG_NC_USER": "admin",
        "RCLONE_CONFIG_NC_PASS": obscured,
        "RCLONE_CONFIG_NC_NEXTCLOUD_CHUNK_SIZE": "8Mi",
    }


def rclone(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [rclone_binary(), "--retries", "1", "--low-level-retries", "1", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def small_tree(root: Path) -> None:
    for i in range(5):
        (root / "tree" / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / "tree" / f"d{i % 2}" / f"f{i}.txt").write_bytes(os.urandom(1000 * i + 1))
    random_file(root / "tree" / "nine.bin", 9 * MIB)


@pytest.mark.slow
def test_rclone_nextcloud_vendor_copies_and_checks_in_chunks(
    make_server: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="davserver.access")
    server: RunningServer = make_server("embedded")  # type: ignore[operator]
    env = rclone_env(server, tmp_path / "rclone")
    source = tmp_path / "source"
    digest = random_file(source / "hundred.bin", 100 * MIB)
    small_tree(source)
    copied = rclone(env, "copy", str(source), "nc:up")
    assert copied.returncode == 0, copied.stderr[-3000:]
    assert served_sha256(server, "up/hundred.bin") == digest
    assert_chunked(caplog, 13)
    checked = rclone(env, "check", str(source), "nc:up")  # SHA-1 from oc:checksums
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "0 differences found" in checked.stderr, checked.stderr[-3000:]
    assert "7 matching files" in checked.stderr, checked.stderr[-3000:]
    assert "hashes could not be checked" not in checked.stderr, checked.stderr[-3000:]
    listed = rclone(env, "lsjson", "--hash", "nc:up/hundred.bin")
    assert hashlib.sha1((source / "hundred.bin").read_bytes()).hexdigest() in listed.stdout


def test_rclone_upload_killed_and_restarted_finishes_equal(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="davserver.access")
    env = rclone_env(server, tmp_path / "rclone")
    source = tmp_path / "source"
    digest = random_file(source / "forty.bin", 40 * MIB)
    command = [rclone_binary(), "--bwlimit", "16M", "copy", str(source), "nc:cut"]
    running = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _puts(chunked_requests(caplog)) < 1:
        time.sleep(0.1)
    running.send_signal(signal.SIGKILL)  # mid-transfer: a chunk stored, the file not
    running.wait(timeout=30)
    assert server.client().get(server.url("cut/forty.bin")).status_code == 404
    again = rclone(env, "copy", str(source), "nc:cut")
    assert again.returncode == 0, again.stderr[-3000:]
    assert served_sha256(server, "cut/forty.bin") == digest
    checked = rclone(env, "check", str(source), "nc:cut")
    assert checked.returncode == 0, checked.stderr[-3000:]
