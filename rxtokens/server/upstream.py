"""What the server streams: the configured upstream (a provider id or a function) and pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from reactivex import Observable

from ..cache import CacheStore
from ..errors import ConfigError
from ..inflight import ToolRegistry, dispatch_tools, run_agent
from ..operators import cache
from ..providers import (
    PROVIDERS,
    cache_key,
    get_provider,
    provider_record,
    provider_records,
    stream,
)
from ..spec import parse_operators
from ..tokens import StreamToken
from ..ui_messages import RESPONSES, check_format
from .state import Operator, UpstreamFactory


def _cached(
    make: Callable[[Any, dict[str, Any]], Observable[StreamToken]],
    store: CacheStore | None,
    name: str,
    model: str,
    keyed: Mapping[str, Any],
) -> Callable[[Any, dict[str, Any]], Observable[StreamToken]]:
    """`make` answering from `store` when a request's key matches (`cache_key` of the
    upstream `name`, `model`, the messages, tools and parameters, and `keyed` config)."""
    if store is None:
        return make

    def cached(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        rest = dict(params)
        tools = rest.pop("tools", None)
        key = cache_key(name, model, messages, tools=tools, **keyed, **rest)
        return make(messages, params).pipe(cache(store, key))

    return cached


def _make_upstream(
    upstream: str | UpstreamFactory, options: Mapping[str, Any], store: CacheStore | None = None
) -> tuple[Callable[[Any, dict[str, Any]], Observable[StreamToken]], str | None]:
    if callable(upstream):
        name = getattr(upstream, "__qualname__", type(upstream).__name__)
        keyed = {"upstream": f"{getattr(upstream, '__module__', '')}.{name}"}
        factory = upstream

        def custom(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
            return factory(messages, params)

        return _cached(custom, store, "function", "", keyed), None
    if not isinstance(upstream, str) or ":" not in upstream:
        raise ConfigError(
            f"upstream must be a 'provider:model' id (e.g. 'testing:demo', "
            f"'openai:gpt-4o-mini') or a function (messages, params) -> Observable, "
            f"got {upstream!r}"
        )
    name, _, model = upstream.partition(":")
    if name not in PROVIDERS or not model:
        raise ConfigError(
            f"upstream {upstream!r}: unknown provider or no model; known providers: "
            f"{', '.join(sorted(PROVIDERS))}"
        )
    if provider_record(name).env_vars:  # refuse to start rather than fail every request
        get_provider(name, **{k: options[k] for k in ("api_key", "base_url") if k in options})
    config = options  # the same dict: a demo upstream fills in its base_url at startup
    # keyed: the base_url configured now (not the demo's, which changes at each start)
    keyed = {"base_url": options["base_url"]} if "base_url" in options else {}

    def provider(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        return stream(upstream, messages, **config, **params)

    return _cached(provider, store, name, model, keyed), model


def _make_operators(pipeline: Operator | Sequence[Operator] | str | None) -> list[Operator]:
    if pipeline is None:
        return []
    if isinstance(pipeline, str):
        return [op.build() for op in parse_operators(pipeline)]
    if callable(pipeline):
        return [pipeline]
    if not isinstance(pipeline, Iterable):
        raise ConfigError(
            "pipeline must be an operator, a list of operators or a launch string, "
            f"got {pipeline!r}"
        )
    ops = list(pipeline)
    for i, op in enumerate(ops):
        if not callable(op):
            raise ConfigError(f"pipeline[{i}] must be an operator (a callable), got {op!r}")
    return ops


def _message_format(upstream: str | UpstreamFactory, given: str | None) -> str:
    """The message format of the upstream: `given`, else its provider's, else OpenAI chat's."""
    if given is not None:
        return check_format(given)
    name = upstream.partition(":")[0] if isinstance(upstream, str) else ""
    try:
        return check_format(name)
    except ConfigError:
        return "openai"


def _make_ui_source(
    make_source: Callable[[Any, dict[str, Any]], Observable[StreamToken]],
    tools: Any,
    max_steps: int,
    message_format: str,
) -> Callable[[list[dict[str, Any]]], Observable[Any]]:
    """What ``/v1/ui/chat`` streams for a conversation: the upstream, with the tools run.

    No tools: the upstream (and pipeline). With tools and ``max_steps`` 1: the
    upstream with the tools' schemas, then `dispatch_tools`; more steps: `run_agent`.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be an int >= 1, got {max_steps!r}")
    if tools is None:
        return lambda messages: make_source(messages, {})
    registry = ToolRegistry.coerce(tools)
    params = {"tools": registry.schemas()}
    if max_steps == 1:
        run_tools = dispatch_tools(registry)
        return lambda messages: make_source(messages, dict(params)).pipe(run_tools)
    if message_format == RESPONSES:
        raise ConfigError(
            "run_agent cannot send tool results in the OpenAI Responses format: "
            "use max_steps=1 (tools run, no follow-up request) or a chat completions upstream"
        )

    def agent(messages: list[dict[str, Any]]) -> Observable[Any]:
        return run_agent(
            lambda turn: make_source(turn, dict(params)),
            registry,
            messages,
            provider=message_format,
            max_steps=max_steps,
        ).tokens

    return agent


def _secrets(token: str | None, options: Mapping[str, Any]) -> tuple[str, ...]:
    """Every secret the server holds, by value: masked in everything it sends or logs.

    The bearer token, the configured ``api_key`` and the API keys, found in the
    environment, of every provider loaded so far (specs may start any of them;
    loading entry points here would import packages the server does not use).
    """
    found = [token, options.get("api_key")]
    for record in provider_records(entry_points=False).values():  # loaded ones: no import
        found.extend(os.environ.get(var) for var in record.env_vars)
    return tuple(dict.fromkeys(s for s in found if isinstance(s, str) and len(s) >= 4))


def _base_url(url: str) -> str:
    """A base URL as `allow_base_urls` compares it (no trailing slash)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"allow_base_urls: expected http(s) URLs, got {url!r}")
    return url.rstrip("/")
