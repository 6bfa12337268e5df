"""`detect_intents`: a throttled classifier over each choice's running text, `Intent` tokens.

`KeywordClassifier` is the built-in classifier (keywords / regexes, with an
incremental `KeywordSession` per choice); any callable (sync or async) works.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeAlias

from reactivex import Observable

from ..errors import ConfigError
from ..tokens import Finish, Intent, TextDelta
from ._session import Handler, Session, inflight_operator

__all__ = ["KeywordClassifier", "KeywordSession", "Throttle", "detect_intents_operator"]


Throttle: TypeAlias = Literal["word", "sentence", "token"] | int
"""When `detect_intents` calls its classifier (see there)."""


_CUTS: dict[str, re.Pattern[str]] = {
    "word": re.compile(r"\W"),
    "sentence": re.compile(r"[.!?;:\n]"),
}


class KeywordClassifier:
    """A keyword / regex intent classifier (the built-in one of `detect_intents`).

    An intent is present when at least one of its patterns matches the text
    (``re.search``, case-insensitive by default); its confidence is the
    fraction of its patterns that match, its evidence the first matched text.

    Args:
        intents: intent name -> a pattern or a list of patterns (str or compiled).
        flags: `re` flags for str patterns.

    Raises:
        ConfigError: no intents, or an invalid pattern.

    Example:
        >>> classify = KeywordClassifier({"book_meeting": [r"\\bschedule\\b", r"\\bmeeting\\b"],
        ...                               "weather": r"\\b(rain|sunny|forecast)\\b"})
        >>> classify("Can you schedule a meeting?")
        [('book_meeting', 1.0, 'schedule')]
    """

    __slots__ = ("_intents", "lookback")

    def __init__(
        self,
        intents: Mapping[str, str | re.Pattern[str] | Iterable[str | re.Pattern[str]]],
        *,
        flags: int = re.IGNORECASE,
        lookback: int = 256,
    ) -> None:
        if not isinstance(intents, Mapping) or not intents:
            raise ConfigError(
                f"KeywordClassifier needs a non-empty {{intent: [patterns]}} mapping, "
                f"got {intents!r}"
            )
        compiled: dict[str, list[re.Pattern[str]]] = {}
        for intent, patterns in intents.items():
            if not isinstance(intent, str) or not intent:
                raise ConfigError(f"KeywordClassifier: intent names must be strings: {intent!r}")
            items = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
            if not items:
                raise ConfigError(f"KeywordClassifier: intent {intent!r} has no patterns")
            compiled[intent] = []
            for pattern in items:
                try:
                    compiled[intent].append(
                        pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
                    )
                except (re.error, TypeError) as exc:
                    raise ConfigError(
                        f"KeywordClassifier: invalid pattern {pattern!r} for {intent!r}: {exc}"
                    ) from None
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1:
            raise ConfigError(f"KeywordClassifier: lookback must be an int >= 1, got {lookback!r}")
        self._intents = compiled
        self.lookback = lookback

    def session(self) -> KeywordSession:
        """An incremental classifier of one growing text (`detect_intents` makes one per choice).

        ``session.feed(new_text)`` returns the intents found in all the text
        fed so far; only the new text (plus `lookback` characters before it,
        for matches that straddle) is searched, so a long stream costs
        O(length) in all instead of O(length²). Matches longer than
        `lookback` characters may be missed.

        Example:
            >>> session = KeywordClassifier({"book": r"\\bschedule\\b"}).session()
            >>> session.feed("let us sched"), session.feed("ule it"), session.feed("schedule")
            ([], [('book', 1.0, 'schedule')], [])
        """
        return KeywordSession(self._intents, self.lookback)

    def __call__(self, text: str) -> list[tuple[str, float, str]]:
        """The intents present in `text`: ``(name, confidence, evidence)``."""
        found: list[tuple[str, float, str]] = []
        for intent, patterns in self._intents.items():
            hits = [m for m in (p.search(text) for p in patterns) if m is not None]
            if hits:
                found.append((intent, len(hits) / len(patterns), hits[0].group(0)))
        return found

    def __repr__(self) -> str:
        return (
            f"KeywordClassifier({ {k: [p.pattern for p in v] for k, v in self._intents.items()} })"
        )


class KeywordSession:
    """`KeywordClassifier.session`: the patterns already found in one growing text."""

    __slots__ = ("_context", "_counts", "_hits", "_intents", "_lookback", "_started")

    def __init__(self, intents: dict[str, list[re.Pattern[str]]], lookback: int) -> None:
        self._intents = intents
        self._lookback = lookback
        self._hits: dict[tuple[str, int], str] = {}
        self._counts: dict[str, int] = {}  # intent -> patterns found so far
        self._context = ""  # the end of the text fed so far (at most `lookback` characters)
        self._started = False  # whether text was cut from the front of the context

    def feed(self, text: str) -> list[tuple[str, float, str]]:
        """Add `text`; return ``(name, confidence, evidence)`` of the intents it revealed.

        An intent is returned when this text made it appear or raised its
        confidence (another of its patterns matched), with the evidence of its
        first matched pattern.
        """
        buffer = self._context + text
        # a match at the very start of a cut context could be the tail of a longer word
        start = 1 if self._started and buffer else 0
        hits = self._hits
        counts = self._counts
        found: list[tuple[str, float, str]] = []
        for intent, patterns in self._intents.items():
            if counts.get(intent, 0) == len(patterns):
                continue  # every pattern of it was found already
            evidence = None
            count = 0
            for i, pattern in enumerate(patterns):
                hit = hits.get((intent, i))
                if hit is None:
                    match = pattern.search(buffer, start)
                    if match is not None:
                        hit = hits[(intent, i)] = match.group(0)
                if hit is not None:
                    count += 1
                    if evidence is None:
                        evidence = hit
            if evidence is not None and count > counts.get(intent, 0):
                counts[intent] = count
                found.append((intent, count / len(patterns), evidence))
        if len(buffer) > self._lookback:
            self._context = buffer[-self._lookback :]
            self._started = True
        else:
            self._context = buffer
        return found


class _ChoiceText:
    """One choice's text as `detect_intents` sees it."""

    __slots__ = ("dirty", "emitted", "feed", "final", "head", "inflight", "pending")

    def __init__(self, feed: Callable[[str], Any] | None) -> None:
        self.feed = feed  # a classifier session's feed(), or None: whole-text calls
        self.head = ""  # the text already classified (whole-text classifiers only)
        self.pending = ""  # the text after it
        self.emitted: set[str] = set()
        self.inflight = False
        self.dirty = False  # text became ready while a call was in flight
        self.final = False  # the choice's text ended


