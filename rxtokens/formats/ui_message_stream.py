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
    >>> enc.encode(Finish("stop", raw="end_turn"))
    []
    >>> enc.close()[-1]
    {'type': 'finish', 'finishReason': 'stop'}
    >>> sse_event({"type": "text-delta", "id": "text-0", "delta": "Hi"})
    'data: {"type":"text-delta","id":"text-0","delta":"Hi"}\\n\\n'
"""

from __future__ import annotations

import json
from typing import Any

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
from ._ui_message_decode import USAGE_KEYS, UIMessageStreamDecoder, is_done

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


def sse_event(chunk: dict[str, Any]) -> str:
    """One chunk as a ``data:`` event (compact JSON, as ``JSON.stringify`` writes it)."""
    return f"data: {json.dumps(chunk, ensure_ascii=False, separators=(',', ':'), default=str)}\n\n"


def error_text(error: BaseException) -> str:
    """The ``errorText`` of an error chunk: the error's message, or its type's name."""
    return str(error) or type(error).__name__


_SDK_NAMES = {"tool_calls": "tool-calls", "content_filter": "content-filter"}


def sdk_finish_reason(reason: str | None) -> str:
    """A normalised finish reason (`Finish.reason`) as the AI SDK names it.

    ``tool_calls`` -> ``tool-calls``, ``content_filter`` -> ``content-filter``;
    ``stop``, ``length``, ``error`` and ``other`` are the SDK's own; None is ``stop``
    and anything else ``other``.

    Example:
        >>> sdk_finish_reason("length"), sdk_finish_reason("tool_calls")
        ('length', 'tool-calls')
    """
    if reason is None:
        return "stop"
    if reason in ("stop", "length", "error", "other"):
        return reason
    return _SDK_NAMES.get(reason, "other")


def _usage_metadata(usage: Usage) -> dict[str, Any]:
    """``{"usage": {...}}`` with the counts that are known (and ``totalTokens``)."""
    out: dict[str, Any] = {
        key: getattr(usage, field)
        for field, key in USAGE_KEYS.items()
        if getattr(usage, field) is not None
    }
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
