"""Anthropic Messages API (``POST {base_url}/v1/messages`` with ``stream: true``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reactivex import Observable

from ..operators import decode_anthropic
from ..tokens import Completion, StreamToken
from ._base import Capabilities, HttpProvider, Messages, normalize_messages
from ._http import Timeouts
from ._record import MessageFormat, ProviderRecord, ToolOutcome, tool_call_id, tool_result_text
from ._tools import tools_for

__all__ = [
    "ANTHROPIC_MESSAGES",
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "RECORD",
    "Anthropic",
    "anthropic",
]

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header sent with every request."""
DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` is required by the API; this is used when the caller gives none."""


class Anthropic(HttpProvider):
    """Anthropic Messages streaming. System messages become the ``system`` field."""

    name = "anthropic"
    env_vars = ("ANTHROPIC_API_KEY",)
    default_base_url = "https://api.anthropic.com"
    capabilities_ = Capabilities(
        tools=True, reasoning=True, usage_in_stream=True, multiple_choices=False
    )

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def build_request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        params: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        system: list[Any] = []
        turns: list[dict[str, Any]] = []
        for message in normalize_messages(messages):
            if message["role"] in ("system", "developer"):
                content = message.get("content", "")
                if isinstance(content, str):
                    system.append(content)
                else:
                    system.extend(content)
            else:
                turns.append(message)
        body: dict[str, Any] = {
            "model": model,
            "messages": turns,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            if all(isinstance(s, str) for s in system):
                body["system"] = "\n\n".join(system)
            else:
                body["system"] = [
                    {"type": "text", "text": s} if isinstance(s, str) else s for s in system
                ]
        converted = tools_for("anthropic", tools)
        if converted:
            body["tools"] = converted
        body.update(params)
        return f"{self.base_url}/v1/messages", body

    def decoder(self) -> Callable[[Observable[Any]], Observable[StreamToken]]:
        return decode_anthropic()

    def health_url(self) -> str:
        return f"{self.base_url}/v1/models"


def anthropic(
    model: str,
    messages: Messages,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    timeout: Timeouts | float | None = None,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Observable[StreamToken]:
    """Stream a Claude answer as a cold ``Observable[StreamToken]``.

    Args:
        model: e.g. ``"claude-sonnet-4-5"``.
        messages: a prompt string or messages; ``system`` messages go to the system field.
        tools: neutral tool dicts ``{"name", "description", "parameters"}``.
        api_key: defaults to ``ANTHROPIC_API_KEY``; not needed for a local `base_url`.
        base_url: defaults to ``https://api.anthropic.com`` (without ``/v1``).
        max_tokens: required by the API.
        timeout: a `Timeouts` or one number of seconds for all three phases.
        headers: extra HTTP headers (``anthropic-beta`` ...).
        **params: more request fields (``temperature``, ``thinking`` ...).

    Example:
        >>> tokens = anthropic("claude-sonnet-4-5", "Say hi", api_key="sk-ant-test")
    """
    provider = Anthropic(api_key=api_key, base_url=base_url, timeout=timeout, headers=headers)
    return provider.stream(model, messages, tools=tools, max_tokens=max_tokens, **params)


def _tool_turn(
    completion: Completion, results: Sequence[ToolOutcome]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = []
    if completion.text:
        blocks.append({"type": "text", "text": completion.text})
    blocks.extend(
        {"type": "tool_use", "id": tool_call_id(call), "name": call.name, "input": call.arguments}
        for call in completion.tool_calls
    )
    answers: list[dict[str, Any]] = []
    for call, result in zip(completion.tool_calls, results, strict=True):
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": tool_call_id(call),
            "content": tool_result_text(result),
        }
        if result.error is not None:
            block["is_error"] = True
        answers.append(block)
    return {"role": "assistant", "content": blocks}, [{"role": "user", "content": answers}]


def _final_turn(completion: Completion) -> dict[str, Any]:
    return {"role": "assistant", "content": completion.text}


ANTHROPIC_MESSAGES = MessageFormat("anthropic", _tool_turn, _final_turn)
"""An assistant turn of ``text`` and ``tool_use`` blocks, then one user turn of
``tool_result`` blocks (``is_error`` on failure)."""

RECORD = ProviderRecord(
    "anthropic",
    Anthropic,
    anthropic,
    default_model="claude-sonnet-4-5",
    env_vars=Anthropic.env_vars,
    decoder=decode_anthropic,
    messages=ANTHROPIC_MESSAGES,
    wire_format="anthropic",
    capabilities=Anthropic.capabilities_,
    example={"base_url": "http://127.0.0.1:9"},
)
"""The Anthropic Messages provider."""
