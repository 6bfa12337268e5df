"""The AI SDK UI message stream: encoder, decoder, history, judged by the `ai` package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import operators as rx_ops

from rxtokens import operators as ops
from rxtokens.aio import to_list
from rxtokens.errors import ConfigError, ProviderError, StreamDecodeError, TruncatedStreamError
from rxtokens.formats import ui_message_stream as ui
from rxtokens.inflight import run_agent
from rxtokens.sse import SseEvent
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StepBoundary,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
)
from rxtokens.ui_messages import to_provider_messages
from tests.ui_sdk import completion_summary, install, run_script, steps_of, ui_summary

# --------------------------------------------------------------------------- helpers


def encode(tokens: list[Any], message_id: str | None = "msg-1", error: Exception | None = None):
    source: reactivex.Observable[Any] = reactivex.from_iterable(tokens)
    if error is not None:
        source = reactivex.concat(source, reactivex.throw(error))
    return source.pipe(ops.to_ui_message_stream(message_id), rx_ops.to_list()).run()


def sse_bytes(chunks: list[dict[str, Any]]) -> bytes:
    return ("".join(ui.sse_event(c) for c in chunks) + ui.DONE_EVENT).encode()


def decode(chunks: list[Any]) -> list[Any]:
    return (
        reactivex.from_iterable(chunks).pipe(ops.from_ui_message_stream(), rx_ops.to_list()).run()
    )


@pytest.fixture(scope="module")
def ai_sdk() -> Path:
    return install()


def read_with_sdk(folder: Path, data: bytes) -> dict[str, Any]:
    return run_script(folder, "read_stream.mjs", stdin=data)  # type: ignore[no-any-return]


def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


def broken(city: str) -> str:
    """A tool that fails."""
    raise RuntimeError("no network")


# --------------------------------------------------------------------------- encoder


def test_text_reasoning_and_finish_chunks() -> None:
    chunks = encode(
        [
            ReasoningDelta("hmm"),
            TextDelta("Hel"),
            TextDelta("lo"),
            Usage(3, 4),
            Finish("stop", 0, "end_turn"),
        ]
    )
    assert chunks == [
        {"type": "start", "messageId": "msg-1"},
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-0"},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "hmm"},
        {"type": "reasoning-end", "id": "reasoning-0"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "Hel"},
        {"type": "text-delta", "id": "text-1", "delta": "lo"},
        {"type": "text-end", "id": "text-1"},
        {"type": "finish-step"},
        {
            "type": "finish",
            "finishReason": "stop",
            "messageMetadata": {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}},
        },
    ]


def test_tool_calls_results_and_steps() -> None:
    chunks = encode(
        [
            TextDelta("Let me look."),
            ToolCallDelta(0, "c1", "weather", '{"ci'),
            ToolCallDelta(0, None, None, 'ty": "Paris"}'),
            ToolCall(0, "c1", "weather", {"city": "Paris"}),
            Finish("tool_calls"),
            ToolResult("c1", "weather", "sunny", None, 0, 0.1),
            StepBoundary(1, "tool_calls"),
            ToolCall(0, None, "weather", {"city": "Rome"}),
            ToolResult(None, "weather", None, "boom", 0, 0.0),
            StepBoundary(2, "tool_calls"),
            TextDelta("Done"),
            Finish("stop"),
        ]
    )
    types = [c["type"] for c in chunks]
    assert types == [
        "start", "start-step", "text-start", "text-delta", "text-end",
        "tool-input-start", "tool-input-delta", "tool-input-delta", "tool-input-available",
        "tool-output-available", "finish-step",
        "start-step", "tool-input-available", "tool-output-error", "finish-step",
        "start-step", "text-start", "text-delta", "text-end", "finish-step", "finish",
    ]  # fmt: skip
    assert chunks[5] == {"type": "tool-input-start", "toolCallId": "c1", "toolName": "weather"}
    assert chunks[12]["toolCallId"] == chunks[13]["toolCallId"] == "call_1_0"
    assert chunks[13]["errorText"] == "boom"
    assert chunks[16]["id"] == "text-1"  # part ids stay unique across steps
    assert chunks[-1]["finishReason"] == "stop"


def test_a_tool_delta_without_a_name_waits_for_it() -> None:
    chunks = encode(
        [ToolCallDelta(0, None, None, '{"a"'), ToolCallDelta(0, "x", "f", ": 1}"), Finish("stop")]
    )
    assert chunks[2:4] == [
        {"type": "tool-input-start", "toolCallId": "x", "toolName": "f"},
        {"type": "tool-input-delta", "toolCallId": "x", "inputTextDelta": '{"a": 1}'},
    ]


def test_other_choices_and_unknown_kinds_are_skipped() -> None:
    chunks = encode([TextDelta("a", 1), ReasoningDelta("b", 2), TextDelta("", 0), 42])
    assert [c["type"] for c in chunks] == ["start", "start-step", "finish-step", "finish"]


def test_an_error_becomes_an_error_chunk_and_the_output_completes() -> None:
    chunks = encode([TextDelta("partial")], error=ProviderError("overloaded"))
    assert chunks[-1] == {"type": "error", "errorText": "overloaded"}
    assert chunks[-2] == {"type": "text-delta", "id": "text-0", "delta": "partial"}
    hidden = reactivex.throw(RuntimeError("secret")).pipe(
        ops.to_ui_message_stream(on_error=lambda e: "An error occurred."), rx_ops.to_list()
    )
    assert hidden.run() == [{"type": "error", "errorText": "An error occurred."}]


def test_replays_write_the_same_chunks() -> None:
    tokens = [ReasoningDelta("r"), TextDelta("t"), ToolCall(0, None, "f", {}), Finish("stop")]
    operator = ops.to_ui_message_stream("m")
    source = reactivex.from_iterable(tokens).pipe(operator)
    assert source.pipe(rx_ops.to_list()).run() == source.pipe(rx_ops.to_list()).run()


def test_operator_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="message_id"):
        ops.to_ui_message_stream(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="on_error"):
        ops.to_ui_message_stream(on_error="x")  # type: ignore[arg-type]


def test_sse_framing_and_headers() -> None:
    assert ui.sse_event({"type": "text-delta", "delta": "é\n"}) == (
        'data: {"type":"text-delta","delta":"é\\n"}\n\n'
    )
    assert ui.DONE_EVENT == "data: [DONE]\n\n"
    assert ui.HEADERS["x-vercel-ai-ui-message-stream"] == "v1"
    assert ui.HEADERS["content-type"] == "text/event-stream"


# --------------------------------------------------------------------------- decoder


def test_decoder_reads_every_chunk_kind() -> None:
    chunks = encode(
        [
            ReasoningDelta("r"),
            TextDelta("t"),
            RefusalDelta("no"),
            RefusalDelta("pe"),
            ToolCallDelta(0, "c", "f", "{}"),
            ToolCall(0, "c", "f", {}),
            ToolResult("c", "f", [1], None, 0, 0.0),
            StepBoundary(1, "tool_calls"),
            Usage(1, 2),
            Finish("tool_calls", 0, "tool_use"),
        ]
    )
    events = [SseEvent(data=json.dumps(c)) for c in chunks] + [SseEvent(data="[DONE]")]
    assert decode(events) == [
        ReasoningDelta("r"),
        TextDelta("t"),
        RefusalDelta("no"),
        RefusalDelta("pe"),
        ToolCallDelta(0, "c", "f", ""),
        ToolCallDelta(0, None, None, "{}"),
        ToolCall(0, "c", "f", {}),
        ToolResult("c", "f", [1], None, 0, 0.0),
        Usage(1, 2),
        Finish("tool_calls", 0, "tool-calls"),  # normalised, and the SDK's own value
    ]


def test_decoder_steps_errors_and_truncation() -> None:
    steps = [{"type": "start-step"}, {"type": "finish-step"}, {"type": "start-step"}]
    assert decode([*steps, {"type": "finish"}, "[DONE]"]) == [
        StepBoundary(1, "tool_calls"),
        Finish(None),
    ]
    with pytest.raises(ProviderError, match="overloaded") as info:
        decode(
            [
                {"type": "text-delta", "id": "t", "delta": "a"},
                {"type": "error", "errorText": "overloaded"},
            ]
        )
    assert info.value.error_type == "ui_message_stream"
    with pytest.raises(TruncatedStreamError, match="without a finish"):
        decode([{"type": "start"}])
    with pytest.raises(TruncatedStreamError, match=r"\[DONE\]"):
        decode([{"type": "start"}, "[DONE]"])
    with pytest.raises(StreamDecodeError, match="invalid JSON"):
        decode(["{nope"])
    with pytest.raises(StreamDecodeError, match="'type'"):
        decode([[1]])
    assert decode([{"type": "abort"}]) == [Finish("other", 0, "abort")]
    assert decode([{"type": "source-url"}, {"type": "data-x", "data": 1}, {"type": "finish"}]) == [
        Finish(None)
    ]


def test_decoder_stops_at_done_and_disposes_the_source() -> None:
    disposed = []
    source = reactivex.from_iterable([{"type": "finish", "finishReason": "stop"}, "[DONE]"]).pipe(
        rx_ops.concat(reactivex.never()), rx_ops.finally_action(lambda: disposed.append(1))
    )
    out = source.pipe(ops.from_ui_message_stream(), rx_ops.to_list()).run()
    assert out == [Finish("stop", 0, "stop")]
    assert disposed == [1]


# Random token sequences: steps of text / reasoning / tool calls (streamed or whole), results.
_text = st.text(min_size=1, max_size=8)
_args = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3)


@st.composite
def _step(draw: st.DrawFn, number: int) -> list[Any]:
    tokens: list[Any] = []
    calls = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "reasoning", "call", "streamed_call"]))
        if kind == "text":
            tokens.append(TextDelta(draw(_text)))
        elif kind == "reasoning":
            tokens.append(ReasoningDelta(draw(_text)))
        else:
            arguments = draw(_args)
            call_id = draw(st.sampled_from([None, f"id{number}_{calls}"]))
            if kind == "streamed_call":
                encoded = json.dumps(arguments)
                cut = draw(st.integers(0, len(encoded)))
                tokens.append(ToolCallDelta(calls, call_id, "tool", encoded[:cut]))
                tokens.append(ToolCallDelta(calls, None, None, encoded[cut:]))
            tokens.append(ToolCall(calls, call_id, "tool", arguments))
            if draw(st.booleans()):
                error = draw(st.none() | _text)
                result = None if error else draw(_args)
                tokens.append(ToolResult(call_id, "tool", result, error, calls, 0.0))
            calls += 1
    if draw(st.booleans()):
        tokens.append(Usage(draw(st.integers(0, 99)), draw(st.integers(0, 99))))
    tokens.append(Finish(draw(st.sampled_from(["stop", "tool_calls", "length"]))))
    return tokens


@st.composite
def _steps(draw: st.DrawFn) -> list[Any]:
    tokens: list[Any] = []
    count = draw(st.integers(1, 3))
    for number in range(count):
        tokens.extend(draw(_step(number)))
        if number < count - 1:
            tokens.append(StepBoundary(number + 1, "tool_calls"))
    return tokens


def _comparable(tokens: list[Any]) -> list[Any]:
    out = []
    for completion, results in steps_of(tokens):
        calls = [(c.index, c.name, c.arguments) for c in completion.tool_calls]
        outcome = [(r[1], r[2], r[3]) for r in results]
        out.append((completion.text, completion.reasoning, calls, outcome))
    while len(out) > 1 and out[-1] == ("", "", [], []):
        out.pop()  # a last step without content is not written (run_agent never makes one)
    return out


@given(_steps())
def test_encoder_then_decoder_round_trip(tokens: list[Any]) -> None:
    back = decode([*encode(tokens), "[DONE]"])
    assert _comparable(back) == _comparable(tokens)
    usage = [t for t in tokens if type(t) is Usage]
    assert [t for t in back if type(t) is Usage] == usage[-1:]  # usage is the message's, once
    finish = [t for t in tokens if type(t) is Finish][-1]
    assert back[-1].reason == finish.reason


# --------------------------------------------------------------------------- the AI SDK reads it


def test_sdk_assembles_text_reasoning_and_usage(ai_sdk: Path) -> None:
    tokens = [ReasoningDelta("Let me "), ReasoningDelta("think."), TextDelta("Hel"),
              TextDelta("lo é 👋"), Usage(5, 6), Finish("stop")]  # fmt: skip
    out = read_with_sdk(ai_sdk, sse_bytes(encode(tokens)))
    assert out["errors"] == []
    assert out["message"]["id"] == "msg-1"
    assert ui_summary(out["message"]) == completion_summary(tokens)
    assert out["message"]["metadata"] == {
        "usage": {"inputTokens": 5, "outputTokens": 6, "totalTokens": 11}
    }
    assert out["finishReason"] == "stop"
    assert [p["state"] for p in out["message"]["parts"] if "state" in p] == ["done", "done"]


async def test_sdk_assembles_a_tool_call_answered_mid_stream(ai_sdk: Path) -> None:
    tokens = await to_list(
        reactivex.from_iterable(
            [
                TextDelta("Checking."),
                ToolCallDelta(0, "c1", "weather", '{"city":'),
                ToolCallDelta(0, None, None, ' "Paris"}'),
                ToolCall(0, "c1", "weather", {"city": "Paris"}),
                ToolCall(1, "c2", "broken", {"city": "Rome"}),
                Finish("tool_calls"),
            ]
        ).pipe(ops.dispatch_tools([weather, broken]))
    )
    assert [t.ok for t in tokens if type(t) is ToolResult] == [True, False]
    out = read_with_sdk(ai_sdk, sse_bytes(encode(tokens)))
    assert out["errors"] == []
    summary = ui_summary(out["message"])
    assert summary == completion_summary(tokens)
    assert summary["tools"][0]["output"] == "sunny in Paris"
    assert summary["tools"][1]["state"] == "output-error"
    assert out["finishReason"] == "tool-calls"


async def test_sdk_assembles_a_two_step_agent_run(ai_sdk: Path) -> None:
    replies = iter(
        [
            [ToolCall(0, "c1", "weather", {"city": "Oslo"}), Finish("tool_calls")],
            [TextDelta("It is sunny "), TextDelta("in Oslo."), Usage(9, 3), Finish("stop")],
        ]
    )
    agent = run_agent(lambda messages: reactivex.from_iterable(next(replies)), [weather], "Oslo?")
    tokens = await to_list(agent.tokens)
    assert StepBoundary(1, "tool_calls") in tokens
    out = read_with_sdk(ai_sdk, sse_bytes(encode(tokens)))
    assert out["errors"] == []
    summary = ui_summary(out["message"])
    assert summary == completion_summary(tokens)
    assert summary["steps"] == 2
    assert summary["text"] == "It is sunny in Oslo."
    assert out["chunkTypes"].count("finish-step") == 2


def test_sdk_surfaces_an_error_mid_stream_and_keeps_the_partial_text(ai_sdk: Path) -> None:
    chunks = encode([TextDelta("Half an ans")], error=ProviderError("upstream overloaded"))
    out = read_with_sdk(ai_sdk, sse_bytes(chunks))
    assert out["errors"] == ["message: upstream overloaded"]
    assert ui_summary(out["message"])["text"] == "Half an ans"
    assert out["finishReason"] is None


def test_sdk_accepts_refusals_as_a_data_part(ai_sdk: Path) -> None:
    chunks = encode(
        [RefusalDelta("I can"), RefusalDelta("not."), Finish("content_filter", 0, "refusal")]
    )
    out = read_with_sdk(ai_sdk, sse_bytes(chunks))
    assert out["errors"] == []
    assert [p for p in out["message"]["parts"] if p["type"] == "data-refusal"] == [
        {"type": "data-refusal", "id": "refusal", "data": {"text": "I cannot."}}
    ]
    assert out["finishReason"] == "content-filter"


def test_sdk_rejects_a_malformed_chunk(ai_sdk: Path) -> None:
    """The harness really validates: a chunk outside the schema is an error."""
    out = read_with_sdk(ai_sdk, sse_bytes([{"type": "text-delta", "id": "x"}]))
    assert out["errors"], out


# --------------------------------------------------------------------------- UIMessage history

_HISTORY = [
    {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
    {
        "id": "u1",
        "role": "user",
        "parts": [
            {"type": "text", "text": "Weather in Paris and Rome?"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAAA"},
        ],
    },
    {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "need tools", "state": "done"},
            {"type": "text", "text": "Looking.", "state": "done"},
            {"type": "tool-weather", "toolCallId": "c1", "state": "output-available",
             "input": {"city": "Paris"}, "output": "sunny"},
            {"type": "dynamic-tool", "toolName": "weather", "toolCallId": "c2",
             "state": "output-error", "input": {"city": "Rome"}, "errorText": "down"},
            {"type": "tool-weather", "toolCallId": "c3", "state": "input-streaming"},
            {"type": "step-start"},
            {"type": "text", "text": "Paris is sunny.", "state": "done"},
        ],
    },
    {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "Thanks"}]},
]  # fmt: skip


def test_history_to_openai_chat() -> None:
    assert to_provider_messages(_HISTORY, "openai") == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Rome?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                {"id": "c2", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"error": "down"}'},
        {"role": "assistant", "content": "Paris is sunny."},
        {"role": "user", "content": "Thanks"},
    ]  # fmt: skip


def test_history_to_anthropic() -> None:
    out = to_provider_messages(_HISTORY, "anthropic")
    assert out[1]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert out[2] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "c2", "name": "weather", "input": {"city": "Rome"}},
        ],
    }
    assert out[3] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "c2", "content": '{"error": "down"}',
             "is_error": True},
        ],
    }  # fmt: skip
    assert out[4:] == [
        {"role": "assistant", "content": "Paris is sunny."},
        {"role": "user", "content": "Thanks"},
    ]


def test_history_to_gemini() -> None:
    out = to_provider_messages(_HISTORY, "gemini")
    assert out[1] == {
        "role": "user",
        "parts": [
            {"text": "Weather in Paris and Rome?"},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        ],
    }
    assert out[2]["role"] == "model"
    assert out[2]["parts"][1] == {
        "functionCall": {"name": "weather", "args": {"city": "Paris"}, "id": "c1"}
    }
    assert out[3]["parts"][1] == {
        "functionResponse": {"name": "weather", "response": {"error": "down"}, "id": "c2"}
    }
    assert out[4] == {"role": "model", "parts": [{"text": "Paris is sunny."}]}


def test_history_to_openai_responses() -> None:
    out = to_provider_messages(_HISTORY, "openai_responses")
    assert out[1]["content"][1] == {
        "type": "input_image",
        "image_url": "data:image/png;base64,AAAA",
    }
    assert out[2:7] == [
        {"role": "assistant", "content": "Looking."},
        {"type": "function_call", "call_id": "c1", "name": "weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "weather",
         "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": '{"error": "down"}'},
    ]  # fmt: skip


def test_history_sent_back_is_what_the_sdk_assembled(ai_sdk: Path) -> None:
    """A message the AI SDK assembled from our stream converts back to the same turn."""
    tokens = [
        TextDelta("Sure."),
        ToolCall(0, "c9", "weather", {"city": "Lima"}),
        ToolResult("c9", "weather", {"temp": 20}, None, 0, 0.0),
        Finish("tool_calls"),
    ]
    message = read_with_sdk(ai_sdk, sse_bytes(encode(tokens)))["message"]
    out = to_provider_messages([message], "openai")
    assert out[0]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city": "Lima"}',
    }
    assert out[1] == {"role": "tool", "tool_call_id": "c9", "content": '{"temp": 20}'}


def test_history_errors() -> None:
    with pytest.raises(ConfigError, match="unknown message format 'nope'"):
        to_provider_messages([], "nope")
    with pytest.raises(ConfigError, match="list of UIMessage"):
        to_provider_messages({"role": "user"}, "openai")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="role"):
        to_provider_messages([{"role": "tool", "parts": []}], "openai")
    with pytest.raises(ConfigError, match="parts"):
        to_provider_messages([{"role": "user", "parts": "hi"}], "openai")
