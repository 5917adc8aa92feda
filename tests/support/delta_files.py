"""Files for the delta protocol's tests and benchmark (`davserver push`/`pull`):
deterministic pseudo-random data written as a stream (memory stays at one piece),
an in-place edit of 1 MiB, and a file's SHA-256 read as a stream."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

MIB = 2**20
_PIECE = 4 * MIB


def write_data(path: Path, size: int, seed: str = "delta") -> Path:
    """`size` bytes for `seed` at `path` (same seed and size, same bytes); `path`."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for start in range(0, size, _PIECE):
            out.write(rng.randbytes(min(_PIECE, size - start)))
    return path


def edit_middle(path: Path, size: int = MIB, seed: str = "edit") -> None:
    """Overwrite `size` bytes in the middle of the file at `path` with other bytes
    (its length stays)."""
    length = path.stat().st_size
    with path.open("r+b") as out:
        out.seek(max(0, length // 2 - size // 2))
        out.write(random.Random(seed).randbytes(min(size, length)))


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
