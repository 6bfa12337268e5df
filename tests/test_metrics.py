"""Metrics and budgets: metrics, take_budget, first_of (virtual time)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import reactivex
from reactivex.disposable import Disposable
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError, ProviderError
from rxtokens.operators import (
    MetricsSnapshot,
    StreamMetrics,
    first_of,
    metrics,
    take_budget,
)
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    StepBoundary,
    TextDelta,
    ToolCallDelta,
    Usage,
)

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


def stream(s: TestScheduler, end: Any = None) -> Any:
    return s.create_hot_observable(
        on_next(202, Usage(10, None)),
        on_next(205, TextDelta("ab")),
        on_next(207, TextDelta("cé")),
        on_next(210, ReasoningDelta("hm")),
        on_next(211, TextDelta("d")),
        on_next(212, Usage(10, 40)),
        on_next(212, Finish("stop")),
        end if end is not None else on_completed(213),
    )


# --------------------------------------------------------------------------- metrics


def test_metrics_measures_and_passes_tokens_through() -> None:
    s = TestScheduler()
    xs = stream(s)
    stats = StreamMetrics()
    snapshots: list[MetricsSnapshot] = []
    res = s.start(lambda: xs.pipe(metrics(stats, on_snapshot=snapshots.append)))
    assert res.messages == [*xs.messages[:-1], on_completed(213)]
    assert xs.subscriptions == [subscribe(200, 213)]
    final = stats.snapshot()
    assert snapshots == [final]
    assert final.done
    assert final.elapsed == 13
    assert final.time_to_first_token == 5
    assert final.tokens == 7
    assert final.chunks == 3
    assert final.characters == 5
    assert final.bytes == 6  # "é" is two UTF-8 bytes
    assert final.content_tokens == 4
    assert (final.input_tokens, final.output_tokens, final.usage_estimated) == (10, 40, False)
    # latencies between content tokens: 2, 3, 1
    assert (final.itl_p50, final.itl_p95, final.itl_p99, final.itl_samples) == (2, 3, 3, 3)
    assert final.tokens_per_second == pytest.approx(40 / 6)  # Usage output tokens / (211 - 205)
    assert final.finish_reason == "stop"
    assert (final.errors, final.error) == (0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        final.tokens = 3  # type: ignore[misc]


def test_metrics_tokens_are_the_same_objects() -> None:
    tokens = [TextDelta("a"), Finish("stop")]
    out: list[Any] = []
    reactivex.from_iterable(tokens).pipe(metrics()).subscribe(out.append)
    assert all(a is b for a, b in zip(out, tokens, strict=True))


def test_metrics_interval_snapshots_and_observable() -> None:
    s = TestScheduler()
    xs = stream(s)
    stats = StreamMetrics()
    seen: list[tuple[float, MetricsSnapshot]] = []
    stats.snapshots.subscribe(lambda snap: seen.append((s.clock, snap)))
    s.start(lambda: xs.pipe(metrics(stats, interval=4)))
    assert [t for t, _ in seen] == [204, 208, 212, 213]
    assert [snap.tokens for _, snap in seen] == [1, 3, 7, 7]  # the 212 tick runs after 212's tokens
    assert [snap.done for _, snap in seen] == [False, False, False, True]
    assert seen[0][1].time_to_first_token is None
    assert seen[1][1].time_to_first_token == 5
    assert not s._queue  # the ticker stopped with the stream


def test_metrics_error_is_counted_and_forwarded() -> None:
    s = TestScheduler()
    error = ProviderError("overloaded")
    xs = s.create_hot_observable(on_next(205, TextDelta("a")), on_error(208, error))
    stats = StreamMetrics()
    res = s.start(lambda: xs.pipe(metrics(stats, interval=1)))
    assert res.messages == [on_next(205, TextDelta("a")), on_error(208, error)]
    snap = stats.snapshot()
    assert (snap.errors, snap.done, snap.elapsed) == (1, True, 8)
    assert "overloaded" in (snap.error or "")
    assert not s._queue


def test_metrics_dispose_publishes_a_final_summary() -> None:
    s = TestScheduler()
    xs = stream(s)
    snapshots: list[MetricsSnapshot] = []
    s.start(lambda: xs.pipe(metrics(on_snapshot=snapshots.append, interval=100)), disposed=208)
    assert xs.subscriptions == [subscribe(200, 208)]
    assert len(snapshots) == 1
    assert snapshots[0].done
    assert snapshots[0].elapsed == 8
    assert snapshots[0].chunks == 2
    assert not s._queue


@pytest.mark.parametrize(
    ("sum_steps", "output", "input_", "estimated"), [(False, 3, 9, False), (True, 10, 14, True)]
)
def test_metrics_sum_steps_adds_up_the_usage_of_each_step(
    sum_steps: bool, output: int, input_: int, estimated: bool
) -> None:
    # two responses (run_agent's): within a step the latest Usage counts, never both
    tokens = [
        TextDelta("a"),
        Usage(5, None),
        Usage(5, 7, estimated=True),
        StepBoundary(1, "tool_calls"),
        TextDelta("b"),
        Usage(9, 3),
    ]
    stats = StreamMetrics(sum_steps=sum_steps)
    reactivex.from_iterable(tokens).pipe(metrics(stats)).subscribe()
    snap = stats.snapshot()
    assert (snap.output_tokens, snap.input_tokens) == (output, input_)
    assert snap.usage_estimated is estimated


def test_metrics_callback_errors_fail_the_stream() -> None:
    s = TestScheduler()
    xs = stream(s)

    def boom(_snap: MetricsSnapshot) -> None:
        raise RuntimeError("callback")

    res = s.start(lambda: xs.pipe(metrics(on_snapshot=boom, interval=4)))
    assert res.messages[-1].time == 204
    assert isinstance(res.messages[-1].value.exception, RuntimeError)
    assert xs.subscriptions == [subscribe(200, 204)]


def test_metrics_on_start_gets_one_object_per_subscription() -> None:
    started: list[StreamMetrics] = []
    source = reactivex.from_iterable([TextDelta("a"), TextDelta("b")])
    op = source.pipe(metrics(on_start=started.append))
    op.subscribe()
    op.subscribe()
    assert len(started) == 2
    assert started[0] is not started[1]
    assert [m.snapshot().chunks for m in started] == [2, 2]


def test_reused_stats_reset_per_run_but_count_errors() -> None:
    stats = StreamMetrics()
    failing = reactivex.concat(reactivex.of(TextDelta("a")), reactivex.throw(ProviderError("x")))
    failing.pipe(metrics(stats)).subscribe(on_error=lambda e: None)
    reactivex.of(TextDelta("b"), TextDelta("c")).pipe(metrics(stats)).subscribe()
    snap = stats.snapshot()
    assert (snap.chunks, snap.errors, snap.done) == (2, 1, True)


def test_latency_storage_is_bounded() -> None:
    stats = StreamMetrics(reservoir_size=100)
    for i in range(10_000):
        stats._record(TextDelta("x"), float(i % 7 + i))
    snap = stats.snapshot()
    assert snap.itl_samples == 9_999
    assert len(stats._latencies) == 100
    assert snap.itl_p50 is not None


@pytest.mark.parametrize(
    "kwargs", [{"interval": 0}, {"interval": -1}, {"on_snapshot": 3}, {"stats": object()}]
)
def test_metrics_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        metrics(**kwargs)


# --------------------------------------------------------------------------- take_budget


def test_take_budget_stops_at_the_token_budget_and_cancels_upstream() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("a")),
        on_next(215, Usage(3, None)),
        on_next(220, TextDelta("b")),
        on_next(230, TextDelta("c")),
        on_completed(240),
    )
    res = s.start(lambda: xs.pipe(take_budget(2)))
    assert res.messages == [
        on_next(210, TextDelta("a")),
        on_next(215, Usage(3, None)),
        on_next(220, TextDelta("b")),
        on_next(220, Finish("length")),
        on_completed(220),
    ]
    assert xs.subscriptions == [subscribe(200, 220)]


def test_take_budget_with_a_counter_never_exceeds() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("ab")),
        on_next(220, TextDelta("cdef")),
        on_next(230, TextDelta("g")),
        on_completed(240),
    )
    counter = lambda t: len(t.text) if type(t) is TextDelta else 0  # noqa: E731
    res = s.start(lambda: xs.pipe(take_budget(5, count=counter)))
    assert res.messages == [
        on_next(210, TextDelta("ab")),
        on_next(220, Finish("length")),  # "cdef" would exceed: not delivered
        on_completed(220),
    ]
    assert xs.subscriptions == [subscribe(200, 220)]


def test_take_budget_counts_provider_usage() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("a")),
        on_next(211, Usage(1, 9)),
        on_next(212, TextDelta("b")),
        on_completed(240),
    )
    res = s.start(lambda: xs.pipe(take_budget(10)))
    assert res.messages[-3:] == [
        on_next(212, TextDelta("b")),
        on_next(212, Finish("length")),
        on_completed(212),
    ]


def test_take_budget_time_limit() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(205, TextDelta("a", 1)),
        on_next(206, ToolCallDelta(0, "x", "f", "{")),
        on_next(209, Finish("stop", 1)),
        on_next(220, TextDelta("late")),
        on_completed(240),
    )
    res = s.start(lambda: xs.pipe(take_budget(max_seconds=15)))
    assert res.messages[-3:] == [
        on_next(209, Finish("stop", 1)),
        on_next(215, Finish("timeout", 0)),  # only the unfinished choice
        on_completed(215),
    ]
    assert xs.subscriptions == [subscribe(200, 215)]
    assert not s._queue


def test_take_budget_passes_completion_errors_and_dispose() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(on_next(210, TextDelta("a")), on_completed(220))
    res = s.start(lambda: xs.pipe(take_budget(5, max_seconds=100)))
    assert res.messages == [on_next(210, TextDelta("a")), on_completed(220)]
    assert not s._queue

    s = TestScheduler()
    error = ProviderError("x")
    xs = s.create_hot_observable(on_next(210, TextDelta("a")), on_error(220, error))
    res = s.start(lambda: xs.pipe(take_budget(5)))
    assert res.messages == [on_next(210, TextDelta("a")), on_error(220, error)]

    s = TestScheduler()
    xs = s.create_hot_observable(on_next(210, TextDelta("a")), on_completed(300))
    res = s.start(lambda: xs.pipe(take_budget(5, max_seconds=50)), disposed=230)
    assert res.messages == [on_next(210, TextDelta("a"))]
    assert xs.subscriptions == [subscribe(200, 230)]
    assert not s._queue


def test_take_budget_counter_errors_fail_the_stream() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(on_next(210, TextDelta("a")), on_completed(300))

    def bad(_token: Any) -> int:
        raise RuntimeError("counter")

    res = s.start(lambda: xs.pipe(take_budget(5, count=bad)))
    assert isinstance(res.messages[-1].value.exception, RuntimeError)
    assert xs.subscriptions == [subscribe(200, 210)]


def test_take_budget_with_a_synchronous_source() -> None:
    out: list[Any] = []
    reactivex.from_iterable(TextDelta(str(i)) for i in range(100)).pipe(take_budget(3)).subscribe(
        out.append
    )
    assert out == [TextDelta("0"), TextDelta("1"), TextDelta("2"), Finish("length")]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"max_output_tokens": 0}, {"max_seconds": 0}, {"max_output_tokens": 1.5}, {"count": 1}],
)
def test_take_budget_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    if "count" in kwargs:
        kwargs["max_output_tokens"] = 3
    with pytest.raises(ConfigError):
        take_budget(**kwargs)


# --------------------------------------------------------------------------- first_of


def test_first_of_keeps_the_first_with_content_and_disposes_the_losers() -> None:
    s = TestScheduler()
    fast = s.create_hot_observable(
        on_next(205, Usage(5, None)),
        on_next(210, TextDelta("fast")),
        on_next(220, Finish("stop")),
        on_completed(225),
    )
    slow = s.create_hot_observable(
        on_next(203, Usage(7, None)),  # not content: does not win the race
        on_next(215, TextDelta("slow")),
        on_completed(230),
    )
    res = s.start(lambda: first_of(slow, fast))
    assert res.messages == [
        on_next(210, Usage(5, None)),  # the winner's early tokens, replayed
        on_next(210, TextDelta("fast")),
        on_next(220, Finish("stop")),
        on_completed(225),
    ]
    assert slow.subscriptions == [subscribe(200, 210)]  # disposed at the winner's first token
    assert fast.subscriptions == [subscribe(200, 225)]


def test_first_of_ignores_sources_that_fail_before_content() -> None:
    s = TestScheduler()
    broken = s.create_hot_observable(on_error(205, ProviderError("down")))
    ok = s.create_hot_observable(on_next(210, TextDelta("hi")), on_completed(220))
    res = s.start(lambda: first_of(broken, ok))
    assert res.messages == [on_next(210, TextDelta("hi")), on_completed(220)]


def test_first_of_all_failing_raises_the_last_error() -> None:
    s = TestScheduler()
    e1, e2 = ProviderError("one"), ProviderError("two")
    a = s.create_hot_observable(on_error(205, e1))
    b = s.create_hot_observable(on_next(203, Usage(1, None)), on_error(207, e2))
    res = s.start(lambda: first_of(a, b))
    assert res.messages == [on_error(207, e2)]


def test_first_of_all_empty_completes_with_the_first_completed() -> None:
    s = TestScheduler()
    a = s.create_hot_observable(on_error(205, ProviderError("one")))
    b = s.create_hot_observable(on_next(203, Usage(1, None)), on_completed(207))
    res = s.start(lambda: first_of(a, b))
    assert res.messages == [on_next(207, Usage(1, None)), on_completed(207)]


def test_first_of_dispose_and_winner_error() -> None:
    s = TestScheduler()
    a = s.create_hot_observable(on_next(210, TextDelta("x")), on_completed(300))
    b = s.create_hot_observable(on_completed(300))
    s.start(lambda: first_of(a, b), disposed=250)
    assert a.subscriptions == [subscribe(200, 250)]
    assert b.subscriptions == [subscribe(200, 210)]

    s = TestScheduler()
    error = ProviderError("mid-stream")
    a = s.create_hot_observable(on_next(210, TextDelta("x")), on_error(220, error))
    res = s.start(lambda: first_of(a))
    assert res.messages == [on_next(210, TextDelta("x")), on_error(220, error)]


def test_first_of_synchronous_winner_skips_the_others() -> None:
    subscribed: list[str] = []

    def tracked(name: str, token: Any) -> Any:
        def emit_now(observer: Any, _scheduler: Any = None) -> Any:
            subscribed.append(name)
            observer.on_next(token)
            observer.on_completed()
            return Disposable()

        return reactivex.create(emit_now)

    out: list[Any] = []
    first_of(tracked("a", TextDelta("a")), tracked("b", TextDelta("b"))).subscribe(out.append)
    assert out == [TextDelta("a")]
    assert subscribed == ["a"]


def test_first_of_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        first_of()
    with pytest.raises(ConfigError):
        first_of([TextDelta("x")])  # type: ignore[arg-type]
