"""The operator and sink registry: entries by name, registration, lookup, entry points.

Operators and sinks share one namespace (a launch string tells them apart by name).
A lookup of an unknown operator loads the entry points of the group
``rxtokens.operators`` once. The built-in entries (`rxtokens.registry._builtins`)
are added on the first lookup, through `on_first_lookup`.

Example:
    >>> operator_entry("redact").summary.startswith("Replace")
    True
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from reactivex import Observable

from ..errors import ConfigError
from ..launch import check_name
from ..operators._pattern_limits import untrusted_patterns
from ._params import kwargs_of, params_model_from_signature, summary_of, validate_params
from ._sinks import TokenSink

__all__ = [
    "OPERATOR_ENTRY_POINTS",
    "OperatorEntry",
    "SinkEntry",
    "is_sink",
    "known",
    "on_first_lookup",
    "operator_entries",
    "operator_entry",
    "register_operator",
    "register_sink",
    "sink_entries",
    "sink_entry",
]

log = logging.getLogger("rxtokens.registry")

OPERATOR_ENTRY_POINTS = "rxtokens.operators"
"""Entry-point group of operator factories from other packages."""

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E")
TokenOperator = Callable[[Observable[Any]], Observable[Any]]


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
        with untrusted_patterns():
            return validate_params(self.name, self.params, params, lambda kw: self.factory(**kw))

    def build(self, params: Mapping[str, Any]) -> TokenOperator:
        """The operator for `params` (regexes in them bounded: they are data, see
        `rxtokens.operators._pattern_limits`)."""
        try:
            with untrusted_patterns():
                return self.factory(**kwargs_of(self.params, params))
        except ValidationError as exc:
            raise ConfigError(str(exc)) from None


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
_sinks: dict[str, SinkEntry] = {}
_entry_points_loaded: set[str] = set()
_first_lookup: list[Callable[[], None]] = []
_first_lookup_done = False


def on_first_lookup(loader: Callable[[], None]) -> None:
    """Run `loader` (it registers entries) before the first lookup or listing."""
    with _lock:
        _first_lookup.append(loader)


def _builtins() -> None:
    global _first_lookup_done
    if _first_lookup_done:
        return
    with _lock:
        if _first_lookup_done:
            return
        _first_lookup_done = True
        try:
            for loader in _first_lookup:
                loader()
        except BaseException:
            _first_lookup_done = False
            raise


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
    check_name(name, "operator")

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

    Example:
        >>> class Collect:
        ...     def __init__(self, path: str = "out.txt") -> None:
        ...         '''Collect tokens (an example sink).'''
        ...         self.path = path
        >>> register_sink("collect_example", Collect, replace=True).name
        'collect_example'
        >>> sink_entry("collect_example").params.model_fields["path"].default
        'out.txt'
        >>> del _sinks["collect_example"]  # (only to keep this example self-contained)
    """
    check_name(name, "sink")
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
            if isinstance(obj, OperatorEntry):
                with _lock:
                    _operators.setdefault(obj.name, obj)
            elif (
                getattr(obj, "__rxtokens_operator__", None) not in _operators
                and ep.name not in _operators
            ):
                register_operator(ep.name)(obj)
        except Exception:
            log.exception("rxtokens: cannot load entry point %r of group %s", ep.value, group)


def known(names: Any) -> str:
    """Names as a sorted, comma-separated list (for error messages)."""
    return ", ".join(sorted(names))


def _lookup(table: Mapping[str, E], kind: str, name: str, group: str | None = None) -> E:
    """``table[name]``, loading the entry points of `group` on a miss, else ConfigError."""
    _builtins()
    entry = table.get(name)
    if entry is None and group is not None:
        _load_entry_points(group)
        entry = table.get(name)
    if entry is None:
        raise ConfigError(f"unknown {kind} {name!r}; known: {known(table)}")
    return entry


def operator_entry(name: str) -> OperatorEntry:
    """The registered operator `name`.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    return _lookup(_operators, "operator", name, OPERATOR_ENTRY_POINTS)


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


def sink_entries() -> dict[str, SinkEntry]:
    """Every registered sink, by name."""
    _builtins()
    return dict(sorted(_sinks.items()))
