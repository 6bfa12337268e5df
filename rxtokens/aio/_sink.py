"""Observable -> async iterator: the one bounded sink (`BoundedSink`, `to_async_iterator`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc

from ..errors import (
    BackpressureOverflowError,
    ConfigError,
)
from ._flow import FlowControl, flow_control_scope, resolve_threadsafe

T = TypeVar("T")

__all__ = ["BoundedSink", "ObservableAsyncIterator", "to_async_iterator"]


# --- Observable -> async iterator -----------------------------------------------------------

_COMPLETED: Any = object()
_STOPPED: Any = object()


class BoundedSink(Generic[T]):
    """A bounded queue fed by an Observable and read on the event loop.

    The queue behind `ObservableAsyncIterator` (``get``, one item at a time),
    and behind the server's event connections (`ready` then `drain`, in
    batches). Kept apart from the iterator so that a running source does not
    keep the user-facing iterator alive: an iterator dropped without
    ``aclose()`` is garbage-collected and disposes the subscription.

    Bound: a source that cannot be paused and pushes more than `max_pending`
    queued items ends the sink with `BackpressureOverflowError` (``overflowed``
    is True) and the subscription is disposed, whether or not the consumer is
    busy meanwhile. With ``exempt_initial=True`` what the source pushes during
    `start` (a replay) does not count toward the bound.

    Terminal state (``terminal``): None while running, then the completion
    marker, the error, or the stop marker of `stop` (`ended` tells them apart).

    Example:
        >>> import reactivex
        >>> async def main():
        ...     sink = BoundedSink(8)
        ...     sink.start(reactivex.of(1, 2, 3))
        ...     await sink.ready()
        ...     return sink.drain(10), sink.ended()
        >>> asyncio.run(main())
        ([1, 2, 3], (True, None))

    Lock-free: there is one producer at a time (the Observable contract) and one
    consumer, ``deque.append`` / ``popleft`` are atomic, and the consumer
    re-checks the queue after publishing its waiter, so a wake-up is never lost
    (a spurious one is harmless: `get` loops).
    """

    __slots__ = (
        "closed",
        "dispose_requested",
        "exempt",
        "exempt_initial",
        "flow",
        "loop",
        "max_pending",
        "overflowed",
        "queue",
        "starting",
        "subscription",
        "terminal",
        "waiter",
    )

    def __init__(self, max_pending: int, *, exempt_initial: bool = False) -> None:
        self.max_pending = max_pending
        self.exempt_initial = exempt_initial
        self.exempt = 0  # queued items that do not count toward max_pending (a replay)
        self.starting = False
        self.overflowed = False
        self.flow = FlowControl(high_water=max_pending) if max_pending > 0 else None
        self.queue: deque[T] = deque()
        self.terminal: Any = None  # None, _COMPLETED or an exception
        self.waiter: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscription: abc.DisposableBase | None = None
        self.closed = False
        self.dispose_requested = False

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            resolve_threadsafe(waiter)

    # producer side (any thread)

    def on_next(self, item: T) -> None:
        if self.terminal is not None:
            return
        queue = self.queue
        flow = self.flow
        if (
            flow is not None
            and len(queue) >= self.max_pending + self.exempt
            and not self.starting
            and flow._sources == 0
        ):
            self.overflowed = True
            self.terminal = BackpressureOverflowError(
                f"to_async_iterator() queue overflowed its capacity of {self.max_pending} items: "
                "the consumer is slower than the source and the source cannot be paused "
                "(it is not pull-based); raise max_pending, consume faster, or put an "
                "on_backpressure_* operator in front",
                capacity=self.max_pending,
            )
            self._wake()
            self.dispose_subscription()
            return
        queue.append(item)
        if self.waiter is not None:
            self._wake()
        if flow is not None and not flow._paused and len(queue) >= flow._high:
            flow.update(len(queue))

    def on_terminal(self, terminal: Any) -> None:
        if self.terminal is None:
            self.terminal = terminal
            self._wake()

    def on_error(self, error: Exception) -> None:
        self.on_terminal(error)

    def on_completed(self) -> None:
        self.on_terminal(_COMPLETED)

    def dispose_subscription(self) -> None:
        self.dispose_requested = True
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            subscription.dispose()

    # consumer side (the loop)

    def start(self, observable: Observable[T]) -> None:
        """Subscribe (on the running loop); with ``exempt_initial`` what arrives now is exempt."""
        self.loop = asyncio.get_running_loop()
        self.starting = self.exempt_initial
        try:
            with flow_control_scope(self.flow):
                subscription = observable.subscribe(self.on_next, self.on_error, self.on_completed)
        finally:
            if self.starting:
                self.starting = False
                self.exempt = len(self.queue)
        if self.dispose_requested:
            subscription.dispose()
        else:
            self.subscription = subscription

    async def ready(self) -> None:
        """Wait until an item is queued or the sink has ended (returns at once if so)."""
        queue = self.queue
        while not queue and self.terminal is None:
            assert self.loop is not None
            waiter = self.waiter = self.loop.create_future()
            if queue or self.terminal is not None:  # arrived meanwhile (another thread)
                self.waiter = None
                return
            try:
                await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None

    def drain(self, limit: int) -> list[T]:
        """Take up to `limit` queued items (oldest first; empty when none is queued)."""
        queue = self.queue
        count = min(limit, len(queue))
        items = [queue.popleft() for _ in range(count)]
        if self.exempt:
            self.exempt = max(0, self.exempt - count)
        flow = self.flow
        if flow is not None and flow._paused and len(queue) <= flow._low:
            flow.update(len(queue))
        return items

    def ended(self) -> tuple[bool, BaseException | None]:
        """``(ended, error)``: ended is True once the sink ended and nothing is queued.

        error is the source's error, or the sink's own `BackpressureOverflowError`
        (``overflowed`` is then True); None after a completion or a `stop`.
        """
        terminal = self.terminal
        if terminal is None or self.queue:
            return False, None
        if isinstance(terminal, BaseException):
            return True, terminal
        return True, None

    @property
    def stopped(self) -> bool:
        """Whether `stop` ended the sink (not the source)."""
        return self.terminal is _STOPPED

    def stop(self) -> None:
        """End after what is queued: dispose the subscription and keep the queue (any thread)."""
        if self.terminal is None:
            self.terminal = _STOPPED
            self._wake()
        self.dispose_subscription()

    async def get(self) -> T:
        queue = self.queue
        while not queue:
            terminal = self.terminal
            if terminal is not None:
                self.terminal = _COMPLETED
                if terminal is _COMPLETED or terminal is _STOPPED:
                    raise StopAsyncIteration
                raise terminal
            await self.ready()
        item = queue.popleft()
        if self.exempt:
            self.exempt -= 1
        flow = self.flow
        if flow is not None and flow._paused and len(queue) <= flow._low:
            flow.update(len(queue))
        return item

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        if self.terminal is None or isinstance(self.terminal, BaseException):
            self.terminal = _COMPLETED
        self._wake()
        self.dispose_subscription()


class ObservableAsyncIterator(AsyncIterator[T], Generic[T]):
    """``async for`` over an Observable through a bounded queue (see `to_async_iterator`).

    Also an async context manager: ``async with to_async_iterator(obs) as it:``
    closes (disposes the subscription) on exit.
    """

    __slots__ = ("_observable", "_sink", "_started")

    def __init__(
        self, observable: Observable[T], *, max_pending: int = 256, maxsize: int | None = None
    ) -> None:
        if maxsize is not None:  # the former name of max_pending
            max_pending = maxsize
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 0:
            raise ConfigError(
                f"max_pending must be an int >= 0 (0 = unbounded), got {max_pending!r}"
            )
        self._observable = observable
        self._sink: BoundedSink[T] = BoundedSink(max_pending)
        self._started = False

    def __repr__(self) -> str:
        sink = self._sink
        return (
            f"ObservableAsyncIterator(max_pending={sink.max_pending}, queued={len(sink.queue)}, "
            f"closed={sink.closed})"
        )

    @property
    def flow_control(self) -> FlowControl | None:
        """The gate this iterator's queue drives (None when ``max_pending=0``)."""
        return self._sink.flow

    @property
    def max_pending(self) -> int:
        """The queue's capacity (0: unbounded)."""
        return self._sink.max_pending

    @property
    def maxsize(self) -> int:
        """The former name of `max_pending`."""
        return self._sink.max_pending

    def qsize(self) -> int:
        """Items received but not yet consumed."""
        return len(self._sink.queue)

    def __aiter__(self) -> ObservableAsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if not self._started:
            self._started = True
            if self._sink.closed:
                raise StopAsyncIteration
            self._sink.start(self._observable)
        return await self._sink.get()

    def close(self) -> None:
        """Dispose the subscription and drop queued items (idempotent, any thread)."""
        self._sink.close()

    async def aclose(self) -> None:
        """Dispose the subscription (what ``break`` out of ``async for`` should be followed by)."""
        self._sink.close()

    async def __aenter__(self) -> ObservableAsyncIterator[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sink.close()

    def __del__(self) -> None:
        sink = getattr(self, "_sink", None)
        if sink is not None and not sink.closed:
            with contextlib.suppress(Exception):
                sink.close()


def to_async_iterator(
    observable: Observable[T], *, max_pending: int = 256, maxsize: int | None = None
) -> ObservableAsyncIterator[T]:
    """Iterate an Observable with ``async for``, through a bounded queue.

    The subscription starts at the first ``__anext__`` (inside the running
    loop). Items may be pushed from any thread; they are queued in order and
    the consumer is woken thread-safely. When the queue holds ``max_pending``
    items its `FlowControl` pauses, so pull-based sources of the pipeline
    (`from_async_iterable`, see the module docstring) stop reading; it resumes
    at ``max_pending // 2``. An item already pulled may still expand into several
    (a network chunk into many tokens), so with a pull-based source the queue
    can briefly exceed ``max_pending``. A source that cannot be paused and
    overflows the queue fails with `BackpressureOverflowError` (``capacity``
    = max_pending) after the queued items, instead of growing without bound.

    Errors are re-raised in the consumer after the items before them. Leaving
    the loop early should close the iterator: ``await it.aclose()``, ``async
    with to_async_iterator(obs) as it:`` or ``contextlib.aclosing``; an
    unclosed iterator disposes its subscription when garbage-collected.

    Args:
        observable: the source.
        max_pending: queue capacity; 0 means unbounded (no flow control, no overflow).
        maxsize: the former name of `max_pending` (still accepted).

    Raises:
        ConfigError: `max_pending` is not an int >= 0.

    Example:
        >>> async def main(pipeline):
        ...     async with to_async_iterator(pipeline, max_pending=64) as tokens:
        ...         async for token in tokens:
        ...             print(token)
    """
    return ObservableAsyncIterator(observable, max_pending=max_pending, maxsize=maxsize)
