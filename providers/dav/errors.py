"""Engine errors as WebDAV answers: the only place `StorageError`s become `DAVError`s,
each with its status (404, 409, 507, 503...) and a short reason."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_CONFLICT,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_INTERNAL_ERROR,
    HTTP_NOT_FOUND,
    DAVError,
)

from providers.errors import (
    Conflict,
    IntegrityError,
    InvalidName,
    NotFound,
    QuotaExceeded,
    StorageError,
    Unavailable,
)

log = logging.getLogger(__name__)
HTTP_SERVICE_UNAVAILABLE = 503
F = TypeVar("F", bound=Callable[..., Any])
_STATUS = [
    (InvalidName, HTTP_BAD_REQUEST),
    (NotFound, HTTP_NOT_FOUND),
    (Conflict, HTTP_CONFLICT),
    (QuotaExceeded, HTTP_INSUFFICIENT_STORAGE),
    (Unavailable, HTTP_SERVICE_UNAVAILABLE),
    (IntegrityError, HTTP_INTERNAL_ERROR),
]


@contextmanager
def dav_error_context() -> Iterator[None]:
    """Translate engine errors into DAVErrors with the right status and a short reason."""
    try:
        yield
    except StorageError as e:
        status = next((code for kind, code in _STATUS if isinstance(e, kind)), HTTP_INTERNAL_ERROR)
        if status >= 500:
            log.warning("storage error: %s", e)
        raise DAVError(status, context_info=str(e)) from e


def dav_errors(fn: F) -> F:
    """Decorator form of `dav_error_context`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with dav_error_context():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
