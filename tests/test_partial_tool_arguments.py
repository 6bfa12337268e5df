"""Tests for partial_tool_arguments(): parsed-so-far tool arguments, consistent with the final."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import operators as ops

from rxtokens.errors import ProviderError
from rxtokens.operators import PartialToolCall, parse_partial_arguments, partial_tool_arguments
from rxtokens.tokens import (
    TOKEN_TYPES,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    token_from_json,
    token_to_json,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def consistent(partial: Any, final: Any) -> bool:
    """`partial` is what a prefix of `final`'s JSON may show: nothing wrong, maybe less."""
    if isinstance(partial, dict):
        return (
            isinstance(final, dict)
            and set(partial) <= set(final)
            and all(consistent(v, final[k]) for k, v in partial.items())
        )
    if isinstance(partial, list):
        return (
            isinstance(final, list)
            and len(partial) <= len(final)
            and all(consistent(p, f) for p, f in zip(partial, final, strict=False))
        )
    if isinstance(partial, str):
        return isinstance(final, str) and final.startswith(partial)
    return type(partial) is type(final) and partial == final


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


def run(tokens: list[Any], **kwargs: Any) -> list[PartialToolCall]:
    source = reactivex.from_iterable(tokens)
    return source.pipe(partial_tool_arguments(**kwargs), ops.to_list()).run()  # type: ignore[no-any-return]


@given(
    arguments=json_objects,
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
    ascii_only=st.booleans(),
    strings=st.booleans(),
)
def test_emissions_are_prefix_consistent_and_the_last_is_the_full_dict(
    arguments: dict[str, Any], cuts: list[int], ascii_only: bool, strings: bool
) -> None:
    text = json.dumps(arguments, ensure_ascii=ascii_only)
    fragments = split(text, cuts)
    tokens = [ToolCallDelta(0, "call_1", "f", fragments[0])]
    tokens += [ToolCallDelta(0, None, None, f) for f in fragments[1:]]
    out = run(tokens, strings=strings)
    assert out, "at least one emission"
    assert out[-1].arguments == json.loads(text)
    previous: Any = None
    for emission in out:
        assert emission.id == "call_1"
        assert emission.name == "f"
        assert not emission.complete
        assert consistent(emission.arguments, arguments)
        if previous is not None:
            assert consistent(previous, emission.arguments)
            assert previous != emission.arguments  # unchanged values are not re-emitted
        previous = emission.arguments


def test_a_trailing_number_waits_for_its_end() -> None:
    out = run(
        [
            ToolCallDelta(0, "c", "f", '{"n": 12'),
            ToolCallDelta(0, None, None, "3"),
            ToolCallDelta(0, None, None, ".5}"),
        ]
    )
    assert [p.arguments for p in out] == [{}, {"n": 123.5}]


def test_unfinished_strings_can_be_left_out() -> None:
    tokens = [
        ToolCallDelta(0, "c", "f", '{"a": "x", "b": "hel'),
        ToolCallDelta(0, None, None, 'lo"}'),
    ]
    assert [p.arguments for p in run(tokens)] == [{"a": "x", "b": "hel"}, {"a": "x", "b": "hello"}]
    assert [p.arguments for p in run(tokens, strings=False)] == [
        {"a": "x"},
        {"a": "x", "b": "hello"},
    ]


def test_calls_are_keyed_by_choice_and_index_and_a_tool_call_completes() -> None:
    tokens = [
        ToolCallDelta(0, "a", "first", ""),
        ToolCallDelta(1, "b", "second", '{"x": 1}'),
        ToolCallDelta(0, None, None, '{"y": 2'),
        ToolCallDelta(0, "c", "other-choice", '{"z": "'),
        TextDelta("ignored"),
        ToolCall(0, "a", "first", {"y": 2}),
        ToolCallDelta(0, None, None, "}"),  # after the ToolCall: ignored
    ]
    tokens[3] = tokens[3]._replace(choice=1)
    out = run(tokens)
    assert out == [
        PartialToolCall(0, "a", "first", {}, 0),
        PartialToolCall(1, "b", "second", {"x": 1}, 0),
        PartialToolCall(0, "c", "other-choice", {"z": ""}, 1),
        PartialToolCall(0, "a", "first", {"y": 2}, 0, True),
    ]


def test_invalid_arguments_emit_nothing_and_errors_pass_through() -> None:
    source = reactivex.concat(
        reactivex.of(ToolCallDelta(0, "c", "f", "[1, 2"), ToolCallDelta(0, None, None, "] nope")),
        reactivex.throw(ProviderError("boom")),
    )
    seen: list[Any] = []
    errors: list[Exception] = []
    source.pipe(partial_tool_arguments()).subscribe(seen.append, errors.append)
    assert seen == []
    assert isinstance(errors[0], ProviderError)


def test_state_is_per_subscription() -> None:
    source = reactivex.of(ToolCallDelta(0, "c", "f", '{"a": 1}'))
    stream = source.pipe(partial_tool_arguments(), ops.to_list())
    assert stream.run() == stream.run()


def test_partial_tool_call_is_a_registered_json_token() -> None:
    token = PartialToolCall(0, "c", "f", {"a": [1, "x"]}, 0, False)
    assert TOKEN_TYPES["partial_tool_call"] is PartialToolCall
    assert token_from_json(token_to_json(token)) == token
    assert token != ToolCall(0, "c", "f", {"a": [1, "x"]}, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", {}), ("  ", {}), ("{", {}), ('{"a": tr', {}), ('{"a": true', {"a": True}), ("[1", None)],
)
def test_parse_partial_arguments(text: str, expected: Any) -> None:
    assert parse_partial_arguments(text) == expected
