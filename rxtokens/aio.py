"""asyncio bridges: async iterables in, async iterators and awaitables out.

* `from_async_iterable` turns an async iterable (an aiohttp response body, an
  SDK stream, an async generator) into a *cold*, *pull-based* Observable: the
  next item is requested only after the previous one was delivered, and
  disposing the subscription cancels the iteration and closes the async
  generator (its ``finally`` runs, the HTTP connection is released).
* `to_async_iterator` goes the other way, ``async for token in ...``, through a
  bounded queue.
* `FlowControl` links the two: when the queue of `to_async_iterator` fills up,
  the pull-based sources of the same pipeline stop pulling (the socket is read
  more slowly) instead of memory filling up.
* `first`, `last`, `to_list`, `collect` await an Observable; `run` is the
  synchronous entry point for scripts.
* `observe_on_loop` / `ThreadSafeObserver` hand items produced on a worker
  thread (llama.cpp) over to the event loop thread, in order.

Which event loop? Subscriptions to `from_async_iterable` run their iteration
as a task on the loop given as ``loop=``, or else on the loop running in the
subscribing thread. Subscribing outside a running loop without ``loop=``
raises `ConfigError`: subscribe inside ``async`` code (``await collect(...)``,
``async for ... in to_async_iterator(...)``) or use `rxtokens.aio.run` in a script.

How flow control travels: `to_async_iterator` sets the context variable
`current_flow_control` around its synchronous ``observable.subscribe(...)``
call. Subscription travels synchronously down an ordinary ``pipe()`` chain to
the sources, and `from_async_iterable` captures the variable's value there
(its task also inherits it, so sources subscribed later from inside that task,
e.g. by ``concat``, see it too). Before pulling each item a source awaits
`FlowControl.wait_ready`. Limitation: operators that subscribe to their
source *later from elsewhere* (``subscribe_on``, ``delay_subscription``, a hot
`Broadcast` connected by another consumer, a scheduler on another thread)
break the link; the queue then cannot slow the source down and falls back to
its overflow policy (`BackpressureOverflowError` once it holds ``maxsize`` items).

Example:
    >>> async def words():
    ...     for w in ["Hel", "lo"]:
    ...         yield TextDelta(w)
    >>> run(from_async_iterable(words)).text  # doctest: +SKIP
    'Hello'
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.subject import BehaviorSubject

from .completion import CompletionBuilder, attach_partial
from .errors import (
    BackpressureOverflowError,
    ConfigError,
    EmptyStreamError,
    StreamError,
    StreamTimeoutError,
)
from .tokens import Completion, StreamToken

__all__ = [
    "EmptyStreamError",
    "FlowControl",
    "ObservableAsyncIterator",
    "ThreadSafeObserver",
    "collect",
    "current_flow_control",
    "first",
    "flow_control_scope",
    "from_async_iterable",
    "last",
    "observe_on_loop",
    "run",
    "to_async_iterator",
    "to_list",
]

T = TypeVar("T")

log = logging.getLogger("rxtokens.aio")

_get_running_loop = asyncio._get_running_loop  # C-accelerated; None outside a running loop

_background_tasks: set[asyncio.Task[None]] = set()
"""Strong references to running pump tasks (the loop keeps only weak ones)."""


# --- flow control ---------------------------------------------------------------------------


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
            _resolve_threadsafe(fut)
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


def _resolve_threadsafe(fut: asyncio.Future[None]) -> None:
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


# --- async iterable -> Observable -----------------------------------------------------------


class _Pump(abc.DisposableBase):
    """One subscription of `from_async_iterable`: a task that pulls and pushes."""

    __slots__ = ("_detach", "_disposed", "_factory", "_flow", "_loop", "_observer", "_task")

    def __init__(
        self,
        factory: Callable[[], AsyncIterable[T]],
        observer: abc.ObserverBase[T],
        flow: FlowControl | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._factory = factory
        self._observer = observer
        self._flow = flow
        self._loop = loop
        self._task: asyncio.Task[None] | None = None
        self._disposed = False
        self._detach = flow.attach() if flow is not None else None

    def start(self) -> None:
        if self._disposed:
            self._release()
            return
        task = self._loop.create_task(self._run())
        self._task = task
        _background_tasks.add(task)
        task.add_done_callback(_background_tasks.discard)

    def _release(self) -> None:
        if self._detach is not None:
            self._detach.dispose()

    async def _run(self) -> None:
        observer = self._observer
        flow = self._flow
        iterator: AsyncIterator[Any] | None = None
        try:
            if self._disposed:
                return
            iterator = aiter(self._factory())
            anext_ = iterator.__anext__
            while True:
                if flow is not None and flow._paused:
                    await flow.wait_ready()
                if self._disposed:
                    return
                try:
                    item = await anext_()
                except StopAsyncIteration:
                    if not self._disposed:
                        observer.on_completed()
                    return
                if self._disposed:
                    return
                observer.on_next(item)
        except Exception as exc:
            if not self._disposed:
                observer.on_error(exc)
        finally:
            self._release()
            if iterator is not None:
                await _close_iterator(iterator)

    def dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        task = self._task
        if task is None or task.done():
            return
        running = _get_running_loop()
        if running is self._loop:
            if asyncio.current_task() is task:
                return  # disposed from inside on_next: the loop sees the flag and closes
            task.cancel()
        else:
            with contextlib.suppress(RuntimeError):  # closed loop: the task is gone already
                self._loop.call_soon_threadsafe(task.cancel)


async def _close_iterator(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.warning("closing async iterator %r failed", iterator, exc_info=True)


def from_async_iterable(
    source: Callable[[], AsyncIterable[T]] | AsyncIterable[T],
    *,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Observable[T]:
    """A cold, pull-based Observable over an async iterable.

    Each subscription calls `source` (when it is a factory, e.g. an async
    generator function) and iterates the result in a task on `loop` (default:
    the loop running in the subscribing thread; subscribing from another thread
    with an explicit `loop` schedules the task thread-safely). The next item is
    pulled only after ``on_next`` of the previous one returned, and only while
    the subscriber's `FlowControl` (see `current_flow_control`) is not paused.
    Items are delivered on the loop's thread.

    Disposing cancels the task and closes the iterator (``aclose()``), so the
    async generator's ``finally`` runs and an HTTP body is released. An
    exception raised by the iterable goes to ``on_error`` unchanged; its end to
    ``on_completed``.

    Pass a factory rather than an async iterator object if the Observable may
    be subscribed more than once (an iterator can be consumed only once).

    Marble diagram::

        async iterable:  a--b---c-|
        result:          a--b---c-|        (pulled one at a time)

    Args:
        source: an async iterable, or a zero-argument callable returning one.
        loop: the event loop to iterate on (default: the running loop).

    Raises:
        ConfigError: `source` is neither; or, at subscription, no loop is
            running and none was given (subscribe inside async code, or use `run`).

    Example:
        >>> async def numbers():
        ...     try:
        ...         for i in range(3):
        ...             yield i
        ...     finally:
        ...         print("closed")
        >>> obs = from_async_iterable(numbers)
        >>> asyncio.run(to_list(obs))  # doctest: +SKIP
        closed
        [0, 1, 2]
    """
    if callable(source):
        factory = source
    elif hasattr(source, "__aiter__"):
        iterable = source

        def factory() -> AsyncIterable[T]:
            return iterable

    else:
        raise ConfigError(
            f"from_async_iterable() needs an async iterable or a function returning one, "
            f"got {type(source).__name__}"
        )
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        raise ConfigError(f"loop must be an asyncio event loop, got {type(loop).__name__}")

    def subscribe(
        observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        running = _get_running_loop()
        target = loop if loop is not None else running
        if target is None:
            raise ConfigError(
                "from_async_iterable() was subscribed outside a running asyncio event loop; "
                "subscribe inside async code (await rxtokens.aio.collect(...), async for ... in "
                "rxtokens.aio.to_async_iterator(...)), pass loop=..., or use rxtokens.aio.run()"
            )
        pump = _Pump(factory, observer, current_flow_control.get(), target)
        if target is running:
            pump.start()
        else:
            try:
                target.call_soon_threadsafe(pump.start)
            except RuntimeError:
                pump.dispose()
                pump._release()
                raise ConfigError(f"the event loop {target!r} is closed") from None
        return pump

    return reactivex.create(subscribe)


# --- Observable -> async iterator -----------------------------------------------------------

_COMPLETED: Any = object()


class _Sink(Generic[T]):
    """The queue behind an `ObservableAsyncIterator` (what the subscription references).

    Kept apart from the iterator so that a running source does not keep the
    user-facing iterator alive: an iterator dropped without ``aclose()`` is
    garbage-collected and disposes the subscription.

    Lock-free: there is one producer at a time (the Observable contract) and one
    consumer, ``deque.append`` / ``popleft`` are atomic, and the consumer
    re-checks the queue after publishing its waiter, so a wake-up is never lost
    (a spurious one is harmless: `get` loops).
    """

    __slots__ = (
        "closed",
        "dispose_requested",
        "flow",
        "loop",
        "maxsize",
        "queue",
        "subscription",
        "terminal",
        "waiter",
    )

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.flow = FlowControl(high_water=maxsize) if maxsize > 0 else None
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
            _resolve_threadsafe(waiter)

    # producer side (any thread)

    def on_next(self, item: T) -> None:
        if self.terminal is not None:
            return
        queue = self.queue
        flow = self.flow
        if flow is not None and len(queue) >= self.maxsize and flow._sources == 0:
            self.terminal = BackpressureOverflowError(
                f"to_async_iterator() queue overflowed its capacity of {self.maxsize} items: "
                "the consumer is slower than the source and the source cannot be paused "
                "(it is not pull-based); raise maxsize, consume faster, or put an "
                "on_backpressure_* operator in front",
                capacity=self.maxsize,
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
        self.loop = asyncio.get_running_loop()
        with flow_control_scope(self.flow):
            subscription = observable.subscribe(self.on_next, self.on_error, self.on_completed)
        if self.dispose_requested:
            subscription.dispose()
        else:
            self.subscription = subscription

    async def get(self) -> T:
        queue = self.queue
        while not queue:
            terminal = self.terminal
            if terminal is not None:
                self.terminal = _COMPLETED
                if terminal is _COMPLETED:
                    raise StopAsyncIteration
                raise terminal
            assert self.loop is not None
            waiter = self.waiter = self.loop.create_future()
            if queue or self.terminal is not None:  # arrived meanwhile (another thread)
                self.waiter = None
                continue
            try:
                await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None
        item = queue.popleft()
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

    def __init__(self, observable: Observable[T], *, maxsize: int = 256) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ConfigError(f"maxsize must be an int >= 0 (0 = unbounded), got {maxsize!r}")
        self._observable = observable
        self._sink: _Sink[T] = _Sink(maxsize)
        self._started = False

    def __repr__(self) -> str:
        sink = self._sink
        return (
            f"ObservableAsyncIterator(maxsize={sink.maxsize}, queued={len(sink.queue)}, "
            f"closed={sink.closed})"
        )

    @property
    def flow_control(self) -> FlowControl | None:
        """The gate this iterator's queue drives (None when ``maxsize=0``)."""
        return self._sink.flow

    @property
    def maxsize(self) -> int:
        """The queue's capacity (0: unbounded)."""
        return self._sink.maxsize

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
    observable: Observable[T], *, maxsize: int = 256
) -> ObservableAsyncIterator[T]:
    """Iterate an Observable with ``async for``, through a bounded queue.

    The subscription starts at the first ``__anext__`` (inside the running
    loop). Items may be pushed from any thread; they are queued in order and
    the consumer is woken thread-safely. When the queue holds ``maxsize``
    items its `FlowControl` pauses, so pull-based sources of the pipeline
    (`from_async_iterable`, see the module docstring) stop reading; it resumes
    at ``maxsize // 2``. An item already pulled may still expand into several
    (a network chunk into many tokens), so with a pull-based source the queue
    can briefly exceed ``maxsize``. A source that cannot be paused and
    overflows the queue fails with `BackpressureOverflowError` (``capacity``
    = maxsize) after the queued items, instead of growing without bound.

    Errors are re-raised in the consumer after the items before them. Leaving
    the loop early should close the iterator: ``await it.aclose()``, ``async
    with to_async_iterator(obs) as it:`` or ``contextlib.aclosing``; an
    unclosed iterator disposes its subscription when garbage-collected.

    Args:
        observable: the source.
        maxsize: queue capacity; 0 means unbounded (no flow control, no overflow).

    Raises:
        ConfigError: `maxsize` is not an int >= 0.

    Example:
        >>> async def main(pipeline):
        ...     async with to_async_iterator(pipeline, maxsize=64) as tokens:
        ...         async for token in tokens:
        ...             print(token)
    """
    return ObservableAsyncIterator(observable, maxsize=maxsize)


