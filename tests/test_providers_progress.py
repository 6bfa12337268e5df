"""`watch_progress`: the progress timeout and total deadline of `Timeouts`, in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing

from rxtokens import StreamTimeoutError
from rxtokens.errors import ConfigError
from rxtokens.providers import Timeouts
from rxtokens.providers._progress import watch_progress
from rxtokens.server import upstream
from rxtokens.server.upstream import SERVER_TIMEOUTS, _make_upstream

on_next, on_completed, on_error = (
    ReactiveTest.on_next,
    ReactiveTest.on_completed,
    ReactiveTest.on_error,
)
subscribe = ReactiveTest.subscribe


def _run(timeouts: Timeouts, messages: list[Any]) -> tuple[list[Any], Any]:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(messages)
    observer = scheduler.start(
        lambda: source.pipe(watch_progress(timeouts, "openai", scheduler)), disposed=10_000
    )
    return observer.messages, source.subscriptions


def _error(messages: list[Any]) -> tuple[float, StreamTimeoutError]:
    last = messages[-1]
    assert last.value.kind == "E"
    return last.time, last.value.exception


def test_tokens_reset_the_progress_timer_and_silence_fails_the_stream() -> None:
    # subscribed at 200; tokens at 250, 290, 330; then silence: fails at 330 + 100
    messages, subscriptions = _run(
        Timeouts(progress=100.0),
        [on_next(250, "a"), on_next(290, "b"), on_next(330, "c"), on_completed(900)],
    )
    assert [m.value.value for m in messages[:-1]] == ["a", "b", "c"]
    time, error = _error(messages)
    assert time == 430
    assert error.phase == "progress"
    assert error.timeout == 100.0
    assert subscriptions == [subscribe(200, 430)]  # the upstream (the request) is disposed


def test_no_token_at_all_fails_one_period_after_subscription() -> None:
    messages, subscriptions = _run(Timeouts(progress=50.0), [on_completed(900)])
    assert _error(messages)[0] == 250
    assert subscriptions == [subscribe(200, 250)]


def test_the_total_deadline_fires_however_steady_the_tokens() -> None:
    tokens = [on_next(t, "x") for t in range(210, 900, 10)]
    messages, subscriptions = _run(Timeouts(progress=50.0, total=300.0), tokens)
    time, error = _error(messages)
    assert time == 500
    assert error.phase == "total"
    assert error.timeout == 300.0
    assert subscriptions == [subscribe(200, 500)]


def test_completion_and_errors_pass_through_and_cancel_the_timer() -> None:
    messages, subscriptions = _run(
        Timeouts(progress=100.0, total=1000.0), [on_next(250, "a"), on_completed(300)]
    )
    assert messages == [on_next(250, "a"), on_completed(300)]
    assert subscriptions == [subscribe(200, 300)]
    failure = ValueError("upstream failed")
    messages, _ = _run(Timeouts(progress=100.0), [on_error(260, failure)])
    assert messages == [on_error(260, failure)]


def test_disposing_stops_the_timer() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable([on_next(250, "a")])
    observer = scheduler.start(
        lambda: source.pipe(watch_progress(Timeouts(progress=100.0), "x", scheduler)),
        disposed=300,
    )
    assert observer.messages == [on_next(250, "a")]  # nothing after disposal at 300
    assert source.subscriptions == [subscribe(200, 300)]


def test_marble_diagram_of_the_docstring() -> None:
    with marbles_testing(timespan=1.0) as (start, cold, _hot, _exp):
        source = cold("-a-b-----------c-|")
        result = start(source.pipe(watch_progress(Timeouts(progress=3.0), "p")))
        assert [m.value.kind for m in result] == ["N", "N", "E"]
        assert result[-1].time == 206.0  # subscribed at 200, b at 203, then 3 s without a token


def test_without_progress_or_total_it_is_the_identity() -> None:
    source = reactivex.of(1, 2)
    assert source.pipe(watch_progress(Timeouts(), "p")) is source


@pytest.mark.parametrize("field", ["progress", "total"])
@pytest.mark.parametrize("value", [0, -1, True, "5"])
def test_bad_values_are_config_errors(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        Timeouts(**{field: value})


def test_the_server_sets_a_progress_timeout_and_deadline_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []

    def capture(model_id: str, messages: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return reactivex.empty()

    monkeypatch.setattr(upstream, "stream", capture)
    provider, _ = _make_upstream("testing:demo", {})
    provider("hi", {})
    given, _ = _make_upstream("testing:demo", {"timeout": 5.0})
    given("hi", {})
    assert seen == [SERVER_TIMEOUTS, 5.0]
    assert SERVER_TIMEOUTS.progress is not None
    assert SERVER_TIMEOUTS.total is not None
