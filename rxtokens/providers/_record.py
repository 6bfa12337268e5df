"""The provider record: everything rxtokens knows about one provider, in one value.

A provider module declares one `ProviderRecord` (or a few, for sibling APIs) and
`rxtokens.providers` builds the one table from them. Everything that needs to know
about providers reads that table: `rxtokens.stream`, specs and launch strings
(`rxtokens.registry`), ``rxtokens ops``, the CLI demo, `rxtokens.inflight.run_agent`
(the tool-result message format) and `rxtokens.testing` (the wire format its
loopback server speaks).

Example:
    >>> from rxtokens.providers import provider_record
    >>> record = provider_record("anthropic")
    >>> record.default_model, record.env_vars, record.wire_format
    ('claude-sonnet-4-5', ('ANTHROPIC_API_KEY',), 'anthropic')
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from reactivex import Observable

from ..tokens import Completion, StreamToken, ToolCall
from ._base import Capabilities, HealthResult, Messages, Provider

__all__ = [
    "FunctionProvider",
    "MessageFormat",
    "ProviderRecord",
    "ToolOutcome",
    "function_record",
    "tool_call_id",
    "tool_result_text",
]

TokenOperator = Callable[[Observable[Any]], Observable[StreamToken]]
Turn = tuple[dict[str, Any], list[dict[str, Any]]]


class ToolOutcome(Protocol):
    """What a message format reads of a tool result (`rxtokens.inflight.ToolResult`)."""

    @property
    def result(self) -> Any:
        """The tool's return value (None on failure)."""
        ...

    @property
    def error(self) -> str | None:
        """The failure message, or None."""
        ...


def tool_call_id(call: ToolCall) -> str:
    """The id a tool call is answered under (``call_<index>`` when the provider gave none)."""
    return call.id or f"call_{call.index}"


def tool_result_text(outcome: ToolOutcome) -> str:
    """A tool result as the text content providers expect (the string, its JSON, or an error).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> tool_result_text(NS(result={"t": 21}, error=None)), tool_result_text(NS(result=None, error="x"))
        ('{"t": 21}', '{"error": "x"}')
    """  # noqa: E501
    if outcome.error is not None:
        return json.dumps({"error": outcome.error}, ensure_ascii=False)
    if isinstance(outcome.result, str):
        return outcome.result
    return json.dumps(outcome.result, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class MessageFormat:
    """How a provider wants a tool-call turn and its results written back (for ``run_agent``).

    Attributes:
        name: what the format is called in messages (``openai``, ``anthropic`` ...).
        tool_turn: ``(completion, results)`` -> the assistant's tool-call message and the
            messages that carry the results (`results` holds one per tool call, in order).
        final_turn: a completion without tool calls -> its assistant message.
    """

    name: str
    tool_turn: Callable[[Completion, Sequence[ToolOutcome]], Turn]
    final_turn: Callable[[Completion], dict[str, Any]]


@dataclass(frozen=True, eq=False)
class ProviderRecord:
    """Everything rxtokens knows about one provider.

    Attributes:
        name: the id in ``"name:model"``, specs and launch strings.
        factory: keyword configuration (``api_key``, ``base_url``, ``timeout``,
            ``headers`` ...) -> a `Provider`; what ``rxtokens.providers.PROVIDERS[name]`` gives.
        stream: the stream function ``(model, messages, **params) -> Observable[StreamToken]``;
            its signature (and Google-style ``Args:``) is the provider's parameter model in
            specs, launch strings and ``rxtokens ops`` (unless `params_model` is given).
        default_model: used when a spec names no model (None: a model is required).
        env_vars: the environment variables holding its API key.
        aliases: more names for the same record (``openai_chat`` for ``openai``).
        decoder: the operator factory that decodes its SSE events into tokens (what
            `rxtokens.testing.replay` applies after ``parse_sse``); None: it does not
            stream SSE (llama.cpp; an AWS event-stream provider decodes in its ``stream``).
        messages: how `rxtokens.inflight.run_agent` sends tool results back (None: unsupported).
        wire_format: the name of its wire format in `rxtokens.testing.wire`, which the
            loopback `rxtokens.testing.ProviderServer` speaks (None: none there).
        capabilities: what it can do.
        summary: one line for listings (default: the first line of `stream`'s docstring).
        example: spec parameters that build it without network access or keys.
        params_model: an explicit pydantic model of its spec parameters.

    Records compare by identity: one record is one provider, however many names it has.
    """

    name: str
    factory: Callable[..., Provider]
    stream: Callable[..., Observable[StreamToken]]
    default_model: str | None = None
    env_vars: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    decoder: Callable[[], TokenOperator] | None = None
    messages: MessageFormat | None = None
    wire_format: str | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    summary: str = ""
    example: Mapping[str, Any] = field(default_factory=dict)
    params_model: Any = None

    @property
    def names(self) -> tuple[str, ...]:
        """The name, then the aliases."""
        return (self.name, *self.aliases)


class FunctionProvider:
    """A `Provider` around a stream function (what `function_record` makes `factory` return).

    The configuration given to the factory is passed to the function with every request.

    Example:
        >>> import reactivex
        >>> from rxtokens.tokens import TextDelta
        >>> record = function_record("echo", lambda model, messages: reactivex.of(TextDelta(messages)))
        >>> record.factory().stream("m", "hi").run()
        TextDelta(text='hi', index=0)
    """  # noqa: E501

    def __init__(self, record: ProviderRecord, **config: Any) -> None:
        self.name = record.name
        self.capabilities = record.capabilities
        self._stream = record.stream
        self._config = config

    def __repr__(self) -> str:
        return f"FunctionProvider({self.name!r})"

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Observable[StreamToken]:
        """The function's token stream (`tools` is passed on only when given)."""
        if tools is not None:
            params["tools"] = tools
        return self._stream(model, messages, **self._config, **params)

    async def health(self) -> HealthResult:
        """Always ok: a function has no endpoint to check."""
        return HealthResult(True, None, "ok", self.name)


def function_record(
    name: str, stream: Callable[..., Observable[StreamToken]], **fields: Any
) -> ProviderRecord:
    """A record for a stream function ``(model, messages, **params)``; `fields` as in the record.

    Its factory makes a `FunctionProvider`.
    """
    record = ProviderRecord(name, FunctionProvider, stream, **fields)
    factory: Callable[..., Provider] = functools.partial(FunctionProvider, record)
    return replace(record, factory=factory)