# --- awaitables -----------------------------------------------------------------------------


async def _consume(observable: Observable[T], on_item: Callable[[T], bool]) -> None:
    """Subscribe and wait for the end. `on_item` returns True to stop early."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    stopped = False

    def settle(error: BaseException | None) -> None:
        def apply() -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        if _get_running_loop() is loop:
            apply()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(apply)

    def on_next(value: T) -> None:
        nonlocal stopped
        if stopped:
            return
        try:
            stop = on_item(value)
        except Exception as exc:
            stopped = True
            settle(exc)
            return
        if stop:
            stopped = True
            subscription.dispose()  # at once: a greedy source must not run on
            settle(None)

    def on_error(error: Exception) -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            settle(error)

    def on_completed() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            settle(None)

    subscription = SingleAssignmentDisposable()
    # unbounded consumers: never let an inherited FlowControl pause these sources
    with flow_control_scope(None):
        subscription.disposable = observable.subscribe(on_next, on_error, on_completed)
    try:
        await done
    finally:
        subscription.dispose()
        if done.done() and not done.cancelled():
            done.exception()  # mark as retrieved


_MISSING: Any = object()


async def first(observable: Observable[T], *, default: Any = _MISSING) -> T:
    """The first item (then the subscription is disposed).

    Raises:
        EmptyStreamError: the Observable completed empty and no `default` was given.
    """
    items: list[T] = []

    def take(value: T) -> bool:
        items.append(value)
        return True

    await _consume(observable, take)
    if items:
        return items[0]
    if default is _MISSING:
        raise EmptyStreamError("first(): the observable completed without emitting anything")
    return cast(T, default)


async def last(observable: Observable[T], *, default: Any = _MISSING) -> T:
    """The last item, once the Observable completes.

    Raises:
        EmptyStreamError: the Observable completed empty and no `default` was given.
    """
    box: list[T] = []

    def keep(value: T) -> bool:
        if box:
            box[0] = value
        else:
            box.append(value)
        return False

    await _consume(observable, keep)
    if box:
        return box[0]
    if default is _MISSING:
        raise EmptyStreamError("last(): the observable completed without emitting anything")
    return cast(T, default)


async def to_list(observable: Observable[T]) -> list[T]:
    """Every item, once the Observable completes."""
    items: list[T] = []

    def keep(value: T) -> bool:
        items.append(value)
        return False

    await _consume(observable, keep)
    return items


async def collect(
    observable: Observable[StreamToken],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (on expiry the error carries .partial)
) -> Completion:
    """Await the final `Completion` of a token stream (what ``pipe(aggregate())`` emits).

    Args:
        observable: a token stream.
        timeout: seconds for the whole stream; on expiry the subscription is
            disposed and `StreamTimeoutError` (``phase="total"``) is raised with
            ``.partial``.

    Raises:
        StreamError: the stream failed; ``.partial`` holds everything received before.

    Example:
        >>> completion = await collect(provider_stream)  # doctest: +SKIP
        >>> completion.text  # doctest: +SKIP
    """
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ConfigError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not callable(getattr(observable, "subscribe", None)):
        raise ConfigError(
            f"collect() needs an Observable of tokens, got {type(observable).__name__}"
        )
    builder = CompletionBuilder()
    add = builder.add

    def keep(token: StreamToken) -> bool:
        add(token)
        return False

    try:
        if timeout is None:
            await _consume(observable, keep)
        else:
            async with asyncio.timeout(timeout):
                await _consume(observable, keep)
    except StreamError as exc:
        attach_partial(exc, builder)
        raise
    except TimeoutError:
        raise StreamTimeoutError(
            f"the stream did not complete within {timeout} s; raise the timeout or pass "
            "timeout=None (the text received so far is in .partial)",
            phase="total",
            timeout=cast(float, timeout),
            partial=builder.build(strict=False),
        ) from None
    return builder.build()


RunSource = (
    Observable[StreamToken]
    | Callable[[], Observable[StreamToken] | Awaitable[Observable[StreamToken] | Completion]]
)


def run(source: RunSource, *, timeout: float | None = None) -> Completion:
    """Stream to completion from synchronous code (a script) and return the `Completion`.

    Starts an event loop with `asyncio.run`. `source` is a token Observable,
    or a zero-argument function (sync or async) returning one (so that it is
    built inside the loop) or returning a `Completion` directly.

    Args:
        source: what to run.
        timeout: seconds for everything; `StreamTimeoutError` on expiry.

    Raises:
        ConfigError: called while an event loop is running in this thread
            (Jupyter, async code): use ``await collect(...)`` there.
        StreamError: the stream failed (with ``.partial``).

    Example:
        >>> completion = run(lambda: stream("openai:gpt-4o-mini", "Hi"))  # doctest: +SKIP
    """
    if _get_running_loop() is not None:
        raise ConfigError(
            "rxtokens.aio.run() cannot be called while an event loop is running in this thread "
            "(Jupyter, async code); use `await rxtokens.aio.collect(observable)` instead"
        )
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ConfigError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not isinstance(source, abc.ObservableBase) and not callable(source):
        raise ConfigError(
            f"run() needs an Observable or a function returning one, got {type(source).__name__}"
        )

    async def main() -> Completion:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        target: Any = source
        if not isinstance(target, abc.ObservableBase):
            target = target()
            # an Observable is awaitable too (its last item): check for it first
            if not isinstance(target, abc.ObservableBase) and inspect.isawaitable(target):
                try:
                    async with asyncio.timeout_at(deadline):
                        target = await target
                except StreamError:
                    raise
                except TimeoutError:
                    raise StreamTimeoutError(
                        f"run() did not finish within {timeout} s",
                        phase="total",
                        timeout=cast(float, timeout),
                    ) from None
        if isinstance(target, Completion):
            return target
        if not isinstance(target, abc.ObservableBase):
            raise ConfigError(
                f"run(): the function returned {type(target).__name__}, "
                "expected an Observable or a Completion"
            )
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await collect(cast(Observable[StreamToken], target), timeout=remaining)

    return asyncio.run(main())


# --- worker thread -> event loop ------------------------------------------------------------

_NEXT, _ERROR, _COMPLETE = 0, 1, 2


class ThreadSafeObserver(abc.ObserverBase[T], abc.DisposableBase):
    """Deliver notifications from any thread to `observer` on `loop`'s thread, in order.

    Notifications are queued and handed over in batches with
    ``loop.call_soon_threadsafe``; on the loop thread with nothing pending they
    are delivered synchronously. Order is preserved across threads (as long as
    the producers respect the Observable contract: no concurrent ``on_next``).
    After `dispose` (or once the loop is closed) everything is dropped. An
    exception raised by `observer` in ``on_next`` is sent to its ``on_error``.

    Example:
        >>> safe = ThreadSafeObserver(observer, asyncio.get_running_loop())  # doctest: +SKIP
        >>> threading.Thread(target=lambda: safe.on_next(1)).start()  # doctest: +SKIP
    """

    __slots__ = ("_disposed", "_lock", "_loop", "_observer", "_pending", "_scheduled", "_stopped")

    def __init__(self, observer: abc.ObserverBase[T], loop: asyncio.AbstractEventLoop) -> None:
        self._observer = observer
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, Any]] = deque()
        self._scheduled = False  # a drain is scheduled or running
        self._disposed = False
        self._stopped = False

    def _push(self, kind: int, value: Any) -> None:
        on_loop = _get_running_loop() is self._loop
        with self._lock:
            if self._disposed or self._stopped:
                return
            if kind != _NEXT:
                self._stopped = True
            self._pending.append((kind, value))
            if self._scheduled:
                return
            self._scheduled = True
        if on_loop:
            self._drain()
        else:
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody can receive anything
                self.dispose()

    def on_next(self, value: T) -> None:
        """Queue `value` for the observer (from any thread)."""
        self._push(_NEXT, value)

    def on_error(self, error: Exception) -> None:
        """Queue the error after everything pending; later notifications are dropped."""
        self._push(_ERROR, error)

    def on_completed(self) -> None:
        """Queue completion after everything pending; later notifications are dropped."""
        self._push(_COMPLETE, None)

    def _drain(self) -> None:
        observer = self._observer
        while True:
            with self._lock:
                if self._disposed or not self._pending:
                    self._pending.clear()
                    self._scheduled = False
                    return
                batch, self._pending = self._pending, deque()
            for kind, value in batch:
                if self._disposed:
                    break
                if kind == _NEXT:
                    try:
                        observer.on_next(value)
                    except Exception as exc:
                        self._disposed = True
                        observer.on_error(exc)
                        break
                elif kind == _ERROR:
                    self._disposed = True
                    observer.on_error(value)
                else:
                    self._disposed = True
                    observer.on_completed()

    def dispose(self) -> None:
        """Drop everything pending and everything sent from now on."""
        with self._lock:
            self._disposed = True
            self._pending.clear()


def observe_on_loop(
    loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[[Observable[T]], Observable[T]]:
    """Operator: deliver items on the event loop's thread, in order, whatever thread produced them.

    For sources that emit from worker threads (llama.cpp, blocking SDKs).
    Cheaper than ``observe_on(AsyncIOThreadSafeScheduler(loop))``: items are
    handed over in batches, one ``call_soon_threadsafe`` per batch.

    Marble diagram::

        source (worker thread):  a-b-c-|
        observe_on_loop():       a-b-c-|    (on the loop thread)

    Args:
        loop: the target loop; default: the loop running where the subscription is made.

    Raises:
        ConfigError: `loop` is not an event loop; or (at subscription) no loop
            was given and none is running.

    Example:
        >>> source.pipe(observe_on_loop()).subscribe(print)  # doctest: +SKIP
    """
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        raise ConfigError(f"loop must be an asyncio event loop, got {type(loop).__name__}")

    def _observe_on_loop(source: Observable[T]) -> Observable[T]:
        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            target = loop if loop is not None else _get_running_loop()
            if target is None:
                raise ConfigError(
                    "observe_on_loop() without a loop must be subscribed inside a running "
                    "event loop; pass loop=..."
                )
            safe = ThreadSafeObserver(observer, target)
            subscription = source.subscribe(safe, scheduler=scheduler)
            return CompositeDisposable(safe, subscription)

        return reactivex.create(subscribe)

    return _observe_on_loop
