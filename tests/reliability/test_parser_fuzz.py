"""The SSE parser and the decoders fuzzed at scale (hypothesis).

- `SseParser` against an independent, line-by-line transcription of the WHATWG "event
  stream interpretation" algorithm (``tests/sse_reference.py``), on arbitrary bytes and
  on SSE-shaped input (fields, comments, BOMs, CR / LF / CRLF, NULs, invalid UTF-8), cut
  into arbitrary chunks.
- Every provider decoder fed arbitrary JSON of arbitrary types and depths (with escaped lone
  surrogates) in arbitrary event types: it emits well-typed tokens whose text is valid UTF-8
  and that aggregate into a `Completion`, or fails with an `RxTokensError` (a `StreamError`
  subclass), never ``KeyError``, ``TypeError``, ``RecursionError`` ...

The default run uses a few hundred examples per property; the slow run (RXTOKENS_SLOW=1)
20,000 for the parser and 5,000 for each decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxtokens import CompletionBuilder, RxTokensError, token_to_dict
from rxtokens.operators._decode import check_tokens
from rxtokens.operators._decode_anthropic import AnthropicDecoder
from rxtokens.operators._decode_gemini import GeminiDecoder
from rxtokens.operators._decode_openai import OpenAIChatDecoder
from rxtokens.operators._decode_responses import OpenAIResponsesDecoder
from rxtokens.sse import SseEvent, SseParser

from ..sse_reference import reference

pytestmark = pytest.mark.timeout(900)


def _scale(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=False,
    )


# --------------------------------------------------------------------------- parser


def parse_in_chunks(stream: bytes, cuts: list[int]) -> tuple[list[SseEvent], str]:
    parser = SseParser()
    events: list[SseEvent] = []
    previous = 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        events.extend(parser.feed(stream[previous:cut]))
        previous = cut
    events.extend(parser.close())
    return events, parser.last_event_id


# --------------------------------------------------------------------------- strategies

_ENDINGS = st.sampled_from(["\n", "\r", "\r\n"])
_NAMES = st.sampled_from(["data", "event", "id", "retry", "", "dat", "Data", "x"])
_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "1000", "12a", "[DONE]", '{"a": 1}', "\x00", "\ufeff", " lead"]),
)


@st.composite
def sse_like(draw: st.DrawFn) -> bytes:
    """SSE-shaped bytes: fields, comments, blank lines, any line endings, odd bytes."""
    parts: list[bytes] = []
    if draw(st.booleans()):
        parts.append(b"\xef\xbb\xbf")
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            line = ":" + draw(_VALUES)
        elif kind == 1:
            line = ""
        else:
            name = draw(_NAMES)
            sep = draw(st.sampled_from([":", ": ", ":  ", ""]))
            line = name + sep + (draw(_VALUES) if sep else "")
        raw = (line + draw(_ENDINGS)).encode()
        if draw(st.integers(0, 20)) == 0:
            raw = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xef\xbb", b"\x00"])) + raw
        parts.append(raw)
    return b"".join(parts)


_STREAMS = st.one_of(sse_like(), st.binary(max_size=300))
_CUTS = st.lists(st.integers(0, 400), max_size=12)


def _check_parser(stream: bytes, cuts: list[int]) -> None:
    expected = reference(stream)
    assert parse_in_chunks(stream, cuts) == (expected.events, expected.last_event_id)


@_scale(300)
@given(_STREAMS, _CUTS)
def test_parser_equals_the_reference(stream: bytes, cuts: list[int]) -> None:
    _check_parser(stream, cuts)


@pytest.mark.slow
@_scale(20_000)
@given(_STREAMS, _CUTS)
def test_parser_equals_the_reference_at_scale(stream: bytes, cuts: list[int]) -> None:
    _check_parser(stream, cuts)


@_scale(100)
@given(sse_like())
def test_byte_by_byte_equals_whole(stream: bytes) -> None:
    parser = SseParser()
    events = [e for i in range(len(stream)) for e in parser.feed(stream[i : i + 1])]
    events.extend(parser.close())
    assert events == reference(stream).events


# --------------------------------------------------------------------------- decoders

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = [
    "choices", "delta", "content", "index", "tool_calls", "function", "arguments", "id", "name",
    "finish_reason", "usage", "error", "type", "message", "content_block", "text",
    "partial_json", "candidates", "parts", "functionCall", "args", "usageMetadata",
    "finishReason", "response", "output_index", "item", "item_id", "call_id", "status",
    "stop_reason", "input_tokens", "output_tokens", "prompt_tokens", "completion_tokens",
    "reasoning_content", "refusal", "thought", "code", "param",
]  # fmt: skip
_SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.text(max_size=6) | st.sampled_from(_KEYS),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)
    ),
    max_leaves=16,
)
_TYPES = [
    "message", "error", "ping", "message_start", "content_block_start", "content_block_delta",
    "content_block_stop", "message_delta", "message_stop", "response.output_text.delta",
    "response.completed", "response.failed", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "response.output_item.added",
    "response.output_item.done", "response.incomplete", "response.created",
    "response.reasoning_summary_text.delta", "response.refusal.delta",
]  # fmt: skip
_RAW = [
    "[DONE]", "", "{", "null", "1", "[" * 1001, '{"a":' * 300 + "1" + "}" * 300,
    '{"choices":[{"delta":{"content":"A\\ud800B"}}]}', '"\\udfff"',
    '{"type":"content_block_delta","delta":{"type":"text_delta","text":"\\ud83d"}}',
]  # fmt: skip
"""Raw event data: terminal markers, invalid or too deeply nested JSON, lone surrogates."""
_EVENTS = st.lists(
    st.builds(
        lambda kind, payload, raw: SseEvent(
            kind, raw if raw is not None else json.dumps(payload), "", None
        ),
        st.sampled_from(_TYPES),
        st.one_of(_SHAPED, _JSON),
        st.one_of(st.none(), st.none(), st.sampled_from(_RAW)),
    ),
    max_size=12,
)
DECODERS: dict[str, Callable[[], Any]] = {
    "openai_chat": OpenAIChatDecoder,
    "openai_responses": OpenAIResponsesDecoder,
    "anthropic": AnthropicDecoder,
    "gemini": GeminiDecoder,
}


def _check_decoder(name: str, events: list[SseEvent]) -> None:
    decoder = DECODERS[name]()
    builder = CompletionBuilder()
    tokens: list[Any] = []
    try:
        for event in events:
            tokens.extend(decoder.feed(event))
        tokens.extend(decoder.close())
    except RxTokensError:
        pass  # a documented failure: decode error, provider error, truncated stream
    assert check_tokens(name, "", tokens) == tokens  # every field of the right type
    for token in tokens:
        builder.add(token)
        assert json.dumps(token_to_dict(token), ensure_ascii=False).encode("utf-8")
    builder.build(strict=False)


@pytest.mark.parametrize("name", list(DECODERS))
@_scale(200)
@given(events=_EVENTS)
def test_decoders_fail_only_with_documented_errors(name: str, events: list[SseEvent]) -> None:
    _check_decoder(name, events)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DECODERS))
@_scale(5_000)
@given(events=_EVENTS)
def test_decoders_fail_only_with_documented_errors_at_scale(
    name: str, events: list[SseEvent]
) -> None:
    _check_decoder(name, events)
