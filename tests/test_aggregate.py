"""Tests for `aggregate()` (its builder is tested in test_completion.py)."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import operators as rxops
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

import rxtokens
from rxtokens import (
    Choice,
    Completion,
    ConfigError,
    Finish,
    ProviderError,
    ReasoningDelta,
    RefusalDelta,
    StreamDecodeError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    TruncatedStreamError,
    Usage,
)
from rxtokens.completion import CompletionBuilder
from rxtokens.operators import aggregate
from rxtokens.tokens import Intent, ToolResult

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed


def run_aggregate(tokens: list[Any]) -> Completion:
    result: Completion = reactivex.from_iterable(tokens).pipe(aggregate()).run()
    return result


def aggregate_error(source: reactivex.Observable[Any]) -> Exception:
    errors: list[Exception] = []
    values: list[Any] = []
    source.pipe(aggregate()).subscribe(values.append, errors.append)
    assert values == []
    assert len(errors) == 1
    return errors[0]


# --- examples -------------------------------------------------------------------------------


def test_no_tokens_gives_empty_completion_with_choice_zero() -> None:
    assert run_aggregate([]) == Completion(choices=[Choice()])


def test_text_reasoning_refusal_finish_usage() -> None:
    c = run_aggregate(
        [
            ReasoningDelta("think "),
            ReasoningDelta("hard"),
            TextDelta("Hel"),
            Usage(3, 1),
            TextDelta("lo"),
            RefusalDelta("no"),
            Usage(3, 2),
            Finish("stop"),
        ]
    )
    assert c.text == "Hello"
    assert c.reasoning == "think hard"
    assert c.refusal == "no"
    assert c.finish_reason == "stop"
    assert c.usage == Usage(3, 2)
    assert c.choices == [
        Choice(index=0, text="Hello", reasoning="think hard", refusal="no", finish_reason="stop")
    ]


def test_multiple_choices_sorted_and_top_level_mirrors_choice_zero() -> None:
    c = run_aggregate(
        [
            TextDelta("b", 2),
            TextDelta("a", 0),
            TextDelta("c", 1),
            Finish("length", 2),
            TextDelta("A", 0),
            Finish("stop", 0),
        ]
    )
    assert [ch.index for ch in c.choices] == [0, 1, 2]
    assert [ch.text for ch in c.choices] == ["aA", "c", "b"]
    assert [ch.finish_reason for ch in c.choices] == ["stop", None, "length"]
    assert c.text == "aA"
    assert c.finish_reason == "stop"


def test_choice_zero_always_present() -> None:
    c = run_aggregate([TextDelta("x", 1)])
    assert [ch.index for ch in c.choices] == [0, 1]
    assert c.text == ""


def test_tool_call_fragments_assembled() -> None:
    c = run_aggregate(
        [
            ToolCallDelta(0, "call_1", "get_weather", ""),
            ToolCallDelta(0, None, None, '{"city": '),
            ToolCallDelta(1, "call_2", "now", ""),
            ToolCallDelta(0, None, None, '"Paris"}'),
            Finish("tool_calls"),
        ]
    )
    assert c.tool_calls == [
        ToolCall(0, "call_1", "get_weather", {"city": "Paris"}),
        ToolCall(1, "call_2", "now", {}),
    ]
    assert c.finish_reason == "tool_calls"


def test_tool_call_id_and_name_from_first_fragment_that_has_them() -> None:
    c = run_aggregate(
        [
            ToolCallDelta(0, None, None, "{"),
            ToolCallDelta(0, "id1", None, ""),
            ToolCallDelta(0, "id2", "f", "}"),
            ToolCallDelta(0, "id3", "g", ""),
        ]
    )
    assert c.tool_calls == [ToolCall(0, "id1", "f", {})]


def test_whole_tool_call_replaces_fragments_and_later_fragments_are_ignored() -> None:
    c = run_aggregate(
        [
            ToolCallDelta(0, "a", "f", '{"x": '),
            ToolCall(0, "a", "f", {"x": 1}),
            ToolCallDelta(0, None, None, "garbage"),
        ]
    )
    assert c.tool_calls == [ToolCall(0, "a", "f", {"x": 1})]


def test_tool_calls_per_choice() -> None:
    c = run_aggregate(
        [
            ToolCallDelta(0, "a", "f", "{}", choice=1),
            ToolCall(0, "b", "g", {"y": 2}),
        ]
    )
    assert c.tool_calls == [ToolCall(0, "b", "g", {"y": 2})]
    assert c.choices[1].tool_calls == [ToolCall(0, "a", "f", {}, choice=1)]


def test_token_kinds_without_answer_parts_pass_and_other_items_are_refused() -> None:
    """Issue 15.15: nothing is dropped unseen (main ignored "not a token" and gave "ab")."""
    c = run_aggregate([TextDelta("a"), ToolResult("c1", "f", "zzz", None, 0, 0.1), TextDelta("b")])
    assert c.text == "ab"
    assert run_aggregate([Intent("buy", 1.0, "a"), TextDelta("a")]).text == "a"

    class Foreign(NamedTuple):
        output: str

    for item in ("not a token", Foreign("zzz"), None, {"type": "text", "text": "x"}):
        err = aggregate_error(reactivex.of(TextDelta("a"), item, TextDelta("b")))
        assert isinstance(err, ConfigError)
        assert type(item).__name__ in str(err)


def test_a_stream_of_completions_gives_the_completion_back() -> None:
    """Issue 15.15: run(source.pipe(aggregate())) was Completion(text="") on main."""
    tokens = [TextDelta("Hi"), ToolCall(0, "c1", "f", {"x": 1}), Finish("tool_calls"), Usage(1, 2)]
    completion = run_aggregate(tokens)
    assert completion.text == "Hi"
    source = reactivex.from_iterable(tokens).pipe(aggregate())
    assert rxtokens.run(source) == completion
    assert run_aggregate([completion]) is completion
    assert CompletionBuilder().add_all([Completion(text="x")]).build() == Completion(text="x")
    # tokens after a Completion add to it
    more = CompletionBuilder().add_all([completion, TextDelta("!")]).build()
    assert (more.text, more.tool_calls, more.usage) == ("Hi!", completion.tool_calls, Usage(1, 2))
    two = Completion(choices=[Choice(0, "a"), Choice(1, "b")], text="a")
    assert CompletionBuilder().add_all([two, TextDelta("c", 1)]).build().choices[1].text == "bc"


def test_invalid_tool_arguments_raise_decode_error_with_partial() -> None:
    err = aggregate_error(
        reactivex.from_iterable(
            [TextDelta("hi"), ToolCallDelta(0, "c1", "search", '{"q": tru'), Finish("tool_calls")]
        )
    )
    assert isinstance(err, StreamDecodeError)
    assert "'search'" in str(err)
    assert repr('{"q": tru') in str(err)
    assert err.partial is not None
    assert err.partial.text == "hi"
    assert err.partial.tool_calls[0].name == "search"


def test_non_object_tool_arguments_raise_decode_error() -> None:
    err = aggregate_error(reactivex.of(ToolCallDelta(0, "c1", "f", "[1, 2]")))
    assert isinstance(err, StreamDecodeError)
    assert "not a JSON object" in str(err)


def test_long_invalid_arguments_are_shortened_in_message() -> None:
    text = "{" + "x" * 5000
    err = aggregate_error(reactivex.of(ToolCallDelta(0, "c1", "f", text)))
    assert "5001 characters" in str(err)
    assert len(str(err)) < 1000


def test_stream_error_gets_partial() -> None:
    source = reactivex.concat(
        reactivex.of(TextDelta("Hel"), ToolCallDelta(0, "c", "f", '{"a": [1, 2')),
        reactivex.throw(ProviderError("overloaded", error_type="overloaded_error")),
    )
    err = aggregate_error(source)
    assert isinstance(err, ProviderError)
    assert err.partial is not None
    assert err.partial.text == "Hel"
    # unfinished arguments are parsed as far as they go
    assert err.partial.tool_calls == [ToolCall(0, "c", "f", {"a": [1, 2]})]


def test_existing_partial_is_kept() -> None:
    original = Completion(text="from decoder")
    source = reactivex.concat(
        reactivex.of(TextDelta("x")),
        reactivex.throw(TruncatedStreamError("cut", partial=original)),
    )
    err = aggregate_error(source)
    assert isinstance(err, TruncatedStreamError)
    assert err.partial is original


def test_other_exceptions_pass_through_untouched() -> None:
    boom = KeyError("boom")
    source = reactivex.concat(reactivex.of(TextDelta("x")), reactivex.throw(boom))
    err = aggregate_error(source)
    assert err is boom
    assert not hasattr(err, "partial")
    cfg = ConfigError("bad")
    assert aggregate_error(reactivex.throw(cfg)) is cfg


def test_malformed_token_goes_to_on_error() -> None:
    err = aggregate_error(reactivex.of(TextDelta(None), TextDelta("x")))  # type: ignore[arg-type]
    assert isinstance(err, TypeError)


def test_token_that_breaks_add_errors_once_and_stops_the_source() -> None:
    pulled: list[int] = []

    def tokens() -> Any:
        for i in range(10):
            pulled.append(i)
            yield TextDelta("x", [i]) if i == 2 else TextDelta("x")  # type: ignore[arg-type]

    err = aggregate_error(reactivex.from_iterable(tokens()))
    assert isinstance(err, TypeError)  # unhashable choice index
    assert pulled == [0, 1, 2]


def test_synchronous_use_with_from_iterable() -> None:
    tokens = [TextDelta(str(i)) for i in range(1000)]
    assert run_aggregate(tokens).text == "".join(str(i) for i in range(1000))


def test_each_subscription_has_its_own_state() -> None:
    pipeline = reactivex.of(TextDelta("a"), TextDelta("b")).pipe(aggregate())
    assert pipeline.run().text == "ab"
    assert pipeline.run().text == "ab"


# --- marble / virtual time ------------------------------------------------------------------


def test_marble_completion() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(150, TextDelta("z")),
        on_next(210, TextDelta("Hel")),
        on_next(220, TextDelta("lo")),
        on_next(230, Finish("stop")),
        on_completed(300),
    )
    results = scheduler.start(lambda: xs.pipe(aggregate()))
    expected = Completion(
        text="Hello",
        finish_reason="stop",
        choices=[Choice(text="Hello", finish_reason="stop")],
    )
    assert results.messages == [on_next(300, expected), on_completed(300)]
    assert xs.subscriptions == [ReactiveTest.subscribe(200, 300)]


def test_marble_error_carries_partial() -> None:
    scheduler = TestScheduler()
    err = ProviderError("boom")
    xs = scheduler.create_hot_observable(on_next(210, TextDelta("Hel")), on_error(250, err))
    results = scheduler.start(lambda: xs.pipe(aggregate()))
    assert results.messages == [on_error(250, err)]
    assert err.partial is not None
    assert err.partial.text == "Hel"
    assert xs.subscriptions == [ReactiveTest.subscribe(200, 250)]


def test_marble_dispose_unsubscribes_without_emitting() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, TextDelta("Hel")), on_completed(900))
    results = scheduler.start(lambda: xs.pipe(aggregate()), disposed=400)
    assert results.messages == []
    assert xs.subscriptions == [ReactiveTest.subscribe(200, 400)]


def test_subject_source() -> None:
    subject: Subject[Any] = Subject()
    out: list[Completion] = []
    subject.pipe(aggregate()).subscribe(out.append)
    subject.on_next(TextDelta("a"))
    assert out == []
    subject.on_next(TextDelta("b"))
    subject.on_completed()
    assert [c.text for c in out] == ["ab"]


def test_composes_with_rx_operators() -> None:
    c = (
        reactivex.from_iterable([TextDelta("a"), TextDelta("b"), TextDelta("c")])
        .pipe(rxops.take(2), aggregate())
        .run()
    )
    assert c.text == "ab"


# --- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children)
    ),
    max_leaves=8,
)


@st.composite
def token_streams(draw: st.DrawFn) -> tuple[list[Any], dict[str, Any]]:
    """A random interleaving of token kinds, plus what the aggregate must contain."""
    tokens: list[Any] = []
    texts: dict[int, list[str]] = {0: [], 1: [], 2: []}
    reasoning: dict[int, list[str]] = {0: [], 1: [], 2: []}
    refusal: dict[int, list[str]] = {0: [], 1: [], 2: []}
    # tool calls: (choice, index) -> list of fragments, prepared up front then interleaved
    pending: list[list[Any]] = []
    expected_tools: dict[tuple[int, int], dict[str, Any]] = {}
    for call_index in range(draw(st.integers(0, 3))):
        choice = draw(st.integers(0, 2))
        args = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
        text = json.dumps(args, ensure_ascii=draw(st.booleans()))
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        frags = [ToolCallDelta(call_index, f"id{call_index}", f"fn{call_index}", "", choice)]
        frags += [ToolCallDelta(call_index, None, None, p, choice) for p in pieces]
        pending.append(frags)
        expected_tools[(choice, call_index)] = args
    usages: list[Usage] = []
    finishes: dict[int, str | None] = {}
    n_steps = draw(st.integers(0, 40))
    for _ in range(n_steps):
        kind = draw(st.sampled_from(["text", "reasoning", "refusal", "tool", "usage", "finish"]))
        idx = draw(st.integers(0, 2))
        if kind == "text":
            s = draw(st.text(max_size=5))
            texts[idx].append(s)
            tokens.append(TextDelta(s, idx))
        elif kind == "reasoning":
            s = draw(st.text(max_size=5))
            reasoning[idx].append(s)
            tokens.append(ReasoningDelta(s, idx))
        elif kind == "refusal":
            s = draw(st.text(max_size=5))
            refusal[idx].append(s)
            tokens.append(RefusalDelta(s, idx))
        elif kind == "tool":
            live = [p for p in pending if p]
            if live:
                frags = draw(st.sampled_from(live))
                tokens.append(frags.pop(0))
        elif kind == "usage":
            u = Usage(draw(st.integers(0, 100)), draw(st.integers(0, 100)))
            usages.append(u)
            tokens.append(u)
        else:
            reason = draw(st.sampled_from(["stop", "length", None, "end_turn"]))
            finishes[idx] = reason
            tokens.append(Finish(reason, idx))
    for frags in pending:  # whatever was not interleaved comes at the end, in order
        tokens.extend(frags)
    expected = {
        "texts": texts,
        "reasoning": reasoning,
        "refusal": refusal,
        "tools": expected_tools,
        "usage": usages[-1] if usages else None,
        "finishes": finishes,
    }
    return tokens, expected


@given(token_streams())
def test_property_aggregate_matches_concatenation(case: tuple[list[Any], dict[str, Any]]) -> None:
    tokens, expected = case
    c = run_aggregate(tokens)
    by_index = {ch.index: ch for ch in c.choices}
    assert [ch.index for ch in c.choices] == sorted(by_index)
    assert 0 in by_index
    for i in range(3):
        ch = by_index.get(i, Choice(index=i))
        assert ch.text == "".join(expected["texts"][i])
        assert ch.reasoning == "".join(expected["reasoning"][i])
        assert ch.refusal == "".join(expected["refusal"][i])
        assert ch.finish_reason == expected["finishes"].get(i)
        calls = {(t.choice, t.index): t for t in ch.tool_calls}
        want = {k: v for k, v in expected["tools"].items() if k[0] == i}
        assert set(calls) == set(want)
        for key, args in want.items():
            assert calls[key].arguments == args
            assert calls[key].name == f"fn{key[1]}"
            assert calls[key].id == f"id{key[1]}"
    assert c.usage == expected["usage"]
    assert c.text == by_index[0].text
    assert c.tool_calls == by_index[0].tool_calls


@given(token_streams(), st.integers(0, 60))
def test_property_error_partial_is_prefix_aggregate(
    case: tuple[list[Any], dict[str, Any]], cut: int
) -> None:
    tokens, _ = case
    prefix = tokens[:cut]
    err = aggregate_error(
        reactivex.concat(reactivex.from_iterable(prefix), reactivex.throw(ProviderError("x")))
    )
    assert isinstance(err, ProviderError)
    assert err.partial == CompletionBuilder().add_all(prefix).build(strict=False)
    assert err.partial is not None
    assert err.partial.text == "".join(
        t.text for t in prefix if type(t) is TextDelta and t.index == 0
    )
