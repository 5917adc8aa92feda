"""The `davserver` command line.

    davserver serve [--config F] [--host H] [--port P] [--data-dir D]
                    [--certfile F --keyfile F]
    davserver user add|passwd|remove|list|quota|app-password ...   (see cli_users)
    davserver group add|remove|list|members ...
    davserver grant|revoke PATH --owner U --to USER|@GROUP [--perm r|rw]   (see cli_grants)
    davserver grants list [--owner U]
    davserver share create|list|revoke ...   (see cli_shares)
    davserver gc [--apply] [--grace SECONDS]
    davserver fsck [--deep]

Every command reads the same settings (file, then `DAVSERVER_*` environment, then
flags). A failure prints one line on stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from davserver.app import Services, build_app, build_services, ensure_admin
from davserver.cli import grants as cli_grants
from davserver.cli import shares as cli_shares
from davserver.cli.users import CommandError, add_parsers, run_group, run_user
from davserver.server import make_server, serve_forever
from davserver.settings import Settings, SettingsError, load
from providers.errors import StorageError
from providers.gc import check_store, collect_garbage

DEFAULT_GRACE = 6 * 3600
T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML config file (env overrides it)")
    common.add_argument("--data-dir", help="data directory of the embedded store")
    parser = argparse.ArgumentParser(prog="davserver", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the WebDAV server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--certfile", help="PEM certificate (chain): serve HTTPS")
    serve.add_argument("--keyfile", help="PEM private key of --certfile")
    add_parsers(sub, common)
    cli_grants.add_parsers(sub, common)
    cli_shares.add_parsers(sub, common)
    gc = sub.add_parser("gc", parents=[common], help="delete unreferenced chunks (dry run)")
    gc.add_argument("--apply", action="store_true", help="really delete")
    gc.add_argument("--grace", type=float, default=DEFAULT_GRACE, help="seconds (default 6 h)")
    fsck = sub.add_parser("fsck", parents=[common], help="check stored chunks")
    fsck.add_argument("--deep", action="store_true", help="re-hash every chunk")
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


def _progress(items: Sequence[T], label: str) -> Iterable[T]:
    quiet = not sys.stderr.isatty()  # bars on a terminal only, never in logs or cron mail
    return tqdm(items, desc=label, unit="", file=sys.stderr, leave=False, disable=quiet)


def _serve(settings: Settings, services: Services) -> int:
    ensure_admin(services)
    server = make_server(
        build_app(services),
        settings.host,
        settings.port,
        threads=settings.server_threads,
        certfile=settings.certfile,
        keyfile=settings.keyfile,
    )
    scheme = "https" if settings.uses_tls else "http"

    def ready(port: int) -> None:
        print(f"davserver listening on {scheme}://{settings.host}:{port}/dav/", flush=True)

    serve_forever(server, ready)
    return 0


def _gc(args: argparse.Namespace, services: Services) -> int:
    report = collect_garbage(
        services.catalog,
        services.blobs,
        grace=args.grace,
        apply=args.apply,
        key_prefix=services.settings.blob_prefix,
        progress=_progress,
    )
    verb = "deleted" if args.apply else "would delete"
    print(
        f"gc: {verb} {report.chunks} unreferenced chunks and {report.orphans} orphan objects, "
        f"{report.freed_bytes} bytes; dropped {report.contents} unused contents and "
        f"{report.uploads} abandoned uploads"
        + ("" if args.apply else " (dry run: pass --apply to delete)")
    )
    return 0


def _fsck(args: argparse.Namespace, services: Services) -> int:
    report = check_store(
        services.catalog,
        services.blobs,
        deep=args.deep,
        key_prefix=services.settings.blob_prefix,
        progress=_progress,
    )
    print(
        f"fsck: checked {report.checked} chunks: {len(report.missing)} missing, "
        f"{len(report.wrong_size)} wrong size, {len(report.corrupt)} corrupt"
    )
    for label, hashes in (("missing", report.missing), ("corrupt", report.corrupt)):
        for digest in hashes:
            print(f"{label}: {digest}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
        creates = args.command in ("serve", "user", "group")
        services = build_services(settings, create_dirs=creates)
        handlers: dict[str, Any] = {
            "serve": lambda: _serve(settings, services),
            "user": lambda: run_user(args, services),
            "group": lambda: run_group(args, services),
            **dict.fromkeys(cli_grants.COMMANDS, lambda: cli_grants.run(args, services)),
            **dict.fromkeys(cli_shares.COMMANDS, lambda: cli_shares.run(args, services)),
            "gc": lambda: _gc(args, services),
            "fsck": lambda: _fsck(args, services),
        }
        try:
            return int(handlers[args.command]())
        finally:
            services.close()
    except (SettingsError, StorageError, CommandError, OSError) as e:
        print(f"davserver: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
