"""The AI SDK UI message stream (protocol ``v1``): tokens to chunks, chunks to tokens.

The Vercel AI SDK's chat front ends (``useChat``; the npm package ``ai``) read
Server-Sent Events whose ``data:`` lines are JSON *UI message chunks*, ended by
``data: [DONE]``, from a response with the header ``x-vercel-ai-ui-message-stream: v1``
(https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol#ui-message-stream-protocol).
The chunk shapes here are those of ``uiMessageChunkSchema`` in ``ai@6``, and the
tests feed our bytes to that package's own client code.

`UIMessageStreamEncoder` writes one assistant message:

==============================  ===============================================================
token                           chunks
==============================  ===============================================================
first token                     ``start`` (``messageId``), ``start-step``
`TextDelta`, `ReasoningDelta`   ``text-start`` / ``reasoning-start`` when a new part begins (ids
                                ``text-0``, ``reasoning-1`` ...: stable, a replay writes the same
                                ids), then ``text-delta`` / ``reasoning-delta``
`ToolCallDelta`                 ``tool-input-start`` (first fragment), ``tool-input-delta``
`ToolCall`                      ``tool-input-available`` (``input``: the arguments)
`ToolResult`                    ``tool-output-available`` (``output``) or ``tool-output-error``
`RefusalDelta`                  ``data-refusal`` (``data: {"text": the refusal so far}``)
`StepBoundary`                  ``finish-step``; the next step begins with ``start-step``
`Usage`, `Finish`               kept for the end
end of stream                   ``finish-step``, ``finish`` (``finishReason``, and
                                ``messageMetadata: {"usage": {...}}`` when usage is known)
an error                        ``error`` (``errorText``); the stream ends there
==============================  ===============================================================

A part ends (``text-end`` ...) when a part of another kind begins, at a step's end
and at the end. Only choice 0 is written (a UI message has one answer); other
token kinds are skipped. Tool calls are *static* tool parts (``tool-<name>``),
as an AI SDK backend that runs its tools itself writes them.

`UIMessageStreamDecoder` reads such chunks back into tokens, so any AI SDK
backend can be a source.

Example:
    >>> from rxtokens.tokens import Finish, TextDelta
    >>> enc = UIMessageStreamEncoder("msg-1")
    >>> [c["type"] for c in enc.encode(TextDelta("Hi"))]
    ['start', 'start-step', 'text-start', 'text-delta']
    >>> enc.encode(Finish("end_turn"))
    []
    >>> enc.close()[-1]
    {'type': 'finish', 'finishReason': 'stop'}
    >>> sse_event({"type": "text-delta", "id": "text-0", "delta": "Hi"})
    'data: {"type":"text-delta","id":"text-0","delta":"Hi"}\\n\\n'
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ProviderError, StreamDecodeError, TruncatedStreamError
from ..sse import SseEvent
from ..tokens import (
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

__all__ = [
    "DONE_EVENT",
    "HEADERS",
    "UIMessageStreamDecoder",
    "UIMessageStreamEncoder",
    "error_text",
    "is_done",
    "sdk_finish_reason",
    "sse_event",
]

HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-vercel-ai-ui-message-stream": "v1",
    "x-accel-buffering": "no",
}
"""The response headers of a UI message stream (as the AI SDK's own server sends them)."""

DONE_EVENT = "data: [DONE]\n\n"
"""The last event of a UI message stream."""

PROVIDER = "ui_message_stream"
"""The ``provider`` of the errors the decoder raises."""


def sse_event(chunk: dict[str, Any]) -> str:
    """One chunk as a ``data:`` event (compact JSON, as ``JSON.stringify`` writes it)."""
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'), default=str)}\n\n"


def is_done(item: Any) -> bool:
    """True for the ``[DONE]`` that ends a UI message stream (an `SseEvent`, str or bytes)."""
    if isinstance(item, SseEvent):
        item = item.data
    if isinstance(item, bytes | bytearray):
        return bytes(item).strip() == b"[DONE]"
    return isinstance(item, str) and item.strip() == "[DONE]"


def error_text(error: BaseException) -> str:
    """The ``errorText`` of an error chunk: the error's message, or its type's name."""
    return str(error) or type(error).__name__


# AI SDK finish reasons: stop, length, content-filter, tool-calls, error, other.
_SDK_FINISH = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "STOP": "stop",
    "completed": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "MAX_TOKENS": "length",
    "incomplete": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "tool_use": "tool-calls",
    "content_filter": "content-filter",
    "refusal": "content-filter",
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "BLOCKLIST": "content-filter",
    "SPII": "content-filter",
    "error": "error",
}


