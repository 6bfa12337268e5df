"""Tests for rxtokens.broadcast: fan-out, replay, seq, refcount, isolation, slow subscribers."""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.broadcast import (
    Broadcast,
    BroadcastCancelledError,
    ReplayGapError,
    Sequenced,
    stream_to,
    stream_to_sync,
)
from rxtokens.errors import (
    BackpressureOverflowError,
    ConfigError,
    ProviderError,
    StreamDecodeError,
    TruncatedStreamError,
)
from rxtokens.operators import aggregate
from rxtokens.tokens import (
    Completion,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


class Manual:
    """A cold source whose observer the test drives by hand (and which records disposal)."""

    def __init__(self) -> None:
        self.observer: abc.ObserverBase[Any] | None = None
        self.subscriptions = 0
        self.disposed = 0
        self.on_subscribe: Callable[[], object] | None = None
        self.observable: reactivex.Observable[Any] = reactivex.create(self._subscribe)

    def _subscribe(self, observer: abc.ObserverBase[Any], scheduler: Any = None) -> Any:
        self.observer = observer
        self.subscriptions += 1
        if self.on_subscribe is not None:
            self.on_subscribe()

        def dispose() -> None:
            self.disposed += 1

        return Disposable(dispose)

    def push(self, *tokens: Any) -> None:
        assert self.observer is not None
        for token in tokens:
            self.observer.on_next(token)

    def complete(self) -> None:
        assert self.observer is not None
        self.observer.on_completed()

    def fail(self, error: Exception) -> None:
        assert self.observer is not None
        self.observer.on_error(error)


def texts(n: int) -> list[TextDelta]:
    return [TextDelta(f"t{i} ") for i in range(n)]


# ------------------------------------------------------------------ properties

token_lists = st.lists(
    st.one_of(
        st.builds(TextDelta, st.text(max_size=5), st.integers(0, 2)),
        st.builds(ReasoningDelta, st.text(max_size=5)),
        st.builds(Usage, st.integers(0, 9), st.integers(0, 9)),
    ),
    max_size=40,
)


@given(tokens=token_lists, joins=st.lists(st.integers(0, 40), min_size=1, max_size=5))
def test_every_subscriber_with_full_replay_sees_the_full_sequence(
    tokens: list[Any], joins: list[int]
) -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    first: list[Any] = []
    b.subscribe(first.append)
    seen: list[list[Any]] = []
    for i, token in enumerate([*tokens, None]):
        for join in joins:
            if join == i or (token is None and join >= i):
                got: list[Any] = []
                seen.append(got)
                b.subscribe(got.append)
        if token is not None:
            source.push(token)
    source.complete()
    assert first == tokens
    assert all(got == tokens for got in seen)
    assert len(seen) == len(joins)


@given(tokens=token_lists, join=st.integers(0, 40), keep=st.integers(1, 10))
def test_replay_n_gives_exactly_the_last_n_then_live(
    tokens: list[Any], join: int, keep: int
) -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, replay=keep)
    b.connect()
    join = min(join, len(tokens))
    source.push(*tokens[:join])
    got: list[Any] = []
    b.subscribe(got.append)
    source.push(*tokens[join:])
    assert got == tokens[max(0, join - keep) :]


@given(tokens=token_lists, join=st.integers(0, 40), after=st.integers(0, 45))
def test_sequenced_after_k_sees_exactly_seq_greater_than_k(
    tokens: list[Any], join: int, after: int
) -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    b.connect()
    join = min(join, len(tokens))
    source.push(*tokens[:join])
    got: list[Sequenced] = []
    b.sequenced(after=after).subscribe(got.append)
    source.push(*tokens[join:])
    expected = [Sequenced(i, t) for i, t in enumerate(tokens, 1) if i > after]
    assert got == expected


def test_replay_none_gives_only_live_tokens() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, replay="none")
    b.connect()
    source.push(*texts(3))
    got: list[Any] = []
    b.subscribe(got.append)
    source.push(TextDelta("live"))
    assert got == [TextDelta("live")]
    assert b.completion_so_far().text == "t0 t1 t2 live"


