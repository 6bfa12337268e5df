"""The registries behind serialisable pipelines: operators, providers and sinks by name.

Every entry has a pydantic model of its parameters, so that a `rxtokens.spec.PipelineSpec`
can be validated (errors name the entry and the field), exported as JSON Schema and
listed by ``rxtokens ops``. Built-in operators get a model *derived from the factory's
signature* (`params_model_from_signature`): parameters whose type can be written in JSON
(str, int, float, bool, None, Literal, lists and str-keyed dicts of those) become fields,
with the factory's defaults; parameters that cannot (callbacks, schedulers, compiled
patterns, encodings) are left out of the spec and keep the factory's default. Explicit
field checks are added where the type alone is not enough (a ``pattern`` must compile).
After the fields, the factory itself is called once with the validated values, so
everything it checks eagerly (``ConfigError``) is reported at validation time too.

Your own operators:

* the `register_operator` decorator::

      @register_operator("shout")
      def shout(suffix: str = "!") -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
          ...

  (``params_model=`` gives an explicit pydantic model instead of the derived one);
* or, in a package, an entry point in the group ``rxtokens.operators``
  (``shout = "mypkg.ops:shout"``): the named factory is imported on first use of the
  registry and registered under the entry point's name (unless importing it already
  registered it with the decorator). Providers use the group ``rxtokens.providers``
  (a factory ``(model, messages, **params) -> Observable[StreamToken]``).

Names are unique across operators and sinks (a launch string tells them apart by name).

Example:
    >>> entry = operator_entry("redact")
    >>> sorted(entry.params.model_fields)
    ['max_match', 'pattern', 'replacement']
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import re
import sys
import threading
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import (
    IO,
    Any,
    Literal,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    runtime_checkable,
)

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError, create_model
from pydantic import field_validator as _field_validator
from reactivex import Observable

from .errors import ConfigError, ParamError
from .tokens import TOKEN_TYPES, StreamToken, token_to_json

__all__ = [
    "OPERATOR_ENTRY_POINTS",
    "PROVIDER_ENTRY_POINTS",
    "OperatorEntry",
    "ParamError",
    "ProviderEntry",
    "SinkEntry",
    "TokenSink",
    "operator_entries",
    "operator_entry",
    "params_model_from_signature",
    "provider_entries",
    "provider_entry",
    "register_operator",
    "register_provider",
    "register_sink",
    "sink_entries",
    "sink_entry",
    "validate_params",
]

log = logging.getLogger("rxtokens.registry")

OPERATOR_ENTRY_POINTS = "rxtokens.operators"
"""Entry-point group of operator factories from other packages."""
PROVIDER_ENTRY_POINTS = "rxtokens.providers"
"""Entry-point group of provider factories from other packages."""

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E")
TokenOperator = Callable[[Observable[Any]], Observable[Any]]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


# --------------------------------------------------------------------------- models


def _json_type(tp: Any) -> Any:
    """The part of annotation `tp` that JSON can carry, or None if nothing can."""
    if tp is Any:
        return JsonValue
    if tp in (str, int, float, bool, type(None)):
        return tp
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is typing.Annotated:
        return _json_type(args[0])
    if origin is Literal:
        ok = all(isinstance(a, str | int | bool) or a is None for a in args)
        return tp if ok else None
    if origin in (Union, types.UnionType):
        members = [m for m in (_json_type(a) for a in args) if m is not None]
        if not members or all(m is type(None) for m in members):
            return None
        unique = list(dict.fromkeys(members))
        return unique[0] if len(unique) == 1 else Union[tuple(unique)]  # noqa: UP007
    origin_name = getattr(origin, "__name__", "")
    if origin is tuple:
        if len(args) != 2 or args[1] is not ...:
            return None
        inner = _json_type(args[0])
        return None if inner is None else list[inner]  # type: ignore[valid-type]
    if origin in (list, set, frozenset) or origin_name in ("Sequence", "MutableSequence"):
        inner = _json_type(args[0]) if args else JsonValue
        return None if inner is None else list[inner]  # type: ignore[valid-type]
    if origin is dict or origin_name in ("Mapping", "MutableMapping"):
        if args and args[0] is not str:
            return None
        inner = _json_type(args[1]) if args else JsonValue
        return None if inner is None else dict[str, inner]  # type: ignore[valid-type]
    return None


def _hints_one_by_one(func: Callable[..., Any]) -> dict[str, Any]:
    """Annotations resolved separately; union members that do not resolve are left out."""
    namespace = dict(getattr(inspect.unwrap(func), "__globals__", {}))
    hints: dict[str, Any] = {}
    for name, annotation in getattr(func, "__annotations__", {}).items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        members = []
        for part in annotation.split(" | "):
            try:
                members.append(eval(part, namespace))  # the function's own annotation
            except Exception:
                continue
        if members:
            hints[name] = Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007
    return hints


def _arg_docs(func: Callable[..., Any]) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section."""
    doc = inspect.getdoc(func) or ""
    docs: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        if stripped and not line.startswith(" "):
            break
        match = re.match(r"\s{2,4}(\*{0,2}\w+)(?: \(.*?\))?:\s*(.*)", line)
        if match and len(line) - len(line.lstrip()) <= 4:
            current = match.group(1).lstrip("*")
            docs[current] = match.group(2).strip()
        elif current and stripped:
            docs[current] += " " + stripped
    return docs


