"""The completion builder: the one place that turns tokens into the final `Completion`.

`CompletionBuilder` is pure and incremental (``add(token)`` per token,
``build()`` whenever "the completion so far" is needed: at the end, for an
error's ``.partial``, for `Broadcast.final` ...). `attach_partial` gives a
failed stream's error the ``.partial`` of what its builder holds; every stage
that aggregates (``aggregate()``, ``collect()``, `Broadcast`, the notebook
display, ``run_agent``) uses these two.

Example:
    >>> CompletionBuilder().add_all([TextDelta("Hel"), TextDelta("lo")]).build().text
    'Hello'
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic_core import from_json

from .errors import ConfigError, StreamDecodeError, StreamError
from .tokens import (
    TOKEN_TYPES,
    Choice,
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["AnswerSource", "CompletionBuilder", "attach_partial"]

_E = TypeVar("_E", bound=BaseException)

_MAX_SHOWN = 500
"""Invalid tool arguments longer than this are shortened in error messages."""


class _ToolCallParts:
    """The fragments of one tool call received so far."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


_COMPACT_EVERY = 256
"""Text pieces are joined in runs of this many, so a long stream holds one str per run,
not one per delta (each small str costs ~50 bytes beyond its text)."""

_FOLD_SHARE = 8
"""Runs are folded into the text so far once they hold 1/8 of its length (see `_Text`)."""


class _Text:
    """One text of a choice (its text or its reasoning), kept as one str that grows in place.

    Deltas are appended to `pieces` (the per-token cost is one list append); every
    `_COMPACT_EVERY` pieces become one run; runs are folded into `folded` once they
    hold 1/`_FOLD_SHARE` of it. Folding is ``text += runs`` on a str nobody else holds:
    CPython then resizes it in place (no copy of the text so far), and `value` hands out
    that very str, so the answer is not a second copy of the builder's state. After a
    `value`, the next fold copies once (the str is shared then), which is correct: str
    is immutable to everyone else.
    """

    __slots__ = ("folded", "pending", "pieces", "runs")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.runs: list[str] = []
        self.pending = 0  # characters in `runs`
        self.folded = ""

    def compact(self) -> None:
        """Join `pieces` into one run (called every `_COMPACT_EVERY` pieces)."""
        pieces = self.pieces
        run = "".join(pieces)
        pieces.clear()
        self.runs.append(run)
        self.pending += len(run)
        if self.pending * _FOLD_SHARE >= len(self.folded):
            self._fold()

    def _fold(self) -> None:
        text = self.folded
        self.folded = ""  # `text` is now the only reference: `+=` resizes it in place
        text += "".join(self.runs)
        self.runs.clear()
        self.pending = 0
        self.folded = text

    def value(self) -> str:
        """The whole text so far (the builder keeps the same str object)."""
        if self.pieces:
            self.compact()
        if self.runs:
            self._fold()
        return self.folded


class _ChoiceParts:
    """Everything received so far for one choice index."""

    __slots__ = ("finish_reason", "reasoning", "refusal", "text", "tool_calls")

    def __init__(self) -> None:
        self.text = _Text()
        self.reasoning = _Text()
        self.refusal: list[str] = []
        # call index -> fragments, or the complete ToolCall that replaced them
        self.tool_calls: dict[int, _ToolCallParts | ToolCall] = {}
        self.finish_reason: str | None = None


def _shorten(text: str) -> str:
    if len(text) <= _MAX_SHOWN:
        return repr(text)
    return f"{text[:_MAX_SHOWN]!r}... ({len(text)} characters)"


def _parse_partial(text: str) -> dict[str, Any]:
    """Best-effort arguments of an unfinished tool call (for ``.partial`` only)."""
    try:
        value = from_json(text, allow_partial="trailing-strings")
    except Exception:  # invalid, not just unfinished: nothing trustworthy
        return {}
    return value if isinstance(value, dict) else {}