def _intents_of(result: Any, index: int) -> list[Intent]:
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [Intent(str(k), float(v), "", index) for k, v in result.items()]
    out: list[Intent] = []
    for item in result:
        if isinstance(item, Intent):
            out.append(item._replace(index=index))
        elif isinstance(item, str):
            out.append(Intent(item, 1.0, "", index))
        elif isinstance(item, tuple | list) and len(item) in (2, 3):
            evidence = str(item[2]) if len(item) == 3 and item[2] is not None else ""
            out.append(Intent(str(item[0]), float(item[1]), evidence, index))
        else:
            raise TypeError(
                f"detect_intents: the classifier returned {item!r}; expected (name, confidence) "
                f"or (name, confidence, evidence) items, or a {{name: confidence}} mapping"
            )
    return out


class _IntentHandler(Handler):
    def __init__(
        self,
        classifier: Callable[[str], Any],
        throttle: Throttle,
        min_confidence: float,
        errors: str,
    ) -> None:
        self._classifier = classifier
        self._throttle = throttle
        self._min_confidence = min_confidence
        self._errors = errors
        self._choices: dict[int, _ChoiceText] = {}

    def _state(self, index: int) -> _ChoiceText:
        state = self._choices.get(index)
        if state is None:
            make_session = getattr(self._classifier, "session", None)
            feed = make_session().feed if callable(make_session) else None
            state = self._choices[index] = _ChoiceText(feed)
        return state

    def _ready(self, state: _ChoiceText, tail: int) -> int:
        """How much of the pending text the classifier may see now (0: nothing).

        `tail`: how many characters at the end of the pending text are new.
        """
        throttle = self._throttle
        pending = state.pending
        if throttle == "token":
            return len(pending)
        if isinstance(throttle, int):
            return len(pending) if len(pending) >= throttle else 0
        cut = _CUTS[throttle]
        for i in range(len(pending) - 1, len(pending) - tail - 1, -1):
            if cut.match(pending, i):
                return i + 1
        return 0

    def on_token(self, session: Session, token: Any) -> None:
        kind = type(token)
        if kind is TextDelta:
            session.emit(token)
            state = self._state(token.index)
            if state.final:
                return
            text = token.text
            state.pending += text
            ready = self._ready(state, len(text))
            if ready:
                self._classify(session, token.index, state, ready)
            return
        if kind is Finish:
            ended = self._choices.get(token.index)
            if ended is not None:
                self._end(session, token.index, ended)
        session.emit(token)

    def on_end(self, session: Session) -> None:
        for index, state in list(self._choices.items()):
            self._end(session, index, state)

    def _end(self, session: Session, index: int, state: _ChoiceText) -> None:
        if state.final:
            return
        state.final = True
        if state.pending:
            self._classify(session, index, state, len(state.pending))

    def _classify(self, session: Session, index: int, state: _ChoiceText, ready: int) -> None:
        if state.inflight:
            state.dirty = True
            return
        segment, state.pending = state.pending[:ready], state.pending[ready:]
        try:
            if state.feed is not None:
                result = state.feed(segment)
            else:
                state.head += segment
                result = self._classifier(state.head)
        except Exception as exc:
            self._failed(session, exc)
            return
        if not inspect.isawaitable(result):
            self._emit(session, index, state, result)
            return
        state.inflight = True

        def done(value: Any, error: BaseException | None, _elapsed: float) -> None:
            state.inflight = False
            if error is not None:
                self._failed(session, error)
            else:
                self._emit(session, index, state, value)
            if state.dirty and not session.stopped:
                state.dirty = False
                ready = (
                    len(state.pending) if state.final else self._ready(state, len(state.pending))
                )
                if ready:
                    self._classify(session, index, state, ready)

        session.submit(result, done)

    def _failed(self, session: Session, error: BaseException) -> None:
        if self._errors == "ignore":
            return
        session.fail(error if isinstance(error, Exception) else RuntimeError(str(error)))

    def _emit(self, session: Session, index: int, state: _ChoiceText, result: Any) -> None:
        for intent in _intents_of(result, index):
            if intent.name in state.emitted or intent.confidence < self._min_confidence:
                continue
            state.emitted.add(intent.name)
            session.emit(intent)


def detect_intents_operator(
    classifier: Callable[[str], Any] | Mapping[str, Any],
    *,
    throttle: Throttle = "word",
    min_confidence: float = 0.0,
    errors: Literal["raise", "ignore"] = "raise",
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.detect_intents` (see there)."""
    if isinstance(classifier, Mapping):
        classifier = KeywordClassifier(classifier)
    if not callable(classifier):
        raise ConfigError(f"detect_intents: classifier must be callable, got {classifier!r}")
    if isinstance(throttle, bool) or not (
        throttle in ("word", "sentence", "token") or (isinstance(throttle, int) and throttle >= 1)
    ):
        raise ConfigError(
            f"detect_intents: throttle must be 'word', 'sentence', 'token' or an int >= 1 "
            f"(characters), got {throttle!r}"
        )
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, int | float):
        raise ConfigError(
            f"detect_intents: min_confidence must be a number, got {min_confidence!r}"
        )
    if errors not in ("raise", "ignore"):
        raise ConfigError(f"detect_intents: errors must be 'raise' or 'ignore', got {errors!r}")
    function = classifier
    return inflight_operator(
        lambda: _IntentHandler(function, throttle, float(min_confidence), errors)
    )
