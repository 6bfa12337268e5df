"""rxtokens.inflight: run_agent (the multi-step tool loop, per provider, against the loopback
server), the message formats, the inflight token kinds and the docstring examples."""

from __future__ import annotations

import doctest
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
import reactivex
from reactivex import operators as ops

import rxtokens.inflight
import rxtokens.tools
from rxtokens import Completion, ConfigError, Finish, StreamError, TextDelta, ToolCall, operators
from rxtokens.aio import to_list
from rxtokens.inflight import (
    ActionResult,
    Intent,
    StepBoundary,
    ToolRegistry,
    ToolResult,
    assistant_message,
    run_agent,
    tool_messages,
)
from rxtokens.operators import _dispatch, _intents, _match, _session
from rxtokens.providers import anthropic, close_sessions, gemini, openai_chat
from rxtokens.testing import assistant_demo
from rxtokens.testing.assistant_demo import CALENDAR, demo_tools, run_assistant_demo
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script, ScriptedToolCall

PROMPT = "Weather in Lisbon, and my Friday?"
FACTORIES: dict[str, tuple[Callable[..., Any], str]] = {
    "openai": (openai_chat, "openai"),
    "anthropic": (anthropic, "anthropic"),
    "gemini": (gemini, "gemini"),
}


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


def make_registry(log: list[Any] | None = None) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    async def weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        if log is not None:
            log.append(("tool started", "weather"))
        return {"city": city, "sky": "sunny"}

    @registry.tool
    def agenda(date: str) -> list[str]:
        """The calendar of a day."""
        raise LookupError(f"calendar offline for {date}")

    return registry


def first_step(provider: str) -> Script:
    prefix = {"openai": "call_", "anthropic": "toolu_", "gemini": None}[provider]
    return Script(
        text="Checking.",
        tool_calls=[
            ScriptedToolCall(
                "weather", {"city": "Lisbon"}, id=prefix and f"{prefix}w", fragments=2
            ),
            ScriptedToolCall(
                "agenda", {"date": "2025-06-13"}, id=prefix and f"{prefix}a", fragments=3
            ),
        ],
    )


def agent_for(
    srv: ProviderServer, provider: str, registry: ToolRegistry, **options: Any
) -> tuple[Any, list[list[dict[str, Any]]]]:
    factory, route = FACTORIES[provider]
    sent: list[list[dict[str, Any]]] = []

    def source(messages: list[dict[str, Any]]) -> Any:
        sent.append(messages)
        return factory(
            "m", messages, tools=registry.schemas(), base_url=srv.base_url_for(route), api_key="k"
        )

    return run_agent(source, registry, PROMPT, provider=provider, **options), sent


ERROR = "tool 'agenda' failed: LookupError: calendar offline for 2025-06-13"

EXPECTED_STEP_2: dict[str, Any] = {
    "openai": [
        {"role": "user", "content": PROMPT},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "weather", "arguments": {"city": "Lisbon"}},
                },
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "agenda", "arguments": {"date": "2025-06-13"}},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": {"city": "Lisbon", "sky": "sunny"}},
        {"role": "tool", "tool_call_id": "call_a", "content": {"error": ERROR}},
    ],
    "anthropic": [
        {"role": "user", "content": PROMPT},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_w",
                    "name": "weather",
                    "input": {"city": "Lisbon"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "agenda",
                    "input": {"date": "2025-06-13"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_w",
                    "content": {"city": "Lisbon", "sky": "sunny"},
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_a",
                    "content": {"error": ERROR},
                    "is_error": True,
                },
            ],
        },
    ],
    "gemini": [
        {"role": "user", "parts": [{"text": PROMPT}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "weather", "args": {"city": "Lisbon"}}},
                {"functionCall": {"name": "agenda", "args": {"date": "2025-06-13"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "weather",
                        "response": {"city": "Lisbon", "sky": "sunny"},
                    }
                },
                {"functionResponse": {"name": "agenda", "response": {"error": ERROR}}},
            ],
        },
    ],
}


