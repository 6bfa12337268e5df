"""`on_match`: an action per regex match (or predicate hit) in each choice's text, mid-stream.

The regex matching runs the streaming-regex engine (`Scanner`, ``_scanner.py``):
a match is reported once it is *final*, i.e. no text that may still arrive
could change it (``regex`` partial matching; see ``_pattern.py``). The action's
result enters the stream as an `ActionResult` token (``_session.py`` runs it).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reactivex import Observable

from ..errors import ConfigError
from ..tokens import ActionResult, Finish, TextDelta
from ._pattern import PatternSpec, compile_pattern
from ._scanner import Decided, Scanner
from ._session import Handler, Session, describe_error, inflight_operator, jsonable

__all__ = ["TextMatch", "on_match_operator"]


@dataclass(frozen=True, slots=True)
class TextMatch:
    """One match of `on_match` (what the action receives).

    Attributes:
        text: the matched text.
        start: where it starts in the choice's text (characters from its beginning).
        end: where it ends there.
        groups: the pattern's groups (None for a group that did not take part).
        named: the named groups.
        index: the choice.

    Example:
        >>> TextMatch("42", 6, 8, groups=("42",)).group(1)
        '42'
    """

    text: str
    start: int
    end: int
    groups: tuple[str | None, ...] = ()
    named: dict[str, str | None] = field(default_factory=dict)
    index: int = 0

    def group(self, key: int | str = 0) -> str | None:
        """Group `key` like `re.Match.group` (0: the whole match)."""
        if key == 0:
            return self.text
        if isinstance(key, str):
            return self.named[key]
        return self.groups[key - 1]


class _MatchFinder(Scanner):
    """One choice's text: a `Scanner` that also counts the text fed, for match offsets."""

    __slots__ = ("index", "seen")

    def __init__(self, spec: PatternSpec, index: int) -> None:
        super().__init__(spec)
        self.index = index
        self.seen = 0  # characters of the choice's text fed so far (the caller counts)

    def found(self, decided: Decided) -> list[TextMatch]:
        """The final matches of `decided` as `TextMatch` es."""
        buf, _, _, matches = decided
        base = self.seen - len(buf)  # `buf` ends where the text fed so far ends
        index = self.index
        return [
            TextMatch(
                match.group(0),
                base + match.start(),
                base + match.end(),
                match.groups(),
                match.groupdict(),
                index,
            )
            for match in matches
        ]

    def rest(self) -> list[TextMatch]:
        """The end of the text: every remaining match."""
        return self.found(self.flush())


def _callable_name(function: Any) -> str:
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


class _MatchHandler(Handler):
    def __init__(
        self,
        spec: PatternSpec | None,
        predicate: Callable[[str], object] | None,
        action: Callable[[TextMatch], Any],
        name: str,
    ) -> None:
        self._spec = spec
        self._predicate = predicate
        self._action = action
        self._name = name
        self._finders: dict[int, _MatchFinder] = {}
        self._texts: dict[int, str] = {}  # predicate mode: the text so far
        self._fired: set[int] = set()  # predicate mode: choices whose action fired

    def _finder(self, index: int) -> _MatchFinder:
        finder = self._finders.get(index)
        if finder is None:
            assert self._spec is not None
            finder = self._finders[index] = _MatchFinder(self._spec, index)
        return finder

    def on_token(self, session: Session, token: Any) -> None:
        kind = type(token)
        if kind is TextDelta:
            session.emit(token)
            if self._spec is not None:
                finder = self._finders.get(token.index) or self._finder(token.index)
                text = token.text
                finder.seen += len(text)
                decided = finder.feed(text)
                if decided[3]:
                    for match in finder.found(decided):
                        self._fire(session, match)
            elif token.index not in self._fired:
                index = token.index
                text = self._texts[index] = self._texts.get(index, "") + token.text
                assert self._predicate is not None
                if self._predicate(text):
                    self._fired.add(index)
                    self._texts.pop(index, None)
                    self._fire(session, TextMatch(text, 0, len(text), index=index))
            return
        if kind is Finish and token.index in self._finders:
            # a match decided by the end of the text is reported before the Finish
            for match in self._finders.pop(token.index).rest():
                self._fire(session, match)
        session.emit(token)

    def on_end(self, session: Session) -> None:
        finders, self._finders = self._finders, {}
        for finder in finders.values():
            for match in finder.rest():
                self._fire(session, match)

    def _fire(self, session: Session, match: TextMatch) -> None:
        name = self._name
        try:
            result = self._action(match)
        except Exception as exc:  # isolated: the stream goes on
            session.emit(ActionResult(name, match.text, None, describe_error(exc), match.index))
            return
        if not inspect.isawaitable(result):
            session.emit(ActionResult(name, match.text, jsonable(result), None, match.index))
            return

        def done(value: Any, error: BaseException | None, _elapsed: float) -> None:
            if error is not None:
                session.emit(
                    ActionResult(name, match.text, None, describe_error(error), match.index)
                )
            else:
                session.emit(ActionResult(name, match.text, jsonable(value), None, match.index))

        session.submit(result, done)


def on_match_operator(
    pattern_or_predicate: str | re.Pattern[str] | Any | Callable[[str], object],
    action: Callable[[TextMatch], Any],
    *,
    max_match: int | None = None,
    name: str | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.on_match` (see there)."""
    if not callable(action):
        raise ConfigError(f"on_match: action must be callable, got {action!r}")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"on_match: name must be a str, got {name!r}")
    action_name = name if name is not None else _callable_name(action)
    spec: PatternSpec | None = None
    predicate: Callable[[str], object] | None = None
    if isinstance(pattern_or_predicate, str | re.Pattern) or hasattr(
        pattern_or_predicate, "pattern"
    ):
        spec = compile_pattern(pattern_or_predicate, max_match=max_match, what="on_match")
    elif callable(pattern_or_predicate):
        if max_match is not None:
            raise ConfigError("on_match: max_match applies to patterns, not to predicates")
        predicate = pattern_or_predicate
    else:
        raise ConfigError(
            f"on_match: expected a regex (str or compiled) or a predicate over the text, "
            f"got {pattern_or_predicate!r}"
        )
    return inflight_operator(lambda: _MatchHandler(spec, predicate, action, action_name))
