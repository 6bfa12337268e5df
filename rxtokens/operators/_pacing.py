"""Pacing: re-time a token stream for people (`smooth`, `frames`) or for quotas (`rate_limit`).

All three never drop, reorder or alter text: they only decide *when* tokens are
delivered (`smooth` also re-cuts text deltas at word/line boundaries, `frames`
merges adjacent deltas). Time is read from the scheduler: a virtual-time
scheduler (``reactivex.testing.TestScheduler``) through its clock, so tests are
exact and deterministic; any real scheduler through `time.monotonic`.

Scheduling helpers shared with other families live in ``_scheduling``; pending
deltas are merged by the one coalescer (`rxtokens.coalesce`).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from reactivex import Observable, abc
from reactivex.disposable import (
    CompositeDisposable,
    Disposable,
    SerialDisposable,
    SingleAssignmentDisposable,
)

from ..coalesce import TokenMerger
from ..errors import ConfigError
from ..tokens import ReasoningDelta, RefusalDelta, TextDelta
from ._scheduling import clock_of, default_scheduler, schedule_at

__all__ = [
    "Chunking",
    "frames_operator",
    "rate_limit_operator",
    "smooth_operator",
]

Chunking: TypeAlias = "Literal['word', 'line', 'char'] | re.Pattern[str]"

_CHUNKINGS: dict[str, re.Pattern[str]] = {
    # Vercel AI SDK's smoothStream: a word with the whitespace after it
    "word": re.compile(r"\S+\s+"),
    "line": re.compile(r"[^\n]*\n"),
    "char": re.compile(r".", re.S),
}

_TEXT_KINDS: frozenset[type] = frozenset({TextDelta, ReasoningDelta, RefusalDelta})
_INF = float("inf")


def chunk_pattern(chunking: Chunking) -> re.Pattern[str]:
    """The regex `smooth` cuts text with (validated eagerly)."""
    if isinstance(chunking, re.Pattern):
        if not isinstance(chunking.pattern, str):
            raise ConfigError(f"chunking pattern must be a str pattern, got {chunking.pattern!r}")
        if chunking.search("") is not None:
            raise ConfigError(
                f"chunking pattern {chunking.pattern!r} matches the empty string; "
                "it must match at least one character (e.g. r'\\S+\\s+')"
            )
        return chunking
    if isinstance(chunking, str) and chunking in _CHUNKINGS:
        return _CHUNKINGS[chunking]
    raise ConfigError(
        f"chunking must be 'word', 'line', 'char' or a compiled re.Pattern, got {chunking!r}"
    )


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value != value or value == _INF or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- paced queue


class _PacedQueue:
    """A FIFO drained on a scheduler under a gate; shared by `smooth` and `rate_limit`.

    Items wait in the queue until ``ready_at()`` (subclass) has passed; then
    they are delivered and ``emitted(now, paced)`` updates the gate. Terminal
    notifications queue behind the items (nothing is lost, order is kept, the
    gate is never broken): the error or completion is delivered as soon as
    the queue is empty. One timer at a time, in a `SerialDisposable`.
    """

    def __init__(self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase) -> None:
        self.observer = observer
        self.scheduler = scheduler
        self.clock = clock_of(scheduler)
        self.lock = threading.RLock()
        self.queue: deque[tuple[Any, bool]] = deque()
        self.timer = SerialDisposable()
        self.timer_pending = False
        self.terminal: list[Exception | None] = []
        self.done = False

    def ready_at(self) -> float:
        raise NotImplementedError

    def emitted(self, now: float, paced: bool) -> None:
        raise NotImplementedError

    def push(self, item: Any, paced: bool) -> None:
        self.queue.append((item, paced))

    def kick(self) -> None:
        """Deliver what is due now (call with the lock held, after pushing)."""
        if not self.timer_pending:
            self.drain(self.clock())

    def finish(self, error: Exception | None) -> None:
        self.terminal.append(error)
        self.kick()

    def drain(self, now: float) -> None:
        queue = self.queue
        while queue and not self.done:
            due = self.ready_at()
            if now < due:
                self.timer_pending = True
                self.timer.disposable = schedule_at(self.scheduler, due, now, self._fire)
                return
            item, paced = queue.popleft()
            self.emitted(now, paced)
            self.observer.on_next(item)
        if self.terminal and not self.done:
            self.done = True
            error = self.terminal[0]
            if error is None:
                self.observer.on_completed()
            else:
                self.observer.on_error(error)

    def _fire(self, due: float) -> None:
        with self.lock:
            self.timer_pending = False
            self.drain(max(self.clock(), due))

    def dispose(self) -> None:
        with self.lock:
            self.done = True
            self.queue.clear()
        self.timer.dispose()


class _SmoothQueue(_PacedQueue):
    """Cuts text deltas into chunks; each chunk is followed by `delay` of silence."""

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        scheduler: abc.SchedulerBase,
        delay: float,
        search: Callable[[str], re.Match[str] | None],
        pattern_text: str,
    ) -> None:
        super().__init__(observer, scheduler)
        self.delay = delay
        self.search = search
        self.pattern_text = pattern_text
        self.next_time = -_INF
        self.buffer = ""  # text received but not yet a complete chunk
        self.buffer_index = 0

    def ready_at(self) -> float:
        return self.next_time

    def emitted(self, now: float, paced: bool) -> None:
        if paced:
            self.next_time = now + self.delay

    def flush(self) -> None:
        """Queue the incomplete chunk as is (unpaced), if any."""
        if self.buffer:
            self.push(TextDelta(self.buffer, self.buffer_index), False)
            self.buffer = ""

    def add(self, token: Any) -> None:
        if type(token) is not TextDelta:
            self.flush()
            self.push(token, False)
            return
        if token.index != self.buffer_index:
            self.flush()
            self.buffer_index = token.index
        buffer = self.buffer + token.text
        index = self.buffer_index
        search = self.search
        while True:
            match = search(buffer)
            if match is None:
                break
            end = match.end()
            if end == 0:
                self.buffer = buffer
                raise ConfigError(
                    f"chunking pattern {self.pattern_text!r} matched an empty chunk in "
                    f"{buffer!r}; it must consume at least one character"
                )
            self.push(TextDelta(buffer[:end], index), True)
            buffer = buffer[end:]
        self.buffer = buffer


class _RateQueue(_PacedQueue):
    """GCRA (the virtual-scheduling form of a token bucket)."""

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        scheduler: abc.SchedulerBase,
        interval: float,
        burst: int,
    ) -> None:
        super().__init__(observer, scheduler)
        self.interval = interval
        self.tolerance = (burst - 1) * interval
        self.tat = -_INF  # theoretical arrival time of the next item

    def ready_at(self) -> float:
        return self.tat - self.tolerance

    def emitted(self, now: float, paced: bool) -> None:
        self.tat = max(self.tat, now) + self.interval


def _run_paced(
    source: Observable[Any],
    make: Callable[[abc.ObserverBase[Any], abc.SchedulerBase], _PacedQueue],
    on_item: Callable[[_PacedQueue, Any], None],
    on_end: Callable[[_PacedQueue], None] | None,
    scheduler: abc.SchedulerBase | None,
) -> Observable[Any]:
    def subscribe(
        observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        paced = make(observer, scheduler or scheduler_ or default_scheduler())
        upstream = SingleAssignmentDisposable()

        def on_next(token: Any) -> None:
            with paced.lock:
                if paced.done or paced.terminal:
                    return
                on_item(paced, token)
                failed = bool(paced.terminal)
                paced.kick()
            if failed:  # on_item ended the stream: stop the source
                upstream.dispose()

        def on_terminal(error: Exception | None) -> None:
            with paced.lock:
                if paced.done or paced.terminal:
                    return
                if on_end is not None:
                    on_end(paced)
                paced.finish(error)

        upstream.disposable = source.subscribe(
            on_next,
            on_terminal,
            lambda: on_terminal(None),
            scheduler=scheduler_,
        )
        return CompositeDisposable(upstream, Disposable(paced.dispose))

    return Observable(subscribe)


# --------------------------------------------------------------------------- operators


def smooth_operator(
    delay: float = 0.01,
    chunking: Chunking = "word",
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.smooth` (see there)."""
    delay = _positive("delay", delay, allow_zero=True)
    pattern = chunk_pattern(chunking)
    search = pattern.search

    def operator(source: Observable[Any]) -> Observable[Any]:
        def make(observer: abc.ObserverBase[Any], sched: abc.SchedulerBase) -> _PacedQueue:
            return _SmoothQueue(observer, sched, delay, search, pattern.pattern)

        def on_item(q: _PacedQueue, token: Any) -> None:
            assert isinstance(q, _SmoothQueue)
            try:
                q.add(token)
            except ConfigError as error:
                q.flush()
                q.finish(error)

        def on_end(q: _PacedQueue) -> None:
            assert isinstance(q, _SmoothQueue)
            q.flush()

        return _run_paced(source, make, on_item, on_end, scheduler)

    return operator