class CompletionBuilder:
    """Incrementally assembles a `Completion` from stream tokens.

    Per choice index, text, reasoning and refusal deltas are concatenated;
    tool calls are assembled from `ToolCallDelta` fragments keyed by
    ``(choice, index)`` (``id`` and ``name`` from the first fragment that has
    them) or taken whole from a `ToolCall`, which replaces the fragments of the
    same key (later fragments for that key are ignored). `Finish` sets the
    choice's ``finish_reason``; the latest `Usage` wins. Token kinds that carry
    no part of the answer (`ToolResult`, `Intent` ...) are counted and passed
    over. A `Completion` (a stream that was aggregated already) stands for
    everything before it: ``build()`` gives it back (tokens after it add to it).
    Any other item is a `ConfigError` naming its type: nothing is dropped unseen.

    ``build()`` does not consume anything: it can be called at any time, as
    often as needed ("the completion so far"). It does tidy the builder's state
    (pending pieces are folded into the text, which the `Completion` then shares),
    so `add` and `build` must not run at the same time in two threads: callers
    that build from another thread hold a lock (`Broadcast`, the notebook display).

    Example:
        >>> b = CompletionBuilder()
        >>> for tok in [TextDelta("Hel"), TextDelta("lo"), Finish("stop")]:
        ...     b.add(tok)
        >>> b.build().text, b.build().finish_reason
        ('Hello', 'stop')
    """

    __slots__ = ("_choices", "_count", "_given", "_given_at", "_usage")

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceParts] = {}
        self._usage: Usage | None = None
        self._count = 0
        self._given: Completion | None = None  # a Completion added ...
        self._given_at = 0  # ... as token number `_given_at`: build() returns it if it was last

    @property
    def token_count(self) -> int:
        """How many tokens were added (of any kind, including ignored ones)."""
        return self._count

    @property
    def usage(self) -> Usage | None:
        """The latest `Usage` seen."""
        return self._usage

    def _choice(self, index: int) -> _ChoiceParts:
        parts = self._choices.get(index)
        if parts is None:
            parts = self._choices[index] = _ChoiceParts()
        return parts

    def add(self, token: Any) -> None:
        """Record one token (or a whole `Completion`).

        Raises:
            ConfigError: `token` is neither a token nor a `Completion`.
        """
        self._count += 1
        kind = type(token)
        if kind is TextDelta:  # by far the most frequent: no dict lookup
            parts = self._choices.get(token.index)
            if parts is None:
                parts = self._choice(token.index)
            text = parts.text
            pieces = text.pieces
            pieces.append(token.text)
            if len(pieces) >= _COMPACT_EVERY:
                text.compact()
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, token)
        elif kind not in TOKEN_TYPES.values():
            self._add_other(token)

    def _add_other(self, item: Any) -> None:
        """A `Completion` replaces everything so far; another token kind passes; else fail."""
        if isinstance(item, Completion):
            self._choices = {}
            top = Choice(
                0, item.text, item.reasoning, item.refusal, item.tool_calls, item.finish_reason
            )
            for choice in item.choices or [top]:
                parts = self._choice(choice.index)
                parts.text.pieces.append(choice.text)
                parts.reasoning.pieces.append(choice.reasoning)
                parts.refusal.append(choice.refusal)
                parts.tool_calls = {call.index: call for call in choice.tool_calls}
                parts.finish_reason = choice.finish_reason
            self._usage = item.usage
            self._given = item
            self._given_at = self._count
            return
        if isinstance(item, tuple(TOKEN_TYPES.values())):
            return  # a subclass of a token kind
        raise ConfigError(
            f"cannot build a Completion from a {type(item).__name__} ({_shorten(repr(item))}): "
            f"a stream to aggregate must carry tokens (rxtokens.tokens) or Completions; "
            f"map other items to tokens first (e.g. TextDelta(text))"
        )

    def add_all(self, tokens: Iterable[Any]) -> CompletionBuilder:
        """Record every token of `tokens`; returns self, for ``CompletionBuilder().add_all(t)``."""
        add = self.add
        for token in tokens:
            add(token)
        return self

    def _add_reasoning(self, token: ReasoningDelta) -> None:
        reasoning = self._choice(token.index).reasoning
        reasoning.pieces.append(token.text)
        if len(reasoning.pieces) >= _COMPACT_EVERY:
            reasoning.compact()

    def _add_refusal(self, token: RefusalDelta) -> None:
        self._choice(token.index).refusal.append(token.text)

    def _add_tool_call_delta(self, token: ToolCallDelta) -> None:
        calls = self._choice(token.choice).tool_calls
        parts = calls.get(token.index)
        if parts is None:
            parts = calls[token.index] = _ToolCallParts()
        elif type(parts) is ToolCall:
            return  # the complete call already arrived: it wins
        assert isinstance(parts, _ToolCallParts)
        if parts.id is None and token.id:
            parts.id = token.id
        if parts.name is None and token.name:
            parts.name = token.name
        if token.arguments:
            parts.arguments.append(token.arguments)

    def _add_tool_call(self, token: ToolCall) -> None:
        self._choice(token.choice).tool_calls[token.index] = token

    def _add_usage(self, token: Usage) -> None:
        self._usage = token

    def _add_finish(self, token: Finish) -> None:
        self._choice(token.index).finish_reason = token.reason

    def build(self, *, strict: bool = True) -> Completion:
        """The `Completion` of everything added so far.

        Args:
            strict: when True (the default, for a stream that completed), tool
                call arguments must be valid JSON objects (an empty string is
                ``{}``); otherwise `StreamDecodeError` is raised, naming the
                tool and the offending text, with ``.partial`` set to the
                lenient build. When False (for the ``.partial`` of a failed
                stream), unfinished arguments are parsed as far as they go
                (pydantic-core's partial JSON mode) and invalid ones become ``{}``.

        Raises:
            StreamDecodeError: `strict` and some tool call's arguments are not a JSON object.
        """
        if self._given is not None and self._given_at == self._count:
            return self._given
        choices = self._choices
        indices = sorted(choices)
        if 0 not in choices:
            indices.insert(0, 0)
        built = [self._build_choice(i, choices.get(i), strict) for i in indices]
        first = built[0]
        return Completion(
            text=first.text,
            reasoning=first.reasoning,
            refusal=first.refusal,
            tool_calls=list(first.tool_calls),
            finish_reason=first.finish_reason,
            usage=self._usage,
            choices=built,
        )

    def _build_choice(self, index: int, parts: _ChoiceParts | None, strict: bool) -> Choice:
        if parts is None:
            return Choice(index=index)
        tool_calls: list[ToolCall] = []
        for call_index in sorted(parts.tool_calls):
            call = parts.tool_calls[call_index]
            if type(call) is not ToolCall:
                assert isinstance(call, _ToolCallParts)
                call = self._finish_tool_call(index, call_index, call, strict)
            tool_calls.append(call)
        return Choice(
            index=index,
            text=parts.text.value(),
            reasoning=parts.reasoning.value(),
            refusal="".join(parts.refusal),
            tool_calls=tool_calls,
            finish_reason=parts.finish_reason,
        )

    def _finish_tool_call(
        self, choice: int, call_index: int, parts: _ToolCallParts, strict: bool
    ) -> ToolCall:
        text = "".join(parts.arguments)
        arguments: Any
        if not text.strip():
            arguments = {}
        elif not strict:
            arguments = _parse_partial(text)
        else:
            try:
                arguments = json.loads(text)
            except ValueError as exc:
                problem = f"not valid JSON ({exc})"
                raise self._decode_error(parts, call_index, text, problem) from None
            if not isinstance(arguments, dict):
                raise self._decode_error(parts, call_index, text, "not a JSON object")
        return ToolCall(call_index, parts.id, parts.name or "", arguments, choice)

    def _decode_error(
        self, parts: _ToolCallParts, call_index: int, text: str, problem: str
    ) -> StreamDecodeError:
        return StreamDecodeError(
            f"the arguments of tool call {parts.name!r} (id {parts.id!r}, index {call_index}) "
            f"are {problem}: {_shorten(text)}; the provider sent malformed tool arguments",
            partial=self.build(strict=False),
        )