def test_sequenced_before_the_retained_history_is_an_error_or_starts_at_the_oldest() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, replay=2)
    b.connect()
    source.push(*texts(5))
    errors: list[Exception] = []
    b.sequenced(after=1).subscribe(on_error=errors.append)
    assert isinstance(errors[0], ReplayGapError)
    assert errors[0].oldest == 4
    assert "seq 1" in str(errors[0])
    got: list[Sequenced] = []
    b.sequenced(after=1, on_gap="oldest").subscribe(got.append)
    assert [s.seq for s in got] == [4, 5]
    exact: list[Sequenced] = []
    b.sequenced(after=3).subscribe(exact.append)  # seq 4 is retained: no gap
    assert [s.seq for s in exact] == [4, 5]


def test_sequenced_after_a_future_seq_waits_for_it() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    got: list[Sequenced] = []
    b.sequenced(after=2).subscribe(got.append)
    source.push(*texts(4))
    assert [s.seq for s in got] == [3, 4]


def test_late_subscriber_after_the_end_gets_replay_and_end() -> None:
    b: Broadcast[Any] = Broadcast(reactivex.of(*texts(2)))
    assert b.observable.pipe(ops.to_list()).run() == texts(2)
    assert b.observable.pipe(ops.to_list()).run() == texts(2)  # no second request

    failing: Broadcast[Any] = Broadcast(reactivex.throw(ProviderError("boom")))
    failing.connect()
    with pytest.raises(ProviderError):
        failing.observable.run()


def test_reentrant_subscribe_during_fan_out_has_no_gap_and_no_duplicate() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    late: list[Any] = []

    def first(token: Any) -> None:
        if token == TextDelta("t2 "):
            b.subscribe(late.append)

    b.subscribe(first)
    source.push(*texts(5))
    assert late == texts(5)


def test_a_subscriber_disposed_during_fan_out_gets_nothing_more() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    second: list[Any] = []
    holder: list[Any] = []

    def first(token: Any) -> None:
        if token == TextDelta("t1 "):
            holder[0].dispose()

    b.subscribe(first)
    holder.append(b.subscribe(second.append))
    source.push(*texts(3))
    assert second == texts(1)


# ------------------------------------------------------------------ refcount (virtual time)


def test_refcount_subscribes_on_first_and_disposes_on_last() -> None:
    scheduler = TestScheduler()
    cold = scheduler.create_cold_observable(
        on_next(10, TextDelta("a")),
        on_next(20, TextDelta("b")),
        on_next(500, TextDelta("c")),
        on_completed(600),
    )
    b: Broadcast[Any] = Broadcast(cold)
    first, second = scheduler.create_observer(), scheduler.create_observer()
    subs: dict[str, Any] = {}
    scheduler.schedule_absolute(200, lambda *_: subs.setdefault("1", b.subscribe(first)))
    scheduler.schedule_absolute(250, lambda *_: subs.setdefault("2", b.subscribe(second)))
    scheduler.schedule_absolute(300, lambda *_: subs["1"].dispose())
    scheduler.schedule_absolute(400, lambda *_: subs["2"].dispose())
    scheduler.start()
    assert cold.subscriptions == [subscribe(200, 400)]
    assert first.messages == [on_next(210, TextDelta("a")), on_next(220, TextDelta("b"))]
    # the late joiner got the replay at 250, then nothing live before it left
    assert second.messages == [on_next(250, TextDelta("a")), on_next(250, TextDelta("b"))]


def test_every_kind_of_subscription_holds_the_upstream() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    outcome: list[Any] = []
    held = b.completion.subscribe(outcome.append, outcome.append)
    tokens = b.subscribe(lambda _t: None)
    b.completion.subscribe(lambda _c: None).dispose()
    tokens.dispose()
    assert source.subscriptions == 1
    assert source.disposed == 0  # the first completion observer still holds it
    held.dispose()
    assert source.disposed == 1
    assert outcome == []  # a disposed observer hears nothing


