r"""Presets: named operator chains for common needs.

==================  ==================================================================
``low_latency``     nothing added to the path; a slow consumer gets merged deltas
                    instead of holding the stream up (``on_backpressure_coalesce``)
``ui_smooth``       bursts re-timed into an even flow of words (``smooth delay=0.02``),
                    merged for a slow UI (``on_backpressure_coalesce``)
``high_throughput`` fewer, larger deltas: at most 10 deliveries a second (``frames``),
                    a large coalescing buffer
``safe``            redaction of card numbers (``[CARD]``), API-key-like strings
                    (``[API_KEY]``: ``sk-...``, ``AKIA...``, ``ghp_...``, ``AIza...``,
                    ``xox?-...``) and e-mail addresses (``[EMAIL]``), across token
                    boundaries
==================  ==================================================================

Use them from Python (`get` gives the operator specs, `operator` the composed
operator), in a spec as the operator ``{"name": "preset", "params": {"name": "safe"}}``
(the shorthand ``{"preset": "safe"}`` is accepted on input), and in a launch string
as ``preset name=safe``. `register_preset` adds your own.

Example:
    >>> [op.name for op in get("safe")]
    ['redact', 'redact', 'redact']
    >>> import reactivex
    >>> from rxtokens.tokens import TextDelta
    >>> tokens = reactivex.of(TextDelta("mail me: ann@exa"), TextDelta("mple.com!"))
    >>> out = tokens.pipe(operator("safe"))
    >>> "".join(t.text for t in out.to_list().run())
    'mail me: [EMAIL]!'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reactivex import Observable

from .errors import ConfigError
from .registry._presets import API_KEY_PATTERN, CARD_PATTERN, EMAIL_PATTERN, chain, compose
from .registry._presets import names as _names
from .registry._presets import store as _store
from .spec_parts import OperatorSpec

__all__ = [
    "API_KEY_PATTERN",
    "CARD_PATTERN",
    "EMAIL_PATTERN",
    "get",
    "names",
    "operator",
    "register_preset",
]


def names() -> list[str]:
    """The preset names, sorted."""
    return _names()


def get(name: str) -> list[OperatorSpec]:
    """The operator specs of preset `name` (a new list each time).

    Raises:
        ConfigError: unknown preset (the message lists the known ones).
    """
    return [OperatorSpec(name=op, params=params) for op, params in chain(name)]


def operator(name: str) -> Callable[[Observable[Any]], Observable[Any]]:
    """Preset `name` as one operator (its chain composed with ``pipe``).

    Raises:
        ConfigError: unknown preset.
    """
    return compose(name)


def register_preset(
    name: str, operators: Sequence[OperatorSpec | Mapping[str, Any]], *, replace: bool = False
) -> None:
    """Register a preset: a list of operator specs (or ``{"name", "params"}`` dicts).

    Raises:
        ConfigError: a taken name (without `replace`) or an invalid operator spec.

    Example:
        >>> register_preset("words", [{"name": "chunk_by", "params": {"boundary": "word"}}],
        ...                 replace=True)
        >>> [op.name for op in get("words")]
        ['chunk_by']
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a preset name must be an identifier, got {name!r}")
    if isinstance(operators, str | Mapping) or not isinstance(operators, Sequence):
        raise ConfigError(
            f"a preset's operators must be a list of operator specs, got {operators!r}"
        )
    specs = [op if isinstance(op, OperatorSpec) else OperatorSpec.from_dict(op) for op in operators]
    if any(op.name == "preset" for op in specs):
        raise ConfigError("a preset cannot contain another preset")
    _store(name, [(op.name, dict(op.params)) for op in specs], replace=replace)
