"""Naming rules, applied once at the edge (DESIGN invariant 7).

Names are stored NFC-normalised (macOS sends NFD; one form everywhere keeps lookups
and listings consistent) and compared case-sensitively. A name may not be empty,
'.', '..', contain '/' or NUL, or exceed `MAX_NAME_BYTES` in UTF-8; a path may
not exceed `MAX_PATH_BYTES`.
"""

from __future__ import annotations

import unicodedata

from providers.errors import InvalidName

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_FORBIDDEN = ("/", "\x00")


def normalize_name(name: str) -> str:
    """Return the stored form of `name`, or raise `InvalidName`."""
    if name in ("", ".", ".."):
        raise InvalidName(f"invalid name: {name!r}")
    if any(ch in name for ch in _FORBIDDEN):
        raise InvalidName("name contains '/' or NUL")
    normalized = unicodedata.normalize("NFC", name)
    try:
        encoded = normalized.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidName("name is not valid UTF-8") from e
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidName(f"name longer than {MAX_NAME_BYTES} bytes")
    return normalized


def split_path(path: str) -> list[str]:
    """Split a '/'-separated path into normalised names ('' and '/' give [])."""
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidName("path is not valid UTF-8") from e
    if size > MAX_PATH_BYTES:
        raise InvalidName(f"path longer than {MAX_PATH_BYTES} bytes")
    return [normalize_name(part) for part in path.strip("/").split("/") if part]
