"""The payloads of `tests.bench.storage_cost` and its restic reference; no server here.

Every payload is deterministic on one machine (seeded, from this Python's stdlib):

- the source tree: this Python's stdlib `.py` files (no site-packages) in sorted order
  of their relative paths, as many as fit in 30 MiB, copied to a directory;
- the edited tree: a copy with 5 % of its files (seeded choice) edited: one short
  comment line inserted at a line start;
- text: the source tree's files concatenated, over and over, each pass with its
  letters permuted (a seeded bijection of a-z and of A-Z). A permutation keeps what a
  compressor sees (the same repeats, the same byte frequencies up to renaming), so the
  text compresses like source code; and no pass shares a chunk with another pass or
  with the source tree, so nothing deduplicates by accident;
- random: seeded random bytes;
- versions: a text file and 10 later versions, each with 10 small edits over the
  previous one (64 bytes at a random place replaced by 64 other letters).

`Restic` runs the `restic` command (Debian package) against a repository in a
temporary directory and reports the repository's size.
"""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path

MIB = 1024 * 1024
SOURCE_LIMIT = 30 * MIB
EDITED_SHARE = 0.05
EDITS_PER_VERSION = 10
EDIT_BYTES = 64
VERSIONS = 10  # kept old versions: the file is written 1 + VERSIONS times
WRITE_BLOCK = 8 * MIB
TEXTY = (string.ascii_letters + "      _().,=\n").encode()


def stdlib_sources(limit: int = SOURCE_LIMIT) -> list[tuple[str, Path]]:
    """(relative path, file) of this Python's stdlib `.py` files, sorted by relative
    path, the longest prefix of that list whose sizes add up to at most `limit`."""
    root = Path(sysconfig.get_path("stdlib"))
    found = sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*.py")
        if "site-packages" not in p.parts and p.is_file()
    )
    chosen, total = [], 0
    for rel, path in found:
        size = path.stat().st_size
        if total + size > limit:
            break
        chosen.append((rel, path))
        total += size
    return chosen


def copy_tree(files: list[tuple[str, Path]], dest: Path) -> list[str]:
    """Copy `files` under `dest` at their relative paths; return those paths."""
    for rel, path in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return [rel for rel, _ in files]


def edit_tree(tree: Path, rels: list[str], seed: int, share: float = EDITED_SHARE) -> list[str]:
    """Edit `share` of the files under `tree` in place (a seeded choice), one comment line
    inserted at a random line start in each; return the edited relative paths."""
    rng = random.Random(seed)
    edited = sorted(rng.sample(rels, max(1, round(len(rels) * share))))
    for rel in edited:
        path = tree / rel
        lines = path.read_bytes().splitlines(keepends=True)
        at = rng.randrange(len(lines) + 1)
        lines.insert(at, f"# edited by the storage benchmark ({rng.randrange(10**6)})\n".encode())
        path.write_bytes(b"".join(lines))
    return edited


def tree_files(tree: Path) -> list[tuple[str, Path]]:
    """(relative path, file) of every file under `tree`, sorted."""
    return sorted((p.relative_to(tree).as_posix(), p) for p in tree.rglob("*") if p.is_file())


def _permutation(rng: random.Random) -> bytes:
    """A `bytes.translate` table permuting a-z and A-Z (each among itself)."""
    lower = list(string.ascii_lowercase)
    upper = list(string.ascii_uppercase)
    rng.shuffle(lower)
    rng.shuffle(upper)
    src = (string.ascii_lowercase + string.ascii_uppercase).encode()
    return bytes.maketrans(src, "".join(lower + upper).encode())


def text_blocks(source: bytes, size: int, seed: int) -> Iterator[bytes]:
    """`size` bytes of text (see the module docstring), in pieces of at most `WRITE_BLOCK`."""
    rng = random.Random(seed)
    left = size
    while left:
        passage = source.translate(_permutation(rng))
        take = min(left, len(passage))
        for at in range(0, take, WRITE_BLOCK):
            yield passage[at : min(at + WRITE_BLOCK, take)]
        left -= take


def random_blocks(size: int, seed: int) -> Iterator[bytes]:
    """`size` seeded random bytes in pieces of at most `WRITE_BLOCK`."""
    rng = random.Random(seed)
    left = size
    while left:
        n = min(left, WRITE_BLOCK)
        yield rng.randbytes(n)
        left -= n


def write_file(path: Path, blocks: Iterator[bytes]) -> int:
    """Write `blocks` to `path`; return the size."""
    size = 0
    with open(path, "wb") as out:
        for block in blocks:
            out.write(block)
            size += len(block)
    return size


def source_text(files: list[tuple[str, Path]]) -> bytes:
    """The files' contents concatenated (the material `text_blocks` permutes)."""
    return b"".join(path.read_bytes() for _, path in files)


def write_versions(source: bytes, size: int, seed: int, dest: Path) -> list[Path]:
    """The versions workload: `dest/v00.txt` (`size` bytes of text) and `VERSIONS` later
    versions `v01.txt`... each with `EDITS_PER_VERSION` small edits over the previous."""
    rng = random.Random(seed)
    body = bytearray(b"".join(text_blocks(source, size, seed)))
    paths = []
    for number in range(1 + VERSIONS):
        if number:
            for _ in range(EDITS_PER_VERSION):
                at = rng.randrange(len(body) - EDIT_BYTES)
                body[at : at + EDIT_BYTES] = bytes(rng.choices(TEXTY, k=EDIT_BYTES))
        path = dest / f"v{number:02d}.txt"
        path.write_bytes(body)
        paths.append(path)
    return paths


def dir_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) of every regular file under `root` (apparent sizes)."""
    total = count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # a temporary file renamed away meanwhile
                continue
            count += 1
    return total, count


class Restic:
    """A restic repository (format 2: compressed, restic's default `auto` level) in
    `workdir/repo`, its cache in `workdir/cache`; the password is fixed."""

    def __init__(self, exe: str, workdir: Path) -> None:
        self.repo = workdir / "repo"
        self.env = {
            **os.environ,
            "RESTIC_REPOSITORY": str(self.repo),
            "RESTIC_PASSWORD": "storage-bench",
            "RESTIC_CACHE_DIR": str(workdir / "cache"),
        }
        self.exe = exe
        self._run("init", "--repository-version", "2")

    def _run(self, *args: str, stdin: Path | None = None, cwd: Path | None = None) -> None:
        with open(stdin if stdin is not None else os.devnull, "rb") as feed:
            done = subprocess.run(
                [self.exe, "--quiet", *args],
                env=self.env,
                stdin=feed,
                cwd=cwd,
                capture_output=True,
                text=True,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"restic {args[0]} failed ({done.returncode}): {done.stderr}")

    def backup_tree(self, tree: Path) -> None:
        """Back up the directory `tree` (as `.` from inside it: the same path each time)."""
        self._run("backup", ".", cwd=tree)

    def backup_file(self, path: Path, name: str) -> None:
        """Back up one file's content under the name `name` (from stdin)."""
        self._run("backup", "--stdin", "--stdin-filename", name, stdin=path)

    def size(self) -> int:
        """Bytes of every file in the repository."""
        return dir_bytes(self.repo)[0]
