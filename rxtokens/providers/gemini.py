"""Google Gemini (``POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from reactivex import Observable

from ..errors import ConfigError
from ..operators import decode_gemini
from ..tokens import Completion, StreamToken
from ._base import Capabilities, HttpProvider, Messages, normalize_messages
from ._http import Timeouts
from ._record import MessageFormat, ProviderRecord, ToolOutcome
from ._tools import tools_for

__all__ = ["GEMINI_MESSAGES", "GENERATION_CONFIG_NAMES", "RECORD", "Gemini", "gemini"]

GENERATION_CONFIG_NAMES = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "n": "candidateCount",
    "candidate_count": "candidateCount",
    "stop": "stopSequences",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
"""Familiar parameter names -> Gemini ``generationConfig`` fields."""


class Gemini(HttpProvider):
    """Gemini streaming over SSE; the key travels in the ``x-goog-api-key`` header."""

    name = "gemini"
    env_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_base_url = "https://generativelanguage.googleapis.com"
    capabilities_ = Capabilities(
        tools=True, reasoning=True, usage_in_stream=True, multiple_choices=True
    )

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key} if self._api_key else {}

    def build_request(
        self,
        model: str,
        messages: Messages,
        *,
        tools: Sequence[Mapping[str, Any]] | None,
        params: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        system: list[dict[str, Any]] = []
        contents: list[dict[str, Any]] = []
        for message in normalize_messages(messages):
            role = message["role"]
            if "parts" in message:  # already Gemini-shaped
                contents.append(dict(message))
                continue
            content = message.get("content", "")
            parts = [{"text": content}] if isinstance(content, str) else list(content)
            if role in ("system", "developer"):
                system.extend(parts)
            else:
                contents.append(
                    {"role": "model" if role == "assistant" else "user", "parts": parts}
                )
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        declarations = tools_for("gemini", tools)
        if declarations:
            body["tools"] = [{"functionDeclarations": declarations}]
        given = params.pop("generation_config", None) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"generation_config must be a dict, got {given!r}")
        config: dict[str, Any] = dict(given)
        for key in list(params):
            if key in GENERATION_CONFIG_NAMES:
                value = params.pop(key)
                if key == "stop" and isinstance(value, str):
                    value = [value]
                config[GENERATION_CONFIG_NAMES[key]] = value
        if config:
            body["generationConfig"] = config
        body.update(params)
        name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        return f"{self.base_url}/v1beta/{quote(name)}:streamGenerateContent?alt=sse", body

    def decoder(self) -> Callable[[Observable[Any]], Observable[StreamToken]]:
        return decode_gemini()

    def health_url(self) -> str:
        return f"{self.base_url}/v1beta/models"


def gemini(
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
    """Stream a Gemini answer as a cold ``Observable[StreamToken]``.

    Args:
        model: e.g. ``"gemini-2.5-flash"``.
        messages: a prompt string or messages (``assistant`` becomes ``model``,
            ``system`` becomes ``systemInstruction``).
        tools: neutral tool dicts ``{"name", "description", "parameters"}``.
        api_key: defaults to ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``.
        base_url: defaults to ``https://generativelanguage.googleapis.com``.
        timeout: a `Timeouts` or one number of seconds for all three phases.
        headers: extra HTTP headers.
        **params: ``temperature``, ``top_p``, ``max_tokens``, ``n``, ``stop`` ... go to
            ``generationConfig``; other fields (``safetySettings`` ...) are sent as they are.

    Example:
        >>> tokens = gemini("gemini-2.5-flash", "Say hi", api_key="test-key")
    """
    provider = Gemini(api_key=api_key, base_url=base_url, timeout=timeout, headers=headers)
    return provider.stream(model, messages, tools=tools, **params)


def _tool_turn(
    completion: Completion, results: Sequence[ToolOutcome]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    parts: list[dict[str, Any]] = []
    if completion.text:
        parts.append({"text": completion.text})
    for call in completion.tool_calls:
        function_call: dict[str, Any] = {"name": call.name, "args": call.arguments}
        if call.id:
            function_call["id"] = call.id
        parts.append({"functionCall": function_call})
    responses: list[dict[str, Any]] = []
    for call, result in zip(completion.tool_calls, results, strict=True):
        if result.error is not None:
            response: Any = {"error": result.error}
        elif isinstance(result.result, dict):
            response = result.result
        else:
            response = {"result": result.result}
        function_response: dict[str, Any] = {"name": call.name, "response": response}
        if call.id:
            function_response["id"] = call.id
        responses.append({"functionResponse": function_response})
    return {"role": "model", "parts": parts}, [{"role": "user", "parts": responses}]


def _final_turn(completion: Completion) -> dict[str, Any]:
    return {"role": "model", "parts": [{"text": completion.text}]}


GEMINI_MESSAGES = MessageFormat("gemini", _tool_turn, _final_turn)
"""A ``model`` turn of ``text`` and ``functionCall`` parts, then a user turn of
``functionResponse`` parts (a dict result as is, ``{"result": value}`` otherwise,
``{"error": message}`` on failure)."""

RECORD = ProviderRecord(
    "gemini",
    Gemini,
    gemini,
    default_model="gemini-2.5-flash",
    env_vars=Gemini.env_vars,
    decoder=decode_gemini,
    messages=GEMINI_MESSAGES,
    wire_format="gemini",
    capabilities=Gemini.capabilities_,
    example={"base_url": "http://127.0.0.1:9"},
)
"""The Gemini provider (``streamGenerateContent?alt=sse``)."""
