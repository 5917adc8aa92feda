"""`davserver serve`: run the server (see README.md for the address, TLS and proxies).

Before listening, `start` says which config file is used and waits for the database
and the blob store: while one is unreachable it prints a line on stderr every
`RETRY_SECONDS` and tries again, for up to `startup_wait` seconds, then gives up with
one line (exit 2). A store that answers is also written to (a probe object), so a
read-only bucket or directory is found now, not at the first upload.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from davserver import logs
from davserver.app import Services, build_app, build_services, ensure_admin
from davserver.auth import initial_password
from davserver.cli import serving
from davserver.server import serve_forever
from davserver.settings import Settings
from providers import redis_store
from providers.errors import Unavailable

COMMANDS = ("serve",)
RETRY_SECONDS = 2.0
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `serve` on `sub` (its flags override the settings of the same names)."""
    serve = sub.add_parser("serve", parents=[common], help="run the WebDAV server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--certfile", help="PEM certificate (chain): serve HTTPS")
    serve.add_argument("--keyfile", help="PEM private key of --certfile")


def redacted_url(url: str) -> str:
    """`url` without its password (`postgresql://dav@db:5432/dav`), for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=user + host).geturl()


def _blob_store_name(settings: Settings) -> str:
    if settings.uses_s3:
        return f"the S3 endpoint {settings.s3_endpoint} (bucket {settings.s3_bucket})"
    return f"the blob directory {settings.data_dir / 'blobs'}"


def _connect(settings: Settings) -> Services:
    """Build the services and probe the blob store; `Unavailable` names what is down."""
    try:
        services = build_services(settings, purpose="serve")
    except Unavailable as e:
        raise Unavailable(f"the database at {redacted_url(settings.catalog_url)}") from e
    try:
        services.blobs.probe(settings.blob_prefix)
    except Unavailable as e:
        services.close()
        raise Unavailable(_blob_store_name(settings)) from e
    try:
        if settings.redis_url:
            redis_store.ping(settings.redis_url)
    except Unavailable as e:
        services.close()
        raise Unavailable(f"Redis at {redacted_url(settings.redis_url)}") from e
    return services


def _reason(error: BaseException) -> str:
    """Why the innermost error failed, short ("Connection refused"), so each retry is
    one readable line; the libraries' messages nest the whole request in it."""
    causes = [error]
    while (nested := causes[-1].__cause__ or getattr(causes[-1], "reason", None)) is not None:
        if not isinstance(nested, BaseException) or nested in causes:
            break
        causes.append(nested)
    for cause in reversed(causes):
        if found := _ERRNO.search(str(cause)):
            return found.group(1).strip()
    text = (str(causes[-1]).strip().splitlines() or [type(causes[-1]).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def start(settings: Settings, config: Path | None, *, err: TextIO = sys.stderr) -> Services:
    """Say which config file is used, then connect, retrying (see the module docstring).
    Gives up with `Unavailable` (one line, no password) after `startup_wait` seconds."""
    logs.start(settings)
    print(f"davserver: config file: {config or 'none (defaults and environment)'}", flush=True)
    deadline = time.monotonic() + settings.startup_wait
    while True:
        try:
            return _connect(settings)
        except Unavailable as e:
            left = deadline - time.monotonic()
            if left <= 0:
                waited = f" after {settings.startup_wait} s" if settings.startup_wait else ""
                raise Unavailable(f"cannot reach {e}{waited}: {_reason(e)}") from e
            pause = min(RETRY_SECONDS, left)
            print(
                f"davserver: waiting for {e} ({_reason(e)}); retrying in {pause:.0f} s, "
                f"giving up in {left:.0f} s",
                file=err,
                flush=True,
            )
            time.sleep(pause)


def run(args: argparse.Namespace, services: Services) -> int:
    """Create the first admin if there is no user, then serve until a signal: in this
    process, or in `workers` processes (`davserver.cli.serving`)."""
    settings = services.settings
    if not ensure_admin(services):
        _remind_initial_password(services)
    if settings.worker_count > 1:
        return serving.run_workers(services)
    server = serving.build_server(services, build_app(services))

    def ready(port: int) -> None:
        push_port = serving.start_notify_push(services)
        serving.announce(settings, port, push_port)

    serve_forever(server, ready)
    return 0


def _remind_initial_password(services: Services) -> None:
    admin = services.catalog.users.get(initial_password.ADMIN)
    saved = initial_password.still_initial(
        services.settings.data_dir, admin.password_hash if admin else None
    )
    if saved is not None:
        print(
            f"davserver: admin still has the generated password kept in {saved}; "
            "change it with `davserver user passwd admin`",
            flush=True,
        )
