"""Inflight analysis: on_match, detect_intents and the new token kinds."""

from __future__ import annotations

import asyncio
import doctest
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import operators as ops
from reactivex.subject import Subject

import rxtokens.inflight
from rxtokens import ConfigError, Finish, ProviderError, TextDelta, ToolCall, Usage, operators
from rxtokens.inflight import (
    ActionResult,
    Intent,
    KeywordClassifier,
    StepBoundary,
    TextMatch,
    ToolResult,
    detect_intents,
    on_match,
)
from rxtokens.operators import _inflight as inflight_impl
from rxtokens.operators import _tools as tools_impl
from rxtokens.providers import anthropic, close_sessions, openai_chat
from rxtokens.testing import assistant_demo
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script
from rxtokens.tokens import token_from_json, token_to_json

PHONE = r"\d{3}-\d{4}"


def run_sync(tokens: list[Any], *operators: Any) -> list[Any]:
    """Every item of ``from_iterable(tokens).pipe(*operators)`` (synchronous sources)."""
    result: list[Any] = reactivex.from_iterable(tokens).pipe(*operators, ops.to_list()).run()
    return result


class Recorder:
    """An observer recording every notification in one ordered log."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.log: list[Any] = [] if log is None else log
        self.items: list[Any] = []
        self.error: Exception | None = None
        self.done = asyncio.Event()

    def on_next(self, item: Any) -> None:
        self.items.append(item)
        self.log.append(("token", item))

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.log.append(("error", error))
        self.done.set()

    def on_completed(self) -> None:
        self.log.append(("completed",))
        self.done.set()


async def spin(predicate: Any, rounds: int = 200) -> None:
    """Give the event loop turns until `predicate()` holds (scheduling, not timing)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def turns(count: int) -> None:
    """Give the event loop `count` turns."""
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


# --------------------------------------------------------------------------- token kinds


@pytest.mark.parametrize(
    "token",
    [
        ActionResult("notify", "555-1234", {"sent": True}, None, 1),
        ActionResult("notify", "555-1234", None, "ValueError: boom"),
        Intent("book_meeting", 0.5, "schedule"),
        ToolResult("call_1", "weather", {"sky": "sunny"}, None, 0, 0.25),
        ToolResult(None, "weather", None, "tool 'weather' timed out after 1 s", 2, 1.0, 1),
        StepBoundary(1, "tool_calls"),
    ],
)
def test_new_token_kinds_round_trip_through_json(token: Any) -> None:
    assert token_from_json(token_to_json(token)) == token
    assert token != tuple(token)  # kinds compare by type, like the built-in tokens


def test_token_kind_discriminators() -> None:
    assert [ActionResult.type, Intent.type, ToolResult.type, StepBoundary.type] == [
        "action_result",
        "intent",
        "tool_result",
        "step",
    ]
    assert ToolResult("c", "t", 1, None, 0, 0.0).ok
    assert not ActionResult("a", "m", None, "E", 0).ok


def test_docstring_examples() -> None:
    targets: list[Any] = [
        inflight_impl,
        tools_impl,
        rxtokens.inflight,
        assistant_demo,
        operators.on_match,
        operators.detect_intents,
        operators.dispatch_tools,
    ]
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    globs = vars(operators)
    for target in targets:
        for test in finder.find(target, globs=dict(globs) if callable(target) else None):
            runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# --------------------------------------------------------------------------- on_match


def test_action_result_follows_the_token_that_completed_the_match() -> None:
    seen: list[TextMatch] = []

    def notify(match: TextMatch) -> str:
        seen.append(match)
        return f"dialing {match.text}"

    tokens = [TextDelta("call 555-"), TextDelta("12"), TextDelta("34 now"), Finish("stop")]
    out = run_sync(tokens, on_match(PHONE, notify))
    assert out == [
        TextDelta("call 555-"),
        TextDelta("12"),
        TextDelta("34 now"),
        ActionResult("notify", "555-1234", "dialing 555-1234", None, 0),
        Finish("stop"),
    ]
    assert seen == [TextMatch("555-1234", 5, 13, (), {}, 0)]


