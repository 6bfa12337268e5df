"""decode_openai_chat(): every quirk of the Chat Completions stream, exact tokens."""

from __future__ import annotations

from typing import Any

import pytest
import reactivex
from reactivex.subject import Subject

from rxtokens.errors import ProviderError, StreamDecodeError, TruncatedStreamError
from rxtokens.operators import aggregate, decode_openai_chat
from rxtokens.operators._decode_openai import OpenAIChatDecoder
from rxtokens.sse import SseEvent
from rxtokens.testing import Script, ScriptedToolCall, openai_chat_events
from rxtokens.tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

from .decode_helpers import data, ok, parse, run

DONE = SseEvent(data="[DONE]")


def chunk(*choices: dict[str, Any], usage: Any = None, **extra: Any) -> SseEvent:
    body: dict[str, Any] = {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": list(choices),
        "usage": usage,
    }
    body.update(extra)
    return data(body)


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "logprobs": None, "finish_reason": finish}


def call(index: int, args: str, call_id: str | None = None, name: str | None = None) -> Any:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id is not None:
        fragment["id"] = call_id
        fragment["type"] = "function"
        fragment["function"]["name"] = name
    return fragment


def test_role_only_first_chunk_emits_nothing() -> None:
    events = [
        chunk(delta(role="assistant", content="", refusal=None)),
        chunk(delta(role="assistant", content=None)),
        chunk(delta(content="Hi")),
        chunk(delta(finish="stop")),
        DONE,
    ]
    assert ok(decode_openai_chat(), events) == [TextDelta("Hi"), Finish("stop", 0, "stop")]


