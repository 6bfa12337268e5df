"""Serialisable pipelines: a `PipelineSpec` is data that builds a token stream.

A spec names a source (a registered provider with its model, prompt or messages and
parameters), a list of operators with their parameters and optional sinks. It
validates against the registries of `rxtokens.registry` (each entry has a pydantic
model of its parameters), round-trips exactly through JSON and through the launch
string (`rxtokens.launch`), and exports a JSON Schema for editors and UIs::

    {
      "version": 1,
      "source": {"provider": "openai_chat", "model": "gpt-4o-mini", "prompt": "Tell me a joke"},
      "operators": [
        {"name": "redact", "params": {"pattern": "\\\\d{16}"}},
        {"name": "preset", "params": {"name": "ui_smooth"}}
      ],
      "sinks": [{"name": "jsonl", "params": {"path": "tokens.jsonl"}}]
    }

The same pipeline as a launch string::

    openai_chat model=gpt-4o-mini prompt='Tell me a joke' ! redact pattern='\\d{16}'
        ! preset name=ui_smooth ! jsonl path=tokens.jsonl

Validation errors are `SpecError` (a `ConfigError`) and name the place, the entry and
the field: ``operators[2] redact: pattern: not a valid regular expression: ...``.
Parameters are stored normalised (the validated values that were given, as JSON
values); defaults are left out. API keys are never part of a spec: providers read them
from the environment (``OPENAI_API_KEY`` ...).

Example:
    >>> spec = parse_launch("testing prompt='Hi' ! redact pattern='sk-[a-z]{4}'")
    >>> spec.operators[0].params
    {'pattern': 'sk-[a-z]{4}'}
    >>> spec.to_launch()
    "testing prompt=Hi ! redact pattern='sk-[a-z]{4}'"
    >>> PipelineSpec.from_json(spec.to_json()) == spec
    True
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    create_model,
    model_validator,
)
from reactivex import Observable

from . import launch as _launch
from .aio import run_sync
from .errors import ConfigError, LaunchSyntaxError, SpecError
from .registry import (
    ParamError,
    TokenSink,
    is_sink,
    operator_entries,
    operator_entry,
    provider_entries,
    provider_entry,
    sink_entries,
    sink_entry,
    validate_params,
)
from .tokens import Completion, StreamToken

__all__ = [
    "LaunchSyntaxError",
    "OperatorSpec",
    "PipelineSpec",
    "SinkSpec",
    "SourceSpec",
    "SpecError",
    "parse_launch",
]

_SOURCE_FIELDS = ("model", "prompt", "messages")
_RESERVED_PARAMS = frozenset({"provider", "model", "prompt", "messages", "api_key"})


def _spec_error(exc: ValidationError) -> SpecError:
    errors: list[dict[str, Any]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, SpecError):  # raised by PipelineSpec.__init__ under model_validate
            errors.extend(cause.errors)
            continue
        if isinstance(cause, ParamError):
            errors.append(
                {"loc": loc, "entry": cause.entry, "field": cause.field, "msg": str(cause)}
            )
            continue
        if error["type"] == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        elif error["type"] == "missing":
            message = "required"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        else:
            message = f"{error['msg']}, got {error.get('input')!r}"
        errors.append({"loc": loc, "entry": None, "field": None, "msg": message})
    return SpecError(errors)


class _Spec(BaseModel):
    """Common behaviour: frozen, no unknown fields, `SpecError` instead of ValidationError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Validate a dict (parsed JSON).

        Raises:
            SpecError: invalid data.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _spec_error(exc) from None


