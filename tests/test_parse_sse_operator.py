"""parse_sse(): marble / virtual-time tests (completion, error, dispose, per-subscription state)."""

from __future__ import annotations

from typing import Any

import reactivex
from reactivex import operators as ops
from reactivex.notification import OnError
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing

from rxtokens.operators import parse_sse
from rxtokens.sse import SseEvent

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe

A = SseEvent(data="a")
B = SseEvent(data="b")


def test_events_emitted_when_their_block_ends_and_completion_discards_the_rest() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(150, b"data: ignored\n\n"),  # before subscription
        on_next(210, b"data: a\n\nda"),
        on_next(220, b"ta: b\r"),
        on_next(230, b"\n\r\n"),  # the CRLF split across chunks is one line ending
        on_next(240, b"data: c\n"),  # never terminated by a blank line
        on_completed(250),
    )
    results = scheduler.start(lambda: xs.pipe(parse_sse()))
    assert results.messages == [on_next(210, A), on_next(230, B), on_completed(250)]
    assert xs.subscriptions == [subscribe(200, 250)]


def test_all_events_of_one_chunk_are_emitted_in_order() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, b"event: x\ndata: 1\n\nid: 7\ndata: 2\n\ndata: 3\n\n"),
        on_completed(220),
    )
    results = scheduler.start(lambda: xs.pipe(parse_sse()))
    assert results.messages == [
        on_next(210, SseEvent("x", "1")),
        on_next(210, SseEvent("message", "2", "7")),
        on_next(210, SseEvent("message", "3", "7")),
        on_completed(220),
    ]


def test_error_passes_through_after_the_events_before_it() -> None:
    scheduler = TestScheduler()
    error = ConnectionResetError("peer went away")
    xs = scheduler.create_hot_observable(
        on_next(210, b"data: a\n\ndata: b"),  # "b" is incomplete when the error arrives
        on_error(220, error),
        on_next(230, b"\n\n"),
    )
    results = scheduler.start(lambda: xs.pipe(parse_sse()))
    assert results.messages == [on_next(210, A), on_error(220, error)]
    assert xs.subscriptions == [subscribe(200, 220)]


def test_dispose_unsubscribes_the_source() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, b"data: a\n\n"),
        on_next(260, b"data: b\n\n"),
        on_completed(300),
    )
    results = scheduler.start(lambda: xs.pipe(parse_sse()), disposed=250)
    assert results.messages == [on_next(210, A)]
    assert xs.subscriptions == [subscribe(200, 250)]


def test_non_bytes_chunk_fails_the_stream_and_unsubscribes() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, b"data: a\n\n"),
        on_next(220, "data: b\n\n"),
        on_next(230, b"data: c\n\n"),
        on_completed(240),
    )
    results = scheduler.start(lambda: xs.pipe(parse_sse()))
    assert results.messages[0] == on_next(210, A)
    (failure,) = results.messages[1:]
    assert failure.time == 220
    assert isinstance(failure.value, OnError)
    assert isinstance(failure.value.exception, TypeError)
    assert "expects bytes" in str(failure.value.exception)
    assert xs.subscriptions == [subscribe(200, 220)]


def test_two_subscriptions_to_one_chain_do_not_share_a_parser() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, b"da"),
        on_next(220, b"ta: a\n\nda"),
        on_next(230, b"ta: b\n\n"),
        on_completed(240),
    )
    chain = xs.pipe(parse_sse())
    first = scheduler.create_observer()
    late = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: chain.subscribe(first))
    # The late subscriber joins mid-line: its own parser never saw the first "da", so it
    # reads the field "ta" (unknown) at 220, then "data: b" at 230.
    scheduler.schedule_absolute(215, lambda *_: chain.subscribe(late))
    scheduler.start()
    assert first.messages == [on_next(220, A), on_next(230, B), on_completed(240)]
    assert late.messages == [on_next(230, B), on_completed(240)]
    assert xs.subscriptions == [subscribe(200, 240), subscribe(215, 240)]


def test_resubscribing_a_cold_chain_starts_from_a_fresh_parser() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(
        on_next(10, b"\xef\xbb"),
        on_next(20, b"\xbfid: 1\ndata: \xc3"),
        on_next(30, b"\xa9\n\n"),
        on_next(40, b"data: tail"),
        on_completed(50),
    )
    results = scheduler.start(lambda: xs.pipe(parse_sse(), ops.repeat(2)))
    expected = SseEvent(data="é", id="1")
    # With a shared parser the second pass would see a BOM mid-stream and a pending "tail".
    assert results.messages == [on_next(230, expected), on_next(280, expected), on_completed(300)]
    assert xs.subscriptions == [subscribe(200, 250), subscribe(250, 300)]


def test_with_real_observable_chain() -> None:
    chunks = [b"event: ping\ndata: 1\n\nda", b"ta: 2\n", b"\n"]
    events: list[SseEvent] = []
    done: list[bool] = []
    reactivex.from_iterable(chunks).pipe(parse_sse()).subscribe(
        events.append, on_completed=lambda: done.append(True)
    )
    assert events == [SseEvent("ping", "1"), SseEvent("message", "2")]
    assert done == [True]


def test_marble_diagram_from_the_docstring() -> None:
    chunks: dict[str | float, Any] = {"x": b"data: a\n\nda", "y": b"ta: b\n\n", "z": b"data: c"}
    events: dict[str | float, Any] = {"A": A, "B": B}
    with marbles_testing(timespan=1) as (start, _cold, hot, exp):
        source = hot("--x--y--z--|", chunks, None)
        expected = exp("--A--B-----|", events, None)
        assert start(source.pipe(parse_sse())) == expected

    failure = ValueError("boom")
    with marbles_testing(timespan=1) as (start, _cold, hot, exp):
        source = hot("--x--#", chunks, failure)
        assert start(source.pipe(parse_sse())) == exp("--A--#", events, failure)
