"""Content filters: `redact` and `stop_when`, regexes applied across token boundaries.

The core is `_Scanner`: it receives one text stream in pieces and decides,
as early as it soundly can, which text is *final* (can no longer be part of
a match, whatever text follows) and which matches are final. Text from the
earliest position where a match could still start is held back; everything
before it is released at once.

How "could still match" is decided (with the ``regex`` module, which tiktoken
already depends on):

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

The per-token fast path: when nothing is held back, a prefilter (the
pattern's literal prefix, or the class of its possible first characters,
compiled with `re` where that matches the same characters) checks whether
a match could start anywhere in the new text; if not, the token passes
unchanged (the same object) with one cheap search.

Matching follows `re.sub` semantics: leftmost matches, non-overlapping,
scanning resumes at the end of each match. Enough preceding text is kept as
context for lookbehinds and ``\\b``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import regex

from ..errors import ConfigError
from ..tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamToken,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._processor import StopStream

__all__ = [
    "TEXT_KINDS",
    "PatternSpec",
    "RedactProcessor",
    "StopWhenProcessor",
    "compile_pattern",
    "new_token",
]

TEXT_KINDS: tuple[type[Any], ...] = (TextDelta, ReasoningDelta, RefusalDelta)
"""Token kinds whose ``text`` the filters scan (each kind and choice separately)."""

new_token = tuple.__new__
"""``new_token(TextDelta, (text, index))`` builds a token without the NamedTuple
``__new__`` wrapper (3x cheaper on the per-token paths; same object)."""

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
    return PatternSpec(
        compiled, exposed, probe, window, context, replacement, prefilter, undecided, first
    )


class _Scanner:
    """One text stream: what is final, what could still become a match."""

    __slots__ = ("_buf", "_pos", "_spec")

    def __init__(self, spec: PatternSpec) -> None:
        self._spec = spec
        self._buf = ""  # context (already released) + undecided text
        self._pos = 0  # where the undecided text starts in _buf

    @property
    def pending(self) -> int:
        """Characters held back."""
        return len(self._buf) - self._pos

    def _keep(self, buf: str, pos: int) -> None:
        start = pos - self._spec.context
        if start > 0:
            self._buf = buf[start:]
            self._pos = pos - start
        else:
            self._buf = buf
            self._pos = pos

    def feed(self, text: str, stop: bool, inclusive: bool = True) -> tuple[str, bool]:
        """Add `text`; return (the text now final, whether a match ended the text there).

        With `stop`, scanning ends at the first final match, whose text is
        included (`inclusive`) or not; otherwise matches are replaced.
        """
        spec = self._spec
        pos = self._pos
        held = self._buf
        buf = held + text
        end = len(buf)
        prefilter = spec.prefilter
        if prefilter is not None:
            hit = prefilter.search(buf, pos)
            if hit is None:
                # No match can start in the undecided text (nothing held, or what was held,
                # an "s", is not followed by "k-" after all): all final, no regex search.
                if pos == len(held) and len(text) >= spec.context:
                    self._buf = text  # enough context: the same text object is released
                    self._pos = len(text)
                    return text, False
                self._keep(buf, end)
                return buf[pos:], False
            start = hit.start()
            if buf[start:] in spec.undecided:
                # The only candidate is a beginning of the literal prefix at the very end
                # ("...tokens" for "sk-..."): what precedes it is final, it waits.
                self._keep(buf, start)
                return buf[pos:start], False
        quick = spec.exposed.search(buf, pos, partial=True)
        if quick is None or (quick.partial and quick.start() >= end):
            self._keep(buf, end)  # the common case: nothing here can be or become a match
            return buf[pos:], False
        out: list[str] = []
        probe = spec.probe
        pattern = spec.pattern
        window = spec.window
        while pos < end:
            undecided = probe.search(buf, pos, partial=True)
            at = end if undecided is None else undecided.start()
            match = pattern.search(buf, pos)
            forced = False
            if (match is None or match.start() >= at) and end - at >= window:
                # Decide at `at` now, the window end counting as the end of the text.
                match = pattern.match(buf, at, at + window)
                forced = True
            if match is not None and (forced or match.start() < at):
                if stop:
                    out.append(buf[pos : match.end() if inclusive else match.start()])
                    self._keep(buf, match.end())
                    return "".join(out), True
                out.append(buf[pos : match.start()])
                out.append(spec.expand(match))
                pos = match.end()
                continue
            if forced:  # no match can start at `at`
                at += 1
                out.append(buf[pos:at])
                pos = at
                continue
            out.append(buf[pos:at])
            pos = at
            break
        self._keep(buf, pos)
        return "".join(out), False

    def flush(self, stop: bool, inclusive: bool = True) -> tuple[str, bool]:
        """The end of this text: decide everything held back."""
        spec = self._spec
        buf, pos = self._buf, self._pos
        out: list[str] = []
        found = False
        while True:
            match = spec.pattern.search(buf, pos)
            if match is None:
                out.append(buf[pos:])
                break
            if stop:
                out.append(buf[pos : match.end() if inclusive else match.start()])
                found = True
                break
            out.append(buf[pos : match.start()])
            out.append(spec.expand(match))
            pos = match.end()
        self._buf, self._pos = "", 0
        return "".join(out), found


def _choice_of(token: Any) -> int | None:
    """The choice a token belongs to, or None for stream-wide tokens (`Usage`, unknown)."""
    kind = type(token)
    if kind in TEXT_KINDS or kind is Finish:
        return int(token.index)
    if kind is ToolCallDelta or kind is ToolCall:
        return int(token.choice)
    return None


class _TextRouter:
    """Scanners per (text kind, choice); which of them a token ends."""

    __slots__ = ("_last", "_scanners", "_spec")

    def __init__(self, spec: PatternSpec) -> None:
        self._spec = spec
        self._scanners: dict[tuple[type[Any], int], _Scanner] = {}
        self._last: tuple[type[Any], int] | None = None

    def scanner(self, key: tuple[type[Any], int]) -> _Scanner:
        scanner = self._scanners.get(key)
        if scanner is None:
            scanner = self._scanners[key] = _Scanner(self._spec)
        return scanner

    def ended_by(self, token: Any) -> list[tuple[type[Any], int]]:
        """The text streams `token` ends: a different text kind of the same choice, or any
        other token of that choice (tool calls, `Finish`); `Usage` and unknown kinds end none."""
        kind = type(token)
        if kind in TEXT_KINDS:
            key = (kind, token.index)
            last = self._last
            self._last = key
            if last is not None and last != key and last[1] == key[1]:
                return [last] if self._scanners[last].pending else []
            return []
        choice = _choice_of(token)
        if choice is None:
            return []
        return [k for k, s in self._scanners.items() if k[1] == choice and s.pending]

    def open_keys(self) -> list[tuple[type[Any], int]]:
        return [k for k, s in self._scanners.items() if s.pending]


class RedactProcessor:
    """Per-subscription state of `redact`."""

    __slots__ = (
        "_context",
        "_first",
        "_index",
        "_kind",
        "_prefilter",
        "_router",
        "_scanner",
        "_undecided",
    )

    def __init__(self, spec: PatternSpec) -> None:
        self._router = _TextRouter(spec)
        self._prefilter = spec.prefilter
        self._undecided = spec.undecided
        self._first = spec.first
        self._context = spec.context
        self._kind: Any = None  # the text stream of the last text token: kind and choice
        self._index = 0
        self._scanner = _Scanner(spec)

    def feed(self, item: StreamToken) -> Sequence[StreamToken]:
        token: Any = item  # (mypy confuses the `index` field with tuple.index)
        kind = type(token)
        if kind is self._kind and token.index == self._index:
            # The hot path: more text of the same stream. The three common cases are
            # decided here with the prefilter alone (what `_Scanner.feed` would decide).
            scanner = self._scanner
            text = token.text
            prefilter = self._prefilter
            if prefilter is not None:
                held = scanner._buf
                pos = scanner._pos
                context = self._context
                if pos == len(held):  # nothing held
                    first = self._first
                    if first is not None and first not in text and len(text) >= context:
                        scanner._buf = text  # no "s" in `text`: nothing can start a match
                        scanner._pos = len(text)
                        return (token,)
                    hit = prefilter.search(text)
                    if hit is None:
                        if len(text) >= context:
                            scanner._buf = text  # nothing in `text` can start a match
                            scanner._pos = len(text)
                            return (token,)
                    else:
                        start = hit.start()
                        if start >= context and text[start:] in self._undecided:
                            # "...tokens" for "sk-...": "token" is final, the "s" waits.
                            scanner._buf = text[start - context :]
                            scanner._pos = context
                            return (new_token(kind, (text[:start], self._index)),)
                else:  # an undecided candidate is held ("s")
                    buf = held + text
                    if prefilter.search(buf, pos) is None:  # no match can start after all
                        end = len(buf)
                        if end > context:
                            scanner._buf = buf[end - context :]
                            scanner._pos = context
                        else:
                            scanner._buf = buf
                            scanner._pos = end
                        return (new_token(kind, (buf[pos:], self._index)),)
            released, _ = scanner.feed(text, False)
            if released is text:
                return (token,)
            return (new_token(kind, (released, token.index)),) if released else ()
        if kind is Usage:
            return (token,)
        router = self._router
        out: list[Any] = []
        for key in router.ended_by(token):
            released, _ = router.scanner(key).flush(False)
            if released:
                out.append(key[0](released, key[1]))
        if kind in TEXT_KINDS:
            key = (kind, token.index)
            self._kind, self._index = key
            self._scanner = scanner = router.scanner(key)
            released, _ = scanner.feed(token.text, False)
            if released:
                out.append(token if released is token.text else kind(released, token.index))
            return out
        out.append(token)
        return out

    def close(self) -> list[StreamToken]:
        out: list[Any] = []
        router = self._router
        for key in router.open_keys():
            released, _ = router.scanner(key).flush(False)
            if released:
                out.append(key[0](released, key[1]))
        return out


CONTENT_FILTER = "content_filter"
"""The `Finish` reason `stop_when` emits."""


class StopWhenProcessor:
    """Per-subscription state of `stop_when`."""

    __slots__ = ("_inclusive", "_key", "_predicate", "_router", "_scanner")

    def __init__(
        self,
        spec: PatternSpec | None,
        predicate: Callable[[Any], object] | None,
        inclusive: bool,
    ) -> None:
        self._router = None if spec is None else _TextRouter(spec)
        self._predicate = predicate
        self._inclusive = inclusive
        self._key: tuple[type[Any], int] | None = None
        self._scanner: _Scanner | None = None

    def _stop(self, out: list[Any], choice: int, matched: Hashable = None) -> StopStream[Any]:
        # Text other streams still hold came before the stop: release it as it is.
        if self._router is not None:
            for key in self._router.open_keys():
                if key == matched:
                    continue
                text, _ = self._router.scanner(key).flush(False)
                if text:
                    out.insert(0, key[0](text, key[1]))
        out.append(Finish(CONTENT_FILTER, choice))
        return StopStream(out)

    def feed(self, item: StreamToken) -> Sequence[StreamToken]:
        token: Any = item  # (mypy confuses the `index` field with tuple.index)
        if self._predicate is not None:
            if self._predicate(token):
                raise self._stop([token] if self._inclusive else [], _choice_of(token) or 0)
            return (token,)
        kind = type(token)
        if kind is Usage:
            return (token,)
        scanner = self._scanner
        if kind is TextDelta and scanner is not None and self._key == (kind, token.index):
            # The hot path: more text of the same stream.
            text = token.text
            released, found = scanner.feed(text, True, self._inclusive)
            if found:
                raise self._stop(
                    [kind(released, token.index)] if released else [], token.index, self._key
                )
            if released is text:
                return (token,)
            return (new_token(kind, (released, token.index)),) if released else ()
        router = self._router
        assert router is not None
        out: list[Any] = []
        for key in router.ended_by(token):
            text, found = router.scanner(key).flush(True, self._inclusive)
            if text:
                out.append(key[0](text, key[1]))
            if found:
                raise self._stop(out, key[1], key)
        if kind in TEXT_KINDS:
            index = token.index
            self._key = (kind, index)
            self._scanner = router.scanner(self._key)
            text, found = self._scanner.feed(token.text, True, self._inclusive)
            if text:
                out.append(kind(text, index))
            if found:
                raise self._stop(out, index, (kind, index))
            return out
        out.append(token)
        return out

    def close(self) -> list[StreamToken]:
        out: list[Any] = []
        router = self._router
        if router is None:
            return out
        for key in router.open_keys():
            text, found = router.scanner(key).flush(True, self._inclusive)
            if text:
                out.append(key[0](text, key[1]))
            if found:
                raise self._stop(out, key[1], key)
        return out
