"""Async iterable -> Observable: the pull-based `from_async_iterable`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc

from ..errors import (
    ConfigError,
)
from ._flow import FlowControl, current_flow_control

T = TypeVar("T")

log = logging.getLogger("rxtokens.aio")

_get_running_loop = asyncio._get_running_loop  # C-accelerated; None outside a running loop

_background_tasks: set[asyncio.Task[None]] = set()
"""Strong references to running pump tasks (the loop keeps only weak ones)."""


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
