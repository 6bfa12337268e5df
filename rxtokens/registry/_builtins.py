"""The built-in entries: the operators of `rxtokens.operators` and the sinks, with checks.

Registered on the first lookup (`rxtokens.registry._entries.on_first_lookup`), so that
importing the registry derives no parameter model. Providers are not here: they come from
the one provider table of `rxtokens.providers`.

Example:
    >>> from rxtokens.registry import operator_entry
    >>> operator_entry("filter").factory is keep_types
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import regex

from .. import operators as o
from ..errors import ConfigError
from ..operators._pattern_limits import SPEC_LIMITS, check_pattern_limits
from ..tokens import TOKEN_TYPES
from . import _presets
from ._entries import (
    OperatorEntry,
    SinkEntry,
    TokenOperator,
    _operators,
    _sinks,
    known,
    on_first_lookup,
)
from ._params import params_model_from_signature, summary_of
from ._sinks import JsonlSink, StdoutSink, TextFileSink

__all__ = ["keep_types", "preset"]


def _compiles(pattern: Any) -> None:
    if not isinstance(pattern, str):
        return
    check_pattern_limits(pattern, "", SPEC_LIMITS)  # before compiling: a{999999999}
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
    for kinds in (types or [], drop or []):
        unknown = [t for t in kinds if t not in TOKEN_TYPES]
        if unknown:
            raise ConfigError(
                f"filter: unknown token type(s) {unknown}; known: {known(TOKEN_TYPES)}"
            )
    keep = None if types is None else frozenset(types)
    dropped = frozenset(drop or ())
    return o.filter_tokens(
        lambda token: (keep is None or token.type in keep) and token.type not in dropped
    )


def preset(name: str) -> TokenOperator:
    """A named chain of operators (``low_latency``, ``ui_smooth``, ``high_throughput``, ``safe``).

    Args:
        name: the preset (see `rxtokens.presets`).
    """
    return _presets.compose(name)


def _preset_name(name: Any) -> None:
    if name not in _presets.names():
        raise ValueError(f"unknown preset {name!r}; known: {known(_presets.names())}")


def _register() -> None:
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
    # not `cache`: its store is an object (a spec could only name a file or a Redis URL,
    # which a client must never choose on a server); the server caches with --cache
    op("filter", keep_types)
    op("preset", preset, {"name": "safe"}, name=_preset_name)

    for name, factory, example in (
        ("stdout", StdoutSink, {}),
        ("jsonl", JsonlSink, {"path": "tokens.jsonl"}),
        ("textfile", TextFileSink, {"path": "answer.txt"}),
    ):
        model = params_model_from_signature(factory.__init__, name=name, skip=1)
        _sinks[name] = SinkEntry(name, factory, model, summary_of(factory), example)


on_first_lookup(_register)
