"""redact: regex replacement across token boundaries, released as early as possible."""

from __future__ import annotations

import re
from typing import Any

import pytest
import reactivex
from hypothesis import assume, given
from hypothesis import strategies as st

from rxtokens.errors import ConfigError
from rxtokens.operators import redact
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage

# (pattern, max_match): literal, bounded repeats, alternation with a lazy branch that reads
# ahead, word boundaries, anchors, lookarounds, unbounded repeats with a window.
PATTERNS: list[tuple[str, int | None]] = [
    (r"sk-[a-z0-9]{4}", None),
    (r"secret", None),
    (r"(?i)secret", None),
    (r"\bfoo\b", None),
    (r"\Bzz\B", None),
    (r"a.{0,5}b", None),
    (r"a.*?c|ab", 12),
    (r"ab|b", None),
    (r"(a|ab)(c|bcd)", None),
    (r"(?<=x)yy", None),
    (r"x(?=yz)", None),
    (r"foo$", None),
    (r"(?m)^ab", None),
    (r"^ab", None),
    (r"\d+", 8),
    (r"[a-c]+\d", 10),
]
ALPHABET = [*list("abcdfoxyzs-k0123 \n"), "foo", "secret", "SeCrEt", "sk-"]
TEXT = st.lists(st.sampled_from(ALPHABET), max_size=40).map("".join)
CUTS = st.lists(st.integers(0, 10**6), max_size=12)


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True) if b > a]


def run(tokens: list[Any], op: Any) -> list[Any]:
    return list(reactivex.from_iterable(tokens).pipe(op).to_list().run())


def texts(tokens: list[Any]) -> list[str]:
    return [t.text for t in tokens if type(t) is TextDelta]


@given(st.sampled_from(PATTERNS), TEXT, CUTS)
def test_output_equals_re_sub_on_the_whole_text(
    case: tuple[str, int | None], text: str, cuts: list[int]
) -> None:
    pattern, max_match = case
    if max_match is not None:
        assume(all(len(m.group()) <= max_match for m in re.finditer(pattern, text)))
    parts = chunks(text, cuts)
    out = run([TextDelta(p) for p in parts], redact(pattern, "<R>", max_match=max_match))
    assert "".join(texts(out)) == re.sub(pattern, "<R>", text)
    assert all(t for t in texts(out))  # no empty deltas


@given(st.sampled_from([r"sk-[a-z0-9]{4}", r"secret", r"a.{0,5}b", r"ab|b"]), TEXT, CUTS)
def test_no_emitted_delta_contains_a_match(pattern: str, text: str, cuts: list[int]) -> None:
    out = run([TextDelta(p) for p in chunks(text, cuts)], redact(pattern, "#"))
    for delta in texts(out):
        for piece in delta.split("#"):
            assert re.search(pattern, piece) is None


@given(TEXT, CUTS)
def test_text_that_cannot_match_is_released_with_its_own_delta(text: str, cuts: list[int]) -> None:
    """Everything before the last "s" / "sk-..." candidate is out after each delta."""
    op = redact(r"sk-[a-z0-9]{4}", "<R>")
    parts = chunks(text, cuts)
    seen: list[str] = []
    subject: reactivex.subject.Subject[Any] = reactivex.subject.Subject()
    subject.pipe(op).subscribe(lambda t: seen.append(t.text))
    fed = ""
    for part in parts:
        subject.on_next(TextDelta(part))
        fed += part
        released = "".join(seen)
        expected = re.sub(r"sk-[a-z0-9]{4}", "<R>", fed)
        # The held tail is at most the candidate: shorter than a match.
        held = expected[len(released) :] if expected.startswith(released) else None
        assert held is not None
        assert len(held) < len("sk-0000")
        assert held == "" or "sk-0000".startswith(held[:3]) or held.startswith("s")


def test_exact_emissions_of_a_secret_split_over_deltas() -> None:
    tokens = [TextDelta(t) for t in ["my key: s", "k-ab", "cd, and s", "ky is blue", "!"]]
    out = run(tokens, redact(r"sk-[a-z]{4}"))
    assert texts(out) == ["my key: ", "[REDACTED], and ", "sky is blue", "!"]


def test_a_complete_match_is_released_before_the_next_text_arrives() -> None:
    out = run([TextDelta("x sk-abcd"), TextDelta(" y")], redact(r"sk-[a-z]{4}"))
    assert texts(out) == ["x [REDACTED]", " y"]


