"""Parameter models derived from factory signatures, and validation against them.

Built-in operators get a model *derived from the factory's signature*
(`params_model_from_signature`): parameters whose type can be written in JSON (str, int,
float, bool, None, Literal, lists and str-keyed dicts of those) become fields, with the
factory's defaults; parameters that cannot (callbacks, schedulers, compiled patterns,
encodings) are left out of the spec and keep the factory's default. Explicit field checks
are added where the type alone is not enough (a ``pattern`` must compile).
`validate_params` then calls the factory once with the validated values, so everything it
checks eagerly (``ConfigError``) is reported at validation time too.

Example:
    >>> def scale(factor: float = 1.0): ...
    >>> validate_params("scale", params_model_from_signature(scale), {"factor": 2})
    {'factor': 2.0}
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, create_model
from pydantic import field_validator as _field_validator

from ..errors import ConfigError, ParamError

__all__ = [
    "ParamError",
    "kwargs_of",
    "params_model_from_signature",
    "summary_of",
    "validate_params",
]


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
