"""Naming rules, applied once at the edge (DESIGN invariant 7).

Names are stored exactly as the client spelled them and matched normalised: every
lookup and the uniqueness of a name within its folder compare `name_key` (the NFC
form). macOS Finder and davfs2 create files with NFD names and must find those very
bytes in the listing, or they take their own files for strangers (davfs2 moves them
to lost+found); and a second spelling of an existing name is the same entry, never an
invisible twin. Names are compared case-sensitively. A name may not be empty, '.',
'..', contain '/' or NUL, or exceed `MAX_NAME_BYTES` in UTF-8 (as given); a path may
not exceed `MAX_PATH_BYTES`.
"""

from __future__ import annotations

import unicodedata

from providers.errors import InvalidName

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_FORBIDDEN = ("/", "\x00")


def check_name(name: str) -> str:
    """Return `name` unchanged if it is a valid name; raise `InvalidName` otherwise."""
    if name in ("", ".", ".."):
        raise InvalidName(f"invalid name: {name!r}")
    if any(ch in name for ch in _FORBIDDEN):
        raise InvalidName("name contains '/' or NUL")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidName("name is not valid UTF-8") from e
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidName(f"name longer than {MAX_NAME_BYTES} bytes")
    return name


def name_key(name: str) -> str:
    """The form names are matched by: NFC. Two spellings with one key are one entry."""
    return unicodedata.normalize("NFC", name)


def split_path(path: str) -> list[str]:
    """Split a '/'-separated path into validated names as given ('' and '/' give [])."""
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InvalidName("path is not valid UTF-8") from e
    if size > MAX_PATH_BYTES:
        raise InvalidName(f"path longer than {MAX_PATH_BYTES} bytes")
    return [check_name(part) for part in path.strip("/").split("/") if part]
