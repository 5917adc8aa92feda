"""WSGI middleware for running behind a reverse proxy: `X-Forwarded-*` from trusted
proxies only, and `Destination` headers that survive TLS termination.

Trust. A request whose peer (`REMOTE_ADDR`) is in one of the `trusted_proxies`
networks has its forwarded headers applied:

- `X-Forwarded-Proto` (`http` or `https`, nothing else) becomes `wsgi.url_scheme`;
- `X-Forwarded-Host` (a host name or IP, optionally with a port) becomes `HTTP_HOST`;
- `X-Forwarded-Port` becomes `SERVER_PORT`, and the port of `HTTP_HOST` when that has
  none and the port is not the scheme's default;
- `X-Forwarded-For` gives the client: walking from the right, each hop a trusted proxy
  appended is skipped, and the first address that is not itself a trusted proxy
  becomes `REMOTE_ADDR` (so the per-address login limit counts the real client). An
  unparsable hop ends the walk at the last address that parsed.

A malformed value is ignored (that header only). From any other peer these headers
are removed unread, and they are removed after use too, so nothing behind this
middleware can consult them. That matters: WsgiDAV's COPY/MOVE accepts a Destination
whose scheme or host matches `X-Forwarded-Proto`/`-Host` from anyone. The proxy must
set (overwrite) the headers it forwards, or clients can still choose them.

Destination. A COPY or MOVE names its target by absolute URL as the client sees it:
`Destination: https://files.example.org/dav/b.txt`. Behind a TLS-terminating proxy the
request reaches us over http with an internal Host, and WsgiDAV answers 502 Bad
Gateway unless both scheme and host match the request; it also compares host strings
literally, so `files.example.org:443` and `files.example.org` differ. Once the
forwarded headers have been applied, a Destination on the request's own origin
(scheme, host, and port with defaults filled in) is rewritten to its path, which
WsgiDAV resolves without comparing. Anything else is left for WsgiDAV to refuse. This
uses no more trust than WsgiDAV already gives the request's own Host header. The
path is not rewritten: publish the server under the same path (`/dav/`) on the proxy,
since WsgiDAV refuses a Destination outside its mount path (502 as well).

Public URL. When `public_url` is set (the address clients use, e.g.
`https://dav.example.com` or `https://example.com/files`), a Destination under it is
rewritten to the path below it too, whatever Host the proxy forwarded: a proxy that
strips a path prefix or does not pass X-Forwarded-Host still gets COPY and MOVE right.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from davserver.http.environ import StartResponse, WSGIApplication, WSGIEnvironment
from davserver.settings import Network

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name or IPv4 address, or a bracketed IPv6 address, then an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def valid_host(value: str) -> bool:
    """Whether `value` is a host as a Host header may name it: a DNS name, an IPv4
    address or a bracketed IPv6 address, with an optional port."""
    return _HOST.fullmatch(value) is not None


def parse_address(text: str) -> IpAddress | None:
    """An IP address from a forwarded hop or `REMOTE_ADDR`: `1.2.3.4`, `1.2.3.4:5678`,
    `2001:db8::1` or `[2001:db8::1]:443`; IPv4-mapped IPv6 becomes IPv4 (a dual-stack
    listener reports IPv4 peers that way). None when it is not an address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, lower-case host, port with the scheme's default); None if malformed."""
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _same_origin(raw: str, here: tuple[str, str, int] | None) -> bool:
    """Whether `raw` is an absolute URL (it parses) on the origin `here`."""
    try:
        parts = urlsplit(raw, allow_fragments=False)
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc or here is None:
        return False
    return _origin(parts.scheme.lower(), parts.netloc) == here


def local_destination(destination: str, scheme: str, host: str) -> str:
    """`destination` as a path when it is an absolute URL on the origin `scheme://host`,
    else unchanged (WsgiDAV then judges it; see the module docstring)."""
    raw = destination.strip()
    if not _same_origin(raw, _origin(scheme.lower(), host)):
        return destination
    parts = urlsplit(raw, allow_fragments=False)
    # Cut the raw text rather than reassembling the parts: WsgiDAV unquotes the header
    # before parsing it, and the path must reach it exactly as the client encoded it.
    path = raw[raw.index("//") + 2 + len(parts.netloc) :]
    return path if path.startswith("/") else destination


