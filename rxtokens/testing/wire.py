"""Byte-exact provider wire formats, built from a small `Script`.

Each encoder turns a `Script` (what the model "says") into the list of SSE
events a provider's streaming endpoint sends, one ``bytes`` per event, so a
test server can delay, split or cut the body between events. Field names,
field order, id shapes and framing follow the official SDKs' types (the
installed ``openai`` / ``anthropic`` packages: ``ChatCompletionChunk``,
``ResponseStreamEvent``, ``RawMessageStreamEvent``) and, for Gemini, the public
REST reference of ``streamGenerateContent?alt=sse`` (CRLF framing, no
``[DONE]``, ``usageMetadata`` with running totals on every chunk).

Encoders are deterministic: ids and timestamps derive from ``Script.seed``.

Example:
    >>> events = openai_chat_events(Script(text=["Hi", "!"], usage=(3, 2)))
    >>> events[-1]
    b'data: [DONE]\\n\\n'
    >>> b"".join(anthropic_events(Script(text="Hi"))).count(b"event: message_stop")
    1
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .._finish import normal_finish
from ..errors import ConfigError
from ..operators import (
    _decode_anthropic,
    _decode_bedrock,
    _decode_gemini,
    _decode_openai,
    _decode_responses,
)
from ..tokens import Choice, Completion, ToolCall, Usage
from .script import (
    Ids,
    Script,
    ScriptedToolCall,
    compact_json,
    cut_fragments,
    default_finish,
    split_deltas,
    tool_id,
)
from .wire_bedrock import bedrock_events

__all__ = [
    "FORMATS",
    "Script",
    "ScriptedToolCall",
    "anthropic_events",
    "encode",
    "expected_completion",
    "gemini_events",
    "openai_chat_events",
    "openai_responses_events",
    "split_deltas",
    "sse_frame",
]

FORMATS = ("openai_chat", "openai_responses", "anthropic", "gemini", "bedrock")
"""The wire formats `encode` knows, by name (``bedrock``: `rxtokens.testing.wire_bedrock`,
an AWS event stream, not SSE)."""


def sse_frame(data: str, *, event: str | None = None, crlf: bool = False) -> bytes:
    """One SSE event block: optional ``event:`` line, ``data:`` lines, blank line.

    Example:
        >>> sse_frame('{"a":1}', event="ping")
        b'event: ping\\ndata: {"a":1}\\n\\n'
    """
    nl = "\r\n" if crlf else "\n"
    lines = [] if event is None else [f"event: {event}"]
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return (nl.join(lines) + nl + nl).encode()


# --------------------------------------------------------------------------- OpenAI chat


def openai_chat_events(
    script: Script,
    *,
    include_usage: bool = True,
    obfuscation: bool = False,
    extra_fields: Mapping[str, Any] | None = None,
    done_after_error: bool = True,
) -> list[bytes]:
    """The SSE events of a streamed Chat Completion (``POST /v1/chat/completions``).

    Shape (see ``openai/types/chat/chat_completion_chunk.py``): every chunk is
    ``data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,
    "model":…,"service_tier":"default","system_fingerprint":"fp_…",
    "choices":[…],"usage":null}``; the first chunk of each choice carries only
    ``{"role":"assistant","content":"","refusal":null}``; reasoning goes in
    ``delta.reasoning_content`` (the field compatible servers use); a tool
    call's first fragment carries ``id``, ``type`` and ``function.name`` with
    empty arguments, later fragments only ``index`` and ``function.arguments``;
    the finish chunk has an empty delta; with `include_usage` a trailing chunk
    has ``"choices":[]`` and the usage; the stream ends with ``data: [DONE]``.

    Args:
        script: what to stream.
        include_usage: as ``stream_options={"include_usage": true}``.
        obfuscation: add the ``obfuscation`` padding field OpenAI sends.
        extra_fields: extra top-level fields on every chunk (as compatible
            servers add: vLLM ``token_ids``, llama.cpp ``timings`` ...).
        done_after_error: with ``script.error``, still send ``data: [DONE]``
            after the ``{"error": {...}}`` payload (OpenAI does).

    Returns:
        One ``bytes`` per SSE event, ``\\n\\n``-terminated.
    """
    ids = Ids(script.seed)
    chunk_id = ids.alnum("chatcmpl-", 29)
    created = 1_700_000_000 + script.seed
    model = script.model or "gpt-4o-mini-2024-07-18"
    fingerprint = ids.hex("fp_", 10)
    head: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": fingerprint,
    }

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        body = dict(head)
        body["choices"] = choices
        if include_usage:
            body["usage"] = usage
        if obfuscation:
            body["obfuscation"] = ids.alnum("", ids.rng.randint(1, 12))
        if extra_fields:
            body.update(extra_fields)
        return sse_frame(compact_json(body))

    def choice(
        index: int, delta: dict[str, Any], *, logprob_token: str | None = None
    ) -> dict[str, Any]:
        logprobs: dict[str, Any] | None = None
        if logprob_token is not None:
            logprobs = {
                "content": [
                    {
                        "token": logprob_token,
                        "logprob": -0.25,
                        "bytes": list(logprob_token.encode()),
                        "top_logprobs": [],
                    }
                ],
                "refusal": None,
            }
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}

    n = max(1, script.n)
    # Per choice: the list of choice objects (deltas) in order.
    per_choice: list[list[dict[str, Any]]] = []
    for c in range(n):
        items = [choice(c, {"role": "assistant", "content": "", "refusal": None})]
        items.extend(choice(c, {"reasoning_content": r}) for r in script.reasoning_deltas())
        if script.refusal is not None:
            items.extend(
                choice(c, {"refusal": r}, logprob_token=None) for r in script.refusal_deltas()
            )
        else:
            items.extend(
                choice(c, {"content": t}, logprob_token=t if script.logprobs else None)
                for t in script.text_deltas(c)
            )
        if c == 0:
            for i, call in enumerate(script.tool_calls):
                call_id = call.id or tool_id("call_", script.seed, i)
                items.append(
                    choice(
                        c,
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "id": call_id,
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": ""},
                                }
                            ]
                        },
                    )
                )
                for piece in cut_fragments(compact_json(dict(call.arguments)), call.fragments):
                    items.append(
                        choice(c, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                    )
        per_choice.append(items)

    events: list[bytes] = []
    # Interleave choices round-robin, one choice per chunk (as OpenAI does for n > 1).
    longest = max(len(items) for items in per_choice)
    for step in range(longest):
        for items in per_choice:
            if step < len(items):
                events.append(chunk([items[step]]))
    if script.error is not None:
        error = {
            "message": script.error.get("message", "An error occurred"),
            "type": script.error.get("type", "server_error"),
            "param": None,
            "code": script.error.get("code"),
        }
        events.append(sse_frame(compact_json({"error": error})))
        if done_after_error:
            events.append(sse_frame("[DONE]"))
        return events
    finish = default_finish(script, "stop", "tool_calls")
    for c in range(n):
        last = choice(c, {})
        last["finish_reason"] = finish if c == 0 else default_finish(script, "stop", "stop")
        events.append(chunk([last]))
    if include_usage and script.usage is not None:
        prompt, completion = script.usage
        events.append(
            chunk(
                [],
                {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {
                        "cached_tokens": script.cached_tokens[0],
                        "audio_tokens": 0,
                    },
                    "completion_tokens_details": {
                        "reasoning_tokens": script.reasoning_tokens,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
            )
        )
    events.append(sse_frame("[DONE]"))
    return events


# --------------------------------------------------------------------------- OpenAI Responses


def openai_responses_events(script: Script, *, error_event: str = "failed") -> list[bytes]:
    """The SSE events of a streamed Response (``POST /v1/responses``, ``stream: true``).

    Every event is ``event: <type>`` + ``data: {"type": <type>, …,
    "sequence_number": k}`` (see ``openai/types/responses/response_stream_event.py``):
    ``response.created``, ``response.in_progress``, then per output item
    ``response.output_item.added`` … ``response.output_item.done``: reasoning
    (``response.reasoning_summary_part.added``, ``…_text.delta`` / ``.done``),
    the message (``response.content_part.added``, ``response.output_text.delta``,
    ``response.output_text.done`` repeating the whole text,
    ``response.content_part.done``) or refusal (``response.refusal.delta`` /
    ``.done``), function calls (``response.function_call_arguments.delta`` /
    ``.done`` repeating the arguments); finally ``response.completed`` (or
    ``response.incomplete`` when ``finish_reason`` is an incomplete reason such
    as ``max_output_tokens``) with ``usage`` and ``status``.

    Args:
        script: what to stream (``n`` is ignored).
        error_event: how ``script.error`` is sent: ``"failed"`` (a
            ``response.failed`` event whose ``response.error`` has ``code`` and
            ``message``) or ``"error"`` (a bare ``error`` event).

    Returns:
        One ``bytes`` per SSE event.
    """
    ids = Ids(script.seed)
    resp_id = ids.hex("resp_", 48)
    created = 1_700_000_000 + script.seed
    model = script.model or "gpt-4.1-mini-2025-04-14"
    seq = 0
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        nonlocal seq
        body = {"type": kind, **fields, "sequence_number": seq}
        seq += 1
        events.append(sse_frame(compact_json(body), event=kind))

    def response(status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        usage = None
        if status != "in_progress" and script.usage is not None:
            usage = {
                "input_tokens": script.usage[0],
                "input_tokens_details": {"cached_tokens": script.cached_tokens[0]},
                "output_tokens": script.usage[1],
                "output_tokens_details": {"reasoning_tokens": script.reasoning_tokens},
                "total_tokens": sum(script.usage),
            }
        body: dict[str, Any] = {
            "id": resp_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "auto",
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }
        body.update(extra)
        return body

    emit("response.created", response=response("in_progress", []))
    emit("response.in_progress", response=response("in_progress", []))
    output: list[dict[str, Any]] = []

    reasoning = script.reasoning_deltas()
    if reasoning:
        item_id = ids.hex("rs_", 48)
        oi = len(output)
        emit(
            "response.output_item.added",
            output_index=oi,
            item={"id": item_id, "type": "reasoning", "summary": []},
        )
        emit(
            "response.reasoning_summary_part.added",
            item_id=item_id,
            output_index=oi,
            summary_index=0,
            part={"type": "summary_text", "text": ""},
        )
        for r in reasoning:
            emit(
                "response.reasoning_summary_text.delta",
                item_id=item_id,
                output_index=oi,
                summary_index=0,
                delta=r,
            )
        full = "".join(reasoning)
        emit(
            "response.reasoning_summary_text.done",
            item_id=item_id,
            output_index=oi,
            summary_index=0,
            text=full,
        )
        part: dict[str, Any] = {"type": "summary_text", "text": full}
        emit(
            "response.reasoning_summary_part.done",
            item_id=item_id,
            output_index=oi,
            summary_index=0,
            part=part,
        )
        item = {"id": item_id, "type": "reasoning", "summary": [part]}
        emit("response.output_item.done", output_index=oi, item=item)
        output.append(item)

    refusal = script.refusal_deltas()
    text = script.text_deltas()
    if script.refusal is not None or text:
        item_id = ids.hex("msg_", 48)
        oi = len(output)
        emit(
            "response.output_item.added",
            output_index=oi,
            item={
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            },
        )
        if script.refusal is not None:
            emit(
                "response.content_part.added",
                item_id=item_id,
                output_index=oi,
                content_index=0,
                part={"type": "refusal", "refusal": ""},
            )
            for r in refusal:
                emit(
                    "response.refusal.delta",
                    item_id=item_id,
                    output_index=oi,
                    content_index=0,
                    delta=r,
                )
            full = "".join(refusal)
            emit(
                "response.refusal.done",
                item_id=item_id,
                output_index=oi,
                content_index=0,
                refusal=full,
            )
            part = {"type": "refusal", "refusal": full}
        else:
            emit(
                "response.content_part.added",
                item_id=item_id,
                output_index=oi,
                content_index=0,
                part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""},
            )
            for t in text:
                emit(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=oi,
                    content_index=0,
                    delta=t,
                    logprobs=[],
                )
            full = "".join(text)
            emit(
                "response.output_text.done",
                item_id=item_id,
                output_index=oi,
                content_index=0,
                text=full,
                logprobs=[],
            )
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": full}
        emit(
            "response.content_part.done",
            item_id=item_id,
            output_index=oi,
            content_index=0,
            part=part,
        )
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "content": [part],
            "role": "assistant",
        }
        emit("response.output_item.done", output_index=oi, item=item)
        output.append(item)

    if script.error is not None:
        code = script.error.get("code") or script.error.get("type", "server_error")
        message = script.error.get("message", "An error occurred")
        if error_event == "error":
            emit("error", code=code, message=message, param=None)
        else:
            emit(
                "response.failed",
                response=response("failed", output, error={"code": code, "message": message}),
            )
        return events

    for i, call in enumerate(script.tool_calls):
        item_id = ids.hex("fc_", 48)
        call_id = call.id or tool_id("call_", script.seed, i)
        oi = len(output)
        emit(
            "response.output_item.added",
            output_index=oi,
            item={
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call_id,
                "name": call.name,
            },
        )
        args = compact_json(dict(call.arguments))
        for piece in cut_fragments(args, call.fragments):
            emit(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=oi,
                delta=piece,
            )
        emit(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=oi,
            arguments=args,
        )
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "completed",
            "arguments": args,
            "call_id": call_id,
            "name": call.name,
        }
        emit("response.output_item.done", output_index=oi, item=item)
        output.append(item)

    reason = script.finish_reason
    if reason is not None and reason != "completed":
        emit(
            "response.incomplete",
            response=response("incomplete", output, incomplete_details={"reason": reason}),
        )
    else:
        emit("response.completed", response=response("completed", output))
    return events


# --------------------------------------------------------------------------- Anthropic


def anthropic_events(
    script: Script,
    *,
    ping_every: int = 0,
    repeat_input_tokens: bool = True,
) -> list[bytes]:
    """The SSE events of a streamed Message (``POST /v1/messages``, ``stream: true``).

    Every event is ``event: <type>`` + ``data: {"type": <type>, …}`` (see
    ``anthropic/types/raw_message_stream_event.py``): ``message_start`` (the
    message with empty content and the input usage, ``output_tokens`` 1), a
    ``ping`` after it, then one content block per part: ``thinking``
    (``thinking_delta`` … then one ``signature_delta``), ``text``
    (``text_delta``), ``tool_use`` (``content_block_start`` with placeholder
    ``"input":{}``, an empty first ``input_json_delta``, then the fragments),
    each closed by ``content_block_stop``; then ``message_delta`` (stop reason
    and cumulative usage) and ``message_stop``. ``script.error`` becomes
    ``event: error`` + ``{"type":"error","error":{"type":…,"message":…}}``
    after the text, and the stream ends there.

    Args:
        script: what to stream (``n`` and ``refusal`` are ignored).
        ping_every: also send a ``ping`` after every `ping_every` deltas (0: never).
        repeat_input_tokens: ``message_delta.usage`` repeats ``input_tokens``
            (newer API versions do; older ones send only ``output_tokens``).

    Returns:
        One ``bytes`` per SSE event.
    """
    ids = Ids(script.seed)
    msg_id = ids.alnum("msg_01", 22)
    model = script.model or "claude-sonnet-4-5-20250929"
    input_tokens, output_tokens = script.usage if script.usage is not None else (0, 0)
    cache_read, cache_write = script.cached_tokens
    events: list[bytes] = []
    deltas_sent = 0

    def emit(kind: str, body: dict[str, Any]) -> None:
        events.append(sse_frame(compact_json({"type": kind, **body}), event=kind))

    def ping() -> None:
        events.append(sse_frame('{"type": "ping"}', event="ping"))

    def delta(index: int, payload: dict[str, Any]) -> None:
        nonlocal deltas_sent
        emit("content_block_delta", {"index": index, "delta": payload})
        deltas_sent += 1
        if ping_every and deltas_sent % ping_every == 0:
            ping()

    emit(
        "message_start",
        {
            "message": {
                "model": model,
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": cache_write,
                    "cache_read_input_tokens": cache_read,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 0,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "output_tokens": 1,
                    "service_tier": "standard",
                },
            }
        },
    )
    ping()
    block = 0
    reasoning = script.reasoning_deltas()
    if reasoning:
        emit(
            "content_block_start",
            {
                "index": block,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        )
        for r in reasoning:
            delta(block, {"type": "thinking_delta", "thinking": r})
        delta(block, {"type": "signature_delta", "signature": ids.alnum("Eq", 86) + "=="})
        emit("content_block_stop", {"index": block})
        block += 1
    text = script.text_deltas()
    if text:
        emit("content_block_start", {"index": block, "content_block": {"type": "text", "text": ""}})
        for t in text:
            delta(block, {"type": "text_delta", "text": t})
        if script.error is None:
            emit("content_block_stop", {"index": block})
            block += 1
    if script.error is not None:
        error = {
            "type": script.error.get("type", "overloaded_error"),
            "message": script.error.get("message", "Overloaded"),
        }
        emit("error", {"error": error})
        return events
    for i, call in enumerate(script.tool_calls):
        emit(
            "content_block_start",
            {
                "index": block,
                "content_block": {
                    "type": "tool_use",
                    "id": call.id or tool_id("toolu_01", script.seed, i),
                    "name": call.name,
                    "input": {},
                },
            },
        )
        delta(block, {"type": "input_json_delta", "partial_json": ""})
        for piece in cut_fragments(compact_json(dict(call.arguments)), call.fragments):
            delta(block, {"type": "input_json_delta", "partial_json": piece})
        emit("content_block_stop", {"index": block})
        block += 1
    usage: dict[str, Any] = {}
    if repeat_input_tokens:
        usage.update(
            input_tokens=input_tokens,
            cache_creation_input_tokens=cache_write,
            cache_read_input_tokens=cache_read,
        )
    usage["output_tokens"] = output_tokens
    emit(
        "message_delta",
        {
            "delta": {
                "stop_reason": default_finish(script, "end_turn", "tool_use"),
                "stop_sequence": None,
            },
            "usage": usage,
        },
    )
    emit("message_stop", {})
    return events


# --------------------------------------------------------------------------- Gemini


def _google_json(obj: Any) -> str:
    # Google's servers separate with ", " / ": " on one line per event.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": "))


def gemini_events(script: Script) -> list[bytes]:
    """The SSE events of ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``.

    Each event is ``data: <GenerateContentResponse>\\r\\n\\r\\n`` (CRLF framing,
    no ``event:`` lines, no ``[DONE]``): ``{"candidates": [{"content":
    {"parts": [...], "role": "model"}, "index": 0}], "usageMetadata": {...},
    "modelVersion": ..., "responseId": ...}``. Reasoning parts are
    ``{"text": ..., "thought": true}``; function calls arrive whole as
    ``{"functionCall": {"name": ..., "args": {...}}}`` parts (no id);
    ``usageMetadata`` repeats on every chunk with running totals
    (``promptTokenCount``, ``candidatesTokenCount``, ``thoughtsTokenCount``,
    ``totalTokenCount``); the last chunk has ``finishReason``. ``script.error``
    becomes ``data: {"error": {"code": 500, "message": ..., "status": ...}}``.

    Returns:
        One ``bytes`` per SSE event.
    """
    ids = Ids(script.seed)
    response_id = ids.alnum("", 22)
    model = script.model or "gemini-2.5-flash"
    prompt, total_out = script.usage if script.usage is not None else (0, 0)
    reasoning = script.reasoning_deltas()
    thoughts = min(total_out, len(reasoning))
    candidates_total = total_out - thoughts
    parts: list[dict[str, Any]] = [{"text": r, "thought": True} for r in reasoning]
    parts.extend({"text": t} for t in script.text_deltas())
    error_at = len(parts)
    parts.extend(
        {"functionCall": {"name": call.name, "args": dict(call.arguments)}}
        for call in script.tool_calls
    )
    events: list[bytes] = []
    count = max(1, len(parts))
    if not parts:
        parts.append({"text": ""})

    def usage_at(i: int) -> dict[str, Any]:
        # Running totals (thought tokens first, then answer tokens); zero fields
        # are omitted, as proto3 JSON does.
        done = i + 1
        n_thought = len(reasoning)
        used_thoughts = thoughts * min(done, n_thought) // n_thought if n_thought else 0
        others = count - n_thought
        used_cand = candidates_total * max(0, done - n_thought) // others if others > 0 else 0
        if done == count:
            used_thoughts, used_cand = thoughts, candidates_total
        meta: dict[str, Any] = {"promptTokenCount": prompt}
        if script.cached_tokens[0]:
            meta["cachedContentTokenCount"] = script.cached_tokens[0]
        if used_cand:
            meta["candidatesTokenCount"] = used_cand
        meta["totalTokenCount"] = prompt + used_cand + used_thoughts
        meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if used_thoughts:
            meta["thoughtsTokenCount"] = used_thoughts
        return meta

    for i, part in enumerate(parts):
        if script.error is not None and i == error_at:
            break
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
        if i == count - 1 and script.error is None:
            candidate["finishReason"] = default_finish(script, "STOP", "STOP")
        candidate["index"] = 0
        body: dict[str, Any] = {"candidates": [candidate]}
        if script.usage is not None:
            body["usageMetadata"] = usage_at(i)
        body["modelVersion"] = model
        body["responseId"] = response_id
        events.append(sse_frame(_google_json(body), crlf=True))
    if script.error is not None:
        code = script.error.get("code", 500)
        error = {
            "code": code if isinstance(code, int) else 500,
            "message": script.error.get("message", "An internal error has occurred."),
            "status": script.error.get("type", "INTERNAL"),
        }
        events.append(sse_frame(_google_json({"error": error}), crlf=True))
    return events


# --------------------------------------------------------------------------- helpers


def encode(fmt: str, script: Script, **options: Any) -> list[bytes]:
    """Dispatch to the encoder of wire format `fmt` (one of `FORMATS`).

    Raises:
        ConfigError: `fmt` is not a known format (a `ValueError`).
    """
    _check_format(fmt)
    encoders: dict[str, Callable[..., list[bytes]]] = {
        "openai_chat": openai_chat_events,
        "openai_responses": openai_responses_events,
        "anthropic": anthropic_events,
        "gemini": gemini_events,
        "bedrock": bedrock_events,
    }
    return encoders[fmt](script, **options)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown wire format {fmt!r}; known: {list(FORMATS)}")


FINISH_TABLES: dict[str, Mapping[str, str]] = {
    "openai_chat": _decode_openai.CHAT_FINISH,
    "openai_responses": _decode_responses.RESPONSES_FINISH,
    "anthropic": _decode_anthropic.FINISH,
    "gemini": _decode_gemini.FINISH,
    "bedrock": _decode_bedrock.FINISH,
}
"""Each wire format's decoder table of finish reasons (raw -> normalised)."""


