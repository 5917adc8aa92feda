"""`davserver db ...`: the catalog's schema (docs/migrations.md).

    davserver db upgrade   # create or upgrade the schema to this release's, a line per step
    davserver db current   # the schema's revision, and whether this release needs an upgrade

Unlike the other groups, `run` gets the settings, not the services: the services need
a current schema, and these commands are how it becomes current. `db upgrade` is,
besides `serve`, the one command that creates a new store (e.g. an init step that
prepares an empty PostgreSQL database before any instance starts); `db current` never
does. Exit status of `db current`: 0 when the schema is this release's, 1 otherwise.
"""

from __future__ import annotations

import argparse

from davserver.settings import Settings
from davserver.store import current_state, open_catalog

COMMANDS = ("db",)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `db` and its subcommands on `sub`."""
    db = sub.add_parser("db", help="the catalog's schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", parents=[common], help="create or upgrade the schema")
    db.add_parser("current", parents=[common], help="show the schema's revision")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `davserver db` subcommand; print results on stdout."""
    return _upgrade(settings) if args.db_command == "upgrade" else _current(settings)


def _upgrade(settings: Settings) -> int:
    def step(revision: str, description: str) -> None:
        print(f"applied {revision}: {description.splitlines()[0]}", flush=True)

    catalog, change = open_catalog(settings, "upgrade", on_step=step)
    try:
        if not change.applied:
            print(f"catalog schema is at {change.after}, this release's: nothing to do")
        elif change.created:
            print(f"created a new store at {catalog.location}: schema at {change.after}")
        else:
            print(f"catalog schema upgraded: {change.before} -> {change.after}")
    finally:
        catalog.close()
    return 0


def _current(settings: Settings) -> int:
    state = current_state(settings)
    if state.current:
        print(f"{state.revision} (current: the schema this release needs)")
        return 0
    if not state.known:
        print(f"{state.revision} (unknown to this release, which needs {state.head})")
    else:
        print(
            f"{state.describe()} (behind: this release needs {state.head}; "
            "run `davserver db upgrade`)"
        )
    return 1
