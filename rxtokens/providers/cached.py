"""`CachedProvider`: any provider answering from a response cache, keyed by the request.

Why a provider wrapper (beside the operator ``ops.cache``): the key must cover
everything that changes the answer, and only the provider call sees all of it. The
wrapper derives the key from the call's own arguments (`cache_key`), so no parameter
can be forgotten; a hit never makes the request. ``ops.cache(store, key)`` is the
building block for sources that are not providers, with a key you choose.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from reactivex import Observable, abc

from ..cache import CacheStore, MemoryCache
from ..errors import ConfigError
from ..operators import cache
from ..operators._cache import Pace
from ..tokens import StreamToken
from ._base import Capabilities, HealthResult, Messages, Provider, normalize_messages
from ._tools import tools_for

__all__ = ["KEY_VERSION", "CachedProvider", "cache_key"]

KEY_VERSION = 1
"""Part of every key: bump it when the canonical form changes (old entries become misses)."""


def _canonical(value: Any, where: str) -> Any:
    """`value` in the one form its JSON is made from: dicts (sorted when dumped), lists,
    str, bool, None, int, and floats (an integral float becomes that int: 1.0 == 1)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cache key: {where} is not a finite number: {value!r}")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"cache key: {where} has a non-string key {k!r}")
            out[k] = _canonical(v, f"{where}.{k}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(
        f"cache key: {where} is not JSON-serialisable ({type(value).__name__}): {value!r:.80}"
    )


def cache_key(
    provider: str,
    model: str,
    messages: Messages,
    /,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    **params: Any,
) -> str:
    """A stable hash (SHA-256 hex) of a request: what a response cache keys answers by.

    Keyed: the provider name, the model, the messages (a prompt string counts as one
    user message), the tools (neutral and OpenAI-shaped forms count alike) and every
    other keyword given, which should be every request parameter (``temperature``,
    ``top_p``, ``max_tokens``, ``seed``, ``stop``, ``n``, ``response_format``,
    ``tool_choice`` ...) and the ``base_url`` when it changes which server answers.
    Not keyed: what you leave out, so never pass secrets (``api_key``, ``headers``)
    or transport settings (``timeout``). The hash is of canonical JSON (sorted keys,
    ``1.0`` written as ``1``): dict order and number spelling do not change it.

    Raises:
        ConfigError: a value that is not JSON (the message names where it is).

    Example:
        >>> a = cache_key("openai", "gpt-4o-mini", "Hi", temperature=0.0, seed=1)
        >>> b = cache_key("openai", "gpt-4o-mini", [{"content": "Hi", "role": "user"}],
        ...               seed=1, temperature=0)
        >>> a == b, a == cache_key("openai", "gpt-4o-mini", "Hi", temperature=0.5, seed=1)
        (True, False)
    """
    if not isinstance(provider, str) or not isinstance(model, str):
        raise ConfigError(f"cache key: provider and model must be strings, got {provider!r}")
    request = {
        "v": KEY_VERSION,
        "provider": provider,
        "model": model,
        "messages": normalize_messages(messages),
        "tools": tools_for("openai_chat", tools),  # one form for every shape of a tool
        "params": params,
    }
    canonical = _canonical(request, "request")
    text = json.dumps(
        canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CachedProvider:
    """A provider that answers from a response cache (see the module docstring).

    `stream` keys each request with `cache_key` (this provider's name, the model,
    messages, tools, every request parameter, and the wrapped provider's
    ``base_url``, or `namespace`) and pipes the provider's stream through
    ``ops.cache``: a hit replays without a request, with `Usage` marked
    ``cached``; a miss streams live and stores the answer once it completes.

    Args:
        provider: any `Provider` (``get_provider("openai")``, a ``testing`` one ...).
        store: where answers are kept (default: a new `MemoryCache`).
        pace: ``"instant"`` or ``"recorded"`` (replay at the recorded timing).
        ttl: seconds each answer lives (None: the store's default).
        scheduler: the replay's timers (see ``ops.cache``).
        namespace: keyed instead of the provider's ``base_url``: give a fixed one when
            the URL changes between runs (a loopback server on a random port) or to
            share answers between equivalent endpoints.

    Example:
        >>> from rxtokens.providers import get_provider
        >>> cached = CachedProvider(get_provider("openai", api_key="sk-test"))
        >>> tokens = cached.stream("gpt-4o-mini", "Say hi", temperature=0)  # cold
        >>> cached.name, cached.key("gpt-4o-mini", "Say hi") == cached.key("gpt-4o-mini", "Hi")
        ('openai', False)
    """

    def __init__(
        self,
        provider: Provider,
        store: CacheStore | None = None,
        *,
        pace: Pace = "instant",
        ttl: float | None = None,
        scheduler: abc.SchedulerBase | None = None,
        namespace: str | None = None,
    ) -> None:
        if namespace is not None and not isinstance(namespace, str):
            raise ConfigError(f"namespace must be a string or None, got {namespace!r}")
        if not callable(getattr(provider, "stream", None)):
            raise ConfigError(f"provider must be a Provider (with .stream), got {provider!r}")
        self.provider = provider
        self.store: CacheStore = MemoryCache() if store is None else store
        self.namespace = namespace
        self._options: dict[str, Any] = {"pace": pace, "ttl": ttl, "scheduler": scheduler}
        cache(self.store, "check", **self._options)  # validate the options now

    def __repr__(self) -> str:
        return f"CachedProvider({self.provider!r}, {self.store!r})"

    @property
    def name(self) -> str:
        """The wrapped provider's name."""
        return self.provider.name

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped provider's capabilities."""
        return self.provider.capabilities

    def key(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> str:
        """The cache key of this request (invalidate it with ``store.delete(key)``)."""
        base_url = self.namespace or getattr(self.provider, "base_url", None)
        if isinstance(base_url, str):
            params = {"base_url": base_url, **params}
        return cache_key(self.name, model, messages, tools=tools, **params)

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Observable[StreamToken]:
        """The provider's cold stream, answered from the cache when the key matches."""
        key = self.key(model, messages, tools=tools, **params)
        source = self.provider.stream(model, messages, tools=tools, **params)
        return source.pipe(cache(self.store, key, **self._options))

    async def health(self) -> HealthResult:
        """The wrapped provider's health."""
        return await self.provider.health()