_HANDLERS: dict[type[Any], Callable[[CompletionBuilder, Any], None]] = {
    ReasoningDelta: CompletionBuilder._add_reasoning,
    RefusalDelta: CompletionBuilder._add_refusal,
    ToolCallDelta: CompletionBuilder._add_tool_call_delta,
    ToolCall: CompletionBuilder._add_tool_call,
    Usage: CompletionBuilder._add_usage,
    Finish: CompletionBuilder._add_finish,
}


@runtime_checkable
class AnswerSource(Protocol):
    """A token stream whose producer already builds the answer (a `Broadcast`'s tokens).

    ``aggregate()`` over such a stream asks for that answer instead of building a second
    copy of it: one builder per answer.
    """

    def subscribe_answer(self, observer: Any, scheduler: Any = None) -> Any:
        """Deliver the `Completion` of every token to `observer` (reactivex observer).

        Returns the subscription (a disposable), or None when this subscriber would not
        see every token (it joined late): the caller then builds the answer itself.
        """


def attach_partial(error: _E, builder: CompletionBuilder) -> _E:
    """Give `error` the ``.partial`` of everything `builder` holds; returns `error`.

    Only a `StreamError` carries ``.partial``, and one already set is kept
    (`StreamError.with_partial`); any other error is returned untouched. A
    failure while building is swallowed: it must never hide the original error.

    Example:
        >>> from rxtokens.errors import TruncatedStreamError
        >>> builder = CompletionBuilder().add_all([TextDelta("Hi")])
        >>> attach_partial(TruncatedStreamError("dropped"), builder).partial.text
        'Hi'
        >>> attach_partial(ValueError("not a stream error"), builder)
        ValueError('not a stream error')
    """
    if isinstance(error, StreamError):
        with contextlib.suppress(Exception):
            error.with_partial(builder.build(strict=False))
    return error
