"""Metrics: measure a stream (`metrics`): time to first token, rates, latencies, usage.

Time comes from the scheduler (`clock_of`): virtual time under a
``TestScheduler``, so every figure is exact in tests.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import (
    CompositeDisposable,
    Disposable,
    SerialDisposable,
    SingleAssignmentDisposable,
)
from reactivex.subject import Subject

from ..errors import ConfigError
from ..tokens import Finish, StepBoundary, TextDelta, Usage
from ._kinds import CONTENT_KINDS
from ._scheduling import clock_of, default_scheduler, schedule_at

__all__ = ["MetricsSnapshot", "StreamMetrics", "metrics_operator"]

RESERVOIR_SIZE = 10_000
"""Inter-token latencies kept per stream: all of them up to this many, then a uniform sample."""


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Figures of one stream at one moment (immutable). Times are in seconds.

    Attributes:
        elapsed: since subscription (or, once `done`, from subscription to the end).
        time_to_first_token: from subscription to the first content token
            (text, reasoning, refusal or tool call), or None before it.
        tokens: stream tokens seen, of every kind.
        chunks: `TextDelta` tokens seen.
        characters: characters of visible text (`TextDelta` texts).
        bytes: UTF-8 bytes of that text.
        content_tokens: content tokens seen (what time to first token and the
            inter-token latencies measure).
        output_tokens: output tokens from the latest `Usage` that had them, or None.
        input_tokens: input tokens from the latest `Usage` that had them, or None.
        usage_estimated: that `Usage` was an estimate (counted by rxtokens).
        tokens_per_second: output tokens (`output_tokens` when known, else
            `content_tokens`) per second of generation, from the first content
            token to the last one; None until two content tokens arrived.
        itl_p50: median inter-token latency (between consecutive content tokens).
        itl_p95: 95th percentile of it.
        itl_p99: 99th percentile of it.
        itl_samples: latencies measured (the percentiles use at most
            `RESERVOIR_SIZE` of them, a uniform sample beyond that).
        errors: streams that ended with an error (a `StreamMetrics` reused
            across retries counts each failure).
        error: ``repr`` of the last error, or None.
        finish_reason: the last `Finish` reason seen.
        done: the stream ended (completed, failed or was disposed).

    Example:
        >>> StreamMetrics().snapshot().chunks
        0
    """

    elapsed: float
    time_to_first_token: float | None
    tokens: int
    chunks: int
    characters: int
    bytes: int
    content_tokens: int
    output_tokens: int | None
    input_tokens: int | None
    usage_estimated: bool
    tokens_per_second: float | None
    itl_p50: float | None
    itl_p95: float | None
    itl_p99: float | None
    itl_samples: int
    errors: int
    error: str | None
    finish_reason: str | None
    done: bool


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted data (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class StreamMetrics:
    """Live measurements of a token stream, filled in by `metrics()`.

    Create one and pass it to ``metrics(stats)`` to read it from outside
    (``stats.snapshot()`` at any time, ``stats.snapshots`` as an Observable),
    or let `metrics` create one per subscription and receive it in
    ``on_start``. A `StreamMetrics` describes one run: a new subscription
    resets it (except the `errors` count, which accumulates over retries).

    Memory is bounded: latencies are kept exactly up to `RESERVOIR_SIZE`,
    then as a uniform reservoir sample of that size (Vitter's algorithm R,
    seeded, so results are reproducible).

    Usage: `output_tokens` / `input_tokens` are those of the latest `Usage`.
    With ``sum_steps=True``, for a stream of several responses separated by
    `StepBoundary` (``run_agent``'s), the latest `Usage` of each step is added
    up, so they count the whole run (`usage_estimated`: any step estimated).

    Example:
        >>> stats = StreamMetrics()
        >>> stats.snapshot().tokens
        0
    """

    __slots__ = (
        "_base_estimated",
        "_base_input",
        "_base_output",
        "_clock",
        "_draw",
        "_latencies",
        "_lock",
        "_non_content",
        "_other_content",
        "_random",
        "_reservoir_size",
        "_subject",
        "_sum_steps",
        "bytes",
        "characters",
        "chunks",
        "ended_at",
        "error",
        "errors",
        "finish_reason",
        "first_at",
        "input_tokens",
        "itl_samples",
        "last_at",
        "output_tokens",
        "started_at",
        "usage_estimated",
    )

    def __init__(self, *, reservoir_size: int = RESERVOIR_SIZE, sum_steps: bool = False) -> None:
        if isinstance(reservoir_size, bool) or not isinstance(reservoir_size, int):
            raise ConfigError(f"reservoir_size must be an int >= 1, got {reservoir_size!r}")
        if reservoir_size < 1:
            raise ConfigError(f"reservoir_size must be an int >= 1, got {reservoir_size!r}")
        self._reservoir_size = reservoir_size
        self._sum_steps = bool(sum_steps)
        self._lock = threading.Lock()
        self._subject: Subject[MetricsSnapshot] = Subject()
        self.errors = 0
        self._reset(lambda: 0.0)

    def _reset(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.started_at = clock()
        self.ended_at: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.chunks = 0
        self._other_content = 0  # content tokens other than `TextDelta`
        self._non_content = 0  # `Usage`, `Finish` and unknown kinds
        self.characters = 0
        self.bytes = 0
        self.output_tokens: int | None = None
        self.input_tokens: int | None = None
        self.usage_estimated = False
        self._base_output = self._base_input = 0  # the earlier steps' (sum_steps)
        self._base_estimated = False
        self.itl_samples = 0
        self._latencies: list[float] = []
        self._random = random.Random(0)
        self._draw = self._random.random
        self.error: str | None = None
        self.finish_reason: str | None = None

    @property
    def tokens(self) -> int:
        """Stream tokens seen, of every kind."""
        return self.chunks + self._other_content + self._non_content

    @property
    def content_tokens(self) -> int:
        """Content tokens seen (text, reasoning, refusal, tool calls)."""
        return self.chunks + self._other_content

    @property
    def snapshots(self) -> Observable[MetricsSnapshot]:
        """Hot Observable of the snapshots `metrics` publishes.

        One every ``interval`` seconds during the stream (if an interval was
        given) and the final summary (``done=True``) at the end. It never
        completes (a `StreamMetrics` can be reused); use
        ``take_while(lambda s: not s.done, inclusive=True)`` for one run.
        """
        return self._subject

    def _record(self, token: Any, now: float) -> None:
        """Account for one token (the hot path: keep it lean).

        Called by the one thread that delivers the stream's tokens (Rx serializes
        ``on_next``), without the lock: each counter is written by this thread only,
        and `snapshot` copies them under the lock, so a snapshot taken from another
        thread can lag one token behind between two fields, never tear a value.
        """
        kind = type(token)
        if kind is TextDelta:
            text = token.text
            length = len(text)
            self.chunks += 1
            self.characters += length
            self.bytes += length if text.isascii() else len(text.encode("utf-8", "replace"))
        elif kind in CONTENT_KINDS:
            self._other_content += 1
        else:
            self._non_content += 1
            if kind is Usage:
                if token.output_tokens is not None:
                    self.output_tokens = self._base_output + token.output_tokens
                    self.usage_estimated = token.estimated or self._base_estimated
                if token.input_tokens is not None:
                    self.input_tokens = self._base_input + token.input_tokens
            elif kind is Finish:
                self.finish_reason = token.reason
            elif kind is StepBoundary and self._sum_steps:
                self._base_output = self.output_tokens or 0
                self._base_input = self.input_tokens or 0
                self._base_estimated = self.usage_estimated
            return
        last = self.last_at
        self.last_at = now
        if last is None:
            self.first_at = now
            return
        latency = now - last
        n = self.itl_samples = self.itl_samples + 1
        size = self._reservoir_size
        if n <= size:
            self._latencies.append(latency)
        elif self._draw() * n < size:
            # Vitter's algorithm R: the n-th latency enters with probability size / n,
            # in place of a uniformly drawn sample (two C-level draws, no randrange).
            self._latencies[int(self._draw() * size)] = latency

    def snapshot(self) -> MetricsSnapshot:
        """The figures so far (immutable; cheap enough to call a few times per second)."""
        with self._lock:
            latencies = sorted(self._latencies)
            end = self.ended_at if self.ended_at is not None else self._clock()
            first, last = self.first_at, self.last_at
            produced = self.output_tokens if self.output_tokens is not None else self.content_tokens
            rate = None
            if first is not None and last is not None and last > first:
                rate = produced / (last - first)
            return MetricsSnapshot(
                elapsed=end - self.started_at,
                time_to_first_token=None if first is None else first - self.started_at,
                tokens=self.tokens,
                chunks=self.chunks,
                characters=self.characters,
                bytes=self.bytes,
                content_tokens=self.content_tokens,
                output_tokens=self.output_tokens,
                input_tokens=self.input_tokens,
                usage_estimated=self.usage_estimated,
                tokens_per_second=rate,
                itl_p50=_percentile(latencies, 0.50),
                itl_p95=_percentile(latencies, 0.95),
                itl_p99=_percentile(latencies, 0.99),
                itl_samples=self.itl_samples,
                errors=self.errors,
                error=self.error,
                finish_reason=self.finish_reason,
                done=self.ended_at is not None,
            )

    def __repr__(self) -> str:
        s = self.snapshot()
        return (
            f"StreamMetrics(tokens={s.tokens}, chunks={s.chunks}, "
            f"ttft={s.time_to_first_token!r}, done={s.done})"
        )


def metrics_operator(
    stats: StreamMetrics | None = None,
    interval: float | None = None,
    on_snapshot: Callable[[MetricsSnapshot], None] | None = None,
    on_start: Callable[[StreamMetrics], None] | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.metrics` (see there)."""
    if stats is not None and not isinstance(stats, StreamMetrics):
        raise ConfigError(f"stats must be a StreamMetrics, got {stats!r}")
    if interval is not None and (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not 0 < interval < math.inf
    ):
        raise ConfigError(
            f"interval must be a positive number of seconds or None, got {interval!r}"
        )
    for name, fn in (("on_snapshot", on_snapshot), ("on_start", on_start)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"{name} must be callable, got {fn!r}")

    period = float(interval) if interval is not None else 0.0

    def operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = scheduler or scheduler_ or default_scheduler()
            clock = clock_of(sched)
            m = stats if stats is not None else StreamMetrics()
            m._reset(clock)
            upstream = SingleAssignmentDisposable()
            ticker = SerialDisposable()
            ended = False

            def publish(snap: MetricsSnapshot) -> None:
                m._subject.on_next(snap)
                if on_snapshot is not None:
                    on_snapshot(snap)

            def end(error: Exception | None) -> Exception | None:
                """Record the end and publish the summary; returns the error to forward."""
                nonlocal ended
                if ended:
                    return None
                ended = True
                ticker.dispose()
                with m._lock:
                    m.ended_at = clock()
                    if error is not None:
                        m.errors += 1
                        m.error = repr(error)
                try:
                    publish(m.snapshot())
                except Exception as callback_error:
                    return callback_error
                return error

            record = m._record
            emit = observer.on_next

            def on_next(token: Any) -> None:
                if ended:
                    return
                record(token, clock())
                emit(token)

            def on_error(error: Exception) -> None:
                if not ended:
                    observer.on_error(end(error) or error)

            def on_completed() -> None:
                if ended:
                    return
                failure = end(None)
                if failure is None:
                    observer.on_completed()
                else:
                    observer.on_error(failure)

            def tick(due: float) -> None:
                if ended:
                    return
                try:
                    publish(m.snapshot())
                except Exception as error:
                    upstream.dispose()
                    on_error(error)
                    return
                ticker.disposable = schedule_at(sched, due + period, clock(), tick)

            def cancel() -> None:
                """Disposed before the end: publish the summary (callback errors are dropped)."""
                nonlocal ended
                if ended:
                    return
                ended = True
                ticker.dispose()
                with m._lock:
                    m.ended_at = clock()
                with contextlib.suppress(Exception):
                    publish(m.snapshot())

            if on_start is not None:
                try:
                    on_start(m)
                except Exception as error:
                    observer.on_error(error)
                    return Disposable()
            if period:
                now = clock()
                ticker.disposable = schedule_at(sched, now + period, now, tick)
            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler_
            )
            return CompositeDisposable(upstream, ticker, Disposable(cancel))

        return Observable(subscribe)

    return operator
