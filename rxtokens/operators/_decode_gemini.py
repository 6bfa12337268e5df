"""Decoder of Gemini's ``streamGenerateContent?alt=sse`` format.

Every event is ``data: <GenerateContentResponse JSON>`` (CRLF framing, no
``event:`` lines, no ``[DONE]``): ``{"candidates": [{"content": {"parts":
[...], "role": "model"}, "finishReason": ..., "index": 0}], "usageMetadata":
{...}, "modelVersion": ..., "responseId": ...}``. See the Gemini API
reference of ``models.streamGenerateContent`` and ``GenerateContentResponse``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError, StreamError, TruncatedStreamError
from ..sse import SseEvent
from ..tokens import ReasoningDelta, StreamToken, TextDelta, ToolCall, Usage
from ._decode import check_tokens, decode_error, fast_loads, finish_token, strict_loads

__all__ = ["GeminiDecoder"]

_PROVIDER = "gemini"

_FILTERED = "content_filter"
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": _FILTERED,
    "RECITATION": _FILTERED,
    "PROHIBITED_CONTENT": _FILTERED,
    "BLOCKLIST": _FILTERED,
    "SPII": _FILTERED,
    "IMAGE_SAFETY": _FILTERED,
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
}
"""Gemini ``finishReason`` -> the normalised reason (`finish_token`); ``STOP`` with a
``functionCall`` part is ``tool_calls``. Others (``LANGUAGE``, ``OTHER``) are ``other``."""

BLOCKED = {
    reason: _FILTERED
    for reason in ("SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY")
}
"""``promptFeedback.blockReason`` -> the normalised reason: the prompt was refused."""


class GeminiDecoder:
    """Pure decoder of Gemini stream chunks (one per subscription).

    Text parts -> `TextDelta` (of the candidate's ``index``); parts with
    ``"thought": true`` -> `ReasoningDelta`; ``functionCall`` parts arrive
    whole -> `ToolCall` at once (numbered 0, 1, ... per candidate; ``id`` is
    the part's ``id`` when the server sends one, else None: none is
    invented); ``usageMetadata`` repeats running totals on every chunk ->
    `Usage` (``promptTokenCount``, ``candidatesTokenCount`` +
    ``thoughtsTokenCount``), emitted only when it changed (the last one
    wins); ``finishReason`` -> `Finish`. The stream's terminal event is the
    chunk that finishes every candidate seen (or a ``promptFeedback`` with a
    ``blockReason``, which finishes with that reason): the end of the body
    after it is success, before it `TruncatedStreamError`. An
    ``{"error": {...}}`` chunk raises `ProviderError` with the error's
    ``status`` (``UNAVAILABLE`` ...).

    Example:
        >>> d = GeminiDecoder()
        >>> d.feed(SseEvent(data='{"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}'))
        [TextDelta(text='Hi', index=0)]
    """

    __slots__ = ("_calls", "_done", "_open", "_usage")

    def __init__(self) -> None:
        self._done = False
        self._open: set[int] = set()  # candidates seen that have not finished
        self._calls: dict[int, int] = {}  # candidate -> function calls so far
        self._usage: Usage | None = None

    def feed(self, event: SseEvent) -> list[StreamToken]:
        """Decode one event into the tokens it carries."""
        data = event.data
        if not data:
            return []
        try:
            chunk = fast_loads(data)
        except ValueError:
            chunk = strict_loads(_PROVIDER, data)
        try:
            return check_tokens(_PROVIDER, data, self._chunk(chunk))
        except StreamError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise decode_error(_PROVIDER, f"an unexpected chunk ({exc!r})", data) from None

    def close(self) -> list[StreamToken]:
        """End of stream: raises `TruncatedStreamError` unless every candidate finished."""
        if not self._done:
            raise TruncatedStreamError(
                "the Gemini stream ended before a chunk with finishReason: the connection "
                "closed early and the answer is incomplete; retry the request",
                provider=_PROVIDER,
            )
        return []

    def _chunk(self, chunk: dict[str, Any]) -> list[StreamToken]:
        error = chunk.get("error")
        if error:
            if not isinstance(error, dict):
                error = {"message": str(error)}
            message = error.get("message") or "no message given"
            raise ProviderError(
                f"Gemini reported an error mid-stream: {message}",
                error_type=error.get("status") or str(error.get("code") or "error"),
                provider=_PROVIDER,
            )
        tokens: list[StreamToken] = []
        finishes: list[StreamToken] = []
        for candidate in chunk.get("candidates") or ():
            index = candidate.get("index") or 0
            content = candidate.get("content")
            parts = content.get("parts") if content else None
            if parts:
                for part in parts:
                    text = part.get("text")
                    if text:
                        if part.get("thought"):
                            tokens.append(ReasoningDelta(text, index))
                        else:
                            tokens.append(TextDelta(text, index))
                        continue
                    call = part.get("functionCall")
                    if call:
                        number = self._calls.get(index, 0)
                        self._calls[index] = number + 1
                        args = call.get("args") or {}
                        tokens.append(
                            ToolCall(number, call.get("id"), call.get("name") or "", args, index)
                        )
            reason = candidate.get("finishReason")
            if reason:
                self._open.discard(index)
                finishes.append(finish_token(reason, FINISH, index, index in self._calls))
                if not self._open:
                    self._done = True
            elif not self._done:
                self._open.add(index)
        feedback = chunk.get("promptFeedback")
        if feedback and feedback.get("blockReason"):
            finishes.append(finish_token(feedback["blockReason"], BLOCKED))
            self._done = True
            self._open.clear()
        meta = chunk.get("usageMetadata")
        if meta:
            prompt = meta.get("promptTokenCount")
            output = meta.get("candidatesTokenCount")
            thoughts = meta.get("thoughtsTokenCount")
            if thoughts:
                output = (output or 0) + thoughts
            elif output is None and prompt is not None and finishes:
                output = 0  # proto3 JSON omits zero counts
            usage = Usage(
                prompt,
                output,
                cache_read_input_tokens=meta.get("cachedContentTokenCount"),
                reasoning_tokens=thoughts,
            )
            if usage != self._usage:
                self._usage = usage
                tokens.append(usage)
        tokens.extend(finishes)
        return tokens
