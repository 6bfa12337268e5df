"""Finish reasons are normalised, the provider's own value kept beside them (issue 15.12).

On main `Finish.reason` was the raw value (``end_turn``, ``STOP``, ``completed``), and
through the OpenAI-compatible proxy a Gemini or Responses tool call ended with
``finish_reason: "stop"``, so agent loops waiting for ``"tool_calls"`` stopped there.
"""

from __future__ import annotations

from typing import Any

import pytest
import reactivex

from rxtokens.operators import aggregate, take_budget
from rxtokens.testing import Reply, Script, ScriptedToolCall
from rxtokens.testing.loopback import replay
from rxtokens.tokens import FINISH_REASONS, Finish, TextDelta, token_from_json, token_to_json

from .server_helpers import running

openai = pytest.importorskip("openai")  # the [openai] extra

WEATHER = ScriptedToolCall("get_weather", {"city": "Paris"}, id="call_1")
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def test_finish_keeps_its_constructor_and_json() -> None:
    assert Finish("stop") == Finish("stop", 0, None)
    assert repr(Finish("stop")) == "Finish(reason='stop', index=0)"
    token = Finish("tool_calls", 1, "tool_use")
    assert token_from_json(token_to_json(token)) == token
    assert token_to_json(Finish("stop")) == '{"type":"finish","reason":"stop","index":0}'
    assert token_from_json('{"type":"finish","reason":"stop","index":0}') == Finish("stop")


@pytest.mark.parametrize(
    ("transcript", "reason"),
    [
        ("openai_chat_text", "stop"),
        ("openai_chat_tools", "tool_calls"),
        ("openai_responses_text", "stop"),
        ("anthropic_thinking_tools", "tool_calls"),
        ("gemini_text", "stop"),
    ],
)
def test_every_decoder_gives_the_normalised_reason(transcript: str, reason: str) -> None:
    completion = replay(transcript).pipe(aggregate()).run()
    assert completion.finish_reason == reason
    assert completion.finish_reason in FINISH_REASONS


def test_take_budget_is_length() -> None:
    out: list[Any] = []
    reactivex.of(TextDelta("a"), TextDelta("b")).pipe(take_budget(max_output_tokens=1)).subscribe(
        out.append
    )
    assert out[-1] == Finish("length")


async def _ask(upstream: str, stream: bool) -> str | None:
    script = Script(text="", tool_calls=[WEATHER], usage=(5, 7))
    async with running(Reply(script=script), upstream_provider=upstream) as srv:
        client = openai.AsyncOpenAI(base_url=srv.url("/v1"), api_key=srv.token, max_retries=0)
        messages: Any = [{"role": "user", "content": "weather in Paris?"}]
        try:
            if not stream:
                result = await client.chat.completions.create(
                    model="m", messages=messages, tools=[TOOL]
                )
                assert result.choices[0].message.tool_calls is not None
                return result.choices[0].finish_reason
            reply = await client.chat.completions.create(
                model="m", messages=messages, tools=[TOOL], stream=True
            )
            finish = None
            calls = 0
            async for chunk in reply:
                for choice in chunk.choices:
                    calls += len(choice.delta.tool_calls or [])
                    finish = choice.finish_reason or finish
            assert calls > 0
            return finish
        finally:
            await client.close()


@pytest.mark.parametrize("upstream", ["gemini", "openai_responses", "anthropic", "bedrock"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_call_through_the_proxy_is_tool_calls(upstream: str, stream: bool) -> None:
    assert await _ask(upstream, stream) == "tool_calls"
