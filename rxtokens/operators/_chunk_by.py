"""The accumulator: `chunk_by` re-cuts text at word, sentence, line, regex or size boundaries.

Text of one stream (a text kind and choice) is buffered and each complete
chunk is emitted as its own token as soon as its boundary arrives; the rest
is flushed at completion and before any other token, so the order of tokens
is preserved and the concatenated text never changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Literal

import regex

from ..errors import ConfigError
from ..tokens import StreamToken
from ._kinds import TEXT_KINDS, new_token
from ._pattern_limits import TimedPattern, active_limits, check_pattern_limits

__all__ = ["BOUNDARIES", "Boundary", "ChunkProcessor", "compile_boundary"]

Boundary = Literal["word", "sentence", "line"] | re.Pattern[str] | str | int
"""What `chunk_by` accepts: a named boundary, a regex (chunks end after each match) or a size."""

BOUNDARIES: dict[str, tuple[str, int]] = {
    "word": (r"\s+", 1),
    "sentence": (r"[.!?]+[\"')\]]*\s+", 4),
    "line": (r"\n", 0),
}
"""Named boundaries: (regex whose match ends a chunk, characters to look back over when
searching newly arrived text, so that a boundary split across deltas is found)."""

_LEADING: dict[str, str] = {
    "word": r"\s+(?=\S*\Z)",
    "line": r"\n(?=[^\n]*\Z)",
}
"""Per named boundary: a text that starts with a boundary and holds no other one ("\\n- a").

