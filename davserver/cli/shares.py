"""`davserver share ...`: signed share links (`/s/<token>`) for people without an account.

    davserver share create PATH --owner U [--perm view|download|upload|edit]
                           [--expires WHEN] [--password-stdin] [--max-downloads N]
    davserver share list [--owner U]
    davserver share revoke ID [--owner U]

PATH is in the owner's home. `--perm` defaults to `download`; `upload` and `edit`
links need a folder. `--expires` is a duration from now (`90s`, `30m`, `12h`, `7d`,
`2w`) or an ISO date or time in local time unless it names a zone (`2026-03-01` is
that day's midnight, `2026-03-01T18:00`). `--password-stdin` reads the link's
password from the first line of stdin (stored as an argon2id hash). `create` prints
the link's path `/s/<token>` and its full URL on `public_url`; without one, on the
configured host and port, with a hint on stderr to set `public_url` (and no URL for a
wildcard host such as 0.0.0.0, whose public name is unknown here).

`list` shows every link (or the owner's): id, owner, path, perm, expiry, downloads
(count/max), whether it has a password, its state (live, expired, used: no download
left, revoked) and its URL. `revoke` ends a link at once; without `--owner` any
user's. Errors are `providers.errors` types or `CommandError`, which `davserver.cli.main`
prints as one line.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time

from davserver.app import Services
from davserver.auth.passwords import hash_password
from davserver.cli.output import CommandError, format_time, text_table
from davserver.links.signer import LinkSigner
from davserver.settings import Settings
from providers.catalog import DEFAULT_LINK_PERM, LINK_PERMS, ShareLinkRecord
from providers.names import split_path

COMMANDS = ("share",)
_DURATION = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
PUBLIC_URL_HINT = (
    "davserver: hint: set public_url (e.g. https://dav.example.com) to print links on the "
    "address clients use"
)
EXPIRES_HELP = "30m, 12h, 7d, 2w (from now) or an ISO date/time such as 2026-03-01T18:00"


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `share create|list|revoke` on `sub`."""
    share = sub.add_parser("share", help="share links (/s/<token>)").add_subparsers(
        dest="share_command", required=True
    )
    create = share.add_parser("create", parents=[common], help="make a link to a file or folder")
    create.add_argument("path", help="the path in the owner's home, e.g. /projects/q3")
    create.add_argument("--owner", required=True, metavar="USER", help="whose file or folder")
    create.add_argument(
        "--perm", default=DEFAULT_LINK_PERM, metavar="|".join(LINK_PERMS), help="default: download"
    )
    create.add_argument("--expires", metavar="WHEN", help=EXPIRES_HELP)
    create.add_argument(
        "--password-stdin", action="store_true", help="read the link's password from stdin"
    )
    create.add_argument("--max-downloads", type=int, metavar="N", help="then the link dies")
    listing = share.add_parser("list", parents=[common], help="list links and their state")
    listing.add_argument("--owner", metavar="USER", help="only the links this user made")
    revoke = share.add_parser("revoke", parents=[common], help="end a link now")
    revoke.add_argument("id", type=int, help="the link's id (see `share list`)")
    revoke.add_argument("--owner", metavar="USER", help="only if this user made it")


def run(args: argparse.Namespace, services: Services) -> int:
    """Run `share create`, `list` or `revoke` (per `args.share_command`)."""
    signer = services.signer
    base = base_url(services.settings)
    if args.share_command == "create":
        _create(args, services, signer, base)
    elif args.share_command == "list":
        links = services.catalog.links.of_owner(args.owner)
        for line in link_table(links, signer, base, time.time()):
            print(line)
    else:
        _revoke(args, services)
    return 0


def _create(args: argparse.Namespace, services: Services, signer: LinkSigner, base: str) -> None:
    expires_at = parse_expiry(args.expires, time.time()) if args.expires else None
    password_hash = hash_password(_read_password()) if args.password_stdin else None
    link = services.ops.create_link(
        args.owner,
        split_path(args.path),
        args.perm,
        password_hash=password_hash,
        expires_at=expires_at,
        max_downloads=args.max_downloads,
    )
    extras = [f"expires {format_time(expires_at)}" if expires_at else "no expiry"]
    extras.append("password" if password_hash else "no password")
    if link.max_downloads is not None:
        extras.append(f"at most {link.max_downloads} downloads")
    print(
        f"Created share link {link.id} ({link.perm}) to {link.path} of {link.owner!r}: "
        + ", ".join(extras)
    )
    path = signer.path(link.id)
    print(path)
    if base:
        print(base + path)
    if not services.settings.public_url:
        print(PUBLIC_URL_HINT, file=sys.stderr)


def _revoke(args: argparse.Namespace, services: Services) -> None:
    link = services.ops.revoke_link(args.id, args.owner)
    if link is None:
        whose = f" of {args.owner!r}" if args.owner else ""
        raise CommandError(f"no live share link {args.id}{whose}")
    print(f"Revoked share link {link.id} to {link.path} of {link.owner!r}")


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("no password on stdin (the first line was empty)")
    return password


def parse_expiry(text: str, now: float) -> float:
    """Epoch seconds for `--expires` (see the module docstring); `CommandError` for
    anything else or a time not in the future."""
    match = _DURATION.fullmatch(text.strip())
    if match is not None:
        at = now + int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    else:
        try:
            at = datetime.datetime.fromisoformat(text.strip()).timestamp()
        except ValueError as e:
            raise CommandError(f"not a time: {text!r} (use {EXPIRES_HELP})") from e
    if at <= now:
        raise CommandError(f"the expiry {text!r} is not in the future")
    return at


def base_url(settings: Settings) -> str:
    """`public_url`, else `http(s)://HOST:PORT` of the configured address; '' for a
    wildcard host."""
    if settings.public_url:
        return settings.public_base
    host = settings.host
    if host in WILDCARD_HOSTS:
        return ""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    scheme = "https" if settings.uses_tls else "http"
    return f"{scheme}://{host}:{settings.port}"


def link_table(
    links: list[ShareLinkRecord], signer: LinkSigner, base: str, now: float
) -> list[str]:
    """The lines of a table: a header, then one row per link in the given order.
    Columns are as wide as their widest value; the URL comes last."""
    rows = [("ID", "OWNER", "PATH", "PERM", "EXPIRES", "DOWNLOADS", "PASSWORD", "STATE", "URL")]
    for link in links:
        limit = "-" if link.max_downloads is None else str(link.max_downloads)
        rows.append(
            (
                str(link.id),
                link.owner,
                link.path,
                link.perm,
                format_time(link.expires_at) if link.expires_at is not None else "never",
                f"{link.downloads}/{limit}",
                "yes" if link.password_hash else "no",
                link.state(now),
                base + signer.path(link.id),
            )
        )
    return text_table(rows)
