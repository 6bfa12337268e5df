"""OpenAI: Chat Completions and Responses, and OpenAI-compatible servers by ``base_url``.

Chat Completions is the wire format that vLLM, llama.cpp's server, Ollama, LM Studio
and most gateways speak too: point `openai_chat` (or `openai_compatible`) at their
``/v1`` base URL; no API key is needed for a local one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reactivex import Observable

from ..errors import ConfigError
from ..operators import decode_openai_chat, decode_openai_responses
from ..tokens import Completion, StreamToken
from ._base import Capabilities, HttpProvider, Messages, normalize_messages
from ._http import Timeouts
from ._record import MessageFormat, ProviderRecord, ToolOutcome, tool_call_id, tool_result_text
from ._tools import tools_for

__all__ = [
    "OPENAI_MESSAGES",
    "RECORDS",
    "OpenAIChat",
    "OpenAICompatible",
    "OpenAIResponses",
    "openai_chat",
    "openai_compatible",
    "openai_responses",
]


class _OpenAIProvider(HttpProvider):
    """What the OpenAI APIs share: the bearer key, ``OPENAI_BASE_URL`` and the health URL."""

    env_vars = ("OPENAI_API_KEY",)
    default_base_url = "https://api.openai.com/v1"

    def _env_base_url(self) -> str | None:
        return os.environ.get("OPENAI_BASE_URL") or None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def health_url(self) -> str:
        return f"{self.base_url}/models"


class OpenAIChat(_OpenAIProvider):
    """OpenAI Chat Completions (``POST {base_url}/chat/completions`` with ``stream: true``)."""

    name = "openai"
    capabilities_ = Capabilities(
        tools=True, reasoning=False, usage_in_stream=True, multiple_choices=True
    )

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeouts | float | None = None,
        headers: Mapping[str, str] | None = None,
        include_usage: bool = True,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, headers=headers)
        self.include_usage = include_usage

    def build_request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        params: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": model,
            "messages": normalize_messages(messages),
            "stream": True,
        }
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        converted = tools_for("openai_chat", tools)
        if converted:
            body["tools"] = converted
        body.update(params)
        return f"{self.base_url}/chat/completions", body

    def decoder(self) -> Callable[[Observable[Any]], Observable[StreamToken]]:
        return decode_openai_chat()


class OpenAICompatible(OpenAIChat):
    """An OpenAI-compatible server (vLLM, llama.cpp, Ollama ...): `base_url` is required.

    The key comes from the argument or ``OPENAI_COMPATIBLE_API_KEY`` (never from
    ``OPENAI_API_KEY``: that key must not be sent to another host); local servers need none.
    """

    name = "openai_compatible"
    env_vars = ("OPENAI_COMPATIBLE_API_KEY",)
    default_base_url = ""
    capabilities_ = Capabilities(
        tools=True, reasoning=True, usage_in_stream=True, multiple_choices=True
    )

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeouts | float | None = None,
        headers: Mapping[str, str] | None = None,
        include_usage: bool = True,
    ) -> None:
        if not base_url:
            raise ConfigError(
                "openai_compatible needs base_url=..., e.g. 'http://127.0.0.1:8000/v1' (vLLM), "
                "'http://127.0.0.1:8080/v1' (llama.cpp) or 'http://127.0.0.1:11434/v1' (Ollama)"
            )
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            include_usage=include_usage,
        )

    def _env_base_url(self) -> str | None:
        return None


class OpenAIResponses(_OpenAIProvider):
    """The OpenAI Responses API (``POST {base_url}/responses`` with ``stream: true``)."""

    name = "openai_responses"
    capabilities_ = Capabilities(
        tools=True, reasoning=True, usage_in_stream=True, multiple_choices=False
    )

    def build_request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        params: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": model,
            "input": messages if isinstance(messages, str) else normalize_messages(messages),
            "stream": True,
        }
        converted = tools_for("openai_responses", tools)
        if converted:
            body["tools"] = converted
        body.update(params)
        return f"{self.base_url}/responses", body

    def decoder(self) -> Callable[[Observable[Any]], Observable[StreamToken]]:
        return decode_openai_responses()


def openai_chat(
    model: str,
    messages: Messages,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    include_usage: bool = True,
    timeout: Timeouts | float | None = None,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Observable[StreamToken]:
    """Stream a Chat Completion as a cold ``Observable[StreamToken]``.

    Args:
        model: the model name, e.g. ``"gpt-4o-mini"``.
        messages: a prompt string or ``[{"role": ..., "content": ...}]`` messages.
        tools: neutral tool dicts ``{"name", "description", "parameters"}`` (JSON schema).
        api_key: defaults to ``OPENAI_API_KEY``; not needed for a local `base_url`.
        base_url: defaults to ``OPENAI_BASE_URL`` or ``https://api.openai.com/v1``.
        include_usage: ask for the trailing usage chunk (``stream_options``).
        timeout: a `Timeouts` or one number of seconds for all three phases.
        headers: extra HTTP headers.
        **params: more request fields, sent as they are (``temperature``, ``n`` ...).

    Raises:
        ConfigError: now, when no key is configured for a remote base URL.

    Example:
        >>> tokens = openai_chat("gpt-4o-mini", "Say hi", api_key="sk-test")  # cold
    """
    provider = OpenAIChat(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        headers=headers,
        include_usage=include_usage,
    )
    return provider.stream(model, messages, tools=tools, **params)


def openai_compatible(
    model: str,
    messages: Messages,
    *,
    base_url: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    include_usage: bool = True,
    timeout: Timeouts | float | None = None,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Observable[StreamToken]:
    """Stream from an OpenAI-compatible server (vLLM, llama.cpp, Ollama ...) at `base_url`.

    Example:
        >>> tokens = openai_compatible("llama3", "Hi", base_url="http://127.0.0.1:11434/v1")
    """
    provider = OpenAICompatible(
        api_key=api_key,
        base_url=base_url,
        timeout=timeout,
        headers=headers,
        include_usage=include_usage,
    )
    return provider.stream(model, messages, tools=tools, **params)


def openai_responses(
    model: str,
    messages: Messages,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: Timeouts | float | None = None,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Observable[StreamToken]:
    """Stream an OpenAI Responses API answer as a cold ``Observable[StreamToken]``.

    Arguments are as for `openai_chat`; a prompt string is sent as ``input`` unchanged.

    Example:
        >>> tokens = openai_responses("gpt-4o-mini", "Say hi", api_key="sk-test")
    """
    provider = OpenAIResponses(api_key=api_key, base_url=base_url, timeout=timeout, headers=headers)
    return provider.stream(model, messages, tools=tools, **params)


def _tool_turn(
    completion: Completion, results: Sequence[ToolOutcome]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [
            {
                "id": tool_call_id(call),
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in completion.tool_calls
        ],
    }
    replies = [
        {"role": "tool", "tool_call_id": tool_call_id(call), "content": tool_result_text(result)}
        for call, result in zip(completion.tool_calls, results, strict=True)
    ]
    return assistant, replies


def _final_turn(completion: Completion) -> dict[str, Any]:
    return {"role": "assistant", "content": completion.text}


OPENAI_MESSAGES = MessageFormat("openai", _tool_turn, _final_turn)
"""Chat Completions messages: an assistant turn with ``tool_calls`` (arguments as a JSON
string), then one ``{"role": "tool", "tool_call_id", "content"}`` per call. The neutral
message shape every provider here accepts, and the default of `rxtokens.register_provider`."""

_LOCAL = {"base_url": "http://127.0.0.1:9/v1"}

RECORDS = (
    ProviderRecord(
        "openai",
        OpenAIChat,
        openai_chat,
        default_model="gpt-4o-mini",
        env_vars=OpenAIChat.env_vars,
        aliases=("openai_chat",),
        decoder=decode_openai_chat,
        messages=OPENAI_MESSAGES,
        wire_format="openai_chat",
        capabilities=OpenAIChat.capabilities_,
        example=_LOCAL,
    ),
    ProviderRecord(
        "openai_responses",
        OpenAIResponses,
        openai_responses,
        default_model="gpt-4o-mini",
        env_vars=OpenAIResponses.env_vars,
        decoder=decode_openai_responses,
        wire_format="openai_responses",
        capabilities=OpenAIResponses.capabilities_,
        example=_LOCAL,
    ),
    ProviderRecord(
        "openai_compatible",
        OpenAICompatible,
        openai_compatible,
        env_vars=OpenAICompatible.env_vars,
        decoder=decode_openai_chat,
        messages=OPENAI_MESSAGES,
        wire_format="openai_chat",
        capabilities=OpenAICompatible.capabilities_,
        summary="An OpenAI-compatible server (vLLM, llama.cpp server, Ollama ...) at base_url.",
        example=_LOCAL,
    ),
)
"""The OpenAI providers: Chat Completions (``openai``, alias ``openai_chat``), the Responses
API (its input items differ: not supported by ``run_agent``) and OpenAI-compatible servers."""
