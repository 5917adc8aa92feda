"""Settings: loaded once from defaults, an optional TOML file, the environment and CLI
flags (later sources win), validated, and passed inward as a frozen `Settings`.

Every key can be set in the file (`key = value`) or as `DAVSERVER_<KEY>` in the
environment; `config/davserver.sample.toml` documents them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "DAVSERVER_"
TEST_ENV_PREFIX = "DAVSERVER_TEST_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"  # names the config file; not a setting itself
# The server and login of `davserver push`/`pull` (a client of a server): no settings.
CLIENT_URL_ENV = ENV_PREFIX + "URL"
CLIENT_USER_ENV = ENV_PREFIX + "USER"
CLIENT_PASSWORD_ENV = ENV_PREFIX + "PASSWORD"
CLIENT_ENV = (CLIENT_URL_ENV, CLIENT_USER_ENV, CLIENT_PASSWORD_ENV)
LOG_FORMATS = ("text", "json")
COMPRESSIONS = ("auto", "off")
AUTO_WORKERS_MAX = 4  # processes `workers = 0` starts at most
MAX_INLINE_BYTES = 65536  # a chunk kept in the catalog is a row: keep rows small
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting is missing, malformed or inconsistent; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration (see the sample config for what each key means)."""

    data_dir: Path = Path("davdata")
    host: str = "127.0.0.1"
    port: int = 8080
    certfile: str = ""
    keyfile: str = ""
    trusted_proxies: str = ""
    database_url: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "davserver"
    s3_secure: bool = False
    s3_region: str = ""
    blob_prefix: str = ""
    s3_capacity_bytes: int = 1 << 40
    redis_url: str = ""
    admin_password: str = ""
    digest_auth: bool = True
    login_failures_per_user: int = 10
    login_failures_per_address: int = 30
    login_failure_window: int = 300
    propfind_infinite_depth: bool = False
    # 256 KiB mean chunks keep history cheap (docs/design.md "Chunk size")
    chunk_min_size: int = 64 * 1024
    chunk_avg_size: int = 256 * 1024
    chunk_max_size: int = 1024 * 1024
    upload_workers: int = 8
    uploads_in_flight: int = 2  # 3 cost 4 MiB more RSS, no speed (docs/performance.md)
    # chunks this small live in the catalog, not as objects (design invariant 27)
    inline_max_bytes: int = 16384
    read_ahead: int = 8  # chunks: 2 MiB ahead at the 256 KiB mean (docs/performance.md)
    block_size: int = 1024 * 1024
    max_xml_body: int = 1024 * 1024
    workers: int = 0  # server processes on one socket; 0: one per core, at most 4
    server_threads: int = 32
    request_head_timeout: int = 10  # seconds a request head may take (davserver.http_gate)
    keepalive_timeout: int = 60  # seconds a connection may stay idle between requests
    max_connections: int = 1000  # open client connections at most (past it: 503)
    push_waiters: int = 1000
    local_fsync: bool = True
    verbose: int = 1
    log_format: str = "text"
    log_level: str = "info"
    metrics_token: str = ""
    public_url: str = ""
    auto_migrate: bool = True
    startup_wait: int = 60
    change_retention: int = 90  # days the change log keeps (`davserver gc --apply` compacts)
    versions_max_age: int = 180  # days an old version is kept at most (`gc --apply` thins)
    versions_max_count: int = 0  # old versions kept per file at most (0: no limit)
    trash_retention: int = 30  # days a trash item is kept (`davserver gc --apply` purges)
    history_interval: int = 3600  # seconds between a server's retention runs (0: none)
    direct_transfers: bool = False  # delta API: blocks go straight to and from S3
    transfer_url_ttl: int = 600  # seconds a block URL (presigned or ours) stays valid
    s3_public_url: str = ""  # where clients reach S3 for direct transfers (default: s3_endpoint)
    upload_expiry: int = 86400  # seconds an idle resumable upload is kept (then GC frees it)
    notify_push: bool = True  # the Nextcloud clients' push WebSocket (a second listener)
    notify_push_port: int = 0  # its port; 0: `port` + 1 (a free port when `port` is 0)
    notify_push_url: str = ""  # the ws(s):// URL clients are told (behind a proxy)
    compression: str = "auto"  # "auto": zstd per chunk when it saves enough; "off"
    encryption: bool = False  # encrypt chunks at rest (key generated into data_dir if no file)
    encryption_key_file: str = ""  # 64 hex characters (256 bits); setting it turns encryption on
    encryption_old_key_files: str = ""  # comma-separated retired keys, still read (rotation)

    @property
    def encrypts(self) -> bool:
        """Chunks are encrypted at rest (`encryption` or a key file given)."""
        return self.encryption or bool(self.encryption_key_file)

    @property
    def worker_count(self) -> int:
        """How many server processes `davserver serve` runs: `workers`, or for 0 one
        per core (at most `AUTO_WORKERS_MAX`: past it SQLite's one writer is the limit)."""
        if self.workers:
            return self.workers
        return max(1, min(len(os.sched_getaffinity(0)), AUTO_WORKERS_MAX))

    @property
    def catalog_url(self) -> str:
        """The database URL; the embedded default is a SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"

    @property
    def public_base(self) -> str:
        """`public_url` without a trailing slash ('' when unset): links append paths."""
        return self.public_url.rstrip("/")

    @property
    def notify_push_listen_port(self) -> int:
        """The port the notify_push listener binds (0: any free port)."""
        if self.notify_push_port:
            return self.notify_push_port
        return self.port + 1 if self.port else 0

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_endpoint)

    @property
    def uses_tls(self) -> bool:
        return bool(self.certfile)

    @property
    def trusted_networks(self) -> tuple[Network, ...]:
        """`trusted_proxies` parsed; empty (the default) trusts no one."""
        return parse_networks(self.trusted_proxies)

    def replace(self, **changes: Any) -> Settings:
        return validated(dataclasses.replace(self, **changes))


def _convert(name: str, kind: Any, raw: Any) -> Any:
    """Convert a raw file/env value to the field's type; `SettingsError` names the key."""
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind in (int, "int"):
            return int(raw)
        if kind in (Path, "Path"):
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{name}: invalid value {raw!r}") from e


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated IP addresses and CIDR networks; `SettingsError` names a bad entry.

    Networks are strict: `10.0.0.1/8` (host bits set) is refused rather than guessed at,
    since widening the trusted set by accident would let clients forge their address.
    """
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as e:
            raise SettingsError(f"trusted_proxies: {entry!r}: {e}") from e
    return tuple(networks)


def _check_tls(settings: Settings) -> None:
    """Both `certfile` and `keyfile` or neither, each a readable file."""
    if bool(settings.certfile) != bool(settings.keyfile):
        missing = "keyfile" if settings.certfile else "certfile"
        raise SettingsError(f"{missing}: certfile and keyfile go together; give both or neither")
    for name in ("certfile", "keyfile") if settings.certfile else ():
        path = Path(getattr(settings, name))
        try:
            with path.open("rb"):  # opening proves readability, whoever runs the server
                pass
        except OSError as e:
            raise SettingsError(f"{name}: cannot read {path}: {e.strerror or e}") from e


def _check_database_url(url: str) -> None:
    """Empty, `sqlite:///PATH` or `postgresql[+psycopg]://...`; the message never
    repeats the URL (it may hold a password)."""
    if not url:
        return
    scheme = urlsplit(url).scheme
    if scheme not in DATABASE_SCHEMES:
        named = f"unsupported scheme {scheme!r}" if scheme else "not a URL"
        raise SettingsError(
            f"database_url: {named}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    try:
        urlsplit(url).port  # noqa: B018 (parsing it is the check)
    except ValueError as e:
        raise SettingsError("database_url: the port is not a number") from e
    if scheme == "sqlite" and not url.startswith("sqlite:///"):
        raise SettingsError("database_url: a SQLite URL is sqlite:///PATH (three slashes)")


def _check_public_url(url: str) -> None:
    """Empty, or an absolute http(s) URL with a host and no query or fragment."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"public_url: {url!r} is not an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise SettingsError(f"public_url: {url!r} must not have a query or fragment")


