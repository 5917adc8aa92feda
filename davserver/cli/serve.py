"""`davserver serve`: run the server (see README.md for the address, TLS and proxies)."""

from __future__ import annotations

import argparse

from davserver import logs
from davserver.app import Services, build_app, ensure_admin
from davserver.server import make_server, serve_forever

COMMANDS = ("serve",)


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `serve` on `sub` (its flags override the settings of the same names)."""
    serve = sub.add_parser("serve", parents=[common], help="run the WebDAV server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--certfile", help="PEM certificate (chain): serve HTTPS")
    serve.add_argument("--keyfile", help="PEM private key of --certfile")


def run(args: argparse.Namespace, services: Services) -> int:
    """Create the first admin if there is no user, then serve until a signal."""
    settings = services.settings
    logs.start(settings)
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