class SourceSpec(_Spec):
    """Where tokens come from: a registered provider and its request.

    Attributes:
        provider: the provider id (``openai_chat``, ``anthropic``, ``gemini``,
            ``openai_responses``, ``openai_compatible``, ``testing``, ``llama`` ...).
        model: the model (for ``llama``: the ``.gguf`` path); None: the provider's default.
        prompt: a prompt (one user message); exactly one of `prompt` and `messages`.
        messages: ``{"role", "content"}`` messages.
        params: provider configuration and request fields (``base_url``, ``timeout``,
            ``temperature``, ``max_tokens`` ...); never an API key.
    """

    provider: str
    model: str | None = None
    prompt: str | None = None
    messages: list[dict[str, JsonValue]] | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        try:
            entry = provider_entry(self.provider)
        except ConfigError as exc:
            raise ParamError("", None, str(exc)) from None
        name = self.provider
        if (self.prompt is None) == (self.messages is None):
            raise ParamError(name, "prompt", "give either prompt or messages (exactly one)")
        for i, message in enumerate(self.messages or []):
            if not isinstance(message.get("role"), str):
                raise ParamError(name, f"messages[{i}]", "each message needs a 'role' string")
        if self.model is None and entry.default_model is None:
            raise ParamError(name, "model", f"required: {name} has no default model")
        for key in self.params:
            if key == "api_key":
                hint = " or ".join(entry.env_vars) or "the provider's environment variable"
                raise ParamError(
                    name,
                    "api_key",
                    f"API keys do not belong in a spec (it is saved and shared): set {hint}",
                )
            if key in _RESERVED_PARAMS:
                raise ParamError(name, key, f"'{key}' is a field of the source, not a parameter")
        normalised = validate_params(name, entry.params, self.params)
        object.__setattr__(self, "params", normalised)
        return self

    def build(self) -> Observable[StreamToken]:
        """The provider's cold token stream (nothing is sent until subscription).

        Raises:
            ConfigError: e.g. a missing API key for a remote provider.
        """
        entry = provider_entry(self.provider)
        model = self.model if self.model is not None else entry.default_model
        assert model is not None
        messages: str | list[dict[str, Any]] = (
            self.prompt if self.prompt is not None else [dict(m) for m in self.messages or []]
        )
        return entry.build(model, messages, self.params)

    def to_element(self) -> tuple[str, dict[str, Any]]:
        """The launch-string element: name and properties."""
        props: dict[str, Any] = {}
        for key in _SOURCE_FIELDS:
            value = getattr(self, key)
            if value is not None:
                props[key] = value
        props.update(self.params)
        return self.provider, props


class OperatorSpec(_Spec):
    """One operator of a pipeline: a registered name and its parameters.

    ``{"preset": "safe"}`` is accepted as the shorthand of
    ``{"name": "preset", "params": {"name": "safe"}}``.

    Example:
        >>> OperatorSpec(name="smooth", params={"delay": 1}).params
        {'delay': 1.0}
    """

    name: str
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "preset" in data and "name" not in data:
            rest = {k: v for k, v in data.items() if k != "preset"}
            if rest:
                raise ValueError(f"a preset entry has only the key 'preset', got {sorted(data)}")
            return {"name": "preset", "params": {"name": data["preset"]}}
        return data

    @model_validator(mode="after")
    def _check(self) -> OperatorSpec:
        try:
            entry = operator_entry(self.name)
        except ConfigError as exc:
            raise ParamError("", None, str(exc)) from None
        object.__setattr__(self, "params", entry.validate(self.params))
        return self

    def build(self) -> Callable[[Observable[Any]], Observable[Any]]:
        """The operator."""
        return operator_entry(self.name).build(self.params)

    def to_launch(self) -> str:
        """This operator as a launch-string element (``redact pattern='...'``)."""
        return _launch.format_element(self.name, self.params)


class SinkSpec(_Spec):
    """A sink of a pipeline: a registered name (``stdout``, ``jsonl``, ``textfile``) and params."""

    name: str
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SinkSpec:
        try:
            entry = sink_entry(self.name)
        except ConfigError as exc:
            raise ParamError("", None, str(exc)) from None
        object.__setattr__(self, "params", entry.validate(self.params))
        return self

    def build(self) -> TokenSink:
        """A new sink."""
        return sink_entry(self.name).build(self.params)

    def to_launch(self) -> str:
        """This sink as a launch-string element."""
        return _launch.format_element(self.name, self.params)


