"""Pacing operators: smooth, rate_limit, frames (virtual time, marble-style)."""

from __future__ import annotations

import itertools
import re
import threading
from typing import Any

import pytest
import reactivex
import reactivex.operators as ops
from hypothesis import given
from hypothesis import strategies as st
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.aio import to_list
from rxtokens.errors import ConfigError, ProviderError
from rxtokens.operators import TokenMerger, frames, rate_limit, smooth
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


def values(messages: list[Any]) -> list[tuple[float, Any]]:
    """(time, value) of the on_next messages."""
    return [(m.time, m.value.value) for m in messages if m.value.kind == "N"]


def text_of(messages: list[Any], index: int = 0) -> str:
    return "".join(
        m.value.value.text
        for m in messages
        if m.value.kind == "N" and type(m.value.value) is TextDelta and m.value.value.index == index
    )


# --------------------------------------------------------------------------- smooth


def test_smooth_cuts_words_and_paces_them() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("Hello wor")),
        on_next(212, TextDelta("ld, how are you")),
        on_next(213, Finish("stop")),
        on_completed(215),
    )
    res = s.start(lambda: xs.pipe(smooth(10)))
    assert res.messages == [
        on_next(210, TextDelta("Hello ")),
        on_next(220, TextDelta("world, ")),
        on_next(230, TextDelta("how ")),
        on_next(240, TextDelta("are ")),
        # the incomplete rest is flushed by Finish (no extra delay after it)
        on_next(250, TextDelta("you")),
        on_next(250, Finish("stop")),
        on_completed(250),
    ]
    assert xs.subscriptions == [subscribe(200, 215)]


def test_smooth_does_not_delay_slow_text() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("a ")),
        on_next(230, TextDelta("b ")),
        on_next(250, TextDelta("c")),
        on_completed(260),
    )
    res = s.start(lambda: xs.pipe(smooth(5)))
    assert res.messages == [
        on_next(210, TextDelta("a ")),
        on_next(230, TextDelta("b ")),
        on_next(260, TextDelta("c")),
        on_completed(260),
    ]


def test_smooth_error_is_delivered_after_the_pending_text() -> None:
    s = TestScheduler()
    error = ProviderError("boom")
    xs = s.create_hot_observable(on_next(210, TextDelta("one two thr")), on_error(211, error))
    res = s.start(lambda: xs.pipe(smooth(10)))
    assert res.messages == [
        on_next(210, TextDelta("one ")),
        on_next(220, TextDelta("two ")),
        on_next(230, TextDelta("thr")),
        on_error(230, error),
    ]
    assert xs.subscriptions == [subscribe(200, 211)]


def test_smooth_dispose_cancels_pending_chunks() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(on_next(210, TextDelta("a b c d e ")), on_completed(300))
    res = s.start(lambda: xs.pipe(smooth(10)), disposed=225)
    assert res.messages == [on_next(210, TextDelta("a ")), on_next(220, TextDelta("b "))]
    assert xs.subscriptions == [subscribe(200, 225)]
    assert not s._queue  # no timer left behind


def test_smooth_index_change_and_other_tokens_flush_the_buffer() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("ab")),
        on_next(211, TextDelta("cd", 1)),
        on_next(212, ReasoningDelta("think")),
        on_next(213, TextDelta("x y")),
        on_completed(214),
    )
    res = s.start(lambda: xs.pipe(smooth(10)))
    assert values(res.messages) == [
        (211, TextDelta("ab")),
        (212, TextDelta("cd", 1)),
        (212, ReasoningDelta("think")),
        (213, TextDelta("x ")),
        (223, TextDelta("y")),
    ]
    assert res.messages[-1] == on_completed(223)


