"""Engine errors as WebDAV answers: the only place `StorageError`s become `DAVError`s,
each with the status its class carries (`providers.errors`: 404, 409, 423, 507,
503...) and a short reason; a `Locked` error lists the locks in the way, as WsgiDAV's
own 423 answers do."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from wsgidav.dav_error import DAVError, DAVErrorCondition, PRECONDITION_CODE_LockConflict

from providers.errors import CorruptChunk, Locked, StorageError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def dav_error(error: StorageError) -> DAVError:
    """The WebDAV answer for an engine error."""
    status = error.http_status
    if status >= 500 and not isinstance(error, CorruptChunk):  # the file store logged it
        log.warning("storage error: %s", error)
    condition = None
    if isinstance(error, Locked):
        condition = DAVErrorCondition(PRECONDITION_CODE_LockConflict)
        for root in error.roots:
            condition.add_href(root)
    return DAVError(status, context_info=str(error), err_condition=condition)


@contextmanager
def dav_error_context() -> Iterator[None]:
    """Translate engine errors into DAVErrors (`dav_error`)."""
    try:
        yield
    except StorageError as e:
        raise dav_error(e) from e


def dav_errors(fn: F) -> F:
    """Decorator form of `dav_error_context`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with dav_error_context():
            return fn(*args, **kwargs)

    return cast(F, wrapper)
