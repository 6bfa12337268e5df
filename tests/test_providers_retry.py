"""retry_with_backoff: marble tests in virtual time (reactivex TestScheduler)."""

from __future__ import annotations

import pytest
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    ProviderHTTPError,
    RateLimitError,
    StreamTimeoutError,
    TextDelta,
    TruncatedStreamError,
)
from rxtokens.operators import retry_with_backoff
from rxtokens.operators._retry import backoff_delay, is_retryable

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed
subscribe = ReactiveTest.subscribe

A, B = TextDelta("a"), TextDelta("b")


def _cold_sequence(scheduler: TestScheduler, attempts: list[list[object]]):
    """A cold source whose k-th subscription replays attempts[k] (relative ticks)."""
    import reactivex

    sources = [scheduler.create_cold_observable(*msgs) for msgs in attempts]
    count = {"n": 0}

    def factory(_: object = None):
        i = min(count["n"], len(sources) - 1)
        count["n"] += 1
        return sources[i]

    return reactivex.defer(factory), sources


def _run(attempts, **kwargs):
    scheduler = TestScheduler()
    source, sources = _cold_sequence(scheduler, attempts)
    op = retry_with_backoff(scheduler=scheduler, **kwargs)
    results = scheduler.start(lambda: source.pipe(op), created=100, subscribed=200, disposed=1000)
    return results.messages, sources


def test_retries_rate_limit_before_first_token_after_backoff() -> None:
    err = RateLimitError("slow down", status=429)
    messages, sources = _run(
        [[on_error(10, err)], [on_next(5, A), on_next(6, B), on_completed(7)]],
        max_attempts=3,
        base_delay=20,
        max_delay=100,
    )
    # first attempt fails at 210, retry after 20 ticks -> resubscribed at 230
    assert messages == [on_next(235, A), on_next(236, B), on_completed(237)]
    assert sources[0].subscriptions == [subscribe(200, 210)]
    assert sources[1].subscriptions == [subscribe(230, 237)]


def test_backoff_doubles_and_is_capped() -> None:
    err = ConnectionLostError("reset")
    messages, sources = _run(
        [[on_error(1, err)], [on_error(1, err)], [on_error(1, err)], [on_completed(1)]],
        max_attempts=4,
        base_delay=10,
        max_delay=15,
    )
    # 201 fail, +10 -> 211 sub, 212 fail, +15 (20 capped) -> 227, 228 fail, +15 -> 243, 244 done
    assert messages == [on_completed(244)]
    assert sources[3].subscriptions == [subscribe(243, 244)]


def test_retry_after_is_honoured() -> None:
    err = RateLimitError("slow down", status=429, retry_after=50)
    messages, sources = _run(
        [[on_error(10, err)], [on_next(1, A), on_completed(2)]],
        base_delay=5,
        max_delay=100,
    )
    assert messages == [on_next(261, A), on_completed(262)]
    assert sources[1].subscriptions == [subscribe(260, 262)]


def test_retry_after_longer_than_max_delay_passes_error_through() -> None:
    err = RateLimitError("slow down", status=529, retry_after=500)
    messages, _ = _run([[on_error(10, err)], [on_completed(1)]], base_delay=5, max_delay=100)
    assert messages == [on_error(210, err)]


def test_no_retry_after_a_token_was_delivered() -> None:
    err = ConnectionLostError("reset")
    messages, sources = _run(
        [[on_next(5, A), on_error(10, err)], [on_next(1, B), on_completed(2)]],
        base_delay=1,
    )
    assert messages == [on_next(205, A), on_error(210, err)]
    assert sources[1].subscriptions == []


def test_gives_up_after_max_attempts() -> None:
    err = ProviderHTTPError("boom", status=503)
    messages, sources = _run(
        [[on_error(1, err)], [on_error(1, err)], [on_completed(1)]],
        max_attempts=2,
        base_delay=10,
    )
    assert messages == [on_error(212, err)]
    assert sources[2].subscriptions == []


@pytest.mark.parametrize(
    "error",
    [
        ProviderHTTPError("bad request", status=400),
        AuthenticationError("bad key", status=401),
        StreamTimeoutError("idle", phase="idle", timeout=1.0),
        ValueError("not a stream error"),
    ],
)
def test_non_retryable_errors_pass_through(error: Exception) -> None:
    messages, sources = _run([[on_error(10, error)], [on_completed(1)]], base_delay=1)
    assert messages == [on_error(210, error)]
    assert sources[0].subscriptions == [subscribe(200, 210)]


def test_dispose_during_backoff_cancels_the_retry() -> None:
    scheduler = TestScheduler()
    err = RateLimitError("slow", status=429)
    source, sources = _cold_sequence(scheduler, [[on_error(10, err)], [on_completed(1)]])
    results = scheduler.start(
        lambda: source.pipe(retry_with_backoff(base_delay=100, max_delay=200, scheduler=scheduler)),
        created=100,
        subscribed=200,
        disposed=250,
    )
    assert results.messages == []
    assert sources[1].subscriptions == []


def test_dispose_while_subscribed_unsubscribes_source() -> None:
    scheduler = TestScheduler()
    source, sources = _cold_sequence(scheduler, [[on_next(10, A), on_completed(500)]])
    results = scheduler.start(
        lambda: source.pipe(retry_with_backoff(scheduler=scheduler)),
        created=100,
        subscribed=200,
        disposed=300,
    )
    assert results.messages == [on_next(210, A)]
    assert sources[0].subscriptions == [subscribe(200, 300)]


def test_custom_predicate_and_raising_predicate() -> None:
    err = ValueError("flaky")
    messages, _ = _run(
        [[on_error(1, err)], [on_completed(1)]], base_delay=1, retry_if=lambda e: True
    )
    assert messages == [on_completed(203)]

    boom = RuntimeError("predicate failed")

    def bad(_: BaseException) -> bool:
        raise boom

    messages, _ = _run([[on_error(1, err)], [on_completed(1)]], base_delay=1, retry_if=bad)
    assert messages == [on_error(201, boom)]


def test_state_is_per_subscription() -> None:
    """A second subscription starts with a fresh attempt count and 'delivered' flag."""
    scheduler = TestScheduler()
    err = RateLimitError("slow", status=429)
    source = scheduler.create_cold_observable(on_next(1, A), on_error(2, err))
    op = retry_with_backoff(max_attempts=2, base_delay=1, scheduler=scheduler)
    observed = op(source)
    first = scheduler.create_observer()
    second = scheduler.create_observer()
    observed.subscribe(first)
    scheduler.advance_by(10)
    observed.subscribe(second)
    scheduler.advance_by(10)
    assert first.messages == [on_next(1, A), on_error(2, err)]
    assert second.messages == [on_next(11, A), on_error(12, err)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": True},
        {"base_delay": -1},
        {"base_delay": 5, "max_delay": 1},
        {"jitter": 2},
        {"base_delay": "1"},
        {"max_delay": None},
        {"jitter": True},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        retry_with_backoff(**kwargs)  # type: ignore[arg-type]


def test_helpers() -> None:
    assert [backoff_delay(a, 1.0, 5.0) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert is_retryable(StreamTimeoutError("connect", phase="connect", timeout=1.0))
    assert is_retryable(StreamTimeoutError("ttft", phase="first_token", timeout=1.0))
    assert is_retryable(TruncatedStreamError("cut before the first token"))
    assert is_retryable(ProviderHTTPError("x", status=502))
    assert not is_retryable(ProviderHTTPError("x", status=404))