def test_match_decided_by_the_end_of_the_text_comes_before_finish() -> None:
    # "\d+\b" can still grow until the text ends: only Finish decides it
    out = run_sync(
        [TextDelta("order 12"), TextDelta("34"), Finish("stop"), Usage(1, 2)],
        on_match(r"\d{1,8}\b", lambda m: int(m.text)),
    )
    assert out == [
        TextDelta("order 12"),
        TextDelta("34"),
        ActionResult("<lambda>", "1234", 1234, None, 0),
        Finish("stop"),
        Usage(1, 2),
    ]


def test_matches_are_per_choice_and_flushed_at_completion() -> None:
    tokens = [TextDelta("a 555-", 0), TextDelta("x 555-", 1), TextDelta("1234", 1)]
    tokens.append(TextDelta("9876", 0))
    out = run_sync(tokens, on_match(PHONE, lambda m: m.index, name="who"))
    results = [t for t in out if isinstance(t, ActionResult)]
    assert results == [
        ActionResult("who", "555-1234", 1, None, 1),
        ActionResult("who", "555-9876", 0, None, 0),
    ]
    # a match only the end of the stream can decide
    out = run_sync([TextDelta("total: 42")], on_match(r"\d{1,4}\b", lambda m: m.text))
    assert out[-1] == ActionResult("<lambda>", "42", "42", None, 0)


def test_a_failing_action_does_not_end_the_stream() -> None:
    def explode(match: TextMatch) -> None:
        raise ValueError(f"cannot dial {match.text}")

    tokens = [TextDelta("555-1234 and 555-"), TextDelta("9999 ok"), Finish("stop")]
    out = run_sync(tokens, on_match(PHONE, explode))
    assert [t for t in out if not isinstance(t, ActionResult)] == tokens
    errors = [t.error for t in out if isinstance(t, ActionResult)]
    assert errors == ["ValueError: cannot dial 555-1234", "ValueError: cannot dial 555-9999"]


def test_groups_and_named_groups() -> None:
    out = run_sync(
        [TextDelta("meet at 1"), TextDelta("4:3"), TextDelta("0 ok")],
        on_match(r"(?P<h>\d{1,2}):(\d{2})", lambda m: [m.group("h"), m.group(2), m.group()]),
    )
    assert out[-1] == ActionResult("<lambda>", "14:30", ["14", "30", "14:30"], None, 0)


def test_predicate_fires_once_per_choice() -> None:
    calls: list[str] = []
    tokens = [TextDelta("x" * 3), TextDelta("y" * 3), TextDelta("z"), TextDelta("w", 1)]
    out = run_sync(tokens, on_match(lambda text: len(text) > 4, lambda m: calls.append(m.text)))
    assert calls == ["xxxyyy"]
    assert out[2] == ActionResult("<lambda>", "xxxyyy", None, None, 0)


def test_raising_predicate_fails_the_stream() -> None:
    def bad(text: str) -> bool:
        raise RuntimeError("predicate bug")

    with pytest.raises(RuntimeError, match="predicate bug"):
        run_sync([TextDelta("a")], on_match(bad, print))


def test_on_match_validates_eagerly() -> None:
    with pytest.raises(ConfigError, match="unbounded"):
        on_match(r"\d+", print)
    with pytest.raises(ConfigError, match="empty string"):
        on_match(r"\d*", print, max_match=5)
    with pytest.raises(ConfigError, match="callable"):
        on_match(PHONE, "not callable")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="regex"):
        on_match(42, print)
    on_match(r"\d+", print, max_match=12)  # bounded by max_match: fine


def test_subscriptions_do_not_share_state() -> None:
    op = on_match(PHONE, lambda m: m.text)
    source = reactivex.from_iterable([TextDelta("555-"), TextDelta("1234 ")])
    first = source.pipe(op, ops.to_list()).run()
    second = source.pipe(op, ops.to_list()).run()
    assert first == second
    assert sum(isinstance(t, ActionResult) for t in first) == 1


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["555-1234", "12-3456", "999-99999", "0-", "-", " ", "\n"]),
                st.text(alphabet="0123456789- ab", max_size=6),
            ),
            max_size=12,
        )
    )
    text = "".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 1)))
    deltas = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return text, [d for d in deltas if d]