def sdk_finish_reason(reason: str | None) -> str:
    """A provider's finish reason as the AI SDK names it (``tool_use`` -> ``tool-calls``).

    Example:
        >>> sdk_finish_reason("MAX_TOKENS"), sdk_finish_reason("weird")
        ('length', 'other')
    """
    return _SDK_FINISH.get(reason or "stop", "other")


def _usage_metadata(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if usage.input_tokens is not None:
        out["inputTokens"] = usage.input_tokens
    if usage.output_tokens is not None:
        out["outputTokens"] = usage.output_tokens
    if usage.total_tokens is not None:
        out["totalTokens"] = usage.total_tokens
    return {"usage": out}


class UIMessageStreamEncoder:
    """Tokens of one assistant message to UI message chunks (dicts).

    `encode` returns the chunks of one token, `close` those that end the
    message, `error` the error chunk. One encoder per stream.

    Args:
        message_id: the assistant message's id (``start.messageId``); None
            lets the client choose one.
    """

    __slots__ = (
        "_calls",
        "_ids",
        "_message_id",
        "_open",
        "_parts",
        "_pending",
        "_reason",
        "_refusal",
        "_started",
        "_step",
        "_step_open",
        "_usage",
    )

    def __init__(self, message_id: str | None = None) -> None:
        self._message_id = message_id
        self._started = False
        self._step = 0
        self._step_open = False
        self._open: tuple[str, str] | None = None  # (kind, part id) of the open text/reasoning part
        self._parts = 0
        self._calls: dict[int, str] = {}  # tool call index (this step) -> toolCallId
        self._ids: dict[str, str] = {}  # provider call id -> toolCallId
        self._pending: dict[int, list[ToolCallDelta]] = {}  # fragments before the name is known
        self._refusal: str | None = None
        self._usage: Usage | None = None
        self._reason: str | None = None

    # ---------------------------------------------------------------- helpers

    def _begin(self, out: list[dict[str, Any]]) -> None:
        if not self._started:
            self._started = True
            start: dict[str, Any] = {"type": "start"}
            if self._message_id is not None:
                start["messageId"] = self._message_id
            out.append(start)
        if not self._step_open:
            self._step_open = True
            out.append({"type": "start-step"})

    def _close_part(self, out: list[dict[str, Any]]) -> None:
        if self._open is not None:
            kind, part_id = self._open
            out.append({"type": f"{kind}-end", "id": part_id})
            self._open = None

    def _delta(self, kind: str, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._begin(out)
        if self._open is None or self._open[0] != kind:
            self._close_part(out)
            part_id = f"{kind}-{self._parts}"
            self._parts += 1
            self._open = (kind, part_id)
            out.append({"type": f"{kind}-start", "id": part_id})
        out.append({"type": f"{kind}-delta", "id": self._open[1], "delta": text})
        return out

    def _call_id(self, index: int, provider_id: str | None) -> str:
        """The toolCallId of call `index` of this step (assigned on first sight)."""
        call_id = self._calls.get(index)
        if call_id is None:
            if provider_id:
                call_id = provider_id
            else:
                call_id = f"call_{index}" if self._step == 0 else f"call_{self._step}_{index}"
            self._calls[index] = call_id
            if provider_id:
                self._ids[provider_id] = call_id
        return call_id

    def _tool_delta(self, token: ToolCallDelta) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._begin(out)
        self._close_part(out)
        index = token.index
        if index not in self._calls:
            pending = self._pending.setdefault(index, [])
            pending.append(token)
            name = next((t.name for t in pending if t.name), None)
            if name is None:
                return out  # wait for the name
            provider_id = next((t.id for t in pending if t.id), None)
            del self._pending[index]
            call_id = self._call_id(index, provider_id)
            out.append({"type": "tool-input-start", "toolCallId": call_id, "toolName": name})
            text = "".join(t.arguments for t in pending)
        else:
            call_id = self._calls[index]
            text = token.arguments
        if text:
            out.append({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": text})
        return out

    def _tool_call(self, token: ToolCall) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._begin(out)
        self._close_part(out)
        self._pending.pop(token.index, None)
        call_id = self._call_id(token.index, token.id)
        out.append(
            {
                "type": "tool-input-available",
                "toolCallId": call_id,
                "toolName": token.name,
                "input": token.arguments,
            }
        )
        return out

    def _tool_result(self, token: ToolResult) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._begin(out)
        call_id = (self._ids.get(token.call_id) if token.call_id else None) or self._calls.get(
            token.index
        )
        if call_id is None:  # a result without its call: the client needs the tool part first
            call_id = self._call_id(token.index, token.call_id)
            self._close_part(out)
            out.append(
                {
                    "type": "tool-input-available",
                    "toolCallId": call_id,
                    "toolName": token.name,
                    "input": {},
                }
            )
        if token.error is not None:
            out.append(
                {"type": "tool-output-error", "toolCallId": call_id, "errorText": token.error}
            )
        else:
            out.append(
                {"type": "tool-output-available", "toolCallId": call_id, "output": token.result}
            )
        return out

    def _end_step(self, out: list[dict[str, Any]]) -> None:
        self._close_part(out)
        if self._step_open:
            out.append({"type": "finish-step"})
            self._step_open = False

    # ---------------------------------------------------------------- public

    def encode(self, token: Any) -> list[dict[str, Any]]:
        """The chunks for one token (often none or one)."""
        kind = type(token)
        if kind is TextDelta:
            return self._delta("text", token.text) if token.text and token.index == 0 else []
        if kind is ReasoningDelta:
            return self._delta("reasoning", token.text) if token.text and token.index == 0 else []
        if kind is ToolCallDelta:
            return self._tool_delta(token) if token.choice == 0 else []
        if kind is ToolCall:
            return self._tool_call(token) if token.choice == 0 else []
        if kind is ToolResult:
            return self._tool_result(token) if token.choice == 0 else []
        if kind is Usage:
            self._usage = token
        elif kind is Finish:
            if token.index == 0:
                self._reason = token.reason
        elif kind is RefusalDelta:
            if token.text and token.index == 0:
                out: list[dict[str, Any]] = []
                self._begin(out)
                self._refusal = (self._refusal or "") + token.text
                out.append(
                    {"type": "data-refusal", "id": "refusal", "data": {"text": self._refusal}}
                )
                return out
        elif kind is StepBoundary:
            out = []
            self._begin(out)  # an empty step still counts
            self._end_step(out)
            self._step += 1
            self._calls = {}
            self._pending = {}
            return out
        return []

    def close(self) -> list[dict[str, Any]]:
        """The chunks that end the message: the open part's end, ``finish-step``, ``finish``."""
        out: list[dict[str, Any]] = []
        if not self._started:
            self._begin(out)
        self._end_step(out)
        finish: dict[str, Any] = {"type": "finish", "finishReason": sdk_finish_reason(self._reason)}
        if self._usage is not None:
            finish["messageMetadata"] = _usage_metadata(self._usage)
        out.append(finish)
        return out

    feed = encode  # the `operators._processor.Processor` interface

    @staticmethod
    def error(error: BaseException | str) -> dict[str, Any]:
        """The error chunk for `error` (its message; see `error_text`)."""
        text = error if isinstance(error, str) else error_text(error)
        return {"type": "error", "errorText": text}


# --------------------------------------------------------------------------- decoding

_FROM_SDK_FINISH = {"tool-calls": "tool_calls", "content-filter": "content_filter"}


def _usage_from(metadata: Any) -> Usage | None:
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if not isinstance(usage, dict):
        return None
    inputs, outputs = usage.get("inputTokens"), usage.get("outputTokens")
    return Usage(
        inputs if isinstance(inputs, int) else None,
        outputs if isinstance(outputs, int) else None,
    )


class _Call:
    __slots__ = ("index", "name", "started")

    def __init__(self, index: int, name: str) -> None:
        self.index = index
        self.name = name
        self.started = False


class UIMessageStreamDecoder:
    """UI message chunks back to tokens: the reverse of `UIMessageStreamEncoder`.

    `feed` takes one chunk: a dict, its JSON text, or the `SseEvent` carrying
    it (``[DONE]`` included). Text and reasoning deltas become `TextDelta` /
    `ReasoningDelta`; tool input chunks `ToolCallDelta` and `ToolCall`; tool
    outputs `ToolResult`; a new step after a finished one `StepBoundary`;
    ``finish`` a `Usage` (from ``messageMetadata.usage``) and a `Finish`.
    Sources, files and data parts other than ``data-refusal`` are skipped, as
    are chunk types this version does not know.

    Raises (from `feed` / `close`):
        ProviderError: an ``error`` chunk (``error_type="ui_message_stream"``).
        StreamDecodeError: data that is not a JSON object with a ``type``.
        TruncatedStreamError: the stream ended (or sent ``[DONE]``) before ``finish``.
    """

    __slots__ = ("_calls", "_finished", "_refusal", "_step", "_step_done")

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._step = 0  # steps finished so far
        self._step_done = False
        self._finished = False
        self._refusal = ""

    @property
    def finished(self) -> bool:
        """True once the ``finish`` chunk arrived."""
        return self._finished

    def _chunk(self, item: Any) -> dict[str, Any] | None:
        if is_done(item):
            if not self._finished:
                raise TruncatedStreamError(
                    "the UI message stream sent [DONE] without a finish chunk", provider=PROVIDER
                )
            return None
        if isinstance(item, SseEvent):
            item = item.data
        if isinstance(item, bytes | bytearray):
            item = bytes(item).decode("utf-8", "replace")
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                raise StreamDecodeError(
                    f"not a UI message chunk (invalid JSON): {item[:200]!r}", provider=PROVIDER
                ) from None
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise StreamDecodeError(
                f"not a UI message chunk (a JSON object with a 'type'): {item!r:.200}",
                provider=PROVIDER,
            )
        return item

    def _call(self, chunk: dict[str, Any]) -> _Call:
        call_id = str(chunk.get("toolCallId"))
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(len(self._calls), str(chunk.get("toolName") or ""))
        return call

    def feed(self, item: Any) -> list[Any]:
        """The tokens of one chunk."""
        chunk = self._chunk(item)
        if chunk is None or self._finished:
            return []
        kind = chunk["type"]
        if kind == "text-delta":
            return [TextDelta(str(chunk.get("delta", "")))]
        if kind == "reasoning-delta":
            return [ReasoningDelta(str(chunk.get("delta", "")))]
        if kind == "start-step":
            if self._step_done:
                self._step_done = False
                self._calls = {}
                return [StepBoundary(self._step, "tool_calls")]
            return []
        if kind == "finish-step":
            self._step += 1
            self._step_done = True
            return []
        if kind.startswith("tool-"):
            return self._tool(kind, chunk)
        if kind == "data-refusal":
            text = str((chunk.get("data") or {}).get("text", ""))
            new, self._refusal = text[len(self._refusal) :], text
            return [RefusalDelta(new)] if new else []
        if kind == "finish":
            self._finished = True
            out: list[Any] = []
            usage = _usage_from(chunk.get("messageMetadata"))
            if usage is not None:
                out.append(usage)
            reason = chunk.get("finishReason")
            out.append(Finish(_FROM_SDK_FINISH.get(reason, reason) if reason else None))
            return out
        if kind == "message-metadata":
            usage = _usage_from(chunk.get("messageMetadata"))
            return [usage] if usage is not None else []
        if kind == "abort":
            self._finished = True
            return [Finish("abort")]
        if kind == "error":
            raise ProviderError(
                str(chunk.get("errorText") or "the UI message stream sent an error"),
                error_type=PROVIDER,
                provider=PROVIDER,
            )
        return []

    def _tool(self, kind: str, chunk: dict[str, Any]) -> list[Any]:
        call_id = str(chunk.get("toolCallId"))
        if kind == "tool-input-start":
            call = self._call(chunk)
            call.started = True
            return [ToolCallDelta(call.index, call_id, call.name, "")]
        if kind == "tool-input-delta":
            call = self._call(chunk)
            return [ToolCallDelta(call.index, None, None, str(chunk.get("inputTextDelta", "")))]
        if kind == "tool-input-available":
            call = self._call(chunk)
            call.name = str(chunk.get("toolName") or call.name)
            given = chunk.get("input")
            arguments = given if isinstance(given, dict) else {"input": given}
            return [ToolCall(call.index, call_id, call.name, arguments)]
        if kind in ("tool-output-available", "tool-output-error", "tool-input-error"):
            if chunk.get("preliminary"):
                return []
            call = self._call(chunk)
            error = chunk.get("errorText")
            if kind == "tool-output-available":
                return [ToolResult(call_id, call.name, chunk.get("output"), None, call.index, 0.0)]
            return [ToolResult(call_id, call.name, None, str(error), call.index, 0.0)]
        if kind == "tool-output-denied":
            call = self._call(chunk)
            return [ToolResult(call_id, call.name, None, "denied", call.index, 0.0)]
        return []

    def close(self) -> list[Any]:
        """End of the chunks: nothing more, or `TruncatedStreamError` before ``finish``."""
        if not self._finished:
            raise TruncatedStreamError(
                "the UI message stream ended without a finish chunk", provider=PROVIDER
            )
        return []