def decoded(body: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    """The conversation of a recorded request, with JSON-string fields parsed for comparison."""
    messages = json.loads(json.dumps(body["contents" if provider == "gemini" else "messages"]))
    for message in messages:
        for call in message.get("tool_calls") or []:
            assert isinstance(call["function"]["arguments"], str)  # a JSON *string*
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
        if message["role"] == "tool":
            assert isinstance(message["content"], str)
            message["content"] = json.loads(message["content"])
        if isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    assert isinstance(block["content"], str)
                    block["content"] = json.loads(block["content"])
    return messages


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_tool_results_go_back_in_the_providers_own_format(
    srv: ProviderServer, provider: str
) -> None:
    srv.queue(
        Reply(script=first_step(provider), delay=0.002),
        Reply(script=Script(text="Sunny in Lisbon; your calendar is offline."), delay=0.002),
    )
    agent, sent = agent_for(srv, provider, make_registry())
    tokens = await to_list(agent.tokens)
    completion = await agent.completion()

    assert len(srv.requests) == 2
    assert decoded(srv.requests[1].json, provider) == EXPECTED_STEP_2[provider]
    assert srv.requests[1].json["tools"] == srv.requests[0].json["tools"]  # schemas each step
    assert len(sent) == 2
    # the loop's tokens: step 1 (with its tool results), the boundary, step 2
    boundary = tokens.index(StepBoundary(1, "tool_calls"))
    step1, step2 = tokens[:boundary], tokens[boundary + 1 :]
    results = [t for t in step1 if isinstance(t, ToolResult)]
    assert sorted((r.name, r.error) for r in results) == [("agenda", ERROR), ("weather", None)]
    assert not any(isinstance(t, ToolResult | ToolCall | StepBoundary) for t in step2)
    assert "".join(t.text for t in step2 if isinstance(t, TextDelta)) == completion.text
    assert completion.text == "Sunny in Lisbon; your calendar is offline."
    assert completion.tool_calls == []
    assert [len(c.tool_calls) for c in agent.completions] == [2, 0]
    assert agent.result == completion
    assert agent.messages[-1] == assistant_message(provider, completion)
    assert agent.messages[: len(sent[1])] == sent[1]


async def test_the_tool_starts_before_the_first_response_finishes(srv: ProviderServer) -> None:
    """Order of events in the agent's own stream: the tool ran before step 1's Finish."""
    log: list[Any] = []
    script = first_step("anthropic")
    slow_second = [
        script.tool_calls[0],
        ScriptedToolCall("agenda", {"date": "x" * 40}, fragments=12),
    ]
    # ~130 ms of events between the first ToolCall and Finish: the order is not a race
    srv.queue(Reply(script=replace(script, tool_calls=slow_second), delay=0.01), Script(text="Ok"))
    agent, _ = agent_for(srv, "anthropic", make_registry(log))
    done: list[bool] = []
    agent.tokens.subscribe(lambda t: log.append(("token", t)), None, lambda: done.append(True))
    await agent.completion()
    started = log.index(("tool started", "weather"))
    first_finish = next(i for i, e in enumerate(log) if e[0] == "token" and type(e[1]) is Finish)
    assert started < first_finish
    assert done == [True]


async def test_max_steps_stops_a_loop_that_keeps_calling_tools(srv: ProviderServer) -> None:
    srv.queue(Reply(script=first_step("openai")), Reply(script=first_step("openai")))
    agent, _ = agent_for(srv, "openai", make_registry(), max_steps=2)
    tokens = await to_list(agent.tokens)
    assert len(srv.requests) == 2
    boundaries = [t for t in tokens if isinstance(t, StepBoundary)]
    assert boundaries == [StepBoundary(1, "tool_calls"), StepBoundary(2, "max_steps")]
    assert tokens[-1] == StepBoundary(2, "max_steps")
    assert agent.result is not None
    assert len(agent.result.tool_calls) == 2
    # the unanswered tool calls' results are still in the conversation
    assert agent.messages[-1]["role"] == "tool"


async def test_one_shared_run_for_tokens_final_and_completion(srv: ProviderServer) -> None:
    srv.queue(Reply(script=first_step("gemini"), delay=0.002), Script(text="Ok."))
    agent, _ = agent_for(srv, "gemini", make_registry())
    finals: list[Completion] = []
    agent.final.subscribe(finals.append)
    tokens = await to_list(agent.tokens)
    completion = await agent.completion()
    late = await to_list(agent.tokens)  # a late subscriber gets the replay
    assert late == tokens
    assert finals == [completion]
    assert len(srv.requests) == 2


async def test_a_failing_step_ends_the_loop_with_its_error(srv: ProviderServer) -> None:
    srv.queue(Reply(script=first_step("openai")), Reply(status=500))
    agent, _ = agent_for(srv, "openai", make_registry())
    with pytest.raises(StreamError) as info:
        await agent.completion()
    assert info.value.partial is not None
    assert len(agent.completions) == 1
    assert agent.result is None


def test_synchronous_sources_and_no_event_loop() -> None:
    steps = [
        [
            TextDelta("Let me add."),
            ToolCall(0, None, "add", {"a": 2, "b": 3}),
            Finish("tool_calls"),
        ],
        [TextDelta("It is 5."), Finish("stop")],
    ]
    seen: list[list[dict[str, Any]]] = []

    def source(messages: list[dict[str, Any]]) -> Any:
        seen.append(messages)
        return reactivex.from_iterable(steps[len(seen) - 1])

    def add(a: int, b: int) -> int:
        return a + b

    agent = run_agent(source, [add], "2 + 3?")
    tokens = agent.tokens.pipe(ops.to_list()).run()
    assert [type(t).__name__ for t in tokens] == [
        "TextDelta",
        "ToolCall",
        "Finish",
        "ToolResult",
        "StepBoundary",
        "TextDelta",
        "Finish",
    ]
    assert seen[1][-1] == {"role": "tool", "tool_call_id": "call_0", "content": "5"}
    assert seen[1][-2]["tool_calls"][0]["id"] == "call_0"  # no id from the model: made up
    assert agent.result is not None
    assert agent.result.text == "It is 5."


def test_tool_messages_units() -> None:
    call = ToolCall(0, None, "f", {"x": 1})
    done = Completion(text="", tool_calls=[call])
    missing = tool_messages("anthropic", done, [])
    assert missing[0] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_0", "name": "f", "input": {"x": 1}}],
    }
    block = missing[1]["content"][0]
    assert block["is_error"] is True
    assert "was not executed" in block["content"]
    with_id = Completion(tool_calls=[ToolCall(0, "fc_1", "f", {})])
    result = ToolResult("fc_1", "f", "plain text", None, 0, 0.0)
    gemini_turns = tool_messages("gemini", with_id, [result])
    assert gemini_turns[0]["parts"] == [{"functionCall": {"name": "f", "args": {}, "id": "fc_1"}}]
    assert gemini_turns[1]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"result": "plain text"}, "id": "fc_1"}}
    ]
    openai_turns = tool_messages("openai", with_id, [result])
    assert openai_turns[0]["content"] is None
    assert openai_turns[1]["content"] == "plain text"  # strings are sent as they are
    with pytest.raises(ConfigError, match="unknown provider"):
        tool_messages("openai_responses", with_id, [result])


