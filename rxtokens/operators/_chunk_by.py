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

from ..errors import ConfigError
from ..tokens import StreamToken
from ._redact import TEXT_KINDS, new_token

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


class _Splitter:
    """Finds chunk ends in a buffer: after regex matches, or every `size` characters."""

    __slots__ = ("lookback", "pattern", "size")

    def __init__(self, pattern: re.Pattern[str] | None, lookback: int | None, size: int) -> None:
        self.pattern = pattern
        self.lookback = lookback  # None: search the whole buffer
        self.size = size


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
        return _Splitter(re.compile(source), lookback, 0)
    if isinstance(boundary, re.Pattern):
        pattern = boundary
    elif isinstance(boundary, str):
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
    return _Splitter(pattern, behind, 0)


class ChunkProcessor:
    """Per-subscription state of `chunk_by`."""

    __slots__ = ("_buf", "_index", "_kind", "_lookback", "_pattern", "_scanned", "_size")

    def __init__(self, splitter: _Splitter) -> None:
        self._pattern = splitter.pattern
        self._lookback = splitter.lookback
        self._size = splitter.size
        self._kind: Any = None  # the text stream being buffered: kind and choice
        self._index = 0
        self._buf = ""
        self._scanned = 0  # buffer length already searched for boundaries

    def _flush(self, out: list[Any]) -> None:
        if self._buf:
            out.append(new_token(self._kind, (self._buf, self._index)))
            self._buf = ""
        self._scanned = 0

    def feed(self, item: StreamToken) -> Sequence[StreamToken]:
        token: Any = item  # (mypy confuses the `index` field with tuple.index)
        kind = type(token)
        if kind is self._kind and token.index == self._index:
            return self._split(token)  # the hot path: more text of the same stream
        out: list[Any] = []
        self._flush(out)
        if kind not in TEXT_KINDS:
            out.append(token)
            return out
        self._kind = kind
        self._index = token.index
        out.extend(self._split(token))
        return out

    def _split(self, token: Any) -> Sequence[StreamToken]:
        text: str = token.text
        held = self._buf
        buf = held + text if held else text
        pattern = self._pattern
        if pattern is None:
            size = self._size
            whole = len(buf) - len(buf) % size
            self._buf = buf[whole:]
            if whole == len(buf) == size and not held:
                return (token,)
            kind, index = self._kind, self._index
            return [new_token(kind, (buf[i : i + size], index)) for i in range(0, whole, size)]
        lookback = self._lookback
        begin = 0 if lookback is None or self._scanned <= lookback else self._scanned - lookback
        match = pattern.search(buf, begin)
        if match is None:
            self._buf = buf
            self._scanned = len(buf)
            return ()
        end = match.end()
        if end == len(buf):  # one chunk: the whole buffer
            self._buf = ""
            self._scanned = 0
            return (token if not held else new_token(self._kind, (buf, self._index)),)
        kind, index = self._kind, self._index
        out = [new_token(kind, (buf[:end], index))]
        start = end
        match = pattern.search(buf, end)
        while match is not None:
            end = match.end()
            out.append(new_token(kind, (buf[start:end], index)))
            start = end
            match = pattern.search(buf, end)
        self._buf = rest = buf[start:]
        self._scanned = len(rest)
        return out

    def close(self) -> list[StreamToken]:
        out: list[Any] = []
        self._flush(out)
        return out
