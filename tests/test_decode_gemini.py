"""decode_gemini(): streamGenerateContent?alt=sse chunks, exact tokens."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex

from rxtokens.errors import ProviderError, StreamDecodeError, TruncatedStreamError
from rxtokens.operators import aggregate, decode_gemini
from rxtokens.testing import Script, ScriptedToolCall, expected_completion, gemini_events
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCall, Usage

from .decode_helpers import data, ok, parse, run


def gchunk(
    *parts: dict[str, Any], finish: str | None = None, usage: Any = None, index: int = 0
) -> Any:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = index
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage
    body["modelVersion"] = "gemini-2.5-flash"
    return data(body)


def meta(prompt: int, candidates: int | None = None, thoughts: int | None = None) -> Any:
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def test_incremental_text_parts_finish_and_last_usage() -> None:
    events = [
        gchunk({"text": "Hel"}, usage=meta(4, 1)),
        gchunk({"text": "lo"}, usage=meta(4, 2)),
        gchunk({"text": "!"}, finish="STOP", usage=meta(4, 3)),
    ]
    assert ok(decode_gemini(), events) == [
        TextDelta("Hel"),
        Usage(4, 1),
        TextDelta("lo"),
        Usage(4, 2),
        TextDelta("!"),
        Usage(4, 3),
        Finish("stop", 0, "STOP"),
    ]


def test_repeated_identical_usage_is_emitted_once() -> None:
    events = [
        gchunk({"text": "a"}, usage=meta(4)),
        gchunk({"text": "b"}, usage=meta(4)),
        gchunk({"text": ""}, finish="STOP", usage=meta(4, 2)),
    ]
    assert ok(decode_gemini(), events) == [
        TextDelta("a"),
        Usage(4, None),
        TextDelta("b"),
        Usage(4, 2),
        Finish("stop", 0, "STOP"),
    ]


def test_whole_function_call_parts_without_id() -> None:
    events = [
        gchunk({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}),
        gchunk(
            {"functionCall": {"name": "get_time", "args": {}, "id": "fc-7"}},
            finish="STOP",
        ),
    ]
    assert ok(decode_gemini(), events) == [
        ToolCall(0, None, "get_weather", {"city": "Paris"}),
        ToolCall(1, "fc-7", "get_time", {}),
        Finish("tool_calls", 0, "STOP"),  # STOP with a functionCall: a tool call,
    ]


def test_thought_parts_are_reasoning_and_count_as_output() -> None:
    events = [
        gchunk({"text": "hmm", "thought": True}, usage=meta(3, thoughts=5)),
        gchunk({"text": "Yes", "thoughtSignature": "c2ln"}, finish="STOP", usage=meta(3, 2, 5)),
    ]
    assert ok(decode_gemini(), events) == [
        ReasoningDelta("hmm"),
        Usage(3, 5, reasoning_tokens=5),
        TextDelta("Yes"),
        Usage(3, 7, reasoning_tokens=5),
        Finish("stop", 0, "STOP"),
    ]


def test_end_after_finish_is_success_and_before_it_truncation() -> None:
    assert ok(decode_gemini(), [gchunk({"text": "a"}, finish="MAX_TOKENS")]) == [
        TextDelta("a"),
        Finish("length", 0, "MAX_TOKENS"),
    ]
    tokens, error, _ = run(decode_gemini(), [gchunk({"text": "a"})])
    assert tokens == [TextDelta("a")]
    assert isinstance(error, TruncatedStreamError)
    assert "finishReason" in str(error)


def test_two_candidates_must_both_finish() -> None:
    events = [
        gchunk({"text": "A"}, index=0),
        gchunk({"text": "B"}, index=1),
        gchunk({"text": "."}, index=0, finish="STOP"),
    ]
    tokens, error, _ = run(decode_gemini(), events)
    assert tokens == [
        TextDelta("A", 0),
        TextDelta("B", 1),
        TextDelta(".", 0),
        Finish("stop", 0, "STOP"),
    ]
    assert isinstance(error, TruncatedStreamError)
    assert ok(decode_gemini(), [*events, gchunk(index=1, finish="STOP")])[-1] == Finish(
        "stop", 1, "STOP"
    )


def test_blocked_prompt_finishes_with_block_reason() -> None:
    events = [data({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": meta(5)})]
    assert ok(decode_gemini(), events) == [
        Usage(5, 0),
        Finish("content_filter", 0, "SAFETY"),
    ]  # zero is omitted


def test_error_chunk_is_provider_error() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    tokens, exc, _ = run(decode_gemini(), [gchunk({"text": "a"}), data(error)])
    assert tokens == [TextDelta("a")]
    assert isinstance(exc, ProviderError)
    assert exc.error_type == "UNAVAILABLE"
    assert "overloaded" in str(exc)


def test_invalid_json_is_decode_error() -> None:
    _, exc, _ = run(decode_gemini(), [data("[1, 2")])
    assert isinstance(exc, StreamDecodeError)
    assert "'[1, 2'" in str(exc)


def test_crlf_framed_encoder_body() -> None:
    body = b"".join(gemini_events(Script(text=["Hi", " you"], usage=(2, 2))))
    assert b"\r\n\r\n" in body
    assert b"[DONE]" not in body
    assert ok(decode_gemini(), parse(body)) == [
        TextDelta("Hi"),
        Usage(2, 1),
        TextDelta(" you"),
        Usage(2, 2),
        Finish("stop", 0, "STOP"),
    ]


@pytest.mark.parametrize(
    "script",
    [
        Script(text="Plain ünïcode text", usage=(3, 9)),
        Script(
            text="Using tools",
            reasoning="thinking first",
            tool_calls=[ScriptedToolCall("f", {"a": 1}), ScriptedToolCall("g", {"b": [True]})],
            usage=(8, 40),
        ),
        Script(tool_calls=[ScriptedToolCall("only", {})], usage=None),
    ],
)
def test_encoder_round_trip(script: Script) -> None:
    body = b"".join(gemini_events(script))
    completion = reactivex.from_iterable(parse(body)).pipe(decode_gemini(), aggregate()).run()
    assert completion == expected_completion(script, "gemini")
