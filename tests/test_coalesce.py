"""The one coalescer (rxtokens.coalesce): its merge rules, property-tested."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.coalesce import Coalescer
from rxtokens.operators import TokenMerger
from rxtokens.token_log import Sequenced
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_text = st.text("ab ", max_size=3)
_index = st.integers(0, 1)
_tokens = st.lists(
    st.one_of(
        st.builds(TextDelta, _text, _index),
        st.builds(ReasoningDelta, _text, _index),
        st.builds(RefusalDelta, _text, _index),
        st.builds(
            ToolCallDelta,
            _index,
            st.sampled_from([None, "id-a", "id-b"]),
            st.sampled_from([None, "f"]),
            _text,
            _index,
        ),
        st.builds(Usage, st.none() | st.integers(0, 9), st.none() | st.integers(0, 9)),
        st.builds(Finish, st.sampled_from(["stop", "length"]), _index),
        st.builds(ToolCall, _index, st.just("id-a"), st.just("f"), st.just({}), _index),
    ),
    max_size=40,
)
# How each operation is interleaved with appends: append only, compact now and then, pop a few.
_plans = st.lists(st.sampled_from(["append", "append", "append", "compact", "popleft"]))


def _streams(tokens: list[Any]) -> dict[tuple[Any, ...], str]:
    """Per choice and kind, and per tool call: the concatenated text, in order."""
    out: dict[tuple[Any, ...], str] = {}
    for t in tokens:
        if type(t) is ToolCallDelta:
            key: tuple[Any, ...] = ("call", t.choice, t.index)
            out[key] = out.get(key, "") + t.arguments
        elif type(t) in (TextDelta, ReasoningDelta, RefusalDelta):
            key = (type(t).__name__, t.index)
            out[key] = out.get(key, "") + t.text
    return out


def _barriers(tokens: list[Any]) -> list[Any]:
    return [t for t in tokens if type(t) in (Finish, ToolCall)]


def _run(tokens: list[Any], plan: list[str], *, merge_usage: bool, sequenced: bool) -> list[Any]:
    c = Coalescer(merge_usage=merge_usage, sequenced=sequenced)
    out: list[Any] = []
    steps = iter(plan)
    for seq, token in enumerate(tokens, 1):
        step = next(steps, "append")
        if step == "compact":
            c.compact()
        elif step == "popleft" and c:
            out.append(c.popleft())
        c.append(token, seq)
    out.extend(c.take_all())
    return out


@given(tokens=_tokens, plan=_plans, merge_usage=st.booleans())
def test_merged_output_concatenates_to_the_input_per_choice_and_per_tool_call(
    tokens: list[Any], plan: list[str], merge_usage: bool
) -> None:
    out = _run(tokens, plan, merge_usage=merge_usage, sequenced=False)
    assert _streams(out) == _streams(tokens)
    assert _barriers(out) == _barriers(tokens)  # never merged, kept in order
    assert len(out) <= len(tokens)
    if not merge_usage:
        assert [t for t in out if type(t) is Usage] == [t for t in tokens if type(t) is Usage]


@given(tokens=_tokens, plan=_plans)
def test_sequence_numbers_are_those_of_the_last_token_merged(
    tokens: list[Any], plan: list[str]
) -> None:
    out = _run(tokens, plan, merge_usage=True, sequenced=True)
    assert all(type(item) is Sequenced for item in out)
    assert _streams([item.token for item in out]) == _streams(tokens)
    seqs = sorted(item.seq for item in out)
    assert len(set(seqs)) == len(seqs)  # each token's seq is reported at most once
    if tokens:
        assert seqs[-1] == len(tokens)  # the last token's seq is never lost


@given(tokens=_tokens)
def test_without_compact_the_order_of_all_tokens_is_kept(tokens: list[Any]) -> None:
    c = Coalescer()
    for token in tokens:
        c.append(token)
    out = c.take_all()

    # Expanding each merged item back by its streams' order gives the input order of keys.
    def keys(seq: list[Any]) -> list[Any]:
        result: list[Any] = []
        for t in seq:
            key = (type(t), getattr(t, "choice", None), t.index) if not isinstance(t, Usage) else t
            if not result or result[-1] != key or type(t) in (Finish, ToolCall, Usage):
                result.append(key)
        return result

    assert keys(out) == keys(tokens)


def test_usage_merges_field_by_field_when_asked() -> None:
    c = Coalescer(merge_usage=True)
    for token in [Usage(3, None), Usage(None, 7), Usage(None, 9, True)]:
        c.append(token)
    assert c.take_all() == [Usage(3, 9, True)]


def test_tool_call_fragments_fill_in_id_and_name_but_never_contradict() -> None:
    c = Coalescer()
    for token in [
        ToolCallDelta(0, None, None, '{"a"'),
        ToolCallDelta(0, "id-1", "f", ": 1"),
        ToolCallDelta(0, "id-2", None, "}"),  # another id: not merged
    ]:
        c.append(token)
    assert c.take_all() == [
        ToolCallDelta(0, "id-1", "f", '{"a": 1'),
        ToolCallDelta(0, "id-2", None, "}"),
    ]


def test_compact_merges_across_barriers_into_the_first_item_of_each_key() -> None:
    c = Coalescer(sequenced=True)
    for seq, token in enumerate(
        [TextDelta("a"), Finish("stop", 1), TextDelta("x", 1), TextDelta("b")], 1
    ):
        c.append(token, seq)
    c.compact()
    assert list(c) == [
        Sequenced(4, TextDelta("ab")),
        Sequenced(2, Finish("stop", 1)),
        Sequenced(3, TextDelta("x", 1)),
    ]
    assert len(c) == 3


def test_token_merger_is_the_coalescer() -> None:
    assert TokenMerger is Coalescer


def test_pop_and_popleft_on_empty_raise() -> None:
    with pytest.raises(IndexError):
        Coalescer().popleft()
    with pytest.raises(IndexError):
        Coalescer().pop()
