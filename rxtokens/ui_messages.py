"""The AI SDK's ``UIMessage`` history as provider messages (the request side of ``useChat``).

``useChat`` sends the whole conversation with each request: a list of
``UIMessage`` objects ``{"id", "role": "system" | "user" | "assistant", "parts": [...]}``.
`to_provider_messages` writes it in a provider's message format, including the
tool calls of earlier turns and their outputs, so the next request continues
the conversation:

* ``text`` parts are the content (a user message with files becomes a list of
  content blocks: images and documents from ``file`` parts with a ``data:`` or
  ``http(s):`` URL);
* an assistant message is cut into its steps at ``step-start`` parts; a step
  with tool parts (``tool-<name>`` or ``dynamic-tool``) is written as the
  provider's tool-call turn followed by the tool results, exactly as
  `run_agent` writes them (`rxtokens.inflight.tool_messages`); a call still
  without output gets an error result, a call whose input never completed is
  left out;
* ``reasoning``, ``source-*`` and ``data-*`` parts are not sent back
  (providers need their own signatures to accept earlier reasoning).

Formats: those `run_agent` writes (``openai`` / ``openai_chat`` /
``openai_compatible`` / ``testing``: chat completions; ``anthropic``; ``gemini``;
a registered provider's), and ``openai_responses`` (Responses API input items).

Example:
    >>> history = [
    ...     {"id": "1", "role": "user", "parts": [{"type": "text", "text": "Weather?"}]},
    ...     {"id": "2", "role": "assistant", "parts": [
    ...         {"type": "step-start"},
    ...         {"type": "tool-weather", "toolCallId": "c1", "state": "output-available",
    ...          "input": {"city": "Paris"}, "output": "sunny"},
    ...         {"type": "step-start"}, {"type": "text", "text": "Sunny."}]},
    ... ]
    >>> for m in to_provider_messages(history, "openai"):
    ...     print(m)  # doctest: +NORMALIZE_WHITESPACE
    {'role': 'user', 'content': 'Weather?'}
    {'role': 'assistant', 'content': None, 'tool_calls': [{'id': 'c1', 'type': 'function',
     'function': {'name': 'weather', 'arguments': '{"city": "Paris"}'}}]}
    {'role': 'tool', 'tool_call_id': 'c1', 'content': 'sunny'}
    {'role': 'assistant', 'content': 'Sunny.'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError
from .inflight import assistant_message, tool_messages
from .tokens import Completion, ToolCall, ToolResult

__all__ = ["RESPONSES", "check_format", "to_provider_messages"]

RESPONSES = "openai_responses"
"""The OpenAI Responses API's input items: the one format written here, not by `run_agent`."""


def check_format(provider: str) -> str:
    """`provider` when `to_provider_messages` can write its format, else `ConfigError`.

    The formats are those `run_agent` writes tool results in (`rxtokens.inflight.tool_messages`:
    the provider's own), and ``openai_responses``.

    Example:
        >>> check_format("anthropic")
        'anthropic'
    """
    if provider == RESPONSES:
        return provider
    try:
        assistant_message(provider, Completion())
    except ConfigError as exc:
        raise ConfigError(
            f"unknown message format {provider!r} ({exc}); here {RESPONSES!r} is written too"
        ) from None
    return provider


def _parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    parts = message.get("parts")
    if not isinstance(parts, list) or not all(
        isinstance(p, Mapping) and isinstance(p.get("type"), str) for p in parts
    ):
        raise ConfigError(
            f"a UIMessage has a list of parts, each a dict with a 'type'; got {parts!r:.200}"
        )
    return parts


def _text(parts: Sequence[Mapping[str, Any]]) -> str:
    return "".join(str(p.get("text", "")) for p in parts if p["type"] == "text")


# --------------------------------------------------------------------------- user content


def _file_block(part: Mapping[str, Any], provider: str) -> dict[str, Any]:
    url = str(part.get("url", ""))
    media = str(part.get("mediaType", "application/octet-stream"))
    image = media.startswith("image/")
    inline = url.startswith("data:") and ";base64," in url
    data = url.split(";base64,", 1)[1] if inline else ""
    if provider == "anthropic":
        source = (
            {"type": "base64", "media_type": media, "data": data}
            if inline
            else {"type": "url", "url": url}
        )
        return {"type": "image" if image else "document", "source": source}
    if provider == "gemini":
        if inline:
            return {"inlineData": {"mimeType": media, "data": data}}
        return {"fileData": {"mimeType": media, "fileUri": url}}
    if provider == RESPONSES:
        if image:
            return {"type": "input_image", "image_url": url}
        name = str(part.get("filename") or "file")
        return {"type": "input_file", "filename": name, "file_data": url}
    if image:
        return {"type": "image_url", "image_url": {"url": url}}
    return {
        "type": "file",
        "file": {"filename": str(part.get("filename") or "file"), "file_data": url},
    }