def expected_completion(script: Script, fmt: str) -> Completion:
    """The `Completion` that decoding ``encode(fmt, script)`` and aggregating must give.

    Only for scripts without ``error`` (an error yields no Completion).
    Tool call ids are those the encoder made (deterministic from ``seed``).

    Raises:
        ConfigError: `fmt` is not a known format (a `ValueError`).
    """
    _check_format(fmt)
    tool_ids = _tool_call_ids(script, fmt)
    tools = [
        ToolCall(i, tool_ids[i], call.name, dict(call.arguments))
        for i, call in enumerate(script.tool_calls)
    ]
    if fmt == "openai_chat":
        raw = default_finish(script, "stop", "tool_calls")
    elif fmt == "openai_responses":
        raw = script.finish_reason or "completed"
    elif fmt in ("anthropic", "bedrock"):
        raw = default_finish(script, "end_turn", "tool_use")
    else:
        raw = default_finish(script, "STOP", "STOP")
    # what the decoder normalises it to (Gemini and Responses: a tool call makes stop tool_calls)
    called = bool(tools) and fmt in ("gemini", "openai_responses")
    finish = normal_finish(raw, FINISH_TABLES[fmt], called)
    others = normal_finish(default_finish(script, "stop", "stop"), FINISH_TABLES[fmt])
    refusal = "".join(script.refusal_deltas()) if fmt.startswith("openai") else ""
    has_refusal = fmt.startswith("openai") and script.refusal is not None
    n = max(1, script.n) if fmt == "openai_chat" else 1
    reasoning = "".join(script.reasoning_deltas())
    choices = []
    for c in range(n):
        choices.append(
            Choice(
                index=c,
                text="" if has_refusal else "".join(script.text_deltas(c)),
                reasoning=reasoning,
                refusal=refusal,
                tool_calls=tools if c == 0 else [],
                finish_reason=finish if c == 0 else others,
            )
        )
    first = choices[0]
    usage = _expected_usage(script, fmt)
    return Completion(
        text=first.text,
        reasoning=first.reasoning,
        refusal=first.refusal,
        tool_calls=first.tool_calls,
        finish_reason=first.finish_reason,
        usage=usage,
        choices=choices,
    )