@given(texts_and_cuts())
def test_each_match_fires_exactly_once_whatever_the_chunking(case: tuple[str, list[str]]) -> None:
    text, deltas = case
    pattern = r"\b\d{3}-\d{4}\b"
    fired: list[tuple[str, int, int]] = []
    tokens: list[Any] = [TextDelta(d) for d in deltas] + [Finish("stop")]
    out = run_sync(tokens, on_match(pattern, lambda m: fired.append((m.text, m.start, m.end))))
    expected = [(m.group(), m.start(), m.end()) for m in re.finditer(pattern, text)]
    assert fired == expected
    # tokens pass through untouched and in order; every result comes before Finish
    assert [t for t in out if not isinstance(t, ActionResult)] == tokens
    assert out[-1] == Finish("stop")
    # a result never precedes the token that completed its match
    delivered = ""
    for token in out:
        if isinstance(token, TextDelta):
            delivered += token.text
        elif isinstance(token, ActionResult):
            assert token.match in delivered


async def test_async_action_result_enters_before_completion_which_waits_for_it() -> None:
    gate = asyncio.Event()
    started: list[str] = []

    async def lookup(match: TextMatch) -> str:
        started.append(match.text)
        await gate.wait()
        return f"found {match.text}"

    subject: Subject[Any] = Subject()
    rec = Recorder()
    subject.pipe(on_match(PHONE, lookup)).subscribe(rec)
    subject.on_next(TextDelta("call 555-1234 "))
    await spin(lambda: started == ["555-1234"])  # it runs while the stream goes on
    subject.on_next(TextDelta("please"))
    subject.on_next(Finish("stop"))
    subject.on_completed()
    await turns(5)
    assert not rec.done.is_set()  # completion waits for the pending action
    gate.set()
    await rec.done.wait()
    assert rec.items[-1] == ActionResult("lookup", "555-1234", "found 555-1234", None, 0)
    assert rec.log[-1] == ("completed",)
    assert rec.items[:3] == [TextDelta("call 555-1234 "), TextDelta("please"), Finish("stop")]


async def test_async_action_error_is_isolated() -> None:
    async def broken(match: TextMatch) -> None:
        raise LookupError("no such number")

    tokens = [TextDelta("555-1234 "), Finish("stop")]
    rec = Recorder()
    reactivex.from_iterable(tokens).pipe(on_match(PHONE, broken)).subscribe(rec)
    await rec.done.wait()
    assert rec.error is None
    assert rec.items[-1] == ActionResult("broken", "555-1234", None, "LookupError: no such number")


async def test_dispose_cancels_a_pending_async_action() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def forever(match: TextMatch) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    subject: Subject[Any] = Subject()
    rec = Recorder()
    subscription = subject.pipe(on_match(PHONE, forever)).subscribe(rec)
    subject.on_next(TextDelta("555-1234 "))
    subject.on_completed()
    await started.wait()
    subscription.dispose()
    await cancelled.wait()
    await turns(5)
    assert not rec.done.is_set()


async def test_upstream_error_is_forwarded_at_once() -> None:
    gate = asyncio.Event()

    async def slow(match: TextMatch) -> None:
        await gate.wait()

    subject: Subject[Any] = Subject()
    rec = Recorder()
    subject.pipe(on_match(PHONE, slow)).subscribe(rec)
    subject.on_next(TextDelta("555-1234 "))
    subject.on_error(ProviderError("overloaded", error_type="overloaded_error"))
    await rec.done.wait()
    assert isinstance(rec.error, ProviderError)


def test_async_action_without_an_event_loop_runs_on_a_worker_thread() -> None:
    async def double(match: TextMatch) -> int:
        await asyncio.sleep(0)
        return 2 * int(match.text[:3])

    out = run_sync([TextDelta("555-1234 "), Finish("stop")], on_match(PHONE, double))
    assert out[-1] == ActionResult("double", "555-1234", 1110, None, 0)


