"""Content filters: `redact` and `stop_when`, regexes applied across token boundaries.

Both run the streaming-regex engine (`Scanner`, ``_scanner.py``) on each text
stream (text kind and choice) separately: `redact` releases the final text
with its final matches replaced, `stop_when` releases it up to the first
final match and ends the stream with ``Finish("content_filter")``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ..tokens import Finish, StreamToken, TextDelta, Usage
from ._kinds import TEXT_KINDS, choice_of, new_token
from ._pattern import PatternSpec
from ._processor import StopStream
from ._scanner import Decided, Scanner

__all__ = ["CONTENT_FILTER", "RedactProcessor", "StopWhenProcessor"]


def _replaced(spec: PatternSpec, decided: Decided) -> str:
    """The final text of `decided` with its matches replaced (the same object without any)."""
    buf, pos, end, matches = decided
    if not matches:
        return buf[pos:end]  # buf[0:len(buf)] is buf itself
    out: list[str] = []
    for match in matches:
        out.append(buf[pos : match.start()])
        out.append(spec.expand(match))
        pos = match.end()
    out.append(buf[pos:end])
    return "".join(out)


def _until_match(decided: Decided, inclusive: bool) -> tuple[str, bool]:
    """(the final text of `decided` up to its first match, whether there is one)."""
    buf, pos, end, matches = decided
    if not matches:
        return buf[pos:end], False
    match = matches[0]
    return buf[pos : match.end() if inclusive else match.start()], True


class _TextRouter:
    """Scanners per (text kind, choice); which of them a token ends."""

    __slots__ = ("_last", "_scanners", "spec")

    def __init__(self, spec: PatternSpec) -> None:
        self.spec = spec
        self._scanners: dict[tuple[type[Any], int], Scanner] = {}
        self._last: tuple[type[Any], int] | None = None

    def scanner(self, key: tuple[type[Any], int]) -> Scanner:
        scanner = self._scanners.get(key)
        if scanner is None:
            scanner = self._scanners[key] = Scanner(self.spec)
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
        choice = choice_of(token)
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
        "_spec",
        "_undecided",
    )

    def __init__(self, spec: PatternSpec) -> None:
        self._spec = spec
        self._router = _TextRouter(spec)
        self._prefilter = spec.prefilter
        self._undecided = spec.undecided
        self._first = spec.first
        self._context = spec.context
        self._kind: Any = None  # the text stream of the last text token: kind and choice
        self._index = 0
        self._scanner = Scanner(spec)

    def feed(self, item: StreamToken) -> Sequence[StreamToken]:
        token: Any = item  # (mypy confuses the `index` field with tuple.index)
        kind = type(token)
        if kind is self._kind and token.index == self._index:
            # The hot path: more text of the same stream. The three common cases are
            # decided here with the prefilter alone (what `Scanner.feed` would decide).
            scanner = self._scanner
            text = token.text
            prefilter = self._prefilter
            if prefilter is not None:
                held = scanner.buf
                pos = scanner.pos
                context = self._context
                if pos == len(held):  # nothing held
                    first = self._first
                    if first is not None and first not in text and len(text) >= context:
                        scanner.buf = text  # no "s" in `text`: nothing can start a match
                        scanner.pos = len(text)
                        return (token,)
                    hit = prefilter.search(text)
                    if hit is None:
                        if len(text) >= context:
                            scanner.buf = text  # nothing in `text` can start a match
                            scanner.pos = len(text)
                            return (token,)
                    else:
                        start = hit.start()
                        if start >= context and text[start:] in self._undecided:
                            # "...tokens" for "sk-...": "token" is final, the "s" waits.
                            scanner.buf = text[start - context :]
                            scanner.pos = context
                            return (new_token(kind, (text[:start], self._index)),)
                else:  # an undecided candidate is held ("s")
                    buf = held + text
                    if prefilter.search(buf, pos) is None:  # no match can start after all
                        end = len(buf)
                        if end > context:
                            scanner.buf = buf[end - context :]
                            scanner.pos = context
                        else:
                            scanner.buf = buf
                            scanner.pos = end
                        return (new_token(kind, (buf[pos:], self._index)),)
            decided = scanner.feed(text)
            buf, start, end, matches = decided
            released = _replaced(self._spec, decided) if matches else buf[start:end]
            if released is text:
                return (token,)
            return (new_token(kind, (released, token.index)),) if released else ()
        if kind is Usage:
            return (token,)
        router = self._router
        out: list[Any] = []
        for key in router.ended_by(token):
            released = _replaced(self._spec, router.scanner(key).flush())
            if released:
                out.append(key[0](released, key[1]))
        if kind in TEXT_KINDS:
            key = (kind, token.index)
            self._kind, self._index = key
            self._scanner = scanner = router.scanner(key)
            released = _replaced(self._spec, scanner.feed(token.text))
            if released:
                out.append(token if released is token.text else kind(released, token.index))
            return out
        out.append(token)
        return out

    def close(self) -> list[StreamToken]:
        out: list[Any] = []
        router = self._router
        for key in router.open_keys():
            released = _replaced(self._spec, router.scanner(key).flush())
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
        self._scanner: Scanner | None = None

    def _stop(self, out: list[Any], choice: int, matched: Hashable = None) -> StopStream[Any]:
        # Text other streams still hold came before the stop: release it as it is.
        if self._router is not None:
            for key in self._router.open_keys():
                if key == matched:
                    continue
                text = _replaced(self._router.spec, self._router.scanner(key).flush())
                if text:
                    out.insert(0, key[0](text, key[1]))
        out.append(Finish(CONTENT_FILTER, choice))
        return StopStream(out)

    def feed(self, item: StreamToken) -> Sequence[StreamToken]:
        token: Any = item  # (mypy confuses the `index` field with tuple.index)
        if self._predicate is not None:
            if self._predicate(token):
                raise self._stop([token] if self._inclusive else [], choice_of(token) or 0)
            return (token,)
        kind = type(token)
        if kind is Usage:
            return (token,)
        scanner = self._scanner
        if kind is TextDelta and scanner is not None and self._key == (kind, token.index):
            # The hot path: more text of the same stream.
            text = token.text
            decided = scanner.feed(text, 1)
            if decided[3]:
                released, _ = _until_match(decided, self._inclusive)
                raise self._stop(
                    [kind(released, token.index)] if released else [], token.index, self._key
                )
            buf, start, end, _ = decided
            released = buf[start:end]
            if released is text:
                return (token,)
            return (new_token(kind, (released, token.index)),) if released else ()
        router = self._router
        assert router is not None
        out: list[Any] = []
        for key in router.ended_by(token):
            text, found = _until_match(router.scanner(key).flush(1), self._inclusive)
            if text:
                out.append(key[0](text, key[1]))
            if found:
                raise self._stop(out, key[1], key)
        if kind in TEXT_KINDS:
            index = token.index
            self._key = (kind, index)
            self._scanner = router.scanner(self._key)
            text, found = _until_match(self._scanner.feed(token.text, 1), self._inclusive)
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
            text, found = _until_match(router.scanner(key).flush(1), self._inclusive)
            if text:
                out.append(key[0](text, key[1]))
            if found:
                raise self._stop(out, key[1], key)
        return out
