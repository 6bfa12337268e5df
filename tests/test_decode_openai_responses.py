"""decode_openai_responses(): the Responses API event stream, exact tokens."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex

from rxtokens.errors import ProviderError, StreamDecodeError, TruncatedStreamError
from rxtokens.operators import aggregate, decode_openai_responses
from rxtokens.testing import Script, ScriptedToolCall, expected_completion, openai_responses_events
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

from .decode_helpers import data, ok, parse, run, typed


def ev(kind: str, **fields: Any) -> Any:
    return typed({"type": kind, **fields, "sequence_number": 0})


def text_delta(text: str, output_index: int = 0) -> Any:
    return ev(
        "response.output_text.delta",
        item_id="msg_1",
        output_index=output_index,
        content_index=0,
        delta=text,
        logprobs=[],
    )


def text_done(text: str, output_index: int = 0) -> Any:
    return ev(
        "response.output_text.done",
        item_id="msg_1",
        output_index=output_index,
        content_index=0,
        text=text,
        logprobs=[],
    )


def completed(usage: Any = None, status: str = "completed", **extra: Any) -> Any:
    kind = "response.completed" if status == "completed" else f"response.{status}"
    return ev(kind, response={"id": "resp_1", "status": status, "usage": usage, **extra})


USAGE = {"input_tokens": 4, "output_tokens": 6, "total_tokens": 10}


def test_done_event_repeating_the_text_is_not_appended_twice() -> None:
    events = [
        ev("response.created", response={"id": "resp_1", "status": "in_progress"}),
        text_delta("Hel"),
        text_delta("lo"),
        text_done("Hello"),
        completed(USAGE),
    ]
    assert ok(decode_openai_responses(), events) == [
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(4, 6),
        Finish("stop", 0, "completed"),
    ]


def test_done_event_supplies_text_that_was_never_streamed() -> None:
    events = [text_delta("Hel"), text_done("Hello"), text_done("Bye", output_index=1), completed()]
    assert ok(decode_openai_responses(), events) == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta("Bye"),
        Finish("stop", 0, "completed"),
    ]


def test_function_call_deltas_then_tool_call_once() -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "f",
        "arguments": "",
    }
    events = [
        ev("response.output_item.added", output_index=1, item=item),
        ev("response.function_call_arguments.delta", item_id="fc_1", output_index=1, delta='{"a"'),
        ev("response.function_call_arguments.delta", item_id="fc_1", output_index=1, delta=":1}"),
        ev(
            "response.function_call_arguments.done",
            item_id="fc_1",
            output_index=1,
            arguments='{"a":1}',
        ),
        ev("response.output_item.done", output_index=1, item={**item, "arguments": '{"a":1}'}),
        completed(USAGE),
    ]
    assert ok(decode_openai_responses(), events) == [
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, None, None, '{"a"'),
        ToolCallDelta(0, None, None, ":1}"),
        ToolCall(0, "call_1", "f", {"a": 1}),
        Usage(4, 6),
        Finish("tool_calls", 0, "completed"),  # a completed tool call,
    ]


def test_output_item_done_completes_a_call_without_arguments_done() -> None:
    item = {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "g", "arguments": ""}
    events = [
        ev("response.output_item.added", output_index=0, item=item),
        ev("response.output_item.done", output_index=0, item={**item, "arguments": '{"x":[1]}'}),
        completed(),
    ]
    assert ok(decode_openai_responses(), events)[1] == ToolCall(0, "c", "g", {"x": [1]})


def test_reasoning_summary_and_refusal() -> None:
    events = [
        ev(
            "response.reasoning_summary_text.delta",
            item_id="rs",
            output_index=0,
            summary_index=0,
            delta="think",
        ),
        ev(
            "response.reasoning_summary_text.done",
            item_id="rs",
            output_index=0,
            summary_index=0,
            text="think",
        ),
        ev(
            "response.reasoning_text.delta",
            item_id="rs",
            output_index=0,
            content_index=0,
            delta="raw",
        ),
        ev("response.refusal.delta", item_id="m", output_index=1, content_index=0, delta="No"),
        ev("response.refusal.done", item_id="m", output_index=1, content_index=0, refusal="No."),
        completed(),
    ]
    assert ok(decode_openai_responses(), events) == [
        ReasoningDelta("think"),
        ReasoningDelta("raw"),
        RefusalDelta("No"),
        RefusalDelta("."),
        Finish("stop", 0, "completed"),
    ]


def test_incomplete_finishes_with_its_reason() -> None:
    events = [
        text_delta("Hi"),
        completed(USAGE, status="incomplete", incomplete_details={"reason": "max_output_tokens"}),
    ]
    assert ok(decode_openai_responses(), events) == [
        TextDelta("Hi"),
        Usage(4, 6),
        Finish("length", 0, "max_output_tokens"),
    ]


def test_response_failed_is_provider_error() -> None:
    failed = ev(
        "response.failed",
        response={"status": "failed", "error": {"code": "server_error", "message": "boom"}},
    )
    tokens, error, _ = run(decode_openai_responses(), [text_delta("Hi"), failed])
    assert tokens == [TextDelta("Hi")]
    assert isinstance(error, ProviderError)
    assert error.error_type == "server_error"
    assert "boom" in str(error)


def test_error_event_is_provider_error() -> None:
    events = [ev("error", code="rate_limit_exceeded", message="slow down", param=None)]
    _, error, _ = run(decode_openai_responses(), events)
    assert isinstance(error, ProviderError)
    assert error.error_type == "rate_limit_exceeded"
    assert "slow down" in str(error)


def test_stream_without_completed_is_truncated() -> None:
    tokens, error, _ = run(decode_openai_responses(), [text_delta("Hi"), text_done("Hi")])
    assert tokens == [TextDelta("Hi")]
    assert isinstance(error, TruncatedStreamError)


def test_invalid_json_is_decode_error() -> None:
    _, error, _ = run(decode_openai_responses(), [data("{oops")])
    assert isinstance(error, StreamDecodeError)
    assert "'{oops'" in str(error)


@pytest.mark.parametrize(
    "script",
    [
        Script(text="Hello there, wörld", usage=(3, 5)),
        Script(
            text="Calling.",
            reasoning="Need a tool",
            tool_calls=[ScriptedToolCall("f", {"q": "ü"}), ScriptedToolCall("g", {})],
        ),
        Script(refusal="I can't help with that."),
        Script(text="cut", finish_reason="max_output_tokens"),
    ],
)
def test_encoder_round_trip(script: Script) -> None:
    body = b"".join(openai_responses_events(script))
    completion = (
        reactivex.from_iterable(parse(body)).pipe(decode_openai_responses(), aggregate()).run()
    )
    assert completion == expected_completion(script, "openai_responses")


@pytest.mark.parametrize("error_event", ["failed", "error"])
def test_encoder_errors(error_event: str) -> None:
    script = Script(text="a b", error={"type": "server_error", "message": "oops"})
    body = b"".join(openai_responses_events(script, error_event=error_event))
    tokens, error, _ = run(decode_openai_responses(), parse(body))
    assert tokens == [TextDelta("a"), TextDelta(" b")]
    assert isinstance(error, ProviderError)
    assert error.error_type == "server_error"
