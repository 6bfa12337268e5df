"""What every HTTP provider shares: configuration, capabilities, health checks, messages."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
from reactivex import Observable

from ..errors import ConfigError
from ..operators import parse_sse
from ..tokens import StreamToken
from ._http import HttpRequest, Timeouts, acquire_session, error_from_response, redact, stream_bytes

__all__ = [
    "Capabilities",
    "HealthResult",
    "HttpProvider",
    "Messages",
    "Provider",
    "is_local_url",
    "normalize_messages",
]

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The largest SSE event a provider stream accepts before failing with StreamDecodeError
(a server that never ends an event would otherwise grow the buffer without bound)."""

Messages: TypeAlias = str | Sequence[Mapping[str, Any]]
"""A plain prompt (one user message) or OpenAI-style ``{"role", "content"}`` messages."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do.

    Attributes:
        tools: function / tool calling.
        reasoning: streams reasoning (thinking) text.
        usage_in_stream: reports token usage inside the stream.
        multiple_choices: several choices per request (``n > 1``).
        local: runs on this machine (no API key needed, no data leaves it).
    """

    tools: bool = True
    reasoning: bool = False
    usage_in_stream: bool = True
    multiple_choices: bool = False
    local: bool = False


@dataclass(frozen=True, slots=True)
class HealthResult:
    """The outcome of `HttpProvider.health`: does the key and the endpoint work?"""

    ok: bool
    status: int | None
    message: str
    provider: str = ""


def is_local_url(url: str) -> bool:
    """True for loopback / localhost URLs (no API key required there).

    Example:
        >>> is_local_url("http://127.0.0.1:8080/v1"), is_local_url("https://api.openai.com/v1")
        (True, False)
    """
    host = (urlsplit(url).hostname or "").lower()
    return (
        host in ("localhost", "::1", "0.0.0.0")
        or host.startswith("127.")
        or host.endswith(".localhost")
    )


def normalize_messages(messages: Messages) -> list[dict[str, Any]]:
    """A prompt string or a message sequence as a list of message dicts (copied)."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise ConfigError(
            f"messages must be a prompt string or a list of {{'role', 'content'}} dicts, "
            f"got {type(messages).__name__}"
        )
    result: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigError(f"message {i} must be a dict with a 'role', got {message!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            raise ConfigError(
                f"message {i} 'content' must be a string or a list of parts, got {content!r}"
            )
        result.append(dict(message))
    if not result:
        raise ConfigError("messages must not be empty")
    return result


@runtime_checkable
class Provider(Protocol):
    """What every registered provider offers (HTTP providers, llama.cpp, the loopback server)."""

    @property
    def name(self) -> str:
        """The registry name (``"openai"``, ``"llama"`` ...)."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What the provider supports."""
        ...

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Observable[StreamToken]:
        """A cold Observable of the model's answer to `messages`."""
        ...

    async def health(self) -> HealthResult:
        """A cheap check that the endpoint (and key) work."""
        ...


class HttpProvider(ABC):
    """Base of the HTTP providers: key, base URL, timeouts, capabilities, health.

    Subclasses set the class attributes and implement `auth_headers`, `build_request`,
    `decoder` and `health_url`. Constructing one validates the configuration: a missing
    API key for a remote base URL raises `ConfigError` naming the environment variable.
    """

    name: ClassVar[str]
    env_vars: ClassVar[tuple[str, ...]]
    default_base_url: ClassVar[str]
    capabilities_: ClassVar[Capabilities]
    requires_key: ClassVar[bool] = True
    """False for providers that authenticate otherwise when no key is given (Bedrock: SigV4)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeouts | float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if base_url is not None and not isinstance(base_url, str):
            raise ConfigError(f"base_url must be a string, got {base_url!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError(f"api_key must be a string, got {type(api_key).__name__}")
        if headers is not None and not isinstance(headers, Mapping):
            raise ConfigError(f"headers must be a dict of strings, got {headers!r}")
        url = (base_url or self._env_base_url() or self.default_base_url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, got {url!r}")
        self.base_url = url
        key = api_key
        if key is None:
            key = next((os.environ[v] for v in self.env_vars if os.environ.get(v)), None)
        if not key and self.requires_key and not is_local_url(url):
            names = " or ".join(self.env_vars)
            raise ConfigError(
                f"no API key for {self.name}: set {names} or pass api_key=... "
                f"(not needed for a local base_url such as http://127.0.0.1:8000)"
            )
        self._api_key = key or None
        self.timeouts = Timeouts.coerce(timeout)
        self.extra_headers = dict(headers or {})

    def _env_base_url(self) -> str | None:
        return None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    @property
    def capabilities(self) -> Capabilities:
        """What this provider (at this base URL) can do."""
        caps = self.capabilities_
        if is_local_url(self.base_url) and not caps.local:
            return Capabilities(
                caps.tools, caps.reasoning, caps.usage_in_stream, caps.multiple_choices, True
            )
        return caps

    @property
    def key_hint(self) -> str:
        """How to configure the key (shown in authentication errors)."""
        return f"set {' or '.join(self.env_vars)} or pass api_key=..."

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the API key (and version headers)."""

    @abstractmethod
    def build_request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        params: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body of a streaming request."""

    def parser(self) -> Callable[[Observable[bytes]], Observable[Any]]:
        """The operator that cuts the response body into events (SSE; Bedrock overrides it)."""
        return parse_sse(max_event_bytes=MAX_EVENT_BYTES)

    @abstractmethod
    def decoder(self) -> Callable[[Observable[Any]], Observable[StreamToken]]:
        """The decoder operator of this provider's events."""

    @abstractmethod
    def health_url(self) -> str:
        """A cheap authenticated GET (the model list)."""

    def request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> HttpRequest:
        """The `HttpRequest` `stream` sends (validated now, sent on subscription)."""
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a non-empty string, got {model!r}")
        url, body = self.build_request(model, messages, tools=tools, params=params)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **self.extra_headers,
            **self.auth_headers(),
        }
        return HttpRequest(
            "POST",
            url,
            self.name,
            headers=headers,
            json=body,
            timeouts=self.timeouts,
            secret=self._api_key,
            key_hint=self.key_hint,
        )

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Observable[StreamToken]:
        """A cold ``Observable[StreamToken]``: one streaming request per subscription."""
        request = self.request(model, messages, tools=tools, **params)
        return stream_bytes(request).pipe(self.parser(), self.decoder())

    def health_request(self) -> HttpRequest:
        """The cheap authenticated GET that `health` sends."""
        return HttpRequest(
            "GET",
            self.health_url(),
            self.name,
            headers={**self.extra_headers, **self.auth_headers()},
            timeouts=self.timeouts,
            secret=self._api_key,
            key_hint=self.key_hint,
            expect_event_stream=False,
        )

    async def health(self) -> HealthResult:
        """Check that the endpoint answers and accepts the key (a GET of the model list)."""
        request = self.health_request()
        t = self.timeouts
        try:
            session = await acquire_session()
            async with session.get(
                request.url,
                headers=request.send_headers(),
                timeout=aiohttp.ClientTimeout(
                    total=t.first_token, sock_connect=t.connect, ceil_threshold=1e9
                ),
            ) as response:
                body = await response.read()
                if response.status < 300:
                    return HealthResult(True, response.status, "ok", self.name)
                error = error_from_response(request, response.status, response.headers, body)
                return HealthResult(False, response.status, error.message, self.name)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            detail = redact(str(exc), self._api_key) or type(exc).__name__
            return HealthResult(
                False,
                None,
                f"cannot reach {request.url!r}: {type(exc).__name__}: {detail}",
                self.name,
            )
