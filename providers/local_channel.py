"""A channel between the worker processes of one server on one machine: the one module
that uses `socket` for it.

`LocalChannel` has the interface and the contract of `providers.redis_store.Channel`
(a hint, never a record) for a server that runs `count` worker processes without
Redis: worker `index` of group `group` receives on a Unix datagram socket in Linux's
abstract namespace named from the group, the channel's name and its index, and
`publish` sends each message to the sockets of the other workers of the group. The
group id names one running server (the server derives it from its store and its master
process), so two servers on one machine never hear each other. Abstract names need no
files and vanish with the last socket that holds them: a restarted worker binds its
name again as soon as its predecessor's process is gone. Linux only: elsewhere `listen`
logs an error and nothing is received (waiters still hear of changes from their log
watcher, `providers.push`).

What is lost, and how a subscriber hears of it: a message sent while a peer is not
bound (starting, restarting) is lost for it, as Redis loses what is published while a
subscriber is disconnected; a message that a peer cannot take in time (its queue, at
most `net.unix.max_dgram_qlen` datagrams, stays full for `SEND_TIMEOUT`) is dropped,
and the peer gets a gap marker before the next message that reaches it, which its
`listen` reports as `on_gap`. Until then, a message finds room in its queue or is
dropped at once, but for one wait of `SEND_TIMEOUT` each `STUCK_RETRY`: a stopped
worker delays the others' events little. Unlike Redis, `publish` does not deliver to its own
process.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 60 * 1024  # bytes: a datagram carries more, but events are small JSON
SEND_TIMEOUT = 0.5  # seconds a peer's full queue may hold up a message before the drop
STUCK_RETRY = 1.0  # seconds after a drop before waiting on that peer's queue again
RECEIVE_POLL = 1.0  # seconds: how soon the receiving thread sees `close`, unwoken
RETRY_MIN, RETRY_MAX = 0.1, 5.0  # seconds between attempts to bind a name still held
_ADDRESS_MAX = 107  # bytes of a Unix socket address after the leading NUL

# Every datagram starts with its kind: a message, or a gap marker (messages to this
# receiver were dropped since the last one it got).
_MESSAGE, _GAP = b"m", b"g"


@dataclass(frozen=True)
class WorkerSlot:
    """Which worker this process is: number `index` (0 .. count-1) of the `count`
    workers of the running server `group`."""

    group: str
    index: int
    count: int


def address(group: str, name: str, index: int) -> bytes:
    """The abstract socket address of worker `index` of `group` on channel `name`."""
    return b"\0" + f"davserver:{group}:{name}:{index}".encode()


class LocalChannel:
    """Channel `name` among the `count` workers of `group`, as worker `index` (see the
    module docstring). `publish` may be called from any thread; `listen` binds this
    worker's socket and starts the receiving thread."""

    def __init__(self, group: str, index: int, count: int, name: str) -> None:
        if not 0 <= index < count:
            raise ValueError(f"worker index {index} not in 0..{count - 1}")
        if len(address(group, name, count - 1)) - 1 > _ADDRESS_MAX:
            raise ValueError(f"local channel address too long: group {group!r}, name {name!r}")
        self.name = f"local:{group}:{name}"
        self._group, self._index, self._count, self._channel = group, index, count, name
        self._send_lock = threading.Lock()
        self._peers: dict[int, socket.socket] = {}  # connected sending sockets
        self._missed: dict[int, float] = {}  # peers owed a gap: last vain wait
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, message: bytes) -> int:
        """Send `message` to every other worker of the group that is listening; the
        number of workers reached. A worker not bound (not started, gone) is skipped;
        a message over `MAX_MESSAGE` bytes is dropped with a warning (0)."""
        if len(message) > MAX_MESSAGE:
            log.warning("local channel %s: dropping a %d-byte message", self.name, len(message))
            return 0
        reached = 0
        with self._send_lock:
            if self._stopping.is_set():
                return 0
            for peer in range(self._count):
                if peer != self._index and self._send(peer, message):
                    reached += 1
        return reached

    def listen(self, on_message: Callable[[bytes], None], on_gap: Callable[[], None]) -> None:
        """Start a daemon thread that binds this worker's socket (retrying, with
        backoff, while a predecessor still holds the name), then calls `on_message`
        with each message received and `on_gap` when messages to it were dropped.
        Until `close`. Once only."""
        if self._thread is not None:
            raise RuntimeError("already listening")
        self._thread = threading.Thread(
            target=self._run, args=(on_message, on_gap), name="local-listen", daemon=True
        )
        self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        """True once this worker's socket is bound (others' messages reach it), within
        `timeout`."""
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        """Stop listening (at once; within `RECEIVE_POLL` at worst), release the name
        and the sockets."""
        self._stopping.set()
        if self._thread is not None:
            if self._subscribed.is_set():
                self._wake()
            self._thread.join(timeout=5)
        with self._send_lock:
            for sock in self._peers.values():
                sock.close()
            self._peers.clear()

    def _wake(self) -> None:
        """End the receiving thread's wait with an empty datagram (ignored)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # a full queue wakes it too
                sock.sendto(b"", address(self._group, self._channel, self._index))

    def _send(self, peer: int, message: bytes) -> bool:
        """Send to one peer, connecting (again) when needed: a peer that went away
        refuses once, and its successor, if bound, gets the message."""
        for attempt in range(2):
            sock = self._connected(peer)
            if sock is None:
                return False
            try:
                if peer in self._missed:
                    sock.send(_GAP)
                    del self._missed[peer]
                sock.send(_MESSAGE + message)
                return True
            except TimeoutError:  # its queue stayed full for SEND_TIMEOUT: dropped
                self._missed[peer] = time.monotonic()
                return False
            except BlockingIOError:  # still full, and not waited for (`_connected`)
                self._missed.setdefault(peer, time.monotonic())
                return False
            except OSError as e:  # refused: the peer's process is gone
                log.debug("local channel %s: peer %d gone (%s)", self.name, peer, e)
                self._forget(peer)
                if attempt:
                    return False
        return False

    def _connected(self, peer: int) -> socket.socket | None:
        """The sending socket for `peer`, set to wait `SEND_TIMEOUT` for room in its
        queue; not to wait at all for a peer that lately made us wait in vain (a
        stopped process must not hold up everyone else's events for long)."""
        sock = self._peers.get(peer)
        if sock is not None:
            dropped = self._missed.get(peer)
            patient = dropped is None or time.monotonic() - dropped >= STUCK_RETRY
            sock.settimeout(SEND_TIMEOUT if patient else 0)
            return sock
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError as e:  # out of descriptors: this message misses that peer
            log.warning("local channel %s: no socket for peer %d: %s", self.name, peer, e)
            return None
        try:
            sock.connect(address(self._group, self._channel, peer))
        except OSError:  # nobody bound there (yet, or any more): skipped
            sock.close()
            return None
        sock.settimeout(SEND_TIMEOUT)
        self._peers[peer] = sock
        self._missed.pop(peer, None)  # a new process: it missed nothing it could have heard
        return sock

    def _forget(self, peer: int) -> None:
        sock = self._peers.pop(peer, None)
        if sock is not None:
            sock.close()

    def _run(self, on_message: Callable[[bytes], None], on_gap: Callable[[], None]) -> None:
        sock = self._bind()
        if sock is None:
            return
        try:
            self._subscribed.set()
            while not self._stopping.is_set():
                try:
                    datagram = sock.recv(MAX_MESSAGE + 1024)
                except TimeoutError:
                    continue
                if datagram.startswith(_MESSAGE):
                    _call(on_message, datagram[1:])
                elif datagram == _GAP:
                    log.info("local channel %s: messages to this worker were dropped", self.name)
                    _call(on_gap)
        finally:
            self._subscribed.clear()
            sock.close()

    def _bind(self) -> socket.socket | None:
        """This worker's receiving socket, bound; None if closed first, or if the
        system has no abstract socket names (not Linux: logged, nothing received)."""
        pause = RETRY_MIN
        while not self._stopping.is_set():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(address(self._group, self._channel, self._index))
            except OSError as e:
                sock.close()
                if e.errno != errno.EADDRINUSE:
                    log.error("local channel %s: cannot bind, not listening: %s", self.name, e)
                    return None
                log.warning("local channel %s: name still held, retrying: %s", self.name, e)
                self._stopping.wait(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            sock.settimeout(RECEIVE_POLL)
            return sock
        return None


def _call(function: Callable[..., None], *args: Any) -> None:
    """Call a listener; its failure is logged, never allowed to end the listening."""
    try:
        function(*args)
    except Exception:
        log.exception("local channel listener %r failed", function)
