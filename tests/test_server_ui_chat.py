"""``/v1/ui/chat``: the AI SDK's own chat client (``AbstractChat``, in ``useChat``) on it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex import operators as rx_ops

from rxtokens import operators as ops
from rxtokens.aio import collect, to_list
from rxtokens.completion import CompletionBuilder
from rxtokens.providers import sse
from rxtokens.server import STATE_KEY
from rxtokens.testing import Reply
from rxtokens.testing.wire import Script, ScriptedToolCall
from rxtokens.tokens import Finish, ToolResult
from tests.server_helpers import Running, running
from tests.ui_sdk import completion_summary, install, run_chat, ui_summary


@pytest.fixture(scope="module")
def ai_sdk() -> Path:
    return install()


def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


async def chat(
    folder: Path, rt: Running, *actions: dict[str, Any], chat_id: str = "chat-1"
) -> dict[str, Any]:
    config = {
        "api": rt.url("/v1/ui/chat"),
        "token": rt.token,
        "chatId": chat_id,
        "actions": list(actions),
    }
    result: dict[str, Any] = await run_chat(folder, config)
    return result


async def stream_tokens(rt: Running, index: int = -1) -> list[Any]:
    """The tokens of the app's `index`-th stream (all replayed by its Broadcast)."""
    stream = list(rt.state.streams.values())[index]
    return [item.token for item in await to_list(stream.broadcast.sequenced(after=0))]


def answer(result: dict[str, Any], index: int = -1) -> dict[str, Any]:
    message: dict[str, Any] = result["messages"][index]
    assert message["role"] == "assistant"
    return message


async def test_plain_text(ai_sdk: Path) -> None:
    async with running() as rt:
        rt.provider.queue(Script(text="Hello from the server.", usage=(7, 5)))
        result = await chat(ai_sdk, rt, {"send": "Hi there"})
        assert result["status"] == "ready", result
        tokens = await stream_tokens(rt)
        assert ui_summary(answer(result)) == completion_summary(tokens)
        assert ui_summary(answer(result))["text"] == "Hello from the server."
        assert answer(result)["metadata"] == {
            "usage": {
                "inputTokens": 7,
                "outputTokens": 5,
                "reasoningTokens": 0,
                "cachedInputTokens": 0,
                "totalTokens": 12,
            }
        }
        assert result["finishes"] == [
            {"finishReason": "stop", "isAbort": False, "isError": False, "isDisconnect": False}
        ]
        sent = rt.provider.requests[0].json
        assert sent is not None
        assert sent["messages"] == [{"role": "user", "content": "Hi there"}]


async def test_reasoning(ai_sdk: Path) -> None:
    async with running() as rt:
        rt.provider.queue(Script(reasoning="First, think it over.", text="Forty-two."))
        result = await chat(ai_sdk, rt, {"send": "Why?"})
        summary = ui_summary(answer(result))
        assert summary == completion_summary(await stream_tokens(rt))
        assert summary["reasoning"] == "First, think it over."
        assert [p["type"] for p in answer(result)["parts"]] == ["step-start", "reasoning", "text"]


async def test_a_tool_call_answered_mid_stream(ai_sdk: Path) -> None:
    async with running(Reply(delay=0.01), tools=[weather], max_steps=1) as rt:
        calls = [
            ScriptedToolCall("weather", {"city": "Paris"}, id="call_w1"),
            ScriptedToolCall("weather", {"city": "Rome"}, id="call_w2"),
        ]
        rt.provider.queue(Reply(script=Script(text="Let me check.", tool_calls=calls), delay=0.01))
        result = await chat(ai_sdk, rt, {"send": "Weather in Paris and Rome?"})
        tokens = await stream_tokens(rt)
        summary = ui_summary(answer(result))
        assert summary == completion_summary(tokens)
        assert summary["tools"][0] == {
            "id": "call_w1",
            "name": "weather",
            "input": {"city": "Paris"},
            "state": "output-available",
            "output": "sunny in Paris",
            "error": None,
        }
        assert summary["tools"][1]["output"] == "sunny in Rome"
        kinds = [type(t) for t in tokens]
        assert kinds.index(ToolResult) < kinds.index(Finish)  # answered while it streamed
        sent = rt.provider.requests[0].json
        assert sent is not None
        assert [t["function"]["name"] for t in sent["tools"]] == ["weather"]
        assert result["finishes"][0]["finishReason"] == "tool-calls"


