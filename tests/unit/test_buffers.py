"""BufferPool: page-aligned buffers, handed back and reused up to `keep`."""

from __future__ import annotations

import ctypes
import mmap

import pytest

from providers.buffers import BufferPool


def address(buffer: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def test_buffers_are_writable_page_aligned_and_of_the_size_asked() -> None:
    pool = BufferPool(3 * mmap.PAGESIZE + 1, keep=2)
    buffers = [pool.acquire() for _ in range(3)]
    for buffer in buffers:
        assert len(buffer) == 3 * mmap.PAGESIZE + 1
        assert not buffer.readonly
        assert address(buffer) % mmap.PAGESIZE == 0
    assert len({address(b) for b in buffers}) == 3


def test_released_buffers_are_reused_up_to_keep() -> None:
    pool = BufferPool(mmap.PAGESIZE, keep=1)
    first, second = pool.acquire(), pool.acquire()
    assert pool.lent == 2
    pool.release(first)
    pool.release(second)  # one over keep: dropped
    assert (pool.idle, pool.lent) == (1, 0)
    assert pool.acquire() is first
    assert (pool.idle, pool.lent) == (0, 1)
    assert pool.acquire() is not second


@pytest.mark.parametrize(("size", "keep"), [(0, 1), (-1, 1), (10, -1)])
def test_invalid_sizes_are_refused(size: int, keep: int) -> None:
    with pytest.raises(ValueError, match="buffer size"):
        BufferPool(size, keep)