def test_last_subscriber_leaving_cancels_with_the_partial() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    d = b.subscribe(lambda _t: None)
    source.push(TextDelta("x"))
    d.dispose()
    assert source.disposed == 1
    assert b.done
    source.push(TextDelta("ignored"))  # a source that does not stop at once
    late_errors: list[Exception] = []
    b.completion.subscribe(on_error=late_errors.append)
    assert isinstance(late_errors[0], BroadcastCancelledError)
    assert late_errors[0].partial is not None
    assert late_errors[0].partial.text == "x"
    assert "keep_alive" in str(late_errors[0])


def test_keep_alive_runs_to_completion_after_the_last_subscriber_leaves() -> None:
    scheduler = TestScheduler()
    cold = scheduler.create_cold_observable(
        on_next(10, TextDelta("a")), on_next(300, TextDelta("b")), on_completed(400)
    )
    b: Broadcast[Any] = Broadcast(cold, keep_alive=True)
    observer = scheduler.create_observer()
    late = scheduler.create_observer()
    holder: list[Any] = []
    scheduler.schedule_absolute(200, lambda *_: holder.append(b.subscribe(observer)))
    scheduler.schedule_absolute(250, lambda *_: holder[0].dispose())
    scheduler.schedule_absolute(700, lambda *_: b.completion.subscribe(late))
    scheduler.start()
    assert cold.subscriptions == [subscribe(200, 600)]
    assert observer.messages == [on_next(210, TextDelta("a"))]
    assert [(m.time, m.value.kind) for m in late.messages] == [(700, "N"), (700, "C")]
    assert late.messages[0].value.value.text == "ab"


def test_connect_starts_without_subscribers_and_its_disposable_releases() -> None:
    scheduler = TestScheduler()
    hot = scheduler.create_hot_observable(
        on_next(150, TextDelta("before")),
        on_next(250, TextDelta("a")),
        on_next(350, TextDelta("b")),
        on_next(450, TextDelta("after")),
    )
    b: Broadcast[Any] = Broadcast(hot)
    holder: list[Any] = []
    observer = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: holder.append(b.connect()))
    scheduler.schedule_absolute(300, lambda *_: b.subscribe(observer))
    scheduler.schedule_absolute(400, lambda *_: holder[0].dispose())
    scheduler.start()
    assert hot.subscriptions == [subscribe(200, sys_maxsize())]
    assert observer.messages == [
        on_next(300, TextDelta("a")),  # replayed
        on_next(350, TextDelta("b")),
        on_next(450, TextDelta("after")),  # the subscriber still holds it
    ]
    assert b.seq == 3


def test_connect_then_dispose_with_no_subscriber_cancels() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    d = b.connect()
    assert source.subscriptions == 1
    d.dispose()
    d.dispose()  # idempotent
    assert source.disposed == 1
    assert b.connect() is not None
    assert source.subscriptions == 1


def sys_maxsize() -> int:
    return sys.maxsize


def test_cancel_ends_every_subscriber_with_the_partial() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, keep_alive=True)
    errors: list[Exception] = []
    b.subscribe(on_error=errors.append)
    source.push(TextDelta("half"))
    b.cancel()
    assert source.disposed == 1
    assert isinstance(errors[0], BroadcastCancelledError)
    assert errors[0].partial is not None
    assert errors[0].partial.text == "half"


# ------------------------------------------------------------------ isolation


