"""Backpressure: on_backpressure_* in front of a slow consumer, and adaptive flow control."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import abc
from reactivex.disposable import Disposable
from reactivex.scheduler import EventLoopScheduler
from reactivex.scheduler.scheduler import Scheduler
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.aio import from_async_iterable, to_async_iterator, to_list
from rxtokens.errors import BackpressureOverflowError, ConfigError, ProviderError
from rxtokens.operators import (
    AdaptiveFlowController,
    FlowSnapshot,
    adaptive_backpressure,
    on_backpressure_buffer,
    on_backpressure_coalesce,
    on_backpressure_latest,
)
from rxtokens.tokens import Finish, TextDelta, Usage

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


class SlowConsumerScheduler(Scheduler):
    """Every scheduled action runs `cost` virtual seconds later: a consumer that is that slow.

    The operators deliver one token per scheduled action, so a consumer behind
    this scheduler takes `cost` per token while the producer keeps its own pace.
    """

    def __init__(self, test: TestScheduler, cost: float) -> None:
        self.test = test
        self.cost = cost

    @property
    def now(self) -> datetime:
        return self.test.now

    def schedule(self, action: Any, state: Any = None) -> abc.DisposableBase:
        return self.test.schedule_relative(self.cost, action, state)

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        return self.test.schedule_relative(duetime + self.cost, action, state)

    def schedule_absolute(self, duetime: Any, action: Any, state: Any = None) -> Any:
        return self.test.schedule_absolute(duetime, action, state)


class ManualScheduler(Scheduler):
    """Queues actions; the test harness runs them one at a time (a consumer it controls)."""

    def __init__(self) -> None:
        self.actions: list[Any] = []

    @property
    def now(self) -> datetime:
        raise NotImplementedError

    def schedule(self, action: Any, state: Any = None) -> abc.DisposableBase:
        entry = [action, state, False]
        self.actions.append(entry)

        def cancel() -> None:
            entry[2] = True

        return Disposable(cancel)

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        raise NotImplementedError

    def schedule_absolute(self, duetime: Any, action: Any, state: Any = None) -> Any:
        raise NotImplementedError

    def run_one(self) -> bool:
        while self.actions:
            action, state, cancelled = self.actions.pop(0)
            if not cancelled:
                action(self, state)
                return True
        return False

    def run_all(self) -> None:
        while self.run_one():
            pass


def four_tokens(s: TestScheduler, end: Any = None) -> Any:
    return s.create_hot_observable(
        on_next(201, TextDelta("a")),
        on_next(202, TextDelta("b")),
        on_next(203, TextDelta("c")),
        on_next(204, TextDelta("d")),
        end if end is not None else on_completed(205),
    )


# --------------------------------------------------------------------------- buffer


def test_buffer_error_policy_delivers_the_queue_then_fails() -> None:
    s = TestScheduler()
    xs = four_tokens(s)
    slow = SlowConsumerScheduler(s, 6)
    res = s.start(lambda: xs.pipe(on_backpressure_buffer(2, scheduler=slow)))
    assert [(m.time, m.value.kind) for m in res.messages] == [(207, "N"), (213, "N"), (219, "E")]
    assert [m.value.value for m in res.messages[:2]] == [TextDelta("a"), TextDelta("b")]
    error = res.messages[-1].value.exception
    assert isinstance(error, BackpressureOverflowError)
    assert error.capacity == 2
    assert "capacity 2" in str(error)
    assert xs.subscriptions == [subscribe(200, 203)]  # upstream cancelled at the overflow


def test_buffer_drop_oldest_keeps_the_newest() -> None:
    s = TestScheduler()
    xs = four_tokens(s)
    dropped: list[Any] = []
    op = on_backpressure_buffer(
        2, "drop_oldest", on_drop=dropped.append, scheduler=SlowConsumerScheduler(s, 6)
    )
    res = s.start(lambda: xs.pipe(op))
    assert res.messages == [
        on_next(207, TextDelta("c")),
        on_next(213, TextDelta("d")),
        on_completed(219),
    ]
    assert dropped == [TextDelta("a"), TextDelta("b")]
    assert xs.subscriptions == [subscribe(200, 205)]


def test_buffer_drop_newest_keeps_the_queue() -> None:
    s = TestScheduler()
    xs = four_tokens(s)
    dropped: list[Any] = []
    op = on_backpressure_buffer(
        2, "drop_newest", on_drop=dropped.append, scheduler=SlowConsumerScheduler(s, 6)
    )
    res = s.start(lambda: xs.pipe(op))
    assert res.messages == [
        on_next(207, TextDelta("a")),
        on_next(213, TextDelta("b")),
        on_completed(219),
    ]
    assert dropped == [TextDelta("c"), TextDelta("d")]


def test_buffer_keeps_everything_for_a_fast_enough_consumer() -> None:
    s = TestScheduler()
    xs = four_tokens(s, on_error(205, ProviderError("x")))
    res = s.start(lambda: xs.pipe(on_backpressure_buffer(1, scheduler=SlowConsumerScheduler(s, 0))))
    assert [m.value.kind for m in res.messages] == ["N", "N", "N", "N", "E"]
    assert [m.time for m in res.messages] == [201, 202, 203, 204, 205]


def test_buffer_error_is_delivered_after_the_pending_items() -> None:
    s = TestScheduler()
    error = ProviderError("x")
    xs = s.create_hot_observable(on_next(201, TextDelta("a")), on_error(202, error))
    res = s.start(lambda: xs.pipe(on_backpressure_buffer(4, scheduler=SlowConsumerScheduler(s, 5))))
    assert res.messages == [on_next(206, TextDelta("a")), on_error(211, error)]


def test_buffer_dispose_cancels_the_drain() -> None:
    s = TestScheduler()
    xs = four_tokens(s)
    op = on_backpressure_buffer(8, scheduler=SlowConsumerScheduler(s, 6))
    res = s.start(lambda: xs.pipe(op), disposed=210)
    assert res.messages == [on_next(207, TextDelta("a"))]
    assert xs.subscriptions == [subscribe(200, 205)]
    s.advance_by(100)
    assert len(res.messages) == 1


def test_on_drop_exception_fails_the_stream() -> None:
    s = TestScheduler()
    xs = four_tokens(s)

    def boom(_token: Any) -> None:
        raise RuntimeError("on_drop failed")

    op = on_backpressure_buffer(
        1, "drop_newest", on_drop=boom, scheduler=SlowConsumerScheduler(s, 6)
    )
    res = s.start(lambda: xs.pipe(op))
    assert res.messages[0] == on_next(207, TextDelta("a"))
    assert isinstance(res.messages[-1].value.exception, RuntimeError)
    assert xs.subscriptions == [subscribe(200, 202)]


def test_latest_keeps_only_the_newest() -> None:
    s = TestScheduler()
    xs = four_tokens(s)
    res = s.start(lambda: xs.pipe(on_backpressure_latest(scheduler=SlowConsumerScheduler(s, 6))))
    assert res.messages == [on_next(207, TextDelta("d")), on_completed(213)]


def test_without_a_scheduler_tokens_pass_straight_through() -> None:
    out: list[Any] = []
    subject: Subject[Any] = Subject()
    subject.pipe(on_backpressure_buffer(1)).subscribe(out.append)
    for i in range(5):
        subject.on_next(i)
    assert out == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((0,), {}), ((1.5,), {}), ((True,), {}), ((2, "drop"), {}), ((2,), {"on_drop": 3})],
)
def test_buffer_rejects_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        on_backpressure_buffer(*args, **kwargs)


def test_delivery_on_another_thread_keeps_order() -> None:
    consumer = EventLoopScheduler()
    try:
        done = threading.Event()
        out: list[Any] = []
        subject: Subject[Any] = Subject()
        subject.pipe(on_backpressure_coalesce(scheduler=consumer)).subscribe(
            out.append, on_completed=done.set
        )
        for i in range(2000):
            subject.on_next(TextDelta(f"{i},"))
            if i % 500 == 0:
                subject.on_next(Finish(str(i)))
        subject.on_completed()
        assert done.wait(30)
        assert "".join(t.text for t in out if type(t) is TextDelta) == "".join(
            f"{i}," for i in range(2000)
        )
        assert [t.reason for t in out if type(t) is Finish] == ["0", "500", "1000", "1500"]
    finally:
        consumer.dispose()


# --------------------------------------------------------------------------- coalesce


def test_coalesce_merges_pending_text() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(201, TextDelta("a")),
        on_next(202, TextDelta("b")),
        on_next(203, TextDelta("c")),
        on_next(204, Finish("stop")),
        on_next(204, TextDelta("d")),
        on_completed(205),
    )
    res = s.start(lambda: xs.pipe(on_backpressure_coalesce(scheduler=SlowConsumerScheduler(s, 6))))
    assert res.messages == [
        on_next(207, TextDelta("abc")),
        on_next(213, Finish("stop")),
        on_next(219, TextDelta("d")),
        on_completed(225),
    ]
    assert xs.subscriptions == [subscribe(200, 205)]


def test_coalesce_overflows_on_unmergeable_items() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(*(on_next(201 + i, Usage(i, i)) for i in range(5)))
    res = s.start(
        lambda: xs.pipe(on_backpressure_coalesce(3, scheduler=SlowConsumerScheduler(s, 50)))
    )
    assert [m.value.kind for m in res.messages] == ["N", "N", "N", "E"]
    assert res.messages[-1].value.exception.capacity == 3
    assert xs.subscriptions == [subscribe(200, 204)]


@given(
    arrivals=st.lists(
        st.tuples(
            st.integers(0, 3), st.sampled_from(["t0", "t1", "u"]), st.text("ab ", max_size=3)
        ),
        max_size=40,
    ),
    cost=st.integers(0, 7),
)
def test_coalesce_preserves_text_exactly(arrivals: list[tuple[int, str, str]], cost: int) -> None:
    s = TestScheduler()
    t = 200
    messages = []
    tokens: list[Any] = []
    for gap, kind, text in arrivals:
        t += gap
        token: Any = (
            TextDelta(text) if kind == "t0" else TextDelta(text, 1) if kind == "t1" else Usage(1, 2)
        )
        tokens.append(token)
        messages.append(on_next(t + 1, token))
    xs = s.create_hot_observable(*messages, on_completed(t + 2))
    op = on_backpressure_coalesce(10_000, scheduler=SlowConsumerScheduler(s, cost))
    res = s.start(lambda: xs.pipe(op), disposed=100_000)
    out = [m.value.value for m in res.messages if m.value.kind == "N"]
    assert res.messages[-1].value.kind == "C"
    for index in (0, 1):
        assert "".join(x.text for x in out if type(x) is TextDelta and x.index == index) == "".join(
            x.text for x in tokens if type(x) is TextDelta and x.index == index
        )

    # barriers stay in place: the sequence of kinds, with text runs collapsed, is unchanged
    def shape(seq: list[Any]) -> list[Any]:
        result: list[Any] = []
        for x in seq:
            key = ("t", x.index) if type(x) is TextDelta else "u"
            if key == "u" or not result or result[-1] != key:
                result.append(key)
        return result

    assert shape(out) == shape(tokens)


# --------------------------------------------------------------------------- bounded memory


def outrun(n: int, ratio: int = 100) -> None:
    """A synchronous producer of `n` tokens; the consumer gets one scheduled action per `ratio`.

    Pending = produced - delivered - dropped, measured after every production.
    """
    # coalesce: nothing is lost, and at most ~ratio tokens' worth of text waits at any time
    sched = ManualScheduler()
    subject: Subject[Any] = Subject()
    delivered: list[Any] = []
    subject.pipe(on_backpressure_coalesce(scheduler=sched)).subscribe(delivered.append)
    token = TextDelta("tok ")
    delivered_chars = 0
    max_chars = max_actions = 0
    for i in range(n):
        subject.on_next(token)
        if i % ratio == ratio - 1:
            sched.run_one()
            delivered_chars += len(delivered[-1].text)
        max_chars = max(max_chars, 4 * (i + 1) - delivered_chars)
        max_actions = max(max_actions, len(sched.actions))
    subject.on_completed()
    sched.run_all()
    assert max_actions <= 1  # one drain scheduled at a time
    assert max_chars <= 4 * ratio
    assert "".join(t.text for t in delivered) == "tok " * n
    assert len(delivered) <= n // ratio + 1  # the consumer got few, large deltas

    # drop_oldest buffer: pending never exceeds the capacity; delivered + dropped = produced
    sched = ManualScheduler()
    subject = Subject()
    dropped = [0]
    got = [0]

    def on_drop(_token: Any) -> None:
        dropped[0] += 1

    def count(_token: Any) -> None:
        got[0] += 1

    op = on_backpressure_buffer(50, "drop_oldest", on_drop=on_drop, scheduler=sched)
    subject.pipe(op).subscribe(count)
    max_pending = 0
    for i in range(n):
        subject.on_next(token)
        if i % ratio == ratio - 1:
            sched.run_one()
        max_pending = max(max_pending, (i + 1) - got[0] - dropped[0])
    subject.on_completed()
    sched.run_all()
    assert max_pending == 50
    assert got[0] + dropped[0] == n


def test_memory_stays_bounded_when_the_producer_outruns_the_consumer_100x() -> None:
    outrun(100_000)


@pytest.mark.slow
def test_memory_stays_bounded_for_a_million_tokens() -> None:
    outrun(1_000_000)


# --------------------------------------------------------------------------- adaptive controller


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_controller_grows_the_window_for_a_fast_consumer() -> None:
    clock = FakeClock()
    c = AdaptiveFlowController(2, 8, target_latency=1.0, clock=clock)
    snapshots: list[FlowSnapshot] = []
    c.state.subscribe(snapshots.append)
    for _ in range(20):
        c.delivered()
        clock.now += 0.01
        c.ack()
    assert c.window == 8
    assert snapshots[0].window == 2
    assert snapshots[-1].window == 8
    assert c.snapshot().avg_processing_time == pytest.approx(0.01)
    assert not c.flow.paused


def test_controller_shrinks_the_window_and_pauses_for_a_slow_consumer() -> None:
    clock = FakeClock()
    c = AdaptiveFlowController(2, 16, initial_window=16, target_latency=0.5, clock=clock)
    for _ in range(15):
        c.delivered()
    assert not c.flow.paused
    c.delivered()
    assert c.flow.paused  # in flight reached the window
    assert c.snapshot().pauses == 1
    for _ in range(8):  # each item takes 1 s: far over the latency target
        clock.now += 1.0
        c.ack()
    assert c.window < 16  # multiplicative decrease
    while c.in_flight:
        clock.now += 1.0
        c.ack()
    assert c.window >= 2
    assert not c.flow.paused  # drained below the low-water mark
    assert c.snapshot().acked == 16


def test_controller_decreases_at_most_once_per_window() -> None:
    clock = FakeClock()
    c = AdaptiveFlowController(1, 64, initial_window=64, target_latency=0.1, clock=clock)
    for _ in range(64):
        c.delivered()
    clock.now += 1.0
    c.ack()
    assert c.window == 32
    clock.now += 1.0
    c.ack()
    assert c.window == 32  # held until a window's worth of acks


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_window": 0},
        {"min_window": 8, "max_window": 4},
        {"initial_window": 1000},
        {"target_latency": 0},
        {"decrease": 1.0},
        {"smoothing": 0},
        {"clock": 3},
    ],
)
def test_controller_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        AdaptiveFlowController(**kwargs)


def test_adaptive_backpressure_rejects_a_non_controller() -> None:
    with pytest.raises(ConfigError):
        adaptive_backpressure(object())  # type: ignore[arg-type]


async def consume_slowly(
    use_controller: bool, n: int = 400
) -> tuple[int, int, AdaptiveFlowController]:
    """A pull-based producer of `n` tokens and a consumer that yields 3 times per token.

    Returns (max lead of the producer over the consumer, tokens consumed, controller).
    """
    produced = 0
    clock = FakeClock()

    async def producer() -> Any:
        nonlocal produced
        for i in range(n):
            produced += 1
            yield TextDelta(f"{i} ")

    controller = AdaptiveFlowController(4, 32, target_latency=0.05, clock=clock)
    windows: list[int] = []
    controller.state.subscribe(lambda snap: windows.append(snap.window))
    source = from_async_iterable(producer)
    iterator: Any = (
        controller.iterate(source) if use_controller else to_async_iterator(source, maxsize=0)
    )
    consumed = 0
    lead = 0
    async with iterator:
        async for _token in iterator:
            consumed += 1
            lead = max(lead, produced - consumed)
            clock.now += 0.01  # the consumer's processing time, in the controller's clock
            for _ in range(3):
                await asyncio.sleep(0)  # let the producer run (not a timing sleep)
    controller.largest_window_seen = max(windows)  # type: ignore[attr-defined]
    return lead, consumed, controller


async def test_controller_slows_a_pull_based_producer_to_the_consumer() -> None:
    lead, consumed, controller = await consume_slowly(True)
    assert consumed == 400
    # the producer never got more than the window (+ the item being pulled) ahead
    assert lead <= controller.largest_window_seen + 2  # type: ignore[attr-defined]
    assert controller.largest_window_seen < controller.max_window  # adapted, not just capped
    assert controller.snapshot().pauses > 0
    assert controller.snapshot().acked >= 399


async def test_without_the_controller_the_producer_runs_away() -> None:
    lead, consumed, _ = await consume_slowly(False)
    assert consumed == 400
    assert lead > 100  # the harness can tell the difference


async def test_adaptive_operator_with_explicit_acks() -> None:
    clock = FakeClock()
    controller = AdaptiveFlowController(2, 4, clock=clock)
    produced = 0

    async def producer() -> Any:
        nonlocal produced
        for i in range(50):
            produced += 1
            yield TextDelta(str(i))

    received: list[Any] = []
    leads: list[int] = []
    done = asyncio.get_running_loop().create_future()
    subscription = (
        from_async_iterable(producer)
        .pipe(adaptive_backpressure(controller))
        .subscribe(received.append, done.set_exception, lambda: done.set_result(None))
    )
    try:
        while not done.done():
            await asyncio.sleep(0)
            leads.append(produced - controller.snapshot().acked)
            if received and controller.in_flight:
                clock.now += 0.001
                controller.ack()
        assert len(received) == 50
        assert max(leads) <= controller.max_window + 1
    finally:
        subscription.dispose()


async def test_inside_an_event_loop_the_consumer_runs_in_loop_callbacks() -> None:
    subject: Subject[Any] = Subject()
    received: list[Any] = []
    done = asyncio.get_running_loop().create_future()
    subject.pipe(on_backpressure_coalesce()).subscribe(
        received.append, on_completed=lambda: done.set_result(None)
    )
    for word in ["a", "b", "c"]:
        subject.on_next(TextDelta(word))  # produced in one loop step
    subject.on_completed()
    assert received == []  # decoupled: nothing delivered synchronously
    await done
    assert received == [TextDelta("abc")]  # merged while the consumer waited for its turn
    assert await to_list(
        reactivex.of(TextDelta("x"), TextDelta("y")).pipe(on_backpressure_buffer(10))
    ) == [
        TextDelta("x"),
        TextDelta("y"),
    ]
