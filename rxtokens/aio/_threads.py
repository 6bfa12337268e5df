"""Worker thread -> event loop: `ThreadSafeObserver`, `observe_on_loop`."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from ..errors import (
    ConfigError,
)

T = TypeVar("T")


_get_running_loop = asyncio._get_running_loop  # C-accelerated; None outside a running loop


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
