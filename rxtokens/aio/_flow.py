"""Flow control: a consumer's queue pauses the pull-based sources of its pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.subject import BehaviorSubject

from ..errors import (
    ConfigError,
)

_get_running_loop = asyncio._get_running_loop  # C-accelerated; None outside a running loop


class FlowControl:
    """A pause/resume gate between a consumer and the pull-based sources feeding it.

    A consumer (the queue of `to_async_iterator`, or an adaptive controller)
    reports its backlog with `update` (or calls `pause` / `resume` directly);
    sources await `wait_ready` (asyncio) or call `wait_ready_blocking` (worker
    threads) before producing their next item. Water marks work like
    aiohttp's: `update` pauses when the level reaches ``high_water`` and
    resumes when it falls to ``low_water``.

    Sources register with `attach` so a consumer can tell whether anything
    will actually slow down (``sources > 0``). `state` is an Observable of the
    paused flag (current value first, then each change).

    All methods are thread-safe; `wait_ready` can be awaited from any event loop.

    Args:
        high_water: backlog at which `update` pauses (>= 1).
        low_water: backlog at which `update` resumes (0 <= low_water < high_water);
            default ``high_water // 2``.

    Example:
        >>> flow = FlowControl(high_water=4)
        >>> flow.update(4), flow.paused
        (True, True)
        >>> flow.update(2), flow.paused
        (False, False)
    """

    __slots__ = (
        "_high",
        "_lock",
        "_low",
        "_paused",
        "_pauses",
        "_ready",
        "_sources",
        "_state",
        "_waiters",
    )

    def __init__(self, *, high_water: int = 256, low_water: int | None = None) -> None:
        self._high = 0
        self._low = 0
        self.set_water_marks(high_water, low_water)
        self._lock = threading.Lock()
        self._paused = False
        self._pauses = 0
        self._sources = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._ready = threading.Event()
        self._ready.set()
        self._state: BehaviorSubject[bool] | None = None

    def __repr__(self) -> str:
        return (
            f"FlowControl(paused={self._paused}, high_water={self._high}, "
            f"low_water={self._low}, sources={self._sources}, pauses={self._pauses})"
        )

    @property
    def high_water(self) -> int:
        """Backlog at which `update` pauses."""
        return self._high

    @property
    def low_water(self) -> int:
        """Backlog at which `update` resumes."""
        return self._low

    def set_water_marks(self, high_water: int, low_water: int | None = None) -> None:
        """Change the water marks (an adaptive controller may tune them while streaming).

        Raises:
            ConfigError: ``high_water < 1`` or ``low_water`` not in ``[0, high_water)``.
        """
        if isinstance(high_water, bool) or not isinstance(high_water, int) or high_water < 1:
            raise ConfigError(f"high_water must be an int >= 1, got {high_water!r}")
        if low_water is None:
            low_water = high_water // 2
        if (
            isinstance(low_water, bool)
            or not isinstance(low_water, int)
            or not 0 <= low_water < high_water
        ):
            raise ConfigError(
                f"low_water must be an int with 0 <= low_water < high_water ({high_water}), "
                f"got {low_water!r}"
            )
        self._high = high_water
        self._low = low_water

    @property
    def paused(self) -> bool:
        """True while sources should hold back."""
        return self._paused

    @property
    def pauses(self) -> int:
        """How many times the gate went from running to paused."""
        return self._pauses

    @property
    def sources(self) -> int:
        """How many pull-based sources are currently attached."""
        return self._sources

    @property
    def state(self) -> Observable[bool]:
        """The paused flag as an Observable: the current value, then every change."""
        with self._lock:
            if self._state is None:
                self._state = BehaviorSubject(self._paused)
            return self._state

    def attach(self) -> abc.DisposableBase:
        """Register a pull-based source; dispose the result when the source ends."""
        with self._lock:
            self._sources += 1
        done = False

        def detach() -> None:
            nonlocal done
            with self._lock:
                if not done:
                    done = True
                    self._sources -= 1

        return Disposable(detach)

    def pause(self) -> None:
        """Ask the sources to hold back (idempotent)."""
        with self._lock:
            if self._paused:
                return
            self._paused = True
            self._pauses += 1
            self._ready.clear()
            state = self._state
        if state is not None:
            state.on_next(True)

    def resume(self) -> None:
        """Let the sources continue (idempotent); wakes every waiter."""
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            self._ready.set()
            waiters, self._waiters = self._waiters, []
            state = self._state
        for fut in waiters:
            resolve_threadsafe(fut)
        if state is not None:
            state.on_next(False)

    def update(self, level: int) -> bool:
        """Report the consumer's backlog; pause at high water, resume at low water.

        Returns:
            Whether the gate is paused afterwards.
        """
        if self._paused:
            if level <= self._low:
                self.resume()
        elif level >= self._high:
            self.pause()
        return self._paused

    async def wait_ready(self) -> None:
        """Return at once when running; otherwise wait until `resume`."""
        if not self._paused:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if not self._paused:
                return
            self._waiters.append(fut)
        try:
            await fut
        except BaseException:  # cancelled while waiting: forget the future
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            raise

    def wait_ready_blocking(self, timeout: float | None = None) -> bool:
        """For worker threads: block until running. Returns False on timeout."""
        return self._ready.wait(timeout)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def resolve_threadsafe(fut: asyncio.Future[None]) -> None:
    """Resolve `fut` (with None) from any thread: directly on its loop's thread, else through
    ``call_soon_threadsafe``; a closed loop has nobody waiting."""
    loop = fut.get_loop()
    if _get_running_loop() is loop:
        _resolve(fut)
    else:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_resolve, fut)


current_flow_control: ContextVar[FlowControl | None] = ContextVar(
    "rxtokens_current_flow_control", default=None
)
"""The `FlowControl` of the consumer that is subscribing right now (None: no consumer gate)."""


@contextlib.contextmanager
def flow_control_scope(flow: FlowControl | None) -> Iterator[FlowControl | None]:
    """Set `current_flow_control` for the duration of a ``with`` block.

    `to_async_iterator` uses it around its ``subscribe``; a hot multicaster
    should use ``flow_control_scope(None)`` around its upstream subscription so
    one slow subscriber cannot pause the shared source.
    """
    token = current_flow_control.set(flow)
    try:
        yield flow
    finally:
        current_flow_control.reset(token)
