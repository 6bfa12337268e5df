"""OpenAI chat chunks and bodies (rxtokens.formats.openai_chat)."""

from __future__ import annotations

import rxtokens.server
from rxtokens.formats.openai_chat import (
    DONE_EVENT,
    ChatChunkEncoder,
    chat_completion_body,
    openai_finish_reason,
    sse_data,
)
from rxtokens.tokens import Completion, Finish, TextDelta, ToolCall, ToolCallDelta, Usage


def test_chat_chunk_encoder_maps_tokens_to_openai_chunks() -> None:
    enc = ChatChunkEncoder("m", include_usage=True, chunk_id="chatcmpl-x", created=1)
    chunks = [
        c
        for token in [
            TextDelta("Hi"),
            ToolCallDelta(0, "call_1", "f", '{"a":'),
            ToolCallDelta(0, None, None, "1}"),
            ToolCall(0, "call_1", "f", {"a": 1}),
            ToolCall(1, None, "g", {}),
            Usage(3, 4),
            Finish("tool_calls", 0, "tool_use"),
        ]
        for c in enc.encode(token)
    ] + enc.finish()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": "Hi"}
    assert deltas[1]["tool_calls"][0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"arguments": '{"a":', "name": "f"},
    }
    assert deltas[2]["tool_calls"][0] == {"index": 0, "function": {"arguments": "1}"}}
    assert deltas[3]["tool_calls"][0]["function"] == {"name": "g", "arguments": "{}"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_chat_completion_body() -> None:
    completion = Completion(
        text="",
        tool_calls=[ToolCall(0, "c", "f", {"x": 1})],
        finish_reason="tool_calls",
        usage=Usage(1, 2),
    )
    body = chat_completion_body(completion, "m", chunk_id="chatcmpl-1")
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"]["total_tokens"] == 3


def test_framing_and_finish_reasons() -> None:
    assert sse_data([{"a": "é"}, {"b": None}]) == 'data: {"a": "é"}\n\ndata: {"b": null}\n\n'
    assert sse_data([]) == ""
    assert DONE_EVENT == b"data: [DONE]\n\n"
    reasons = (None, "stop", "length", "tool_calls", "content_filter", "error", "other")
    assert [openai_finish_reason(r) for r in reasons] == [
        "stop",
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "stop",
        "stop",
    ]


def test_the_server_re_exports_them() -> None:
    assert rxtokens.server.ChatChunkEncoder is ChatChunkEncoder
    assert rxtokens.server.chat_completion_body is chat_completion_body