def test_run_agent_validates_eagerly() -> None:
    with pytest.raises(ConfigError, match="provider"):
        run_agent(lambda m: reactivex.empty(), [], "hi", provider="cohere")
    with pytest.raises(ConfigError, match="max_steps"):
        run_agent(lambda m: reactivex.empty(), [], "hi", max_steps=0)
    with pytest.raises(ConfigError, match="callable"):
        run_agent("nope", [], "hi")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="messages"):
        run_agent(lambda m: reactivex.empty(), [], {"role": "user"})  # type: ignore[arg-type]


def test_a_factory_that_fails_ends_the_loop() -> None:
    def broken(messages: list[dict[str, Any]]) -> Any:
        raise RuntimeError("no model")

    agent = run_agent(broken, [], "hi")
    with pytest.raises(RuntimeError, match="no model"):
        agent.tokens.pipe(ops.to_list()).run()


# --------------------------------------------------------------------------- the demo


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_assistant_demo(srv: ProviderServer, provider: str) -> None:
    run = await run_assistant_demo(provider=provider, delay=0, server=srv)
    results = {t.name: t for t in run.tokens if isinstance(t, ToolResult)}
    assert results["calendar_events"].result == CALENDAR["2025-06-13"]
    assert results["weather_forecast"].result["sky"] == "sunny"
    assert run.completion.text.startswith("On Friday you have the team stand-up at 09:30")
    assert [r.completed for r in run.requests] == [True, True]
    assert "Lunch with Sam" in json.dumps(run.requests[1].json)
    assert sum(t.type == "intent" for t in run.tokens) >= 2
    assert run.messages[-1] == assistant_message(provider, run.completion)


def test_demo_tools_validate_dates() -> None:
    tool = demo_tools()["calendar_events"]
    with pytest.raises(ValueError, match="date"):
        tool.bind({"date": "next friday"})
    assert tool.parameters["properties"]["date"]["format"] == "date"


# --------------------------------------------------------------------------- wire names, docstrings


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
        _session,
        _match,
        _intents,
        _dispatch,
        rxtokens.tools,
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


def test_the_assistant_demo_command_has_help_and_names_its_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert assistant_demo.main(["--help"]) == 0
    assert "calendar" in capsys.readouterr().out
    assert assistant_demo.main(["nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
