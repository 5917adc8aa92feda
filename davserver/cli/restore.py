"""`davserver restore`: a file or a whole folder back as it was at a moment.

    davserver restore PATH --owner U --at TIME [--to PATH]

PATH is in the owner's home; TIME is UTC to the second (`2026-12-01T10:00:00Z`; an ISO
time with an offset is converted, one without is UTC) and means the end of that
second, as the snapshots at `/snapshots/<TIME>/` show it. What was at PATH then is
restored at PATH itself, or at `--to`: missing folders are made, files whose content
differs get the old one back (the current one becomes a version), files made after
TIME are left alone; no byte is copied (`providers.operations.restore`). Every change
goes through the operations layer as the owner (rights, locks, change log, events).
Progress is shown on stderr when it is a terminal; a one-line summary ends it, then a
line for each path skipped (exit status 1 when any was).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Iterable, Sequence
from typing import TypeVar

from tqdm import tqdm

from davserver.app import Services
from davserver.cli.output import CommandError
from providers.operations import Actor
from providers.operations.snapshots import moment_name, parse_moment

COMMANDS = ("restore",)
T = TypeVar("T")


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `restore` on `sub`."""
    cmd = sub.add_parser(
        "restore", parents=[common], help="restore a file or folder as it was at a moment"
    )
    cmd.add_argument("path", help="the path in the owner's home, e.g. /projects/q3")
    cmd.add_argument("--owner", required=True, metavar="USER", help="whose home")
    cmd.add_argument(
        "--at", required=True, metavar="TIME", help="UTC, to the second: 2026-12-01T10:00:00Z"
    )
    cmd.add_argument("--to", metavar="PATH", help="restore there instead of at PATH")


def cutoff_of(text: str) -> float:
    """The end of the second `text` names (see the module docstring)."""
    cutoff = parse_moment(text)
    if cutoff is not None:
        return cutoff
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a time: {text!r} (use e.g. 2026-12-01T10:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return float(int(moment.timestamp()) + 1)


def run(args: argparse.Namespace, services: Services) -> int:
    user = services.catalog.users.get(args.owner)
    if user is None:
        raise CommandError(f"no such user: {args.owner!r}")
    cutoff = cutoff_of(args.at)
    report = services.ops.restore_snapshot(
        Actor(user), args.path, cutoff, to=args.to, progress=_progress
    )
    where = args.to or args.path
    print(
        f"restore: {args.path} as at {moment_name(cutoff - 1)} into {where}: "
        f"{report.folders} folders made, {report.files} files restored, "
        f"{report.unchanged} already as they were, {len(report.skipped)} skipped"
    )
    for path, reason in report.skipped:
        print(f"skipped: {path}: {reason}")
    return 1 if report.skipped else 0


def _progress(items: Sequence[T]) -> Iterable[T]:
    quiet = not sys.stderr.isatty()
    bar: Iterable[T] = tqdm(
        items, desc="restore", unit="", file=sys.stderr, leave=False, disable=quiet
    )
    return bar