async def test_a_two_step_agent_run_then_a_follow_up(ai_sdk: Path) -> None:
    async with running(tools=[weather], max_steps=3) as rt:
        call = ScriptedToolCall("weather", {"city": "Oslo"}, id="call_o1")
        rt.provider.queue(
            Script(tool_calls=[call]),
            Script(text="It is sunny in Oslo."),
            Script(text="You are welcome."),
        )
        result = await chat(ai_sdk, rt, {"send": "Oslo?"}, {"send": "Thanks!"})
        assert result["status"] == "ready", result
        first = ui_summary(answer(result, 1))
        assert first == completion_summary(await stream_tokens(rt, 0))
        assert first["steps"] == 2
        assert first["text"] == "It is sunny in Oslo."
        assert first["tools"][0]["output"] == "sunny in Oslo"
        assert ui_summary(answer(result))["text"] == "You are welcome."
        step2, follow_up = (r.json for r in rt.provider.requests[1:3])
        assert step2 is not None
        assert follow_up is not None
        assert step2["messages"][-1] == {
            "role": "tool",
            "tool_call_id": "call_o1",
            "content": "sunny in Oslo",
        }
        # the earlier turn, tool call and output included, comes back from the client's history
        assert follow_up["messages"][1]["tool_calls"][0]["id"] == "call_o1"
        assert follow_up["messages"][2:] == [
            {"role": "tool", "tool_call_id": "call_o1", "content": "sunny in Oslo"},
            {"role": "assistant", "content": "It is sunny in Oslo."},
            {"role": "user", "content": "Thanks!"},
        ]


async def test_an_upstream_error_mid_stream_keeps_the_partial_text(ai_sdk: Path) -> None:
    async with running() as rt:
        failing = Script(text="Half of an", error={"type": "server_error", "message": "exploded"})
        rt.provider.queue(failing)
        result = await chat(ai_sdk, rt, {"send": "Go"})
        assert result["status"] == "error"
        assert "exploded" in result["error"]
        assert ui_summary(answer(result))["text"] == "Half of an"
        assert result["finishes"][0]["isError"] is True


async def test_an_abort_cancels_the_upstream(ai_sdk: Path) -> None:
    words = " ".join(f"word{i}" for i in range(200))
    async with running(grace=0) as rt:
        rt.provider.queue(Reply(script=Script(text=words), delay=0.02))
        result = await chat(ai_sdk, rt, {"send": "Talk", "stopWhen": "word3"})
        assert result["status"] == "ready"
        assert result["finishes"][0]["isAbort"] is True
        text = ui_summary(answer(result))["text"]
        assert text.startswith("word0 word1 word2 word3")
        assert len(text) < len(words)
        for _ in range(200):
            if rt.provider.requests[0].disconnected:
                break
            await asyncio.sleep(0.01)
        assert rt.provider.requests[0].disconnected
        stream = next(iter(rt.state.streams.values()))
        for _ in range(100):
            if stream.status != "running":
                break
            await asyncio.sleep(0.01)
        assert stream.status == "cancelled"


async def test_a_resume_after_a_dropped_connection(ai_sdk: Path) -> None:
    words = " ".join(f"word{i}" for i in range(40))
    async with running(grace=5) as rt:
        rt.provider.queue(Reply(script=Script(text=words), delay=0.02))
        result = await chat(
            ai_sdk, rt, {"send": "Talk", "dropWhen": "word2"}, {"resume": True}, chat_id="c-7"
        )
        assert result["requests"] == ["POST /v1/ui/chat", "GET /v1/ui/chat/c-7/stream"]
        assert [f["isDisconnect"] for f in result["finishes"]] == [True, False]
        assert result["status"] == "ready", result
        assert [m["role"] for m in result["messages"]] == ["user", "assistant"]
        assert ui_summary(answer(result)) == completion_summary(await stream_tokens(rt))
        assert ui_summary(answer(result))["text"] == words
        assert len(rt.provider.requests) == 1  # one upstream request, shared


