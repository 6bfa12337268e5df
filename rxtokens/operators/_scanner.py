"""The streaming-regex engine: the matches in a text that arrives in pieces, once final.

A `Scanner` receives one text stream in pieces and decides, as early as it
soundly can, which text is *final* (can no longer be part of a match,
whatever text follows) and which matches are final (see ``_pattern.py`` for
how a `PatternSpec` tells). Text from the earliest position where a match
could still start is held back; everything before it is decided at once.
`redact` and `stop_when` (``_redact.py``) release the decided text around the
matches; `on_match` (``_match.py``) reports the matches.

Matching follows `re.sub` semantics: leftmost matches, non-overlapping,
scanning resumes at the end of each match. Enough preceding text is kept as
context for lookbehinds and ``\\b``.

The per-token fast path: when nothing is held back, the pattern's prefilter
checks whether a match could start anywhere in the new text; if not, the text
is final as it is (the same object) after one cheap search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from ._pattern import PatternSpec

__all__ = ["Decided", "Scanner"]

Decided: TypeAlias = tuple[str, int, int, Sequence[Any]]
"""``(buf, start, end, matches)``: ``buf[start:end]`` became final, and `matches`
(``regex`` match objects on `buf`, leftmost first) are the final matches in it.
`buf` always ends where the text fed so far ends."""

_NONE: Sequence[Any] = ()


class Scanner:
    """One text stream: what is final, what could still become a match.

    Example:
        >>> from rxtokens.operators._pattern import compile_pattern
        >>> scanner = Scanner(compile_pattern(r"sk-\\d{3}", max_match=None))
        >>> for piece in ["key sk-1", "23 ok"]:
        ...     buf, start, end, matches = scanner.feed(piece)
        ...     print(repr(buf[start:end]), [m.group() for m in matches])
        'key ' []
        'sk-123 ok' ['sk-123']
    """

    __slots__ = ("buf", "pos", "spec")

    def __init__(self, spec: PatternSpec) -> None:
        self.spec = spec
        self.buf = ""  # context (already final) + the undecided text
        self.pos = 0  # where the undecided text starts in `buf`

    @property
    def pending(self) -> int:
        """Characters held back."""
        return len(self.buf) - self.pos

    def keep(self, buf: str, pos: int) -> None:
        """Hold `buf` from `pos` on as undecided, with `spec.context` characters before it."""
        start = pos - self.spec.context
        if start > 0:
            self.buf = buf[start:]
            self.pos = pos - start
        else:
            self.buf = buf
            self.pos = pos

    def feed(self, text: str, limit: int = 0) -> Decided:
        """Add `text`; return what became final (see `Decided`).

        With `limit` > 0, deciding stops after that many matches (the end of the
        last one is the end of the final text).
        """
        spec = self.spec
        pos = self.pos
        held = self.buf
        prefilter = spec.prefilter
        if prefilter is None:
            buf = held + text
        else:
            # Where a match could start in the undecided text (-1: nowhere).
            if pos == len(held):  # nothing held: search `text` alone
                hit = prefilter.search(text)
                if hit is None and len(text) >= spec.context:
                    self.buf = text  # enough context: the text object itself is final
                    self.pos = len(text)
                    return text, 0, len(text), _NONE
                buf = held + text
                start = -1 if hit is None else pos + hit.start()
            else:
                buf = held + text
                hit = prefilter.search(buf, pos)
                start = -1 if hit is None else hit.start()
            if start < 0:
                # No match can start in the undecided text (nothing held, or what was held,
                # an "s", is not followed by "k-" after all): all final, no regex search.
                self.keep(buf, len(buf))
                return buf, pos, len(buf), _NONE
            if spec.undecided and buf[start:] in spec.undecided:
                # The only candidate is a beginning of the literal prefix at the very end
                # ("...tokens" for "sk-..."): what precedes it is final, it waits.
                self.keep(buf, start)
                return buf, pos, start, _NONE
        end = len(buf)
        quick = spec.exposed.search(buf, pos, partial=True)
        if quick is None or (quick.partial and quick.start() >= end):
            self.keep(buf, end)  # the common case: nothing here can be or become a match
            return buf, pos, end, _NONE
        start = pos
        found: list[Any] = []
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
                found.append(match)
                pos = match.end()
                if len(found) == limit:
                    break
                continue
            if forced:  # no match can start at `at`
                pos = at + 1
                continue
            pos = at
            break
        self.keep(buf, pos)
        return buf, start, pos, found

    def flush(self, limit: int = 0) -> Decided:
        """The end of this text: decide everything held back (`limit` as in `feed`)."""
        pattern = self.spec.pattern
        buf, pos = self.buf, self.pos
        start = pos
        found: list[Any] = []
        while True:
            match = pattern.search(buf, pos)
            if match is None:
                pos = len(buf)
                break
            found.append(match)
            pos = match.end()
            if len(found) == limit:
                break
        self.buf, self.pos = "", 0
        return buf, start, pos, found
