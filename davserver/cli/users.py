"""`davserver user ...` and `davserver group ...`: accounts, quotas, app passwords, groups.

    davserver user add NAME [--password-stdin]
    davserver user passwd NAME [--password-stdin]
    davserver user remove NAME [--purge]
    davserver user list
    davserver user quota NAME SIZE               # 10G, 500M, 1T, 1048576, or none
    davserver user app-password NAME [--label L] # prints a new password once
    davserver user app-password NAME --list | --revoke ID
    davserver group add|remove NAME
    davserver group list
    davserver group members NAME [--add USER]... [--remove USER]...

Passwords are read from stdin with `--password-stdin`, else prompted for on a
terminal; with neither (or an empty answer) one is generated and printed once.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import re
import sys
from collections.abc import Sequence

from davserver.app import Services
from davserver.auth import passwords
from davserver.auth.domain import account_secrets
from providers.catalog.records import DigestSecret
from providers.errors import Conflict

_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)
REMOVE_HELP = (
    "delete a user with their app passwords and group memberships; refused while they "
    "own files unless --purge, which deletes their whole home in the same transaction "
    "(the chunks are freed by the next `davserver gc --apply`)"
)


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


def format_time(at: float) -> str:
    """Local time to the second, as tables show it."""
    return datetime.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


def format_size(size: int | None) -> str:
    """`512 B`, `1.5 GiB`...; `none` for None (no quota)."""
    if size is None:
        return "none"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Register `user` and `group` with their subcommands on `sub`."""
    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True
    )
    for name, text in (("add", "create a user"), ("passwd", "set a user's password")):
        cmd = user.add_parser(name, parents=[common], help=text)
        cmd.add_argument("name")
        cmd.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    remove = user.add_parser("remove", parents=[common], help=REMOVE_HELP, description=REMOVE_HELP)
    remove.add_argument("name")
    remove.add_argument("--purge", action="store_true", help="also delete all their files")
    user.add_parser("list", parents=[common], help="list users, usage and quotas")
    quota = user.add_parser("quota", parents=[common], help="set a quota (binary units)")
    quota.add_argument("name")
    quota.add_argument("size", help="10G, 500M, 1T, plain bytes, or none")
    app = user.add_parser(
        "app-password", parents=[common], help="per-device passwords (Basic auth only)"
    )
    app.add_argument("name")
    what = app.add_mutually_exclusive_group()
    what.add_argument("--label", default="", help="what the new password is for")
    what.add_argument("--list", action="store_true", help="list them instead")
    what.add_argument("--revoke", type=int, metavar="ID", help="revoke one instead")
    group = sub.add_parser("group", help="manage groups").add_subparsers(
        dest="group_command", required=True
    )
    for name, text in (("add", "create a group"), ("remove", "delete a group")):
        group.add_parser(name, parents=[common], help=text).add_argument("name")
    group.add_parser("list", parents=[common], help="list groups")
    members = group.add_parser("members", parents=[common], help="list or change members")
    members.add_argument("name")
    members.add_argument("--add", action="append", default=[], metavar="USER")
    members.add_argument("--remove", action="append", default=[], metavar="USER")


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated) following the module docstring's rules."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("empty password on stdin")
        return password, False
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name} (empty: generate one): ")
        if password:
            if getpass.getpass("Repeat it: ") != password:
                raise CommandError("the passwords do not match")
            return password, False
    return passwords.generate_password(), True


def _secrets(
    args: argparse.Namespace, services: Services
) -> tuple[str, bool, tuple[str, DigestSecret | None]]:
    """(password, generated, what the catalog stores for it)."""
    password, generated = _read_password(args)
    try:
        stored = account_secrets(args.name, password, digest=services.settings.digest_auth)
    except ValueError as e:
        raise CommandError(str(e)) from e
    return password, generated, stored


def run_user(args: argparse.Namespace, services: Services) -> int:
    """Run one `davserver user` subcommand; print results on stdout."""
    users = services.catalog.users
    command = args.user_command
    if command in ("add", "passwd"):
        password, generated, stored = _secrets(args, services)
        if command == "add":
            users.create(args.name, *stored)
        else:
            users.set_password(args.name, *stored)
        verb = "Created user" if command == "add" else "Set the password of"
        print(f"{verb} {args.name!r}" + (f" with password: {password}" if generated else ""))
    elif command == "remove":
        removed = users.remove(args.name, purge=args.purge)
        extra = f" and {removed} of their files and folders" if removed else ""
        print(f"Removed user {args.name!r}{extra}")
    elif command == "list":
        print(f"{'NAME':<24} {'USED':>10} {'QUOTA':>10}  DIGEST")
        for user in users.all():
            digest = "yes" if user.digest else "no"
            used, quota = format_size(user.used_bytes), format_size(user.quota_bytes)
            print(f"{user.name:<24} {used:>10} {quota:>10}  {digest}")
    elif command == "quota":
        size = parse_size(args.size)
        users.set_quota(args.name, size)
        print(f"Quota of {args.name!r}: {format_size(size)}")
    else:
        _app_password(args, services)
    return 0


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


def _app_password(args: argparse.Namespace, services: Services) -> None:
    apps = services.catalog.app_passwords
    if args.list:
        print(f"{'ID':>5}  {'CREATED':<19}  {'LAST USED':<19}  {'STATE':<7}  LABEL")
        for app in apps.of_user(args.name):
            state = "revoked" if app.revoked else "active"
            print(
                f"{app.id:>5}  {_when(app.created_at):<19}  {_when(app.last_used_at):<19}  "
                f"{state:<7}  {app.label}"
            )
        return
    if args.revoke is not None:
        apps.revoke(args.name, args.revoke)
        print(f"Revoked app password {args.revoke} of {args.name!r}")
        return
    for attempt in range(5):
        key_id, password = passwords.generate_app_password()
        try:
            app = apps.add(args.name, key_id, passwords.hash_password(password), args.label)
            break
        except Conflict:  # the user already has this key id (1 in 33 million)
            if attempt == 4:
                raise
    label = f", {app.label}" if app.label else ""
    print(f"App password {app.id} for {args.name!r}{label} (shown once): {password}")
    print("It works with HTTP Basic authentication only; revoke it with --revoke.")


def run_group(args: argparse.Namespace, services: Services) -> int:
    """Run one `davserver group` subcommand; print results on stdout."""
    groups = services.catalog.groups
    command = args.group_command
    if command == "add":
        groups.create(args.name)
        print(f"Created group {args.name!r}")
    elif command == "remove":
        groups.remove(args.name)
        print(f"Removed group {args.name!r}")
    elif command == "list":
        for name in groups.names():
            print(name)
    else:
        for user in args.add:
            groups.add_member(args.name, user)
        for user in args.remove:
            groups.remove_member(args.name, user)
        for user in groups.members(args.name):
            print(user)
    return 0
