"""The file operations every mounted client (rclone mount, davfs2) goes through.

`exercise(mountpoint, mirror)` performs one fixed sequence of POSIX operations twice:
on the mount and on a plain local directory (the mirror). After each step the mount is
read back and compared with the mirror, so a client or server that loses or alters
bytes fails at the step that did it. Afterwards the caller flushes the client (unmount)
and compares the server with the mirror over plain HTTP (`tree.assert_same_tree`),
which proves that what the client showed was also stored.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

from tests.support.tree import build_tree, local_digests, tree_diff

MIB = 2**20
IMPORTED = "imported"  # where `cp -r` puts the client test tree

Step = Callable[[Path], None]


def _data(seed: str, size: int) -> bytes:
    """Deterministic bytes: the mount and the mirror get exactly the same content."""
    return random.Random(seed).randbytes(size)


def _run(*argv: str) -> None:
    """Runs a coreutils command; a non-zero exit fails with its stderr."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (argv, result.returncode, result.stderr[-2000:])


def _write_files(root: Path) -> None:
    """New files of several sizes (empty, small, multi-chunk) and a `mkdir -p` tree."""
    (root / "notes.txt").write_bytes(b"first line\n")
    (root / "big.bin").write_bytes(_data("big", 3 * MIB + 5))
    (root / "empty.txt").touch()
    (root / "docs/sub/deep").mkdir(parents=True)
    (root / "docs/sub/deep/readme.md").write_bytes(b"# deep\n")
    (root / "docs/sub/doc.txt").write_bytes(b"version 1\n")


def _append(root: Path) -> None:
    """Appends to a small file and to the end of a multi-chunk file."""
    with (root / "notes.txt").open("ab") as f:
        f.write(b"second line\n")
    with (root / "big.bin").open("ab") as f:
        f.write(_data("tail", 1000))


def _truncate(root: Path) -> None:
    """Shrinks and grows with `truncate -s`, overwrites with shorter content.

    `truncate -s` opens the file and calls ftruncate(2) on the descriptor, as editors
    do. (A path truncate(2) fails with EIO on rclone 1.75 while the file's first upload
    is pending: its VFS needs an uploaded object or an open writer for that.)
    """
    _run("truncate", "-s", str(MIB + 7), str(root / "big.bin"))
    (root / "grown.bin").write_bytes(b"x" * 10)
    _run("truncate", "-s", "5000", str(root / "grown.bin"))
    (root / "notes.txt").write_bytes(b"short\n")


def _rename(root: Path) -> None:
    """Renames a file within its folder and a directory holding a subtree."""
    (root / "notes.txt").rename(root / "renamed notes.txt")
    (root / "docs/sub").rename(root / "docs/moved")


def _atomic_save(root: Path) -> None:
    """An editor's save: write a temporary file, fsync it, rename it over the target."""
    target = root / "docs/moved/doc.txt"
    tmp = target.with_name(".doc.txt.tmp")
    with tmp.open("wb") as f:
        f.write(b"version 2, saved atomically\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    os.replace(root / "grown.bin", root / "big.bin")  # rename over a multi-chunk file


def _mkdir_rmdir(root: Path) -> None:
    """An empty directory that stays, and one that is created then removed."""
    (root / "empty dir").mkdir()
    (root / "gone").mkdir()
    (root / "gone").rmdir()


def _copy_in(source: Path) -> Step:
    def copy_in(root: Path) -> None:
        """`cp -r` of the client test tree into the root."""
        _run("cp", "-r", str(source), str(root / IMPORTED))

    return copy_in


def _remove_trees(root: Path) -> None:
    """`rm -r` of a directory with many files and of a renamed subtree."""
    _run("rm", "-r", str(root / IMPORTED / "many"), str(root / "docs/moved/deep"))


def _assert_same(mountpoint: Path, mirror: Path, ignore: Collection[str], step: str) -> None:
    """The mount reads back exactly like the mirror (names, types, bytes)."""
    seen = {
        name: digest
        for name, digest in local_digests(mountpoint).items()
        if name.split("/", 1)[0] not in ignore
    }
    diff = tree_diff(local_digests(mirror), seen)
    assert not diff, f"after {step}, the mount differs from the mirror:\n{diff}"


def _assert_copy_out(mountpoint: Path, source: Path, scratch: Path) -> None:
    """`cp -r` out of the mount gives back the tree that was copied in, byte for byte."""
    out = scratch / "copied-out"
    _run("cp", "-r", str(mountpoint / IMPORTED), str(out))
    diff = tree_diff(local_digests(source), local_digests(out))
    assert not diff, f"cp -r out of the mount differs from the source:\n{diff}"


def exercise(mountpoint: Path, mirror: Path, *, ignore: Collection[str] = ()) -> None:
    """Runs the whole operation sequence on `mountpoint` and on `mirror`.

    Contract: `mountpoint` is an empty mounted root; `mirror` is created (it must not
    exist yet) and ends up holding what the server must hold once the client has
    flushed. Top-level names in `ignore` are the client's own (davfs2's `lost+found`)
    and are left out when the mount is compared with the mirror. Fails (AssertionError
    or OSError) at the first operation or read-back that goes wrong.
    """
    mirror.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="mount-ops-") as tmp:
        scratch = Path(tmp)
        source = scratch / "source"
        build_tree(source, big_bytes=2 * MIB, small_files=20)
        steps: list[Step] = [
            _write_files,
            _append,
            _truncate,
            _rename,
            _atomic_save,
            _mkdir_rmdir,
            _copy_in(source),
        ]
        for step in steps:
            for root in (mountpoint, mirror):
                step(root)
            _assert_same(mountpoint, mirror, ignore, step.__name__)
        _assert_copy_out(mountpoint, source, scratch)
        for root in (mountpoint, mirror):
            _remove_trees(root)
        _assert_same(mountpoint, mirror, ignore, "rm -r")
