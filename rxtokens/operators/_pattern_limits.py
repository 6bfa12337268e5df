"""Bounds for regexes that come from data (specs, launch strings), not from code.

A pattern written in Python is the program's own: `redact`, `stop_when`,
`on_match` and `chunk_by` compile it as given and match without a time limit
(a time budget costs about 2 us per ``regex`` call, more than the whole
per-token fast path). A pattern that arrives in a spec or a launch string may
come from a client of the server, and one such pattern can freeze the event
loop (``(a|aa)+b`` backtracks exponentially) or exhaust memory at compile time
(``regex`` expands counted repeats: ``a{999999999}``). So while operators are
built from a spec (`untrusted_patterns`, entered by the registry), patterns
are checked *before* they are compiled (`check_pattern_limits`: length, and
repetition counts multiplied through nesting) and each match call gets a time
budget (`TimedPattern`): a call that exceeds it ends that stream with
`PatternTimeoutError`.

Example:
    >>> with untrusted_patterns():
    ...     check_pattern_limits("a{999999999}", "redact")
    Traceback (most recent call last):
    ...
    rxtokens.errors.ConfigError: redact: the repeat count 999999999 in the pattern exceeds \
the limit for patterns from specs (1000 repetitions, nested repeats multiplied)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from ..errors import ConfigError, PatternTimeoutError

__all__ = [
    "PatternLimits",
    "TimedPattern",
    "active_limits",
    "check_pattern_limits",
    "untrusted_patterns",
]


@dataclass(frozen=True)
class PatternLimits:
    """Limits for patterns that come from data.

    Attributes:
        max_length: characters in the pattern's source.
        max_repeat: the largest repetition count, counts of nested repeats multiplied
            (``(a{10}){10}`` counts 100; an open repeat ``{n,}`` counts n).
        timeout: seconds one match call may take (``regex``'s ``timeout``).
    """

    max_length: int = 1000
    max_repeat: int = 1000
    timeout: float = 0.1


SPEC_LIMITS = PatternLimits()
"""The limits for patterns in specs and launch strings."""

_active: ContextVar[PatternLimits | None] = ContextVar("rxtokens_pattern_limits", default=None)


def active_limits() -> PatternLimits | None:
    """The limits in effect for patterns compiled now (None: a pattern from code)."""
    return _active.get()


@contextmanager
def untrusted_patterns(limits: PatternLimits = SPEC_LIMITS) -> Iterator[None]:
    """Patterns compiled inside this block come from data: bound them with `limits`."""
    token = _active.set(limits)
    try:
        yield
    finally:
        _active.reset(token)


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_BRACES = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


def _repeat_product(items: Any) -> int:
    """The largest product of repetition counts along one nesting path of a parsed pattern."""
    worst = 1
    for op_code, av in items:
        op = str(op_code)
        if op in _REPEATS:
            low, high, body = av
            count = low if high >= sre_parse.MAXREPEAT else high
            worst = max(worst, max(count, 1) * _repeat_product(body))
        elif op == "SUBPATTERN":
            worst = max(worst, _repeat_product(av[3]))
        elif op in ("ASSERT", "ASSERT_NOT"):
            worst = max(worst, _repeat_product(av[1]))
        elif op == "ATOMIC_GROUP":
            worst = max(worst, _repeat_product(av))
        elif op == "BRANCH":
            worst = max(worst, *(_repeat_product(alt) for alt in av[1]))
        elif op == "GROUPREF_EXISTS":
            worst = max(worst, *(_repeat_product(arm) for arm in av[1:] if arm is not None))
    return worst


def _textual_product(source: str) -> int:
    """Every ``{m,n}`` count in `source` multiplied (for syntax only ``regex`` knows)."""
    product = 1
    for match in _BRACES.finditer(source):
        counts = [int(c) for c in match.groups() if c]
        product *= max([1, *counts])
    return product


def check_pattern_limits(source: str, what: str, limits: PatternLimits | None = None) -> None:
    """Refuse `source` if it exceeds `limits` (default: the active ones; none: no check).

    Runs before the pattern is compiled: compiling ``a{999999999}`` alone exhausts memory.

    Raises:
        ConfigError: the pattern is too long or repeats too often, naming the limit.
    """
    limits = limits or _active.get()
    if limits is None:
        return
    prefix = f"{what}: " if what else ""
    if len(source) > limits.max_length:
        raise ConfigError(
            f"{prefix}the pattern is {len(source):,} characters long; the limit for patterns "
            f"from specs is {limits.max_length:,} characters"
        )
    try:
        product = _repeat_product(sre_parse.parse(source))
    except (re.error, RecursionError, OverflowError, ValueError, TypeError):
        product = _textual_product(source)  # conservative: as if every repeat were nested
    if product > limits.max_repeat:
        raise ConfigError(
            f"{prefix}the repeat count {product} in the pattern exceeds the limit for patterns "
            f"from specs ({limits.max_repeat} repetitions, nested repeats multiplied)"
        )


class TimedPattern:
    """A compiled ``regex`` pattern whose `search` and `match` have a time budget.

    Example:
        >>> import regex
        >>> timed = TimedPattern(regex.compile(r"(a|aa)+b"), 0.05, "redact")
        >>> timed.search("xab").group()
        'ab'
        >>> timed.search("a" * 60)
        Traceback (most recent call last):
        ...
        rxtokens.errors.PatternTimeoutError: redact: matching the pattern '(a|aa)+b' took \
longer than its time budget (0.05 s per match for patterns from specs); the pattern \
backtracks too much: avoid nested or overlapping repeats such as (a|aa)+
    """

    __slots__ = ("_compiled", "flags", "pattern", "timeout", "what")

    def __init__(self, compiled: Any, timeout: float, what: str) -> None:
        self._compiled = compiled
        self.pattern = compiled.pattern
        self.flags = compiled.flags
        self.timeout = timeout
        self.what = what

    def _timed_out(self) -> PatternTimeoutError:
        return PatternTimeoutError(
            f"{self.what}: matching the pattern {self.pattern!r} took longer than its time "
            f"budget ({self.timeout:g} s per match for patterns from specs); the pattern "
            f"backtracks too much: avoid nested or overlapping repeats such as (a|aa)+",
            pattern=self.pattern,
            timeout=self.timeout,
        )

    def search(self, *args: Any, **kwargs: Any) -> Any:
        """``regex`` ``search`` within the budget (raises `PatternTimeoutError`)."""
        try:
            return self._compiled.search(*args, timeout=self.timeout, **kwargs)
        except TimeoutError:
            raise self._timed_out() from None

    def match(self, *args: Any, **kwargs: Any) -> Any:
        """``regex`` ``match`` within the budget (raises `PatternTimeoutError`)."""
        try:
            return self._compiled.match(*args, timeout=self.timeout, **kwargs)
        except TimeoutError:
            raise self._timed_out() from None