def test_a_raising_subscriber_is_removed_reported_and_the_others_continue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    reports: list[tuple[str, Exception]] = []
    errors_done: list[bool] = []
    b.errors.subscribe(reports.append, on_completed=lambda: errors_done.append(True))
    before: list[Any] = []
    after: list[Any] = []
    calls: list[Any] = []

    def bad(token: Any) -> None:
        calls.append(token)
        if len(calls) == 2:
            raise RuntimeError("ui crashed")

    b.subscribe(before.append)
    b.subscribe(bad, name="bad-ui")
    b.subscribe(after.append)
    with caplog.at_level(logging.WARNING, logger="rxtokens.broadcast"):
        source.push(*texts(4))
    source.complete()
    assert before == texts(4)
    assert after == texts(4)
    assert calls == texts(2)
    assert [(name, str(exc)) for name, exc in reports] == [("bad-ui", "ui crashed")]
    assert "bad-ui" in caplog.text
    assert "ui crashed" in caplog.text
    assert errors_done == [True]
    assert b.subscriber_count == 0


def test_a_subscriber_raising_during_its_replay_is_removed() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    reports: list[Any] = []
    b.errors.subscribe(reports.append)
    b.connect()
    source.push(TextDelta("x"))

    def bad(_token: Any) -> None:
        raise ValueError("no")

    b.subscribe(bad, name="replayer")
    assert b.subscriber_count == 0
    assert reports[0][0] == "replayer"
    good: list[Any] = []
    b.subscribe(good.append)
    source.push(TextDelta("y"))
    assert good == [TextDelta("x"), TextDelta("y")]


def test_a_queued_subscriber_disposed_after_the_end_gets_nothing() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    ui = TestScheduler()
    got: list[Any] = []
    done: list[bool] = []
    d = b.subscribe(
        got.append, on_completed=lambda: done.append(True), policy="coalesce", scheduler=ui
    )
    source.push(TextDelta("x"))
    source.complete()
    d.dispose()
    ui.start()
    assert got == []
    assert done == []


# ------------------------------------------------------------------ slow subscribers


def test_coalesce_slow_subscriber_receives_all_text_merged_without_slowing_others() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    ui = TestScheduler()  # the UI's loop: it runs only when we advance it
    fast: list[Any] = []
    slow: list[Any] = []
    done: list[bool] = []
    b.subscribe(fast.append)
    b.subscribe(
        slow.append,
        on_completed=lambda: done.append(True),
        policy="coalesce",
        max_pending=4,
        scheduler=ui,
    )
    tokens = [
        ReasoningDelta("think "),
        *texts(500),
        ToolCallDelta(0, "c1", "f", '{"a"'),
        ToolCallDelta(0, None, None, ": 1}"),
        Usage(3, None),
        Usage(None, 7),
        Finish("stop"),
    ]
    source.push(*tokens)
    source.complete()
    assert fast == tokens  # the fast one was served inline, in full
    assert slow == []  # nothing ran on the UI scheduler yet
    ui.start()
    assert done == [True]
    assert slow == [
        ReasoningDelta("think "),
        TextDelta("".join(t.text for t in texts(500))),
        ToolCallDelta(0, "c1", "f", '{"a": 1}'),
        Usage(3, 7),
        Finish("stop"),
    ]


def test_coalesce_keeps_pending_bounded_with_interleaved_choices() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, replay="none")
    ui = TestScheduler()
    slow: list[Any] = []
    handle = b.subscribe(slow.append, policy="coalesce", max_pending=8, scheduler=ui)
    for i in range(1000):
        source.push(TextDelta(f"{i},", 0), TextDelta(f"{i};", 1))
    sub = b._subs[0]
    assert len(sub.pending) <= 16  # type: ignore[attr-defined]
    ui.start()
    for index, sep in ((0, ","), (1, ";")):
        assert "".join(t.text for t in slow if t.index == index) == "".join(
            f"{i}{sep}" for i in range(1000)
        )
    handle.dispose()


def test_drop_latest_keeps_memory_bounded() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    ui = TestScheduler()
    slow: list[Any] = []
    b.subscribe(slow.append, policy="drop_latest", max_pending=10, scheduler=ui)
    source.push(*texts(1000), Finish("stop"))
    sub = b._subs[0]
    assert len(sub.pending) == 11  # type: ignore[attr-defined]  # Finish is never dropped
    source.complete()
    ui.start()
    assert slow == [*texts(10), Finish("stop")]