def summary_of(func: Callable[..., Any]) -> str:
    """The first line of a docstring."""
    doc = inspect.getdoc(func) or ""
    return doc.splitlines()[0].strip() if doc else ""


def params_model_from_signature(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    skip: int = 0,
    exclude: Sequence[str] = (),
    checks: Mapping[str, Callable[[Any], object]] | None = None,
) -> type[BaseModel]:
    """A pydantic model of the JSON-expressible parameters of `func`.

    Args:
        func: the factory.
        name: the entry's name (used in the model's title).
        skip: leading positional parameters to leave out (a provider's model and messages).
        exclude: more parameters to leave out.
        checks: per-field functions that raise (`ConfigError` / `ValueError`) on a
            bad value, e.g. a regex that must compile.

    Returns:
        A model that forbids unknown fields, or allows JSON values for them when `func`
        takes ``**kwargs``.

    Raises:
        ConfigError: a parameter without a default whose type JSON cannot express.

    Example:
        >>> def scale(factor: float = 1.0, *, on_done: Callable[[], None] | None = None): ...
        >>> list(params_model_from_signature(scale).model_fields)
        ['factor']
    """
    label: str = name or str(getattr(func, "__name__", "operator"))
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # some annotation does not resolve: resolve them one by one
        hints = _hints_one_by_one(func)
    docs = _arg_docs(func)
    fields: dict[str, Any] = {}
    var_kw = False
    parameters = list(inspect.signature(func).parameters.values())
    for i, param in enumerate(parameters):
        if param.kind is param.VAR_KEYWORD:
            var_kw = True
            continue
        if i < skip or param.kind is param.VAR_POSITIONAL or param.name in exclude:
            continue
        annotation = hints.get(param.name, Any)
        json_tp = _json_type(annotation)
        required = param.default is inspect.Parameter.empty
        if json_tp is None:
            if required:
                raise ConfigError(
                    f"{label}: parameter {param.name!r} ({annotation}) cannot be written in "
                    f"JSON and has no default; register it with an explicit params_model"
                )
            continue
        default = ... if required else param.default
        if not required and not _is_json(default):
            continue
        from pydantic import Field

        fields[param.name] = (json_tp, Field(default, description=docs.get(param.name)))
    validators: dict[str, Any] = {}
    for field_name, check in (checks or {}).items():
        validators[f"check_{field_name}"] = _field_validator(field_name)(_checker(check))
    model_name = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]", label)) + "Params"
    return create_model(
        model_name,
        __config__=ConfigDict(extra="allow" if var_kw else "forbid", title=f"{label} parameters"),
        __doc__=summary_of(func) or None,
        __validators__=validators,
        **fields,
    )


