"""Regexes analysed for streaming: what `Scanner` needs to decide matches early.

`compile_pattern` validates a pattern and builds its `PatternSpec`; the
scanner (``_scanner.py``) then decides, as early as it soundly can, which
text is final and which matches are final. How "could still match" is
decided (with the ``regex`` module, which tiktoken already depends on):

- A *probe* pattern ``(?:P)(*FAIL)`` makes every complete match fail, so the
  engine explores every path; searched with ``partial=True`` it reports the
  earliest position where some path of ``P`` reads past the end of the
  buffered text, i.e. whose outcome depends on text not seen yet. Positions
  before it are decided.
- End-of-text assertions (``\\b``, ``\\B``, ``$``, ``\\Z``) succeed or fail at
  the end of the buffer without reading past it, so the probe spells them as
  equivalent lookarounds, whose bodies do read the next character.
- A complete match that starts before that position is final (no path at or
  before its start depends on the future), including its end.
- Patterns whose matches can be arbitrarily long need ``max_match``: a window
  of characters after which the decision at a position is forced (the window
  end counts as the end of the text).

For the per-token fast path, a *prefilter* (the pattern's literal prefix, or
the class of its possible first characters, compiled with `re` where that
matches the same characters) finds where a match could start at all.
"""

from __future__ import annotations

import re
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import regex

from ..errors import ConfigError
from ._pattern_limits import TimedPattern, active_limits, check_pattern_limits

__all__ = ["PatternSpec", "compile_pattern"]

_WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"
_END = r"(?![\s\S])"
_DOLLAR = r"(?=\n?(?![\s\S]))"
_DOLLAR_MULTILINE = r"(?=\n|(?![\s\S]))"
_LEADING_FLAGS = re.compile(r"\A\(\?[aiLmsuxV01]+\)")


def _expose_end_assertions(source: str, multiline: bool) -> str:
    """`source` with ``\\b \\B \\Z $`` outside classes spelled as lookarounds."""
    out: list[str] = []
    i, n = 0, len(source)
    in_class = False
    class_start = 0
    while i < n:
        char = source[i]
        if char == "\\" and i + 1 < n:
            escaped = source[i + 1]
            if not in_class and escaped == "b":
                out.append(_WORD_BOUNDARY)
            elif not in_class and escaped == "B":
                out.append(_NOT_WORD_BOUNDARY)
            elif not in_class and escaped == "Z":
                out.append(_END)
            else:
                out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            # A "]" right after "[" or "[^" is a literal.
            if char == "]" and i > class_start:
                in_class = False
        elif char == "[":
            in_class = True
            class_start = i + 1
            if class_start < n and source[class_start] == "^":
                class_start += 1
        elif char == "$":
            out.append(_DOLLAR_MULTILINE if multiline else _DOLLAR)
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _assertion_widths(parsed: Any) -> tuple[int, int]:
    """(lookahead, lookbehind): the summed maximum widths of the pattern's lookarounds."""
    ahead = behind = 0
    stack: list[Any] = [parsed]
    assert_ops = (sre_parse.ASSERT, sre_parse.ASSERT_NOT)
    while stack:
        node = stack.pop()
        if isinstance(node, sre_parse.SubPattern):
            for op, av in node:
                if op in assert_ops:
                    direction, body = av
                    width = body.getwidth()[1]
                    if direction > 0:
                        ahead += width
                    else:
                        behind += width
                    stack.append(body)
                else:
                    stack.append(av)
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return ahead, behind


_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}
_ZERO_WIDTH = {"AT", "ASSERT", "ASSERT_NOT"}
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


class _NoPrefilter(Exception):
    """The pattern's first characters cannot be summarised as one class."""


def _class_item(op: str, av: Any) -> str:
    if op == "LITERAL":
        return re.escape(chr(av))
    if op == "RANGE":
        return f"{re.escape(chr(av[0]))}-{re.escape(chr(av[1]))}"
    if op == "CATEGORY" and str(av) in _CATEGORIES:
        return _CATEGORIES[str(av)]
    raise _NoPrefilter


def _first_chars(items: Any) -> tuple[list[str], bool]:
    """(class items any match of the sequence `items` can start with, whether it can be empty)."""
    firsts: list[str] = []
    for op_code, av in items:
        op = str(op_code)
        if op in _ZERO_WIDTH:
            continue
        if op == "LITERAL":
            return [*firsts, _class_item(op, av)], False
        if op == "IN":
            if any(str(o) == "NEGATE" for o, _ in av):
                raise _NoPrefilter
            return [*firsts, *(_class_item(str(o), a) for o, a in av)], False
        if op == "BRANCH":
            nullable = False
            for alternative in av[1]:
                more, empty = _first_chars(alternative)
                firsts += more
                nullable = nullable or empty
        elif op == "SUBPATTERN":
            if av[1] or av[2]:  # scoped flags
                raise _NoPrefilter
            more, nullable = _first_chars(av[3])
            firsts += more
        elif op == "ATOMIC_GROUP":
            more, nullable = _first_chars(av)
            firsts += more
        elif op in _REPEATS:
            more, empty = _first_chars(av[2])
            firsts += more
            nullable = empty or av[0] == 0
        else:  # ANY, NOT_LITERAL, GROUPREF ...: (nearly) any character
            raise _NoPrefilter
        if not nullable:
            return firsts, False
    return firsts, True


