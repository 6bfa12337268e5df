"""take_budget (rxtokens/operators/_budget.py), in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError, ProviderError
from rxtokens.operators import (
    take_budget,
)
from rxtokens.tokens import Finish, TextDelta, ToolCallDelta, Usage

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


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
        on_next(215, Finish("length", 0, "timeout")),  # only the unfinished choice
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
