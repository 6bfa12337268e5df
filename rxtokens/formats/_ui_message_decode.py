"""Reading the AI SDK UI message stream back into tokens (`UIMessageStreamDecoder`).

Part of `rxtokens.formats.ui_message_stream`, which re-exports everything here;
kept apart only for size.
"""

from __future__ import annotations

import json
from typing import Any

from .._finish import finish_token
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

__all__ = ["PROVIDER", "UIMessageStreamDecoder", "is_done"]

PROVIDER = "ui_message_stream"
"""The ``provider`` of the errors the decoder raises."""


def is_done(item: Any) -> bool:
    """True for the ``[DONE]`` that ends a UI message stream (an `SseEvent`, str or bytes)."""
    if isinstance(item, SseEvent):
        item = item.data
    if isinstance(item, bytes | bytearray):
        return bytes(item).strip() == b"[DONE]"
    return isinstance(item, str) and item.strip() == "[DONE]"


_FROM_SDK_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool-calls": "tool_calls",
    "content-filter": "content_filter",
    "error": "error",
    "other": "other",
    "unknown": "other",
}
"""The AI SDK's ``finishReason`` -> the normalised reason (unknown values: ``other``)."""


USAGE_KEYS = {
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "reasoning_tokens": "reasoningTokens",
    "cache_read_input_tokens": "cachedInputTokens",
    "cache_write_input_tokens": "cacheWriteInputTokens",
}
"""`Usage` fields -> the keys of ``messageMetadata.usage`` (the AI SDK's names where it has one)."""


def _usage_from(metadata: Any) -> Usage | None:
    usage = metadata.get("usage") if isinstance(metadata, dict) else None
    if not isinstance(usage, dict):
        return None
    counts: dict[str, Any] = {}
    for field, key in USAGE_KEYS.items():
        value = usage.get(key)
        counts[field] = value if type(value) is int else None
    return Usage(**counts)


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
            out.append(finish_token(reason, _FROM_SDK_FINISH) if reason else Finish(None))
            return out
        if kind == "message-metadata":
            usage = _usage_from(chunk.get("messageMetadata"))
            return [usage] if usage is not None else []
        if kind == "abort":
            self._finished = True
            return [Finish("other", 0, "abort")]
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
