"""OpenAI chat completions: ``chat.completion.chunk`` objects and the ``chat.completion`` body.

What the server's OpenAI-compatible route (``/v1/chat/completions``) sends,
checked against the official ``openai`` client in the tests. Streaming:
`ChatChunkEncoder` turns tokens into chunks, `sse_data` frames them as
``data: <json>`` events and `DONE_EVENT` ends the stream; non-streaming:
`chat_completion_body`. Normalised finish reasons map to OpenAI's
(`openai_finish_reason`) and `Usage` to its ``usage`` object (`usage_dict`).

Example:
    >>> from rxtokens.tokens import TextDelta
    >>> enc = ChatChunkEncoder("demo", chunk_id="chatcmpl-1", created=0)
    >>> sse_data(enc.encode(TextDelta("Hi")))[:60]
    'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk"'
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import Any

from ..tokens import (
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "DONE_EVENT",
    "ChatChunkEncoder",
    "chat_completion_body",
    "openai_finish_reason",
    "sse_data",
    "usage_dict",
]

DONE_EVENT = b"data: [DONE]\n\n"
"""The last event of a streamed chat completion."""


def sse_data(chunks: Iterable[dict[str, Any]]) -> str:
    """Chunks (or an ``{"error": ...}`` object) as ``data:`` events, one per chunk.

    Example:
        >>> sse_data([{"a": "é"}])
        'data: {"a": "é"}\\n\\n'
    """
    return "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks)


def openai_finish_reason(reason: str | None) -> str:
    """OpenAI's finish reason for a normalised one (`Finish.reason`).

    ``stop``, ``length``, ``tool_calls`` and ``content_filter`` are OpenAI's own;
    ``error``, ``other`` and None have no OpenAI name and are ``stop``.

    Example:
        >>> openai_finish_reason("tool_calls"), openai_finish_reason("other")
        ('tool_calls', 'stop')
    """
    return reason if reason in ("length", "tool_calls", "content_filter") else "stop"


def usage_dict(usage: Usage) -> dict[str, Any]:
    """`Usage` as OpenAI's ``usage`` object (unknown counts are 0), with
    ``prompt_tokens_details.cached_tokens`` and ``completion_tokens_details.reasoning_tokens``
    when the upstream reported them, and ``rxtokens_cached: true`` for an answer replayed
    from rxtokens' response cache.

    Example:
        >>> usage_dict(Usage(3, 5))
        {'prompt_tokens': 3, 'completion_tokens': 5, 'total_tokens': 8}
        >>> usage_dict(Usage(3, 5, cache_read_input_tokens=2))["prompt_tokens_details"]
        {'cached_tokens': 2}
    """
    prompt = usage.input_tokens or 0
    completion = usage.output_tokens or 0
    body: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cache_read_input_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_input_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.cached:  # replayed from rxtokens' response cache (no upstream request)
        body["rxtokens_cached"] = True
    return body


class ChatChunkEncoder:
    """Re-encodes a token stream as OpenAI ``chat.completion.chunk`` objects.

    `encode` returns the chunks (dicts) for one token, `finish` the trailing usage
    chunk (when ``include_usage``). Each choice's first chunk carries
    ``role: "assistant"``; reasoning goes out as ``reasoning_content`` (the
    convention of OpenAI-compatible servers); provider finish reasons are mapped
    to OpenAI's (``end_turn`` -> ``stop``, ``MAX_TOKENS`` -> ``length`` ...); a
    complete `ToolCall` whose fragments were not streamed is sent as one fragment.

    Example:
        >>> enc = ChatChunkEncoder("demo", chunk_id="chatcmpl-1", created=0)
        >>> enc.encode(TextDelta("Hi"))[0]["choices"][0]["delta"]
        {'role': 'assistant', 'content': 'Hi'}
        >>> enc.encode(Finish("end_turn"))[0]["choices"][0]["finish_reason"]
        'stop'
    """

    __slots__ = ("_seen_calls", "_started", "_usage", "created", "id", "include_usage", "model")

    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = False,
        chunk_id: str | None = None,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = chunk_id or f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time()) if created is None else created
        self._started: set[int] = set()
        self._seen_calls: set[tuple[int, int]] = set()
        self._usage: Usage | None = None

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    def encode(self, token: Any) -> list[dict[str, Any]]:
        """The chunks for one token (often one, none for `Usage`)."""
        kind = type(token)
        if kind is TextDelta:
            return [self._chunk(token.index, {"content": token.text})] if token.text else []
        if kind is ReasoningDelta:
            return [self._chunk(token.index, {"reasoning_content": token.text})]
        if kind is RefusalDelta:
            return [self._chunk(token.index, {"refusal": token.text})]
        if kind is ToolCallDelta:
            self._seen_calls.add((token.choice, token.index))
            call: dict[str, Any] = {"index": token.index}
            if token.id is not None:
                call["id"] = token.id
                call["type"] = "function"
            function: dict[str, Any] = {"arguments": token.arguments}
            if token.name is not None:
                function["name"] = token.name
            call["function"] = function
            return [self._chunk(token.choice, {"tool_calls": [call]})]
        if kind is ToolCall:
            if (token.choice, token.index) in self._seen_calls:
                return []
            self._seen_calls.add((token.choice, token.index))
            whole = {
                "index": token.index,
                "id": token.id or f"call_{secrets.token_hex(8)}",
                "type": "function",
                "function": {"name": token.name, "arguments": json.dumps(token.arguments)},
            }
            return [self._chunk(token.choice, {"tool_calls": [whole]})]
        if kind is Finish:
            return [self._chunk(token.index, {}, openai_finish_reason(token.reason))]
        if kind is Usage:
            self._usage = token
        return []

    def finish(self) -> list[dict[str, Any]]:
        """The final usage chunk (``choices: []``), when asked for and known."""
        if not self.include_usage:
            return []
        usage = self._usage or Usage(None, None)
        return [
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_dict(usage),
            }
        ]


def chat_completion_body(
    completion: Completion, model: str, *, chunk_id: str | None = None
) -> dict[str, Any]:
    """A `Completion` as an OpenAI ``chat.completion`` object (the non-streaming answer).

    Example:
        >>> body = chat_completion_body(Completion(text="Hi", finish_reason="end_turn"), "m")
        >>> body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]
        ('Hi', 'stop')
    """
    rows: list[dict[str, Any]] = []
    # a Completion built by hand may have no choices: choice 0 is the top level
    sources: list[Any] = list(completion.choices) if completion.choices else [completion]
    for i, choice in enumerate(sources):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.text if (choice.text or not choice.tool_calls) else None,
            "refusal": choice.refusal or None,
        }
        if choice.reasoning:
            message["reasoning_content"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{secrets.token_hex(8)}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in choice.tool_calls
            ]
        rows.append(
            {
                "index": getattr(choice, "index", i),
                "message": message,
                "logprobs": None,
                "finish_reason": openai_finish_reason(choice.finish_reason),
            }
        )
    body: dict[str, Any] = {
        "id": chunk_id or f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": rows,
    }
    if completion.usage is not None:
        body["usage"] = usage_dict(completion.usage)
    return body
