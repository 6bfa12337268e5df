"""Content filters (rxtokens/operators/_redact.py): redact (regex replacement across token
boundaries, released as early as possible), stop_when (ends the stream cleanly and disposes
upstream) and filter_tokens."""

from __future__ import annotations

import re
from typing import Any

import pytest
import reactivex
from hypothesis import assume, given
from hypothesis import strategies as st
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError
from rxtokens.operators import filter_tokens, redact, stop_when
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error
subscribe = ReactiveTest.subscribe

CUT = Finish("content_filter")

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
