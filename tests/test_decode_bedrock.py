"""decode_bedrock(): ConverseStream event stream messages, exact tokens and typed errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import reactivex

from rxtokens.errors import (
    ProviderError,
    ProviderHTTPError,
    RateLimitError,
    StreamDecodeError,
    TruncatedStreamError,
)
from rxtokens.eventstream import EventStreamMessage, encode_message
from rxtokens.operators import aggregate, decode_bedrock, is_retryable, parse_aws_eventstream
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage

from .decode_helpers import run


def event(kind: str, payload: Any) -> EventStreamMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return EventStreamMessage(headers, body)


def exception(kind: str, payload: Any) -> EventStreamMessage:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return EventStreamMessage(headers, json.dumps(payload).encode())


START = event("messageStart", {"role": "assistant"})


def text(value: str, index: int = 0) -> EventStreamMessage:
    return event("contentBlockDelta", {"delta": {"text": value}, "contentBlockIndex": index})


def stop(reason: str = "end_turn") -> EventStreamMessage:
    return event("messageStop", {"stopReason": reason})


def metadata(input_tokens: int = 5, output_tokens: int = 2, **usage: Any) -> EventStreamMessage:
    counts = {"inputTokens": input_tokens, "outputTokens": output_tokens, **usage}
    counts["totalTokens"] = input_tokens + output_tokens
    return event("metadata", {"usage": counts, "metrics": {"latencyMs": 321}})


def tool_start(index: int, tool_id: str, name: str) -> EventStreamMessage:
    start = {"toolUse": {"toolUseId": tool_id, "name": name}}
    return event("contentBlockStart", {"start": start, "contentBlockIndex": index})


def tool_input(index: int, fragment: str) -> EventStreamMessage:
    delta = {"toolUse": {"input": fragment}}
    return event("contentBlockDelta", {"delta": delta, "contentBlockIndex": index})


def block_stop(index: int) -> EventStreamMessage:
    return event("contentBlockStop", {"contentBlockIndex": index})


def ok(messages: list[EventStreamMessage]) -> list[Any]:
    tokens, error, _ = run(decode_bedrock(), messages)  # type: ignore[arg-type]
    if error is not None:
        raise error
    return tokens


def test_text_stream() -> None:
    tokens = ok(
        [START, text("Hel", 0), text("", 0), text("lo", 0), block_stop(0), stop(), metadata()]
    )
    assert tokens == [TextDelta("Hel"), TextDelta("lo"), Finish("stop", 0, "end_turn"), Usage(5, 2)]


def test_padding_field_and_unknown_events_are_ignored() -> None:
    """Bedrock pads payloads with a "p" field; new event kinds must not break old clients."""
    padded = event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "a"}, "p": "abc"}
    )
    tokens = ok([START, padded, event("futureEvent", {"x": 1}), stop(), metadata()])
    assert tokens == [TextDelta("a"), Finish("stop", 0, "end_turn"), Usage(5, 2)]


def test_tool_use_blocks_become_deltas_then_one_complete_call() -> None:
    tokens = ok(
        [
            START,
            text("Let me check."),
            block_stop(0),
            tool_start(1, "tooluse_a", "get_weather"),
            tool_input(1, '{"city": "Par'),
            tool_input(1, ""),
            tool_input(1, 'is"}'),
            block_stop(1),
            tool_start(2, "tooluse_b", "now"),
            block_stop(2),
            stop("tool_use"),
            metadata(),
        ]
    )
    assert tokens == [
        TextDelta("Let me check."),
        ToolCallDelta(0, "tooluse_a", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city": "Par'),
        ToolCallDelta(0, None, None, 'is"}'),
        ToolCall(0, "tooluse_a", "get_weather", {"city": "Paris"}),
        ToolCallDelta(1, "tooluse_b", "now", ""),
        ToolCall(1, "tooluse_b", "now", {}),
        Finish("tool_calls", 0, "tool_use"),
        Usage(5, 2),
    ]


def test_a_tool_block_left_open_is_completed_at_message_stop() -> None:
    tokens = ok([tool_start(0, "t", "f"), tool_input(0, '{"a":1}'), stop("tool_use"), metadata()])
    assert tokens[-3:] == [
        ToolCall(0, "t", "f", {"a": 1}),
        Finish("tool_calls", 0, "tool_use"),
        Usage(5, 2),
    ]


def test_reasoning_text_is_reasoning_and_its_signature_is_not_text() -> None:
    def reasoning(**content: Any) -> EventStreamMessage:
        delta = {"reasoningContent": content}
        return event("contentBlockDelta", {"delta": delta, "contentBlockIndex": 0})

    tokens = ok(
        [
            START,
            reasoning(text="Think"),
            reasoning(text="ing."),
            reasoning(signature="c2lnbmF0dXJl"),
            reasoning(redactedContent="cmVkYWN0ZWQ="),
            block_stop(0),
            text("Answer", 1),
            stop(),
            metadata(),
        ]
    )
    assert tokens == [
        ReasoningDelta("Think"),
        ReasoningDelta("ing."),
        TextDelta("Answer"),
        Finish("stop", 0, "end_turn"),
        Usage(5, 2),
    ]


@pytest.mark.parametrize(
    "reason",
    [
        "end_turn",
        "tool_use",
        "max_tokens",
        "stop_sequence",
        "guardrail_intervened",
        "content_filtered",
    ],
)
def test_stop_reasons_are_normalised_and_kept_raw(reason: str) -> None:
    normal = {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "tool_use": "tool_calls",
        "max_tokens": "length",
        "guardrail_intervened": "content_filter",
        "content_filtered": "content_filter",
    }
    assert ok([stop(reason), metadata()])[0] == Finish(normal[reason], 0, reason)


def test_metadata_usage_and_what_follows_it() -> None:
    tokens = ok(
        [stop(), metadata(7, 3, cacheReadInputTokens=4, cacheWriteInputTokens=1), text("x")]
    )
    assert tokens == [
        Finish("stop", 0, "end_turn"),
        Usage(7, 3, cache_read_input_tokens=4, cache_write_input_tokens=1),
    ]
    assert ok([stop(), event("metadata", {"metrics": {"latencyMs": 1}})]) == [
        Finish("stop", 0, "end_turn")
    ]


@pytest.mark.parametrize(
    "messages",
    [[], [START, text("a")], [START, text("a"), stop()]],
    ids=["empty", "no-messageStop", "no-metadata"],
)
def test_a_stream_without_its_ending_is_truncated(messages: list[EventStreamMessage]) -> None:
    _, error, _ = run(decode_bedrock(), messages)  # type: ignore[arg-type]
    assert isinstance(error, TruncatedStreamError)
    missing = "metadata" if len(messages) == 3 else "messageStop"
    assert f"before {missing}" in str(error)
    assert error.provider == "bedrock"


@pytest.mark.parametrize(
    ("kind", "error_type", "status"),
    [
        ("throttlingException", RateLimitError, 429),
        ("internalServerException", ProviderHTTPError, 500),
        ("serviceUnavailableException", ProviderHTTPError, 503),
        ("validationException", ProviderError, None),
        ("modelStreamErrorException", ProviderError, None),
        ("somethingNewException", ProviderError, None),
    ],
)
def test_exceptions_become_typed_errors(kind: str, error_type: type, status: int | None) -> None:
    payload = {"message": f"{kind} happened"}
    tokens, error, _ = run(decode_bedrock(), [START, text("a"), exception(kind, payload)])  # type: ignore[arg-type]
    assert tokens == [TextDelta("a")]
    assert type(error) is error_type
    assert f"{kind} happened" in str(error)
    assert error.provider == "bedrock"
    if status is None:
        assert error.error_type == kind
        assert not is_retryable(error)
    else:
        assert error.status == status
        assert error.headers[":exception-type"] == kind
        assert json.loads(error.body) == payload
        assert is_retryable(error)


def test_model_stream_error_names_the_models_own_message() -> None:
    payload = {
        "message": "Model failed",
        "originalStatusCode": 500,
        "originalMessage": "overloaded",
    }
    _, error, _ = run(decode_bedrock(), [exception("modelStreamErrorException", payload)])  # type: ignore[arg-type]
    assert isinstance(error, ProviderError)
    assert "Model failed" in str(error)
    assert "overloaded" in str(error)


def test_error_messages_and_unknown_message_types() -> None:
    headers = {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}
    _, error, _ = run(decode_bedrock(), [EventStreamMessage(headers, b"")])  # type: ignore[arg-type]
    assert isinstance(error, ProviderError)
    assert error.error_type == "InternalFailure"
    assert "oops" in str(error)
    _, error, _ = run(decode_bedrock(), [EventStreamMessage({}, b"{}")])  # type: ignore[arg-type]
    assert isinstance(error, StreamDecodeError)
    assert "unknown :message-type None" in str(error)
    bad = EventStreamMessage({":message-type": "exception"}, b"not json")
    _, error, _ = run(decode_bedrock(), [bad])  # type: ignore[arg-type]
    assert isinstance(error, ProviderError)
    assert "not json" in str(error)


@pytest.mark.parametrize(
    "message",
    [
        event("contentBlockDelta", b"{not json"),
        event("contentBlockDelta", b"[1]"),
        event("contentBlockDelta", {"contentBlockIndex": 0}),
    ],
)
def test_malformed_payloads_are_decode_errors(message: EventStreamMessage) -> None:
    _, error, _ = run(decode_bedrock(), [message])  # type: ignore[arg-type]
    assert isinstance(error, StreamDecodeError)
    assert error.provider == "bedrock"


def test_tool_input_that_is_not_a_json_object_is_a_decode_error() -> None:
    messages = [tool_start(0, "t", "f"), tool_input(0, "[1, 2]"), block_stop(0)]
    _, error, _ = run(decode_bedrock(), messages)  # type: ignore[arg-type]
    assert isinstance(error, StreamDecodeError)
    assert "'f'" in str(error)


def test_bytes_to_completion_with_parse_aws_eventstream() -> None:
    messages = [START, text("Hi"), text(" there"), stop(), metadata(3, 2)]
    wire = b"".join(encode_message(dict(m.headers), m.payload) for m in messages)
    chunks = [wire[i : i + 7] for i in range(0, len(wire), 7)]
    completion = (
        reactivex.from_iterable(chunks)
        .pipe(parse_aws_eventstream(), decode_bedrock(), aggregate())
        .run()
    )
    assert completion.text == "Hi there"
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(3, 2)
