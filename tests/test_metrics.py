"""metrics (rxtokens/operators/_metrics.py), in virtual time."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError, ProviderError
from rxtokens.operators import (
    MetricsSnapshot,
    StreamMetrics,
    metrics,
)
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    StepBoundary,
    TextDelta,
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
