"""How sizes read, in the CLI's tables and on the web pages alike."""

from __future__ import annotations


def human_size(size: int) -> str:
    """`512 B`, `1.5 MiB`, `2.0 GiB`: binary units, as file managers on Linux show them."""
    if size < 1024:
        return f"{size} B"
    value, units = size / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"
