"""detect_intents (rxtokens/operators/_intents.py): KeywordClassifier, the throttled classifier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reactivex.subject import Subject

from rxtokens import ConfigError, Finish, TextDelta, ToolCall, Usage
from rxtokens.inflight import (
    Intent,
    KeywordClassifier,
    detect_intents,
    on_match,
)
from rxtokens.providers import anthropic, close_sessions
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script
from tests.inflight_helpers import Recorder, run_sync, spin, texts_and_cuts, turns

PHONE = r"\d{3}-\d{4}"


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


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