def _check_direct(settings: Settings) -> None:
    """`direct_transfers` needs S3; URLs live 1 s to 7 days (SigV4's bound);
    `s3_public_url` is `http(s)://host[:port]`, nothing more."""
    if settings.direct_transfers and not settings.uses_s3:
        raise SettingsError("direct_transfers: needs the S3 blob store (s3_endpoint)")
    if not 1 <= settings.transfer_url_ttl <= 7 * 24 * 3600:
        raise SettingsError("transfer_url_ttl: must be 1 to 604800 seconds")
    url = settings.s3_public_url
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"s3_public_url: {url!r} is not an absolute http(s) URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise SettingsError(f"s3_public_url: {url!r} must be scheme://host[:port] only")


def _check_notify_push(settings: Settings) -> None:
    """A port of its own (not the HTTP one), and `notify_push_url` empty or an
    absolute ws(s) URL without query or fragment."""
    if not 0 <= settings.notify_push_port <= 65535:
        raise SettingsError("notify_push_port: must be 0..65535")
    if settings.notify_push and settings.notify_push_listen_port > 65535:
        raise SettingsError("notify_push_port: port + 1 is past 65535; give a port")
    if settings.port and settings.notify_push_listen_port == settings.port:
        raise SettingsError("notify_push_port: must differ from port")
    url = settings.notify_push_url
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise SettingsError(f"notify_push_url: {url!r} is not an absolute ws:// or wss:// URL")
    if parts.query or parts.fragment:
        raise SettingsError(f"notify_push_url: {url!r} must not have a query or fragment")


def _check_choices(settings: Settings) -> None:
    """Keys with a fixed set of values, and ints that cannot be negative."""
    if settings.log_format not in LOG_FORMATS:
        raise SettingsError(f"log_format: must be one of {', '.join(LOG_FORMATS)}")
    if settings.log_level.lower() not in LOG_LEVELS:
        raise SettingsError(f"log_level: must be one of {', '.join(LOG_LEVELS)}")
    if settings.compression not in COMPRESSIONS:
        raise SettingsError(f"compression: must be one of {', '.join(COMPRESSIONS)}")
    for field in fields(settings):
        value = getattr(settings, field.name)
        if field.type in (int, "int") and value < 0:
            raise SettingsError(f"{field.name}: must be at least 0")