_PREFIX_LIMIT = 3
_MAX_PREFIXES = 64


def _extend_prefixes(prefixes: set[tuple[str, bool]], items: Any) -> set[tuple[str, bool]]:
    """Extend (prefix, still open) pairs by the sequence `items` while it is literal."""
    for op_code, av in items:
        if not any(is_open for _, is_open in prefixes):
            break
        op = str(op_code)
        if op in _ZERO_WIDTH:
            continue
        if op == "LITERAL":
            prefixes = {
                (p + chr(av), len(p) + 1 < _PREFIX_LIMIT) if is_open else (p, False)
                for p, is_open in prefixes
            }
        elif op == "SUBPATTERN" and not av[1] and not av[2]:
            prefixes = _extend_prefixes(prefixes, av[3])
        elif op == "BRANCH":
            prefixes = set().union(*(_extend_prefixes(prefixes, alt) for alt in av[1]))
        else:  # a class, a repeat, any character ...: the literal prefixes end here
            return {(p, False) for p, _ in prefixes}
        if len(prefixes) > _MAX_PREFIXES:
            raise _NoPrefilter
    return prefixes


def _literal_prefixes(parsed: Any) -> list[str]:
    """Literal strings (up to 3 characters) one of which every match starts with; [] if none."""
    try:
        found = _extend_prefixes({("", True)}, parsed)
    except (_NoPrefilter, ValueError, TypeError, IndexError):
        return []
    prefixes = sorted({p for p, _ in found})
    return [] if not prefixes or "" in prefixes else prefixes


def _fast_compile(source: str, flags: int, portable: bool) -> Any:
    """`source` compiled with `re` (about 8x cheaper per call on short strings) when `re`
    matches exactly the same characters as ``regex`` would, else with ``regex``."""
    if portable and not flags & regex.IGNORECASE:
        return re.compile(source, flags & re.ASCII)
    return regex.compile(source, flags)


def _prefilter(parsed: Any, flags: int) -> Any:
    """A pattern that finds every place in a text where a match could start.

    With literal prefixes (``abc`` or ``xy``; up to 3 characters each):
    ``a(?:b(?:c|\\Z)|\\Z)|x(?:y|\\Z)`` (a prefix, or a start of one at the end of
    the text); otherwise the class of characters a match can start with,
    when that is a small set. None when neither helps.
    """
    prefixes = _literal_prefixes(parsed)
    if prefixes and max(map(len, prefixes)) >= 2:
        alternatives = []
        for prefix in prefixes:
            source = re.escape(prefix[-1])
            for char in reversed(prefix[:-1]):
                source = f"{re.escape(char)}(?:{source}|\\Z)"
            alternatives.append(source)
        return _fast_compile("|".join(alternatives), flags, True)
    try:
        firsts, nullable = _first_chars(parsed)
    except (_NoPrefilter, ValueError, TypeError, IndexError):
        return None
    if nullable or not firsts:
        return None
    # re and regex differ on \w \s (marks, U+001C..U+001F): only \d is the same in both.
    portable = not any(item in (r"\D", r"\s", r"\S", r"\w", r"\W") for item in firsts)
    try:
        return _fast_compile("[" + "".join(firsts) + "]", flags, portable)
    except (re.error, regex.error):  # pragma: no cover (defensive)
        return None


def _undecided_tails(parsed: Any, flags: int, source: str) -> frozenset[str]:
    """Texts that, at the very end of the buffer, are surely an undecided match candidate.

    The proper beginnings of the pattern's literal prefixes that are not prefixes
    themselves (``s`` and ``sk`` for ``sk-...``): every path of the pattern reading
    them reads past the end of the text. Empty (no shortcut) when the prefilter is
    not literal, with case-insensitive matching, or with assertions (a lookbehind
    or ``\\b`` could decide such a position without reading past the end).
    """
    if flags & regex.IGNORECASE or re.search(r"\\[bBAZ]|\(\?<?[=!]|[$^]", source):
        return frozenset()
    prefixes = _literal_prefixes(parsed)
    if not prefixes or max(map(len, prefixes)) < 2:
        return frozenset()
    beginnings = {prefix[:i] for prefix in prefixes for i in range(1, len(prefix))}
    return frozenset(beginnings - set(prefixes))


def _first_char(parsed: Any, flags: int) -> str | None:
    """The one character every match starts with (``s`` for ``sk-...``), or None.

    Text without it cannot start a match, which ``in`` tells faster than a search.
    """
    if flags & regex.IGNORECASE:
        return None
    firsts = {prefix[0] for prefix in _literal_prefixes(parsed)}
    return firsts.pop() if len(firsts) == 1 else None