def test_drop_latest_drops_nothing_when_the_consumer_keeps_up() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    ui = TestScheduler()
    slow: list[Any] = []
    b.subscribe(slow.append, policy="drop_latest", max_pending=2, scheduler=ui)
    for token in texts(50):
        source.push(token)
        ui.start()
    assert slow == texts(50)


def test_error_policy_overflows_that_subscriber_only() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    ui = TestScheduler()
    slow: list[Any] = []
    errors: list[Exception] = []
    fast: list[Any] = []
    reports: list[Any] = []
    b.errors.subscribe(reports.append)
    b.subscribe(slow.append, errors.append, policy="error", max_pending=5, scheduler=ui)
    b.subscribe(fast.append)
    source.push(*texts(20))
    ui.start()
    assert slow == texts(5)
    assert isinstance(errors[0], BackpressureOverflowError)
    assert errors[0].capacity == 5
    assert errors[0].partial is not None
    assert fast == texts(20)
    assert b.subscriber_count == 1
    assert reports[0][1] is errors[0]


def test_queued_subscriber_gets_the_replay_and_sequenced_seq_of_merged_items() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    b.connect()
    source.push(*texts(3))
    ui = TestScheduler()
    got: list[Sequenced] = []
    b.sequenced(after=1, policy="coalesce", max_pending=3, scheduler=ui).subscribe(got.append)
    source.push(TextDelta("live"))
    ui.start()
    assert got == [Sequenced(4, TextDelta("t1 t2 live"))]


def test_invalid_arguments_fail_fast() -> None:
    with pytest.raises(ConfigError, match="replay"):
        Broadcast(reactivex.empty(), replay="some")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="replay"):
        Broadcast(reactivex.empty(), replay=-1)
    with pytest.raises(ConfigError, match="Observable"):
        Broadcast([1, 2])  # type: ignore[arg-type]
    b: Broadcast[Any] = Broadcast(reactivex.empty())
    with pytest.raises(ConfigError, match="scheduler"):
        b.subscribe(print, policy="coalesce")
    with pytest.raises(ConfigError, match="inline"):
        b.subscribe(print, scheduler=TestScheduler())
    with pytest.raises(ConfigError, match="policy"):
        b.subscribe(print, policy="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_pending"):
        b.subscribe(print, policy="coalesce", max_pending=0, scheduler=TestScheduler())
    with pytest.raises(ConfigError, match="after"):
        b.sequenced(after=-1)
    with pytest.raises(ConfigError, match="on_gap"):
        b.sequenced(on_gap="skip")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the final answer


async def test_final_resolves_with_the_completion() -> None:
    b: Broadcast[Any] = Broadcast(
        reactivex.of(
            TextDelta("Hel"),
            TextDelta("lo"),
            ToolCallDelta(0, "c", "f", '{"x":'),
            ToolCallDelta(0, None, None, " 2}"),
            Finish("stop"),
        )
    )
    final = b.final
    b.connect()
    completion = await final
    assert completion.text == "Hello"
    assert completion.tool_calls == [ToolCall(0, "c", "f", {"x": 2})]
    assert completion.finish_reason == "stop"
    assert (await b.final) is completion  # also after the end


@pytest.mark.parametrize("replay", ["all", "none"])
async def test_items_that_are_not_tokens_flow_but_the_final_answer_refuses_them(
    replay: Any,
) -> None:
    """Issue 15.15: the answer names the item it cannot read (main built text "")."""
    b: Broadcast[Any] = Broadcast(reactivex.of("a", "b"), replay=replay)
    seen: list[Any] = []
    b.subscribe(seen.append)
    final = b.final
    b.connect()
    with pytest.raises(ConfigError, match="str"):
        await final
    assert seen == ["a", "b"]


async def test_final_raises_the_error_with_the_partial() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    b.connect()
    source.push(TextDelta("partial text"))
    final = b.final
    source.fail(ProviderError("overloaded", error_type="overloaded_error"))
    with pytest.raises(ProviderError) as info:
        await final
    assert info.value.partial is not None
    assert info.value.partial.text == "partial text"


