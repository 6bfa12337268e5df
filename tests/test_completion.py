"""`rxtokens.completion`: `CompletionBuilder` and `attach_partial`."""

from __future__ import annotations

import pytest

from rxtokens import (
    Completion,
    CompletionBuilder,
    ConfigError,
    ProviderError,
    ReasoningDelta,
    StreamDecodeError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    TruncatedStreamError,
    Usage,
)
from rxtokens.completion import attach_partial
from rxtokens.operators import _aggregate


def test_builder_is_re_exported_where_it_was() -> None:
    import rxtokens.completion

    assert _aggregate.CompletionBuilder is rxtokens.completion.CompletionBuilder
    assert CompletionBuilder is rxtokens.completion.CompletionBuilder


def test_builder_build_is_repeatable_and_incremental() -> None:
    b = CompletionBuilder()
    b.add(TextDelta("a"))
    assert b.build().text == "a"
    b.add(TextDelta("b"))
    assert b.build().text == "ab"
    assert b.build().text == "ab"
    assert b.token_count == 2
    assert b.usage is None


def test_builder_add_all_and_lenient_build() -> None:
    b = CompletionBuilder().add_all([ToolCallDelta(0, "i", "f", '{"a": "b'), Usage(1, 2)])
    with pytest.raises(StreamDecodeError):
        b.build()
    lenient = b.build(strict=False)
    assert lenient.tool_calls == [ToolCall(0, "i", "f", {"a": "b"})]
    assert lenient.usage == Usage(1, 2)
    garbage = CompletionBuilder().add_all([ToolCallDelta(0, "i", "f", "}{")])
    assert garbage.build(strict=False).tool_calls == [ToolCall(0, "i", "f", {})]


def test_long_streams_keep_their_text_exactly_while_pieces_are_compacted() -> None:
    """Thousands of deltas (several compaction runs) on two choices, interleaved."""
    builder = CompletionBuilder()
    expected: dict[int, list[str]] = {0: [], 1: []}
    thinking: list[str] = []
    for i in range(3000):
        piece = f"{i}é "
        builder.add(TextDelta(piece, i % 2))
        expected[i % 2].append(piece)
        if i % 3 == 0:
            builder.add(ReasoningDelta(piece))
            thinking.append(piece)
    completion = builder.build()
    assert completion.text == "".join(expected[0])
    assert completion.choices[1].text == "".join(expected[1])
    assert completion.reasoning == "".join(thinking)
    # memory: the answer's text is the builder's own str (no second copy), nothing pending
    held = builder._choices[0].text  # type: ignore[attr-defined]
    assert held.folded is completion.text
    assert not held.pieces
    assert not held.runs


def test_a_build_mid_stream_is_not_changed_by_later_tokens() -> None:
    """The text grows in place only while the builder alone holds it."""
    builder = CompletionBuilder()
    head = [f"{i} " for i in range(700)]
    tail = [f"{i}é " for i in range(700, 2000)]
    builder.add_all(TextDelta(piece) for piece in head)
    early = builder.build(strict=False)
    builder.add_all(TextDelta(piece) for piece in tail)
    assert early.text == "".join(head)
    assert builder.build().text == "".join(head + tail)


# --- attach_partial ---------------------------------------------------------------------------


def test_attach_partial_sets_the_lenient_build_and_returns_the_same_error() -> None:
    builder = CompletionBuilder().add_all([TextDelta("Hel"), ToolCallDelta(0, "i", "f", '{"a')])
    error = ProviderError("boom")
    assert attach_partial(error, builder) is error
    assert error.partial == builder.build(strict=False)
    assert error.partial is not None
    assert error.partial.text == "Hel"


def test_attach_partial_keeps_a_partial_already_set() -> None:
    first = Completion(text="first")
    error = TruncatedStreamError("dropped", partial=first)
    attach_partial(error, CompletionBuilder().add_all([TextDelta("later")]))
    assert error.partial is first


def test_attach_partial_of_an_empty_builder_is_an_empty_completion() -> None:
    error = attach_partial(TruncatedStreamError("dropped"), CompletionBuilder())
    assert error.partial == CompletionBuilder().build()


def test_attach_partial_leaves_other_errors_untouched() -> None:
    error = ConfigError("bad")
    assert attach_partial(error, CompletionBuilder().add_all([TextDelta("x")])) is error
    assert not hasattr(error, "partial")


def test_attach_partial_never_hides_the_original_error() -> None:
    builder = CompletionBuilder()
    builder.add(TextDelta(None))  # type: ignore[arg-type]  # a malformed token: build() fails
    with pytest.raises(TypeError):
        builder.build(strict=False)
    error = ProviderError("boom")
    assert attach_partial(error, builder) is error
    assert error.partial is None