def validated(settings: Settings) -> Settings:
    """Check cross-field rules; return `settings` unchanged or raise `SettingsError`."""
    _check_choices(settings)
    _check_database_url(settings.database_url)
    _check_public_url(settings.public_url)
    _check_direct(settings)
    if settings.direct_transfers and settings.encrypts:
        raise SettingsError(
            "direct_transfers: cannot be used with encryption (clients would put plain chunks)"
        )
    _check_notify_push(settings)
    if not 0 <= settings.port <= 65535:
        raise SettingsError("port: must be 0..65535")
    if not 64 <= settings.chunk_min_size <= settings.chunk_avg_size <= settings.chunk_max_size:
        raise SettingsError("chunk_*_size: need 64 <= min <= avg <= max")
    if settings.s3_endpoint and not (settings.s3_access_key and settings.s3_secret_key):
        raise SettingsError("s3_access_key/s3_secret_key: required with s3_endpoint")
    if settings.s3_endpoint.startswith(("http://", "https://")):
        raise SettingsError("s3_endpoint: give host:port; use s3_secure for TLS")
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://")):
        raise SettingsError("redis_url: must start with redis:// or rediss://")
    _check_tls(settings)
    parse_networks(settings.trusted_proxies)
    names = (
        "upload_workers",
        "uploads_in_flight",
        "block_size",
        "server_threads",
        "request_head_timeout",
        "keepalive_timeout",
        "max_connections",
        "login_failures_per_user",
        "login_failures_per_address",
        "login_failure_window",
        "change_retention",
        "versions_max_age",
        "trash_retention",
        "upload_expiry",
    )
    for name in names:
        if getattr(settings, name) < 1:
            raise SettingsError(f"{name}: must be at least 1")
    if not 0 <= settings.workers <= 64:
        raise SettingsError("workers: must be 0 (one per core) to 64")
    if not 0 <= settings.inline_max_bytes <= MAX_INLINE_BYTES:
        raise SettingsError(f"inline_max_bytes: must be 0 (none) to {MAX_INLINE_BYTES}")
    if settings.versions_max_count < 0:
        raise SettingsError("versions_max_count: must be 0 (no limit) or more")
    return settings


def config_candidates(cwd: Path | None = None, home: Path | None = None) -> list[Path]:
    """Where a config file is looked for when none is named, first found wins."""
    cwd = Path.cwd() if cwd is None else cwd
    home = Path.home() if home is None else home
    return [
        cwd / "davserver.toml",
        home / ".config/davserver/davserver.toml",
        Path("/etc/davserver/davserver.toml"),
    ]


def find_config(
    given: Path | None,
    environ: Mapping[str, str] | None = None,
    candidates: list[Path] | None = None,
) -> Path | None:
    """The config file every command uses: `given` (--config), else `DAVSERVER_CONFIG`,
    else the first of `candidates` (default `config_candidates()`) that exists, else
    None. A named file must exist (`SettingsError`); a candidate is only looked for."""
    environ = os.environ if environ is None else environ
    named = given or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    if named is not None:
        if not named.is_file():
            source = "--config" if given else CONFIG_ENV
            raise SettingsError(f"{source}: no config file at {named}")
        return named
    for path in config_candidates() if candidates is None else candidates:
        if path.is_file():
            return path
    return None


def _check_environment(environ: Mapping[str, str], known: Mapping[str, Any]) -> None:
    """Refuse a `DAVSERVER_*` variable that names no key: a misspelt one would
    otherwise be ignored in silence. `DAVSERVER_TEST_*` belong to the test suite (README),
    which a developer may keep exported while running the server; nor are the
    client's `CLIENT_ENV`, which a user may keep exported for `davserver push`."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in (CONFIG_ENV, *CLIENT_ENV):
            continue
        if name.startswith(TEST_ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in known:
            continue
        close = difflib.get_close_matches(key, [*known, "config"], n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
        raise SettingsError(f"{name}: unknown setting{hint}")


def load(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < config file < environment < `overrides` (CLI flags that were given)."""
    environ = os.environ if environ is None else environ
    known = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SettingsError(f"config file {config_file}: {e}") from e
        for key, raw in data.items():
            if key not in known:
                raise SettingsError(f"config file {config_file}: unknown key {key!r}")
            values[key] = _convert(key, known[key], raw)
        if "data_dir" in values:
            # Relative to the file, not to wherever a command runs: one store for all.
            values["data_dir"] = config_file.parent / values["data_dir"]
    _check_environment(environ, known)
    for key, kind in known.items():
        raw = environ.get(ENV_PREFIX + key.upper())
        if raw is not None:
            values[key] = _convert(ENV_PREFIX + key.upper(), kind, raw)
    for key, raw in (overrides or {}).items():
        if raw is not None:
            values[key] = _convert(f"--{key.replace('_', '-')}", known[key], raw)
    return validated(Settings(**values))
