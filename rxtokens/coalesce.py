"""The one coalescer: pending tokens merged, so a slow consumer gets fewer, larger ones.

Used by ``on_backpressure_coalesce`` and ``frames`` (as `TokenMerger`) and by
`rxtokens.broadcast.Broadcast`'s ``policy="coalesce"`` subscribers.

Merge rules (written here only):

* Text: a `TextDelta`, `ReasoningDelta` or `RefusalDelta` merges into a
  pending delta of the same kind and the same choice ``index``; the texts are
  concatenated.
* Tool calls: a `ToolCallDelta` merges into a pending fragment of the same
  call (same ``choice`` and ``index``); the arguments are concatenated, and
  ``id`` and ``name`` come from the first fragment that has them. A fragment
  whose ``id`` or ``name`` contradicts the pending one is not merged.
* Usage (only with ``merge_usage=True``): a `Usage` merges into a pending
  `Usage`, field by field: the latest reported (not None) value of each field wins.
* Everything else (`Finish`, `ToolCall`, kinds added by operators) is a
  *barrier*: never merged, it keeps its place.
* `Coalescer.append` merges into the newest pending item only, so the order
  of all tokens is kept. `Coalescer.compact` also merges across barriers:
  every mergeable token goes into the *first* pending item of its key. Each
  choice's, each kind's and each tool call's own order is still kept; only
  tokens of different keys change their relative order (which does not change
  the aggregated answer).
* Nothing is lost: per choice and kind, and per tool call, the concatenation
  of the output equals that of the input, in order.
* Sequence numbers (``sequenced=True``): items go in with a seq and come out
  as `Sequenced`; a merged item carries the seq of the last token merged into it.

Merging costs O(1) per token: the parts are joined once, when the item leaves.

Example:
    >>> from rxtokens.tokens import Finish, TextDelta
    >>> c = Coalescer()
    >>> for t in [TextDelta("a"), TextDelta("b"), Finish("stop"), TextDelta("c")]:
    ...     c.append(t)
    >>> len(c)
    3
    >>> c.compact()
    >>> c.take_all()
    [TextDelta(text='abc', index=0), Finish(reason='stop', index=0)]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from .token_log import Sequenced
from .tokens import ReasoningDelta, RefusalDelta, TextDelta, ToolCallDelta, Usage

__all__ = ["Coalescer", "TokenMerger"]

_TEXT_KINDS: frozenset[type[Any]] = frozenset({TextDelta, ReasoningDelta, RefusalDelta})


def merge_key(token: Any, merge_usage: bool) -> tuple[Any, ...] | None:
    """The key under which `token` may merge (None: a barrier)."""
    kind = type(token)
    if kind in _TEXT_KINDS:
        return (kind, token.index)
    if kind is ToolCallDelta:
        return (kind, token.choice, token.index)
    if kind is Usage and merge_usage:
        return (kind,)
    return None


class _Run:
    """Tokens of one key merged into a pending item (parts joined once, on delivery)."""

    __slots__ = ("first", "key", "parts", "seq")

    def __init__(self, key: tuple[Any, ...], seq: int, first: Any) -> None:
        self.key = key
        self.seq = seq
        self.first = first  # the first token; id / name / usage filled in as merged
        kind = type(first)
        if kind is ToolCallDelta:
            self.parts: list[str] | None = [first.arguments]
        elif kind is Usage:
            self.parts = None
        else:
            self.parts = [first.text]

    def add(self, seq: int, token: Any) -> bool:
        """Merge a later token of the same key; False when it cannot be (a contradiction)."""
        parts = self.parts
        if parts is None:
            first = self.first  # Usage: field by field, the latest reported value wins
            self.first = Usage(
                *(new if new is not None else old for new, old in zip(token, first, strict=True))
            )
        elif type(token) is ToolCallDelta:
            if not self._fill_in(token):
                return False
            parts.append(token.arguments)
        else:
            parts.append(token.text)
        self.seq = seq
        return True

    def _fill_in(self, token: ToolCallDelta) -> bool:
        """Take ``id`` / ``name`` from `token` when still unknown; False on a contradiction."""
        first = self.first
        if (first.id is not None and token.id is not None and token.id != first.id) or (
            first.name is not None and token.name is not None and token.name != first.name
        ):
            return False
        if (first.id is None and token.id is not None) or (
            first.name is None and token.name is not None
        ):
            self.first = first._replace(
                id=first.id if first.id is not None else token.id,
                name=first.name if first.name is not None else token.name,
            )
        return True

    def absorb(self, other: _Run) -> bool:
        """Merge a later run of the same key; False when it cannot be."""
        if other.parts is None:
            return self.add(other.seq, other.first)
        if type(other.first) is ToolCallDelta and not self._fill_in(other.first):
            return False
        assert self.parts is not None
        self.parts.extend(other.parts)
        self.seq = other.seq
        return True

    def build(self) -> Any:
        first = self.first
        parts = self.parts
        if parts is None:
            return first
        if type(first) is ToolCallDelta:
            return first._replace(arguments="".join(parts))
        return type(first)("".join(parts), first.index)


class Coalescer:
    """A FIFO of pending tokens merged by the rules of the module docstring.

    Args:
        merge_usage: also merge `Usage` tokens (field by field).
        sequenced: items are appended with a seq and leave as `Sequenced`.

    Example:
        >>> from rxtokens.tokens import TextDelta
        >>> c = Coalescer(sequenced=True)
        >>> c.append(TextDelta("a"), 1)
        >>> c.append(TextDelta("b"), 2)
        >>> c.popleft()
        Sequenced(seq=2, token=TextDelta(text='ab', index=0))
    """

    __slots__ = ("_items", "_merge_usage", "_sequenced", "_tail_key")

    def __init__(self, *, merge_usage: bool = False, sequenced: bool = False) -> None:
        self._items: deque[Any] = deque()
        self._tail_key: tuple[Any, ...] | None = None
        self._merge_usage = merge_usage
        self._sequenced = sequenced

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pending={len(self._items)})"

    def append(self, token: Any, seq: int = 0) -> None:
        """Add `token` at the end, merging it into the newest pending item when it can."""
        kind = type(token)
        items = self._items
        key: tuple[Any, ...] | None
        if kind in _TEXT_KINDS:  # the frequent case: merged inline
            key = (kind, token.index)
            if key == self._tail_key:
                tail = items[-1]
                if type(tail) is not _Run:
                    tail = items[-1] = self._run(key, tail)
                tail.parts.append(token.text)  # type: ignore[union-attr]
                tail.seq = seq
                return
        else:
            if kind is ToolCallDelta:
                key = (kind, token.choice, token.index)
            elif kind is Usage and self._merge_usage:
                key = (kind,)
            else:
                key = None
            if key is not None and key == self._tail_key:
                tail = items[-1]
                if type(tail) is not _Run:
                    tail = items[-1] = self._run(key, tail)
                if tail.add(seq, token):
                    return
        items.append(Sequenced(seq, token) if self._sequenced else token)
        self._tail_key = key

    def _run(self, key: tuple[Any, ...], item: Any) -> _Run:
        if self._sequenced:
            return _Run(key, item.seq, item.token)
        return _Run(key, 0, item)

    def _seal(self, item: Any) -> Any:
        if type(item) is not _Run:
            return item
        return Sequenced(item.seq, item.build()) if self._sequenced else item.build()

    def popleft(self) -> Any:
        """Remove and return the oldest pending item (merged). Raises IndexError when empty."""
        items = self._items
        item = items.popleft()
        if not items:
            self._tail_key = None
        return item if type(item) is not _Run else self._seal(item)

    def pop(self) -> Any:
        """Remove and return the newest pending item (merged). Raises IndexError when empty."""
        item = self._items.pop()
        self._tail_key = None  # conservative: the next token starts a new item
        return self._seal(item)

    def take_all(self) -> list[Any]:
        """Remove and return every pending item (merged), oldest first."""
        seal = self._seal
        items = [seal(item) for item in self._items]
        self.clear()
        return items

    def __iter__(self) -> Iterator[Any]:
        """The pending items (merged), oldest first, without removing them."""
        return (self._seal(item) for item in self._items)

    def clear(self) -> None:
        """Forget everything pending."""
        self._items.clear()
        self._tail_key = None

    def extend(self, other: Coalescer) -> None:
        """Move `other`'s pending items after ours (no merging: call `compact` for that)."""
        if other._items:
            self._items.extend(other._items)
            self._tail_key = other._tail_key
            other.clear()

    def compact(self) -> None:
        """Merge every mergeable item into the first pending item of its key (see the rules)."""
        out: deque[Any] = deque()
        where: dict[tuple[Any, ...], _Run] = {}
        merge_usage = self._merge_usage
        sequenced = self._sequenced
        key: tuple[Any, ...] | None
        for item in self._items:
            if type(item) is _Run:
                key = item.key
            else:
                key = merge_key(item.token if sequenced else item, merge_usage)
            if key is None:
                out.append(item)
                continue
            run = where.get(key)
            if run is not None:
                if type(item) is _Run:
                    if run.absorb(item):
                        continue
                elif run.add(*(item if sequenced else (0, item))):
                    continue
            run = item if type(item) is _Run else self._run(key, item)
            where[key] = run
            out.append(run)
        self._items = out
        last = out[-1] if out else None
        self._tail_key = last.key if type(last) is _Run else None


TokenMerger = Coalescer
"""The name `rxtokens.operators` has exported since the first release (same class)."""
