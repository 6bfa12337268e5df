"""dispatch_tools (rxtokens/operators/_dispatch.py): tools run mid-stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import reactivex
from reactivex.subject import Subject

from rxtokens import ConfigError, Finish, ProviderError, TextDelta, ToolCall
from rxtokens.inflight import ToolRegistry, ToolResult, dispatch_tools
from rxtokens.operators import aggregate
from rxtokens.providers import anthropic, close_sessions, openai_chat
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script, ScriptedToolCall
from tests.inflight_helpers import Recorder, run_sync, spin, turns


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


def weather(city: str, days: int = 1, *, unit: str = "C") -> dict[str, Any]:
    """The weather forecast for a city.

    Longer explanation that is not part of the description.

    Args:
        city: the city name, e.g.
            "Lisbon".
        days (int): how many days ahead.
        unit: C or F.

    Returns:
        The forecast.
    """
    return {"city": city, "days": days, "unit": unit}


def add(a: int, b: int) -> int:
    """Add."""
    return a + b


def test_results_for_valid_invalid_unknown_and_failing_calls() -> None:
    def fail(reason: str) -> None:
        raise RuntimeError(reason)

    calls: list[Any] = [
        ToolCall(0, "c0", "add", {"a": 1, "b": "2"}),
        ToolCall(1, "c1", "add", {"a": "x"}),
        ToolCall(2, "c2", "nope", {}),
        ToolCall(3, "c3", "fail", {"reason": "disk full"}),
        Finish("tool_calls"),
    ]
    out = run_sync(calls, dispatch_tools([add, fail]))
    assert [t for t in out if not isinstance(t, ToolResult)] == calls
    results = {t.call_id: t for t in out if isinstance(t, ToolResult)}
    assert results["c0"].result == 3
    assert results["c0"].error is None
    assert results["c1"].error is not None
    assert results["c1"].error.startswith("invalid arguments for tool 'add': a: Input should be")
    assert "b: Field required" in results["c1"].error
    assert results["c2"].error == "unknown tool 'nope'; known tools: 'add', 'fail'"
    assert results["c3"].error == "tool 'fail' failed: RuntimeError: disk full"
    assert sorted((r.index, r.name, r.choice) for r in results.values()) == [
        (0, "add", 0),
        (1, "add", 0),
        (2, "nope", 0),
        (3, "fail", 0),
    ]
    # invalid / unknown calls are answered at once, right after their ToolCall
    assert out[out.index(calls[1]) + 1] == results["c1"]
    assert out[out.index(calls[2]) + 1] == results["c2"]


def test_results_are_json_ready_and_the_aggregate_ignores_them() -> None:
    def when() -> dict[str, Any]:
        return {"at": dt.datetime(2025, 6, 13, 9, 30), "tags": {"a"}}

    tokens = [TextDelta("hi"), ToolCall(0, "c0", "when", {}), Finish("stop")]
    out = run_sync(tokens, dispatch_tools([when]))
    assert out[-1].result == {"at": "2025-06-13T09:30:00", "tags": ["a"]}
    completion = reactivex.from_iterable(out).pipe(aggregate()).run()
    assert completion.text == "hi"
    assert completion.tool_calls == [tokens[1]]


def test_each_call_is_dispatched_once() -> None:
    runs: list[int] = []

    def count(n: int) -> int:
        runs.append(n)
        return n

    call = ToolCall(0, "c0", "count", {"n": 1})
    out = run_sync([call, call, ToolCall(0, "c0", "count", {"n": 1}, 1)], dispatch_tools([count]))
    assert sorted(runs) == [1, 1]  # once per (choice, index)
    assert sorted(t.choice for t in out if isinstance(t, ToolResult)) == [0, 1]


async def test_the_tool_starts_before_the_stream_completes() -> None:
    """Order of events: the tool ran before Finish reached the subscriber."""
    log: list[Any] = []

    async def lookup(city: str) -> str:
        log.append(("tool started", city))
        return "sunny"

    subject: Subject[Any] = Subject()
    rec = Recorder(log)
    subject.pipe(dispatch_tools([lookup])).subscribe(rec)
    subject.on_next(ToolCall(0, "c0", "lookup", {"city": "Lisbon"}))
    await spin(lambda: ("tool started", "Lisbon") in log)
    subject.on_next(TextDelta("more text"))
    subject.on_next(Finish("tool_calls"))
    subject.on_completed()
    await rec.done.wait()
    kinds = [e[0] if e[0] != "token" else type(e[1]).__name__ for e in log]
    assert kinds == ["ToolCall", "tool started", "ToolResult", "TextDelta", "Finish", "completed"]


async def test_sync_tools_run_in_a_thread_and_completion_waits_for_them() -> None:
    gate = threading.Event()
    threads: list[int] = []

    def blocking(x: int) -> int:
        threads.append(threading.get_ident())
        gate.wait(10)
        return x * 2

    subject: Subject[Any] = Subject()
    rec = Recorder()
    subject.pipe(dispatch_tools([blocking])).subscribe(rec)
    subject.on_next(ToolCall(0, "c0", "blocking", {"x": 21}))
    subject.on_next(Finish("tool_calls"))  # the loop is not blocked by the tool
    subject.on_completed()
    await spin(lambda: bool(threads))
    assert threads[0] != threading.get_ident()
    assert not rec.done.is_set()
    gate.set()
    await rec.done.wait()
    assert rec.items[-1].result == 42
    assert rec.log[-1] == ("completed",)


async def test_timeout_gives_an_error_result() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    registry = ToolRegistry()
    registry.add(hang)
    registry.add(hang, name="hang_short", timeout=0.01)
    tokens = [ToolCall(0, "c0", "hang_short", {}), Finish("tool_calls")]
    rec = Recorder()
    reactivex.from_iterable(tokens).pipe(dispatch_tools(registry, timeout=None)).subscribe(rec)
    await rec.done.wait()
    assert rec.items[-1].error == "tool 'hang_short' timed out after 0.01 s"


def test_timeout_without_an_event_loop() -> None:
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return "late"

    try:
        out = run_sync([ToolCall(0, "c0", "slow", {})], dispatch_tools([slow], timeout=0.01))
    finally:
        release.set()
    assert out[-1].error == "tool 'slow' timed out after 0.01 s"


def test_without_an_event_loop_sync_and_async_tools_run_on_worker_threads() -> None:
    async def mul(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a * b

    calls = [ToolCall(0, "c0", "add", {"a": 2, "b": 3}), ToolCall(1, "c1", "mul", {"a": 2, "b": 3})]
    out = run_sync(calls, dispatch_tools([add, mul]))
    assert sorted((t.name, t.result) for t in out if isinstance(t, ToolResult)) == [
        ("add", 5),
        ("mul", 6),
    ]


async def test_bounded_concurrency() -> None:
    running = 0
    peak = 0
    started: list[int] = []
    gate = asyncio.Event()

    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        started.append(n)
        await gate.wait()
        running -= 1
        return n

    calls = [ToolCall(i, f"c{i}", "work", {"n": i}) for i in range(5)]
    subject: Subject[Any] = Subject()
    rec = Recorder()
    subject.pipe(dispatch_tools([work], max_concurrency=2)).subscribe(rec)
    for call in calls:
        subject.on_next(call)
    subject.on_completed()
    await spin(lambda: len(started) == 2)
    await turns(10)
    assert started == [0, 1]  # the others wait for a slot
    gate.set()
    await rec.done.wait()
    assert peak == 2
    assert sorted(t.result for t in rec.items if isinstance(t, ToolResult)) == [0, 1, 2, 3, 4]


async def test_upstream_error_cancels_running_tools() -> None:
    cancelled = asyncio.Event()
    started: list[bool] = []

    async def forever() -> None:
        started.append(True)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    subject: Subject[Any] = Subject()
    rec = Recorder()
    subject.pipe(dispatch_tools([forever])).subscribe(rec)
    subject.on_next(ToolCall(0, "c0", "forever", {}))
    await spin(lambda: bool(started))
    subject.on_error(ProviderError("boom", error_type="server_error"))
    await rec.done.wait()
    await cancelled.wait()
    assert isinstance(rec.error, ProviderError)


def star(*args: Any) -> None:
    """Takes anything."""


def test_dispatch_tools_validates_eagerly() -> None:
    with pytest.raises(ConfigError, match="timeout"):
        dispatch_tools([add], timeout=0)
    with pytest.raises(ConfigError, match="max_concurrency"):
        dispatch_tools([add], max_concurrency=0)
    with pytest.raises(ConfigError, match="args"):
        dispatch_tools([star])


@pytest.mark.parametrize(("factory", "route"), [(openai_chat, "openai"), (anthropic, "anthropic")])
async def test_tool_runs_mid_stream_over_http(
    srv: ProviderServer, factory: Any, route: str
) -> None:
    """Against the loopback server: the first tool starts before the response's Finish."""
    log: list[Any] = []

    async def weather_now(city: str) -> str:
        log.append(("tool started", city))
        return f"sunny in {city}"

    script = Script(
        text="Checking.",
        tool_calls=[
            ScriptedToolCall("weather_now", {"city": "Lisbon"}, fragments=2),
            ScriptedToolCall("weather_now", {"city": "Porto"}, fragments=12),
        ],
    )
    # ~130 ms of events between the first ToolCall and Finish: the order is not a race
    srv.queue(Reply(script=script, delay=0.01))
    registry = ToolRegistry([weather_now])
    tokens = factory(
        "m", "hi", tools=registry.schemas(), base_url=srv.base_url_for(route), api_key="k"
    )
    rec = Recorder(log)
    tokens.pipe(dispatch_tools(registry)).subscribe(rec)
    await rec.done.wait()
    assert rec.error is None
    first = log.index(("tool started", "Lisbon"))
    finish = next(i for i, e in enumerate(log) if e[0] == "token" and isinstance(e[1], Finish))
    second_call = next(
        i
        for i, e in enumerate(log)
        if e[0] == "token" and isinstance(e[1], ToolCall) and e[1].arguments == {"city": "Porto"}
    )
    assert first < second_call < finish  # the first tool ran while the second call streamed
    results = [t for t in rec.items if isinstance(t, ToolResult)]
    assert sorted(r.result for r in results) == ["sunny in Lisbon", "sunny in Porto"]
    assert srv.requests[0].json["tools"]  # the schemas went out with the request
