"""Backpressure: bounded queues in front of a slow consumer, and adaptive flow control.

The ``on_backpressure_*`` operators decouple a producer from a consumer the way
``observe_on`` does: the producer's ``on_next`` only puts the token in a
pending queue; a drain running on `scheduler` hands the tokens to the consumer,
**one per scheduled action** (so on an event loop the producer gets a turn
between two deliveries, and on a thread pool the consumer runs on its own
thread). The overflow policy applies to that pending queue, which never holds
more than `max_pending` items (``capacity`` is its former name). Pending
tokens are merged by the one coalescer (`rxtokens.coalesce`).

`rxtokens.operators._adaptive` goes further for pull-based sources.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from reactivex import Observable, abc
from reactivex.disposable import (
    CompositeDisposable,
    Disposable,
    SerialDisposable,
    SingleAssignmentDisposable,
)
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

from ..coalesce import TokenMerger
from ..errors import BackpressureOverflowError, ConfigError

__all__ = ["Overflow", "buffer_operator", "check_capacity", "coalesce_operator"]

Overflow = Literal["error", "drop_oldest", "drop_newest", "drop_latest"]
"""What a full queue does with a new token; ``"drop_latest"`` is an alias of ``"drop_newest"``."""
_OVERFLOWS = ("error", "drop_oldest", "drop_newest")
_ALIASES = {"drop_latest": "drop_newest"}


def _overflow_error(capacity: int, what: str) -> BackpressureOverflowError:
    return BackpressureOverflowError(
        f"the consumer fell {capacity} {what} behind the producer (capacity {capacity}); "
        "raise the capacity, choose overflow='drop_oldest' / 'drop_newest', use "
        "on_backpressure_coalesce(), or slow the producer down with an AdaptiveFlowController",
        capacity=capacity,
    )


class _Pending:
    """The pending queue and its policy; `offer` returns False when the stream must fail."""

    __slots__ = ("capacity", "on_drop", "policy", "queue")

    def __init__(
        self, capacity: int, policy: str, on_drop: Callable[[Any], None] | None, merge: bool
    ) -> None:
        self.capacity = capacity
        self.policy = policy
        self.on_drop = on_drop
        self.queue: TokenMerger | deque[Any] = TokenMerger() if merge else deque()

    def offer(self, item: Any) -> Any:
        """Queue `item`; returns the item the policy dropped (or `_NOTHING`).

        Raises:
            BackpressureOverflowError: the queue is full and the policy is ``"error"``
                (the offending item is not queued).
        """
        queue = self.queue
        queue.append(item)
        if len(queue) <= self.capacity:
            return _NOTHING  # queued (or merged into the last pending item)
        if self.policy == "drop_oldest":
            return queue.popleft()
        dropped = queue.pop()  # `item` itself: the length grew, so it was not merged
        if self.policy == "drop_newest":
            return dropped
        raise _overflow_error(self.capacity, "items")


_NOTHING = object()


def _decoupled(
    capacity: int,
    policy: str,
    on_drop: Callable[[Any], None] | None,
    merge: bool,
    scheduler: abc.SchedulerBase | None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    def operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = scheduler or scheduler_
            if sched is None:
                loop = asyncio._get_running_loop()
                if loop is None:
                    # Nothing to decouple with: deliver synchronously (nothing can pile up).
                    return source.subscribe(observer, scheduler=scheduler_)
                sched = AsyncIOThreadSafeScheduler(loop)
            drain_scheduler: abc.SchedulerBase = sched
            lock = threading.Lock()
            pending = _Pending(capacity, policy, on_drop, merge)
            queue = pending.queue
            terminal: list[Exception | None] = []
            upstream = SingleAssignmentDisposable()
            drain = SerialDisposable()
            scheduled = False
            done = False

            def schedule_drain() -> None:
                drain.disposable = drain_scheduler.schedule(drain_one)

            def drain_one(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
                nonlocal scheduled, done
                with lock:
                    if done:
                        return
                    if queue:
                        item: Any = queue.popleft()
                        is_item = True
                    else:
                        is_item = False
                        done = True
                        error = terminal[0] if terminal else None
                if not is_item:
                    if error is None:
                        observer.on_completed()
                    else:
                        observer.on_error(error)
                    return
                observer.on_next(item)
                with lock:
                    again = not done and (bool(queue) or bool(terminal))
                    scheduled = again
                if again:
                    schedule_drain()

            def on_next(item: Any) -> None:
                nonlocal scheduled
                dropped: Any = _NOTHING
                overflow: BackpressureOverflowError | None = None
                with lock:
                    if done or terminal:
                        return
                    try:
                        dropped = pending.offer(item)
                    except BackpressureOverflowError as error:
                        overflow = error
                        terminal.append(error)
                    start = not scheduled
                    scheduled = True
                if overflow is not None:
                    upstream.dispose()
                elif dropped is not _NOTHING and on_drop is not None:
                    try:
                        on_drop(dropped)
                    except Exception as error:
                        with lock:
                            if not terminal:
                                terminal.append(error)
                        upstream.dispose()
                if start:
                    schedule_drain()

            def on_terminal(error: Exception | None) -> None:
                nonlocal scheduled
                with lock:
                    if done or terminal:
                        return
                    terminal.append(error)
                    start = not scheduled
                    scheduled = True
                if start:
                    schedule_drain()

            def cancel() -> None:
                nonlocal done
                with lock:
                    done = True
                    queue.clear()

            upstream.disposable = source.subscribe(
                on_next, on_terminal, lambda: on_terminal(None), scheduler=scheduler_
            )
            return CompositeDisposable(upstream, drain, Disposable(cancel))

        return Observable(subscribe)

    return operator


def check_capacity(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
    return value


def buffer_operator(
    max_pending: int,
    overflow: Overflow = "error",
    on_drop: Callable[[Any], None] | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `on_backpressure_buffer` and `on_backpressure_latest` (see there)."""
    check_capacity("max_pending", max_pending)
    overflow = _ALIASES.get(overflow, overflow)  # type: ignore[assignment]
    if overflow not in _OVERFLOWS:
        raise ConfigError(f"overflow must be one of {_OVERFLOWS}, got {overflow!r}")
    if on_drop is not None and not callable(on_drop):
        raise ConfigError(f"on_drop must be callable, got {on_drop!r}")
    return _decoupled(max_pending, overflow, on_drop, False, scheduler)


def coalesce_operator(
    max_pending: int = 1024,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `on_backpressure_coalesce` (see there)."""
    check_capacity("max_pending", max_pending)
    return _decoupled(max_pending, "error", None, True, scheduler)
