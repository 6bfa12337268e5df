"""first_of (rxtokens/operators/_first_of.py), in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex
from reactivex.disposable import Disposable
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError, ProviderError
from rxtokens.operators import (
    first_of,
)
from rxtokens.tokens import Finish, TextDelta, Usage

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


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
