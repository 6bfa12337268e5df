"""Decoder of Amazon Bedrock's ``ConverseStream`` events.

``POST /model/{modelId}/converse-stream`` answers with an AWS event stream
(`rxtokens.eventstream`): one message per event, ``:message-type: event``,
``:event-type`` naming the member of the API's ``ConverseStreamOutput`` union
and a JSON payload with that member's fields (the botocore service model
``bedrock-runtime``; API reference:
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html).
In order: ``messageStart``; per content block an optional ``contentBlockStart``
(tool use only), ``contentBlockDelta`` s and ``contentBlockStop``;
``messageStop`` (the stop reason); ``metadata`` (usage, metrics), the last
event. Failures arrive as ``:message-type: exception`` messages whose
``:exception-type`` names the error, or as ``:message-type: error`` with
``:error-code`` / ``:error-message`` headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    ProviderError,
    ProviderHTTPError,
    RateLimitError,
    StreamError,
    TruncatedStreamError,
)
from ..eventstream import EventStreamMessage, HeaderValue
from ..tokens import ReasoningDelta, StreamToken, TextDelta, ToolCallDelta, Usage
from ._decode import decode_error, fast_loads, finish_token, strict_loads
from ._decode_anthropic import FINISH as ANTHROPIC_FINISH
from ._decode_openai import complete_tool_call

__all__ = ["EXCEPTION_STATUS", "BedrockDecoder"]

_PROVIDER = "bedrock"

FINISH = {
    **ANTHROPIC_FINISH,  # Converse names the common reasons as Anthropic does (end_turn ...)
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
"""Bedrock Converse ``stopReason`` -> the normalised reason (`finish_token`)."""

EXCEPTION_STATUS = {
    "throttlingException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
    "validationException": 400,
    "modelStreamErrorException": 424,
}
"""The HTTP status of each exception of ``ConverseStream`` (its ``httpStatusCode`` in the
service model: what the same failure answers before the stream starts)."""


class _ToolBlock:
    """A tool-use content block whose input is still arriving."""

    __slots__ = ("id", "name", "number", "parts")

    def __init__(self, number: int, start: Mapping[str, Any]) -> None:
        self.number = number
        self.id: str | None = start.get("toolUseId")
        self.name: str | None = start.get("name")
        self.parts: list[str] = []


class BedrockDecoder:
    """Pure decoder of ``ConverseStream`` event stream messages (one per subscription).

    ``messageStart`` -> nothing; ``contentBlockStart`` with ``toolUse`` ->
    `ToolCallDelta` with its ``toolUseId`` and ``name``; ``contentBlockDelta``:
    ``text`` -> `TextDelta`, ``toolUse.input`` -> `ToolCallDelta` fragments,
    ``reasoningContent.text`` -> `ReasoningDelta` (its ``signature`` and
    ``redactedContent`` are not text: ignored, as ``signature_delta`` is for
    Anthropic); ``contentBlockStop`` of a tool block -> `ToolCall` with the
    parsed input. Tool calls are numbered 0, 1, ... in order of appearance.
    ``messageStop`` -> `Finish` (normalised by `FINISH`) with the raw ``stopReason`` (``end_turn``,
    ``tool_use``, ``max_tokens``, ``stop_sequence``, ``guardrail_intervened``,
    ``content_filtered``) and a `ToolCall` for any tool block still open;
    ``metadata`` -> `Usage` (``inputTokens``, ``outputTokens``, ``cacheReadInputTokens``,
    ``cacheWriteInputTokens``) and ends the
    stream (``metrics.latencyMs`` and ``trace`` are not tokens: ignored).
    Later messages and unknown event types are ignored.

    Exceptions (see `EXCEPTION_STATUS`): ``throttlingException`` ->
    `RateLimitError` (429); ``internalServerException`` (500) and
    ``serviceUnavailableException`` (503) -> `ProviderHTTPError`, so
    `is_retryable` treats them as the same failures answered as HTTP statuses;
    ``validationException`` and ``modelStreamErrorException`` (not transient)
    and any other exception or ``error`` message -> `ProviderError` with the
    exception type as ``error_type``. The message's headers and payload are
    kept on `ProviderHTTPError` (``headers``, ``body``). ``close()`` before
    ``messageStop`` and ``metadata`` raises `TruncatedStreamError`.

    Example:
        >>> from types import MappingProxyType
        >>> d = BedrockDecoder()
        >>> head = MappingProxyType({":message-type": "event", ":event-type": "contentBlockDelta"})
        >>> d.feed(EventStreamMessage(head, b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}'))
        [TextDelta(text='Hi', index=0)]
    """

    __slots__ = ("_done", "_ntools", "_stopped", "_tools")

    def __init__(self) -> None:
        self._stopped = False  # messageStop arrived
        self._done = False  # metadata arrived: the stream is over
        self._ntools = 0
        self._tools: dict[Any, _ToolBlock] = {}  # contentBlockIndex -> open tool block

    def feed(self, message: EventStreamMessage) -> list[StreamToken]:
        """Decode one message into the tokens it carries."""
        if self._done:
            return []
        headers = message.headers
        if headers.get(":message-type") != "event":
            raise _exception(headers, message.payload)
        kind = headers.get(":event-type")
        payload = message.payload
        try:
            obj = fast_loads(payload)
        except ValueError:
            obj = strict_loads(_PROVIDER, payload.decode("utf-8", "replace"))
        try:
            if kind == "contentBlockDelta":  # the hot path
                delta = obj["delta"]
                text = delta.get("text")
                if text is not None:
                    return [TextDelta(text)] if text else []
                return self._delta(obj.get("contentBlockIndex"), delta)
            return self._event(kind, obj)
        except StreamError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise decode_error(
                _PROVIDER,
                f"an unexpected {kind!r} event ({exc!r})",
                payload.decode("utf-8", "replace"),
            ) from None

    def close(self) -> list[StreamToken]:
        """End of stream: raises `TruncatedStreamError` unless ``metadata`` arrived."""
        if not self._done:
            missing = "metadata" if self._stopped else "messageStop"
            raise TruncatedStreamError(
                f"the Bedrock stream ended before {missing}: the connection closed early "
                "and the answer is incomplete; retry the request",
                provider=_PROVIDER,
            )
        return []

    def _delta(self, index: Any, delta: dict[str, Any]) -> list[StreamToken]:
        tool = delta.get("toolUse")
        if tool is not None:
            block = self._tools.get(index)
            fragment = tool.get("input") or ""
            if block is None or not fragment:
                return []
            block.parts.append(fragment)
            return [ToolCallDelta(block.number, None, None, fragment)]
        reasoning = delta.get("reasoningContent")
        if reasoning is not None:
            text = reasoning.get("text")
            return [ReasoningDelta(text)] if text else []
        return []  # citations, future kinds: not text

    def _event(self, kind: HeaderValue | None, obj: dict[str, Any]) -> list[StreamToken]:
        if kind == "contentBlockStart":
            tool = (obj.get("start") or {}).get("toolUse")
            if tool is None:
                return []
            block = _ToolBlock(self._ntools, tool)
            self._ntools += 1
            self._tools[obj.get("contentBlockIndex")] = block
            return [ToolCallDelta(block.number, block.id, block.name, "")]
        if kind == "contentBlockStop":
            index = obj.get("contentBlockIndex")
            return [self._finish(index)] if index in self._tools else []
        if kind == "messageStop":
            self._stopped = True
            tokens: list[StreamToken] = [self._finish(index) for index in list(self._tools)]
            tokens.append(finish_token(obj.get("stopReason"), FINISH))
            return tokens
        if kind == "metadata":
            self._done = True
            usage = obj.get("usage")
            if not usage:
                return []
            return [
                Usage(
                    usage.get("inputTokens"),
                    usage.get("outputTokens"),
                    cache_read_input_tokens=usage.get("cacheReadInputTokens"),
                    cache_write_input_tokens=usage.get("cacheWriteInputTokens"),
                )
            ]
        if kind == "contentBlockDelta":
            return self._delta(obj.get("contentBlockIndex"), obj["delta"])
        return []  # messageStart, future event types

    def _finish(self, index: Any) -> StreamToken:
        tool = self._tools.pop(index)
        return complete_tool_call(_PROVIDER, tool.number, tool.id, tool.name, "".join(tool.parts))


def _exception(headers: Mapping[str, HeaderValue], payload: bytes) -> StreamError:
    """The typed error of an ``exception`` or ``error`` message (or of an unknown type)."""
    body = payload.decode("utf-8", "replace")
    mtype = headers.get(":message-type")
    if mtype == "exception":
        kind = str(headers.get(":exception-type") or "exception")
        try:
            details = fast_loads(payload)
        except ValueError:
            details = None
        message = details.get("message") if isinstance(details, dict) else None
        text = f"Bedrock reported {kind} mid-stream: {message or body or 'no message given'}"
        if isinstance(details, dict) and details.get("originalMessage"):
            text += f" (the model said: {details['originalMessage']})"
        status = EXCEPTION_STATUS.get(kind)
        shown = {k: str(v) for k, v in headers.items()}
        if kind == "throttlingException":
            return RateLimitError(
                text + "; slow down or request a quota increase",
                status=429,
                body=body,
                headers=shown,
                provider=_PROVIDER,
            )
        if status is not None and status >= 500:
            return ProviderHTTPError(
                text + "; a transient AWS failure, retry the request",
                status=status,
                body=body,
                headers=shown,
                provider=_PROVIDER,
            )
        return ProviderError(text, error_type=kind, provider=_PROVIDER)
    if mtype == "error":
        code = str(headers.get(":error-code") or "error")
        detail = headers.get(":error-message")
        if not isinstance(detail, str) or not detail:
            detail = body or "no message given"
        return ProviderError(
            f"Bedrock reported an error mid-stream: {code}: {detail}",
            error_type=code,
            provider=_PROVIDER,
        )
    return decode_error(
        _PROVIDER, f"a message of unknown :message-type {mtype!r} (headers {dict(headers)!r})", body
    )
