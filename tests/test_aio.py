"""Tests for the asyncio bridge (`rxtokens.aio`). No timing assertions anywhere.

Waits on events are bounded by generous `asyncio.timeout` safety nets only so
that a broken implementation fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import reactivex
from reactivex import abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from rxtokens import (
    BackpressureOverflowError,
    Completion,
    ConfigError,
    Finish,
    ProviderError,
    StreamDecodeError,
    StreamTimeoutError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from rxtokens.aio import (
    BoundedSink,
    EmptyStreamError,
    FlowControl,
    ThreadSafeObserver,
    collect,
    current_flow_control,
    first,
    flow_control_scope,
    from_async_iterable,
    last,
    observe_on_loop,
    run,
    to_async_iterator,
    to_list,
)

SAFETY = 10  # seconds; a safety net against hangs, never an assertion


class Probe:
    """An async generator factory that records what happened to it."""

    def __init__(
        self, items: list[Any], *, block_after: int | None = None, async_cleanup: bool = False
    ) -> None:
        self.items = items
        self.block_after = block_after
        self.async_cleanup = async_cleanup
        self.cleanup_done = False
        self.produced = 0
        self.starts = 0
        self.closed = asyncio.Event()
        self.close_count = 0
        self.log: list[str] = []

    async def __call__(self) -> AsyncIterator[Any]:
        self.starts += 1
        try:
            for i, item in enumerate(self.items):
                if self.block_after is not None and i == self.block_after:
                    await asyncio.Event().wait()  # never set: only cancellation ends this
                self.produced += 1
                self.log.append(f"produce {i}")
                yield item
        finally:
            if self.async_cleanup:  # like aiohttp's response.release(): cleanup that awaits
                await asyncio.sleep(0)
                self.cleanup_done = True
            self.close_count += 1
            self.closed.set()


async def spin_until(predicate: Callable[[], bool], max_turns: int = 100_000) -> None:
    """Yield to the loop until `predicate()` holds (a bounded number of turns, not a timer)."""
    for _ in range(max_turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def drain(iterator: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in iterator:
        into.append(item)


async def wait_closed(probe: Probe) -> None:
    async with asyncio.timeout(SAFETY):
        await probe.closed.wait()


# --- from_async_iterable --------------------------------------------------------------------


async def test_from_async_iterable_emits_items_and_completes() -> None:
    probe = Probe([1, 2, 3])
    assert await to_list(from_async_iterable(probe)) == [1, 2, 3]
    assert probe.close_count == 1


async def test_is_cold_and_calls_factory_per_subscription() -> None:
    probe = Probe(["a"])
    source = from_async_iterable(probe)
    assert probe.starts == 0
    assert await to_list(source) == ["a"]
    assert await to_list(source) == ["a"]
    assert probe.starts == 2


async def test_accepts_an_async_iterable_object() -> None:
    async def gen() -> AsyncIterator[int]:
        yield 1
        yield 2

    assert await to_list(from_async_iterable(gen())) == [1, 2]


async def test_pulls_next_only_after_delivery() -> None:
    probe = Probe(list(range(5)))
    done = asyncio.get_running_loop().create_future()

    def on_next(i: int) -> None:
        probe.log.append(f"deliver {i}")

    from_async_iterable(probe).subscribe(on_next, done.set_exception, lambda: done.set_result(1))
    async with asyncio.timeout(SAFETY):
        await done
    expected = [s for i in range(5) for s in (f"produce {i}", f"deliver {i}")]
    assert probe.log == expected


async def test_dispose_mid_stream_closes_the_generator() -> None:
    probe = Probe(list(range(100)), block_after=3)
    received: list[int] = []
    subscription = from_async_iterable(probe).subscribe(received.append)
    await spin_until(lambda: len(received) >= 3)
    assert not probe.closed.is_set()
    subscription.dispose()
    await wait_closed(probe)
    assert received == [0, 1, 2]
    assert probe.close_count == 1


async def test_dispose_from_inside_on_next_closes_the_generator() -> None:
    probe = Probe(list(range(100)), async_cleanup=True)
    assert await to_list(from_async_iterable(probe).pipe(ops.take(3))) == [0, 1, 2]
    await wait_closed(probe)
    assert probe.produced == 3  # nothing pulled after the subscriber left
    assert probe.cleanup_done  # the generator's awaiting cleanup was not interrupted


async def test_dispose_from_outside_lets_awaiting_cleanup_finish() -> None:
    probe = Probe(list(range(100)), block_after=2, async_cleanup=True)
    subscription = from_async_iterable(probe).subscribe(lambda _: None)
    await spin_until(lambda: probe.produced >= 2)
    subscription.dispose()
    await wait_closed(probe)
    assert probe.cleanup_done


async def test_dispose_while_paused_closes_the_generator() -> None:
    probe = Probe(list(range(100)))
    flow = FlowControl(high_water=1)
    flow.pause()
    with flow_control_scope(flow):
        subscription = from_async_iterable(probe).subscribe(lambda _: None)
    assert flow.sources == 1
    for _ in range(5):
        await asyncio.sleep(0)
    assert probe.produced == 0  # paused before the first pull
    subscription.dispose()
    await spin_until(lambda: flow.sources == 0)
    assert probe.produced == 0


async def test_error_is_forwarded_unchanged() -> None:
    boom = ProviderError("boom")

    async def gen() -> AsyncIterator[int]:
        yield 1
        raise boom

    received: list[int] = []
    errors: list[Exception] = []
    done = asyncio.Event()
    from_async_iterable(gen).subscribe(
        received.append, lambda e: (errors.append(e), done.set()), done.set
    )
    async with asyncio.timeout(SAFETY):
        await done.wait()
    assert received == [1]
    assert errors == [boom]


async def test_factory_exception_goes_to_on_error() -> None:
    def factory() -> AsyncIterator[int]:
        raise KeyError("no")

    with pytest.raises(KeyError):
        await to_list(from_async_iterable(factory))


async def test_exception_in_downstream_on_next_becomes_on_error_and_closes() -> None:
    probe = Probe(list(range(10)))
    with pytest.raises(ZeroDivisionError):
        await to_list(from_async_iterable(probe).pipe(ops.map(lambda i: 1 // (i - 2))))
    await wait_closed(probe)
    assert probe.produced == 3


def test_subscribing_outside_a_loop_is_a_config_error() -> None:
    async def gen() -> AsyncIterator[int]:
        yield 1

    errors: list[Exception] = []
    from_async_iterable(gen).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], ConfigError)
    assert "rxtokens.aio.run()" in str(errors[0])


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError):
        from_async_iterable(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        from_async_iterable(lambda: None, loop="loop")  # type: ignore[arg-type]


async def test_subscribing_from_another_thread_with_explicit_loop() -> None:
    loop = asyncio.get_running_loop()
    probe = Probe([1, 2, 3])
    threads: set[int] = set()
    received: list[int] = []
    done = loop.create_future()

    def on_next(value: int) -> None:
        threads.add(threading.get_ident())
        received.append(value)

    def subscribe_in_thread() -> None:
        from_async_iterable(probe, loop=loop).subscribe(
            on_next, done.set_exception, lambda: done.set_result(None)
        )

    await asyncio.to_thread(subscribe_in_thread)
    async with asyncio.timeout(SAFETY):
        await done
    assert received == [1, 2, 3]
    assert threads == {threading.get_ident()}


# --- FlowControl ----------------------------------------------------------------------------


def test_flow_control_water_marks() -> None:
    flow = FlowControl(high_water=10, low_water=3)
    assert not flow.update(9)
    assert flow.update(10)
    assert flow.update(4)  # above low water: still paused
    assert not flow.update(3)
    assert flow.pauses == 1
    flow.set_water_marks(4)
    assert (flow.high_water, flow.low_water) == (4, 2)
    for bad in [(0, None), (5, 5), (5, -1), (True, None), (5, 1.5)]:
        with pytest.raises(ConfigError):
            FlowControl(high_water=bad[0], low_water=bad[1])  # type: ignore[arg-type]


def test_flow_control_state_observable_and_idempotence() -> None:
    flow = FlowControl()
    states: list[bool] = []
    flow.state.subscribe(states.append)
    flow.pause()
    flow.pause()
    flow.resume()
    flow.resume()
    assert states == [False, True, False]
    assert flow.pauses == 1
    assert "paused=False" in repr(flow)


def test_flow_control_attach_detach() -> None:
    flow = FlowControl()
    a = flow.attach()
    b = flow.attach()
    assert flow.sources == 2
    a.dispose()
    a.dispose()
    assert flow.sources == 1
    b.dispose()
    assert flow.sources == 0


async def test_flow_control_wait_ready_blocks_until_resume() -> None:
    flow = FlowControl()
    await flow.wait_ready()  # running: returns at once
    flow.pause()
    waiter = asyncio.ensure_future(flow.wait_ready())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    flow.resume()
    async with asyncio.timeout(SAFETY):
        await waiter


async def test_flow_control_resume_from_another_thread_and_blocking_wait() -> None:
    flow = FlowControl()
    flow.pause()
    assert not flow.wait_ready_blocking(timeout=0)
    waiter = asyncio.ensure_future(flow.wait_ready())
    await asyncio.sleep(0)
    await asyncio.to_thread(flow.resume)
    async with asyncio.timeout(SAFETY):
        await waiter
    assert flow.wait_ready_blocking(timeout=0)


async def test_flow_control_cancelled_waiter_is_forgotten() -> None:
    flow = FlowControl()
    flow.pause()
    waiter = asyncio.ensure_future(flow.wait_ready())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flow._waiters == []
    flow.resume()


def test_flow_control_scope_sets_and_restores() -> None:
    flow = FlowControl()
    assert current_flow_control.get() is None
    with flow_control_scope(flow):
        assert current_flow_control.get() is flow
        with flow_control_scope(None):
            assert current_flow_control.get() is None
        assert current_flow_control.get() is flow
    assert current_flow_control.get() is None


# --- to_async_iterator ----------------------------------------------------------------------


async def test_to_async_iterator_yields_items() -> None:
    seen = [x async for x in to_async_iterator(reactivex.of(1, 2, 3))]
    assert seen == [1, 2, 3]


async def test_to_async_iterator_reraises_errors_after_items() -> None:
    boom = ProviderError("boom")
    source = reactivex.concat(reactivex.of(1, 2), reactivex.throw(boom))
    seen: list[int] = []
    with pytest.raises(ProviderError) as info:
        await drain(to_async_iterator(source), seen)
    assert info.value is boom
    assert seen == [1, 2]


async def test_break_and_aclose_dispose_the_subscription() -> None:
    probe = Probe(list(range(1000)))
    it = to_async_iterator(from_async_iterable(probe), maxsize=8)
    async for x in it:
        if x == 2:
            break
    assert not probe.closed.is_set() or probe.produced < 1000
    await it.aclose()
    await wait_closed(probe)
    assert probe.produced <= 8 + 2
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


async def test_async_with_closes() -> None:
    probe = Probe(list(range(1000)))
    async with to_async_iterator(from_async_iterable(probe), maxsize=4) as it:
        assert await it.__anext__() == 0
    await wait_closed(probe)
    assert probe.produced < 1000


async def test_slow_consumer_does_not_make_the_source_read_ahead_without_bound() -> None:
    total, maxsize = 2000, 16
    probe = Probe(list(range(total)))  # a greedy source: never awaits between items
    pipeline = from_async_iterable(probe).pipe(ops.map(lambda x: x * 2), ops.filter(lambda x: True))
    consumed = 0
    max_ahead = 0
    async with to_async_iterator(pipeline, maxsize=maxsize) as it:
        async for _ in it:
            consumed += 1
            max_ahead = max(max_ahead, probe.produced - consumed)
            for _ in range(3):  # slow: give the producer every chance to run ahead
                await asyncio.sleep(0)
        flow = it.flow_control
    assert consumed == total
    assert max_ahead <= maxsize + 2
    assert flow is not None
    assert flow.pauses > 1


async def test_read_ahead_is_bounded_when_each_pull_expands_into_many_items() -> None:
    chunks, per_chunk, maxsize = 300, 10, 20
    probe = Probe(list(range(chunks)))
    pipeline = from_async_iterable(probe).pipe(
        ops.flat_map(lambda c: reactivex.from_iterable(range(per_chunk)))
    )
    consumed = 0
    max_queued = 0
    max_chunks_ahead = 0
    async with to_async_iterator(pipeline, maxsize=maxsize) as it:
        async for _ in it:
            consumed += 1
            max_queued = max(max_queued, it.qsize())
            max_chunks_ahead = max(max_chunks_ahead, probe.produced - consumed // per_chunk)
            await asyncio.sleep(0)
    assert consumed == chunks * per_chunk
    assert max_queued <= maxsize + per_chunk
    assert max_chunks_ahead <= maxsize // per_chunk + 3


async def test_overflow_of_a_source_that_cannot_pause() -> None:
    source = reactivex.from_iterable(range(100))
    seen: list[int] = []
    with pytest.raises(BackpressureOverflowError) as info:
        await drain(to_async_iterator(source, maxsize=10), seen)
    assert info.value.capacity == 10
    assert seen == list(range(10))


async def test_overflow_disposes_a_hot_source() -> None:
    subject: Subject[int] = Subject()
    it = to_async_iterator(subject, maxsize=2)
    first_item = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0)
    for i in range(5):
        subject.on_next(i)
    assert not subject.observers
    assert await first_item == 0
    assert await it.__anext__() == 1
    with pytest.raises(BackpressureOverflowError):
        await it.__anext__()


async def test_maxsize_zero_is_unbounded() -> None:
    seen = [x async for x in to_async_iterator(reactivex.from_iterable(range(5000)), maxsize=0)]
    assert seen == list(range(5000))


def test_to_async_iterator_validates_maxsize() -> None:
    for bad in [-1, 1.5, True, "3"]:
        with pytest.raises(ConfigError):
            to_async_iterator(reactivex.empty(), maxsize=bad)  # type: ignore[arg-type]


async def test_items_pushed_from_worker_threads_arrive_in_order() -> None:
    subject: Subject[tuple[int, int]] = Subject()
    lock = threading.Lock()
    sent: list[tuple[int, int]] = []
    barrier = threading.Barrier(3)

    def producer(k: int) -> None:
        barrier.wait()
        for i in range(2000):
            with lock:  # the Observable contract: no concurrent on_next
                sent.append((k, i))
                subject.on_next((k, i))

    it = to_async_iterator(subject, maxsize=0)
    received: list[tuple[int, int]] = []

    async def consume() -> None:
        async for item in it:
            received.append(item)

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0)  # let the consumer subscribe
    threads = [threading.Thread(target=producer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    subject.on_completed()
    async with asyncio.timeout(SAFETY):
        await consumer
    assert received == sent
    assert len(received) == 6000


async def test_thread_producer_paused_through_blocking_flow_control() -> None:
    """A worker-thread source that honours FlowControl (what a llama.cpp provider can do)."""
    produced = 0
    stop = threading.Event()

    def subscribe(observer: abc.ObserverBase[int], scheduler: Any = None) -> abc.DisposableBase:
        flow = current_flow_control.get()
        assert flow is not None
        attached = flow.attach()

        def work() -> None:
            nonlocal produced
            try:
                for i in range(3000):
                    while not flow.wait_ready_blocking(timeout=0.05):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    produced += 1
                    observer.on_next(i)
                observer.on_completed()
            finally:
                attached.dispose()

        thread = threading.Thread(target=work)
        thread.start()
        return Disposable(stop.set)

    maxsize = 32
    consumed = 0
    max_ahead = 0
    async with to_async_iterator(reactivex.create(subscribe), maxsize=maxsize) as it:
        async for x in it:
            assert x == consumed
            consumed += 1
            max_ahead = max(max_ahead, produced - consumed)
            await asyncio.sleep(0)
    assert consumed == 3000
    # the thread checks the gate before each item; a pause lands at most a couple late
    assert max_ahead <= maxsize + 4


async def test_cancelling_the_consumer_closes_the_source() -> None:
    probe = Probe(list(range(100)), block_after=5)
    got_five = asyncio.Event()

    async def consume() -> None:
        async with to_async_iterator(from_async_iterable(probe)) as it:
            async for x in it:
                if x == 4:
                    got_five.set()

    task = asyncio.ensure_future(consume())
    async with asyncio.timeout(SAFETY):
        await got_five.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_closed(probe)
    assert probe.produced == 5


async def test_unclosed_iterator_disposes_when_collected() -> None:
    probe = Probe(list(range(100)), block_after=3)

    async def consume() -> None:
        async for x in to_async_iterator(from_async_iterable(probe)):
            if x == 1:
                break  # no aclose(): the iterator is dropped here

    await consume()
    await wait_closed(probe)


# --- awaitables ---------------------------------------------------------------------------


async def test_first_last_to_list() -> None:
    probe = Probe(list(range(50)))
    assert await first(from_async_iterable(probe)) == 0
    await wait_closed(probe)
    assert probe.produced == 1
    assert await last(reactivex.of(1, 2, 3)) == 3
    assert await to_list(reactivex.of(1, 2)) == [1, 2]
    assert await first(reactivex.empty(), default="d") == "d"
    assert await last(reactivex.empty(), default=None) is None
    with pytest.raises(EmptyStreamError):
        await first(reactivex.empty())
    with pytest.raises(EmptyStreamError):
        await last(reactivex.empty())
    with pytest.raises(ProviderError):
        await to_list(reactivex.throw(ProviderError("x")))


async def test_cancelling_an_await_helper_disposes() -> None:
    probe = Probe(list(range(10)), block_after=2)
    task = asyncio.ensure_future(to_list(from_async_iterable(probe)))
    await spin_until(lambda: probe.produced >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_closed(probe)


TOKENS = [TextDelta("Hel"), TextDelta("lo"), Usage(2, 2), Finish("stop")]


async def test_collect() -> None:
    completion = await collect(from_async_iterable(Probe(TOKENS)))
    assert completion.text == "Hello"
    assert completion.usage == Usage(2, 2)
    assert completion.finish_reason == "stop"


async def test_collect_error_carries_partial() -> None:
    async def gen() -> AsyncIterator[Any]:
        yield TextDelta("Hel")
        raise ProviderError("overloaded")

    with pytest.raises(ProviderError) as info:
        await collect(from_async_iterable(gen))
    assert info.value.partial is not None
    assert info.value.partial.text == "Hel"


async def test_collect_invalid_tool_arguments() -> None:
    with pytest.raises(StreamDecodeError):
        await collect(reactivex.of(ToolCallDelta(0, "i", "f", "{nope")))


async def test_collect_timeout_disposes_and_carries_partial() -> None:
    probe = Probe([TextDelta("a"), TextDelta("b"), TextDelta("never")], block_after=2)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(from_async_iterable(probe), timeout=0.01)
    assert info.value.phase == "total"
    assert info.value.partial is not None
    assert info.value.partial.text == "ab"
    await wait_closed(probe)
    with pytest.raises(ConfigError):
        await collect(reactivex.empty(), timeout=-1)


def test_run_with_observable_factory_and_async_factory() -> None:
    assert run(lambda: from_async_iterable(Probe(TOKENS))).text == "Hello"
    assert run(reactivex.from_iterable(TOKENS)).text == "Hello"

    async def make() -> Completion:
        return await collect(from_async_iterable(Probe(TOKENS)))

    assert run(make).text == "Hello"

    async def make_observable() -> reactivex.Observable[Any]:
        return from_async_iterable(Probe(TOKENS))

    assert run(make_observable).finish_reason == "stop"


def test_run_timeout_and_errors() -> None:
    with pytest.raises(StreamTimeoutError) as info:
        run(lambda: from_async_iterable(Probe([TextDelta("x"), 1], block_after=1)), timeout=0.01)
    assert info.value.partial is not None
    assert info.value.partial.text == "x"
    with pytest.raises(ConfigError):
        run(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        run(lambda: 42)  # type: ignore[arg-type,return-value]


async def test_run_inside_a_running_loop_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"await rxtokens\.aio\.collect"):
        run(reactivex.empty())


# --- thread hand-off -----------------------------------------------------------------------


async def test_observe_on_loop_preserves_order_under_concurrent_producers() -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    subject: Subject[tuple[int, int]] = Subject()
    received: list[tuple[int, int]] = []
    delivery_threads: set[int] = set()
    done = loop.create_future()

    def on_next(value: tuple[int, int]) -> None:
        delivery_threads.add(threading.get_ident())
        received.append(value)

    subject.pipe(observe_on_loop()).subscribe(
        on_next, done.set_exception, lambda: done.set_result(None)
    )
    lock = threading.Lock()
    sent: list[tuple[int, int]] = []
    barrier = threading.Barrier(4)

    def producer(k: int) -> None:
        barrier.wait()
        for i in range(1500):
            with lock:
                sent.append((k, i))
                subject.on_next((k, i))

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    subject.on_next((-1, -1))  # from the loop thread, after everything queued by the workers
    subject.on_completed()
    async with asyncio.timeout(SAFETY):
        await done
    assert received == [*sent, (-1, -1)]
    assert delivery_threads == {loop_thread}


async def test_thread_safe_observer_delivers_synchronously_on_the_loop_thread() -> None:
    received: list[int] = []
    errors: list[Exception] = []
    safe = ThreadSafeObserver(
        reactivex.Observer(received.append, errors.append), asyncio.get_running_loop()
    )
    safe.on_next(1)
    assert received == [1]
    safe.on_error(ValueError("x"))
    safe.on_next(2)  # after a terminal notification: dropped
    assert received == [1]
    assert len(errors) == 1


def test_thread_safe_observer_dispose_drops_pending_items() -> None:
    loop = asyncio.new_event_loop()
    try:
        received: list[int] = []
        safe = ThreadSafeObserver(reactivex.Observer(received.append), loop)
        for i in range(10):  # not on the loop's thread (it is not even running): queued
            safe.on_next(i)
        safe.dispose()
        loop.run_until_complete(asyncio.sleep(0))
        assert received == []
    finally:
        loop.close()


async def test_thread_safe_observer_routes_downstream_exceptions_to_on_error() -> None:
    errors: list[Exception] = []

    def explode(_: int) -> None:
        raise KeyError("ui")

    safe = ThreadSafeObserver(
        reactivex.Observer(explode, errors.append), asyncio.get_running_loop()
    )
    safe.on_next(1)
    assert len(errors) == 1
    assert isinstance(errors[0], KeyError)


def test_observe_on_loop_needs_a_loop() -> None:
    with pytest.raises(ConfigError):
        observe_on_loop(loop="x")  # type: ignore[arg-type]
    errors: list[Exception] = []
    reactivex.of(1).pipe(observe_on_loop()).subscribe(on_error=errors.append)
    assert isinstance(errors[0], ConfigError)


def test_observe_on_loop_with_explicit_loop_from_outside() -> None:
    loop = asyncio.new_event_loop()
    try:
        received: list[int] = []
        reactivex.of(1, 2, 3).pipe(observe_on_loop(loop)).subscribe(received.append)
        assert received == []  # queued for the loop, not delivered on this (non-loop) thread
        loop.run_until_complete(asyncio.sleep(0))
        assert received == [1, 2, 3]
    finally:
        loop.close()


async def test_collect_rejects_what_is_not_an_observable() -> None:
    from rxtokens import ConfigError
    from rxtokens.aio import collect

    with pytest.raises(ConfigError, match="got int"):
        await collect(3)  # type: ignore[arg-type]


# --- BoundedSink: the batch side the server reads ------------------------------------------


async def test_bounded_sink_drains_in_batches_and_ends() -> None:
    sink: BoundedSink[int] = BoundedSink(100)
    sink.start(reactivex.from_iterable(range(10)))
    await sink.ready()
    assert sink.drain(4) == [0, 1, 2, 3]
    assert sink.ended() == (False, None)  # items are still queued
    assert sink.drain(100) == [4, 5, 6, 7, 8, 9]
    assert sink.ended() == (True, None)
    assert sink.drain(5) == []


async def test_bounded_sink_exempts_what_arrives_at_subscription_then_bounds_the_rest() -> None:
    subject: Subject[int] = Subject()
    replay = reactivex.concat(reactivex.from_iterable(range(50)), subject)
    sink: BoundedSink[int] = BoundedSink(5, exempt_initial=True)
    sink.start(replay)
    assert len(sink.queue) == 50  # the replay does not count
    assert sink.terminal is None
    for i in range(5):
        subject.on_next(100 + i)  # the consumer is busy: nothing is drained
    assert sink.terminal is None
    subject.on_next(105)  # the sixth live item overflows at once, while nobody reads
    assert sink.overflowed
    assert not subject.observers  # the subscription is disposed
    assert sink.ended() == (False, None)  # what was queued can still be read ...
    sink.drain(1000)
    ended, error = sink.ended()
    assert ended
    assert isinstance(error, BackpressureOverflowError)


async def test_bounded_sink_stop_ends_after_the_queued_items() -> None:
    subject: Subject[int] = Subject()
    sink: BoundedSink[int] = BoundedSink(10)
    sink.start(subject)
    subject.on_next(1)
    sink.stop()
    assert not subject.observers
    assert sink.stopped
    await sink.ready()
    assert sink.drain(10) == [1]
    assert sink.ended() == (True, None)