def test_text_finish_and_include_usage_trailing_chunk() -> None:
    events = [
        chunk(delta(role="assistant", content="")),
        chunk(delta(content="Hel")),
        chunk(delta(content="lo")),
        chunk(delta(finish="stop")),
        chunk(usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
        DONE,
    ]
    assert ok(decode_openai_chat(), events) == [
        TextDelta("Hel"),
        TextDelta("lo"),
        Finish("stop", 0, "stop"),
        Usage(5, 2),
    ]


def test_parallel_tool_calls_merged_by_index_and_emitted_when_complete() -> None:
    events = [
        chunk(delta(role="assistant", content=None)),
        chunk(delta(tool_calls=[call(0, "", "call_a", "get_weather")])),
        chunk(delta(tool_calls=[call(0, '{"city":')])),
        chunk(delta(tool_calls=[call(0, '"Paris"}')])),
        chunk(delta(tool_calls=[call(1, "", "call_b", "get_time")])),
        chunk(delta(tool_calls=[call(1, '{"tz":"UTC"}')])),
        chunk(delta(finish="tool_calls")),
        DONE,
    ]
    tokens = ok(decode_openai_chat(), events)
    first = ToolCall(0, "call_a", "get_weather", {"city": "Paris"})
    second = ToolCall(1, "call_b", "get_time", {"tz": "UTC"})
    assert tokens == [
        ToolCallDelta(0, "call_a", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city":'),
        ToolCallDelta(0, None, None, '"Paris"}'),
        first,  # complete as soon as call 1 starts
        ToolCallDelta(1, "call_b", "get_time", ""),
        ToolCallDelta(1, None, None, '{"tz":"UTC"}'),
        second,  # complete when the choice finishes, before Finish
        Finish("tool_calls", 0, "tool_calls"),
    ]


def test_tool_call_completed_at_done_without_finish_reason() -> None:
    events = [chunk(delta(tool_calls=[call(0, "{}", "call_a", "f")])), DONE]
    tokens = ok(decode_openai_chat(), events)
    assert tokens[-1] == ToolCall(0, "call_a", "f", {})


def test_tool_call_fragments_without_index_from_compatible_servers() -> None:
    no_index = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}},
        {"function": {"arguments": "1}"}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    events = [chunk(delta(tool_calls=[frag])) for frag in no_index]
    events += [chunk(delta(finish="tool_calls")), DONE]
    calls = [t for t in ok(decode_openai_chat(), events) if type(t) is ToolCall]
    assert calls == [ToolCall(0, "c1", "f", {"a": 1}), ToolCall(1, "c2", "g", {})]


def test_n2_choices_interleaved_keep_their_index() -> None:
    events = [
        chunk(delta(0, role="assistant", content="")),
        chunk(delta(1, role="assistant", content="")),
        chunk(delta(0, content="A")),
        chunk(delta(1, content="B")),
        chunk(delta(1, finish="length")),
        chunk(delta(0, content="a")),
        chunk(delta(0, finish="stop")),
        DONE,
    ]
    assert ok(decode_openai_chat(), events) == [
        TextDelta("A", 0),
        TextDelta("B", 1),
        Finish("length", 1, "length"),
        TextDelta("a", 0),
        Finish("stop", 0, "stop"),
    ]


def test_n2_from_encoder_aggregates_per_choice() -> None:
    script = Script(text=["x", "y", "z"], n=2, usage=(1, 6))
    body = b"".join(openai_chat_events(script))
    completion = reactivex.from_iterable(parse(body)).pipe(decode_openai_chat(), aggregate()).run()
    assert [c.text for c in completion.choices] == ["xyz", "zyx"]
    assert completion.usage == Usage(1, 6, cache_read_input_tokens=0, reasoning_tokens=0)


def test_refusal_becomes_refusal_delta() -> None:
    events = [
        chunk(delta(role="assistant", content=None, refusal="")),
        chunk(delta(refusal="I can't")),
        chunk(delta(refusal=" help.")),
        chunk(delta(finish="stop")),
        DONE,
    ]
    assert ok(decode_openai_chat(), events) == [
        RefusalDelta("I can't"),
        RefusalDelta(" help."),
        Finish("stop", 0, "stop"),
    ]


def test_logprobs_and_unknown_extra_fields_are_ignored() -> None:
    plain = [chunk(delta(content="Hi")), chunk(delta(finish="stop")), DONE]
    noisy_choice = delta(content="Hi")
    noisy_choice["logprobs"] = {
        "content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}],
        "refusal": None,
    }
    noisy_choice["token_ids"] = [13347]
    noisy = [
        chunk(
            noisy_choice,
            obfuscation="aZ3",
            service_tier="default",
            system_fingerprint="fp_1",
            timings={"predicted_ms": 1.5},
            prompt_filter_results=[],
        ),
        chunk(delta(finish="stop"), obfuscation="q"),
        DONE,
    ]
    assert ok(decode_openai_chat(), noisy) == ok(decode_openai_chat(), plain)
    assert ok(decode_openai_chat(), plain) == [TextDelta("Hi"), Finish("stop", 0, "stop")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_content_becomes_reasoning_delta(field: str) -> None:
    events = [
        chunk(delta(**{field: "think", "content": None})),
        chunk(delta(**{field: None, "content": "answer"})),
        chunk(delta(finish="stop")),
        DONE,
    ]
    assert ok(decode_openai_chat(), events) == [
        ReasoningDelta("think"),
        TextDelta("answer"),
        Finish("stop", 0, "stop"),
    ]


@pytest.mark.parametrize("done_after", [True, False])
def test_error_payload_after_200_is_provider_error(done_after: bool) -> None:
    events = [
        chunk(delta(content="Part")),
        data({"error": {"message": "overloaded", "type": "server_error", "code": None}}),
    ]
    if done_after:
        events.append(DONE)  # [DONE] after an error is not proof of success
    tokens, error, completed = run(decode_openai_chat(), events)
    assert tokens == [TextDelta("Part")]
    assert not completed
    assert isinstance(error, ProviderError)
    assert error.error_type == "server_error"
    assert "overloaded" in str(error)
    assert error.provider == "openai"


def test_error_carries_partial_through_aggregate() -> None:
    body = b"".join(openai_chat_events(Script(text="ab cd", error={"type": "x", "message": "m"})))
    errors: list[Exception] = []
    reactivex.from_iterable(parse(body)).pipe(decode_openai_chat(), aggregate()).subscribe(
        on_error=errors.append
    )
    assert isinstance(errors[0], ProviderError)
    assert errors[0].partial is not None
    assert errors[0].partial.text == "ab cd"


def test_stream_without_done_is_truncated() -> None:
    events = [chunk(delta(content="Hi")), chunk(delta(finish="stop"))]
    tokens, error, _ = run(decode_openai_chat(), events)
    assert tokens == [TextDelta("Hi"), Finish("stop", 0, "stop")]
    assert isinstance(error, TruncatedStreamError)
    assert "[DONE]" in str(error)


def test_truncated_error_gets_partial_from_aggregate() -> None:
    errors: list[Exception] = []
    reactivex.from_iterable([chunk(delta(content="Hi"))]).pipe(
        decode_openai_chat(), aggregate()
    ).subscribe(on_error=errors.append)
    assert isinstance(errors[0], TruncatedStreamError)
    assert errors[0].partial is not None
    assert errors[0].partial.text == "Hi"


def test_invalid_json_is_decode_error_quoting_the_data() -> None:
    bad = "{not json" + "x" * 500
    tokens, error, _ = run(decode_openai_chat(), [chunk(delta(content="a")), data(bad)])
    assert tokens == [TextDelta("a")]
    assert isinstance(error, StreamDecodeError)
    assert repr(bad[:200]) in str(error)
    assert bad[:201] not in str(error)  # cut to 200 characters


def test_unexpected_shape_is_decode_error() -> None:
    _, error, _ = run(decode_openai_chat(), [data({"choices": [{"index": 0, "delta": 5}]})])
    assert isinstance(error, StreamDecodeError)


def test_tool_arguments_that_are_not_json_object_are_decode_error() -> None:
    events = [chunk(delta(tool_calls=[call(0, "[1,", "c", "f")])), chunk(delta(finish="stop"))]
    _, error, _ = run(decode_openai_chat(), events)
    assert isinstance(error, StreamDecodeError)
    assert "'f'" in str(error)
    assert "'[1,'" in str(error)


def test_usage_on_every_chunk_emits_each() -> None:
    events = [
        chunk(delta(content="a"), usage={"prompt_tokens": 3, "completion_tokens": 1}),
        chunk(delta(finish="stop"), usage={"prompt_tokens": 3, "completion_tokens": 2}),
        DONE,
    ]
    assert ok(decode_openai_chat(), events) == [
        TextDelta("a"),
        Usage(3, 1),
        Finish("stop", 0, "stop"),
        Usage(3, 2),
    ]


def test_events_after_done_are_ignored() -> None:
    events = [chunk(delta(content="a")), DONE, chunk(delta(content="late"))]
    assert ok(decode_openai_chat(), events) == [TextDelta("a")]


def test_state_is_per_subscription() -> None:
    events = [chunk(delta(tool_calls=[call(0, "{}", "c", "f")])), DONE]
    source = reactivex.from_iterable(events).pipe(decode_openai_chat())
    first: list[Any] = []
    second: list[Any] = []
    source.subscribe(first.append)
    source.subscribe(second.append)
    assert first == second == [ToolCallDelta(0, "c", "f", "{}"), ToolCall(0, "c", "f", {})]


def test_encoder_stream_decodes_to_exact_tokens() -> None:
    script = Script(
        text=["Hi", " there"],
        tool_calls=[ScriptedToolCall("f", {"a": 1}, id="call_1", fragments=2)],
        usage=(7, 9),
        logprobs=True,
    )
    body = b"".join(openai_chat_events(script, obfuscation=True, extra_fields={"x": 1}))
    assert ok(decode_openai_chat(), parse(body)) == [
        TextDelta("Hi"),
        TextDelta(" there"),
        ToolCallDelta(0, "call_1", "f", ""),
        ToolCallDelta(0, None, None, '{"a"'),
        ToolCallDelta(0, None, None, ":1}"),
        ToolCall(0, "call_1", "f", {"a": 1}),
        Finish("tool_calls", 0, "tool_calls"),
        Usage(7, 9, cache_read_input_tokens=0, reasoning_tokens=0),
    ]


def test_pure_decoder_close_raises_until_done() -> None:
    decoder = OpenAIChatDecoder()
    assert decoder.feed(chunk(delta(content="x"))) == [TextDelta("x")]
    with pytest.raises(TruncatedStreamError):
        decoder.close()
    assert decoder.feed(DONE) == []
    assert decoder.close() == []


def test_dispose_unsubscribes_upstream_and_stops_tokens() -> None:
    subject: Subject[SseEvent] = Subject()
    tokens: list[Any] = []
    subscription = subject.pipe(decode_openai_chat()).subscribe(tokens.append)
    subject.on_next(chunk(delta(content="a")))
    subscription.dispose()
    assert not subject.observers
    subject.on_next(chunk(delta(content="b")))
    assert tokens == [TextDelta("a")]


def test_error_disposes_upstream_and_ignores_later_events() -> None:
    subject: Subject[SseEvent] = Subject()
    tokens: list[Any] = []
    errors: list[Exception] = []
    subject.pipe(decode_openai_chat()).subscribe(tokens.append, errors.append)
    subject.on_next(data("{broken"))
    subject.on_next(chunk(delta(content="late")))
    subject.on_next(DONE)
    assert tokens == []
    assert len(errors) == 1
    assert isinstance(errors[0], StreamDecodeError)
    assert not subject.observers


def test_upstream_error_passes_through_untouched() -> None:
    boom = ConnectionResetError("reset")
    source = reactivex.concat(reactivex.of(chunk(delta(content="a"))), reactivex.throw(boom))
    tokens: list[Any] = []
    errors: list[Exception] = []
    source.pipe(decode_openai_chat()).subscribe(tokens.append, errors.append)
    assert tokens == [TextDelta("a")]
    assert errors == [boom]
