"""`davserver grant`, `davserver revoke` and `davserver grants list`: sharing between users.

    davserver grant PATH --owner U --to USER|@GROUP --perm r|rw
    davserver revoke PATH --owner U --to USER|@GROUP
    davserver grants list [--owner U]

PATH is the path in the owner's home (`/projects/q3`). Granting an existing grant again
changes its permission. Engine errors (no such user, group or path; the home itself;
a bad permission) come out as `providers.errors` types, which `davserver.cli.main` prints as
one line; a revoke of a grant that does not exist is a `CommandError`.
"""

from __future__ import annotations

import argparse

from davserver.app import Services
from davserver.cli.output import CommandError, format_time, text_table
from providers.catalog.records import GrantRecord
from providers.names import split_path

COMMANDS = ("grant", "revoke", "grants")
GRANTEE_HELP = "a user name, or @NAME for a group"


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `grant`, `revoke` and `grants list` on `sub`."""
    grant = sub.add_parser(
        "grant", parents=[common], help="share a file or folder (and all below it)"
    )
    revoke = sub.add_parser("revoke", parents=[common], help="withdraw a grant")
    for cmd in (grant, revoke):
        cmd.add_argument("path", help="the path in the owner's home, e.g. /projects/q3")
        cmd.add_argument("--owner", required=True, metavar="USER", help="whose file or folder")
        cmd.add_argument("--to", required=True, metavar="USER|@GROUP", help=GRANTEE_HELP)
    grant.add_argument(
        "--perm", required=True, metavar="r|rw", help="r: read only, rw: read and write"
    )
    grants = sub.add_parser("grants", help="list grants").add_subparsers(
        dest="grants_command", required=True
    )
    listing = grants.add_parser("list", parents=[common], help="owner, path, grantee, perm")
    listing.add_argument("--owner", metavar="USER", help="only the grants this user made")


def run(args: argparse.Namespace, services: Services) -> int:
    """Run `grant`, `revoke` or `grants list` (per `args.command`); print on stdout."""
    ops = services.ops
    if args.command == "grant":
        record, _created = ops.grant(args.owner, split_path(args.path), args.to, args.perm)
        print(
            f"Granted {record.perm!r} on {record.path} of {record.owner!r} "
            f"to {record.grantee} (grant {record.id})"
        )
    elif args.command == "revoke":
        if not ops.revoke(args.owner, split_path(args.path), args.to):
            raise CommandError(f"{args.owner!r} has not granted {args.path} to {args.to}")
        print(f"Revoked the grant of {args.path} of {args.owner!r} to {args.to}")
    else:
        for line in grant_table(services.catalog.grants.of_owner(args.owner)):
            print(line)
    return 0


def grant_table(records: list[GrantRecord]) -> list[str]:
    """The lines of a table: a header, then one row per grant in the given order.
    Columns are as wide as their widest value, so long paths do not shift others."""
    rows = [("OWNER", "PATH", "GRANTEE", "PERM", "CREATED")]
    rows += [(r.owner, r.path, r.grantee, r.perm, format_time(r.created_at)) for r in records]
    return text_table(rows)
