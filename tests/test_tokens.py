"""The token model: JSON round trips, kind-aware equality, immutability, Completion."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
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


# One example of every kind in the `StreamToken` union (the fresh-interpreter test checks
# that this list and the union agree).
_ROUND_TRIP_SCRIPT = r"""
import importlib.util, sys, types, typing

# the package's __init__ imports everything: stand in an empty package for it, so that
# only rxtokens.tokens (and what it imports itself) is loaded
spec = importlib.util.find_spec("rxtokens")
package = types.ModuleType("rxtokens")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["rxtokens"] = package
import rxtokens.tokens as t

examples = [
    t.TextDelta("hi", 1),
    t.ReasoningDelta("hmm"),
    t.RefusalDelta("no"),
    t.ToolCallDelta(0, "c1", "f", '{"a', 1),
    t.ToolCall(0, "c1", "f", {"a": [1, None]}, 1),
    t.Usage(3, 5, True),
    t.Finish("stop", 2),
    t.PartialToolCall(0, "c1", "f", {"a": "b"}, 1, True),
    t.ActionResult("notify", "SKU-1", {"ok": True}, None, 1),
    t.Intent("refund", 0.9, "money back", 0),
    t.ToolResult("c1", "f", {"t": 21}, None, 0, 0.25, 1),
    t.StepBoundary(1, "tool_calls"),
]
union = set(typing.get_args(t.StreamToken))
assert {type(e) for e in examples} == union, union ^ {type(e) for e in examples}
assert {cls.type: cls for cls in union} == t.TOKEN_TYPES
for token in examples:
    back = t.token_from_json(t.token_to_json(token))
    assert back == token and type(back) is type(token), (token, back)
    assert t.token_from_dict(t.token_to_dict(token)) == token
leaked = sorted(m for m in sys.modules if m.startswith("rxtokens.") and m != "rxtokens.tokens")
assert leaked == ["rxtokens.errors"], leaked
print("ok", len(examples))
"""


def test_every_kind_of_the_union_round_trips_with_only_the_tokens_module_imported() -> None:
    """A fresh interpreter that imports only `rxtokens.tokens` (no operator module)."""
    done = subprocess.run(
        [sys.executable, "-c", _ROUND_TRIP_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "12"]


def test_operator_kinds_are_declared_in_tokens_and_re_exported_where_they_were() -> None:
    import rxtokens
    import rxtokens.inflight
    import rxtokens.operators
    from rxtokens import tokens

    for name in ("ActionResult", "Intent", "ToolResult", "StepBoundary"):
        cls = getattr(tokens, name)
        assert cls.__module__ == "rxtokens.tokens"
        assert getattr(rxtokens, name) is cls
        assert getattr(rxtokens.inflight, name) is cls
    assert rxtokens.operators.PartialToolCall is tokens.PartialToolCall
    assert rxtokens.PartialToolCall is tokens.PartialToolCall


def test_operator_kinds_compare_by_kind() -> None:
    from rxtokens import ActionResult, Intent, StepBoundary, ToolResult

    assert StepBoundary(1, "x") != (1, "x")
    assert Intent("a", 1.0, "x") != ("a", 1.0, "x", 0)
    assert hash(Intent("a", 1.0, "x")) == hash(Intent("a", 1.0, "x", 0))
    assert ToolResult("c", "f", 1, None, 0, 0.0).ok
    assert not ActionResult("a", "m", None, "boom").ok
