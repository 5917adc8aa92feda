"""`davserver group ...`: named sets of users that grants may name (`@team`).

davserver group add|remove NAME
davserver group list
davserver group members NAME [--add USER]... [--remove USER]...
"""

from __future__ import annotations

import argparse

from davserver.app import Services

COMMANDS = ("group",)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `group` and its subcommands on `sub`."""
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


def run(args: argparse.Namespace, services: Services) -> int:
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