The buffer of a named boundary never holds a boundary, so such a text makes exactly
one chunk and a rest: one `match` instead of two searches. Most deltas of prose are
decided before that with `str` methods alone (see `ChunkProcessor.feed`): printable
text holds no whitespace but spaces, so one `partition(" ")` tells where its only
boundary is (" model", "s the") or that it has none ("ve", ".")."""


class _Splitter:
    """Finds chunk ends in a buffer: after regex matches, or every `size` characters."""

    __slots__ = ("leading", "lookback", "pattern", "size", "space")

    def __init__(
        self,
        pattern: re.Pattern[str] | None,
        lookback: int | None,
        size: int,
        leading: re.Pattern[str] | None = None,
        space: bool = False,
    ) -> None:
        self.pattern = pattern
        self.lookback = lookback  # None: search the whole buffer
        self.size = size
        self.leading = leading  # see `_LEADING`
        self.space = space  # a space is a boundary ("word")


def compile_boundary(boundary: Boundary) -> _Splitter:
    """Validate `boundary` eagerly.

    Raises:
        ConfigError: unknown type, non-positive size, invalid regex or one that matches "".
    """
    if isinstance(boundary, bool):
        raise ConfigError(f"chunk_by: boundary must be a name, a regex or a size, not {boundary!r}")
    if isinstance(boundary, int):
        if boundary < 1:
            raise ConfigError(f"chunk_by: a chunk size must be at least 1, not {boundary!r}")
        return _Splitter(None, 0, boundary)
    if isinstance(boundary, str) and boundary in BOUNDARIES:
        source, lookback = BOUNDARIES[boundary]
        leading = _LEADING.get(boundary)
        return _Splitter(
            re.compile(source),
            lookback,
            0,
            re.compile(leading) if leading else None,
            space=boundary == "word",
        )
    limits = active_limits()  # a boundary from a spec: bounded (see _pattern_limits.py)
    if isinstance(boundary, re.Pattern):
        pattern = boundary
    elif isinstance(boundary, str):
        check_pattern_limits(boundary, "chunk_by", limits)
        try:
            pattern = re.compile(boundary)
        except re.error as exc:
            raise ConfigError(
                f"chunk_by: {boundary!r} is neither {sorted(BOUNDARIES)} nor a valid regex: {exc}"
            ) from None
    else:
        raise ConfigError(
            f"chunk_by: boundary must be one of {sorted(BOUNDARIES)}, a regex or a size, "
            f"not {boundary!r}"
        )
    if not isinstance(pattern.pattern, str):
        raise ConfigError(f"chunk_by: the regex must match text (str), not {pattern.pattern!r}")
    if pattern.search("") is not None:
        raise ConfigError(f"chunk_by: the regex {pattern.pattern!r} matches the empty string")
    try:
        low, high = sre_parse.parse(pattern.pattern, pattern.flags).getwidth()
        high = int(high)
    except Exception:  # pragma: no cover (re compiled it, so re can parse it)
        low, high = 1, sre_parse.MAXREPEAT
    if low == 0:
        raise ConfigError(f"chunk_by: the regex {pattern.pattern!r} can match the empty string")
    # Lookarounds and anchors need context: search the whole buffer for those.
    simple = not re.search(r"\\[bBAZ]|\(\?<?[=!]|[$^]", pattern.pattern)
    behind: int | None = high - 1 if simple and high < sre_parse.MAXREPEAT else None
    if limits is not None and isinstance(boundary, str):
        # `re` has no time budget: the same pattern with `regex`, which has one.
        timed: Any = TimedPattern(regex.compile(boundary), limits.timeout, "chunk_by")
        return _Splitter(timed, behind, 0)
    return _Splitter(pattern, behind, 0)


class ChunkProcessor:
    """Per-subscription state of `chunk_by`."""

    __slots__ = ("_buf", "_index", "_kind", "_leading", "_lookback", "_pattern", "_size", "_space")

    def __init__(self, splitter: _Splitter) -> None:
        self._pattern = splitter.pattern
        self._leading = splitter.leading
        self._space = splitter.space
        self._lookback = splitter.lookback
        self._size = splitter.size
        self._kind: Any = None  # the text stream being buffered: kind and choice
        self._index = 0
        # The text of the current chunk, not emitted yet (searched: with a named boundary,
        # it never holds one).
        self._buf = ""

    def _flush(self, out: list[Any]) -> None:
        if self._buf:
            out.append(new_token(self._kind, (self._buf, self._index)))
            self._buf = ""

    def feed(self, item: StreamToken) -> Sequence[StreamToken]:
        token: Any = item  # (mypy confuses the `index` field with tuple.index)
        kind = type(token)
        if kind is self._kind and token.index == self._index:
            # The hot path: more text of the same stream.
            pattern = self._pattern
            if pattern is None:
                return self._split_size(token)
            text: str = token.text
            leading = self._leading
            if leading is not None:  # "word" or "line": decided with str methods if possible
                # Printable text holds no whitespace but spaces (no "\n", no tab, no NBSP).
                if text.isprintable():
                    if not self._space:  # "line": no boundary in it, held
                        held = self._buf
                        self._buf = held + text if held else text
                        return ()
                    head, space, tail = text.partition(" ")
                    if not space:  # no boundary in it ("ve", "."): held
                        held = self._buf
                        self._buf = held + text if held else text
                        return ()
                    if not tail:  # it ends with its only space: one chunk, nothing held
                        held = self._buf
                        self._buf = ""
                        return (new_token(kind, (held + text, self._index)) if held else token,)
                    if " " not in tail:  # " model" or "s the": one chunk, the rest held
                        chunk = self._buf + head + " "
                        self._buf = tail
                        return (new_token(kind, (chunk, self._index)),)
                first = leading.match(text)
                if first is not None:  # one chunk: what is held and the leading boundary
                    end = first.end()
                    held = self._buf
                    if end == len(text):  # all boundary: the chunk ends with it
                        self._buf = ""
                        return (new_token(kind, (held + text, self._index)) if held else token,)
                    self._buf = text[end:]
                    return (new_token(kind, (held + text[:end], self._index)),)
            held = self._buf
            if held:
                buf = held + text
                lookback = self._lookback
                scanned = len(held)
                begin = 0 if lookback is None or scanned <= lookback else scanned - lookback
                match = pattern.search(buf, begin)
            else:
                buf = text
                match = pattern.search(buf)
            if match is None:
                self._buf = buf
                return ()
            end = match.end()
            if end == len(buf):  # one chunk: the whole buffer
                self._buf = ""
                return (new_token(kind, (buf, self._index)) if held else token,)
            more = pattern.search(buf, end)
            if more is None:  # one chunk and a rest
                self._buf = buf[end:]
                return (new_token(kind, (buf[:end], self._index)),)
            return self._cut(buf, end, more)
        out: list[Any] = []
        self._flush(out)
        if kind not in TEXT_KINDS:
            out.append(token)
            return out
        self._kind = kind
        self._index = token.index
        out.extend(self.feed(token))  # the hot path now: the first text of this stream
        return out

    def _cut(self, buf: str, end: int, match: Any) -> list[StreamToken]:
        """Chunks of `buf` ending at `end` and after `match` and each later match."""
        kind, index, pattern = self._kind, self._index, self._pattern
        assert pattern is not None
        out = [new_token(kind, (buf[:end], index))]
        start = end
        while match is not None:
            end = match.end()
            out.append(new_token(kind, (buf[start:end], index)))
            start = end
            match = pattern.search(buf, end)
        self._buf = buf[start:]
        return out

    def _split_size(self, token: Any) -> Sequence[StreamToken]:
        text: str = token.text
        held = self._buf
        buf = held + text if held else text
        size = self._size
        whole = len(buf) - len(buf) % size
        self._buf = buf[whole:]
        if whole == len(buf) == size and not held:
            return (token,)
        kind, index = self._kind, self._index
        return [new_token(kind, (buf[i : i + size], index)) for i in range(0, whole, size)]

    def close(self) -> list[StreamToken]:
        out: list[Any] = []
        self._flush(out)
        return out