def _expected_usage(script: Script, fmt: str) -> Usage | None:
    """The `Usage` the decoder of `fmt` reports for `script` (what that format carries)."""
    if script.usage is None:
        return (
            Usage(0, 0, cache_read_input_tokens=0, cache_write_input_tokens=0)
            if (fmt == "anthropic")
            else None
        )
    read, write = script.cached_tokens
    details: tuple[int | None, int | None, int | None]
    if fmt.startswith("openai"):
        details = (read, None, script.reasoning_tokens)
    elif fmt == "anthropic":
        details = (read, write, None)
    elif fmt == "gemini":
        thoughts = min(script.usage[1], len(script.reasoning_deltas()))
        details = (read or None, None, thoughts or None)
    else:  # bedrock
        details = (read or None, write or None, None)
    return Usage(*script.usage, False, *details)


def _tool_call_ids(script: Script, fmt: str) -> list[str | None]:
    """The tool call ids the encoder of `fmt` uses for `script`."""
    prefix = {
        "openai_chat": "call_",
        "openai_responses": "call_",
        "anthropic": "toolu_01",
        "bedrock": "tooluse_",
    }.get(fmt)
    return [
        None if prefix is None else call.id or tool_id(prefix, script.seed, i)
        for i, call in enumerate(script.tool_calls)
    ]