class PatternSpec:
    """A validated pattern with what the scanner needs: probe, window, context size."""

    __slots__ = (
        "context",
        "exposed",
        "first",
        "pattern",
        "prefilter",
        "probe",
        "replacement",
        "template",
        "undecided",
        "window",
    )

    def __init__(
        self,
        pattern: regex.Pattern[str],
        exposed: regex.Pattern[str],
        probe: regex.Pattern[str],
        window: int,
        context: int,
        replacement: str,
        prefilter: Any = None,
        undecided: frozenset[str] = frozenset(),
        first: str | None = None,
    ) -> None:
        self.pattern = pattern
        self.first = first  # the character every match starts with, if there is one
        self.prefilter = prefilter  # finds where a match could start (see `_prefilter`)
        self.undecided = undecided  # see `_undecided_tails`
        self.exposed = exposed
        self.probe = probe
        self.window = window
        self.context = context
        self.replacement = replacement
        self.template = "\\" in replacement

    def expand(self, match: Any) -> str:
        """The replacement text of `match` (a template like `re.sub`'s when it has ``\\``)."""
        return str(match.expand(self.replacement)) if self.template else self.replacement


def compile_pattern(
    pattern: str | re.Pattern[str] | Any,
    *,
    max_match: int | None,
    replacement: str = "",
    what: str = "redact",
) -> PatternSpec:
    """Validate `pattern` eagerly and build its `PatternSpec`.

    Raises:
        ConfigError: not a str pattern, invalid, can match the empty string, or
            can match unboundedly long text (or cannot be analysed) without `max_match`.
    """
    if isinstance(pattern, re.Pattern | regex.Pattern):
        source, flags = pattern.pattern, pattern.flags
    elif isinstance(pattern, str):
        source, flags = pattern, 0
    else:
        raise ConfigError(f"{what}: pattern must be a str or a compiled regex, not {pattern!r}")
    if not isinstance(source, str):
        raise ConfigError(f"{what}: pattern must match text (str), not bytes: {source!r}")
    if max_match is not None and (
        isinstance(max_match, bool) or not isinstance(max_match, int) or max_match < 1
    ):
        raise ConfigError(f"{what}: max_match must be a positive int, not {max_match!r}")
    if not isinstance(replacement, str):
        raise ConfigError(f"{what}: replacement must be a str, not {replacement!r}")
    flags &= ~re.UNICODE  # implied for str patterns; regex spells it the same
    limits = active_limits()  # a pattern from a spec: bounded (see _pattern_limits.py)
    check_pattern_limits(source, what, limits)
    try:
        compiled = regex.compile(source, flags)
    except (regex.error, ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: invalid pattern {source!r}: {exc}") from None
    if compiled.search("") is not None:
        raise ConfigError(f"{what}: the pattern {source!r} matches the empty string")
    try:
        parsed = sre_parse.parse(source, flags)
        low, high = parsed.getwidth()
        ahead, behind = _assertion_widths(parsed)
        prefilter = _prefilter(parsed, compiled.flags)
        undecided = _undecided_tails(parsed, compiled.flags, source) if prefilter else frozenset()
        first = _first_char(parsed, compiled.flags)
    except Exception:  # regex-only syntax: cannot bound it
        low, high, ahead, behind, prefilter = 1, None, 0, 64, None
        undecided, first = frozenset(), None
    if low == 0:
        raise ConfigError(f"{what}: the pattern {source!r} can match the empty string")
    bounded = high is not None and high < sre_parse.MAXREPEAT
    if max_match is None:
        if not bounded:
            raise ConfigError(
                f"{what}: the pattern {source!r} can match text of unbounded length (a +, * or "
                f"{{n,}} repeat), so the text that could still become a match is unbounded too. "
                f"Pass max_match=N (characters): a match is decided within N characters of "
                f"its start (longer candidates are cut at N), or bound the repeat ({{1,64}})."
            )
        assert high is not None
        window = high + ahead + 2  # \b and $ look one or two characters past a match
    else:
        window = max_match + ahead + 2
    prefix_match = _LEADING_FLAGS.match(source)
    prefix = prefix_match.group(0) if prefix_match else ""
    body = source[len(prefix) :]
    exposed_body = _expose_end_assertions(body, bool(compiled.flags & regex.MULTILINE))
    try:
        exposed = regex.compile(prefix + exposed_body, flags)
        probe = regex.compile(f"{prefix}(?:{exposed_body})(*FAIL)", flags)
    except (regex.error, ValueError, TypeError) as exc:  # pragma: no cover (defensive)
        raise ConfigError(f"{what}: cannot analyse the pattern {source!r}: {exc}") from None
    if "\\" in replacement:
        try:
            checked: re.Pattern[str] | None = re.compile(source, flags)
        except Exception:  # regex-only syntax: the template is checked at the first match
            checked = None
        if checked is not None:
            try:
                sre_parse.parse_template(replacement, checked)
            except re.error as exc:
                raise ConfigError(f"{what}: invalid replacement {replacement!r}: {exc}") from None
    context = max(1, behind + 1)
    if limits is not None:
        compiled, exposed, probe = (
            TimedPattern(p, limits.timeout, what) for p in (compiled, exposed, probe)
        )
    return PatternSpec(
        compiled, exposed, probe, window, context, replacement, prefilter, undecided, first
    )