def test_greedy_match_waits_for_the_character_that_ends_it() -> None:
    out = run([TextDelta("id 12"), TextDelta("34 ok")], redact(r"\d+", "#", max_match=20))
    assert texts(out) == ["id ", "# ok"]


def test_word_boundary_waits_for_the_next_character() -> None:
    out = run([TextDelta("a foo"), TextDelta("d and foo"), TextDelta(" end")], redact(r"\bfoo\b"))
    assert texts(out) == ["a ", "food and ", "[REDACTED] end"]


def test_window_cuts_runs_longer_than_max_match() -> None:
    text = "n=" + "1" * 20 + "!"
    out = run([TextDelta(c) for c in text], redact(r"\d+", "#", max_match=4))
    joined = "".join(texts(out))
    assert not re.search(r"\d", joined)  # never leaked: replaced in window-sized pieces
    assert joined.startswith("n=#")
    assert joined.endswith("#!")
    assert joined.count("#") > 1
    # Decided in one step (the "!" ends the run), the run is one match as with re.sub.
    assert texts(run([TextDelta(text)], redact(r"\d+", "#", max_match=4))) == ["n=#!"]


def test_template_replacement() -> None:
    out = run(
        [TextDelta("call 555-12"), TextDelta("34 now")], redact(r"(\d{3})-(\d{4})", r"\1-XXXX")
    )
    assert "".join(texts(out)) == "call 555-XXXX now"


def test_finish_flushes_the_choice_before_it() -> None:
    tokens = [TextDelta("ends with s"), TextDelta("k-"), Finish("stop"), Usage(3, 4)]
    out = run(tokens, redact(r"sk-[a-z]{4}"))
    assert out == [TextDelta("ends with "), TextDelta("sk-"), Finish("stop"), Usage(3, 4)]


def test_match_at_the_very_end_is_replaced_at_completion() -> None:
    out = run([TextDelta("key sk-ab"), TextDelta("cd")], redact(r"\bsk-[a-z]{4}\b"))
    assert out == [TextDelta("key "), TextDelta("[REDACTED]")]


def test_choices_and_kinds_are_separate_texts() -> None:
    tokens = [
        TextDelta("a sec", 0),
        TextDelta("b sec", 1),
        TextDelta("ret", 0),
        TextDelta("ond", 1),
        ReasoningDelta("my secr", 0),
        ReasoningDelta("et", 0),
    ]
    out = run(tokens, redact("secret"))
    joined: dict[tuple[str, int], str] = {}
    for t in out:
        joined[(t.type, t.index)] = joined.get((t.type, t.index), "") + t.text
    assert joined == {
        ("text", 0): "a [REDACTED]",
        ("text", 1): "b second",
        ("reasoning", 0): "my [REDACTED]",
    }


def test_usage_passes_at_once_and_tool_calls_end_the_text() -> None:
    call = ToolCall(0, "c1", "f", {})
    tokens = [TextDelta("x s"), Usage(1, 1), TextDelta("k"), ToolCallDelta(0, "c1", "f", ""), call]
    out = run(tokens, redact(r"sk-[a-z]{4}"))
    assert out == [
        TextDelta("x "),
        Usage(1, 1),
        TextDelta("sk"),
        ToolCallDelta(0, "c1", "f", ""),
        call,
    ]


def test_errors_pass_after_nothing_more_is_emitted() -> None:
    seen: list[Any] = []
    source = reactivex.concat(reactivex.of(TextDelta("a s")), reactivex.throw(RuntimeError("x")))
    source.pipe(redact("sk-[a-z]{4}")).subscribe(seen.append, seen.append)
    assert seen[0] == TextDelta("a ")
    assert isinstance(seen[-1], RuntimeError)


def test_state_is_per_subscription() -> None:
    op = redact("secret")
    assert texts(run([TextDelta("sec")], op)) == ["sec"]
    assert texts(run([TextDelta("ret")], op)) == ["ret"]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((r"\d+",), {}, "max_match"),
        ((r".*",), {"max_match": 5}, "empty string"),
        ((r"x?",), {}, "empty string"),
        ((r"(",), {}, "invalid pattern"),
        ((re.compile(rb"x"),), {}, "str"),
        ((42,), {}, "str or a compiled"),
        ((r"(a)", r"\2"), {}, "replacement"),
        ((r"a",), {"max_match": 0}, "max_match"),
    ],
)
def test_invalid_arguments_fail_eagerly(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        redact(*args, **kwargs)
