"""`wsgi.input` wrappers that watch the reads passing through them.

Middleware that needs to see a request body move (counting its bytes, ending a read
transaction at its first byte) wraps `wsgi.input` in an `InputProxy` subclass: every
read calls `_before()` first and `_after(n)` with the bytes it returned. A wrapper
keeps `readinto` only when the input has it (`proxy_input`), since readers test for it
to pick their fast path (the WebDAV PUT path receives straight into its buffers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar


class InputProxy:
    """`wsgi.input` passing every read to `inner`, with `_before` and `_after` around it
    (both do nothing here; subclasses give them a meaning)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def _before(self) -> None:
        """Called before each read."""

    def _after(self, received: int) -> None:
        """Called after each read with the bytes it returned."""

    def read(self, size: int = -1) -> bytes:
        self._before()
        data: bytes = self.inner.read(size)
        self._after(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        self._before()
        data: bytes = self.inner.readline(size)
        self._after(len(data))
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        self._before()
        lines: list[bytes] = self.inner.readlines(hint)
        self._after(sum(len(line) for line in lines))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        self._before()
        for line in self.inner:
            self._after(len(line))
            yield line

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class ReadintoProxy(InputProxy):
    """An `InputProxy` with `readinto`, for inputs that have it."""

    def readinto(self, buffer: Any) -> int:
        self._before()
        received: int = self.inner.readinto(buffer)
        self._after(received)
        return received


P = TypeVar("P", bound=InputProxy)


def proxy_input(inner: Any, plain: type[P], with_readinto: type[P], *args: Any) -> P:
    """`inner` wrapped in `with_readinto` (a `ReadintoProxy` subclass) when it has
    `readinto`, else in `plain`; `args` go to the wrapper after `inner`."""
    chosen = with_readinto if callable(getattr(inner, "readinto", None)) else plain
    return chosen(inner, *args)
