"""Decoder of OpenAI's Responses API stream.

Responses (``POST /v1/responses`` with ``stream: true``): every event is a
typed object (``{"type": "response.output_text.delta", ...}``), see
``openai/types/responses/response_stream_event.py``; the stream ends with
``response.completed`` / ``response.incomplete`` (success) or
``response.failed`` / ``error`` (failure).
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError, StreamError, TruncatedStreamError
from ..tokens import (
    ReasoningDelta,
    RefusalDelta,
    StreamToken,
    TextDelta,
    ToolCallDelta,
)
from ._decode import (
    EventDecoder,
    check_tokens,
    decode_error,
    finish_token,
    loads,
)
from ._decode_openai import complete_tool_call, openai_usage
from ._kinds import new_token

__all__ = ["RESPONSES_FINISH", "OpenAIResponsesDecoder"]

_PROVIDER = "openai"

RESPONSES_FINISH = {
    "completed": "stop",
    "incomplete": "length",
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
"""Responses status / ``incomplete_details.reason`` -> the normalised reason; a
completed response that called a tool is ``tool_calls``."""


_TEXT = 0
_REFUSAL = 1
_REASONING = 2
_DELTAS: dict[str, tuple[Any, int, str]] = {
    "response.output_text.delta": (TextDelta, _TEXT, "content_index"),
    "response.refusal.delta": (RefusalDelta, _REFUSAL, "content_index"),
    "response.reasoning_summary_text.delta": (ReasoningDelta, _REASONING, "summary_index"),
    "response.reasoning_text.delta": (ReasoningDelta, _REASONING, "content_index"),
}
"""Text delta events: (token kind, kind of text seen, the key of the part index)."""


class OpenAIResponsesDecoder(EventDecoder):
    """Pure decoder of Responses API stream events (one per subscription).

    ``response.output_text.delta`` -> `TextDelta`; ``response.refusal.delta``
    -> `RefusalDelta`; ``response.reasoning_summary_text.delta`` and
    ``response.reasoning_text.delta`` -> `ReasoningDelta`. The ``.done``
    events repeat the whole text: only text not already streamed is emitted
    (so nothing is appended twice, and a server that sends only ``.done``
    still loses nothing). ``response.output_item.added`` of a function call ->
    `ToolCallDelta` with its ``call_id`` and ``name``; its
    ``response.function_call_arguments.delta`` s -> `ToolCallDelta` fragments;
    ``response.function_call_arguments.done`` (or the item's
    ``response.output_item.done``) -> `ToolCall`. Tool calls are numbered
    0, 1, ... in order of appearance. ``response.completed`` /
    ``response.incomplete`` -> `Usage` and `Finish` (raw: the status, or the
    incomplete reason such as ``max_output_tokens``; normalised by `RESPONSES_FINISH`,
    ``tool_calls`` when a function was called) and end the stream;
    ``response.failed`` and ``error`` raise `ProviderError`. Other events
    (``response.created``, ``content_part`` ...) carry nothing to emit.

    Example:
        >>> from rxtokens import SseEvent
        >>> d = OpenAIResponsesDecoder()
        >>> d.feed(SseEvent("response.output_text.delta", '{"type":"response.output_text.delta",'
        ...     '"output_index":0,"content_index":0,"delta":"Hi"}'))
        [TextDelta(text='Hi', index=0)]
    """

    __slots__ = ("_calls", "_done", "_seen")

    def __init__(self) -> None:
        self._done = False
        self._seen: dict[tuple[int, Any, Any], int] = {}  # (kind, item, part) -> chars streamed
        self._calls: dict[Any, list[Any]] = {}  # output_index -> [number, id, name, parts, done]

    def decode(self, kind: str, data: str) -> list[StreamToken]:
        """Decode one event's data into the tokens it carries."""
        if self._done or not data:
            return []
        obj = loads(_PROVIDER, data)
        try:
            kind = obj.get("type") or kind
            # The per-token events inline, where the types are proven here (no check_tokens):
            delta = _DELTAS.get(kind)
            if delta is not None and type(text := obj["delta"]) is str:
                if self._delta(delta[1], obj, delta[2]):
                    return [new_token(delta[0], (text, 0))]
                return []
            if kind == "response.function_call_arguments.delta" and type(obj.get("delta")) is str:
                return self._event(kind, obj)  # ToolCallDelta(int, None, None, str)
            return check_tokens(_PROVIDER, data, self._event(kind, obj))
        except StreamError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise decode_error(_PROVIDER, f"an unexpected event ({exc!r})", data) from None

    def close(self) -> list[StreamToken]:
        """End of stream: raises `TruncatedStreamError` unless the response ended."""
        if not self._done:
            raise TruncatedStreamError(
                "the OpenAI Responses stream ended before response.completed: the connection "
                "closed early and the answer is incomplete; retry the request",
                provider=_PROVIDER,
            )
        return []

    def _delta(self, kind: int, obj: dict[str, Any], part_key: str) -> int:
        key = (kind, obj.get("output_index"), obj.get(part_key))
        text: str = obj["delta"]
        self._seen[key] = self._seen.get(key, 0) + len(text)
        return len(text)

    def _rest(self, kind: int, obj: dict[str, Any], part_key: str, field: str) -> str:
        key = (kind, obj.get("output_index"), obj.get(part_key))
        full: str = obj.get(field) or ""
        seen = self._seen.get(key, 0)
        self._seen[key] = max(seen, len(full))
        return full[seen:]

    def _event(self, kind: str, obj: dict[str, Any]) -> list[StreamToken]:
        if kind == "response.output_text.delta":
            if self._delta(_TEXT, obj, "content_index"):
                return [TextDelta(obj["delta"])]
            return []
        if kind == "response.output_text.done":
            rest = self._rest(_TEXT, obj, "content_index", "text")
            return [TextDelta(rest)] if rest else []
        if kind == "response.function_call_arguments.delta":
            call = self._calls.get(obj.get("output_index"))
            delta = obj.get("delta") or ""
            if call is None or call[4] or not delta:
                return []
            call[3].append(delta)
            return [ToolCallDelta(call[0], None, None, delta)]
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            part = "summary_index" if "summary" in kind else "content_index"
            if self._delta(_REASONING, obj, part):
                return [ReasoningDelta(obj["delta"])]
            return []
        if kind in ("response.reasoning_summary_text.done", "response.reasoning_text.done"):
            part = "summary_index" if "summary" in kind else "content_index"
            rest = self._rest(_REASONING, obj, part, "text")
            return [ReasoningDelta(rest)] if rest else []
        if kind == "response.refusal.delta":
            if self._delta(_REFUSAL, obj, "content_index"):
                return [RefusalDelta(obj["delta"])]
            return []
        if kind == "response.refusal.done":
            rest = self._rest(_REFUSAL, obj, "content_index", "refusal")
            return [RefusalDelta(rest)] if rest else []
        if kind == "response.output_item.added":
            item = obj.get("item") or {}
            if item.get("type") != "function_call":
                return []
            number = len(self._calls)
            call_id = item.get("call_id") or item.get("id")
            name = item.get("name")
            arguments = item.get("arguments") or ""
            self._calls[obj.get("output_index")] = [number, call_id, name, [arguments], False]
            return [ToolCallDelta(number, call_id, name, arguments)]
        if kind == "response.function_call_arguments.done":
            return self._finish_call(obj.get("output_index"), obj.get("arguments"))
        if kind == "response.output_item.done":
            item = obj.get("item") or {}
            if item.get("type") != "function_call":
                return []
            return self._finish_call(obj.get("output_index"), item.get("arguments"))
        if kind in ("response.completed", "response.incomplete"):
            self._done = True
            response = obj.get("response") or {}
            tokens: list[StreamToken] = []
            for output_index in list(self._calls):
                tokens.extend(self._finish_call(output_index, None))
            usage = response.get("usage")
            if usage:
                tokens.append(openai_usage(usage, responses=True))
            reason = response.get("status") or kind.rpartition(".")[2]
            details = response.get("incomplete_details")
            if kind == "response.incomplete" and details and details.get("reason"):
                reason = details["reason"]
            tokens.append(finish_token(reason, RESPONSES_FINISH, 0, bool(self._calls)))
            return tokens
        if kind == "response.failed":
            response = obj.get("response") or {}
            error = response.get("error") or {}
            raise ProviderError(
                "OpenAI reported that the response failed: "
                f"{error.get('message') or 'no message given'}",
                error_type=error.get("code") or error.get("type") or "response.failed",
                provider=_PROVIDER,
            )
        if kind == "error":
            raise ProviderError(
                f"OpenAI reported an error mid-stream: {obj.get('message') or 'no message given'}",
                error_type=obj.get("code") or obj.get("type"),
                provider=_PROVIDER,
            )
        return []

    def _finish_call(self, output_index: Any, arguments: str | None) -> list[StreamToken]:
        call = self._calls.get(output_index)
        if call is None or call[4]:
            return []
        call[4] = True
        text = arguments if arguments is not None else "".join(call[3])
        return [complete_tool_call(_PROVIDER, call[0], call[1], call[2], text)]