async def test_final_resolves_from_another_thread() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    b.connect()
    final = b.final

    def produce() -> None:
        source.push(TextDelta("from a thread"))
        source.complete()

    thread = threading.Thread(target=produce)
    thread.start()
    completion = await final
    thread.join()
    assert completion.text == "from a thread"


def test_final_needs_a_running_loop() -> None:
    b: Broadcast[Any] = Broadcast(reactivex.empty())
    with pytest.raises(RuntimeError):
        _ = b.final


def test_completion_observable_and_completion_so_far() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, replay=1)
    results: list[Completion] = []
    b.completion.subscribe(results.append)
    assert source.subscriptions == 1  # subscribing to the completion starts the stream
    source.push(TextDelta("a"), TextDelta("b"), ToolCallDelta(0, "c", "f", '{"k": "v'))
    so_far = b.completion_so_far()
    assert so_far.text == "ab"
    assert so_far.tool_calls[0].name == "f"
    source.push(ToolCallDelta(0, None, None, '"}'), TextDelta("c"))
    source.complete()
    assert results[0].text == "abc"
    assert results[0].tool_calls[0].arguments == {"k": "v"}
    assert b.completion_so_far() is results[0]


# ------------------------------------------------------------------ threads


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads very often, so that races show up."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("join_at", [1, 50, 500, 1999])
def test_late_joiner_on_another_thread_sees_no_gap_and_no_duplicate(join_at: int) -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    b.connect()
    tokens = texts(2000)
    reached = threading.Event()
    late: list[Any] = []
    resumed: list[Sequenced] = []

    def produce() -> None:
        for i, token in enumerate(tokens):
            if i == join_at:
                reached.set()
            source.push(token)
        source.complete()

    def join() -> None:
        reached.wait()
        b.subscribe(late.append)
        b.sequenced(after=join_at).subscribe(resumed.append)

    threads = [threading.Thread(target=produce), threading.Thread(target=join)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert late == tokens
    assert [s.seq for s in resumed] == list(range(join_at + 1, 2001))
    assert [s.token for s in resumed] == tokens[join_at:]


# ------------------------------------------------------------------ async consumers


async def test_async_iterator_gets_everything_then_stops() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    b.connect()
    source.push(TextDelta("replayed "))
    iterator = b.to_async_iterator(max_pending=2)

    def produce() -> None:
        source.push(*texts(100))
        source.complete()

    thread = threading.Thread(target=produce)
    thread.start()
    got = [token async for token in iterator]
    thread.join()
    assert "".join(t.text for t in got) == "replayed " + "".join(t.text for t in texts(100))


async def test_async_iterator_raises_the_stream_error_and_aclose_unsubscribes() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    async with b.to_async_iterator(policy="drop_latest", max_pending=3) as iterator:
        source.push(TextDelta("a"))
        assert await iterator.__anext__() == TextDelta("a")
        source.fail(ProviderError("bad"))
        with pytest.raises(ProviderError):
            await iterator.__anext__()

    source2 = Manual()
    b2: Broadcast[Any] = Broadcast(source2.observable)
    it = b2.to_async_iterator()
    assert source2.subscriptions == 1
    await it.aclose()
    assert source2.disposed == 1


# ------------------------------------------------------------------ stream_to


async def test_stream_to_feeds_callbacks_queues_and_observers_and_returns_the_completion() -> None:
    tokens = [*texts(20), Finish("stop")]
    seen: list[Any] = []
    live: asyncio.Queue[Any] = asyncio.Queue(maxsize=3)
    drained: list[Any] = []
    thread_queue: queue.Queue[Any] = queue.Queue()
    observed = Subject[Any]()
    observed_items: list[Any] = []
    observed.subscribe(observed_items.append)

    async def consume() -> None:
        while (token := await live.get()) is not None:
            drained.append(token)

    consumer = asyncio.ensure_future(consume())
    completion = await stream_to(reactivex.of(*tokens), seen.append, live, thread_queue, observed)
    await consumer
    assert completion.text == "".join(t.text for t in texts(20))
    assert completion.finish_reason == "stop"
    assert seen == tokens
    assert observed_items == tokens
    assert "".join(t.text for t in drained if isinstance(t, TextDelta)) == completion.text
    assert [thread_queue.get_nowait() for _ in range(22)] == [*tokens, None]


async def test_stream_to_raises_the_error_with_partial_and_ends_queues() -> None:
    live: asyncio.Queue[Any] = asyncio.Queue()
    source = reactivex.concat(reactivex.of(TextDelta("half")), reactivex.throw(ProviderError("x")))
    with pytest.raises(ProviderError) as info:
        await stream_to(source, live)
    assert info.value.partial is not None
    assert info.value.partial.text == "half"
    assert live.get_nowait() == TextDelta("half")
    assert live.get_nowait() is None


def test_stream_to_sync() -> None:
    seen: list[str] = []
    completion = stream_to_sync(reactivex.of(*texts(3)), lambda t: seen.append(t.text))
    assert completion.text == "t0 t1 t2 "
    assert seen == ["t0 ", "t1 ", "t2 "]
    with pytest.raises(ConfigError, match="sink"):
        stream_to_sync(reactivex.of(*texts(3)), 42)  # type: ignore[arg-type]


async def test_stream_to_sync_refuses_a_running_loop() -> None:
    with pytest.raises(ConfigError, match="await stream_to"):
        stream_to_sync(reactivex.empty())


def test_stream_to_sync_builds_the_source_inside_its_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    def build() -> reactivex.Observable[Any]:
        loops.append(asyncio.get_running_loop())
        return reactivex.of(TextDelta("inside"))

    assert stream_to_sync(build).text == "inside"
    assert len(loops) == 1
    with pytest.raises(ConfigError, match="Observable"):
        stream_to_sync(42)  # type: ignore[arg-type]


async def test_cancelling_stream_to_cancels_the_upstream() -> None:
    source = Manual()
    live: asyncio.Queue[Any] = asyncio.Queue()
    subscribed = asyncio.Event()
    source.on_subscribe = subscribed.set
    task = asyncio.ensure_future(stream_to(source.observable, live, [].append))
    await subscribed.wait()
    source.push(TextDelta("a"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.disposed == 1
    assert live.get_nowait() == TextDelta("a")
    assert live.get_nowait() is None


def test_coalesce_fills_in_tool_call_id_and_name_and_keeps_barriers() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    ui = TestScheduler()
    got: list[Any] = []
    b.subscribe(got.append, policy="coalesce", max_pending=100, scheduler=ui)
    source.push(
        ToolCallDelta(0, None, None, '{"a"'),
        ToolCallDelta(0, "id-1", "f", ": 1"),
        ToolCallDelta(0, None, None, "}"),
        ToolCall(0, "id-1", "f", {"a": 1}),
        TextDelta("x"),
        Finish("tool_calls"),
        TextDelta("y", 1),
    )
    ui.start()
    assert got == [
        ToolCallDelta(0, "id-1", "f", '{"a": 1}'),
        ToolCall(0, "id-1", "f", {"a": 1}),
        TextDelta("x"),
        Finish("tool_calls"),
        TextDelta("y", 1),
    ]


def test_a_queued_resume_with_a_gap_fails_on_its_scheduler() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable, replay=1)
    b.connect()
    source.push(*texts(3))
    ui = TestScheduler()
    errors: list[Exception] = []
    b.sequenced(after=0, policy="drop_latest", scheduler=ui).subscribe(on_error=errors.append)
    assert errors == []
    ui.start()
    assert isinstance(errors[0], ReplayGapError)


async def test_closing_an_async_iterator_wakes_a_waiting_consumer() -> None:
    source = Manual()
    b: Broadcast[Any] = Broadcast(source.observable)
    iterator = b.to_async_iterator()
    waiting = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0)  # one loop turn: the consumer is now waiting (no timing involved)
    await iterator.aclose()
    with pytest.raises(StopAsyncIteration):
        await waiting
    assert source.disposed == 1


async def test_malformed_tool_arguments_fail_only_the_final_answer() -> None:
    b: Broadcast[Any] = Broadcast(reactivex.of(ToolCallDelta(0, "c", "f", "{not json")))
    final = b.final
    first: list[Any] = []
    b.subscribe(on_completed=lambda: first.append("completed"))
    late: list[Any] = []
    b.subscribe(late.append, on_completed=lambda: late.append("completed"))
    assert first == ["completed"]
    assert late == [ToolCallDelta(0, "c", "f", "{not json"), "completed"]
    with pytest.raises(StreamDecodeError):
        await final


async def test_a_slow_async_consumer_does_not_pause_the_shared_source() -> None:
    """rxtokens.aio flow control must not reach through a Broadcast to its upstream.

    The first subscriber is a bounded async iterator that never reads: were its flow
    control captured by the pull-based source, the source would pause and the other
    subscriber would starve.
    """
    from rxtokens.aio import from_async_iterable, to_async_iterator

    async def numbers() -> Any:
        for i in range(200):
            yield TextDelta(str(i))
            await asyncio.sleep(0)

    live: Broadcast[Any] = Broadcast(from_async_iterable(numbers))
    stalled = to_async_iterator(live.observable, maxsize=4)
    assert await stalled.__anext__() == TextDelta("0")  # subscribed (first), then never read
    seen: list[Any] = []
    done = asyncio.get_running_loop().create_future()
    live.subscribe(seen.append, on_completed=lambda: done.set_result(None))
    await asyncio.wait_for(done, timeout=10)
    assert len(seen) == 200
    await stalled.aclose()


def test_aggregate_over_a_broadcast_shares_its_one_answer() -> None:
    """aggregate() of a subscriber that sees every token is the broadcast's own answer."""
    source: Subject[Any] = Subject()
    broadcast = Broadcast(source, replay="none")
    results: list[Completion] = []
    broadcast.pipe(aggregate()).subscribe(results.append)
    source.on_next(TextDelta("Hel"))
    late: list[Completion] = []
    broadcast.pipe(aggregate()).subscribe(late.append)  # joined late: builds its own
    source.on_next(TextDelta("lo"))
    source.on_completed()
    assert results[0].text == "Hello"
    assert late[0].text == "lo"
    assert results[0] is broadcast._answer.result(None)[0]


def test_aggregate_over_a_broadcast_gets_the_error_with_its_partial() -> None:
    source: Subject[Any] = Subject()
    broadcast = Broadcast(source, replay="none")
    errors: list[Exception] = []
    broadcast.pipe(aggregate()).subscribe(on_error=errors.append)
    source.on_next(TextDelta("Hi"))
    source.on_error(TruncatedStreamError("dropped"))
    assert isinstance(errors[0], TruncatedStreamError)
    assert errors[0].partial.text == "Hi"


def test_aggregate_of_a_late_joiner_shares_the_answer_when_the_log_keeps_every_token() -> None:
    source: Subject[Any] = Subject()
    broadcast = Broadcast(source)  # replay="all": a late joiner replays every token
    broadcast.subscribe(lambda token: None)
    source.on_next(TextDelta("Hel"))
    results: list[Completion] = []
    broadcast.pipe(aggregate()).subscribe(results.append)
    source.on_next(TextDelta("lo"))
    source.on_completed()
    assert results[0].text == "Hello"
    assert results[0] is broadcast._answer.result(None)[0]


def test_aggregate_of_a_broadcast_that_ended_gets_the_answer_at_once() -> None:
    broadcast = Broadcast(reactivex.of(TextDelta("a"), TextDelta("b")))
    broadcast.subscribe(lambda token: None)
    assert broadcast.pipe(aggregate()).run().text == "ab"
