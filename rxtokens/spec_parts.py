"""The parts of a pipeline spec: its source, operators and sinks, each validated on creation.

`rxtokens.spec.PipelineSpec` puts them together. Each part checks its name and
parameters against the registries (`rxtokens.registry`) and stores the parameters
normalised; an invalid one raises `SpecError` naming the entry and the field.

Example:
    >>> SinkSpec(name="jsonl", params={"path": "out.jsonl"}).to_launch()
    'jsonl path=out.jsonl'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator
from reactivex import Observable

from . import launch as _launch
from .errors import ConfigError, ParamError, SpecError
from .registry import TokenSink, operator_entry, provider_entry, sink_entry, validate_params
from .tokens import StreamToken

__all__ = ["SOURCE_FIELDS", "OperatorSpec", "SinkSpec", "SourceSpec", "SpecBase", "spec_error"]

SOURCE_FIELDS = ("model", "prompt", "messages")
"""The fields of a source besides its provider and parameters."""
_RESERVED_PARAMS = frozenset({"provider", "model", "prompt", "messages", "api_key"})


def spec_error(exc: ValidationError) -> SpecError:
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


class SpecBase(BaseModel):
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
            raise spec_error(exc) from None


class SourceSpec(SpecBase):
    """Where tokens come from: a registered provider and its request.

    Attributes:
        provider: the provider id (``openai_chat``, ``anthropic``, ``gemini``,
            ``openai_responses``, ``openai_compatible``, ``testing``, ``llama`` ...).
        model: the model (for ``llama``: the ``.gguf`` path); None: the provider's default.
        prompt: a prompt (one user message); exactly one of `prompt` and `messages`.
        messages: ``{"role", "content"}`` messages.
        params: provider configuration and request fields (``base_url``, ``timeout``,
            ``temperature``, ``max_tokens`` ...); never an API key.

    Example:
        >>> SourceSpec(provider="testing", prompt="Hi").prompt
        'Hi'
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
        for key in SOURCE_FIELDS:
            value = getattr(self, key)
            if value is not None:
                props[key] = value
        props.update(self.params)
        return self.provider, props


class OperatorSpec(SpecBase):
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


class SinkSpec(SpecBase):
    """A sink of a pipeline: a registered name (``stdout``, ``jsonl``, ``textfile``) and params.

    Example:
        >>> SinkSpec(name="stdout").name
        'stdout'
    """

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
