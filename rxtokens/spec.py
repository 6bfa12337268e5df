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

The parts (`SourceSpec`, `OperatorSpec`, `SinkSpec`) live in `rxtokens.spec_parts`; this
module puts them together, runs pipelines and reads and writes launch strings.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    create_model,
)
from reactivex import Observable

from . import launch as _launch
from .aio import run_sync
from .broadcast import stream_to
from .errors import ConfigError, LaunchSyntaxError, SpecError
from .providers import close_sessions
from .registry import (
    TokenSink,
    is_sink,
    operator_entries,
    provider_entries,
    sink_entries,
)
from .spec_parts import SOURCE_FIELDS, OperatorSpec, SinkSpec, SourceSpec, SpecBase, spec_error
from .tokens import Completion, StreamToken

__all__ = [
    "LaunchSyntaxError",
    "OperatorSpec",
    "PipelineSpec",
    "SinkSpec",
    "SourceSpec",
    "SpecError",
    "parse_launch",
    "parse_operators",
]


class PipelineSpec(SpecBase):
    """A whole pipeline as data: source, operators, sinks (see the module docstring).

    Attributes:
        version: the format version (1).
        source: where the tokens come from.
        operators: applied in order with ``pipe``.
        sinks: where `run` / `arun` send the tokens (besides returning the `Completion`).

    Example:
        >>> spec = PipelineSpec(source={"provider": "testing", "prompt": "Hi"})
        >>> spec.source.provider, spec.operators
        ('testing', [])
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
            raise spec_error(exc) from None

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
            raise LaunchSyntaxError(
                f"the model is given twice ({source_el.name!r} and model=)",
                text,
                source_el.key_positions["model"],
            )
        source["model"] = model
    for key, value in source_el.properties.items():
        if key in SOURCE_FIELDS:
            source[key] = value
        else:
            params[key] = value
    source["params"] = params
    operators: list[dict[str, Any]] = []
    sinks: list[dict[str, Any]] = []
    for element in rest:
        if ":" in element.name:
            raise LaunchSyntaxError(
                f"only the source may be written 'provider:model', got {element.name!r}",
                text,
                element.position,
            )
        if is_sink(element.name):
            sinks.append({"name": element.name, "params": element.properties})
        elif sinks:
            raise LaunchSyntaxError(
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
        error = spec_error(exc)
        position = _element_position(elements, len(operators), error.errors[0])
        raise SpecError(error.errors, excerpt=_launch.caret_excerpt(text, position)) from None


def parse_operators(text: str) -> list[OperatorSpec]:
    """Parse operators alone, in launch-string syntax (no source, no sinks).

    Raises:
        LaunchSyntaxError: the string does not follow the grammar, or names a source or sink.
        SpecError: an invalid operator (caret under it).

    Example:
        >>> [op.name for op in parse_operators("smooth delay=0.02 ! preset name=safe")]
        ['smooth', 'preset']
    """
    specs: list[OperatorSpec] = []
    for i, element in enumerate(_launch.parse(text)):
        if ":" in element.name or is_sink(element.name):
            raise LaunchSyntaxError(
                f"expected an operator (no source, no sink), got {element.name!r}",
                text,
                element.position,
            )
        try:
            specs.append(
                OperatorSpec.model_validate({"name": element.name, "params": element.properties})
            )
        except ValidationError as exc:
            errors = [{**e, "loc": ("operators", i, *e["loc"])} for e in spec_error(exc).errors]
            field = str(errors[0].get("field") or "").split(".")[0].split("[")[0]
            position = element.key_positions.get(field, element.position)
            raise SpecError(errors, excerpt=_launch.caret_excerpt(text, position)) from None
    return specs
