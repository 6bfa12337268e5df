"""The decoders' shared guarantees (operators/_decode.py): whatever the upstream sends, tokens
are well typed and their text is valid UTF-8; anything else is a `StreamDecodeError`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rxtokens import CompletionBuilder, StreamDecodeError, token_to_json
from rxtokens.errors import ProviderError
from rxtokens.operators._decode_anthropic import AnthropicDecoder
from rxtokens.operators._decode_gemini import GeminiDecoder
from rxtokens.operators._decode_openai import OpenAIChatDecoder
from rxtokens.operators._decode_responses import OpenAIResponsesDecoder
from rxtokens.sse import SseEvent
from rxtokens.tokens import TextDelta, ToolCall

DECODERS: dict[str, Callable[[], Any]] = {
    "openai_chat": OpenAIChatDecoder,
    "openai_responses": OpenAIResponsesDecoder,
    "anthropic": AnthropicDecoder,
    "gemini": GeminiDecoder,
}


def feed(name: str, *events: SseEvent) -> list[Any]:
    decoder = DECODERS[name]()
    tokens: list[Any] = []
    for event in events:
        tokens.extend(decoder.feed(event))
    return tokens


def chat(delta: dict[str, Any], **choice: Any) -> SseEvent:
    return SseEvent(data=json.dumps({"choices": [{"index": 0, "delta": delta, **choice}]}))


def anthropic_text(text: Any) -> SseEvent:
    delta = {"type": "text_delta", "text": text}
    body = {"type": "content_block_delta", "index": 0, "delta": delta}
    return SseEvent("content_block_delta", json.dumps(body))


def gemini_part(part: dict[str, Any]) -> SseEvent:
    return SseEvent(data=json.dumps({"candidates": [{"content": {"parts": [part]}}]}))


def responses_delta(delta: Any) -> SseEvent:
    body = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}
    return SseEvent("response.output_text.delta", json.dumps({**body, "delta": delta}))


WRONG_TYPES = [
    ("openai_chat", chat({"content": ["x"]}), "TextDelta text that is list"),
    ("openai_chat", chat({"content": "x"}, index="a"), "TextDelta index that is str"),
    ("openai_chat", chat({"content": "x", "refusal": 5}), "RefusalDelta text that is int"),
    ("openai_chat", chat({}, finish_reason=7), "Finish raw that is int"),
    (
        "openai_chat",
        chat({"tool_calls": [{"index": 0, "id": 9, "function": {"arguments": "{}"}}]}),
        "ToolCallDelta id that is int",
    ),
    (
        "openai_chat",
        SseEvent(data='{"choices":[],"usage":{"prompt_tokens":"3","completion_tokens":1}}'),
        "Usage input_tokens that is str",
    ),
    ("gemini", gemini_part({"text": True}), "TextDelta text that is bool"),
    (
        "gemini",
        gemini_part({"functionCall": {"name": "f", "args": [1]}}),
        "ToolCall arguments that is list",
    ),
    ("anthropic", anthropic_text(1), "TextDelta text that is int"),
    ("openai_responses", responses_delta([1]), "TextDelta text that is list"),
]


@pytest.mark.parametrize(("name", "event", "names"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_a_decode_error_naming_it(
    name: str, event: SseEvent, names: str
) -> None:
    with pytest.raises(StreamDecodeError, match=names):
        feed(name, event)


LONE_SURROGATES = [
    ("openai_chat", SseEvent(data='{"choices":[{"index":0,"delta":{"content":"A\\ud800B"}}]}')),
    (
        "anthropic",
        SseEvent(
            "content_block_delta",
            '{"type":"content_block_delta","index":0,'
            '"delta":{"type":"text_delta","text":"A\\ud800B"}}',
        ),
    ),
    ("gemini", SseEvent(data='{"candidates":[{"content":{"parts":[{"text":"A\\ud800B"}]}}]}')),
    (
        "openai_responses",
        SseEvent(
            "response.output_text.delta",
            '{"type":"response.output_text.delta","output_index":0,"content_index":0,'
            '"delta":"A\\ud800B"}',
        ),
    ),
]


@pytest.mark.parametrize(("name", "event"), LONE_SURROGATES)
def test_lone_surrogates_become_replacement_characters(name: str, event: SseEvent) -> None:
    (token,) = feed(name, event)
    assert token == TextDelta("A\ufffdB")
    token_to_json(token).encode("utf-8")  # sendable: the server writes it as UTF-8


def test_tool_arguments_with_a_lone_surrogate_are_sendable() -> None:
    events = [
        chat({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]}),
        chat({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "\\udc00"}'}}]}),
        SseEvent(data="[DONE]"),
    ]
    call = feed("openai_chat", *events)[-1]
    assert call == ToolCall(0, "c", "f", {"q": "\ufffd"})


DEEP = "[" * 1001


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("openai_chat", SseEvent(data=DEEP)),
        ("openai_responses", SseEvent("response.created", DEEP)),
        ("anthropic", SseEvent("message_start", DEEP)),
        ("gemini", SseEvent(data=DEEP)),
        ("openai_chat", SseEvent(data="[" * 500 + "]" * 500)),  # valid but deeper than from_json
    ],
)
def test_deeply_nested_json_is_a_decode_error(name: str, event: SseEvent) -> None:
    with pytest.raises(StreamDecodeError, match=r"nested too deeply|not a JSON object|unexpected"):
        feed(name, event)


def test_deeply_nested_tool_arguments_are_a_decode_error() -> None:
    start = {"index": 0, "id": "c", "function": {"name": "f", "arguments": DEEP}}
    with pytest.raises(StreamDecodeError, match="not a JSON object"):
        feed("openai_chat", chat({"tool_calls": [start]}), SseEvent(data="[DONE]"))


def test_a_deeply_nested_anthropic_error_event_is_still_a_provider_error() -> None:
    with pytest.raises(ProviderError) as info:
        feed("anthropic", SseEvent("error", DEEP))
    assert len(str(info.value)) < 400  # the offending data is shown cut, not whole


@pytest.mark.parametrize(("name", "event"), LONE_SURROGATES)
def test_decoded_tokens_aggregate(name: str, event: SseEvent) -> None:
    builder = CompletionBuilder()
    for token in feed(name, event):
        builder.add(token)
    assert builder.build(strict=False).text == "A\ufffdB"