@pytest.mark.parametrize(
    ("chunking", "expected"),
    [
        ("line", ["ab\n", "c d\n", "e"]),
        ("char", ["a", "b", "\n", "c", " ", "d", "\n", "e"]),
        (re.compile(r"[,.]"), ["ab\nc d\ne"]),
        (re.compile(r"\n"), ["ab\n", "c d\n", "e"]),
    ],
)
def test_smooth_chunkings(chunking: Any, expected: list[str]) -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(on_next(210, TextDelta("ab\nc d\ne")), on_completed(211))
    res = s.start(lambda: xs.pipe(smooth(0, chunking)))
    assert [v.text for _, v in values(res.messages)] == expected
    assert all(t == 210 or t == 211 for t, _ in values(res.messages))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay": -1},
        {"delay": float("nan")},
        {"chunking": "sentence"},
        {"chunking": re.compile(r"\s*")},
        {"chunking": re.compile(rb"x")},
    ],
)
def test_smooth_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        smooth(**kwargs)


def test_smooth_empty_match_at_runtime_is_an_error() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(on_next(210, TextDelta("ab cd")), on_completed(220))
    res = s.start(lambda: xs.pipe(smooth(0, re.compile(r"\b"))))
    assert xs.subscriptions == [subscribe(200, 210)]
    assert res.messages[-1].value.kind == "E"
    assert isinstance(res.messages[-1].value.exception, ConfigError)
    assert text_of(res.messages) == "ab cd"  # what was buffered is still delivered


def test_smooth_subscriptions_do_not_share_state() -> None:
    s = TestScheduler()
    xs = s.create_cold_observable(on_next(10, TextDelta("a b c ")), on_completed(11))
    op = xs.pipe(smooth(5))
    first = s.create_observer()
    second = s.create_observer()
    op.subscribe(first, scheduler=s)
    op.subscribe(second, scheduler=s)
    s.start()
    assert [m.time for m in first.messages] == [10, 15, 20, 20]
    assert [m.time for m in second.messages] == [10, 15, 20, 20]


@given(
    parts=st.lists(
        st.tuples(st.integers(0, 5), st.text(alphabet="ab \n", max_size=8)), max_size=25
    ),
    delay=st.sampled_from([0, 1, 3]),
    chunking=st.sampled_from(["word", "line", "char"]),
)
def test_smooth_preserves_text_and_keeps_the_pace(
    parts: list[tuple[int, str]], delay: int, chunking: str
) -> None:
    s = TestScheduler()
    t = 200
    messages = []
    for gap, text in parts:
        t += gap
        messages.append(on_next(t + 1, TextDelta(text)))
    xs = s.create_hot_observable(*messages, on_completed(t + 2))
    res = s.start(lambda: xs.pipe(smooth(delay, chunking)), disposed=10_000)
    assert text_of(res.messages) == "".join(text for _, text in parts)
    assert res.messages[-1].value.kind == "C"
    pattern = {"word": r"\S+\s+", "line": r"[^\n]*\n", "char": r"."}[chunking]
    emitted = values(res.messages)
    # every chunk but the flushed rest is exactly one match; paced chunks are >= delay apart
    for (t1, v1), (t2, _) in itertools.pairwise(emitted):
        if re.fullmatch(pattern, v1.text, re.S):
            assert t2 - t1 >= delay


# --------------------------------------------------------------------------- rate_limit


def test_rate_limit_spaces_tokens_and_completes_after_the_queue() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(210, TextDelta("a")),
        on_next(211, TextDelta("b")),
        on_next(212, TextDelta("c")),
        on_completed(213),
    )
    res = s.start(lambda: xs.pipe(rate_limit(0.5)))
    assert res.messages == [
        on_next(210, TextDelta("a")),
        on_next(212, TextDelta("b")),
        on_next(214, TextDelta("c")),
        on_completed(214),
    ]
    assert xs.subscriptions == [subscribe(200, 213)]


def test_rate_limit_burst() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(*(on_next(210, TextDelta(str(i))) for i in range(5)))
    res = s.start(lambda: xs.pipe(rate_limit(1, burst=3)))
    assert [t for t, _ in values(res.messages)] == [210, 210, 210, 211, 212]


def test_rate_limit_error_waits_for_the_queue() -> None:
    s = TestScheduler()
    error = ProviderError("x")
    xs = s.create_hot_observable(
        on_next(210, TextDelta("a")), on_next(210, TextDelta("b")), on_error(210, error)
    )
    res = s.start(lambda: xs.pipe(rate_limit(0.1)))
    assert res.messages == [
        on_next(210, TextDelta("a")),
        on_next(220, TextDelta("b")),
        on_error(220, error),
    ]


