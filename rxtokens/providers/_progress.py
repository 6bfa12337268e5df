"""The progress timeout and total deadline of a provider stream (`Timeouts.progress` / `.total`).

The transport's idle timeout counts any bytes as life, so an upstream that only sends pings
(or comments, or events that carry no token) keeps a stream open for ever. `watch_progress`
watches the tokens instead: one timer per stream, re-armed from the time of the last token,
fails the stream with `StreamTimeoutError` (``phase="progress"`` or ``"total"``) and disposes
the upstream, which closes the connection. `aggregate()` downstream attaches the partial
answer to the error as it does for every stream error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable, SingleAssignmentDisposable

from ..errors import StreamTimeoutError
from ..operators._scheduling import clock_of, default_scheduler, schedule_at
from ._timeouts import Timeouts

__all__ = ["watch_progress"]

_T = TypeVar("_T")


def watch_progress(
    timeouts: Timeouts, provider: str, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Fail the stream when no token came for ``timeouts.progress`` s, or after ``.total`` s.

    Both are measured from subscription (when the request is sent); every item counts as
    progress. With neither set, the operator is the identity (no cost per token).

    Marble diagram (progress=3)::

        source:          -a-b-----------c-|
        watch_progress:  -a-b---#                # = StreamTimeoutError(phase="progress")

    Example:
        >>> import reactivex
        >>> from reactivex.testing import TestScheduler
        >>> scheduler = TestScheduler()
        >>> never = reactivex.never()
        >>> errors = []
        >>> _ = never.pipe(watch_progress(Timeouts(progress=5.0), "openai", scheduler)).subscribe(
        ...     on_error=errors.append, scheduler=scheduler)
        >>> scheduler.advance_to(6.0)
        >>> errors[0].phase, errors[0].timeout
        ('progress', 5.0)
    """
    progress, total = timeouts.progress, timeouts.total
    if progress is None and total is None:
        return lambda source: source

    def _operator(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = scheduler or scheduler_ or default_scheduler()
            clock = clock_of(sched)
            start = last = clock()
            deadline = float("inf") if total is None else start + total
            timer = SerialDisposable()
            upstream = SingleAssignmentDisposable()
            stopped = False

            def next_due() -> tuple[float, str, float]:
                if progress is not None and last + progress < deadline:
                    return last + progress, "progress", progress
                return deadline, "total", total or 0.0

            def check(_due: float) -> None:
                nonlocal stopped
                if stopped:
                    return
                now = clock()
                due, phase, limit = next_due()
                if now < due:  # tokens came since the timer was armed
                    timer.disposable = schedule_at(sched, due, now, check)
                    return
                stopped = True
                upstream.dispose()
                observer.on_error(_timeout(provider, phase, limit))

            def on_next(item: _T) -> None:
                nonlocal last
                if not stopped:
                    last = clock()
                    observer.on_next(item)

            def on_error(error: Exception) -> None:
                nonlocal stopped
                if not stopped:
                    stopped = True
                    timer.dispose()
                    observer.on_error(error)

            def on_completed() -> None:
                nonlocal stopped
                if not stopped:
                    stopped = True
                    timer.dispose()
                    observer.on_completed()

            timer.disposable = schedule_at(sched, next_due()[0], start, check)
            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler_
            )
            return CompositeDisposable(upstream, timer)

        return reactivex.create(subscribe)

    return _operator


def _timeout(provider: str, phase: str, limit: float) -> StreamTimeoutError:
    if phase == "progress":
        what = (
            f"sent no token for {limit:g} s (progress timeout; pings, comments and events "
            "without content do not count)"
        )
    else:
        what = f"did not finish within its total deadline of {limit:g} s"
    return StreamTimeoutError(
        f"{provider} {what}; raise Timeouts.{phase} or check the server",
        phase=phase,
        timeout=limit,
        provider=provider,
    )
