"""What every command shares: its error, and how values are read and printed."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from davserver.formats import human_size

_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)


class CommandError(Exception):
    """A command cannot do what was asked; the message is shown as is."""


def parse_size(text: str) -> int | None:
    """Bytes for `10G`, `500M`, `1.5T`, `2GiB`, `4096` (binary multiples); None for
    `none`/`unlimited`. `CommandError` for anything else."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise CommandError(f"not a size: {text!r} (use e.g. 10G, 500M, 1T, 4096 or none)")
    return int(float(match.group(1)) * 1024 ** _UNITS[match.group(2).upper()])


def text_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a table (the first row is the header): every column as wide as its
    widest value but the last, which is left ragged (paths and URLs go there)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(v.ljust(w) for v, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def format_time(at: float | None) -> str:
    """Local time to the second, as tables show it; `-` for never."""
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


def format_size(size: int | None) -> str:
    """`512 B`, `1.5 GiB`...; `none` for None (no quota)."""
    return "none" if size is None else human_size(size)
