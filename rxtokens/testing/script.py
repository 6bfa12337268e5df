"""The scripted model behind every wire encoder: `Script`, `ScriptedToolCall`, shared helpers.

`rxtokens.testing.wire` (the SSE providers) and `rxtokens.testing.wire_bedrock` (Bedrock's
binary event stream) render the same `Script` in each provider's format; the helpers here
(compact JSON, argument fragments, deterministic ids) keep those renderings consistent.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Ids",
    "Script",
    "ScriptedToolCall",
    "compact_json",
    "cut_fragments",
    "default_finish",
    "split_deltas",
    "tool_id",
]

_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class ScriptedToolCall:
    """One tool call the scripted model makes.

    Attributes:
        name: the function name.
        arguments: the arguments; serialised as compact JSON and streamed in
            `fragments` pieces (split at character offsets, so pieces cut
            through keys and strings as real providers do).
        id: the call id; None makes one in the provider's shape
            (``call_...`` / ``toolu_...``). Gemini calls never have an id.
        fragments: how many argument fragments to stream (at least 1).
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    fragments: int = 3


@dataclass(frozen=True)
class Script:
    """What a scripted model streams; every encoder renders it in its provider's format.

    Attributes:
        text: the answer, as the list of deltas to stream, or a string that
            `split_deltas` cuts into word-sized deltas.
        reasoning: reasoning / thinking text streamed before the answer (same forms).
        tool_calls: tool calls made after the text (choice 0 only).
        finish_reason: the provider's raw finish/stop reason; None picks the
            provider's usual one (``stop`` / ``tool_calls``, ``end_turn`` /
            ``tool_use``, ``STOP``, Responses ``completed``).
        usage: ``(input_tokens, output_tokens)`` to report, or None for none
            (Anthropic always reports usage: None sends zeros).
        cached_tokens: ``(cache read, cache write)`` prompt tokens reported with the
            usage, by the providers that report them (OpenAI and Gemini: reads only).
        reasoning_tokens: the part of the output tokens OpenAI reports as reasoning
            (Gemini's ``thoughtsTokenCount`` follows the reasoning deltas instead).
        n: number of choices (OpenAI chat only). Choice ``i > 0`` streams the
            text deltas in reverse order, so choices are distinguishable;
            chunks of the choices are interleaved.
        refusal: refusal text (OpenAI ``delta.refusal`` / Responses
            ``response.refusal.delta``), streamed instead of the text.
        error: a mid-stream error sent after the text instead of the normal
            end: ``{"type": ..., "message": ..., "code": ...}`` (``code``
            optional). Each encoder renders it in its provider's error shape.
        model: the model name to report (None: a typical one per provider).
        logprobs: OpenAI chat only: attach ``logprobs.content`` to text chunks.
        seed: seeds ids and timestamps.
    """

    text: str | Sequence[str] = ()
    reasoning: str | Sequence[str] = ()
    tool_calls: Sequence[ScriptedToolCall] = ()
    finish_reason: str | None = None
    usage: tuple[int, int] | None = (10, 20)
    cached_tokens: tuple[int, int] = (0, 0)
    reasoning_tokens: int = 0
    n: int = 1
    refusal: str | Sequence[str] | None = None
    error: Mapping[str, Any] | None = None
    model: str | None = None
    logprobs: bool = False
    seed: int = 0

    def text_deltas(self, choice: int = 0) -> list[str]:
        """The text deltas of `choice` (choices > 0 stream them reversed)."""
        deltas = split_deltas(self.text)
        return deltas if choice == 0 else deltas[::-1]

    def reasoning_deltas(self) -> list[str]:
        """The reasoning deltas."""
        return split_deltas(self.reasoning)

    def refusal_deltas(self) -> list[str]:
        """The refusal deltas (empty when there is no refusal)."""
        return [] if self.refusal is None else split_deltas(self.refusal)


def split_deltas(text: str | Sequence[str]) -> list[str]:
    """Deltas of `text`: a sequence is taken as is; a string is cut before each word.

    Example:
        >>> split_deltas("Hello, big  world ")
        ['Hello,', ' big', '  world', ' ']
    """
    if isinstance(text, str):
        return re.findall(r"\s*\S+|\s+", text)
    return list(text)


def compact_json(obj: Any) -> str:
    """`obj` as compact JSON (no spaces), non-ASCII kept."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def cut_fragments(text: str, count: int) -> list[str]:
    """Cut `text` into `count` pieces at character offsets (the first may be empty)."""
    count = max(1, count)
    step = -(-len(text) // count) if text else 1
    pieces = [text[i : i + step] for i in range(0, len(text), step)] or [""]
    return pieces


class Ids:
    """Deterministic ids from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def alnum(self, prefix: str, length: int) -> str:
        return prefix + "".join(self.rng.choice(_ALNUM) for _ in range(length))

    def hex(self, prefix: str, length: int) -> str:
        return prefix + "".join(self.rng.choice("0123456789abcdef") for _ in range(length))


def default_finish(script: Script, plain: str, tools: str) -> str:
    """The script's finish reason, else `tools` when it calls tools, else `plain`."""
    if script.finish_reason is not None:
        return script.finish_reason
    return tools if script.tool_calls else plain


def tool_id(prefix: str, seed: int, index: int) -> str:
    """A deterministic tool call id in the provider's shape."""
    rng = random.Random(f"{prefix}{seed}:{index}")
    return prefix + "".join(rng.choice(_ALNUM) for _ in range(24 if prefix == "call_" else 22))
