"""Providers: each returns a cold ``Observable[StreamToken]`` (one request per subscription).

=====================  ======================================================
``openai``             OpenAI Chat Completions (alias ``openai_chat``)
``openai_responses``   OpenAI Responses API
``anthropic``          Anthropic Messages
``gemini``             Google Gemini ``streamGenerateContent?alt=sse``
``bedrock``            Amazon Bedrock ``ConverseStream`` (AWS event stream; SigV4 or API key)
``openai_compatible``  vLLM, llama.cpp, Ollama ... (needs ``base_url``)
``llama``              a local GGUF model through llama-cpp-python (model = file path)
``testing``            the bundled loopback server (`rxtokens.testing`), no key
=====================  ======================================================

`stream` takes ``"provider:model"`` ids::

    stream("anthropic:claude-sonnet-4-5", "Write a haiku").pipe(aggregate())

Subscribing sends the request; disposing the subscription closes the connection.

How providers are known: each provider module declares a `ProviderRecord` (name,
aliases, factory, stream function, default model, key variables, decoder, tool-result
`MessageFormat`, test-server wire format, capabilities). This package adds the records
of its modules to the one table (`provider_record`, `provider_records`, and `PROVIDERS`:
name -> factory); `rxtokens.stream`, specs and launch strings, ``rxtokens ops``, the CLI
demo, ``run_agent`` and `rxtokens.testing` all read it. The ``testing`` record lives in
`rxtokens.testing.loopback` and comes in through the entry point group
``rxtokens.providers`` (see pyproject.toml), so nothing imports `rxtokens.testing` until a
``testing:`` id is used.

Adding a provider:

* in this package: one module ``providers/NAME.py`` with its `HttpProvider` subclass (or
  any `Provider`), its stream function and ``RECORD = ProviderRecord(...)``, plus one
  entry in `BUILTIN_RECORDS` below. Import an optional SDK (``botocore`` ...) inside the
  functions that need it, never at module level, so the table loads without it;
* in another package: an entry point ``NAME = "pkg.module:RECORD"`` in the group
  ``rxtokens.providers``, or `add_provider` / `rxtokens.register_provider` at run time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reactivex import Observable

from ..errors import ConfigError
from ..tokens import StreamToken
from ._base import Capabilities, HealthResult, HttpProvider, Messages, Provider, is_local_url
from ._http import Timeouts, close_sessions
from ._record import FunctionProvider, MessageFormat, ProviderRecord, function_record
from ._table import (
    PROVIDER_ENTRY_POINTS,
    PROVIDERS,
    add_provider,
    find_provider,
    provider_record,
    provider_records,
)
from .anthropic import RECORD as _ANTHROPIC
from .anthropic import Anthropic, anthropic
from .bedrock import RECORD as _BEDROCK
from .bedrock import Bedrock, bedrock
from .cached import CachedProvider, cache_key
from .gemini import RECORD as _GEMINI
from .gemini import Gemini, gemini
from .llama import RECORD as _LLAMA
from .llama import LlamaProvider, llama
from .openai import (
    OPENAI_MESSAGES,
    OpenAIChat,
    OpenAICompatible,
    OpenAIResponses,
    openai_chat,
    openai_compatible,
    openai_responses,
)
from .openai import RECORDS as _OPENAI
from .sdk import from_anthropic_stream, from_openai_stream
from .sse_client import sse

__all__ = [
    "BUILTIN_RECORDS",
    "OPENAI_MESSAGES",
    "PROVIDERS",
    "PROVIDER_ENTRY_POINTS",
    "Anthropic",
    "Bedrock",
    "CachedProvider",
    "Capabilities",
    "FunctionProvider",
    "Gemini",
    "HealthResult",
    "HttpProvider",
    "LlamaProvider",
    "MessageFormat",
    "Messages",
    "OpenAIChat",
    "OpenAICompatible",
    "OpenAIResponses",
    "Provider",
    "ProviderRecord",
    "Timeouts",
    "add_provider",
    "anthropic",
    "bedrock",
    "cache_key",
    "close_sessions",
    "find_provider",
    "from_anthropic_stream",
    "from_openai_stream",
    "function_record",
    "gemini",
    "get_provider",
    "is_local_url",
    "llama",
    "openai_chat",
    "openai_compatible",
    "openai_responses",
    "provider_record",
    "provider_records",
    "sse",
    "stream",
]


BUILTIN_RECORDS: tuple[ProviderRecord, ...] = (*_OPENAI, _ANTHROPIC, _GEMINI, _BEDROCK, _LLAMA)
"""The records of this package's provider modules (``testing`` comes by entry point)."""

