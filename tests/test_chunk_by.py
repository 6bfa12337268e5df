"""chunk_by: text re-cut at boundaries, preserved exactly, other tokens in order."""

from __future__ import annotations

import re
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.errors import ConfigError
from rxtokens.operators import chunk_by
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage

TEXT = st.lists(
    st.sampled_from([*"ab .!?\n\t\"')", "word", "Hi. ", "  ", "\n\n", "é"]), max_size=40
).map("".join)
CUTS = st.lists(st.integers(0, 10**6), max_size=15)
ENDS = {
    "word": re.compile(r"\s\Z"),
    "sentence": re.compile(r"[.!?][\"')\]]*\s+\Z"),
    "line": re.compile(r"\n\Z"),
}


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True) if b > a]


def run(tokens: list[Any], op: Any) -> list[Any]:
    return list(reactivex.from_iterable(tokens).pipe(op).to_list().run())


@given(
    st.sampled_from(["word", "sentence", "line", 1, 3, 7, r"[,;]", re.compile(r"ab")]), TEXT, CUTS
)
def test_text_is_preserved_exactly_and_chunks_end_at_boundaries(
    boundary: Any, text: str, cuts: list[int]
) -> None:
    out = run([TextDelta(p) for p in chunks(text, cuts)], chunk_by(boundary))
    assert "".join(t.text for t in out) == text
    assert all(type(t) is TextDelta and t.text for t in out)
    for chunk in [t.text for t in out][:-1]:  # the last one is the flushed rest
        if isinstance(boundary, int):
            assert len(chunk) == boundary
        elif boundary in ENDS:
            assert ENDS[boundary].search(chunk), chunk
        else:
            pattern = boundary if isinstance(boundary, re.Pattern) else re.compile(boundary)
            assert any(m.end() == len(chunk) for m in pattern.finditer(chunk)), chunk


def test_word_chunks() -> None:
    out = run([TextDelta("Hel"), TextDelta("lo wo"), TextDelta("rld, bye")], chunk_by("word"))
    assert [t.text for t in out] == ["Hello ", "world, ", "bye"]


def test_sentence_chunks_across_deltas() -> None:
    tokens = [TextDelta("One. Tw"), TextDelta("o!"), TextDelta(" Thr"), TextDelta('ee?" Four')]
    out = run(tokens, chunk_by("sentence"))
    assert [t.text for t in out] == ["One. ", "Two! ", 'Three?" ', "Four"]


def test_line_and_size_chunks() -> None:
    out = run([TextDelta("a\nb"), TextDelta("c\n"), TextDelta("d")], chunk_by("line"))
    assert [t.text for t in out] == ["a\n", "bc\n", "d"]
    out = run([TextDelta("abcde"), TextDelta("fg")], chunk_by(3))
    assert [t.text for t in out] == ["abc", "def", "g"]


def test_regex_boundary_split_across_deltas() -> None:
    out = run([TextDelta("x<e"), TextDelta("nd>y<end>")], chunk_by("<end>"))
    assert [t.text for t in out] == ["x<end>", "y<end>"]


def test_other_tokens_flush_pending_text_and_keep_their_order() -> None:
    call = ToolCallDelta(0, "c1", "f", "{}")
    tokens = [
        ReasoningDelta("thinking hard"),
        TextDelta("Hello wor"),
        TextDelta("ld"),
        call,
        TextDelta("again", 1),
        Finish("stop"),
        Usage(1, 2),
    ]
    out = run(tokens, chunk_by("word"))
    assert out == [
        ReasoningDelta("thinking "),
        ReasoningDelta("hard"),
        TextDelta("Hello "),
        TextDelta("world"),
        call,
        TextDelta("again", 1),
        Finish("stop"),
        Usage(1, 2),
    ]


def test_errors_flush_nothing_and_pass() -> None:
    seen: list[Any] = []
    source = reactivex.concat(reactivex.of(TextDelta("a b")), reactivex.throw(RuntimeError("x")))
    source.pipe(chunk_by()).subscribe(seen.append, seen.append)
    assert seen[0] == TextDelta("a ")
    assert isinstance(seen[1], RuntimeError)


def test_state_is_per_subscription() -> None:
    op = chunk_by("word")
    assert run([TextDelta("abc")], op) == [TextDelta("abc")]
    assert run([TextDelta("d e")], op) == [TextDelta("d "), TextDelta("e")]


@pytest.mark.parametrize("boundary", [0, -1, True, "(", r"x*", r"\b", 2.5, re.compile(rb"\n")])
def test_invalid_boundaries_fail_eagerly(boundary: Any) -> None:
    with pytest.raises(ConfigError):
        chunk_by(boundary)