def _checker(check: Callable[[Any], object]) -> Callable[[Any, Any], Any]:
    def validate(cls: Any, value: Any) -> Any:
        if value is None:
            return value
        try:
            check(value)
        except (ConfigError, ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        return value

    return validate


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _field_label(loc: tuple[Any, ...]) -> str:
    label = ""
    for part in loc:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label


def _message(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields) or "none"
        return f"unknown parameter (known: {known})"
    if kind == "missing":
        return "required parameter missing"
    return f"{error['msg']}, got {error.get('input')!r}"


def validate_params(
    entry: str,
    model: type[BaseModel],
    params: Mapping[str, Any],
    build: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """Validate `params` for `entry`; return them normalised (JSON values, only those given).

    Raises:
        ParamError: the first invalid field (or `build`'s `ConfigError`), naming `entry`.
    """
    try:
        validated = model.model_validate(dict(params))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        raise ParamError(entry, _field_label(loc) or None, _message(first, model)) from None
    given = validated.model_dump(mode="json", exclude_unset=True)
    extra = validated.model_extra or {}
    for key, value in extra.items():
        if not _is_json(value):
            raise ParamError(entry, key, f"not a JSON value: {value!r}")
        given[key] = value
    for key, value in given.items():
        if not _is_json(value):
            raise ParamError(entry, key, f"not a finite JSON value: {value!r}")
    if build is not None:
        kwargs = {key: getattr(validated, key) for key in validated.model_fields_set}
        kwargs.update(extra)
        try:
            build(kwargs)
        except ConfigError as exc:
            message = str(exc)
            message = message.removeprefix(f"{entry}: ")
            raise ParamError(entry, None, message) from None
    return given


def kwargs_of(model: type[BaseModel], params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for a factory: validated values of the fields given, plus extras."""
    validated = model.model_validate(dict(params))
    kwargs = {key: getattr(validated, key) for key in validated.model_fields_set}
    kwargs.update(validated.model_extra or {})
    return kwargs


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class OperatorEntry:
    """A registered operator: ``factory(**params)`` returns the operator.

    Attributes:
        name: the name used in specs and launch strings.
        factory: the operator factory.
        params: the pydantic model of its parameters.
        summary: one line for listings.
        example: parameters that build it (used when a field is required).
    """

    name: str
    factory: Callable[..., TokenOperator]
    params: type[BaseModel]
    summary: str = ""
    example: Mapping[str, Any] = field(default_factory=dict)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise `params` (raises `ParamError`); the factory is tried too."""
        return validate_params(self.name, self.params, params, lambda kw: self.factory(**kw))

    def build(self, params: Mapping[str, Any]) -> TokenOperator:
        """The operator for `params`."""
        try:
            return self.factory(**kwargs_of(self.params, params))
        except ValidationError as exc:
            raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class ProviderEntry:
    """A registered provider: ``factory(model, messages, **params)`` returns the token stream.

    Attributes:
        name: the provider id (``openai_chat`` ...).
        factory: the stream function.
        params: the pydantic model of its parameters (provider configuration and request
            fields; unknown request fields are allowed when the factory takes ``**params``).
        summary: one line for listings.
        default_model: used when a spec names no model (None: a model is required).
        env_vars: the environment variables holding its API key (for messages).
        example: parameters that build it without network access or keys.
    """

    name: str
    factory: Callable[..., Observable[StreamToken]]
    params: type[BaseModel]
    summary: str = ""
    default_model: str | None = None
    env_vars: tuple[str, ...] = ()
    example: Mapping[str, Any] = field(default_factory=dict)

    def build(
        self, model: str, messages: str | list[dict[str, Any]], params: Mapping[str, Any]
    ) -> Observable[StreamToken]:
        """The cold token stream."""
        return self.factory(model, messages, **kwargs_of(self.params, params))


@runtime_checkable
class TokenSink(Protocol):
    """A sink of a spec: receives each token, is closed at the end.

    Any object with these two methods is one; the built-in sinks also inherit
    the no-op `close`.
    """

    def on_next(self, token: Any) -> None:  # pragma: no cover (interface)
        """Called with each token."""

    def close(self) -> None:
        """Called once at the end (completed, failed or cancelled)."""


@dataclass(frozen=True)
class SinkEntry:
    """A registered sink: ``factory(**params)`` returns a `TokenSink`."""

    name: str
    factory: Callable[..., TokenSink]
    params: type[BaseModel]
    summary: str = ""
    example: Mapping[str, Any] = field(default_factory=dict)

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise `params` (raises `ParamError`)."""
        return validate_params(self.name, self.params, params)

    def build(self, params: Mapping[str, Any]) -> TokenSink:
        """A new sink for `params`."""
        return self.factory(**kwargs_of(self.params, params))


_lock = threading.RLock()
_operators: dict[str, OperatorEntry] = {}
_providers: dict[str, ProviderEntry] = {}
_sinks: dict[str, SinkEntry] = {}
_entry_points_loaded: set[str] = set()


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{kind} name must start with a letter or '_' and contain only letters, digits, "
            f"'_', '.' and '-', got {name!r}"
        )


def register_operator(
    name: str,
    params_model: type[BaseModel] | None = None,
    *,
    example: Mapping[str, Any] | None = None,
    checks: Mapping[str, Callable[[Any], object]] | None = None,
    replace: bool = False,
) -> Callable[[F], F]:
    """Register an operator factory for specs and launch strings (a decorator).

    Args:
        name: the name in specs (``{"name": name, "params": {...}}``) and launch strings.
        params_model: a pydantic model of its parameters (default: derived from the
            factory's signature, see `params_model_from_signature`).
        example: parameters that build it (needed when some are required).
        checks: extra per-field checks for the derived model.
        replace: allow replacing an existing operator of that name.

    Raises:
        ConfigError: an invalid or taken name (operators and sinks share one namespace).

    Example:
        >>> from reactivex import operators as ops
        >>> @register_operator("upper_text", replace=True)
        ... def upper_text(enabled: bool = True):
        ...     '''Upper-case TextDelta text.'''
        ...     return ops.map(lambda t: t._replace(text=t.text.upper()) if enabled else t)
        >>> operator_entry("upper_text").params.model_fields["enabled"].default
        True
    """
    _check_name(name, "operator")

    def decorate(factory: F) -> F:
        model = params_model or params_model_from_signature(factory, name=name, checks=checks)
        entry = OperatorEntry(name, factory, model, summary_of(factory), dict(example or {}))
        with _lock:
            if not replace and (name in _operators or name in _sinks):
                raise ConfigError(f"an operator or sink named {name!r} is already registered")
            if name in _sinks:
                raise ConfigError(f"{name!r} is a sink; operators and sinks share names")
            _operators[name] = entry
        with contextlib.suppress(AttributeError, TypeError):  # builtins refuse attributes
            factory.__rxtokens_operator__ = name  # type: ignore[attr-defined]
        return factory

    return decorate


def register_provider(
    name: str,
    factory: Callable[..., Observable[StreamToken]],
    params_model: type[BaseModel] | None = None,
    *,
    default_model: str | None = None,
    env_vars: Sequence[str] = (),
    example: Mapping[str, Any] | None = None,
    summary: str | None = None,
    replace: bool = False,
) -> ProviderEntry:
    """Register a provider ``factory(model, messages, **params) -> Observable[StreamToken]``.

    The derived parameter model leaves out the first two parameters and ``api_key``
    (keys never go into specs: providers read them from the environment).

    Raises:
        ConfigError: an invalid or taken name.

    Example:
        >>> import reactivex
        >>> from rxtokens.tokens import TextDelta
        >>> def echo(model, messages, *, times: int = 1):
        ...     '''Echo the prompt.'''
        ...     return reactivex.of(*[TextDelta(messages)] * times)
        >>> register_provider("echo", echo, default_model="echo", replace=True).name
        'echo'
    """
    _check_name(name, "provider")
    model = params_model or params_model_from_signature(
        factory, name=name, skip=2, exclude=("api_key",)
    )
    entry = ProviderEntry(
        name,
        factory,
        model,
        summary if summary is not None else summary_of(factory),
        default_model,
        tuple(env_vars),
        dict(example or {}),
    )
    with _lock:
        if not replace and name in _providers:
            raise ConfigError(f"a provider named {name!r} is already registered")
        _providers[name] = entry
    return entry


def register_sink(
    name: str,
    factory: Callable[..., TokenSink],
    params_model: type[BaseModel] | None = None,
    *,
    example: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> SinkEntry:
    """Register a sink factory (``factory(**params) -> TokenSink``).

    Raises:
        ConfigError: an invalid or taken name (operators and sinks share one namespace).
    """
    _check_name(name, "sink")
    model = params_model or params_model_from_signature(factory, name=name)
    entry = SinkEntry(name, factory, model, summary_of(factory), dict(example or {}))
    with _lock:
        if not replace and (name in _sinks or name in _operators):
            raise ConfigError(f"an operator or sink named {name!r} is already registered")
        if name in _operators:
            raise ConfigError(f"{name!r} is an operator; operators and sinks share names")
        _sinks[name] = entry
    return entry


def _load_entry_points(group: str) -> None:
    with _lock:
        if group in _entry_points_loaded:
            return
        _entry_points_loaded.add(group)
    for ep in metadata.entry_points(group=group):
        try:
            obj = ep.load()
            if group == OPERATOR_ENTRY_POINTS:
                if isinstance(obj, OperatorEntry):
                    with _lock:
                        _operators.setdefault(obj.name, obj)
                elif (
                    getattr(obj, "__rxtokens_operator__", None) not in _operators
                    and ep.name not in _operators
                ):
                    register_operator(ep.name)(obj)
            elif ep.name not in _providers:
                register_provider(ep.name, obj)
        except Exception:
            log.exception("rxtokens: cannot load entry point %r of group %s", ep.value, group)


def _known(names: Any) -> str:
    return ", ".join(sorted(names))


def _lookup(table: Mapping[str, E], kind: str, name: str, group: str | None = None) -> E:
    """``table[name]``, loading the entry points of `group` on a miss, else ConfigError."""
    _builtins()
    entry = table.get(name)
    if entry is None and group is not None:
        _load_entry_points(group)
        entry = table.get(name)
    if entry is None:
        raise ConfigError(f"unknown {kind} {name!r}; known: {_known(table)}")
    return entry


def operator_entry(name: str) -> OperatorEntry:
    """The registered operator `name`.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    return _lookup(_operators, "operator", name, OPERATOR_ENTRY_POINTS)


def provider_entry(name: str) -> ProviderEntry:
    """The registered provider `name`.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    return _lookup(_providers, "provider", name, PROVIDER_ENTRY_POINTS)


def sink_entry(name: str) -> SinkEntry:
    """The registered sink `name`.

    Raises:
        ConfigError: unknown name.
    """
    return _lookup(_sinks, "sink", name)


def is_sink(name: str) -> bool:
    """Whether `name` is a registered sink."""
    _builtins()
    return name in _sinks


def operator_entries() -> dict[str, OperatorEntry]:
    """Every registered operator (entry points included), by name."""
    _builtins()
    _load_entry_points(OPERATOR_ENTRY_POINTS)
    return dict(sorted(_operators.items()))


def provider_entries() -> dict[str, ProviderEntry]:
    """Every registered provider (entry points included), by name."""
    _builtins()
    _load_entry_points(PROVIDER_ENTRY_POINTS)
    return dict(sorted(_providers.items()))


def sink_entries() -> dict[str, SinkEntry]:
    """Every registered sink, by name."""
    _builtins()
    return dict(sorted(_sinks.items()))


# --------------------------------------------------------------------------- built-ins

_builtins_done = False


def _compiles(pattern: Any) -> None:
    import regex

    if not isinstance(pattern, str):
        return
    try:
        regex.compile(pattern)
    except (regex.error, ValueError) as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def _boundary(value: Any) -> None:
    if isinstance(value, str) and value not in ("word", "sentence", "line"):
        _compiles(value)


def _positive(value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
        raise ValueError(f"must be > 0, got {value!r}")


def _non_negative(value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"must be >= 0, got {value!r}")


def keep_types(types: list[str] | None = None, drop: list[str] | None = None) -> TokenOperator:
    """Keep only some kinds of tokens (`filter_tokens` by ``type``, for specs).

    Args:
        types: the token types to keep (``text``, ``reasoning``, ``finish`` ...); None: all.
        drop: the token types to drop.

    Raises:
        ConfigError: an unknown token type.

    Example:
        >>> import reactivex
        >>> from rxtokens.tokens import Finish, TextDelta
        >>> reactivex.of(TextDelta("a"), Finish("stop")).pipe(keep_types(["text"])).run()
        TextDelta(text='a', index=0)
    """
    from .operators import filter_tokens

    for kinds in (types or [], drop or []):
        unknown = [t for t in kinds if t not in TOKEN_TYPES]
        if unknown:
            raise ConfigError(
                f"filter: unknown token type(s) {unknown}; known: {_known(TOKEN_TYPES)}"
            )
    keep = None if types is None else frozenset(types)
    dropped = frozenset(drop or ())
    return filter_tokens(
        lambda token: (keep is None or token.type in keep) and token.type not in dropped
    )


def preset(name: str) -> TokenOperator:
    """A named chain of operators (``low_latency``, ``ui_smooth``, ``high_throughput``, ``safe``).

    Args:
        name: the preset (see `rxtokens.presets`).
    """
    from . import presets

    return presets.operator(name)


def _preset_name(name: Any) -> None:
    from . import presets

    if name not in presets.names():
        raise ValueError(f"unknown preset {name!r}; known: {_known(presets.names())}")


class StdoutSink(TokenSink):
    """Write the visible text (`TextDelta` of choice 0) to standard output as it arrives."""

    def __init__(self) -> None:
        self._out = sys.stdout

    def on_next(self, token: Any) -> None:
        if token.type == "text" and token.index == 0:
            self._out.write(token.text)
            self._out.flush()


class JsonlSink(TokenSink):
    """Append every token to a file as one JSON object per line (`token_to_json`).

    Args:
        path: the file (created, appended to).
    """

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close)

    def on_next(self, token: Any) -> None:
        self._file.write(token_to_json(token) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TextFileSink(TokenSink):
    """Write the visible text (choice 0) to a file as it arrives.

    Args:
        path: the file (created or truncated).
    """

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close)

    def on_next(self, token: Any) -> None:
        if token.type == "text" and token.index == 0:
            self._file.write(token.text)
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def _builtins() -> None:
    global _builtins_done
    if _builtins_done:
        return
    with _lock:
        if _builtins_done:
            return
        _builtins_done = True
        try:
            _register_builtins()
        except BaseException:
            _builtins_done = False
            raise


def _register_builtins() -> None:
    from . import operators as o
    from .providers import anthropic, gemini, openai_chat, openai_compatible, openai_responses

    def op(
        name: str,
        factory: Callable[..., TokenOperator],
        example: Mapping[str, Any] | None = None,
        /,
        **checks: Callable[[Any], object],
    ) -> None:
        model = params_model_from_signature(factory, name=name, checks=checks)
        entry = OperatorEntry(name, factory, model, summary_of(factory), dict(example or {}))
        _operators[name] = entry

    op("redact", o.redact, {"pattern": r"\d{16}"}, pattern=_compiles, max_match=_positive)
    op(
        "stop_when",
        o.stop_when,
        {"condition": "STOP"},
        condition=_compiles,
        max_match=_positive,
    )
    op("chunk_by", o.chunk_by, boundary=_boundary)
    op("count_tokens", o.count_tokens)
    op("smooth", o.smooth, delay=_non_negative)
    op("rate_limit", o.rate_limit, {"tokens_per_second": 50}, tokens_per_second=_positive)
    op("frames", o.frames, fps=_positive)
    op("on_backpressure_buffer", o.on_backpressure_buffer, {"capacity": 256})
    op("on_backpressure_latest", o.on_backpressure_latest)
    op("on_backpressure_coalesce", o.on_backpressure_coalesce)
    op("metrics", o.metrics, interval=_positive)
    op("take_budget", o.take_budget, {"max_output_tokens": 256})
    op("retry_with_backoff", o.retry_with_backoff)
    op("filter", keep_types)
    op("preset", preset, {"name": "safe"}, name=_preset_name)

    def provider(
        name: str,
        factory: Callable[..., Observable[StreamToken]],
        *,
        default_model: str | None,
        env_vars: Sequence[str] = (),
        example: Mapping[str, Any] | None = None,
        summary: str | None = None,
    ) -> None:
        model = params_model_from_signature(factory, name=name, skip=2, exclude=("api_key",))
        _providers[name] = ProviderEntry(
            name,
            factory,
            model,
            summary if summary is not None else summary_of(factory),
            default_model,
            tuple(env_vars),
            dict(example or {}),
        )

    local = {"base_url": "http://127.0.0.1:9/v1"}
    provider(
        "openai_chat",
        openai_chat,
        default_model="gpt-4o-mini",
        env_vars=("OPENAI_API_KEY",),
        example=local,
    )
    provider(
        "openai",
        openai_chat,
        default_model="gpt-4o-mini",
        env_vars=("OPENAI_API_KEY",),
        example=local,
        summary="OpenAI Chat Completions (the same as openai_chat).",
    )
    provider(
        "openai_responses",
        openai_responses,
        default_model="gpt-4o-mini",
        env_vars=("OPENAI_API_KEY",),
        example=local,
    )
    provider(
        "openai_compatible",
        openai_compatible,
        default_model=None,
        example=local,
        summary="An OpenAI-compatible server (vLLM, llama.cpp server, Ollama ...) at base_url.",
    )
    provider(
        "anthropic",
        anthropic,
        default_model="claude-sonnet-4-5",
        env_vars=("ANTHROPIC_API_KEY",),
        example={"base_url": "http://127.0.0.1:9"},
    )
    provider(
        "gemini",
        gemini,
        default_model="gemini-2.5-flash",
        env_vars=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        example={"base_url": "http://127.0.0.1:9"},
    )
    provider("testing", loopback_stream, default_model="rxtokens-test")
    provider("llama", llama_stream, default_model=None)

    for name, factory, example in (
        ("stdout", StdoutSink, {}),
        ("jsonl", JsonlSink, {"path": "tokens.jsonl"}),
        ("textfile", TextFileSink, {"path": "answer.txt"}),
    ):
        model = params_model_from_signature(factory.__init__, name=name, skip=1)
        _sinks[name] = SinkEntry(name, factory, model, summary_of(factory), example)


def loopback_stream(
    model: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    include_usage: bool = True,
    **params: Any,
) -> Observable[StreamToken]:
    """The bundled loopback server over real HTTP (OpenAI Chat wire format), no API key.

    Args:
        model: any name (the server reports it back).
        messages: a prompt or messages.
        tools: neutral tool dicts.
        base_url: a `rxtokens.testing.ProviderServer` URL (default: one shared server
            started in this process on first use).
        timeout: seconds for each phase (connect, first byte, between chunks).
        headers: extra HTTP headers.
        include_usage: ask for the trailing usage chunk.
        **params: more request fields (``n``, ``temperature`` ...).
    """
    from .testing.loopback import loopback_provider

    provider = loopback_provider(
        base_url=base_url, timeout=timeout, headers=headers, include_usage=include_usage
    )
    return provider.stream(model, messages, tools=tools, **params)


def llama_stream(
    model: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    chat: bool = True,
    max_tokens: int | None = 256,
    temperature: float = 0.8,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    n_ctx: int = 2048,
    **params: Any,
) -> Observable[StreamToken]:
    """A local GGUF model in-process through llama-cpp-python (the model is the file's path).

    Args:
        model: the path of the ``.gguf`` file.
        messages: a prompt or messages.
        chat: format the prompt with the model's chat template (False: plain completion).
        max_tokens: the most tokens to generate (None: until the context is full).
        temperature: sampling temperature; 0 is greedy.
        seed: sampling seed (None: random).
        stop: string(s) that end generation.
        n_ctx: context size.
        **params: load and sampling parameters of llama-cpp-python (``n_threads``, ``top_k`` ...).
    """
    from .providers.llama import llama

    return llama(
        model,
        messages,
        chat=chat,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=stop,
        n_ctx=n_ctx,
        **params,
    )
