"""Tool definitions reach the upstream as the client sent them (issue 15.13).

On main, `normalize_tools` rebuilt every tool from name/description/parameters:
``strict`` was dropped and ``description: ""`` invented.
"""

from __future__ import annotations

from typing import Any

import pytest

from rxtokens.errors import ConfigError
from rxtokens.providers import Anthropic, Gemini, OpenAIChat, OpenAIResponses
from rxtokens.providers._tools import tools_for
from rxtokens.testing import Reply, Script, ScriptedToolCall

from .server_helpers import running

openai = pytest.importorskip("openai")  # the [openai] extra

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT = {"type": "function", "function": {"name": "w", "parameters": SCHEMA, "strict": True}}
RESPONSES = {"type": "function", "name": "w", "parameters": SCHEMA, "strict": True}
ANTHROPIC = {"name": "w", "input_schema": SCHEMA, "cache_control": {"type": "ephemeral"}}
GEMINI = {"functionDeclarations": [{"name": "w", "parameters": SCHEMA}]}
BEDROCK = {"toolSpec": {"name": "w", "inputSchema": {"json": SCHEMA}}}
NEUTRAL = {"name": "w", "parameters": SCHEMA}


@pytest.mark.parametrize(
    ("target", "same"),
    [
        ("openai_chat", CHAT),
        ("openai_responses", RESPONSES),
        ("anthropic", ANTHROPIC),
        ("bedrock", BEDROCK),
    ],
)
def test_a_tool_in_the_target_format_passes_unchanged(target: Any, same: dict[str, Any]) -> None:
    out = tools_for(target, [same])
    assert out == [same]
    assert out[0] is not same  # a copy


@pytest.mark.parametrize("source", [CHAT, RESPONSES, ANTHROPIC, GEMINI, BEDROCK, NEUTRAL])
def test_every_format_converts_to_every_other_without_inventing(source: dict[str, Any]) -> None:
    strict = {"strict": True} if source in (CHAT, RESPONSES) else {}
    assert tools_for("openai_chat", [source]) == [
        {"type": "function", "function": {"name": "w", "parameters": SCHEMA, **strict}}
    ]
    assert tools_for("openai_responses", [source]) == [
        {"type": "function", "name": "w", "parameters": SCHEMA, **strict}
    ]
    cache = {"cache_control": {"type": "ephemeral"}} if source is ANTHROPIC else {}
    assert tools_for("anthropic", [source]) == [{"name": "w", "input_schema": SCHEMA, **cache}]
    assert tools_for("gemini", [source]) == [{"name": "w", "parameters": SCHEMA}]
    assert tools_for("bedrock", [source]) == [BEDROCK]


def test_builtin_tools_and_neutral_extras_pass_and_bad_tools_fail() -> None:
    assert tools_for("openai_responses", [{"type": "web_search"}]) == [{"type": "web_search"}]
    assert tools_for("openai_chat", [{"name": "f", "strict": True}]) == [
        {"type": "function", "function": {"name": "f", "strict": True}}
    ]
    for bad in ([{"description": "no name"}], [3], "tools"):
        with pytest.raises(ConfigError):
            tools_for("openai_chat", bad)  # type: ignore[arg-type]


def test_provider_requests_keep_strict_and_invent_no_description() -> None:
    chat = OpenAIChat(api_key="k").request("m", "hi", tools=[CHAT]).json["tools"]
    assert chat == [CHAT]
    responses = OpenAIResponses(api_key="k").request("m", "hi", tools=[CHAT]).json["tools"]
    assert responses == [RESPONSES]
    anthropic = Anthropic(api_key="k").request("m", "hi", tools=[CHAT]).json["tools"]
    assert anthropic == [{"name": "w", "input_schema": SCHEMA}]
    gemini = Gemini(api_key="k").request("m", "hi", tools=[CHAT]).json["tools"]
    assert gemini == [{"functionDeclarations": [{"name": "w", "parameters": SCHEMA}]}]


async def test_strict_survives_the_proxy_to_the_upstream() -> None:
    script = Script(text="", tool_calls=[ScriptedToolCall("w", {"city": "Paris"}, id="c1")])
    async with running(Reply(script=script), upstream_provider="openai") as srv:
        client = openai.AsyncOpenAI(base_url=srv.url("/v1"), api_key=srv.token, max_retries=0)
        try:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "weather?"}], tools=[CHAT]
            )
        finally:
            await client.close()
        sent = srv.provider.requests[0].json["tools"]
    assert sent == [CHAT]
    assert "description" not in sent[0]["function"]
