"""The `davserver` command line: one module per command group, each with `COMMANDS`,
`add_parsers(sub, common)` and `run(args, services)`.

    davserver serve [--config F] [--host H] [--port P] [--data-dir D]
                    [--certfile F --keyfile F]                        (serve)
    davserver user add|passwd|remove|list|quota|app-password ...     (users)
    davserver group add|remove|list|members ...                      (groups)
    davserver grant|revoke PATH --owner U --to USER|@GROUP [--perm r|rw]   (grants)
    davserver grants list [--owner U]
    davserver share create|list|revoke ...                           (shares)
    davserver gc [--apply] [--grace SECONDS] | fsck [--deep]         (maintenance)
    davserver db upgrade|current                                     (db)

Every command reads the same settings (file, then `DAVSERVER_*` environment, then
flags). A failure prints one line on stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import ModuleType

from davserver.app import build_services
from davserver.cli import db, grants, groups, maintenance, serve, shares, users
from davserver.cli.output import CommandError
from davserver.settings import Settings, SettingsError, load
from providers.errors import StorageError

GROUPS: tuple[ModuleType, ...] = (serve, users, groups, grants, shares, maintenance, db)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML config file (env overrides it)")
    common.add_argument("--data-dir", help="data directory of the embedded store")
    parser = argparse.ArgumentParser(prog="davserver", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub, common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    flags = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "certfile": getattr(args, "certfile", None),
        "keyfile": getattr(args, "keyfile", None),
    }
    return load(getattr(args, "config", None), overrides=flags)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    group = next(g for g in GROUPS if args.command in g.COMMANDS)
    try:
        settings = _settings(args)
        if group is db:  # the schema itself: before (and without) the services
            return int(db.run(args, settings))
        # Only `serve` creates a store (davserver.store); admin commands need one.
        services = build_services(settings, purpose="serve" if group is serve else "admin")
        try:
            return int(group.run(args, services))
        finally:
            services.close()
    except (SettingsError, StorageError, CommandError, OSError) as e:
        print(f"davserver: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
