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
    davserver checksums [--apply] | reseal [--dry-run] [--recompress]
    davserver keys generate FILE | keys status                       (keys)
    davserver db upgrade|current                                     (db)
    davserver versions list|restore PATH --owner U [--id ID]         (history)
    davserver trash list|restore|purge|empty [ID] --owner U [--to P]
    davserver restore PATH --owner U --at TIME [--to PATH]          (restore)
    davserver push LOCAL REMOTE_PATH | pull REMOTE_PATH LOCAL       (transfer)
              [--server URL] [--user U] [--password-stdin]

Every command but `push` and `pull` (clients of a running server, see
`davserver.cli.transfer`) and `keys generate` (which only writes a file) reads the
same settings, so every command finds the same store: the config file named by
`--config`, else by `DAVSERVER_CONFIG`, else the first of `./davserver.toml`,
`~/.config/davserver/davserver.toml`, `/etc/davserver/davserver.toml` that exists;
then the `DAVSERVER_*` environment; then flags (`--config` and `--data-dir` are
accepted by every command, before or after its name). A failure, a bad flag
included, prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from davserver import __version__
from davserver.app import build_services
from davserver.cli import (
    db,
    grants,
    groups,
    history,
    keys,
    maintenance,
    restore,
    serve,
    shares,
    transfer,
    users,
)
from davserver.cli.output import CommandError
from davserver.settings import Settings, SettingsError, find_config, load
from providers.errors import StorageError

log = logging.getLogger("davserver.cli")
GROUPS: tuple[ModuleType, ...] = (
    serve,
    users,
    groups,
    grants,
    shares,
    maintenance,
    keys,
    db,
    history,
    restore,
    transfer,
)


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line on stderr, exit 2 (argparse's
    own prints the whole usage first, which buries the reason)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"davserver: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML config file (env overrides it)")
    common.add_argument("--data-dir", help="data directory of the embedded store")
    parser = _Parser(prog="davserver", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"davserver {__version__}")
    # Also before the command name; a subcommand's own flag wins (argparse would let
    # the subcommand's default None overwrite a shared dest, hence other names).
    parser.add_argument("--config", type=Path, dest="top_config", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", dest="top_data_dir", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub, common)
    return parser


def config_file(args: argparse.Namespace) -> Path | None:
    """The config file this command uses (see the module docstring)."""
    return find_config(getattr(args, "config", None) or args.top_config)


def _settings(args: argparse.Namespace, config: Path | None) -> Settings:
    flags = {
        "data_dir": getattr(args, "data_dir", None) or args.top_data_dir,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "certfile": getattr(args, "certfile", None),
        "keyfile": getattr(args, "keyfile", None),
    }
    return load(config, overrides=flags)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    group = next(g for g in GROUPS if args.command in g.COMMANDS)
    try:
        if group is transfer:  # a client of a running server: no settings, no store
            return transfer.run(args)
        if group is keys and not keys.needs_store(args):
            return keys.generate(args)
        config = config_file(args)
        log.info("config file: %s", config or "none (defaults and environment)")
        settings = _settings(args, config)
        if group is db:  # the schema itself: before (and without) the services
            return int(db.run(args, settings))
        # Only `serve` creates a store (davserver.store); admin commands need one.
        if group is serve:
            services = serve.start(settings, config)
        else:
            services = build_services(settings, purpose="admin")
        try:
            return int(group.run(args, services))
        finally:
            services.close()
    except (SettingsError, StorageError, CommandError, OSError) as e:
        print(f"davserver: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