class PipelineSpec(_Spec):
    """A whole pipeline as data: source, operators, sinks (see the module docstring).

    Attributes:
        version: the format version (1).
        source: where the tokens come from.
        operators: applied in order with ``pipe``.
        sinks: where `run` / `arun` send the tokens (besides returning the `Completion`).
    """

    version: Literal[1] = 1
    source: SourceSpec
    operators: list[OperatorSpec] = Field(default_factory=list)
    sinks: list[SinkSpec] = Field(default_factory=list)

    schema_title: ClassVar[str] = "rxtokens pipeline"

    def __init__(self, **data: Any) -> None:
        # only the top-level model overrides __init__: pydantic calls a custom __init__
        # for nested models too, which would hide the location of their errors
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _spec_error(exc) from None

    # ------------------------------------------------------------------ building

    def build(self) -> Observable[StreamToken]:
        """The cold token stream: the source piped through the operators (sinks not included).

        Raises:
            ConfigError: the source or an operator cannot be built (a missing API key ...).
        """
        source = self.source.build()
        operators = [op.build() for op in self.operators]
        return source.pipe(*operators) if operators else source

    def build_sinks(self) -> list[TokenSink]:
        """New instances of the sinks (the caller closes them)."""
        sinks: list[TokenSink] = []
        try:
            for sink in self.sinks:
                sinks.append(sink.build())
        except BaseException:
            for built in sinks:
                built.close()
            raise
        return sinks

    async def arun(self, *extra: Callable[[Any], object]) -> Completion:
        """Stream to the sinks (and `extra` callbacks) live; return the `Completion`.

        Raises:
            StreamError: the stream failed (with ``.partial``).
        """
        from .broadcast import stream_to

        sinks = self.build_sinks()
        try:
            return await stream_to(self.build(), *[s.on_next for s in sinks], *extra)
        finally:
            for sink in sinks:
                sink.close()

    def run(self, *extra: Callable[[Any], object], timeout: float | None = None) -> Completion:
        """`arun` from synchronous code (runs its own event loop).

        Raises:
            ConfigError: called while an event loop is running in this thread.
            StreamError: the stream failed.
        """

        async def main() -> Completion:
            from .providers import close_sessions

            try:
                if timeout is None:
                    return await self.arun(*extra)
                async with asyncio.timeout(timeout):
                    return await self.arun(*extra)
            finally:
                await close_sessions()

        return run_sync(main, "PipelineSpec.run()", "await spec.arun()")

    # ------------------------------------------------------------------ serialising

    def to_json(self, *, indent: int | None = 2) -> str:
        """The spec as JSON (`from_json` reads it back equal)."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> PipelineSpec:
        """Read a spec from JSON.

        Raises:
            SpecError: invalid JSON or an invalid spec.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            problem = {"loc": (), "entry": None, "field": None, "msg": f"not JSON: {exc}"}
            raise SpecError([problem]) from None
        if not isinstance(data, dict):
            raise SpecError(
                [{"loc": (), "entry": None, "field": None, "msg": "a spec is a JSON object"}]
            )
        result: PipelineSpec = cls.from_dict(data)
        return result

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PipelineSpec:
        """Read a spec file: JSON (``.json``) or a launch string (any other file).

        Raises:
            ConfigError: the file is missing; SpecError / LaunchSyntaxError: invalid content.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the spec file {str(file)!r}: {exc}") from None
        if file.suffix == ".json" or text.lstrip().startswith("{"):
            return cls.from_json(text)
        return parse_launch(text)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the spec as JSON."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    def to_launch(self) -> str:
        """The launch string of this spec (`parse_launch` reads it back equal).

        Example:
            >>> PipelineSpec(source={"provider": "testing", "prompt": "Hi"},
            ...              operators=[{"preset": "safe"}]).to_launch()
            'testing prompt=Hi ! preset name=safe'
        """
        parts = [_launch.format_element(*self.source.to_element())]
        parts += [op.to_launch() for op in self.operators]
        parts += [sink.to_launch() for sink in self.sinks]
        return " ! ".join(parts)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of a spec, with every registered operator, provider and sink.

        Operators, sources and sinks are unions discriminated by their name, each with
        the schema of its parameters, so an editor can check and complete them.
        """
        return _json_schema()


def _literal(value: str) -> Any:
    return Literal[value]