def _text_block(text: str, provider: str) -> dict[str, Any]:
    if provider == "gemini":
        return {"text": text}
    return {"type": "input_text" if provider == RESPONSES else "text", "text": text}


def _user(role: str, parts: Sequence[Mapping[str, Any]], provider: str) -> dict[str, Any] | None:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "text":
            blocks.append(_text_block(str(part.get("text", "")), provider))
        elif part["type"] == "file" and role == "user":
            blocks.append(_file_block(part, provider))
    if not blocks:
        return None
    if all(_is_text(b) for b in blocks):
        return {"role": role, "content": "".join(_block_text(b) for b in blocks)}
    if provider == "gemini":
        return {"role": "user", "parts": blocks}
    return {"role": role, "content": blocks}


def _is_text(block: Mapping[str, Any]) -> bool:
    return block.get("type") in ("text", "input_text") or set(block) == {"text"}


def _block_text(block: Mapping[str, Any]) -> str:
    return str(block["text"])


# --------------------------------------------------------------------------- assistant steps


def _steps(parts: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    steps: list[list[Mapping[str, Any]]] = [[]]
    for part in parts:
        if part["type"] == "step-start":
            if steps[-1]:
                steps.append([])
        else:
            steps[-1].append(part)
    return [s for s in steps if s]


def _tool_name(part: Mapping[str, Any]) -> str | None:
    kind = part["type"]
    if kind == "dynamic-tool":
        return str(part.get("toolName", ""))
    if kind.startswith("tool-"):
        return str(kind[len("tool-") :])
    return None


def _calls(
    parts: Sequence[Mapping[str, Any]],
) -> tuple[list[ToolCall], list[ToolResult]]:
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    for part in parts:
        name = _tool_name(part)
        state = part.get("state")
        if name is None or state in (None, "input-streaming"):
            continue
        given = part.get("input")
        arguments = given if isinstance(given, dict) else {"input": given}
        call_id = str(part.get("toolCallId") or f"call_{len(calls)}")
        call = ToolCall(len(calls), call_id, name, arguments)
        calls.append(call)
        if state == "output-available":
            results.append(ToolResult(call_id, name, part.get("output"), None, call.index, 0.0))
        elif state == "output-error":
            error = str(part.get("errorText") or "the tool failed")
            results.append(ToolResult(call_id, name, None, error, call.index, 0.0))
        elif state == "output-denied":
            results.append(ToolResult(call_id, name, None, "denied by the user", call.index, 0.0))
    return calls, results


def _responses_step(
    text: str, calls: Sequence[ToolCall], results: Sequence[ToolResult]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if text:
        out.append({"role": "assistant", "content": text})
    by_id = {r.call_id: r for r in results}
    for call in calls:
        out.append(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": json.dumps(call.arguments, ensure_ascii=False),
            }
        )
    for call in calls:
        result = by_id.get(call.id)
        if result is None or result.error is not None:
            error = "the tool was not executed" if result is None else result.error
            output = json.dumps({"error": error}, ensure_ascii=False)
        elif isinstance(result.result, str):
            output = result.result
        else:
            output = json.dumps(result.result, ensure_ascii=False)
        out.append({"type": "function_call_output", "call_id": call.id, "output": output})
    return out


def _assistant(parts: Sequence[Mapping[str, Any]], provider: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in _steps(parts):
        text = _text(step)
        calls, results = _calls(step)
        if provider == RESPONSES:
            out.extend(_responses_step(text, calls, results))
        elif calls:
            out.extend(tool_messages(provider, Completion(text=text, tool_calls=calls), results))
        elif text:
            out.append(assistant_message(provider, Completion(text=text)))
    return out


def to_provider_messages(
    messages: Sequence[Mapping[str, Any]], provider: str
) -> list[dict[str, Any]]:
    """A ``UIMessage`` history as `provider`'s messages (see the module docstring).

    Args:
        messages: the ``messages`` of a ``useChat`` request (``UIMessage`` dicts).
        provider: a provider name whose format `check_format` accepts.

    Returns:
        The messages to pass as ``messages`` (or, for ``openai_responses``, ``input``).

    Raises:
        ConfigError: an unknown provider, or a message that is not a ``UIMessage``.

    Example:
        >>> to_provider_messages(
        ...     [{"role": "user", "parts": [{"type": "text", "text": "Hi"}]}], "gemini")
        [{'role': 'user', 'content': 'Hi'}]
    """
    check_format(provider)
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise ConfigError(f"messages must be a list of UIMessage dicts, got {messages!r:.200}")
    out: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise ConfigError(f"a UIMessage is a dict, got {message!r:.200}")
        role = message.get("role")
        parts = _parts(message)
        if role == "assistant":
            out.extend(_assistant(parts, provider))
        elif role in ("user", "system"):
            converted = _user(role, parts, provider)
            if converted is not None:
                out.append(converted)
        else:
            raise ConfigError(
                f"a UIMessage's role is 'system', 'user' or 'assistant', got {role!r}"
            )
    return out