def test_rate_limit_dispose() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(*(on_next(210, TextDelta(str(i))) for i in range(5)))
    res = s.start(lambda: xs.pipe(rate_limit(1)), disposed=212)
    assert [t for t, _ in values(res.messages)] == [210, 211]  # disposed before the 212 timer
    assert xs.subscriptions == [subscribe(200, 212)]
    assert not s._queue


@pytest.mark.parametrize(
    "args", [(0,), (-1,), (float("inf"),), (1, 0), (1, 1.5), (1, True), ("3",)]
)
def test_rate_limit_rejects_bad_arguments(args: tuple[Any, ...]) -> None:
    with pytest.raises(ConfigError):
        rate_limit(*args)


@given(
    gaps=st.lists(st.integers(0, 4), min_size=1, max_size=40),
    rate=st.sampled_from([0.25, 0.5, 1.0, 3.0, 7.0]),
    burst=st.integers(1, 4),
)
def test_rate_limit_never_exceeds_the_rate_in_any_window(
    gaps: list[int], rate: float, burst: int
) -> None:
    s = TestScheduler()
    t = 201
    messages = []
    for i, gap in enumerate(gaps):
        t += gap
        messages.append(on_next(t, TextDelta(str(i))))
    xs = s.create_hot_observable(*messages, on_completed(t + 1))
    res = s.start(lambda: xs.pipe(rate_limit(rate, burst)), disposed=100_000)
    emitted = values(res.messages)
    # nothing dropped, nothing reordered
    assert [v.text for _, v in emitted] == [str(i) for i in range(len(gaps))]
    times = [time for time, _ in emitted]
    # any window [times[i], times[j]] holds at most burst + rate * width emissions
    # (TestScheduler keeps time in whole microseconds: allow that rounding)
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - times[i] + 2e-6)
    assert res.messages[-1].value.kind == "C"


# --------------------------------------------------------------------------- frames


def test_frames_merges_text_within_a_frame() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(201, TextDelta("a")),
        on_next(203, TextDelta("b")),
        on_next(204, TextDelta("c")),
        on_next(204, Usage(1, 2)),
        on_next(205, TextDelta("d")),
        on_next(212, TextDelta("e")),
        on_completed(214),
    )
    res = s.start(lambda: xs.pipe(frames(0.25)))  # a frame every 4 ticks
    assert res.messages == [
        on_next(201, TextDelta("a")),  # first token after a quiet frame: at once
        on_next(205, TextDelta("bc")),
        on_next(205, Usage(1, 2)),
        on_next(205, TextDelta("d")),
        on_next(212, TextDelta("e")),
        on_completed(214),
    ]
    assert xs.subscriptions == [subscribe(200, 214)]


def test_frames_flushes_on_completion_and_error() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(201, TextDelta("a")), on_next(202, TextDelta("b")), on_completed(203)
    )
    res = s.start(lambda: xs.pipe(frames(0.1)))
    assert res.messages == [
        on_next(201, TextDelta("a")),
        on_next(203, TextDelta("b")),
        on_completed(203),
    ]
    s = TestScheduler()
    error = ProviderError("x")
    xs = s.create_hot_observable(
        on_next(201, TextDelta("a")), on_next(202, TextDelta("b")), on_error(203, error)
    )
    res = s.start(lambda: xs.pipe(frames(0.1)))
    assert res.messages == [
        on_next(201, TextDelta("a")),
        on_next(203, TextDelta("b")),
        on_error(203, error),
    ]
    assert not s._queue


def test_frames_dispose_drops_the_pending_frame() -> None:
    s = TestScheduler()
    xs = s.create_hot_observable(
        on_next(201, TextDelta("a")), on_next(202, TextDelta("b")), on_completed(300)
    )
    res = s.start(lambda: xs.pipe(frames(0.1)), disposed=205)
    assert res.messages == [on_next(201, TextDelta("a"))]
    assert xs.subscriptions == [subscribe(200, 205)]
    assert not s._queue


def test_frames_rejects_bad_fps() -> None:
    for fps in (0, -1, float("inf"), "30"):
        with pytest.raises(ConfigError):
            frames(fps)  # type: ignore[arg-type]


