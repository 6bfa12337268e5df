"""on_match (rxtokens/operators/_match.py): actions on regex matches, mid-stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import reactivex
from hypothesis import given
from reactivex import operators as ops
from reactivex.subject import Subject

from rxtokens import ConfigError, Finish, ProviderError, TextDelta, Usage
from rxtokens.inflight import (
    ActionResult,
    TextMatch,
    on_match,
)
from rxtokens.providers import close_sessions, openai_chat
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script
from tests.inflight_helpers import Recorder, run_sync, spin, texts_and_cuts, turns

PHONE = r"\d{3}-\d{4}"


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


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
