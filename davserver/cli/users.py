"""`davserver user ...`: accounts, quotas, app passwords.

    davserver user add NAME [--password-stdin]
    davserver user passwd NAME [--password-stdin]
    davserver user remove NAME [--purge]
    davserver user list
    davserver user quota NAME SIZE               # 10G, 500M, 1T, 1048576, or none
    davserver user app-password NAME [--label L] # prints a new password once
    davserver user app-password NAME --list | --revoke ID

Passwords are read from stdin with `--password-stdin`, else prompted for on a
terminal; with neither (or an empty answer) one is generated and printed once.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from davserver.app import Services
from davserver.auth import initial_password, passwords
from davserver.auth.domain import account_secrets
from davserver.cli.output import CommandError, format_size, format_time, parse_size
from providers.catalog import DigestSecret

COMMANDS = ("user",)
REMOVE_HELP = (
    "delete a user with their app passwords and group memberships; refused while they "
    "own files unless --purge, which deletes their whole home in the same transaction "
    "(the chunks are freed by the next `davserver gc --apply`)"
)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `user` and its subcommands on `sub`."""
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


def run(args: argparse.Namespace, services: Services) -> int:
    """Run one `davserver user` subcommand; print results on stdout."""
    users = services.catalog.users
    command = args.user_command
    if command in ("add", "passwd"):
        password, generated, stored = _secrets(args, services)
        if command == "add":
            users.create(args.name, *stored)
        else:
            users.set_password(args.name, *stored)
            _forget_initial(args.name, services)
        verb = "Created user" if command == "add" else "Set the password of"
        print(f"{verb} {args.name!r}" + (f" with password: {password}" if generated else ""))
    elif command == "remove":
        removed = users.remove(args.name, purge=args.purge)
        _forget_initial(args.name, services)
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


def _forget_initial(name: str, services: Services) -> None:
    """The first admin's generated password stops being kept once it is changed."""
    if name == initial_password.ADMIN and initial_password.forget(services.settings.data_dir):
        print(f"Deleted {initial_password.path(services.settings.data_dir)}")


def _app_password(args: argparse.Namespace, services: Services) -> None:
    apps = services.catalog.app_passwords
    if args.list:
        print(f"{'ID':>5}  {'CREATED':<19}  {'LAST USED':<19}  {'STATE':<7}  LABEL")
        for app in apps.of_user(args.name):
            state = "revoked" if app.revoked else "active"
            created, used = format_time(app.created_at), format_time(app.last_used_at)
            print(f"{app.id:>5}  {created:<19}  {used:<19}  {state:<7}  {app.label}")
        return
    if args.revoke is not None:
        apps.revoke(args.name, args.revoke)
        print(f"Revoked app password {args.revoke} of {args.name!r}")
        return
    app, password = passwords.issue_app_password(apps, args.name, args.label)
    label = f", {app.label}" if app.label else ""
    print(f"App password {app.id} for {args.name!r}{label} (shown once): {password}")
    print("It works with HTTP Basic authentication only; revoke it with --revoke.")