async def test_on_match_over_http_acts_while_the_stream_is_still_running(
    srv: ProviderServer,
) -> None:
    """The action starts before the response's Finish is delivered (order of events)."""
    log: list[Any] = []
    text = ["Call", " me", " at", " 555-", "12", "34", " or", " later", " today", "."]
    text += [" Thanks", " for", " waiting", ",", " bye", " now", " then", "!"]
    # ~120 ms of events between the completing token and Finish: the order is not a race
    srv.queue(Reply(script=Script(text=text), delay=0.01))

    async def remember(match: TextMatch) -> str:
        log.append(("action started", match.text))
        return "saved"

    tokens = openai_chat("m", "hi", base_url=srv.base_url_for("openai"), api_key="k")
    rec = Recorder(log)
    tokens.pipe(on_match(PHONE, remember)).subscribe(rec)
    await rec.done.wait()
    assert rec.error is None
    started = log.index(("action started", "555-1234"))
    finish = next(i for i, e in enumerate(log) if e[0] == "token" and isinstance(e[1], Finish))
    assert started < finish
    assert sum(isinstance(t, ActionResult) for t in rec.items) == 1
    assert "".join(t.text for t in rec.items if isinstance(t, TextDelta)) == "".join(text)


# --------------------------------------------------------------------------- detect_intents


def test_keyword_classifier() -> None:
    classify = KeywordClassifier({"book": [r"\bschedule\b", r"\bmeeting\b"], "bye": "goodbye"})
    assert classify("Let's schedule it") == [("book", 0.5, "schedule")]
    assert classify("SCHEDULE a MEETING, goodbye") == [
        ("book", 1.0, "SCHEDULE"),
        ("bye", 1.0, "goodbye"),
    ]
    assert classify("nothing") == []
    with pytest.raises(ConfigError):
        KeywordClassifier({})
    with pytest.raises(ConfigError, match="invalid pattern"):
        KeywordClassifier({"x": ["("]})


@given(texts_and_cuts(), st.integers(10, 40))
def test_keyword_sessions_find_what_a_whole_text_search_finds(
    case: tuple[str, list[str]], lookback: int
) -> None:
    """The incremental KeywordClassifier session agrees with one search of the whole text.

    (Matches are at most 9 characters with their context, within any lookback >= 10.)
    """
    text, deltas = case
    intents = {"phone": [r"\b\d{3}-\d{4}\b", r"\bab\b"], "dash": r"-\d-", "word": r"\ba{1,3}b"}
    classifier = KeywordClassifier(intents, lookback=lookback)
    tokens: list[Any] = [TextDelta(d) for d in deltas]
    # the word throttle shows complete words only, so a trailing \b is never decided early
    out = run_sync(tokens, detect_intents(classifier))
    emitted = {t.name for t in out if isinstance(t, Intent)}
    assert emitted == {name for name, _, _ in classifier(text)}
    # fed raw deltas, patterns without a trailing assertion find exactly the same
    plain = KeywordClassifier({"dash": r"-\d-", "word": r"\ba{1,3}b", "num": [r"\d{3}-", "4"]})
    session = plain.session()
    best: dict[str, float] = {}
    for delta in deltas:
        for name, confidence, _ in session.feed(delta):
            assert confidence > best.get(name, 0.0)  # only new or stronger intents
            best[name] = confidence
    assert best == {name: confidence for name, confidence, _ in plain(text)}


def test_each_intent_is_emitted_once_right_after_the_revealing_token() -> None:
    tokens = [
        TextDelta("Sure, I'll sched"),
        TextDelta("ule the meeting. "),
        TextDelta("Schedule confirmed"),
        Finish("stop"),
    ]
    out = run_sync(tokens, detect_intents({"book": [r"\bschedule\b", r"\bmeeting\b"]}))
    assert out == [
        TextDelta("Sure, I'll sched"),
        TextDelta("ule the meeting. "),
        Intent("book", 1.0, "schedule"),
        TextDelta("Schedule confirmed"),
        Finish("stop"),
    ]


def test_word_throttle_sees_complete_words_only() -> None:
    seen: list[str] = []

    def classify(text: str) -> list[tuple[str, float]]:
        seen.append(text)
        return [("scheduled", 1.0)] if "scheduled" in text.split() else []

    deltas = [TextDelta(c) for c in "I sched uled it"]  # one character per token
    out = run_sync([*deltas, Finish("stop")], detect_intents(classify))
    # not called per token: once per word boundary, plus the final full text
    assert seen == ["I ", "I sched ", "I sched uled ", "I sched uled it"]
    assert not any(isinstance(t, Intent) for t in out)


