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

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reactivex import Observable

from .errors import ConfigError

if TYPE_CHECKING:
    from .spec import OperatorSpec

__all__ = [
    "API_KEY_PATTERN",
    "CARD_PATTERN",
    "EMAIL_PATTERN",
    "get",
    "names",
    "operator",
    "register_preset",
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

_PRESETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
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


def get(name: str) -> list[OperatorSpec]:
    """The operator specs of preset `name` (a new list each time).

    Raises:
        ConfigError: unknown preset (the message lists the known ones).
    """
    from .spec import OperatorSpec

    chain = _PRESETS.get(name)
    if chain is None:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(names())}")
    return [OperatorSpec(name=op, params=dict(params)) for op, params in chain]


def operator(name: str) -> Callable[[Observable[Any]], Observable[Any]]:
    """Preset `name` as one operator (its chain composed with ``pipe``).

    Raises:
        ConfigError: unknown preset.
    """
    built = [spec.build() for spec in get(name)]

    def apply(source: Observable[Any]) -> Observable[Any]:
        return source.pipe(*built) if built else source

    return apply


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
    from .spec import OperatorSpec

    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a preset name must be an identifier, got {name!r}")
    if isinstance(operators, str | Mapping) or not isinstance(operators, Sequence):
        raise ConfigError(
            f"a preset's operators must be a list of operator specs, got {operators!r}"
        )
    specs = [op if isinstance(op, OperatorSpec) else OperatorSpec.from_dict(op) for op in operators]
    if any(op.name == "preset" for op in specs):
        raise ConfigError("a preset cannot contain another preset")
    with _lock:
        if name in _PRESETS and not replace:
            raise ConfigError(f"a preset named {name!r} already exists")
        _PRESETS[name] = [(op.name, dict(op.params)) for op in specs]
