"""The token model: every event a stream carries, and the final `Completion`.

Tokens are created once per streamed fragment, so they are built for speed:
each kind is a `typing.NamedTuple` (construction is a single `tuple.__new__`;
``benchmarks/tokens.py`` measures it against frozen dataclasses, slotted
classes and pydantic models). They are immutable, support pattern matching
(``case TextDelta(text=t):``) and, unlike plain tuples, compare equal only to
tokens of the same kind.

Providers emit `TextDelta`, `ReasoningDelta`, `RefusalDelta`, `ToolCallDelta`,
`ToolCall`, `Usage` and `Finish`; operators add `PartialToolCall`
(``partial_tool_arguments``), `ActionResult` (``on_match``), `Intent`
(``detect_intents``), `ToolResult` (``dispatch_tools``) and `StepBoundary`
(``run_agent``). All of them are declared here and belong to `StreamToken`.

Every kind has a ``type`` discriminator (a class attribute) and round-trips
through JSON with `token_to_dict` / `token_from_dict` (or `token_to_json` /
`token_from_json`); `register_token_type` adds a kind of your own.

Example:
    >>> token_from_json(token_to_json(TextDelta("Hi")))
    TextDelta(text='Hi', index=0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, TypeAlias

from .errors import ConfigError

__all__ = [
    "FINISH_REASONS",
    "TOKEN_TYPES",
    "ActionResult",
    "Choice",
    "Completion",
    "Finish",
    "Intent",
    "PartialToolCall",
    "ReasoningDelta",
    "RefusalDelta",
    "StepBoundary",
    "StreamToken",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolResult",
    "Usage",
    "register_token_type",
    "token_from_dict",
    "token_from_json",
    "token_to_dict",
    "token_to_json",
]


class _Kind:
    """Equality and hashing that include the token kind (plain tuples ignore it).

    Listed before the NamedTuple base so that its methods win over tuple's.
    """

    __slots__ = ()
    type: ClassVar[str]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)  # type: ignore[operator]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple.__hash__(self)))  # type: ignore[arg-type]


class _TextDeltaFields(NamedTuple):
    text: str
    index: int = 0  # type: ignore[assignment]  # shadows tuple.index, by design


class TextDelta(_Kind, _TextDeltaFields):
    """Visible answer text for choice `index`.

    Example:
        >>> TextDelta("Hello")
        TextDelta(text='Hello', index=0)
    """

    __slots__ = ()
    type = "text"


class _ReasoningDeltaFields(NamedTuple):
    text: str
    index: int = 0  # type: ignore[assignment]  # shadows tuple.index, by design


class ReasoningDelta(_Kind, _ReasoningDeltaFields):
    """Thinking / reasoning text for choice `index` (not part of the answer).

    Example:
        >>> ReasoningDelta("Let me think").type
        'reasoning'
    """

    __slots__ = ()
    type = "reasoning"


class _RefusalDeltaFields(NamedTuple):
    text: str
    index: int = 0  # type: ignore[assignment]  # shadows tuple.index, by design


class RefusalDelta(_Kind, _RefusalDeltaFields):
    """Refusal text for choice `index` (OpenAI ``delta.refusal``).

    Example:
        >>> RefusalDelta("I can't help with that", index=1).index
        1
    """

    __slots__ = ()
    type = "refusal"


class _ToolCallDeltaFields(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, by design
    id: str | None
    name: str | None
    arguments: str
    choice: int = 0


class ToolCallDelta(_Kind, _ToolCallDeltaFields):
    """One fragment of a tool call's JSON arguments.

    `index` identifies the call within the response (across choices, the
    provider's own numbering); `id` and `name` are usually present only on the
    first fragment. `choice` is the choice the call belongs to.

    Example:
        >>> ToolCallDelta(0, "call_1", "get_weather", '{"city": ').arguments
        '{"city": '
    """

    __slots__ = ()
    type = "tool_call_delta"


class _ToolCallFields(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, by design
    id: str | None
    name: str
    arguments: dict[str, Any]
    choice: int = 0


class ToolCall(_Kind, _ToolCallFields):
    """A tool call whose arguments are complete, emitted as soon as that is known.

    Example:
        >>> ToolCall(0, "call_1", "get_weather", {"city": "Paris"}).arguments
        {'city': 'Paris'}
    """

    __slots__ = ()
    type = "tool_call"


class _UsageFields(NamedTuple):
    input_tokens: int | None = None
    output_tokens: int | None = None
    estimated: bool = False
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached: bool = False


_USAGE_ALWAYS_SHOWN = ("input_tokens", "output_tokens", "estimated")


class Usage(_Kind, _UsageFields):
    """Token usage, what cost is computed from. Provider-reported values are cumulative:
    the latest one wins.

    - `input_tokens`: the prompt, as the provider counts it. OpenAI and Gemini count
      cached tokens in it (`cache_read_input_tokens` is a part of it); Anthropic and
      Bedrock do not (cache reads and writes are billed beside it).
    - `output_tokens`: the billed output, reasoning included, as OpenAI's
      ``completion_tokens`` and Anthropic's ``output_tokens`` count it (Gemini:
      ``candidatesTokenCount + thoughtsTokenCount``).
    - `cache_read_input_tokens`: prompt tokens served from the cache (OpenAI
      ``cached_tokens``, Anthropic ``cache_read_input_tokens``, Gemini
      ``cachedContentTokenCount``, Bedrock ``cacheReadInputTokens``).
    - `cache_write_input_tokens`: prompt tokens written to the cache (Anthropic
      ``cache_creation_input_tokens``, Bedrock ``cacheWriteInputTokens``).
    - `reasoning_tokens`: the part of `output_tokens` spent reasoning (OpenAI
      ``reasoning_tokens``, Gemini ``thoughtsTokenCount``).
    - `estimated`: True when rxtokens counted the tokens itself (tiktoken) because the
      provider reported none.
    - `cached`: True when the answer was replayed from rxtokens' response cache
      (`rxtokens.cache`): no request was made, the counts are those of the recorded
      answer. (The provider's own prompt cache is `cache_read_input_tokens`.)

    Each is None where the provider does not report it; the repr and the JSON leave out
    the cache and reasoning counts when they are None, and `cached` when False.

    Example:
        >>> Usage(10, 5)
        Usage(input_tokens=10, output_tokens=5, estimated=False)
        >>> Usage(10, 5, cache_read_input_tokens=8).total_tokens
        15
        >>> Usage(10, 5, cached=True)
        Usage(input_tokens=10, output_tokens=5, estimated=False, cached=True)
    """

    __slots__ = ()
    type = "usage"

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if (value is not None and value is not False) or name in _USAGE_ALWAYS_SHOWN
        )
        return f"Usage({shown})"

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens, or None when either is unknown."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens


FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error", "other")
"""The normalised finish reasons (`Finish.reason`), the same for every provider."""


class _FinishFields(NamedTuple):
    reason: str | None
    index: int = 0  # type: ignore[assignment]  # shadows tuple.index, by design
    raw: str | None = None


class Finish(_Kind, _FinishFields):
    """End of choice `index`.

    `reason` is normalised (one of `FINISH_REASONS`: ``stop``, ``length``,
    ``tool_calls``, ``content_filter``, ``error``, ``other``), so code works the
    same with every provider; `raw` is the provider's own value beside it
    (``end_turn``, ``STOP``, ``completed`` ...; None for a `Finish` an operator made).

    Example:
        >>> Finish("stop")
        Finish(reason='stop', index=0)
        >>> Finish("tool_calls", raw="tool_use").raw
        'tool_use'
    """

    __slots__ = ()
    type = "finish"

    def __repr__(self) -> str:
        raw = "" if self.raw is None else f", raw={self.raw!r}"
        return f"Finish(reason={self.reason!r}, index={self.index!r}{raw})"


# --- kinds that operators emit ------------------------------------------------------------


class _PartialToolCallFields(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, by design
    id: str | None
    name: str | None
    arguments: dict[str, Any]
    choice: int = 0
    complete: bool = False


class PartialToolCall(_Kind, _PartialToolCallFields):
    """The arguments of tool call (`choice`, `index`) parsed so far.

    `complete` is True for the final value (from the `ToolCall`). Emitted by
    `rxtokens.operators.partial_tool_arguments`.

    Example:
        >>> PartialToolCall(0, "call_1", "get_weather", {"city": "Par"}).complete
        False
    """

    __slots__ = ()
    type = "partial_tool_call"


class _ActionResultFields(NamedTuple):
    action: str
    match: str
    value: Any
    error: str | None
    index: int = 0  # type: ignore[assignment]  # shadows tuple.index, by design


class ActionResult(_Kind, _ActionResultFields):
    """What an `on_match` action returned (`value`) or raised (`error`, a message).

    `action` is the action's name, `match` the matched text, `index` the choice.

    Example:
        >>> ActionResult("notify", "urgent", None, "timed out").ok
        False
    """

    __slots__ = ()
    type: ClassVar[str] = "action_result"

    @property
    def ok(self) -> bool:
        """True when the action succeeded."""
        return self.error is None


class _IntentFields(NamedTuple):
    name: str
    confidence: float
    evidence: str
    index: int = 0  # type: ignore[assignment]  # shadows tuple.index, by design


class Intent(_Kind, _IntentFields):
    """An intent `detect_intents` found in choice `index` (each name once per choice).

    `evidence` is the text that triggered it when the classifier says so (else "").

    Example:
        >>> Intent("refund", 0.9, "money back").name
        'refund'
    """

    __slots__ = ()
    type: ClassVar[str] = "intent"


class _ToolResultFields(NamedTuple):
    call_id: str | None
    name: str
    result: Any
    error: str | None
    index: int  # type: ignore[assignment]  # shadows tuple.index, by design
    elapsed: float
    choice: int = 0


class ToolResult(_Kind, _ToolResultFields):
    """The outcome of one tool call: `result` (JSON-ready) or `error` (a message).

    `call_id`, `name`, `index` and `choice` are those of the `ToolCall`;
    `elapsed` is how long the tool ran, in seconds (0 when it never started).

    Example:
        >>> ToolResult("call_1", "get_weather", {"temp": 21}, None, 0, 0.05).ok
        True
    """

    __slots__ = ()
    type: ClassVar[str] = "tool_result"

    @property
    def ok(self) -> bool:
        """True when the tool succeeded."""
        return self.error is None


class _StepBoundaryFields(NamedTuple):
    step: int
    reason: str


class StepBoundary(_Kind, _StepBoundaryFields):
    """The end of step `step` of `run_agent`; `reason`: why the loop goes on or stops.

    ``"tool_calls"``: the step's tool results were sent and step ``step + 1``
    follows; ``"max_steps"``: tool calls remain but ``max_steps`` was reached.

    Example:
        >>> StepBoundary(1, "tool_calls").reason
        'tool_calls'
    """

    __slots__ = ()
    type: ClassVar[str] = "step"


StreamToken: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallDelta
    | ToolCall
    | Usage
    | Finish
    | PartialToolCall
    | ActionResult
    | Intent
    | ToolResult
    | StepBoundary
)
"""Every kind of event a token stream carries (providers' and operators')."""

TOKEN_TYPES: dict[str, type[Any]] = {
    cls.type: cls
    for cls in (
        TextDelta,
        ReasoningDelta,
        RefusalDelta,
        ToolCallDelta,
        ToolCall,
        Usage,
        Finish,
        PartialToolCall,
        ActionResult,
        Intent,
        ToolResult,
        StepBoundary,
    )
}
"""The discriminator of each token kind -> its class; `register_token_type` adds users' kinds."""


def register_token_type(cls: type[Any]) -> type[Any]:
    """Register an extra token kind (a NamedTuple with a ``type`` class attribute) for JSON.

    Example:
        >>> @register_token_type
        ... class Note(NamedTuple("NoteFields", [("text", str)])):
        ...     type = "note"
        >>> token_from_json('{"type": "note", "text": "hi"}')
        Note(text='hi')
        >>> del TOKEN_TYPES["note"]  # (only to keep this example self-contained)
    """
    TOKEN_TYPES[cls.type] = cls
    return cls


def token_to_dict(token: Any) -> dict[str, Any]:
    """The JSON-ready dict of a token: its fields plus ``"type"`` (a `Finish`'s
    ``raw`` only when it has one).

    Example:
        >>> token_to_dict(TextDelta("Hi"))
        {'type': 'text', 'text': 'Hi', 'index': 0}
    """
    data: dict[str, Any] = {"type": token.type}
    data.update(zip(token._fields, token, strict=True))
    kind = type(token)
    if kind is Finish and token.raw is None:
        del data["raw"]  # a Finish an operator made: its JSON is what it was before `raw`
    elif kind is Usage and not token.cached:
        del data["cached"]  # the JSON of uncached usage is what it was before the cache
    return data


def token_from_dict(data: dict[str, Any]) -> Any:
    """Rebuild a token from `token_to_dict` output (unknown keys are an error).

    Example:
        >>> token_from_dict({"type": "finish", "reason": "stop"})
        Finish(reason='stop', index=0)
    """
    fields = dict(data)
    kind = fields.pop("type", None)
    cls = TOKEN_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"unknown token type {kind!r}; known: {sorted(TOKEN_TYPES)}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ConfigError(f"invalid fields for token type {kind!r}: {exc}") from None


def token_to_json(token: Any) -> str:
    """Serialise a token as compact JSON.

    Example:
        >>> token_to_json(TextDelta("Hi"))
        '{"type":"text","text":"Hi","index":0}'
    """
    return json.dumps(token_to_dict(token), ensure_ascii=False, separators=(",", ":"))


def token_from_json(text: str | bytes) -> Any:
    """Parse a token from `token_to_json` output (invalid JSON is a `ConfigError`).

    Example:
        >>> token_from_json('{"type":"text","text":"Hi","index":0}')
        TextDelta(text='Hi', index=0)
    """
    try:
        data = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a token's JSON: {text!r:.80}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"a token's JSON is an object with a 'type', got {text!r:.80}")
    return token_from_dict(data)


@dataclass(frozen=True, slots=True)
class Choice:
    """The aggregated result of one choice (``n > 1`` requests have several).

    Example:
        >>> Choice(index=1, text="Hi", finish_reason="stop").text
        'Hi'
    """

    index: int = 0
    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """The final answer of a stream, as `aggregate()` yields it.

    The top-level fields mirror choice 0; `choices` holds one `Choice` per
    choice index (a single element for ordinary requests).

    Example:
        >>> completion = Completion(text="Hi", finish_reason="stop")
        >>> Completion.from_dict(completion.to_dict()).text
        'Hi'
    """

    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    choices: list[Choice] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tool calls and usage as token dicts)."""

        def choice_dict(c: Choice) -> dict[str, Any]:
            return {
                "index": c.index,
                "text": c.text,
                "reasoning": c.reasoning,
                "refusal": c.refusal,
                "tool_calls": [token_to_dict(t) for t in c.tool_calls],
                "finish_reason": c.finish_reason,
            }

        return {
            "text": self.text,
            "reasoning": self.reasoning,
            "refusal": self.refusal,
            "tool_calls": [token_to_dict(t) for t in self.tool_calls],
            "finish_reason": self.finish_reason,
            "usage": None if self.usage is None else token_to_dict(self.usage),
            "choices": [choice_dict(c) for c in self.choices],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        """Inverse of `to_dict`."""
        choices = [
            Choice(
                index=c["index"],
                text=c["text"],
                reasoning=c["reasoning"],
                refusal=c["refusal"],
                tool_calls=[token_from_dict(t) for t in c["tool_calls"]],
                finish_reason=c["finish_reason"],
            )
            for c in data.get("choices", [])
        ]
        usage = data.get("usage")
        return cls(
            text=data.get("text", ""),
            reasoning=data.get("reasoning", ""),
            refusal=data.get("refusal", ""),
            tool_calls=[token_from_dict(t) for t in data.get("tool_calls", [])],
            finish_reason=data.get("finish_reason"),
            usage=None if usage is None else token_from_dict(usage),
            choices=choices,
        )
