"""The provider table (`rxtokens.providers`) as specs see it: records with parameter models.

There is one table of providers, built from their records; this module adds what specs,
launch strings and ``rxtokens ops`` need on top: a pydantic model of each provider's
parameters (derived once per record from its stream function's signature), and
`register_provider`, which turns a stream function into a record and adds it.

Example:
    >>> sorted(provider_entry("anthropic").params.model_fields)[:3]
    ['base_url', 'headers', 'max_tokens']
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from reactivex import Observable

from ..errors import ConfigError
from ..launch import check_name
from ..providers import (
    OPENAI_MESSAGES,
    Capabilities,
    MessageFormat,
    ProviderRecord,
    add_provider,
    find_provider,
    function_record,
    provider_records,
)
from ..tokens import StreamToken
from ._entries import known
from ._params import kwargs_of, params_model_from_signature, summary_of

__all__ = ["ProviderEntry", "provider_entries", "provider_entry", "register_provider"]


@dataclass(frozen=True)
class ProviderEntry:
    """A provider as specs see it: ``factory(model, messages, **params)`` returns the tokens.

    Attributes:
        name: the provider id (``openai_chat`` ...).
        factory: the stream function.
        params: the pydantic model of its parameters (provider configuration and request
            fields; unknown request fields are allowed when the factory takes ``**params``).
        summary: one line for listings.
        default_model: used when a spec names no model (None: a model is required).
        env_vars: the environment variables holding its API key (for messages).
        example: parameters that build it without network access or keys.
        record: the provider's record in the one table.
    """

    name: str
    factory: Callable[..., Observable[StreamToken]]
    params: type[BaseModel]
    summary: str = ""
    default_model: str | None = None
    env_vars: tuple[str, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)
    record: ProviderRecord | None = None

    def build(
        self, model: str, messages: str | list[dict[str, Any]], params: Mapping[str, Any]
    ) -> Observable[StreamToken]:
        """The cold token stream."""
        return self.factory(model, messages, **kwargs_of(self.params, params))


_lock = threading.Lock()
_models: dict[int, tuple[ProviderRecord, type[BaseModel]]] = {}


def _params_model(record: ProviderRecord) -> type[BaseModel]:
    if record.params_model is not None:
        model: type[BaseModel] = record.params_model
        return model
    with _lock:
        cached = _models.get(id(record))
        if cached is None or cached[0] is not record:
            derived = params_model_from_signature(
                record.stream, name=record.name, skip=2, exclude=("api_key",)
            )
            cached = _models[id(record)] = (record, derived)
        return cached[1]


def _entry(name: str, record: ProviderRecord) -> ProviderEntry:
    return ProviderEntry(
        name,
        record.stream,
        _params_model(record),
        record.summary or summary_of(record.stream),
        record.default_model,
        record.env_vars,
        dict(record.example),
        record,
    )


def provider_entry(name: str) -> ProviderEntry:
    """The provider `name` (entry points are loaded on a miss).

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    record = find_provider(name)
    if record is None:
        raise ConfigError(f"unknown provider {name!r}; known: {known(provider_records())}")
    return _entry(name, record)


def provider_entries() -> dict[str, ProviderEntry]:
    """Every provider (entry points included), by name and alias."""
    return {name: _entry(name, record) for name, record in provider_records().items()}


def register_provider(
    name: str,
    factory: Callable[..., Observable[StreamToken]],
    params_model: type[BaseModel] | None = None,
    *,
    default_model: str | None = None,
    env_vars: Sequence[str] = (),
    example: Mapping[str, Any] | None = None,
    summary: str | None = None,
    messages: MessageFormat | None = OPENAI_MESSAGES,
    capabilities: Capabilities | None = None,
    replace: bool = False,
) -> ProviderEntry:
    """Register a provider ``factory(model, messages, **params) -> Observable[StreamToken]``.

    It joins the one provider table, so it works everywhere a built-in one does:
    ``rxtokens.stream("NAME:model", ...)``, specs, launch strings, ``rxtokens ops``,
    ``run_agent(provider=NAME)`` and the server's ``upstream="NAME:model"``. The derived
    parameter model leaves out the first two parameters and ``api_key`` (keys never go into
    specs: providers read them from the environment).

    Args:
        name: the provider id.
        factory: the stream function.
        params_model: an explicit pydantic model of its spec parameters.
        default_model: used when a spec names no model.
        env_vars: the environment variables of its key (named in messages).
        example: spec parameters that build it without network access or keys.
        summary: one line for listings (default: the factory's docstring's first line).
        messages: how ``run_agent`` sends tool results back (default: OpenAI's shape,
            the neutral message format; None: not supported).
        capabilities: what it can do (default: `Capabilities()`).
        replace: allow replacing a provider of that name.

    Raises:
        ConfigError: an invalid or taken name.

    Example:
        >>> import reactivex
        >>> from rxtokens.tokens import TextDelta
        >>> def echo(model, messages, *, times: int = 1):
        ...     '''Echo the prompt.'''
        ...     return reactivex.of(*[TextDelta(messages)] * times)
        >>> register_provider("echo", echo, default_model="echo", replace=True).name
        'echo'
    """
    check_name(name, "provider")
    model = params_model or params_model_from_signature(
        factory, name=name, skip=2, exclude=("api_key",)
    )
    record = function_record(
        name,
        factory,
        default_model=default_model,
        env_vars=tuple(env_vars),
        messages=messages,
        capabilities=capabilities or Capabilities(),
        summary=summary if summary is not None else summary_of(factory),
        example=dict(example or {}),
        params_model=model,
    )
    add_provider(record, replace=replace)
    return _entry(name, record)
