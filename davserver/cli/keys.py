"""`davserver keys`: encryption master keys (docs/encryption.md).

davserver keys generate FILE   # a new random key: 64 hex digits, mode 0600;
                               # refuses to overwrite FILE; needs no store
davserver keys status          # the current key id, the store's, and how many
                               # chunks are stored in each form (codec, key id)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from davserver.app import Services
from davserver.cli.output import CommandError
from davserver.encryption import STORE_KEY_SETTING, write_new_key
from providers.codec import MasterKey

COMMANDS = ("keys",)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `keys generate|status` on `sub`."""
    keys = sub.add_parser("keys", help="encryption master keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    generate = actions.add_parser("generate", parents=[common], help="write a new master key")
    generate.add_argument("file", type=Path, help="the key file to create (never overwritten)")
    actions.add_parser("status", parents=[common], help="keys in use and chunks per key")


def needs_store(args: argparse.Namespace) -> bool:
    """False for `keys generate`, which only writes a file."""
    return bool(args.keys_command != "generate")


def generate(args: argparse.Namespace) -> int:
    """Write a new master key to `args.file`; print its id and the backup warning."""
    path: Path = args.file
    try:
        key = write_new_key(path)
    except FileExistsError:
        raise CommandError(f"{path} exists; a key file is never overwritten") from None
    print(f"keys: wrote a new master key to {path} (key id {MasterKey(key).key_id}, mode 0600)")
    print(
        "keys: BACK IT UP, somewhere other than this server: without it no file stored "
        "under it can be read"
    )
    return 0


def run(args: argparse.Namespace, services: Services) -> int:
    """`keys status` (the one command here that reads a store)."""
    vault = services.files.vault
    recorded = services.catalog.users.get_setting(STORE_KEY_SETTING)
    if vault.keys is None:
        print("keys: encryption is off")
    else:
        current = vault.keys.current.key_id
        retired = [k.key_id for k in vault.keys.keys if k.key_id != current]
        print(f"keys: current key {current}; retired keys {', '.join(retired) or 'none'}")
    print(f"keys: the store's recorded key {recorded or 'none'}")
    current_id = vault.keys.current.key_id if vault.keys is not None else None
    print(f"{'codec':<13} {'key id':<26} {'chunks':>10} {'bytes':>16} {'stored':>16}")
    for codec, key_id, chunks, size, stored in services.catalog.locators.census():
        label = "-" if key_id is None else key_id
        if key_id is not None:
            label += " (current)" if key_id == current_id else " (retired)"
        print(f"{codec:<13} {label:<26} {chunks:>10} {size:>16} {stored:>16}")
    return 0
