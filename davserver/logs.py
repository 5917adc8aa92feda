"""Logging, configured once per process (`configure(settings)`), and the request id.

Every record leaves on stderr in one of two formats (`log_format`):

- `text`: `2026-12-03T10:00:00.123Z INFO access rid=ab12cd34ef56 addr=1.2.3.4 ...`
  (UTC time, level, logger topic, message; the request id is appended as `rid=` to
  records made during a request that do not name it themselves);
- `json`: one object per line with `time`, `level`, `logger`, `message`, `rid` and
  the record's structured `fields` (the access log puts every field there).

The request id of the request being served lives in a context variable: the
outermost middleware (`davserver.http.observe`) sets it for the request's thread, and
`RequestIdFilter` copies it into every record, so a warning deep in the engine
carries the id the client sees in `X-Request-Id` and in error bodies.

WsgiDAV's own logger (`wsgidav`) says little unless asked: it follows `log_level`
when the deprecated `verbose` setting is 3 or more, and is held at WARNING otherwise.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, TextIO

from davserver import __version__
from davserver.settings import Settings

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
TOPICS = {"davserver.access": "access", "davserver.auth": "auth"}


def request_id() -> str:
    """The id of the request this thread serves, "" outside a request."""
    return _request_id.get()


def set_request_id(value: str) -> contextvars.Token[str]:
    """Make `value` the current request id; pass the token to `reset_request_id`."""
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


def safe(text: str, also: str = "", limit: int = 4096) -> str:
    """`text` fit for one field of a text log line: control characters, quotes,
    backslashes and the characters in `also` written `\\xNN`, at most `limit` characters
    read, so a crafted user name or path cannot forge a line or a field."""
    return "".join(
        f"\\x{ord(c):02x}" if ord(c) < 0x20 or c in '"\\\x7f' or c in also else c
        for c in text[:limit]
    )


class RequestIdFilter(logging.Filter):
    """Sets `record.rid` to the current request id ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "rid", ""):
            record.rid = _request_id.get() or "-"
        return True


def _utc(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`time level topic message [rid=...]`: one line per record (a traceback, if any,
    follows on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        rid = getattr(record, "rid", "-")
        if rid != "-" and "rid=" not in message:
            message += f" rid={rid}"
        topic = TOPICS.get(record.name, record.name)
        line = f"{_utc(record)} {record.levelname} {topic} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": TOPICS.get(record.name, record.name),
            "message": record.getMessage(),
            "rid": getattr(record, "rid", "-"),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for `log_format` (`text` or `json`)."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to `stream` (stderr) in `settings.log_format` at
    `settings.log_level`, replacing handlers a previous call installed. Returns the
    handler."""
    # Any of settings.LOG_LEVELS, which are the logging module's own names.
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    handler = logging.StreamHandler(stream) if stream else _StderrHandler()
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(RequestIdFilter())
    handler.set_name("davserver")
    root = logging.getLogger()
    # Ours from an earlier call, and a plain stderr handler (logging.basicConfig's);
    # others (files, test capture) stay.
    for old in [h for h in root.handlers if h.get_name() == "davserver" or _plain(h)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    wsgidav_level = level if settings.verbose >= 3 else max(level, logging.WARNING)
    logging.getLogger("wsgidav").setLevel(logging.DEBUG if settings.verbose >= 4 else wsgidav_level)
    # Alembic narrates every connection at INFO ("Context impl SQLiteImpl."); the
    # store's own line says what an upgrade did.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    return handler


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at each record, not the one at configuration
    (a command run in-process by a test, or under a redirect, replaces it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # StreamHandler.__init__ assigns it


def _plain(handler: logging.Handler) -> bool:
    return type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout)


def start(settings: Settings) -> None:
    """`configure` for a server process, then log `davserver <version> starting`."""
    configure(settings)
    logging.getLogger("davserver").info("davserver %s starting", __version__)
