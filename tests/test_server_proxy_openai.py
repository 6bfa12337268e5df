"""The OpenAI-compatible proxy, driven by the official ``openai`` client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rxtokens.operators import redact
from rxtokens.testing import Reply, Script, ScriptedToolCall
from rxtokens.testing.server import default_script

from .server_helpers import running

openai = pytest.importorskip("openai")  # the [openai] extra

EXPECTED = default_script("hi").text


def _client(srv: object, key: str | None = None) -> Any:
    return openai.AsyncOpenAI(
        base_url=srv.url("/v1"),  # type: ignore[attr-defined]
        api_key=key if key is not None else srv.token,  # type: ignore[attr-defined]
        max_retries=0,
    )


async def test_streaming_through_a_redacting_pipeline() -> None:
    async with running(pipeline=redact("rxtokens", "[RX]")) as srv:
        client = _client(srv)
        try:
            stream = await client.chat.completions.create(
                model="anything",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            parts: list[str] = []
            finish = None
            usage = None
            async for chunk in stream:
                assert chunk.object == "chat.completion.chunk"
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        finally:
            await client.close()
        assert "".join(parts) == EXPECTED.replace("rxtokens", "[RX]")
        assert "rxtokens" not in "".join(parts)
        assert finish == "stop"
        assert usage is not None
        assert usage.completion_tokens > 0
        sent = srv.provider.requests[0].json
        assert sent["messages"] == [{"role": "user", "content": "hi"}]


async def test_non_streaming_and_tools() -> None:
    script = Script(
        text="",
        tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"}, id="call_1")],
        usage=(5, 7),
    )
    async with running(Reply(script=script)) as srv:
        client = _client(srv)
        try:
            result = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "weather?"}],
                tools=[
                    {
                        "type": "function",
                        "function": {"name": "get_weather", "parameters": {"type": "object"}},
                    }
                ],
                temperature=0.5,
            )
        finally:
            await client.close()
        choice = result.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]  # type: ignore[index]
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
        assert result.usage is not None
        assert result.usage.total_tokens == 12
        sent = srv.provider.requests[0].json
        assert sent["temperature"] == 0.5
        assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_plain_non_streaming_text() -> None:
    async with running(pipeline="redact pattern=rxtokens replacement=RX") as srv:
        client = _client(srv)
        try:
            result = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        finally:
            await client.close()
        assert result.choices[0].message.content == EXPECTED.replace("rxtokens", "RX")


async def test_wrong_key_and_upstream_errors_map_to_openai_errors() -> None:
    async with running(Reply(status=429, retry_after=3)) as srv:
        client = _client(srv, key="not-the-token")
        try:
            with pytest.raises(openai.AuthenticationError) as info:
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert srv.token not in str(info.value)
        finally:
            await client.close()
        client = _client(srv)
        try:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            srv.provider.queue(Reply(status=500))
            with pytest.raises(openai.APIStatusError) as failed:
                await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert failed.value.status_code == 502
        finally:
            await client.close()


async def test_an_error_mid_stream_reaches_the_client() -> None:
    async with running(Reply(drop_after=3000)) as srv:
        client = _client(srv)
        parts: list[str] = []
        try:
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )

            async def consume() -> None:
                async for chunk in stream:
                    parts.extend(choice.delta.content or "" for choice in chunk.choices)

            with pytest.raises(openai.APIError):
                await consume()
        finally:
            await client.close()
        assert parts
        assert EXPECTED.startswith("".join(parts))


async def test_models_route() -> None:
    async with running(upstream="testing:demo-model") as srv:
        client = _client(srv)
        try:
            models = await client.models.list()
        finally:
            await client.close()
        assert [m.id for m in models.data] == ["demo-model"]
