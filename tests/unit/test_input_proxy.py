"""Unit tests of `davserver.http.input_proxy`: every read is seen, and `readinto` is
kept exactly when the input has it."""

from __future__ import annotations

import io
from typing import Any

from davserver.http.input_proxy import InputProxy, ReadintoProxy, proxy_input


class Watching(InputProxy):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.events: list[str | int] = []

    def _before(self) -> None:
        self.events.append("before")

    def _after(self, received: int) -> None:
        self.events.append(received)


class WatchingReadinto(Watching, ReadintoProxy):
    pass


class NoReadinto:
    """An input without `readinto` (cheroot's chunked bodies)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.read = self._data.read
        self.readline = self._data.readline
        self.readlines = self._data.readlines

    def __iter__(self) -> Any:
        return iter(self._data)


def test_every_kind_of_read_is_seen_with_its_bytes() -> None:
    proxy = proxy_input(io.BytesIO(b"ab\ncd\nef\ngh\n"), Watching, WatchingReadinto)
    assert proxy.read(1) == b"a"
    assert proxy.readline() == b"b\n"
    buffer = bytearray(3)
    assert isinstance(proxy, WatchingReadinto) and proxy.readinto(buffer) == 3
    assert proxy.readlines() == [b"ef\n", b"gh\n"]
    assert list(proxy) == []
    assert proxy.events == ["before", 1, "before", 2, "before", 3, "before", 6, "before"]


def test_readinto_is_kept_only_when_the_input_has_it() -> None:
    plain = proxy_input(NoReadinto(b"x\ny\n"), Watching, WatchingReadinto)
    assert type(plain) is Watching and not hasattr(plain, "readinto")
    assert list(plain) == [b"x\n", b"y\n"] and plain.events == ["before", 2, 2]
    assert type(proxy_input(io.BytesIO(), Watching, WatchingReadinto)) is WatchingReadinto
