"""`davserver versions ...` and `davserver trash ...`: a user's old versions and trash.

    davserver versions list PATH --owner U             # id, size, sha256, mtime,
                                                       # created, author; newest first
    davserver versions restore PATH --owner U --id ID  # that version becomes current
    davserver trash list --owner U                     # id, deleted, kind, size, by, path
    davserver trash restore ID --owner U [--to PATH]   # prints where it went
    davserver trash purge ID --owner U
    davserver trash empty --owner U                    # prints how many went

PATH is in the owner's view, as their WebDAV path (`/docs/a.txt`, `Shared/...`).
Each command acts as the owner through the operations layer, as the API does for a
logged-in owner: the same rights, locks, change-log entries and events (WebDAV locks
are seen where they are kept: in Redis on the full stack; the embedded server keeps
them in its own process). Errors (`providers.errors`, `CommandError`: an unknown user,
a path they do not see, an id not theirs) are one line from `davserver.cli.main`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from davserver.app import Services
from davserver.cli.output import CommandError, format_time, text_table
from providers.catalog import TrashItemRecord, VersionRecord
from providers.operations import Actor, Operations
from providers.operations.feed_view import api_kind

COMMANDS = ("versions", "trash")
OWNER_HELP = "the user whose file or trash it is (the command acts as them)"


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `versions list|restore` and `trash list|restore|purge|empty` on `sub`."""
    versions = sub.add_parser("versions", help="a file's old versions").add_subparsers(
        dest="versions_command", required=True
    )
    listing = versions.add_parser("list", parents=[common], help="list them, newest first")
    restore = versions.add_parser("restore", parents=[common], help="make one current again")
    for cmd in (listing, restore):
        cmd.add_argument("path", help="the file, e.g. /docs/report.odt")
        cmd.add_argument("--owner", required=True, metavar="USER", help=OWNER_HELP)
    restore.add_argument("--id", required=True, type=int, help="the version (see `list`)")

    trash = sub.add_parser("trash", help="a user's trash").add_subparsers(
        dest="trash_command", required=True
    )
    commands = {
        "list": "list the items, newest first",
        "restore": "put an item back where it was (or at --to)",
        "purge": "delete an item for good",
        "empty": "delete every item for good",
    }
    for name, text in commands.items():
        cmd = trash.add_parser(name, parents=[common], help=text)
        if name in ("restore", "purge"):
            cmd.add_argument("id", type=int, help="the item (see `trash list`)")
        cmd.add_argument("--owner", required=True, metavar="USER", help=OWNER_HELP)
        if name == "restore":
            cmd.add_argument("--to", metavar="PATH", help="a free path in the owner's home")


def run(args: argparse.Namespace, services: Services) -> int:
    """Run one `versions` or `trash` subcommand (per `args.command`); print on stdout."""
    ops = services.ops
    actor = owner_actor(services, args.owner)
    if args.command == "versions":
        _versions(args, ops, actor)
    else:
        _trash(args, ops, actor)
    return 0


def owner_actor(services: Services, name: str) -> Actor:
    """The account `name` as the actor of a command; `CommandError` if there is none."""
    user = services.catalog.users.get(name)
    if user is None:
        raise CommandError(f"no such user: {name!r}")
    return Actor(user)


def _versions(args: argparse.Namespace, ops: Operations, actor: Actor) -> None:
    target = ops.locate_path(actor, args.path)
    if args.versions_command == "list":
        versions = ops.versions(actor, target)
        for line in version_table(versions, _names(ops, (v.author_id for v in versions))):
            print(line)
        return
    node = ops.restore_version(actor, target, args.id)
    print(f"Restored version {args.id} of {args.path} of {actor.name!r} ({node.size} bytes)")


def _trash(args: argparse.Namespace, ops: Operations, actor: Actor) -> None:
    command = args.trash_command
    if command == "list":
        items = ops.trash_items(actor)
        for line in trash_table(items, _names(ops, (i.deleted_by for i in items))):
            print(line)
    elif command == "restore":
        path = ops.restore_trashed(actor, args.id, args.to)
        print(f"Restored item {args.id} of {actor.name!r} to {path}")
    elif command == "purge":
        ops.purge_trashed(actor, args.id)
        print(f"Purged item {args.id} from the trash of {actor.name!r}")
    else:
        count = ops.empty_trash(actor)
        print(f"Emptied the trash of {actor.name!r}: purged {count} items")


def _names(ops: Operations, user_ids: Iterable[int | None]) -> Callable[[int | None], str]:
    """User names by id, read at once (`-` for none, the id for a removed user)."""
    names = ops.catalog.users.names_by_id(user_ids)
    return lambda user_id: "-" if user_id is None else names.get(user_id, str(user_id))


def version_table(versions: list[VersionRecord], name_of: Callable[[int | None], str]) -> list[str]:
    """A header and one row per version, in the given order (sizes in bytes)."""
    rows = [("ID", "SIZE", "SHA256", "MTIME", "CREATED", "AUTHOR")]
    rows += [
        (
            str(v.id),
            str(v.size),
            v.sha256 or "-",
            format_time(v.mtime),
            format_time(v.created),
            name_of(v.author_id),
        )
        for v in versions
    ]
    return text_table(rows)


def trash_table(items: list[TrashItemRecord], name_of: Callable[[int | None], str]) -> list[str]:
    """A header and one row per item, in the given order; the path last (it may hold
    spaces)."""
    rows = [("ID", "DELETED", "KIND", "SIZE", "BY", "PATH")]
    rows += [
        (
            str(i.id),
            format_time(i.deleted),
            api_kind(i.kind),
            str(i.size),
            name_of(i.deleted_by),
            i.path,
        )
        for i in items
    ]
    return text_table(rows)
