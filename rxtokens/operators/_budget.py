"""Budgets: `take_budget` ends a stream cleanly at a token budget or a time limit.

The stream ends with ``Finish("length")`` (token budget) or
``Finish("length", raw="timeout")`` (time limit) for each open choice, and the
source is disposed. Time comes from the scheduler (`clock_of`): virtual time
under a ``TestScheduler``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import (
    CompositeDisposable,
    Disposable,
    SerialDisposable,
    SingleAssignmentDisposable,
)

from ..errors import ConfigError
from ..tokens import Finish, ToolCall, ToolCallDelta, Usage
from ._kinds import CONTENT_KINDS
from ._scheduling import clock_of, default_scheduler, schedule_at

__all__ = ["default_output_count", "take_budget_operator"]


def default_output_count(token: Any) -> int:
    """One output token per content delta: providers stream about one model token per delta."""
    return 1 if type(token) in CONTENT_KINDS else 0


def take_budget_operator(
    max_output_tokens: int | None = None,
    max_seconds: float | None = None,
    count: Callable[[Any], int] | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.take_budget` (see there)."""
    if max_output_tokens is None and max_seconds is None:
        raise ConfigError("take_budget needs max_output_tokens and/or max_seconds")
    if max_output_tokens is not None and (
        isinstance(max_output_tokens, bool)
        or not isinstance(max_output_tokens, int)
        or max_output_tokens < 1
    ):
        raise ConfigError(f"max_output_tokens must be an int >= 1, got {max_output_tokens!r}")
    if max_seconds is not None and (
        isinstance(max_seconds, bool)
        or not isinstance(max_seconds, int | float)
        or not 0 < max_seconds < math.inf
    ):
        raise ConfigError(f"max_seconds must be a positive number, got {max_seconds!r}")
    if count is not None and not callable(count):
        raise ConfigError(f"count must be callable, got {count!r}")
    counter = count or default_output_count
    budget = max_output_tokens if max_output_tokens is not None else math.inf

    def operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            lock = threading.RLock()
            upstream = SingleAssignmentDisposable()
            timer = SerialDisposable()
            used = 0
            open_choices: dict[int, None] = {}  # choice indices seen and not finished
            seen_choices: set[int] = set()
            stopped = False

            def stop(reason: str) -> None:
                nonlocal stopped
                stopped = True
                upstream.dispose()
                timer.dispose()
                # a time limit is a length limit too: normalised "length", raw "timeout"
                raw = None if reason == "length" else reason
                for index in list(open_choices) if seen_choices else [0]:
                    observer.on_next(Finish("length", index, raw))
                observer.on_completed()

            def on_next(token: Any) -> None:
                nonlocal used
                with lock:
                    if stopped:
                        return
                    try:
                        cost = counter(token)
                    except Exception as error:
                        stopped_with(error)
                        return
                    kind = type(token)
                    if kind is Usage and token.output_tokens is not None and not token.estimated:
                        used = max(used, token.output_tokens)
                    if cost and used + cost > budget:
                        stop("length")
                        return
                    used += cost
                    if kind is Finish:
                        seen_choices.add(token.index)
                        open_choices.pop(token.index, None)
                    elif kind in CONTENT_KINDS:
                        index = token.choice if kind in (ToolCallDelta, ToolCall) else token.index
                        if index not in seen_choices:
                            seen_choices.add(index)
                            open_choices[index] = None
                    observer.on_next(token)
                    if cost and used >= budget:
                        stop("length")

            def stopped_with(error: Exception) -> None:
                nonlocal stopped
                stopped = True
                upstream.dispose()
                timer.dispose()
                observer.on_error(error)

            def on_error(error: Exception) -> None:
                with lock:
                    if not stopped:
                        stopped_with(error)

            def on_completed() -> None:
                nonlocal stopped
                with lock:
                    if not stopped:
                        stopped = True
                        timer.dispose()
                        observer.on_completed()

            def expire(_due: float) -> None:
                with lock:
                    if not stopped:
                        stop("timeout")

            def cancel() -> None:
                nonlocal stopped
                with lock:
                    stopped = True

            if max_seconds is not None:
                sched = scheduler or scheduler_ or default_scheduler()
                now = clock_of(sched)()
                timer.disposable = schedule_at(sched, now + max_seconds, now, expire)
            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler_
            )
            return CompositeDisposable(upstream, timer, Disposable(cancel))

        return Observable(subscribe)

    return operator
