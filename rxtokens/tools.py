"""Tools: Python callables a model may call, with pydantic-validated arguments.

`Tool.from_function` reads a function's signature (annotations, defaults) and
its Google-style docstring (summary, ``Args:`` descriptions) and builds a
pydantic model of its arguments. The same model validates the arguments a
model sends and produces the JSON schema sent to the provider, so the two
never disagree. `ToolRegistry` holds tools by name; ``registry.schemas()`` is
the neutral ``{"name", "description", "parameters"}`` list every provider of
`rxtokens.providers` accepts as ``tools=``.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import pydantic
from pydantic import BaseModel, ConfigDict

from .errors import ConfigError, ToolArgumentsError

__all__ = ["Tool", "ToolArgumentsError", "ToolRegistry"]

_F = TypeVar("_F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Tool names every provider accepts (OpenAI, Anthropic and Gemini share this subset)."""

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Example|Examples|Note|Notes):\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) of a Google-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        heading = _SECTION.match(stripped) if not line.startswith(" ") else None
        if heading:
            section = heading.group(1)
            current = None
            arg_indent = None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if arg_indent is None:
            arg_indent = indent
        found = _ARG_LINE.match(stripped) if indent <= arg_indent else None
        if found:
            current = found.group(1).lstrip("*")
            params[current] = found.group(2).strip()
        elif current is not None:  # a continuation line
            params[current] = f"{params[current]} {stripped}".strip()
    text = "\n".join(summary).strip()
    return re.sub(r"\s*\n\s*", " ", text.split("\n\n")[0]).strip(), params


def _strip_titles(node: Any) -> Any:
    """A JSON schema without pydantic's generated ``title`` keys (property names kept)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(
                value, dict
            ):
                out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
            else:
                out[key] = _strip_titles(value)
        return out
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    return node


def _is_async_callable(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 (callable objects)
    return call is not None and inspect.iscoroutinefunction(call)


def _summarise(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item.get("loc", ())) or "(arguments)"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Tool:
    """One callable tool: its name, description, JSON schema and argument validator.

    Build one with `Tool.from_function` (or let `ToolRegistry` do it).

    Attributes:
        name: the name the model calls it by.
        description: what it does (from the docstring's summary unless given).
        function: the Python callable (sync or async).
        parameters: the JSON schema of its arguments (``{"type": "object", ...}``).
        is_async: whether calling it returns a coroutine (run on the event loop;
            sync tools run in a thread executor).
        timeout: seconds this tool may run (None: the dispatcher's default).

    Example:
        >>> def add(a: int, b: int) -> int:
        ...     '''Add two numbers.'''
        ...     return a + b
        >>> tool = Tool.from_function(add)
        >>> tool.name, tool.description
        ('add', 'Add two numbers.')
    """

    name: str
    description: str
    function: Callable[..., Any]
    parameters: dict[str, Any]
    is_async: bool
    timeout: float | None = None
    _model: type[BaseModel] = field(default=BaseModel, repr=False, compare=False)
    _fields: tuple[tuple[str, str, bool], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """Describe `function` as a tool.

        Every parameter needs to be passable by name or position (no ``*args`` /
        ``**kwargs``); annotations become the schema types (missing ones accept
        anything), defaults make a parameter optional, ``Annotated[T,
        Field(description=...)]`` and the docstring's ``Args:`` section give
        parameter descriptions. Unknown arguments are rejected when validating.

        Raises:
            ConfigError: not callable, an invalid name, ``*args`` / ``**kwargs``,
                annotations that cannot be resolved or turned into a schema, or an
                invalid timeout.

        Example:
            >>> def weather(city: str, days: int = 1) -> str:
            ...     '''The forecast for a city.
            ...
            ...     Args:
            ...         city: the city name.
            ...         days: how many days ahead.
            ...     '''
            ...     return "sunny"
            >>> tool = Tool.from_function(weather)
            >>> tool.schema()["parameters"]["properties"]["city"]
            {'description': 'the city name.', 'type': 'string'}
        """
        if not callable(function):
            raise ConfigError(f"a tool must be a callable, got {function!r}")
        tool_name = name if name is not None else getattr(function, "__name__", None)
        if not isinstance(tool_name, str) or not _NAME.match(tool_name):
            raise ConfigError(
                f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-' "
                f"(pass name=...)"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ConfigError(f"tool {tool_name!r}: timeout must be > 0 or None, got {timeout!r}")
        summary, arg_docs = _parse_docstring(inspect.getdoc(function))
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"tool {tool_name!r}: cannot read its signature: {exc}") from None
        target: Any = function
        if not (inspect.isfunction(function) or inspect.ismethod(function)):
            target = getattr(function, "__call__", function)  # noqa: B004 (callable objects)
        try:
            hints = typing.get_type_hints(target, include_extras=True)
        except Exception as exc:
            raise ConfigError(
                f"tool {tool_name!r}: cannot resolve the annotations of its parameters ({exc}); "
                f"types they name must be importable from the function's module (not local "
                f"to another function)"
            ) from None
        definitions: dict[str, Any] = {}
        fields: list[tuple[str, str, bool]] = []
        for i, parameter in enumerate(signature.parameters.values()):
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ConfigError(
                    f"tool {tool_name!r}: *args / **kwargs ({parameter.name!r}) cannot be "
                    f"described to a model; list the parameters explicitly"
                )
            annotation = hints.get(parameter.name, Any)
            default = ... if parameter.default is parameter.empty else parameter.default
            internal = f"p{i}"  # never shadows a BaseModel attribute; the alias is the name
            extra: dict[str, Any] = {}
            if parameter.name in arg_docs:
                extra["description"] = arg_docs[parameter.name]
            definitions[internal] = (
                annotation,
                pydantic.Field(default, alias=parameter.name, **extra),
            )
            fields.append((internal, parameter.name, parameter.kind is parameter.POSITIONAL_ONLY))
        try:
            model = pydantic.create_model(
                f"{tool_name}_arguments",
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **definitions,
            )
            schema = _strip_titles(model.model_json_schema(by_alias=True))
        except Exception as exc:
            raise ConfigError(
                f"tool {tool_name!r}: its parameters cannot be described as JSON schema: {exc}"
            ) from None
        schema.pop("additionalProperties", None)
        schema.setdefault("properties", {})
        return cls(
            name=tool_name,
            description=description if description is not None else summary,
            function=function,
            parameters=schema,
            is_async=_is_async_callable(function),
            timeout=None if timeout is None else float(timeout),
            _model=model,
            _fields=tuple(fields),
        )

    def schema(self) -> dict[str, Any]:
        """The neutral ``{"name", "description", "parameters"}`` dict providers accept."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def bind(self, arguments: Mapping[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
        """Validate `arguments` and return ``(args, kwargs)`` for calling the function.

        Raises:
            ToolArgumentsError: the arguments are not an object, miss a required
                parameter, have an unknown one, or a value of the wrong type.
        """
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: expected a JSON object, "
                f"got {arguments!r}"
            )
        try:
            validated = self._model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: {_summarise(exc)}"
            ) from None
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for internal, public, positional in self._fields:
            value = getattr(validated, internal)
            if positional:
                args.append(value)
            else:
                kwargs[public] = value
        return args, kwargs


