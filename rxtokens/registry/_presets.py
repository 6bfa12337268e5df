"""The preset table: named chains of registered operators (`rxtokens.presets` is the public face).

Example:
    >>> chain("low_latency")
    [('on_backpressure_coalesce', {})]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from reactivex import Observable

from ..errors import ConfigError
from ._entries import known, operator_entry

__all__ = [
    "API_KEY_PATTERN",
    "CARD_PATTERN",
    "EMAIL_PATTERN",
    "chain",
    "compose",
    "names",
    "store",
]

CARD_PATTERN = r"\b\d(?:[ -]?\d){12,18}\b"
"""13 to 19 digits, optionally grouped by single spaces or dashes (payment card numbers)."""

API_KEY_PATTERN = (
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,160}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{36}\b"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,100}"
)
"""OpenAI / Anthropic / Stripe style ``sk-...`` keys, AWS access key ids, GitHub tokens,
Google API keys and Slack tokens."""

EMAIL_PATTERN = r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){1,8}\b"
"""E-mail addresses (bounded, so the redaction holds back at most one address)."""

Chain = list[tuple[str, dict[str, Any]]]

_PRESETS: dict[str, Chain] = {
    "low_latency": [("on_backpressure_coalesce", {})],
    "ui_smooth": [
        ("smooth", {"delay": 0.02, "chunking": "word"}),
        ("on_backpressure_coalesce", {}),
    ],
    "high_throughput": [
        ("frames", {"fps": 10.0}),
        ("on_backpressure_coalesce", {"max_pending": 4096}),
    ],
    "safe": [
        ("redact", {"pattern": CARD_PATTERN, "replacement": "[CARD]"}),
        ("redact", {"pattern": API_KEY_PATTERN, "replacement": "[API_KEY]"}),
        ("redact", {"pattern": EMAIL_PATTERN, "replacement": "[EMAIL]"}),
    ],
}
_lock = threading.Lock()


def names() -> list[str]:
    """The preset names, sorted."""
    return sorted(_PRESETS)


def chain(name: str) -> Chain:
    """The ``(operator, params)`` pairs of preset `name` (copies).

    Raises:
        ConfigError: unknown preset (the message lists the known ones).
    """
    found = _PRESETS.get(name)
    if found is None:
        raise ConfigError(f"unknown preset {name!r}; known: {known(_PRESETS)}")
    return [(op, dict(params)) for op, params in found]


def compose(name: str) -> Callable[[Observable[Any]], Observable[Any]]:
    """Preset `name` as one operator (its chain built from the registry, composed with pipe).

    Raises:
        ConfigError: unknown preset.
    """
    built = [operator_entry(op).build(params) for op, params in chain(name)]

    def apply(source: Observable[Any]) -> Observable[Any]:
        return source.pipe(*built) if built else source

    return apply


def store(name: str, operators: Sequence[tuple[str, dict[str, Any]]], *, replace: bool) -> None:
    """Add (or with `replace`, overwrite) preset `name` (operators already validated).

    Raises:
        ConfigError: a taken name without `replace`.
    """
    with _lock:
        if name in _PRESETS and not replace:
            raise ConfigError(f"a preset named {name!r} already exists")
        _PRESETS[name] = [(op, dict(params)) for op, params in operators]