def public_destination(destination: str, public_url: str) -> str:
    """`destination` as the path below `public_url` when it is under it (same origin,
    defaults filled in, and path prefix), else unchanged."""
    if not public_url:
        return destination
    raw = destination.strip()
    public = urlsplit(public_url)
    prefix = public.path.rstrip("/")
    if not _same_origin(raw, _origin(public.scheme.lower(), public.netloc)):
        return destination
    parts = urlsplit(raw, allow_fragments=False)
    path = raw[raw.index("//") + 2 + len(parts.netloc) :]  # raw, as in local_destination
    if not (path == prefix or path.startswith(prefix + "/")):
        return destination
    return path[len(prefix) :] or "/"


def is_trusted_peer(address: IpAddress | None, trusted: Sequence[Network]) -> bool:
    """Whether `address` (a parsed `REMOTE_ADDR`) lies in one of the `trusted` networks."""
    return address is not None and any(address in net for net in trusted)


class ProxyHeaders:
    """Applies forwarded headers from `trusted` networks (see the module docstring);
    `public_url` is the configured public address ('' for none)."""

    def __init__(
        self, app: WSGIApplication, trusted: Sequence[Network], public_url: str = ""
    ) -> None:
        self._app = app
        self._trusted = tuple(trusted)
        self._public_url = public_url

    def is_trusted(self, address: IpAddress | None) -> bool:
        return is_trusted_peer(address, self._trusted)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        forwarded = {key: environ.pop(key) for key in FORWARDED if key in environ}
        if forwarded and self.is_trusted(parse_address(environ.get("REMOTE_ADDR", ""))):
            self._apply(environ, forwarded)
        if "HTTP_DESTINATION" in environ:
            public = public_destination(environ["HTTP_DESTINATION"], self._public_url)
            environ["HTTP_DESTINATION"] = local_destination(
                public,
                environ.get("wsgi.url_scheme", "http"),
                environ.get("HTTP_HOST", ""),
            )
        return self._app(environ, start_response)

    def _apply(self, environ: dict[str, Any], forwarded: dict[str, str]) -> None:
        proto = forwarded.get("HTTP_X_FORWARDED_PROTO", "").strip().lower()
        if proto in DEFAULT_PORTS:
            environ["wsgi.url_scheme"] = proto
        host = forwarded.get("HTTP_X_FORWARDED_HOST", "").strip()
        if valid_host(host):
            environ["HTTP_HOST"] = host
        port = forwarded.get("HTTP_X_FORWARDED_PORT", "").strip()
        if port.isdigit() and 0 < int(port) < 65536:
            environ["SERVER_PORT"] = str(int(port))
            current = environ.get("HTTP_HOST", "")
            has_port = ":" in current.rpartition("]")[2]  # after an IPv6 literal's colons
            default = DEFAULT_PORTS.get(environ.get("wsgi.url_scheme", "http"))
            if current and not has_port and int(port) != default:
                environ["HTTP_HOST"] = f"{current}:{int(port)}"
        chain = forwarded.get("HTTP_X_FORWARDED_FOR", "")
        if chain:
            environ["REMOTE_ADDR"] = self._client(environ["REMOTE_ADDR"], chain)

    def client_address(self, peer: str, chain: str) -> str:
        """The client of a connection from `peer` that carries X-Forwarded-For `chain`
        (for a listener that is not behind this middleware: the notify_push socket):
        `peer` itself unless it is a trusted proxy."""
        if not chain or not self.is_trusted(parse_address(peer)):
            return peer
        return self._client(peer, chain)

    def _client(self, peer: str, chain: str) -> str:
        """The rightmost address of `peer`'s forwarding `chain` not a trusted proxy."""
        address = parse_address(peer)
        for hop in reversed(chain.split(",")):
            if not self.is_trusted(address):
                break
            parsed = parse_address(hop)
            if parsed is None:
                break
            address = parsed
        return str(address)
