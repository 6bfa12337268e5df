"""The token log: what a `rxtokens.broadcast.Broadcast` stores.

A token log numbers the tokens of one stream (``seq`` 1 for the first, then
+1 per token), retains some of them for late readers and records how the
stream ended. Its interface is deliberately small, so that a log kept outside
the process (Redis Streams: ``XADD`` with the seq as entry id, ``XREAD BLOCK``,
``MAXLEN`` retention, an end entry) can implement it as well as the in-memory
ring does:

* `TokenLog.append` (producer side, synchronous and cheap: an implementation
  that talks to a server buffers and flushes on its own) adds a token; the
  n-th token appended has seq n;
* `TokenLog.close` writes the end marker (`LogEnd`: the error, or the final
  `Completion` when it is known);
* `TokenLog.read` returns what is retained after a seq, now, without waiting;
* `TokenLog.wait` (asyncio) waits until there is something after a seq or the
  log ended (``XREAD BLOCK`` for a remote log; bound it with ``asyncio.timeout``);
* `TokenLog.retain` is the retention (None: everything; N: the last N).

`MemoryTokenLog` is the in-memory implementation (a ring of the last N, or a
list of everything).

Example:
    >>> log = MemoryTokenLog(retain=2)
    >>> for t in "abc":
    ...     log.append(t)
    >>> log.read(after=0)
    LogRead(entries=[Sequenced(seq=2, token='b'), Sequenced(seq=3, token='c')], first=2, end=None)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .errors import ConfigError
from .tokens import Completion

__all__ = ["LogEnd", "LogRead", "MemoryTokenLog", "Sequenced", "TokenLog"]


class Sequenced(NamedTuple):
    """A token with its sequence number in the broadcast (1 for the first token).

    Example:
        >>> from rxtokens import TextDelta
        >>> Sequenced(1, TextDelta("Hi")).seq
        1
    """

    seq: int
    token: Any


class LogEnd(NamedTuple):
    """The end marker of a log: how the stream ended.

    ``error`` is None for a stream that completed; ``completion`` is the final
    answer when the writer knew it (a reader in another process needs it).
    """

    error: Exception | None = None
    completion: Completion | None = None


class LogRead(NamedTuple):
    """What `TokenLog.read` found: the entries after the asked seq, the oldest retained seq
    (``last seq + 1`` when nothing is retained), and the end marker once the log ended."""

    entries: list[Sequenced]
    first: int
    end: LogEnd | None


@runtime_checkable
class TokenLog(Protocol):
    """The storage of one stream's tokens (see the module docstring)."""

    @property
    def retain(self) -> int | None:
        """How many of the latest tokens are kept for readers (None: all of them)."""

    @property
    def last_seq(self) -> int:
        """The seq of the latest token (0 before the first)."""

    @property
    def end(self) -> LogEnd | None:
        """The end marker, once the log was closed."""

    def append(self, token: Any) -> None:
        """Keep `token` (subject to retention): the n-th token appended has seq n."""

    def close(self, end: LogEnd) -> None:
        """Write the end marker (once; later calls are ignored)."""

    def read(self, after: int = 0) -> LogRead:
        """The retained entries with ``seq > after``, now (never waits)."""

    async def wait(self, after: int) -> None:
        """Return once a token after `after` exists or the log ended (bound it with
        ``asyncio.timeout``: a remote log maps this on ``XREAD BLOCK``)."""


class MemoryTokenLog:
    """The in-memory token log: a ring of the last `retain` tokens (or all of them).

    Args:
        retain: None keeps every token (a list); 0 keeps none (only the count
            and the end marker); N keeps the last N (a ring).

    Thread-safe for one writer and any number of readers; `wait` must be
    awaited in an event loop (a writer on another thread wakes it). Writers
    call ``log.append(token)`` each time: `wait` swaps in a waking `append`
    while someone waits, so a cached bound method would not wake it.

    Example:
        >>> log = MemoryTokenLog()
        >>> log.append("x")
        >>> log.append("y")
        >>> log.close(LogEnd())
        >>> log.read(after=1).entries, log.end
        ([Sequenced(seq=2, token='y')], LogEnd(error=None, completion=None))
    """

    __slots__ = ("_end", "_entries", "_fast", "_lock", "_retain", "_seq", "_waiters", "append")

    def __init__(self, retain: int | None = None) -> None:
        if retain is not None and (
            isinstance(retain, bool) or not isinstance(retain, int) or retain < 0
        ):
            raise ConfigError(f"retain must be None or a non-negative int, got {retain!r}")
        self._retain = retain
        self._seq = 0  # ring / retain=0 only: a list's seq is its length
        self._end: LogEnd | None = None
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._entries: list[Any] | deque[Any] | None
        # The per-token path is the callable chosen here, with no branch per token: for
        # retain=None it is list.append itself (benchmarks/fanout.py measures it).
        self._fast: Callable[[Any], None]
        if retain is None:
            self._entries = []
            self._fast = self._entries.append
        elif retain == 0:
            self._entries = None
            self._fast = self._count
        else:
            self._entries = deque(maxlen=retain)
            self._fast = self._ring
        self.append: Callable[[Any], None] = self._fast  # `wait` swaps in `_append_and_wake`

    def __repr__(self) -> str:
        return (
            f"MemoryTokenLog(retain={self._retain!r}, last_seq={self.last_seq}, ended={self.ended})"
        )

    @property
    def retain(self) -> int | None:
        """How many of the latest tokens are kept (None: all)."""
        return self._retain

    @property
    def last_seq(self) -> int:
        """The seq of the latest token (0 before the first)."""
        entries = self._entries
        return len(entries) if type(entries) is list else self._seq

    @property
    def end(self) -> LogEnd | None:
        """The end marker, once closed."""
        return self._end

    @property
    def ended(self) -> bool:
        """True once `close` was called."""
        return self._end is not None

    @property
    def tokens(self) -> list[Any] | None:
        """Every token so far when ``retain`` is None (the live list: do not modify), else None."""
        entries = self._entries
        return entries if type(entries) is list else None

    def _ring(self, token: Any) -> None:
        self._seq += 1
        self._entries.append(token)  # type: ignore[union-attr]

    def _count(self, token: Any) -> None:
        self._seq += 1

    def _append_and_wake(self, token: Any) -> None:
        self._fast(token)
        self._wake()

    def close(self, end: LogEnd) -> None:
        """Write the end marker (once)."""
        if self._end is None:
            self._end = end
            self._wake()

    def read(self, after: int = 0) -> LogRead:
        """The retained entries with ``seq > after``.

        Example:
            >>> log = MemoryTokenLog(retain=0)
            >>> log.append("x")
            >>> log.read()
            LogRead(entries=[], first=2, end=None)
        """
        entries = self._entries
        retained = [] if entries is None else list(entries)
        first = self.last_seq - len(retained) + 1  # seq of retained[0]
        skip = max(0, after + 1 - first)
        return LogRead(
            [Sequenced(seq, token) for seq, token in enumerate(retained[skip:], first + skip)],
            first,
            self._end,
        )

    async def wait(self, after: int) -> None:
        """Return once ``last_seq > after`` or the log ended (bound it with ``asyncio.timeout``).

        Example:
            >>> async def demo() -> int:
            ...     log = MemoryTokenLog()
            ...     asyncio.get_running_loop().call_soon(lambda: log.append("x"))
            ...     await log.wait(after=0)
            ...     return log.last_seq
            >>> asyncio.run(demo())
            1
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.last_seq > after or self._end is not None:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
            self.append = self._append_and_wake
        await future

    def _wake(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
            self.append = self._fast
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
