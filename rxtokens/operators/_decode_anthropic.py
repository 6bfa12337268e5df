"""Decoder of Anthropic's Messages streaming format.

``POST /v1/messages`` with ``stream: true`` sends ``event: <type>`` +
``data: {"type": <type>, ...}`` blocks (see the SDK's
``anthropic/types/raw_message_stream_event.py`` and
``anthropic/lib/streaming/_messages.py``): ``message_start``, then per content
block ``content_block_start`` / ``content_block_delta`` ... /
``content_block_stop``, then ``message_delta`` and ``message_stop``;
``ping`` may come anywhere and ``error`` ends the stream with a failure.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError, StreamDecodeError, StreamError, TruncatedStreamError
from ..sse import SseEvent
from ..tokens import (
    ReasoningDelta,
    StreamToken,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._decode import check_tokens, decode_error, fast_loads, finish_token, shown, strict_loads
from ._decode_openai import complete_tool_call

__all__ = ["AnthropicDecoder"]

_PROVIDER = "anthropic"

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}
"""Anthropic ``stop_reason`` -> the normalised reason (`finish_token`)."""


class _ToolBlock:
    """A ``tool_use`` content block whose input is still arriving."""

    __slots__ = ("id", "initial", "name", "number", "parts")

    def __init__(self, number: int, block: dict[str, Any]) -> None:
        self.number = number
        self.id: str | None = block.get("id")
        self.name: str | None = block.get("name")
        self.initial: Any = block.get("input")
        self.parts: list[str] = []


class AnthropicDecoder:
    """Pure decoder of Anthropic Messages stream events (one per subscription).

    ``message_start`` -> `Usage` (its input and output tokens);
    ``content_block_start`` of a ``text`` / ``thinking`` block -> nothing (or
    its initial text, if any); of a ``tool_use`` block -> `ToolCallDelta` with
    the ``id`` and ``name`` (the ``input: {}`` there is a placeholder);
    ``text_delta`` -> `TextDelta`; ``thinking_delta`` -> `ReasoningDelta`;
    ``input_json_delta`` -> `ToolCallDelta` fragments; ``signature_delta`` and
    ``citations_delta`` are not text: ignored; ``content_block_stop`` of a
    tool block -> `ToolCall` with the parsed input. Tool calls are numbered
    0, 1, ... in order of appearance (not by content block index).
    ``message_delta`` -> `Usage` (its counts are cumulative: they replace
    earlier ones; ``input_tokens`` and the cache counts, ``cache_read_input_tokens``
    and ``cache_creation_input_tokens``, are kept from ``message_start`` when absent)
    and `Finish` with the ``stop_reason``; ``message_stop`` ends the stream;
    ``ping`` is ignored; ``error`` raises `ProviderError` with the error's
    ``type`` (``overloaded_error`` ...). ``close()`` before ``message_stop``
    raises `TruncatedStreamError`.

    Example:
        >>> d = AnthropicDecoder()
        >>> d.feed(SseEvent("content_block_delta", '{"type":"content_block_delta",'
        ...     '"index":0,"delta":{"type":"text_delta","text":"Hi"}}'))
        [TextDelta(text='Hi', index=0)]
    """

    __slots__ = ("_cache", "_done", "_input", "_ntools", "_tools")

    def __init__(self) -> None:
        self._done = False
        self._input: int | None = None
        self._cache: tuple[int | None, int | None] = (None, None)  # cache read, write
        self._ntools = 0
        self._tools: dict[Any, _ToolBlock] = {}  # content block index -> open tool block

    def feed(self, event: SseEvent) -> list[StreamToken]:
        """Decode one event into the tokens it carries."""
        kind = event.event
        if kind == "ping" or self._done:
            return []
        data = event.data
        try:
            obj = fast_loads(data)
        except ValueError:
            if kind == "error":  # an error whose body is not JSON is still an error
                try:
                    obj = strict_loads(_PROVIDER, data)
                except StreamDecodeError:
                    raise ProviderError(
                        f"Anthropic reported an error mid-stream: {shown(data)}",
                        provider=_PROVIDER,
                    ) from None
            else:
                obj = strict_loads(_PROVIDER, data)
        try:
            if kind == "content_block_delta":  # the hot path
                delta = obj["delta"]
                dtype = delta.get("type")
                if dtype == "text_delta" and type(text := delta["text"]) is str:
                    return [TextDelta(text)] if text else []
                return check_tokens(_PROVIDER, data, self._delta(obj.get("index"), dtype, delta))
            if kind == "message":  # no event line: trust the payload's type
                kind = obj.get("type")
            return check_tokens(_PROVIDER, data, self._event(kind, obj))
        except StreamError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise decode_error(_PROVIDER, f"an unexpected event ({exc!r})", data) from None

    def close(self) -> list[StreamToken]:
        """End of stream: raises `TruncatedStreamError` unless ``message_stop`` arrived."""
        if not self._done:
            raise TruncatedStreamError(
                "the Anthropic stream ended before message_stop: the connection closed early "
                "and the answer is incomplete; retry the request",
                provider=_PROVIDER,
            )
        return []

    def _delta(self, index: Any, dtype: Any, delta: dict[str, Any]) -> list[StreamToken]:
        if dtype == "text_delta":
            text = delta["text"]
            return [TextDelta(text)] if text else []
        if dtype == "thinking_delta":
            thinking = delta["thinking"]
            return [ReasoningDelta(thinking)] if thinking else []
        if dtype == "input_json_delta":
            block = self._tools.get(index)
            partial = delta.get("partial_json") or ""
            if block is None or not partial:
                return []
            block.parts.append(partial)
            return [ToolCallDelta(block.number, None, None, partial)]
        return []  # signature_delta, citations_delta, future kinds: not text

    def _event(self, kind: Any, obj: dict[str, Any]) -> list[StreamToken]:
        if kind == "content_block_delta":
            delta = obj["delta"]
            return self._delta(obj.get("index"), delta.get("type"), delta)
        if kind == "content_block_start":
            block = obj["content_block"]
            btype = block.get("type")
            if btype == "tool_use":
                tool = _ToolBlock(self._ntools, block)
                self._ntools += 1
                self._tools[obj.get("index")] = tool
                return [ToolCallDelta(tool.number, tool.id, tool.name, "")]
            if btype == "text" and block.get("text"):
                return [TextDelta(block["text"])]
            if btype == "thinking" and block.get("thinking"):
                return [ReasoningDelta(block["thinking"])]
            return []
        if kind == "content_block_stop":
            open_tool = self._tools.get(obj.get("index"))
            return [] if open_tool is None else [self._finish(obj.get("index"), open_tool)]
        if kind == "message_delta":
            tokens: list[StreamToken] = []
            usage = obj.get("usage")
            if usage:
                tokens.append(self._usage(usage))
            delta = obj.get("delta") or {}
            reason = delta.get("stop_reason")
            if reason is not None:
                tokens.append(finish_token(reason, FINISH))
            return tokens
        if kind == "message_start":
            usage = (obj.get("message") or {}).get("usage")
            return [self._usage(usage)] if usage else []
        if kind == "message_stop":
            self._done = True
            return [self._finish(index, tool) for index, tool in list(self._tools.items())]
        if kind == "error":
            error = obj.get("error") or {}
            raise ProviderError(
                "Anthropic reported an error mid-stream: "
                f"{error.get('message') or 'no message given'}",
                error_type=error.get("type") or "error",
                provider=_PROVIDER,
            )
        return []  # ping without an event line, future event kinds

    def _usage(self, usage: dict[str, Any]) -> Usage:
        """Usage of a ``message_start`` / ``message_delta``: input and cache counts are
        kept from earlier events when a later one leaves them out."""
        given = usage.get("input_tokens")
        if given is not None:
            self._input = given
        read = usage.get("cache_read_input_tokens")
        write = usage.get("cache_creation_input_tokens")
        self._cache = (
            self._cache[0] if read is None else read,
            self._cache[1] if write is None else write,
        )
        return Usage(
            self._input,
            usage.get("output_tokens"),
            cache_read_input_tokens=self._cache[0],
            cache_write_input_tokens=self._cache[1],
        )

    def _finish(self, index: Any, tool: _ToolBlock) -> ToolCall:
        del self._tools[index]
        if not tool.parts and isinstance(tool.initial, dict) and tool.initial:
            return ToolCall(tool.number, tool.id, tool.name or "", tool.initial)
        return complete_tool_call(_PROVIDER, tool.number, tool.id, tool.name, "".join(tool.parts))