class ToolRegistry:
    """Tools by name, for `dispatch_tools` and `run_agent`.

    Args:
        tools: callables (or `Tool` s) to register now; a mapping registers each
            callable under its key.

    Raises:
        ConfigError: a tool cannot be described, or two tools share a name.

    Example:
        >>> registry = ToolRegistry()
        >>> @registry.tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two numbers.'''
        ...     return a + b
        >>> [s["name"] for s in registry.schemas()], registry["add"].bind({"a": 1, "b": "2"})
        (['add'], ([], {'a': 1, 'b': 2}))
    """

    __slots__ = ("_tools",)

    def __init__(
        self, tools: Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any]] = ()
    ) -> None:
        self._tools: dict[str, Tool] = {}
        if isinstance(tools, Mapping):
            for name, function in tools.items():
                self.add(function, name=name)
        elif isinstance(tools, Iterable) and not isinstance(tools, str):
            for item in tools:
                self.add(item)
        else:
            raise ConfigError(
                f"tools must be a list of callables or a {{name: callable}} dict, got {tools!r}"
            )

    @classmethod
    def coerce(
        cls,
        tools: ToolRegistry
        | Iterable[Callable[..., Any] | Tool]
        | Mapping[str, Callable[..., Any]],
    ) -> ToolRegistry:
        """`tools` itself if it is a registry, else a new registry of them."""
        if isinstance(tools, ToolRegistry):
            return tools
        if isinstance(tools, str | bytes) or not isinstance(tools, Iterable | Mapping):
            raise ConfigError(
                f"tools must be a ToolRegistry, a list of callables or a {{name: callable}} "
                f"dict, got {tools!r}"
            )
        return cls(tools)

    def add(
        self,
        function: Callable[..., Any] | Tool,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """Register `function` (see `Tool.from_function`) and return its `Tool`.

        Raises:
            ConfigError: it cannot be described, or its name is taken.
        """
        if isinstance(function, Tool):
            tool = function
        else:
            tool = Tool.from_function(function, name=name, description=description, timeout=timeout)
        if tool.name in self._tools:
            raise ConfigError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    @overload
    def tool(self, function: _F) -> _F: ...

    @overload
    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Callable[[_F], _F]: ...

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Decorator registering a function (``@registry.tool`` or ``@registry.tool(name=...)``).

        The function is returned unchanged.
        """

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(fn, name=name, description=description, timeout=timeout)
            return fn

        return register if function is None else register(function)

    def schemas(self) -> list[dict[str, Any]]:
        """The neutral tool dicts ``{"name", "description", "parameters"}`` for ``tools=``."""
        return [tool.schema() for tool in self._tools.values()]

    def get(self, name: str) -> Tool | None:
        """The tool called `name`, or None."""
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._tools)

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; known tools: {self.names}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names!r})"
