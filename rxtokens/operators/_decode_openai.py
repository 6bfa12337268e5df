"""Decoder of OpenAI's Chat Completions stream, and helpers the other decoders share.

Chat Completions (``POST /v1/chat/completions`` with ``stream: true``): every
event is ``data: <ChatCompletionChunk JSON>``, the stream ends with
``data: [DONE]``. Field names follow the SDK's
``openai/types/chat/chat_completion_chunk.py``.

The Responses API's decoder is in `_decode_responses`.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError, StreamDecodeError, StreamError, TruncatedStreamError
from ..tokens import (
    ReasoningDelta,
    RefusalDelta,
    StreamToken,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._decode import (
    NO_PADDED_TEMPLATE,
    EventDecoder,
    PaddedTemplate,
    check_tokens,
    decode_error,
    fast_loads,
    finish_token,
    is_plain,
    learn_padded_template,
    strict_loads,
)
from ._kinds import new_token

__all__ = ["OpenAIChatDecoder", "complete_tool_call", "openai_usage", "provider_error"]

_PROVIDER = "openai"

CHAT_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
"""OpenAI chat ``finish_reason`` -> the normalised reason (`finish_token`)."""


def complete_tool_call(
    provider: str, index: int, call_id: str | None, name: str | None, text: str, choice: int = 0
) -> ToolCall:
    """The `ToolCall` of complete argument text `text` (blank is ``{}``).

    Raises:
        StreamDecodeError: the arguments are not a JSON object.
    """
    if not text or text.isspace():
        return ToolCall(index, call_id, name or "", {}, choice)
    try:
        arguments = strict_loads(provider, text)
    except StreamDecodeError:
        arguments = None
    if type(arguments) is not dict:
        raise decode_error(
            provider,
            f"tool call {name!r} (id {call_id!r}) with arguments that are not a JSON object",
            text,
        )
    return ToolCall(index, call_id, name or "", arguments, choice)


def openai_usage(usage: dict[str, Any], *, responses: bool = False) -> Usage:
    """`Usage` of an OpenAI ``usage`` object (Chat: ``prompt_tokens`` ...; Responses:
    ``input_tokens`` ...), with ``cached_tokens`` and ``reasoning_tokens`` from its
    ``*_tokens_details`` (None when absent)."""
    given, made = ("input", "output") if responses else ("prompt", "completion")
    return Usage(
        usage.get(f"{given}_tokens"),
        usage.get(f"{made}_tokens"),
        cache_read_input_tokens=(usage.get(f"{given}_tokens_details") or {}).get("cached_tokens"),
        reasoning_tokens=(usage.get(f"{made}_tokens_details") or {}).get("reasoning_tokens"),
    )


class _OpenCall:
    """A tool call whose fragments are still arriving."""

    __slots__ = ("id", "index", "name", "parts")

    def __init__(self, index: int, call_id: str | None, name: str | None) -> None:
        self.index = index
        self.id = call_id
        self.name = name
        self.parts: list[str] = []


_TEMPLATE_TRIES = 8
"""How many content-only chunks may (re)learn the template (``obfuscation`` is its second
hole): streams whose every chunk differs otherwise (interleaved choices) stop trying."""


class OpenAIChatDecoder(EventDecoder):
    """Pure decoder of Chat Completions chunks (one per subscription).

    Handles: the role-only first chunk (``content`` ``""`` or null: no token);
    ``content`` -> `TextDelta`; ``reasoning_content`` / ``reasoning`` (vLLM,
    DeepSeek, llama.cpp ...) -> `ReasoningDelta`; ``refusal`` -> `RefusalDelta`;
    tool call fragments -> `ToolCallDelta` (``id`` / ``name`` only where the
    provider sent them), merged by ``index`` per choice, and a `ToolCall` as
    soon as the call is complete (the next call of the choice starts, the
    choice finishes, or ``[DONE]``); ``finish_reason`` -> `Finish`; ``usage``
    (the ``include_usage`` trailing chunk with ``choices: []``, or any chunk
    with a non-null usage) -> `Usage`; ``n > 1`` choices interleaved by
    ``index``; unknown fields (``logprobs``, ``obfuscation``, ``timings`` ...)
    are ignored. ``{"error": {...}}`` raises `ProviderError` at once (a
    ``[DONE]`` after it proves nothing). ``close()`` without ``[DONE]`` raises
    `TruncatedStreamError`.

    Example:
        >>> from rxtokens import SseEvent
        >>> d = OpenAIChatDecoder()
        >>> d.feed(SseEvent(data='{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'))
        [TextDelta(text='Hi', index=0)]
        >>> d.feed(SseEvent(data="[DONE]")), d.close()
        ([], [])
    """

    __slots__ = ("_calls", "_done", "_index", "_open", "_template", "_tries")

    def __init__(self) -> None:
        self._done = False
        self._open: dict[int, _OpenCall] = {}  # choice -> the call being streamed
        self._calls: dict[int, int] = {}  # choice -> calls seen (for servers that omit index)
        # The template path (see `learn_padded_template`): the shape of the last content-only
        # chunk, its choice index, and how many more times a template may be learnt.
        self._template: PaddedTemplate = NO_PADDED_TEMPLATE
        self._index = 0
        self._tries = _TEMPLATE_TRIES

    def decode_values(self, values: list[str], tokens: list[StreamToken]) -> None:
        """Decode data-only events; chunks that fit the learnt template skip the JSON parser."""
        prefix, middle, suffix, size = self._template
        for data in values:
            if len(data) > size and data.startswith(prefix) and data.endswith(suffix):
                end = len(data) - len(suffix)
                if not middle:
                    text = data[len(prefix) : end]
                    if text.isprintable() and '"' not in text and "\\" not in text:
                        tokens.append(new_token(TextDelta, (text, self._index)))
                        continue
                else:  # the text ends at its first quote, the middle follows, then the padding
                    at = data.find('"', len(prefix))
                    pad = data[at + len(middle) : end]
                    if (
                        at + len(middle) <= end
                        and data.startswith(middle, at)
                        and (pad.isalnum() or is_plain(pad))
                        and (text := data[len(prefix) : at])
                        and text.isprintable()
                        and "\\" not in text
                    ):
                        tokens.append(new_token(TextDelta, (text, self._index)))
                        continue
            tokens += self.decode("message", data)
            prefix, middle, suffix, size = self._template

    def decode(self, kind: str, data: str) -> list[StreamToken]:
        """Decode one event's data into the tokens it carries."""
        if self._done or not data:
            return []
        if data[0] == "[" and data.startswith("[DONE]"):
            self._done = True
            self._template = NO_PADDED_TEMPLATE
            tokens: list[StreamToken] = []
            for choice in list(self._open):
                self._close_call(choice, tokens)
            return check_tokens(_PROVIDER, data, tokens)
        try:
            chunk = fast_loads(data)
        except ValueError:
            chunk = strict_loads(_PROVIDER, data)
        try:
            # The common chunk (one choice, a content-only delta, nothing else) inline:
            choices = chunk.get("choices")
            if len(choices or ()) == 1 and chunk.get("usage") is None and "error" not in chunk:
                choice = choices[0]
                delta = choice["delta"]
                if (
                    len(delta) == 1
                    and choice.get("finish_reason") is None
                    and type(content := delta.get("content")) is str
                    and content
                    and type(index := choice.get("index") or 0) is int
                ):
                    if self._tries:
                        self._learn(data, content, index)
                    return [new_token(TextDelta, (content, index))]
            return check_tokens(_PROVIDER, data, self._chunk(chunk))
        except StreamError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise decode_error(_PROVIDER, f"an unexpected chunk ({exc!r})", data) from None

    def _learn(self, data: str, content: str, index: int) -> None:
        """Learn the template of a content-only chunk (a bounded number of times)."""
        self._tries -= 1
        template = learn_padded_template(data, content, "obfuscation")
        if template is not None:
            self._template = template
            self._index = index

    def close(self) -> list[StreamToken]:
        """End of stream: raises `TruncatedStreamError` unless ``[DONE]`` arrived."""
        if not self._done:
            raise TruncatedStreamError(
                "the OpenAI stream ended before 'data: [DONE]': the connection closed early "
                "and the answer is incomplete; retry the request",
                provider=_PROVIDER,
            )
        return []

    def _chunk(self, chunk: dict[str, Any]) -> list[StreamToken]:
        tokens: list[StreamToken] = []
        error = chunk.get("error")
        if error:
            raise provider_error(error)
        choices = chunk.get("choices")
        if choices:
            for choice in choices:
                index = choice.get("index") or 0
                delta = choice.get("delta")
                if delta:
                    content = delta.get("content")
                    if content and len(delta) == 1:  # the common case
                        tokens.append(TextDelta(content, index))
                    else:
                        self._delta(delta, index, tokens)
                reason = choice.get("finish_reason")
                if reason is not None:
                    if index in self._open:
                        self._close_call(index, tokens)
                    tokens.append(finish_token(reason, CHAT_FINISH, index))
        usage = chunk.get("usage")
        if usage:
            tokens.append(openai_usage(usage))
        return tokens

    def _delta(self, delta: dict[str, Any], index: int, tokens: list[StreamToken]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and type(reasoning) is str:
            tokens.append(ReasoningDelta(reasoning, index))
        content = delta.get("content")
        if content:
            tokens.append(TextDelta(content, index))
        refusal = delta.get("refusal")
        if refusal:
            tokens.append(RefusalDelta(refusal, index))
        calls = delta.get("tool_calls")
        if calls:
            for call in calls:
                self._fragment(call, index, tokens)

    def _fragment(self, call: dict[str, Any], choice: int, tokens: list[StreamToken]) -> None:
        function = call.get("function") or {}
        call_id = call.get("id") or None
        name = function.get("name") or None
        arguments = function.get("arguments") or ""
        current = self._open.get(choice)
        number = call.get("index")
        if number is None:  # some compatible servers omit it: a new id means a new call
            if current is None or (call_id is not None and call_id != current.id):
                number = self._calls.get(choice, 0)
            else:
                number = current.index
        if current is None or current.index != number:
            if current is not None:
                self._close_call(choice, tokens)
            current = self._open[choice] = _OpenCall(number, call_id, name)
            self._calls[choice] = max(self._calls.get(choice, 0), number + 1)
        else:
            if current.id is None:
                current.id = call_id
            if current.name is None:
                current.name = name
        if arguments:
            current.parts.append(arguments)
        tokens.append(ToolCallDelta(number, call_id, name, arguments, choice))

    def _close_call(self, choice: int, tokens: list[StreamToken]) -> None:
        call = self._open.pop(choice)
        tokens.append(
            complete_tool_call(
                _PROVIDER, call.index, call.id, call.name, "".join(call.parts), choice
            )
        )


def provider_error(error: Any) -> ProviderError:
    if isinstance(error, dict):
        message = error.get("message") or "the provider reported an error"
        kind = error.get("type") or error.get("code")
    else:
        message, kind = str(error), None
    return ProviderError(
        f"OpenAI reported an error mid-stream: {message}",
        error_type=None if kind is None else str(kind),
        provider=_PROVIDER,
    )
