"""The token model: JSON round trips, kind-aware equality, immutability, Completion."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxtokens import (
    Choice,
    Completion,
    ConfigError,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    token_from_dict,
    token_from_json,
    token_to_dict,
    token_to_json,
)

texts = st.text()
indexes = st.integers(min_value=0, max_value=10)
opt_str = st.none() | st.text(max_size=10)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
tokens = st.one_of(
    st.builds(TextDelta, texts, indexes),
    st.builds(ReasoningDelta, texts, indexes),
    st.builds(RefusalDelta, texts, indexes),
    st.builds(ToolCallDelta, indexes, opt_str, opt_str, texts, indexes),
    st.builds(
        ToolCall,
        indexes,
        opt_str,
        st.text(max_size=10),
        st.dictionaries(st.text(max_size=5), json_values, max_size=4),
        indexes,
    ),
    st.builds(Usage, st.none() | st.integers(0, 10**6), st.none() | st.integers(0, 10**6)),
    st.builds(Finish, opt_str, indexes),
)


@given(tokens)
def test_json_round_trip_preserves_kind_and_fields(token: Any) -> None:
    encoded = token_to_json(token)
    assert json.loads(encoded)["type"] == token.type
    decoded = token_from_json(encoded)
    assert type(decoded) is type(token)
    assert decoded == token


def test_dict_form_names_every_field() -> None:
    assert token_to_dict(ToolCallDelta(1, "call_1", "get_weather", '{"ci')) == {
        "type": "tool_call_delta",
        "index": 1,
        "id": "call_1",
        "name": "get_weather",
        "arguments": '{"ci',
        "choice": 0,
    }


def test_tokens_of_different_kinds_are_never_equal() -> None:
    # Plain tuples would compare equal here: the kind is part of the identity.
    assert TextDelta("a") != ReasoningDelta("a")
    assert TextDelta("a") != RefusalDelta("a")
    assert TextDelta("a") != ("a", 0)
    assert TextDelta("a") == TextDelta("a", 0)
    assert hash(TextDelta("a")) != hash(ReasoningDelta("a"))
    assert len({TextDelta("a"), ReasoningDelta("a"), TextDelta("a")}) == 2


def test_tokens_are_immutable() -> None:
    token = TextDelta("a")
    with pytest.raises(AttributeError):
        token.text = "b"  # type: ignore[misc]
    assert token._replace(text="b") == TextDelta("b")


def test_tokens_support_pattern_matching_and_pickle() -> None:
    match Usage(3, 5):
        case Usage(input_tokens=i, output_tokens=o):
            assert (i, o) == (3, 5)
        case _:
            pytest.fail("Usage did not match")
    assert pickle.loads(pickle.dumps(Finish("stop"))) == Finish("stop")


def test_usage_total() -> None:
    assert Usage(3, 5).total_tokens == 8
    assert Usage(None, 5).total_tokens is None
    assert Usage(output_tokens=5, estimated=True).estimated


@pytest.mark.parametrize(
    "data",
    [{"type": "nope", "text": "a"}, {"text": "a"}, {"type": "text", "text": "a", "bogus": 1}],
)
def test_invalid_token_dicts_raise_config_error(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        token_from_dict(data)


def test_completion_round_trips_through_json() -> None:
    call = ToolCall(0, "call_1", "get_weather", {"city": "Paris"})
    completion = Completion(
        text="Hi",
        reasoning="hmm",
        tool_calls=[call],
        finish_reason="tool_calls",
        usage=Usage(10, 2),
        choices=[
            Choice(0, "Hi", "hmm", "", [call], "tool_calls"),
            Choice(1, "Yo", finish_reason="stop"),
        ],
    )
    data = json.loads(json.dumps(completion.to_dict()))
    assert Completion.from_dict(data) == completion


@pytest.mark.parametrize("text", ["x", "[1]", b"\xff", '"text"'])
def test_invalid_token_json_raises_config_error(text: str | bytes) -> None:
    with pytest.raises(ConfigError):
        token_from_json(text)


def test_usage_cost_fields_round_trip_and_stay_out_of_the_repr_when_unknown() -> None:
    full = Usage(10, 5, cache_read_input_tokens=8, cache_write_input_tokens=2, reasoning_tokens=3)
    assert token_from_json(token_to_json(full)) == full
    assert repr(Usage(10, 5)) == "Usage(input_tokens=10, output_tokens=5, estimated=False)"
    assert "reasoning_tokens=3" in repr(full)
    assert Usage(10, 5) == Usage(10, 5, False, None, None, None)
    assert full.total_tokens == 15