async def test_resume_without_a_running_stream_answers_204(ai_sdk: Path) -> None:
    async with running() as rt:
        async with rt.session.get(rt.url("/v1/ui/chat/nope/stream"), headers=rt.auth) as r:
            assert r.status == 204
        rt.provider.queue(Script(text="Done."))
        await chat(ai_sdk, rt, {"send": "Hi"}, chat_id="c-1")
        async with rt.session.get(rt.url("/v1/ui/chat/c-1/stream"), headers=rt.auth) as r:
            assert r.status == 204  # finished: nothing to resume
        assert rt.server.app[STATE_KEY].ui_chats == {}


async def test_auth_and_bad_bodies() -> None:
    async with running() as rt:
        body = {"id": "c", "messages": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}
        async with rt.session.post(rt.url("/v1/ui/chat"), json=body) as r:
            assert r.status == 401
        async with rt.session.get(rt.url("/v1/ui/chat/c/stream")) as r:
            assert r.status == 401
        for bad, needle in (
            ({"id": "c", "messages": []}, "non-empty"),
            ({"id": 3, "messages": body["messages"]}, "chat id"),
            ({"id": "c", "messages": [{"role": "robot", "parts": []}]}, "role"),
        ):
            async with rt.session.post(rt.url("/v1/ui/chat"), json=bad, headers=rt.auth) as r:
                assert r.status == 400
                assert needle in (await r.json())["error"]["message"]


async def test_the_response_headers() -> None:
    async with running() as rt:
        rt.provider.queue(Script(text="Hi."))
        body = {"id": "c", "messages": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}
        async with rt.session.post(rt.url("/v1/ui/chat"), json=body, headers=rt.auth) as r:
            assert r.status == 200
            assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
            assert r.headers["content-type"].startswith("text/event-stream")
            text = await r.text()
        assert text.startswith('data: {"type":"start","messageId":"msg-')
        assert text.endswith('data: {"type":"finish","finishReason":"stop","messageMetadata":'
                             '{"usage":{"inputTokens":10,"outputTokens":20,"reasoningTokens":0,'
                             '"cachedInputTokens":0,"totalTokens":30}}}'
                             "\n\ndata: [DONE]\n\n")  # fmt: skip


async def test_rxtokens_reads_the_stream_back_through_sse() -> None:
    """Any AI SDK backend is a source: ``sse(url, decode="raw")`` + ``from_ui_message_stream()``."""
    async with running() as rt:
        rt.provider.queue(
            Reply(script=Script(reasoning="Hm.", text="one two three four"), delay=0.02)
        )
        body = {
            "id": "c9",
            "messages": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}],
        }
        async with rt.session.post(rt.url("/v1/ui/chat"), json=body, headers=rt.auth) as r:
            first = await r.content.readuntil(b"\n\n")
            assert first.startswith(b'data: {"type":"start"')
            resumed = sse(rt.url("/v1/ui/chat/c9/stream"), token=rt.token, decode="raw")
            tokens = await to_list(resumed.pipe(ops.from_ui_message_stream()))
            rest = await r.read()
        direct = reactivex.of(first + rest).pipe(
            ops.parse_sse(), ops.from_ui_message_stream(), rx_ops.to_list()
        )
        expected = await collect(reactivex.from_iterable(await stream_tokens(rt)))
        for got in (CompletionBuilder().add_all(tokens), CompletionBuilder().add_all(direct.run())):
            completion = got.build()
            assert (completion.text, completion.reasoning) == (expected.text, expected.reasoning)
            assert completion.usage == expected.usage


async def test_an_answer_that_continues_the_last_assistant_message_keeps_its_id() -> None:
    async with running() as rt:
        rt.provider.queue(Script(text="More."))
        messages = [
            {"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}]},
            {"id": "a-1", "role": "assistant", "parts": [{"type": "text", "text": "So"}]},
        ]
        body = {"id": "c", "messages": messages}
        async with rt.session.post(rt.url("/v1/ui/chat"), json=body, headers=rt.auth) as r:
            assert (await r.content.readuntil(b"\n\n")) == (
                b'data: {"type":"start","messageId":"a-1"}\n\n'
            )