@pytest.mark.parametrize(
    ("throttle", "expected"),
    [
        ("sentence", ["One.", "One. Two!", "One. Two! three"]),
        (6, ["One. T", "One. Two! three"]),
        ("token", ["One. ", "One. T", "One. Two! ", "One. Two! three"]),
    ],
)
def test_other_throttles(throttle: Any, expected: list[str]) -> None:
    seen: list[str] = []
    deltas = [TextDelta("One. "), TextDelta("T"), TextDelta("wo! "), TextDelta("three")]
    run_sync(deltas, detect_intents(lambda t: seen.append(t), throttle=throttle))
    assert seen == expected


def test_classifier_result_shapes_and_min_confidence() -> None:
    results = iter(
        [
            {"weather": 0.2},
            [("weather", 0.9, "rain"), "greeting"],
            [Intent("weather", 1.0, "again", 5)],
        ]
    )
    tokens = [TextDelta("a "), TextDelta("b "), TextDelta("c ", 1)]
    out = run_sync(tokens, detect_intents(lambda t: next(results, None), min_confidence=0.5))
    assert [t for t in out if isinstance(t, Intent)] == [
        Intent("weather", 0.9, "rain", 0),
        Intent("greeting", 1.0, "", 0),
        Intent("weather", 1.0, "again", 1),  # another choice: emitted again, with its index
    ]


def test_classifier_errors_fail_the_stream_unless_ignored() -> None:
    def broken(text: str) -> None:
        raise RuntimeError("classifier down")

    with pytest.raises(RuntimeError, match="classifier down"):
        run_sync([TextDelta("a b")], detect_intents(broken))
    out = run_sync([TextDelta("a b"), Finish("stop")], detect_intents(broken, errors="ignore"))
    assert out == [TextDelta("a b"), Finish("stop")]
    with pytest.raises(TypeError, match="classifier returned"):
        run_sync([TextDelta("a b")], detect_intents(lambda t: [object()]))


def test_detect_intents_validates_eagerly() -> None:
    with pytest.raises(ConfigError):
        detect_intents("nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="throttle"):
        detect_intents(print, throttle=0)
    with pytest.raises(ConfigError, match="errors"):
        detect_intents(print, errors="maybe")  # type: ignore[arg-type]


async def test_async_classifier_one_call_in_flight_then_latest_text() -> None:
    calls: list[str] = []
    gates: list[asyncio.Event] = []

    async def classify(text: str) -> list[tuple[str, float, str]]:
        calls.append(text)
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
        return [("meeting", 0.8, text)] if "meet" in text else []

    subject: Subject[Any] = Subject()
    rec = Recorder()
    subject.pipe(detect_intents(classify)).subscribe(rec)
    subject.on_next(TextDelta("hello "))
    await spin(lambda: len(calls) == 1)
    subject.on_next(TextDelta("let us "))
    subject.on_next(TextDelta("meet "))
    subject.on_next(TextDelta("soon"))
    await turns(5)
    assert calls == ["hello "]  # one call in flight: no call per token
    gates[0].set()
    await spin(lambda: len(calls) == 2)
    assert calls[1] == "hello let us meet "  # the latest complete words
    subject.on_completed()
    gates[1].set()
    await spin(lambda: len(calls) == 3)
    assert calls[2] == "hello let us meet soon"  # the final full text
    assert not rec.done.is_set()
    gates[2].set()
    await rec.done.wait()
    assert [t for t in rec.items if isinstance(t, Intent)] == [
        Intent("meeting", 0.8, "hello let us meet ")
    ]


async def test_intents_over_http_arrive_mid_stream(srv: ProviderServer) -> None:
    srv.queue(Reply(script=Script(text="I will schedule the meeting now. Done."), delay=0.005))
    tokens = anthropic("m", "hi", base_url=srv.base_url_for("anthropic"), api_key="k")
    rec = Recorder()
    tokens.pipe(detect_intents({"book": r"\bschedule\b"})).subscribe(rec)
    await rec.done.wait()
    kinds = [type(t).__name__ for t in rec.items]
    assert kinds.count("Intent") == 1
    assert kinds.index("Intent") < kinds.index("Finish")
    assert rec.items[kinds.index("Intent")] == Intent("book", 1.0, "schedule")


def test_tool_call_tokens_pass_through_untouched() -> None:
    tokens: list[Any] = [ToolCall(0, "c", "f", {}), Usage(1, 1), Finish("tool_calls")]
    assert run_sync(tokens, on_match(PHONE, print), detect_intents(print)) == tokens
