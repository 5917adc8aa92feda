"""Master keys for encryption at rest: read from key files, or generated on first start.

`load_keys(settings, catalog, purpose)` returns the `KeyRing` the codec layer seals
and opens chunks with, or None when encryption is off. The current key comes from
`encryption_key_file`, else (with `encryption = true`) from `<data_dir>/encryption.key`,
which a server (`purpose` "serve") generates on first start, mode 0600, with a loud
note to back it up. Retired keys (`encryption_old_key_files`) are still read.

What keeps a wrong key from doing harm: the catalog records the id of the key the
store is encrypted under (`encryption_key_id`); a process whose ring lacks it refuses
to start (a second instance with a freshly generated key of its own, a lost key
file), and a key is never generated while any chunk is sealed. After a rotation the
record moves to the new key once the old one is in the ring.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from davserver.settings import Settings, SettingsError
from providers.catalog import Catalog
from providers.codec import KeyRing, parse_master_key

KEY_FILE = "encryption.key"
STORE_KEY_SETTING = "encryption_key_id"
log = logging.getLogger(__name__)


def load_keys(settings: Settings, catalog: Catalog, purpose: str = "serve") -> KeyRing | None:
    """The key ring for `settings`, checked against the store (see the module doc);
    `SettingsError` with a one-line reason when a key is missing or malformed."""
    if not settings.encrypts:
        if catalog.locators.key_ids():
            raise SettingsError(
                "encryption: the store has encrypted chunks; set encryption_key_file "
                "(or encryption = true with the data dir's encryption.key) to read them"
            )
        return None
    if settings.encryption_key_file:
        current = _read(Path(settings.encryption_key_file))
    else:
        current = _generated_key(settings.data_dir, catalog, create=purpose == "serve")
    retired = [p.strip() for p in settings.encryption_old_key_files.split(",") if p.strip()]
    ring = KeyRing(current, [_read(Path(p)) for p in retired])
    _check_store(ring, catalog)
    return ring


def _read(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"encryption key file {path}: cannot read it: {e}") from e
    try:
        return parse_master_key(text)
    except ValueError as e:
        raise SettingsError(f"encryption key file {path}: {e}") from e


def _generated_key(data_dir: Path, catalog: Catalog, *, create: bool) -> bytes:
    """The data dir's key; made now if there is none, nothing is sealed yet and
    `create` (a server's first start with `encryption = true`)."""
    path = data_dir / KEY_FILE
    if path.exists():
        return _read(path)
    if not create or catalog.users.get_setting(STORE_KEY_SETTING) or catalog.locators.key_ids():
        raise SettingsError(
            f"encryption: no key at {path} (set encryption_key_file to the store's key)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        key = write_new_key(path)
    except FileExistsError:  # another process on this data dir made it just now
        return _generated_key(data_dir, catalog, create=False)
    note = (
        f"Generated the encryption master key {path}. BACK IT UP NOW, somewhere other "
        "than this server: without it no file stored from now on can be read."
    )
    log.warning("%s", note)
    print(note, file=sys.stderr, flush=True)
    return key


def write_new_key(path: Path) -> bytes:
    """A new random master key, written to `path` as 64 hex digits with mode 0600 and
    synced; `FileExistsError` if `path` exists. The key is written whole under a
    temporary name and then hard-linked into place, which never replaces a file: the
    key a file holds may be the only one that reads a store, and nobody ever reads a
    half-written key."""
    key = secrets.token_bytes(32)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(key.hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return key


def _check_store(ring: KeyRing, catalog: Catalog) -> None:
    """Refuse a ring that lacks the store's key or a key chunks are sealed under."""
    held = {key.key_id for key in ring.keys}
    recorded = catalog.users.ensure_setting(STORE_KEY_SETTING, ring.current.key_id)
    lacking = (catalog.locators.key_ids() | {recorded}) - held
    if lacking:
        raise SettingsError(
            f"encryption: the store is encrypted under key {', '.join(sorted(lacking))}, "
            f"which is not configured (this key is {ring.current.key_id}); set "
            "encryption_key_file to it, or add it to encryption_old_key_files"
        )
    if recorded != ring.current.key_id:
        catalog.users.set_setting(STORE_KEY_SETTING, ring.current.key_id)