@given(
    parts=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from(["text", "text1", "reasoning", "usage"]),
            st.text(alphabet="xy ", max_size=4),
        ),
        max_size=40,
    ),
    fps=st.sampled_from([0.1, 0.25, 1.0]),
)
def test_frames_preserve_text_and_limit_the_frame_rate(
    parts: list[tuple[int, str, str]], fps: float
) -> None:
    s = TestScheduler()
    t = 200
    messages = []
    kinds = {
        "text": lambda x: TextDelta(x),
        "text1": lambda x: TextDelta(x, 1),
        "reasoning": lambda x: ReasoningDelta(x),
        "usage": lambda x: Usage(len(x), None),
    }
    for gap, kind, text in parts:
        t += gap
        messages.append(on_next(t + 1, kinds[kind](text)))
    xs = s.create_hot_observable(*messages, on_completed(t + 2))
    res = s.start(lambda: xs.pipe(frames(fps)), disposed=100_000)
    for index in (0, 1):
        expected = "".join(x for _, k, x in parts if k == ("text" if index == 0 else "text1"))
        assert text_of(res.messages, index) == expected
    usages = [v for _, v in values(res.messages) if type(v) is Usage]
    assert usages == [kinds["usage"](x) for _, k, x in parts if k == "usage"]
    # distinct delivery instants (before the final flush) are at least a frame apart
    instants = sorted({time for time, _ in values(res.messages)})
    end = res.messages[-1].time
    inner = [x for x in instants if x != end]
    for a, b in itertools.pairwise(inner):
        assert b - a >= 1 / fps - 1e-9
    # within one delivery, adjacent deltas of the same kind and index were merged
    emitted = values(res.messages)
    for (t1, v1), (t2, v2) in itertools.pairwise(emitted):
        if t1 == t2 and type(v1) is type(v2) and type(v1) is not Usage:
            assert v1.index != v2.index


# --------------------------------------------------------------------------- TokenMerger


def test_token_merger_merges_adjacent_deltas_only() -> None:
    m = TokenMerger()
    for token in [
        TextDelta("a"),
        TextDelta("b"),
        TextDelta("c", 1),
        ReasoningDelta("r"),
        ReasoningDelta("s"),
        ToolCallDelta(0, "id", "f", '{"a"'),
        ToolCallDelta(0, None, None, ": 1}"),
        ToolCallDelta(1, "id2", "g", "{"),
        ToolCall(1, "id2", "g", {}),
        Finish("stop"),
        TextDelta("d"),
    ]:
        m.append(token)
    assert len(m) == 8
    assert m.take_all() == [
        TextDelta("ab"),
        TextDelta("c", 1),
        ReasoningDelta("rs"),
        ToolCallDelta(0, "id", "f", '{"a": 1}'),
        ToolCallDelta(1, "id2", "g", "{"),
        ToolCall(1, "id2", "g", {}),
        Finish("stop"),
        TextDelta("d"),
    ]
    assert len(m) == 0


def test_token_merger_pop_and_popleft() -> None:
    m = TokenMerger()
    single = TextDelta("x")
    m.append(single)
    assert m.popleft() is single  # a lone token is passed on as is
    m.append(TextDelta("a"))
    m.append(TextDelta("b"))
    m.append(Finish("stop"))
    assert m.pop() == Finish("stop")
    m.append(TextDelta("c"))  # after pop the tail is not merged into
    assert m.take_all() == [TextDelta("ab"), TextDelta("c")]


# --------------------------------------------------------------------------- asyncio default


async def test_inside_an_event_loop_timers_run_on_the_loop_thread() -> None:
    threads: set[int] = set()
    source = reactivex.of(TextDelta("one two three "), Finish("stop"))
    result = await to_list(
        source.pipe(
            smooth(0.001),
            rate_limit(10_000, burst=2),
            frames(1000),
            ops.do_action(lambda _t: threads.add(threading.get_ident())),
        )
    )
    assert text_of_tokens(result) == "one two three "
    assert result[-1] == Finish("stop")
    assert threads == {threading.get_ident()}


def text_of_tokens(tokens: list[Any]) -> str:
    return "".join(t.text for t in tokens if type(t) is TextDelta)
