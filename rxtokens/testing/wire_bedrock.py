"""Byte-exact Amazon Bedrock ``ConverseStream`` responses, built from a `Script`.

The body of ``POST /model/{modelId}/converse-stream`` is an AWS event stream
(``application/vnd.amazon.eventstream``, see `rxtokens.eventstream`): one message per
event with the string headers ``:event-type``, ``:content-type: application/json`` and
``:message-type: event``, and the event's members as compact JSON. As Bedrock does,
every payload carries a ``"p"`` member of padding (a prefix of ``a-zA-Z0-9`` of varying
length, so the size of a message does not reveal the size of its text); clients ignore
it. Failures are ``:message-type: exception`` messages named by ``:exception-type``
with a ``{"message": ...}`` payload. Shapes follow botocore's ``bedrock-runtime``
service model (``ConverseStreamOutput``), which is also what judges these bytes in the
tests (boto3's ``converse_stream``).

Example:
    >>> from rxtokens.eventstream import EventStreamParser
    >>> from rxtokens.testing.script import Script
    >>> wire = b"".join(bedrock_events(Script(text="Hi", usage=(3, 1))))
    >>> [m.event_type for m in EventStreamParser().feed(wire)]
    ['messageStart', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata']
"""

from __future__ import annotations

import random
import string
from typing import Any

from ..eventstream import encode_message
from .script import Script, compact_json, cut_fragments, tool_id

__all__ = ["EXCEPTION_TYPES", "bedrock_event", "bedrock_events", "bedrock_exception"]

EXCEPTION_TYPES = (
    "throttlingException",
    "internalServerException",
    "serviceUnavailableException",
    "validationException",
    "modelStreamErrorException",
)
"""The exceptions ``ConverseStream`` can send mid-stream."""

_PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits


def bedrock_event(kind: str, body: dict[str, Any], padding: str = "") -> bytes:
    """One ``:message-type: event`` message with `body` (plus ``"p": padding`` if given).

    Example:
        >>> bedrock_event("messageStop", {"stopReason": "end_turn"})[-29:-4]
        b'{"stopReason":"end_turn"}'
    """
    if padding:
        body = {**body, "p": padding}
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, compact_json(body).encode())


def bedrock_exception(kind: str, message: str, **extra: Any) -> bytes:
    """One ``:message-type: exception`` message of exception type `kind`."""
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, compact_json({"message": message, **extra}).encode())


def bedrock_events(script: Script, *, padding: bool = True) -> list[bytes]:
    """The messages of a ``ConverseStream`` response, one ``bytes`` per message.

    ``messageStart``; the reasoning block (``reasoningContent`` text deltas, then one with
    its ``signature``); the text block (``text`` deltas); per tool call a
    ``contentBlockStart`` (``toolUseId``, ``name``), its ``toolUse.input`` fragments and
    ``contentBlockStop``; ``messageStop`` (``end_turn`` / ``tool_use`` unless
    ``script.finish_reason`` says otherwise); ``metadata`` with ``usage`` (``inputTokens``,
    ``outputTokens``, ``totalTokens``, and ``cacheReadInputTokens`` / ``cacheWriteInputTokens``
    when ``script.cached_tokens`` are not zero; none when ``script.usage`` is None) and
    ``metrics.latencyMs``. ``script.error`` (``{"type": ..., "message": ...}``, type
    ``modelStreamErrorException`` by default) is sent after the text instead of the end.

    Args:
        script: what to stream (``n``, ``refusal`` and ``logprobs`` are ignored).
        padding: add Bedrock's ``"p"`` padding member to every payload.

    Returns:
        One ``bytes`` per event stream message.
    """
    rng = random.Random(f"bedrock{script.seed}")
    events: list[bytes] = []

    def emit(kind: str, body: dict[str, Any]) -> None:
        pad = _PADDING[: rng.randint(1, len(_PADDING))] if padding else ""
        events.append(bedrock_event(kind, body, pad))

    def delta(index: int, content: dict[str, Any]) -> None:
        emit("contentBlockDelta", {"contentBlockIndex": index, "delta": content})

    emit("messageStart", {"role": "assistant"})
    block = 0
    reasoning = script.reasoning_deltas()
    if reasoning:
        for piece in reasoning:
            delta(block, {"reasoningContent": {"text": piece}})
        signature = "".join(rng.choice(_PADDING) for _ in range(88))
        delta(block, {"reasoningContent": {"signature": signature}})
        emit("contentBlockStop", {"contentBlockIndex": block})
        block += 1
    text = script.text_deltas()
    for piece in text:
        delta(block, {"text": piece})
    if script.error is not None:
        kind = script.error.get("type", "modelStreamErrorException")
        events.append(bedrock_exception(kind, script.error.get("message", "Model stream error")))
        return events
    if text:
        emit("contentBlockStop", {"contentBlockIndex": block})
        block += 1
    for i, call in enumerate(script.tool_calls):
        use_id = call.id or tool_id("tooluse_", script.seed, i)
        start = {"toolUse": {"toolUseId": use_id, "name": call.name}}
        emit("contentBlockStart", {"contentBlockIndex": block, "start": start})
        for piece in cut_fragments(compact_json(dict(call.arguments)), call.fragments):
            delta(block, {"toolUse": {"input": piece}})
        emit("contentBlockStop", {"contentBlockIndex": block})
        block += 1
    stop = script.finish_reason or ("tool_use" if script.tool_calls else "end_turn")
    emit("messageStop", {"stopReason": stop})
    metadata: dict[str, Any] = {}
    if script.usage is not None:
        used, made = script.usage
        usage = {"inputTokens": used, "outputTokens": made, "totalTokens": used + made}
        read, write = script.cached_tokens
        if read or write:
            usage.update(cacheReadInputTokens=read, cacheWriteInputTokens=write)
        metadata["usage"] = usage
    metadata["metrics"] = {"latencyMs": 100 + rng.randrange(900)}
    emit("metadata", metadata)
    return events