def rate_limit_operator(
    tokens_per_second: float,
    burst: int = 1,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.rate_limit` (see there)."""
    rate = _positive("tokens_per_second", tokens_per_second)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ConfigError(f"burst must be an int >= 1, got {burst!r}")
    interval = 1.0 / rate

    def operator(source: Observable[Any]) -> Observable[Any]:
        def make(observer: abc.ObserverBase[Any], sched: abc.SchedulerBase) -> _PacedQueue:
            return _RateQueue(observer, sched, interval, burst)

        def on_item(q: _PacedQueue, token: Any) -> None:
            q.push(token, True)

        return _run_paced(source, make, on_item, None, scheduler)

    return operator


def frames_operator(
    fps: float = 30,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.frames` (see there)."""
    period = 1.0 / _positive("fps", fps)

    def operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = scheduler or scheduler_ or default_scheduler()
            clock = clock_of(sched)
            lock = threading.RLock()
            pending = TokenMerger()
            timer = SerialDisposable()
            upstream = SingleAssignmentDisposable()
            last_flush = -_INF
            timer_pending = False
            done = False

            def flush(now: float) -> None:
                nonlocal last_flush
                last_flush = now
                for item in pending.take_all():
                    if done:
                        return
                    observer.on_next(item)

            def fire(due: float) -> None:
                nonlocal timer_pending
                with lock:
                    timer_pending = False
                    if pending and not done:
                        flush(max(clock(), due))

            def on_next(token: Any) -> None:
                nonlocal timer_pending
                with lock:
                    if done:
                        return
                    pending.append(token)
                    if timer_pending:
                        return
                    now = clock()
                    due = last_flush + period
                    if now >= due:
                        flush(now)
                    else:
                        timer_pending = True
                        timer.disposable = schedule_at(sched, due, now, fire)

            def on_terminal(error: Exception | None) -> None:
                nonlocal done
                with lock:
                    if done:
                        return
                    timer.dispose()
                    flush(clock())
                    if done:
                        return
                    done = True
                    if error is None:
                        observer.on_completed()
                    else:
                        observer.on_error(error)

            def cancel() -> None:
                nonlocal done
                with lock:
                    done = True
                    pending.clear()
                timer.dispose()

            upstream.disposable = source.subscribe(
                on_next, on_terminal, lambda: on_terminal(None), scheduler=scheduler_
            )
            return CompositeDisposable(upstream, timer, Disposable(cancel))

        return Observable(subscribe)

    return operator
