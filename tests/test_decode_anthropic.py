"""decode_anthropic(): the Messages stream events, exact tokens."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex

from rxtokens.errors import ProviderError, StreamDecodeError, TruncatedStreamError
from rxtokens.operators import aggregate, decode_anthropic
from rxtokens.sse import SseEvent
from rxtokens.testing import Script, ScriptedToolCall, anthropic_events, expected_completion
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

from .decode_helpers import data, ok, parse, run, typed

PING = SseEvent("ping", '{"type": "ping"}')
STOP = typed({"type": "message_stop"})


def start(input_tokens: int = 10, output_tokens: int = 1) -> Any:
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "usage": usage}
    return typed({"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> Any:
    return typed({"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict[str, Any]) -> Any:
    return typed({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> Any:
    return typed({"type": "content_block_stop", "index": index})


def text(index: int, value: str) -> Any:
    return block_delta(index, {"type": "text_delta", "text": value})


def message_delta(reason: str | None, **usage: Any) -> Any:
    body = {"stop_reason": reason, "stop_sequence": None}
    return typed({"type": "message_delta", "delta": body, "usage": usage})


def test_text_stream_with_pings_anywhere() -> None:
    events = [
        start(10, 1),
        PING,
        block_start(0, {"type": "text", "text": ""}),
        PING,
        text(0, "Hel"),
        PING,
        text(0, "lo"),
        block_stop(0),
        PING,
        message_delta("end_turn", output_tokens=5),
        PING,
        STOP,
    ]
    assert ok(decode_anthropic(), events) == [
        Usage(10, 1),
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(10, 5),
        Finish("stop", 0, "end_turn"),
    ]


def test_tool_use_placeholder_input_fragments_and_completion_at_block_stop() -> None:
    events = [
        start(),
        block_start(0, {"type": "text", "text": ""}),
        text(0, "Checking."),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        block_delta(1, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": 'ris"}'}),
        block_stop(1),
        block_start(2, {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}}),
        block_stop(2),
        message_delta("tool_use", output_tokens=30),
        STOP,
    ]
    assert ok(decode_anthropic(), events) == [
        Usage(10, 1),
        TextDelta("Checking."),
        ToolCallDelta(0, "toolu_1", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city": "Pa'),
        ToolCallDelta(0, None, None, 'ris"}'),
        ToolCall(0, "toolu_1", "get_weather", {"city": "Paris"}),
        ToolCallDelta(1, "toolu_2", "noop", ""),
        ToolCall(1, "toolu_2", "noop", {}),  # placeholder {} and no fragments: no arguments
        Usage(10, 30),
        Finish("tool_calls", 0, "tool_use"),
    ]


def test_tool_use_with_full_input_in_block_start() -> None:
    events = [
        block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}),
        block_stop(0),
        STOP,
    ]
    assert ok(decode_anthropic(), events)[-1] == ToolCall(0, "t", "f", {"a": 1})


def test_thinking_and_signature_delta_is_not_text() -> None:
    events = [
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "Let me"}),
        block_delta(0, {"type": "thinking_delta", "thinking": " think"}),
        block_delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM=="}),
        block_stop(0),
        block_start(1, {"type": "redacted_thinking", "data": "abc"}),
        block_stop(1),
        block_start(2, {"type": "text", "text": ""}),
        block_delta(2, {"type": "citations_delta", "citation": {"type": "char_location"}}),
        text(2, "Done"),
        block_stop(2),
        STOP,
    ]
    assert ok(decode_anthropic(), events) == [
        ReasoningDelta("Let me"),
        ReasoningDelta(" think"),
        TextDelta("Done"),
    ]


def test_message_delta_usage_replaces_and_keeps_input_when_absent() -> None:
    events = [
        start(100, 1),
        message_delta(None, output_tokens=7),  # older API: no input_tokens
        message_delta("end_turn", input_tokens=120, output_tokens=9),  # newer: repeats input
        STOP,
    ]
    assert ok(decode_anthropic(), events) == [
        Usage(100, 1),
        Usage(100, 7),
        Usage(120, 9),
        Finish("stop", 0, "end_turn"),
    ]
    completion = reactivex.from_iterable(events).pipe(decode_anthropic(), aggregate()).run()
    assert completion.usage == Usage(120, 9)  # cumulative: replaced, never added


def test_error_event_is_provider_error() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    events = [start(), block_start(0, {"type": "text", "text": ""}), text(0, "Hi"), typed(error)]
    tokens, exc, completed = run(decode_anthropic(), events)
    assert tokens == [Usage(10, 1), TextDelta("Hi")]
    assert not completed
    assert isinstance(exc, ProviderError)
    assert exc.error_type == "overloaded_error"
    assert "Overloaded" in str(exc)


def test_error_event_with_non_json_body_is_still_provider_error() -> None:
    _, exc, _ = run(decode_anthropic(), [SseEvent("error", "upstream connect error")])
    assert isinstance(exc, ProviderError)
    assert "upstream connect error" in str(exc)


def test_events_without_event_line_use_the_payload_type() -> None:
    events = [
        data(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "x"},
            }
        ),
        data({"type": "ping"}),
        data({"type": "message_stop"}),
    ]
    assert ok(decode_anthropic(), events) == [TextDelta("x")]


def test_stream_without_message_stop_is_truncated_and_partial_kept() -> None:
    events = [start(), block_start(0, {"type": "text", "text": ""}), text(0, "Hal")]
    _tokens, exc, _ = run(decode_anthropic(), events)
    assert isinstance(exc, TruncatedStreamError)
    assert "message_stop" in str(exc)
    errors: list[Exception] = []
    reactivex.from_iterable(events).pipe(decode_anthropic(), aggregate()).subscribe(
        on_error=errors.append
    )
    assert errors[0].partial is not None
    assert errors[0].partial.text == "Hal"


def test_invalid_json_is_decode_error() -> None:
    _, exc, _ = run(decode_anthropic(), [SseEvent("content_block_delta", "{bad")])
    assert isinstance(exc, StreamDecodeError)
    assert "'{bad'" in str(exc)


@pytest.mark.parametrize("repeat_input", [True, False])
def test_encoder_round_trip(repeat_input: bool) -> None:
    script = Script(
        text="Voilà the answer",
        reasoning="hmm… ok",
        tool_calls=[ScriptedToolCall("f", {"k": "v"}), ScriptedToolCall("g", {"n": [1, 2]})],
        usage=(50, 70),
    )
    body = b"".join(anthropic_events(script, ping_every=2, repeat_input_tokens=repeat_input))
    completion = reactivex.from_iterable(parse(body)).pipe(decode_anthropic(), aggregate()).run()
    assert completion == expected_completion(script, "anthropic")


def test_encoder_error_stream() -> None:
    script = Script(text="a b", error={"type": "api_error", "message": "Internal"})
    tokens, exc, _ = run(decode_anthropic(), parse(b"".join(anthropic_events(script))))
    cached = {"cache_read_input_tokens": 0, "cache_write_input_tokens": 0}
    assert tokens == [Usage(10, 1, **cached), TextDelta("a"), TextDelta(" b")]
    assert isinstance(exc, ProviderError)
    assert exc.error_type == "api_error"