for _record in BUILTIN_RECORDS:
    add_provider(_record)

_CONFIG_NAMES = frozenset({"api_key", "base_url", "timeout", "headers", "include_usage"})


def get_provider(name: str, **config: Any) -> Provider:
    """The provider registered as `name`, configured with `config`.

    Raises:
        ConfigError: unknown name (the message lists the known ones), or a missing API key.

    Example:
        >>> get_provider("openai", api_key="sk-test").capabilities.tools
        True
    """
    factory = provider_record(name).factory
    try:
        return factory(**config)
    except TypeError as exc:
        raise ConfigError(f"invalid configuration for provider {name!r}: {exc}") from None


def _split_config(factory: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the provider configuration out of `kwargs` (the rest are request parameters).

    Configuration is what the factory names (``region`` and ``profile`` for Bedrock too),
    or the usual `_CONFIG_NAMES` for a factory that takes ``**config``.
    """
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        accepted = set(_CONFIG_NAMES)
    else:
        accepted = {p.name for p in parameters}
    return {k: kwargs.pop(k) for k in list(kwargs) if k in accepted}


def stream(
    model_id: str,
    prompt_or_messages: Messages,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> Observable[StreamToken]:
    """Stream from ``"provider:model"`` as a cold ``Observable[StreamToken]``.

    Args:
        model_id: ``"openai:gpt-4o-mini"``, ``"anthropic:claude-sonnet-4-5"``,
            ``"gemini:gemini-2.5-flash"``, ``"openai_compatible:llama3"`` (with
            ``base_url=``), ``"testing:demo"`` ... The model is everything after the
            first colon (``"openai_compatible:llama3:8b"`` is model ``llama3:8b``).
        prompt_or_messages: a prompt string or ``{"role", "content"}`` messages.
        tools: neutral tool dicts ``{"name", "description", "parameters"}``.
        **kwargs: provider configuration (``api_key``, ``base_url``, ``timeout``,
            ``headers``, ``include_usage``; whatever the provider's factory takes, such as
            Bedrock's ``region``) and request parameters (``temperature``, ``max_tokens`` ...).

    Raises:
        ConfigError: a malformed id, an unknown provider (listing the known ones),
            or a missing API key.

    Example:
        >>> tokens = stream("openai:gpt-4o-mini", "Say hi", api_key="sk-test")  # cold
    """
    if not isinstance(model_id, str):
        raise ConfigError(f"model_id must be a 'provider:model' string, got {model_id!r}")
    name, sep, model = model_id.partition(":")
    record = find_provider(name)
    if record is None:
        raise ConfigError(
            f"unknown provider {name!r} in {model_id!r}; known providers: "
            f"{', '.join(provider_records())} (ids look like 'anthropic:claude-sonnet-4-5')"
        )
    if not sep or not model:
        raise ConfigError(
            f"model id {model_id!r} has no model: write '{name}:MODEL', e.g. "
            f"'anthropic:claude-sonnet-4-5'"
        )
    params = dict(kwargs)
    config = _split_config(record.factory, params)
    provider = get_provider(name, **config)
    return provider.stream(model, prompt_or_messages, tools=tools, **params)
