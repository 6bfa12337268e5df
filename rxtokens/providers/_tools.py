"""Tool definitions in each provider's format: passed through as sent, converted across formats.

A tool may arrive in any provider's shape (a client of the OpenAI-compatible
proxy sends OpenAI chat tools; an agent sends rxtokens' neutral
``{"name", "description", "parameters"}``). `tools_for` gives each tool in the
target provider's format: a tool already in that format is passed through
unchanged (a deep copy: ``strict``, ``cache_control`` and any other field
survive, nothing is invented); a tool in another format is converted, keeping
the fields the target knows (``strict`` between OpenAI chat and Responses).
A tool whose ``type`` is neither ``function`` nor absent (a provider's built-in
tool: web search, code execution ...) is passed through as it is.

Formats (of one function tool):

- ``openai_chat``: ``{"type": "function", "function": {name, description, parameters, strict}}``
- ``openai_responses``: ``{"type": "function", name, description, parameters, strict}``
- ``anthropic``: ``{name, description, input_schema, ...}``
- ``gemini``: a function declaration ``{name, description, parameters}``, or a whole
  tool ``{"functionDeclarations": [...]}``
- ``bedrock``: ``{"toolSpec": {name, description, "inputSchema": {"json": ...}}}``
- neutral: ``{name, description, parameters, ...}`` (what `rxtokens.tools.Tool.schema` gives)

Example:
    >>> tool = {"type": "function", "function": {"name": "f", "strict": True, "parameters": {}}}
    >>> tools_for("openai_chat", [tool]) == [tool]
    True
    >>> tools_for("openai_responses", [tool])
    [{'type': 'function', 'name': 'f', 'parameters': {}, 'strict': True}]
    >>> tools_for("anthropic", [{"name": "f"}])
    [{'name': 'f', 'input_schema': {'type': 'object', 'properties': {}}}]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["ToolFormat", "tools_for"]

ToolFormat = Literal["openai_chat", "openai_responses", "anthropic", "gemini", "bedrock"]

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
"""The schema of a tool without parameters, where the target requires one."""

_PORTABLE = ("strict",)
"""Fields beyond name/description/parameters that OpenAI chat and Responses share."""


def _source_format(tool: Mapping[str, Any]) -> str:
    """The format `tool` is written in (``neutral`` when it is none of the providers')."""
    kind = tool.get("type")
    if kind == "function":
        return "openai_chat" if isinstance(tool.get("function"), Mapping) else "openai_responses"
    if kind is not None and kind != "custom":
        return "builtin"
    if "toolSpec" in tool:
        return "bedrock"
    if "functionDeclarations" in tool:
        return "gemini"
    if "input_schema" in tool:
        return "anthropic"
    return "neutral"


def _parts(tool: Mapping[str, Any], fmt: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(core, extra)`` per function: core has name and (if sent) description, parameters."""
    if fmt == "openai_chat":
        specs: list[Any] = [tool["function"]]
    elif fmt == "bedrock":
        spec = dict(tool["toolSpec"]) if isinstance(tool["toolSpec"], Mapping) else {}
        schema = spec.pop("inputSchema", None)
        if isinstance(schema, Mapping) and "json" in schema:
            spec["parameters"] = schema["json"]
        specs = [spec]
    elif fmt == "gemini":
        declarations = tool["functionDeclarations"]
        specs = list(declarations) if isinstance(declarations, Sequence) else [declarations]
    elif fmt == "anthropic":
        spec = dict(tool)
        spec["parameters"] = spec.pop("input_schema")
        specs = [spec]
    else:
        specs = [{k: v for k, v in tool.items() if k != "type"}]
    out = []
    for spec in specs:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ConfigError(
                f"a tool needs a 'name' (neutral form: {{'name', 'description', "
                f"'parameters'}}; OpenAI, Anthropic, Gemini and Bedrock shapes are accepted "
                f"too), got {dict(tool)!r}"
            )
        core = {k: spec[k] for k in ("name", "description", "parameters") if k in spec}
        extra = {k: v for k, v in spec.items() if k not in core}
        out.append((copy.deepcopy(core), copy.deepcopy(extra)))
    return out


def _build(target: str, core: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """One function tool in `target`'s format from its parts."""
    name = {"name": core["name"]}
    described = {"description": core["description"]} if "description" in core else {}
    parameters = core.get("parameters")
    if target == "openai_chat":
        return {"type": "function", "function": {**core, **extra}}
    if target == "openai_responses":
        return {"type": "function", **core, **extra}
    if target == "anthropic":
        return {**name, **described, "input_schema": parameters or _EMPTY_SCHEMA, **extra}
    if target == "bedrock":
        schema = {"inputSchema": {"json": parameters or _EMPTY_SCHEMA}}
        return {"toolSpec": {**name, **described, **schema, **extra}}
    return {**core, **extra}  # gemini: a function declaration


def tools_for(target: ToolFormat, tools: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """`tools` in `target`'s format (see the module docstring); [] for None.

    For ``gemini`` the result is the list of function declarations (the caller wraps
    them in ``{"functionDeclarations": [...]}``), plus built-in tools as sent.

    Raises:
        ConfigError: `tools` is not a list of dicts, or a function tool has no name.
    """
    if tools is None:
        return []
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
        raise ConfigError(f"tools must be a list of tool dicts, got {tools!r}")
    result: list[Any] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise ConfigError(f"tool {i} must be a dict, got {tool!r}")
        fmt = _source_format(tool)
        if fmt == "builtin" or fmt == target:
            if fmt == "gemini":  # a whole Gemini tool: its declarations
                result.extend(copy.deepcopy(list(tool["functionDeclarations"])))
            else:
                result.append(copy.deepcopy(dict(tool)))
            continue
        for core, extra in _parts(tool, fmt):
            if fmt != "neutral":  # converting: keep only what the target knows
                keep = _PORTABLE if target in ("openai_chat", "openai_responses") else ()
                extra = {k: v for k, v in extra.items() if k in keep}
            result.append(_build(target, core, extra))
    return result