def _json_schema() -> dict[str, Any]:
    def list_of(item: Any) -> Any:
        return list[item]

    def union(members: list[Any]) -> Any:
        return members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007

    operator_models = [
        create_model(
            f"Operator_{name}",
            __doc__=entry.summary or None,
            __config__=ConfigDict(extra="forbid", title=f"operator {name}"),
            name=(_literal(name), ...),
            params=(entry.params, Field(default_factory=dict)),
        )
        for name, entry in operator_entries().items()
    ]
    preset_shorthand = create_model(
        "PresetShorthand",
        __config__=ConfigDict(extra="forbid", title="preset (shorthand)"),
        preset=(str, ...),
    )
    source_models = [
        create_model(
            f"Source_{name}",
            __doc__=entry.summary or None,
            __config__=ConfigDict(extra="forbid", title=f"source {name}"),
            provider=(_literal(name), ...),
            model=(str | None, None),
            prompt=(str | None, None),
            messages=(list[dict[str, JsonValue]] | None, None),
            params=(entry.params, Field(default_factory=dict)),
        )
        for name, entry in provider_entries().items()
    ]
    sink_models = [
        create_model(
            f"Sink_{name}",
            __doc__=entry.summary or None,
            __config__=ConfigDict(extra="forbid", title=f"sink {name}"),
            name=(_literal(name), ...),
            params=(entry.params, Field(default_factory=dict)),
        )
        for name, entry in sink_entries().items()
    ]
    operator_type = union([*operator_models, preset_shorthand])
    schema_model = create_model(
        "PipelineSpec",
        __doc__="A serialisable rxtokens pipeline: source, operators, sinks.",
        __config__=ConfigDict(extra="forbid", title=PipelineSpec.schema_title),
        version=(Literal[1], 1),
        source=(union(source_models), ...),
        operators=(list_of(operator_type), Field(default_factory=list)),
        sinks=(list_of(union(sink_models)), Field(default_factory=list)),
    )
    schema = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --------------------------------------------------------------------------- launch strings


def _element_position(elements: list[_launch.Element], n_ops: int, error: dict[str, Any]) -> int:
    loc = error["loc"]
    index = 0
    if loc and loc[0] == "operators" and len(loc) > 1 and isinstance(loc[1], int):
        index = 1 + loc[1]
    elif loc and loc[0] == "sinks" and len(loc) > 1 and isinstance(loc[1], int):
        index = 1 + n_ops + loc[1]
    element = elements[min(index, len(elements) - 1)]
    field = error.get("field") or ""
    key = str(field).split(".")[0].split("[")[0]
    if index > 0 or key in element.key_positions:
        return element.key_positions.get(key, element.position)
    return element.position


def parse_launch(text: str) -> PipelineSpec:
    """Parse a launch string into a validated `PipelineSpec` (grammar: `rxtokens.launch`).

    The first element is the source (``provider`` or ``provider:model`` with ``model``,
    ``prompt``, ``messages`` and provider parameters as properties); the following ones
    are operators (``preset name=NAME`` for a preset); sinks (``stdout``, ``jsonl``,
    ``textfile``) come last.

    Raises:
        LaunchSyntaxError: the string does not follow the grammar (caret under the error).
        SpecError: a valid string describing an invalid pipeline (caret under the element).

    Example:
        >>> spec = parse_launch("openai:gpt-4o-mini prompt='Tell me a joke' ! smooth delay=0.02")
        >>> spec.source.provider, spec.source.model, spec.operators[0].params
        ('openai', 'gpt-4o-mini', {'delay': 0.02})
    """
    elements = _launch.parse(text)
    source_el, rest = elements[0], elements[1:]
    provider, _, model = source_el.name.partition(":")
    source: dict[str, Any] = {"provider": provider}
    params: dict[str, Any] = {}
    if model:
        if "model" in source_el.properties:
            raise _launch.LaunchSyntaxError(
                f"the model is given twice ({source_el.name!r} and model=)",
                text,
                source_el.key_positions["model"],
            )
        source["model"] = model
    for key, value in source_el.properties.items():
        if key in _SOURCE_FIELDS:
            source[key] = value
        else:
            params[key] = value
    source["params"] = params
    operators: list[dict[str, Any]] = []
    sinks: list[dict[str, Any]] = []
    for element in rest:
        if ":" in element.name:
            raise _launch.LaunchSyntaxError(
                f"only the source may be written 'provider:model', got {element.name!r}",
                text,
                element.position,
            )
        if is_sink(element.name):
            sinks.append({"name": element.name, "params": element.properties})
        elif sinks:
            raise _launch.LaunchSyntaxError(
                f"sinks come last: {element.name!r} follows the sink {sinks[-1]['name']!r}",
                text,
                element.position,
            )
        else:
            operators.append({"name": element.name, "params": element.properties})
    try:
        return PipelineSpec.model_validate(
            {"source": source, "operators": operators, "sinks": sinks}
        )
    except ValidationError as exc:
        error = _spec_error(exc)
        position = _element_position(elements, len(operators), error.errors[0])
        raise SpecError(error.errors, excerpt=_launch.caret_excerpt(text, position)) from None
