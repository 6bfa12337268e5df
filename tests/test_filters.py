"""filter_tokens and stop_when (ends the stream cleanly and disposes upstream)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError
from rxtokens.operators import filter_tokens, stop_when
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCall, Usage

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe

CUT = Finish("content_filter")


def run(tokens: list[Any], op: Any) -> list[Any]:
    return list(reactivex.from_iterable(tokens).pipe(op).to_list().run())


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True) if b > a]


# --- filter_tokens --------------------------------------------------------------------------


def test_filter_tokens_keeps_matching_tokens_in_order() -> None:
    tokens = [ReasoningDelta("hm"), TextDelta("a"), Usage(1, 2), TextDelta("b"), Finish("stop")]
    out = run(tokens, filter_tokens(lambda t: t.type in ("text", "finish")))
    assert out == [TextDelta("a"), TextDelta("b"), Finish("stop")]


def test_filter_tokens_predicate_error_fails_the_stream() -> None:
    def boom(token: Any) -> bool:
        raise KeyError("predicate")

    with pytest.raises(KeyError, match="predicate"):
        run([TextDelta("a")], filter_tokens(boom))
    with pytest.raises(ConfigError):
        filter_tokens("text")  # type: ignore[arg-type]


# --- stop_when: marble tests ----------------------------------------------------------------


def test_stop_when_pattern_ends_cleanly_and_disposes_upstream() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, TextDelta("go ST")),
        on_next(220, TextDelta("OP now")),
        on_next(230, TextDelta("more")),
        on_completed(300),
    )
    result = scheduler.start(lambda: source.pipe(stop_when("STOP")))
    assert result.messages == [
        on_next(210, TextDelta("go ")),
        on_next(220, TextDelta("STOP")),
        on_next(220, CUT),
        on_completed(220),
    ]
    assert source.subscriptions == [subscribe(200, 220)]


def test_stop_when_predicate_disposes_upstream_at_the_token() -> None:
    scheduler = TestScheduler()
    call = ToolCall(0, "c1", "delete_everything", {}, 1)
    source = scheduler.create_cold_observable(
        on_next(10, TextDelta("ok")),
        on_next(20, call),
        on_next(30, TextDelta("after")),
        on_completed(40),
    )
    result = scheduler.start(
        lambda: source.pipe(stop_when(lambda t: type(t) is ToolCall, inclusive=False))
    )
    assert result.messages == [
        on_next(210, TextDelta("ok")),
        on_next(220, Finish("content_filter", 1)),
        on_completed(220),
    ]
    assert source.subscriptions == [subscribe(200, 220)]


def test_stop_when_without_match_passes_everything_and_errors() -> None:
    scheduler = TestScheduler()
    error = RuntimeError("upstream")
    source = scheduler.create_hot_observable(
        on_next(210, TextDelta("no ST")),
        on_next(220, TextDelta("ON here")),
        on_error(230, error),
    )
    result = scheduler.start(lambda: source.pipe(stop_when("STOP")))
    assert result.messages == [
        on_next(210, TextDelta("no ")),
        on_next(220, TextDelta("STON here")),
        on_error(230, error),
    ]
    assert source.subscriptions == [subscribe(200, 230)]


def test_stop_when_disposal_by_the_subscriber_disposes_upstream() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(on_next(210, TextDelta("a")), on_completed(400))
    result = scheduler.start(lambda: source.pipe(stop_when("STOP")), disposed=300)
    assert result.messages == [on_next(210, TextDelta("a"))]
    assert source.subscriptions == [subscribe(200, 300)]


# --- stop_when: semantics -------------------------------------------------------------------


@given(
    st.lists(st.sampled_from([*"abST OPx\n", "STOP", "ST", "OP"]), max_size=30).map("".join),
    st.lists(st.integers(0, 10**6), max_size=10),
    st.sampled_from([r"STOP", r"S.{0,3}P", r"\bOP\b"]),
    st.booleans(),
)
def test_stop_when_emits_exactly_the_text_up_to_the_first_match(
    text: str, cuts: list[int], pattern: str, inclusive: bool
) -> None:
    out = run([TextDelta(p) for p in chunks(text, cuts)], stop_when(pattern, inclusive=inclusive))
    emitted = "".join(t.text for t in out if type(t) is TextDelta)
    match = re.search(pattern, text)
    if match is None:
        assert emitted == text
        assert CUT not in out
    else:
        assert emitted == text[: match.end() if inclusive else match.start()]
        assert out[-1] == CUT


def test_stop_when_finish_decides_held_text() -> None:
    out = run([TextDelta("the end ST"), TextDelta("OP"), Finish("stop")], stop_when(r"STOP\b"))
    assert out == [TextDelta("the end "), TextDelta("STOP"), CUT]
    out = run([TextDelta("the end ST"), Finish("stop"), Usage(1, 2)], stop_when(r"STOP"))
    assert out == [TextDelta("the end "), TextDelta("ST"), Finish("stop"), Usage(1, 2)]


def test_stop_when_releases_other_choices_held_text_before_stopping() -> None:
    tokens = [TextDelta("x ST", 1), TextDelta("STOP", 0), TextDelta("OP", 1)]
    out = run(tokens, stop_when("STOP"))
    assert out == [TextDelta("x ", 1), TextDelta("ST", 1), TextDelta("STOP", 0), CUT]


def test_stop_when_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="max_match"):
        stop_when(r"A.*B")
    with pytest.raises(ConfigError, match="predicate"):
        stop_when(lambda t: True, max_match=3)
    with pytest.raises(ConfigError):
        stop_when(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        stop_when("x", inclusive="yes")  # type: ignore[arg-type]
