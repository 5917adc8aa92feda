"""The first admin's generated password, kept in `<data_dir>/initial-admin-password`
until it is changed, so a first start that fails after printing it (a port in use)
does not lose it.

The file is created with mode 0600 in one step (`O_CREAT | O_EXCL` under a temporary
name, then renamed), so it is never readable by others, not even for a moment. It is
written to the data dir whatever the store: with PostgreSQL and S3 the data dir holds
nothing else, and is created for this file only. `davserver user passwd admin` deletes
it; a start finds it stale (and deletes it) once admin's password is another.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from davserver.auth.passwords import verify_password

FILE_NAME = "initial-admin-password"
ADMIN = "admin"


def path(data_dir: Path) -> Path:
    """Where the initial password is kept."""
    return data_dir / FILE_NAME


def write(data_dir: Path, password: str) -> Path:
    """Store `password` (mode 0600) and return the file's path; `OSError` if the data
    dir cannot be created or written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = path(data_dir)
    temporary = data_dir / f".{FILE_NAME}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(password + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def forget(data_dir: Path) -> bool:
    """Delete the file (the password was changed); True if there was one."""
    try:
        path(data_dir).unlink()
    except FileNotFoundError:
        return False
    return True


def still_initial(data_dir: Path, password_hash: str | None) -> Path | None:
    """The file's path if it exists and still holds the password of `password_hash`;
    a stale file (the password was changed some other way) is deleted."""
    target = path(data_dir)
    try:
        password = target.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        return None
    if password_hash and verify_password(password_hash, password):
        return target
    forget(data_dir)
    return None
