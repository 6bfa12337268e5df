"""`Broadcast`: one live token stream, many subscribers, and the final answer.

A provider observable is *cold*: every subscription makes its own request.
`Broadcast` makes it *hot*: one upstream subscription (one request) is shared
by any number of subscribers, and a `CompletionBuilder` assembles the final
`Completion` of the same request ("dual output": live chunks AND the answer).

Lifecycle:
    * The upstream is subscribed on the first subscription (to the tokens, to
      `Broadcast.completion`, or an explicit `Broadcast.connect`).
    * It is disposed (the request is cancelled) when the last of them leaves,
      unless ``keep_alive=True``: then it runs to completion, so that
      `Broadcast.final` still resolves. A cancelled broadcast ends with
      `BroadcastCancelledError` (its ``.partial`` holds what arrived).
    * A broadcast wraps exactly one request: it never re-subscribes upstream.
      Subscribers that arrive after the end get the replay and the end.

Replay and sequence numbers:
    Every token gets a sequence number ``seq``: 1 for the first token, then
    +1 per token. ``replay`` says what a late subscriber receives before it
    continues live: ``"all"`` (every token so far), an int ``N`` (the last N)
    or ``"none"``. Replay and live delivery are atomic with respect to each
    other (one lock around "record + fan out" and "replay + join"), so a late
    subscriber sees no gap and no duplicate, even when it joins from another
    thread while tokens are being emitted.

    Plain subscribers (`Broadcast.subscribe`, `Broadcast.observable`) receive
    the tokens themselves. `Broadcast.sequenced` gives ``Sequenced(seq,
    token)`` pairs and resumes strictly after a given ``seq`` (for instance an
    SSE ``Last-Event-ID``); if that point is older than the retained history
    it fails with `ReplayGapError` (``on_gap="error"``, the default) or starts
    at the oldest retained token (``on_gap="oldest"``).

Isolation:
    A subscriber whose ``on_next`` raises is removed; the others continue
    undisturbed. The failure is logged on the ``rxtokens.broadcast`` logger and
    reported on `Broadcast.errors` as ``(subscriber_name, exception)``.

Slow subscribers (per-subscriber overflow policy):
    ``policy="block"`` (the default) calls the subscriber inline on the
    producer's thread, like a `reactivex.subject.Subject`: a slow subscriber
    slows everyone. The other policies give the subscriber a bounded queue
    that is drained on its own ``scheduler`` (or by its async iterator, see
    `Broadcast.to_async_iterator`), so it never slows the upstream or the other
    subscribers:

    * ``"coalesce"``: pending deltas are merged (adjacent text, reasoning and
      refusal deltas of the same choice, tool-call fragments of the same call,
      usage); nothing is lost and the number of pending items stays bounded.
    * ``"drop_latest"``: when ``max_pending`` items wait, incoming deltas are
      dropped (`Finish`, `ToolCall` and `Usage` are always kept).
    * ``"error"``: when ``max_pending`` items wait, the subscriber receives
      what was pending and then `BackpressureOverflowError`, and is removed.

    A replay is queued separately from the live tokens (it is already in
    memory), so ``max_pending`` bounds what piles up live.

Threads:
    Tokens may arrive on any thread (a llama.cpp worker, an event loop).
    Inline ("block") subscribers are called on that thread while the
    broadcast's re-entrant lock is held: they may subscribe, unsubscribe or
    read `Broadcast.completion_so_far` from their callback, but must not wait
    for another thread that does so. Queued subscribers run on their scheduler,
    outside the lock. `Broadcast.final` is completed on its own event loop.

Example:
    >>> import reactivex
    >>> from rxtokens.tokens import TextDelta
    >>> b = Broadcast(reactivex.of(TextDelta("Hel"), TextDelta("lo")))
    >>> seen = []
    >>> _ = b.subscribe(lambda t: seen.append(t.text))
    >>> _ = b.subscribe(lambda t: seen.append(t.text.upper()))  # late: full replay
    >>> seen
    ['Hel', 'lo', 'HEL', 'LO']
    >>> b.completion_so_far().text
    'Hello'
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue as queue_module
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, Literal, NamedTuple, TypeAlias, TypeVar, cast

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable
from reactivex.subject import Subject

from .aio import flow_control_scope
from .completion import CompletionBuilder, attach_partial
from .errors import (
    BackpressureOverflowError,
    BroadcastCancelledError,
    ConfigError,
    ReplayGapError,
)
from .tokens import (
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "Broadcast",
    "BroadcastCancelledError",
    "BroadcastIterator",
    "OnGap",
    "OverflowPolicy",
    "Replay",
    "ReplayGapError",
    "Sequenced",
    "Sink",
    "stream_to",
    "stream_to_sync",
]

logger = logging.getLogger("rxtokens.broadcast")

_T = TypeVar("_T")

Replay: TypeAlias = Literal["all", "none"] | int
"""What a late subscriber receives first: every token, none, or the last N."""

OverflowPolicy: TypeAlias = Literal["block", "coalesce", "drop_latest", "error"]
"""What happens to a subscriber that consumes more slowly than tokens arrive."""

OnGap: TypeAlias = Literal["error", "oldest"]
"""What `Broadcast.sequenced` does when asked to resume before the retained history."""

_POLICIES = ("block", "coalesce", "drop_latest", "error")
_QUEUED_POLICIES = ("coalesce", "drop_latest", "error")
_DEFAULT_MAX_PENDING = 1024


class Sequenced(NamedTuple):
    """A token with its sequence number in the broadcast (1 for the first token)."""

    seq: int
    token: Any


def _noop(*_: Any) -> None:
    return None


# --------------------------------------------------------------------------- coalescing

_TEXT_KINDS: tuple[type[Any], ...] = (TextDelta, ReasoningDelta, RefusalDelta)
_NEVER_DROPPED: tuple[type[Any], ...] = (Finish, ToolCall, Usage)


def _merge_key(token: Any) -> tuple[Any, ...] | None:
    """Tokens with the same key may be merged by the "coalesce" policy (None: never)."""
    kind = type(token)
    if kind in _TEXT_KINDS:
        return (kind, token.index)
    if kind is ToolCallDelta:
        return (kind, token.choice, token.index)
    if kind is Usage:
        return (kind,)
    return None


class _Merged:
    """A pending item into which later tokens of the same `_merge_key` were merged.

    Text (or tool-call arguments) is kept as parts and joined once, when the
    item is delivered: merging costs O(1) per token.
    """

    __slots__ = ("key", "parts", "seq", "token")

    def __init__(self, key: tuple[Any, ...], seq: int, token: Any) -> None:
        self.key = key
        self.seq = seq
        self.token = token  # the first token (id / name / usage filled in as merged)
        kind = type(token)
        if kind in _TEXT_KINDS:
            self.parts: list[str] | None = [token.text]
        elif kind is ToolCallDelta:
            self.parts = [token.arguments]
        else:
            self.parts = None

    def add(self, seq: int, token: Any) -> None:
        """Merge a later token of the same key."""
        self.seq = seq
        parts = self.parts
        if parts is None:
            self._merge_usage(token)
        elif type(token) is ToolCallDelta:
            parts.append(token.arguments)
            self._fill_in(token)
        else:
            parts.append(token.text)

    def absorb(self, other: _Merged) -> None:
        """Merge a later pending item of the same key."""
        self.seq = other.seq
        if self.parts is None:
            self._merge_usage(other.token)
        else:
            assert other.parts is not None
            self.parts.extend(other.parts)
            if type(other.token) is ToolCallDelta:
                self._fill_in(other.token)

    def _merge_usage(self, token: Usage) -> None:
        first = self.token  # the latest reported value wins, field by field
        self.token = Usage(
            token.input_tokens if token.input_tokens is not None else first.input_tokens,
            token.output_tokens if token.output_tokens is not None else first.output_tokens,
            token.estimated,
        )

    def _fill_in(self, token: ToolCallDelta) -> None:
        first = self.token  # id and name come with the first fragment that has them
        if (first.id is None and token.id is not None) or (
            first.name is None and token.name is not None
        ):
            self.token = first._replace(
                id=first.id if first.id is not None else token.id,
                name=first.name if first.name is not None else token.name,
            )

    def seal(self) -> Sequenced:
        """The merged token, with the seq of the last token merged into it."""
        parts = self.parts
        token = self.token
        if parts is None:
            return Sequenced(self.seq, token)
        if type(token) is ToolCallDelta:
            return Sequenced(self.seq, token._replace(arguments="".join(parts)))
        return Sequenced(self.seq, type(token)("".join(parts), token.index))


def _sealed(item: Sequenced | _Merged) -> Sequenced:
    return item.seal() if isinstance(item, _Merged) else item


def _compact(items: Iterable[Sequenced | _Merged]) -> deque[Sequenced | _Merged]:
    """Merge every mergeable token into the first pending item of its key.

    Each choice's (and each tool call's) own order is kept; only tokens of
    different choices / kinds may change relative order, which does not
    change the aggregated result. Tokens without a merge key stay in place.
    """
    out: list[Sequenced | _Merged] = []
    where: dict[tuple[Any, ...], _Merged] = {}
    for item in items:
        if type(item) is _Merged:
            key: tuple[Any, ...] | None = item.key
        else:
            key = _merge_key(item.token)
        if key is None:
            out.append(item)
            continue
        merged = where.get(key)
        if merged is None:
            merged = item if type(item) is _Merged else _Merged(key, item.seq, item.token)
            where[key] = merged
            out.append(merged)
        elif type(item) is _Merged:
            merged.absorb(item)
        else:
            merged.add(item.seq, item.token)
    return deque(out)


# --------------------------------------------------------------------------- subscribers


class _Sub:
    """A subscriber served inline on the producer's thread (policy "block").

    `on_next` is the callable the fan-out loop calls with each live token: the
    user's own callback for plain subscribers (no extra frame on the hot path).
    It is replaced by `_noop` on removal, so that a fan-out already iterating
    over a snapshot of the subscribers skips it.
    """

    __slots__ = ("emit", "name", "on_completed", "on_error", "on_next", "owner")

    def __init__(
        self,
        owner: Broadcast[Any],
        name: str,
        on_next: Callable[[Any], None],
        emit: Callable[[int, Any], None],
        on_error: Callable[[Exception], None],
        on_completed: Callable[[], None],
    ) -> None:
        self.owner = owner
        self.name = name
        self.on_next = on_next
        self.emit = emit  # (seq, token) -> deliver one replayed token
        self.on_error = on_error
        self.on_completed = on_completed

    def replay(self, items: Iterable[tuple[int, Any]]) -> None:
        emit = self.emit
        for seq, token in items:
            emit(seq, token)

    def finish(self, error: Exception | None) -> None:
        """Deliver the end of the stream (called once, under the broadcast lock)."""
        self.on_next = _noop
        self._deliver_end(error)

    def _deliver_end(self, error: Exception | None) -> None:
        """Call `on_completed` / `on_error` (a raising callback is reported), then unregister."""
        try:
            if error is None:
                self.on_completed()
            else:
                self.on_error(error)
        except Exception as exc:
            self.owner._report(self, exc)
        self.owner._closed(self)

    def close(self) -> None:
        """The subscription was disposed: deliver nothing more."""
        self.on_next = _noop


class _Queued(_Sub):
    """A subscriber with a bounded pending queue, drained on its own schedule."""

    __slots__ = (
        "backlog",
        "closed",
        "deliver",
        "dropped",
        "lock",
        "max_pending",
        "pending",
        "policy",
        "scheduler",
        "sequenced",
        "signalled",
        "terminal",
        "threshold",
    )

    def __init__(
        self,
        owner: Broadcast[Any],
        name: str,
        deliver: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        on_completed: Callable[[], None],
        *,
        policy: str,
        max_pending: int,
        scheduler: abc.SchedulerBase | None,
        sequenced: bool,
    ) -> None:
        super().__init__(owner, name, _noop, _noop, on_error, on_completed)
        self.on_next = self.push
        self.deliver = deliver  # receives a token or a Sequenced, see `sequenced`
        self.sequenced = sequenced
        self.policy = policy
        self.max_pending = max_pending
        self.threshold = max_pending  # coalesce: compact when pending grows past this
        self.scheduler = scheduler
        self.lock = threading.Lock()
        self.backlog: deque[Sequenced | _Merged] = deque()  # the replay
        self.pending: deque[Sequenced | _Merged] = deque()  # live tokens
        self.terminal: tuple[Exception | None] | None = None
        self.signalled = False  # a drain is scheduled / a waiter will be woken
        self.closed = False
        self.dropped = 0

    # -- producer side (called under the broadcast lock)

    def replay(self, items: Iterable[tuple[int, Any]]) -> None:
        backlog: deque[Sequenced | _Merged] = deque(Sequenced(seq, token) for seq, token in items)
        if self.policy == "coalesce":
            backlog = _compact(backlog)
        with self.lock:
            self.backlog = backlog
            wake = self._signal() if backlog else None
        if wake is not None:
            wake()

    def push(self, token: Any) -> None:
        item = Sequenced(self.owner._seq, token)
        overflow = False
        with self.lock:
            if self.closed or self.terminal is not None:
                return
            pending = self.pending
            if self.policy == "coalesce":
                key = _merge_key(token)
                if key is not None:
                    last = pending[-1] if pending else None
                    if type(last) is _Merged and last.key == key:
                        last.add(item.seq, token)
                        return  # a drain is already signalled
                    pending.append(_Merged(key, item.seq, token))
                else:
                    pending.append(item)
                if len(pending) > self.threshold:
                    self.pending = pending = _compact(pending)
                    self.threshold = max(self.max_pending, 2 * len(pending))
            elif len(pending) < self.max_pending:
                pending.append(item)
            elif self.policy == "drop_latest":
                if isinstance(token, _NEVER_DROPPED):
                    pending.append(item)
                else:
                    self.dropped += 1
                    if self.dropped == 1:
                        logger.info(
                            "broadcast %r: subscriber %r is too slow; dropping tokens "
                            "(policy 'drop_latest', max_pending=%d)",
                            self.owner.name,
                            self.name,
                            self.max_pending,
                        )
                    return
            else:  # "error"
                overflow = True
            wake = self._signal()
        if overflow:
            self.owner._overflow(self)
        elif wake is not None:
            wake()

    def finish(self, error: Exception | None) -> None:
        with self.lock:
            if self.closed or self.terminal is not None:
                return
            self.terminal = (error,)
            wake = self._signal()
        if wake is not None:
            wake()

    def close(self) -> None:
        self.on_next = _noop
        with self.lock:
            self.closed = True
            self.backlog.clear()
            self.pending.clear()

    def _signal(self) -> Callable[[], None] | None:
        """Called with `lock` held when there is something to deliver: what wakes the consumer."""
        if self.signalled or self.scheduler is None:
            return None
        self.signalled = True
        scheduler = self.scheduler

        def wake() -> None:
            scheduler.schedule(self._drain)

        return wake

    # -- consumer side

    def take(self) -> tuple[list[Sequenced], tuple[Exception | None] | None]:
        """Everything pending now (and the end, once nothing else is pending)."""
        with self.lock:
            if self.closed:
                return [], None
            both: list[Sequenced | _Merged] = list(self.backlog)
            both.extend(self.pending)
            if self.policy == "coalesce" and self.backlog and self.pending:
                both = list(_compact(both))
            items = [_sealed(item) for item in both]
            self.backlog.clear()
            self.pending.clear()
            terminal = self.terminal
            if terminal is not None:
                self.closed = True
            else:
                self.signalled = False
        return items, terminal

    def _drain(self, _scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        # Tokens pushed while we deliver schedule the next drain (`take` reset `signalled`).
        items, terminal = self.take()
        deliver = self.deliver
        try:
            if self.sequenced:
                for item in items:
                    deliver(item)
            else:
                for item in items:
                    deliver(item.token)
        except Exception as exc:
            self.owner._fail(self, exc)
            return
        if terminal is not None:
            self._deliver_end(terminal[0])


class _AsyncSink(_Queued):
    """The queue behind `Broadcast.to_async_iterator`: the consumer pulls, the producer wakes it."""

    __slots__ = ("loop", "waiter")

    def __init__(self, owner: Broadcast[Any], name: str, policy: str, max_pending: int) -> None:
        super().__init__(
            owner,
            name,
            _noop,
            _noop,
            _noop,
            policy=policy,
            max_pending=max_pending,
            scheduler=None,
            sequenced=False,
        )
        self.loop = asyncio.get_running_loop()
        self.waiter: asyncio.Future[None] | None = None

    def _signal(self) -> Callable[[], None] | None:
        waiter = self.waiter
        if waiter is None:
            return None
        self.waiter = None
        loop = self.loop

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, waiter)

        return wake

    async def next(self) -> Any:
        while True:
            with self.lock:
                if self.backlog:
                    return _sealed(self.backlog.popleft()).token
                if self.pending:
                    return _sealed(self.pending.popleft()).token
                ended = self.terminal is not None or self.closed
                if ended:
                    error = None if self.terminal is None else self.terminal[0]
                    first_to_see_it = not self.closed
                    self.closed = True
                else:
                    waiter = self.waiter = self.loop.create_future()
            if ended:
                if first_to_see_it:
                    self.owner._closed(self)  # outside our lock: the broadcast's lock comes first
                if error is not None:
                    raise error
                raise StopAsyncIteration
            await waiter

    def close(self) -> None:
        super().close()
        with self.lock:
            wake = self._signal()  # a consumer waiting in `next` must see the end
        if wake is not None:
            wake()


def _resolve(future: asyncio.Future[Any], value: Any = None) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[Any], error: Exception | None) -> None:
    assert error is not None
    if not future.done():
        future.set_exception(error)


class BroadcastIterator:
    """An async iterator over a broadcast's tokens (see `Broadcast.to_async_iterator`).

    Close it (``await it.aclose()``, or use ``async with``) to unsubscribe early.
    """

    __slots__ = ("_disposable", "_sink")

    def __init__(self, sink: _AsyncSink, disposable: abc.DisposableBase) -> None:
        self._sink = sink
        self._disposable = disposable

    def __aiter__(self) -> BroadcastIterator:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._sink.next()
        except BaseException:
            self._disposable.dispose()
            raise

    async def aclose(self) -> None:
        """Unsubscribe (idempotent)."""
        self._disposable.dispose()

    async def __aenter__(self) -> BroadcastIterator:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- Broadcast

_IDLE, _RUNNING, _DONE = 0, 1, 2


class Broadcast(Generic[_T]):
    """A hot, multicasting wrapper around one token stream (see the module docstring).

    Args:
        source: the cold observable to share (typically a provider's token stream).
        replay: what late subscribers receive first: ``"all"`` (default),
            ``"none"`` or the last ``N`` tokens. It also bounds the history kept
            for `sequenced`.
        keep_alive: when True, the upstream is not cancelled when the last
            subscriber leaves: it runs to completion and `final` resolves.
        name: used in logs and error messages.

    Example:
        >>> import reactivex
        >>> from rxtokens.tokens import TextDelta
        >>> b = Broadcast(reactivex.of(TextDelta("a"), TextDelta("b")), replay=1)
        >>> _ = b.connect()
        >>> late = []
        >>> _ = b.sequenced(after=1).subscribe(late.append)
        >>> late
        [Sequenced(seq=2, token=TextDelta(text='b', index=0))]
    """

    __slots__ = (
        "_append",
        "_builder",
        "_completion",
        "_end",
        "_error",
        "_errors",
        "_fed",
        "_feed",
        "_futures",
        "_history",
        "_keep_alive",
        "_listeners",
        "_lock",
        "_next_id",
        "_open",
        "_refs",
        "_replay",
        "_seq",
        "_source",
        "_state",
        "_subs",
        "_upstream",
        "done",
        "name",
    )

    def __init__(
        self,
        source: Observable[_T],
        *,
        replay: Replay = "all",
        keep_alive: bool = False,
        name: str | None = None,
    ) -> None:
        if isinstance(replay, bool) or not (
            replay in ("all", "none") or (isinstance(replay, int) and replay >= 0)
        ):
            raise ConfigError(f"replay must be 'all', 'none' or a non-negative int, got {replay!r}")
        if not isinstance(source, Observable):
            raise ConfigError(f"Broadcast needs a reactivex Observable, got {source!r}")
        self._source = source
        self._replay = replay
        self._keep_alive = keep_alive
        self.name = name if name is not None else f"broadcast-{id(self):x}"
        self._lock = threading.RLock()
        self._subs: tuple[_Sub, ...] = ()
        self._refs = 0  # token subscribers + completion observers + connect() holds
        self._open = 0  # subscriber records not yet closed (for completing `errors`)
        self._next_id = 0
        self._state = _IDLE
        self.done = False
        self._seq = 0
        self._builder = CompletionBuilder()
        self._fed = 0  # replay="all": how much of the history the builder has seen
        self._history: list[Any] | deque[Any] | None
        self._feed: Callable[[Any], None] | None
        if replay == "all":
            self._history = []
            self._append = self._history.append
            self._feed = None  # the builder catches up from the history when asked
        elif replay == "none" or replay == 0:
            self._history = None
            self._append = self._builder.add
            self._feed = None
        else:
            assert isinstance(replay, int)
            self._history = deque(maxlen=replay)
            self._append = self._history.append
            self._feed = self._builder.add
        self._upstream = SingleAssignmentDisposable()
        self._error: Exception | None = None  # why `final` failed
        self._end: Exception | None = None  # how the token stream ended (None: completed)
        self._completion: Completion | None = None
        self._listeners: list[abc.ObserverBase[Completion]] = []
        self._futures: dict[asyncio.AbstractEventLoop, asyncio.Future[Completion]] = {}
        self._errors: Subject[tuple[str, Exception]] = Subject()

    def __repr__(self) -> str:
        state = ("idle", "running", "done")[self._state]
        return (
            f"Broadcast(name={self.name!r}, state={state}, seq={self._seq}, "
            f"subscribers={len(self._subs)}, replay={self._replay!r})"
        )

    # ------------------------------------------------------------------ hot path

    def _on_next(self, token: _T) -> None:
        # The per-token path: keep it short (benchmarks/fanout.py measures it).
        with self._lock:
            if self.done:
                return
            self._seq += 1
            self._append(token)
            feed = self._feed
            if feed is not None:
                feed(token)
            for sub in self._subs:
                try:
                    sub.on_next(token)
                except Exception as exc:
                    self._fail(sub, exc)

    def _on_error(self, error: Exception) -> None:
        self._finish(error)

    def _on_completed(self) -> None:
        self._finish(None)

    # ------------------------------------------------------------------ state

    @property
    def seq(self) -> int:
        """The sequence number of the latest token (0 before the first)."""
        return self._seq

    @property
    def subscriber_count(self) -> int:
        """How many token subscribers are attached now."""
        return len(self._subs)

    @property
    def errors(self) -> Observable[tuple[str, Exception]]:
        """Hot: ``(subscriber_name, exception)`` for every subscriber removed after a failure.

        It completes once the broadcast has ended and every subscriber has finished.
        """
        return self._errors

    def _catch_up(self) -> None:
        """Feed the builder the history it has not seen (replay="all"), under the lock."""
        history = self._history
        if self._feed is None and type(history) is list and self._fed < len(history):
            self._builder.add_all(history[self._fed :])
            self._fed = len(history)

    def completion_so_far(self) -> Completion:
        """The `Completion` of everything received so far (unfinished tool calls: lenient)."""
        with self._lock:
            if self._completion is not None:
                return self._completion
            self._catch_up()
            return self._builder.build(strict=False)

    # ------------------------------------------------------------------ subscribing

    def subscribe(
        self,
        observer: abc.ObserverBase[_T] | Callable[[_T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        on_completed: Callable[[], None] | None = None,
        on_next: Callable[[_T], None] | None = None,
        *,
        policy: OverflowPolicy = "block",
        max_pending: int = _DEFAULT_MAX_PENDING,
        scheduler: abc.SchedulerBase | None = None,
        name: str | None = None,
    ) -> abc.DisposableBase:
        """Receive the replay, then the live tokens, then the end of the stream.

        Args:
            observer: an observer, or the ``on_next`` callable (reactivex style).
            on_error: called with the stream's error (ignored when `observer` is one).
            on_completed: called at the end (ignored when `observer` is one).
            on_next: called per token (ignored when `observer` is one).
            policy: ``"block"`` (inline on the producer's thread) or, with a
                `scheduler`, ``"coalesce"``, ``"drop_latest"`` or ``"error"``.
            max_pending: how many live tokens may wait for a queued subscriber.
            scheduler: where a queued subscriber is called (a UI loop, a
                `reactivex.scheduler.eventloop.AsyncIOThreadSafeScheduler` ...).
            name: the subscriber's name in logs and in `errors`.

        Returns:
            A disposable: dispose it to leave (the last one out cancels the upstream).

        Raises:
            ConfigError: an invalid policy / max_pending / scheduler combination.
        """
        on_next_, on_error_, on_completed_ = _callbacks(observer, on_error, on_completed, on_next)
        _check_policy(policy, max_pending, scheduler)
        sub_name = self._name_for(name)
        sub: _Sub
        if policy == "block":
            emit = _drop_seq(on_next_)
            sub = _Sub(self, sub_name, on_next_, emit, on_error_, on_completed_)
        else:
            sub = _Queued(
                self,
                sub_name,
                on_next_,
                on_error_,
                on_completed_,
                policy=policy,
                max_pending=max_pending,
                scheduler=scheduler,
                sequenced=False,
            )
        return self._add(sub, after=None, on_gap="oldest")

    @property
    def observable(self) -> Observable[_T]:
        """The tokens as an ordinary (inline-delivered) Observable, for ``pipe()``."""

        def subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return self.subscribe(observer)

        return reactivex.create(subscribe)

    def pipe(self, *operators: Callable[[Any], Any]) -> Any:
        """``broadcast.observable.pipe(*operators)``."""
        return self.observable.pipe(*operators)

    def sequenced(
        self,
        after: int = 0,
        *,
        on_gap: OnGap = "error",
        policy: OverflowPolicy = "block",
        max_pending: int = _DEFAULT_MAX_PENDING,
        scheduler: abc.SchedulerBase | None = None,
        name: str | None = None,
    ) -> Observable[Sequenced]:
        """``Sequenced(seq, token)`` pairs with ``seq > after``: resume after a known point.

        Args:
            after: the last seq the subscriber already has (0: from the start).
            on_gap: when tokens after `after` are no longer retained (see
                ``replay``): ``"error"`` fails the subscription with
                `ReplayGapError`; ``"oldest"`` starts at the oldest retained token.
            policy, max_pending, scheduler, name: as in `subscribe`; a coalesced
                item carries the seq of the last token merged into it.

        Example:
            >>> import reactivex
            >>> from reactivex import operators as ops
            >>> from rxtokens.tokens import TextDelta
            >>> b = Broadcast(reactivex.of(*(TextDelta(c) for c in "abc")))
            >>> _ = b.connect()
            >>> b.sequenced(after=2).pipe(ops.to_list()).run()
            [Sequenced(seq=3, token=TextDelta(text='c', index=0))]
        """
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ConfigError(f"after must be a non-negative int, got {after!r}")
        if on_gap not in ("error", "oldest"):
            raise ConfigError(f"on_gap must be 'error' or 'oldest', got {on_gap!r}")
        _check_policy(policy, max_pending, scheduler)

        def subscribe(
            observer: abc.ObserverBase[Sequenced], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sub_name = self._name_for(name)
            sub: _Sub
            if policy == "block":
                deliver = observer.on_next

                def emit(seq: int, token: Any) -> None:
                    deliver(Sequenced(seq, token))

                def live(token: Any) -> None:
                    seq = self._seq
                    if seq > after:
                        deliver(Sequenced(seq, token))

                sub = _Sub(self, sub_name, live, emit, observer.on_error, observer.on_completed)
            else:
                sub = _Queued(
                    self,
                    sub_name,
                    observer.on_next,
                    observer.on_error,
                    observer.on_completed,
                    policy=policy,
                    max_pending=max_pending,
                    scheduler=scheduler,
                    sequenced=True,
                )
            return self._add(sub, after=after, on_gap=on_gap)

        return reactivex.create(subscribe)

    def to_async_iterator(
        self,
        *,
        policy: Literal["coalesce", "drop_latest", "error"] = "coalesce",
        max_pending: int = _DEFAULT_MAX_PENDING,
        name: str | None = None,
    ) -> BroadcastIterator:
        """The tokens as a bounded async iterator (call it inside the consuming event loop).

        The iterator subscribes immediately (replay included); a slow consumer
        never slows the producer: `policy` decides what happens when
        ``max_pending`` live tokens wait. The stream's error is raised from
        ``__anext__``.

        Example:
            >>> async def show(b: Broadcast[Any]) -> None:
            ...     async with b.to_async_iterator() as tokens:
            ...         async for token in tokens:
            ...             print(token)
        """
        if policy not in _QUEUED_POLICIES:
            raise ConfigError(
                f"policy must be one of {_QUEUED_POLICIES} for an async iterator, got {policy!r}"
            )
        _check_policy(policy, max_pending, None, queued_ok=True)
        sink = _AsyncSink(self, self._name_for(name), policy, max_pending)
        return BroadcastIterator(sink, self._add(sink, after=None, on_gap="oldest"))

    def _name_for(self, name: str | None) -> str:
        with self._lock:
            self._next_id += 1
            return name if name is not None else f"subscriber-{self._next_id}"

    def _add(self, sub: _Sub, *, after: int | None, on_gap: OnGap) -> abc.DisposableBase:
        with self._lock:
            self._open += 1
            items, gap = self._replay_items(after, on_gap)
            if gap is not None:
                sub.finish(gap)
                return Disposable()
            try:
                sub.replay(items)
            except Exception as exc:
                self._report(sub, exc)
                sub.close()
                self._closed(sub)
                return Disposable()
            if self.done:
                sub.finish(self._end)
                return Disposable()
            self._refs += 1
            self._subs = (*self._subs, sub)
            start = self._state == _IDLE
            if start:
                self._state = _RUNNING
        if start:
            self._start()
        return Disposable(lambda: self._remove(sub))

    def _replay_items(
        self, after: int | None, on_gap: OnGap
    ) -> tuple[list[tuple[int, Any]], ReplayGapError | None]:
        history = self._history
        retained = [] if history is None else list(history)
        first = self._seq - len(retained) + 1  # seq of retained[0]
        if after is None:
            return list(enumerate(retained, first)), None
        if after + 1 < first and on_gap == "error":
            return [], ReplayGapError(
                f"broadcast {self.name!r} cannot resume after seq {after}: the oldest "
                f"retained token is seq {first} (replay={self._replay!r}); use a larger "
                f"replay, or on_gap='oldest' to start there",
                after=after,
                oldest=first,
            )
        skip = max(0, after + 1 - first)
        return list(enumerate(retained[skip:], first + skip)), None

    def _remove(self, sub: _Sub) -> None:
        """The subscriber disposed its subscription."""
        with self._lock:
            if sub not in self._subs:
                # already ended; a queued subscriber may still hold undelivered items
                if isinstance(sub, _Queued):
                    with sub.lock:
                        was_open = not sub.closed
                    if was_open:
                        sub.close()
                        self._closed(sub)
                return
            self._subs = tuple(s for s in self._subs if s is not sub)
            sub.close()
            self._closed(sub)
            self._release()

    def _fail(self, sub: _Sub, exc: Exception) -> None:
        """A subscriber's callback raised: remove it and report (the others go on)."""
        with self._lock:
            sub.close()
            self._report(sub, exc)
            if sub in self._subs:
                self._subs = tuple(s for s in self._subs if s is not sub)
                self._closed(sub)
                self._release()
            else:
                self._closed(sub)

    def _overflow(self, sub: _Queued) -> None:
        """A queued subscriber with policy "error" overflowed."""
        error = BackpressureOverflowError(
            f"subscriber {sub.name!r} of broadcast {self.name!r} fell {sub.max_pending} "
            f"tokens behind (policy 'error'); consume faster, raise max_pending, or use "
            f"policy 'coalesce' or 'drop_latest'",
            capacity=sub.max_pending,
        )
        with self._lock:
            self._catch_up()
            attach_partial(error, self._builder)
            self._report(sub, error)
            if sub in self._subs:
                self._subs = tuple(s for s in self._subs if s is not sub)
                self._release()
        sub.on_next = _noop
        sub.finish(error)

    def _report(self, sub: _Sub, exc: Exception) -> None:
        logger.warning(
            "broadcast %r: subscriber %r raised %r; it was removed, the others continue",
            self.name,
            sub.name,
            exc,
            exc_info=exc,
        )
        try:
            self._errors.on_next((sub.name, exc))
        except Exception:  # an `errors` observer failed: only log it
            logger.exception("broadcast %r: an observer of `errors` raised", self.name)

    def _closed(self, _sub: _Sub) -> None:
        with self._lock:
            self._open -= 1
            if self.done and self._open == 0:
                with contextlib.suppress(Exception):
                    self._errors.on_completed()

    # ------------------------------------------------------------------ connection

    def connect(self) -> abc.DisposableBase:
        """Start the upstream now (without a subscriber); dispose the result to release it.

        The returned disposable holds the connection like a subscriber does: the
        upstream is cancelled when it and every subscriber are gone (unless
        ``keep_alive``). Calling `connect` again adds another hold.
        """
        with self._lock:
            if self.done:
                return Disposable()
            self._refs += 1
            start = self._state == _IDLE
            if start:
                self._state = _RUNNING
        if start:
            self._start()
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._release()

        return Disposable(release)

    def _start(self) -> None:
        try:
            # A shared source must not be paused by whichever subscriber happened to connect it
            # (rxtokens.aio flow control): slow subscribers have their own overflow policies.
            with flow_control_scope(None):
                subscription = self._source.subscribe(
                    self._on_next, self._on_error, self._on_completed
                )
        except Exception as exc:  # the source failed to subscribe
            self._finish(exc)
            return
        self._upstream.disposable = subscription

    def _release(self) -> None:
        """One subscriber / hold left (called under the lock)."""
        self._refs -= 1
        if self._refs == 0 and not self._keep_alive and self._state == _RUNNING:
            self._stop(
                BroadcastCancelledError(
                    f"broadcast {self.name!r} was cancelled: its last subscriber left "
                    f"before the stream ended (use keep_alive=True to let it finish)"
                )
            )

    def cancel(self) -> None:
        """Stop now: cancel the upstream; subscribers get `BroadcastCancelledError`."""
        self._stop(BroadcastCancelledError(f"broadcast {self.name!r} was cancelled by cancel()"))

    def _stop(self, error: BroadcastCancelledError) -> None:
        with self._lock:
            if self.done:
                return
            self._finish(error)
        self._upstream.dispose()

    def _finish(self, error: Exception | None) -> None:
        """The end of the stream (upstream ended, or cancelled): notify everyone once."""
        with self._lock:
            if self.done:
                return
            self.done = True
            self._state = _DONE
            self._catch_up()
            upstream_error = error  # what token subscribers get: they saw every token
            completion: Completion | None = None
            if error is None:
                try:
                    completion = self._builder.build()
                except Exception as exc:  # malformed tool arguments: only the answer fails
                    error = exc
            else:
                attach_partial(error, self._builder)
            self._completion = completion
            self._error = error
            self._end = upstream_error
            subs, self._subs = self._subs, ()
            listeners, self._listeners = self._listeners, []
            futures = list(self._futures.items())
            self._refs = 0
            for sub in subs:
                sub.finish(upstream_error)
            for listener in listeners:
                _notify(listener, completion, error)
            if not subs and self._open == 0:
                with contextlib.suppress(Exception):
                    self._errors.on_completed()
        for loop, future in futures:
            _settle(loop, future, completion, error)
        self._upstream.dispose()

    # ------------------------------------------------------------------ the final answer

    @property
    def final(self) -> asyncio.Future[Completion]:
        """The `Completion`, as a future of the running event loop (``await b.final``).

        On failure it raises the stream's error, whose ``.partial`` holds the
        completion so far. Awaiting does not start the stream: subscribe or
        `connect` (or use `stream_to`).

        Raises:
            RuntimeError: when no event loop is running (use `completion`).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            future = self._futures.get(loop)
            if future is None:
                future = self._futures[loop] = loop.create_future()
                if self.done:
                    if self._completion is not None:
                        future.set_result(self._completion)
                    else:
                        assert self._error is not None
                        future.set_exception(self._error)
            return future

    @property
    def completion(self) -> Observable[Completion]:
        """The `Completion` as an Observable: one item then completed, or the error.

        Replayed to late subscribers. Subscribing counts as a subscriber: it
        starts the upstream and holds it until disposed.
        """

        def subscribe(
            observer: abc.ObserverBase[Completion], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            with self._lock:
                if self.done:
                    _notify(observer, self._completion, self._error)
                    return Disposable()
                self._listeners.append(observer)
                self._refs += 1
                start = self._state == _IDLE
                if start:
                    self._state = _RUNNING
            if start:
                self._start()

            def dispose() -> None:
                with self._lock:
                    if observer in self._listeners:
                        self._listeners.remove(observer)
                        self._release()

            return Disposable(dispose)

        return reactivex.create(subscribe)


def _notify(
    observer: abc.ObserverBase[Completion], completion: Completion | None, error: Exception | None
) -> None:
    try:
        if completion is not None:
            observer.on_next(completion)
            observer.on_completed()
        else:
            assert error is not None
            observer.on_error(error)
    except Exception:
        logger.exception("an observer of Broadcast.completion raised")


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Completion],
    completion: Completion | None,
    error: Exception | None,
) -> None:
    """Complete `future` from any thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        if completion is not None:
            _resolve(future, completion)
        else:
            assert error is not None
            _reject(future, error)
        return
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody can await
        if completion is not None:
            loop.call_soon_threadsafe(_resolve, future, completion)
        else:
            loop.call_soon_threadsafe(_reject, future, error)


def _callbacks(
    observer: Any,
    on_error: Callable[[Exception], None] | None,
    on_completed: Callable[[], None] | None,
    on_next: Callable[[Any], None] | None,
) -> tuple[Callable[[Any], None], Callable[[Exception], None], Callable[[], None]]:
    if isinstance(observer, abc.ObserverBase):
        return observer.on_next, observer.on_error, observer.on_completed
    if observer is not None:
        if not callable(observer):
            raise ConfigError(f"subscribe() needs an observer or a callable, got {observer!r}")
        on_next = observer
    return on_next or _noop, on_error or _log_error, on_completed or _noop


def _log_error(error: Exception) -> None:
    logger.debug("a broadcast subscriber without on_error missed %r", error)


def _drop_seq(on_next: Callable[[Any], None]) -> Callable[[int, Any], None]:
    def emit(_seq: int, token: Any) -> None:
        on_next(token)

    return emit


def _check_policy(
    policy: str, max_pending: int, scheduler: Any, *, queued_ok: bool = False
) -> None:
    if policy not in _POLICIES:
        raise ConfigError(f"policy must be one of {_POLICIES}, got {policy!r}")
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        raise ConfigError(f"max_pending must be a positive int, got {max_pending!r}")
    if queued_ok:
        return
    if policy == "block" and scheduler is not None:
        raise ConfigError(
            "policy 'block' calls the subscriber inline on the producer's thread and takes no "
            "scheduler; pass policy='coalesce', 'drop_latest' or 'error' with a scheduler"
        )
    if policy != "block" and scheduler is None:
        raise ConfigError(
            f"policy {policy!r} queues tokens for a subscriber that runs on its own "
            "scheduler: pass scheduler=... (or use to_async_iterator() in asyncio code)"
        )


# --------------------------------------------------------------------------- stream_to

Sink: TypeAlias = (
    Callable[[Any], object] | asyncio.Queue[Any] | queue_module.Queue[Any] | abc.ObserverBase[Any]
)
"""Where `stream_to` sends tokens: a callback, an asyncio / thread queue, or an observer."""


async def stream_to(
    source: Observable[Any] | Broadcast[Any],
    *sinks: Sink,
    policy: Literal["coalesce", "drop_latest", "error"] = "coalesce",
    max_pending: int = _DEFAULT_MAX_PENDING,
) -> Completion:
    """Stream `source` to every sink live, and return the final `Completion`.

    The "streaming prompt with sender" pattern: one request, any number of
    live outputs, and the answer at the end. Sinks:

    * a callable: called inline with each token (a raising callback is
      removed and logged; the others continue);
    * an `asyncio.Queue`: receives each token then ``None`` at the end, fed
      through a bounded buffer with `policy` (a bounded queue never blocks the
      producer);
    * a `queue.Queue`: receives each token then ``None`` (``put`` inline);
    * an observer: receives the tokens and the end (error included).

    Args:
        source: a token Observable (or an unconnected `Broadcast`).
        *sinks: where the tokens go.
        policy: overflow policy of the asyncio-queue sinks.
        max_pending: buffer size of the asyncio-queue sinks.

    Returns:
        The `Completion` once the stream ended and every queue got its ``None``.

    Raises:
        StreamError: the stream's error (with ``.partial``); cancelling the
            awaiting task cancels the upstream.

    Example:
        >>> async def main(stream: Observable[Any]) -> Completion:
        ...     live: asyncio.Queue[Any] = asyncio.Queue()
        ...     return await stream_to(stream, print, live)
    """
    owned = not isinstance(source, Broadcast)
    broadcast = source if isinstance(source, Broadcast) else Broadcast(source, name="stream_to")
    disposables: list[abc.DisposableBase] = []
    pumps: list[asyncio.Task[None]] = []
    try:
        for sink in sinks:
            if isinstance(sink, asyncio.Queue):
                iterator = broadcast.to_async_iterator(policy=policy, max_pending=max_pending)
                pumps.append(asyncio.ensure_future(_pump(iterator, sink)))
            else:
                disposables.append(_attach(broadcast, sink))
        final = broadcast.final
        disposables.append(broadcast.connect())
        try:
            completion = await final
        except asyncio.CancelledError:
            for pump in pumps:
                pump.cancel()
            if owned:
                broadcast.cancel()
            raise
        finally:
            if pumps:
                await asyncio.gather(*pumps, return_exceptions=True)
        return completion
    finally:
        for pump in pumps:
            pump.cancel()
        for disposable in disposables:
            disposable.dispose()


async def _pump(iterator: BroadcastIterator, sink: asyncio.Queue[Any]) -> None:
    try:
        async with iterator:
            async for token in iterator:
                await sink.put(token)
    except Exception:  # the stream's error is raised by stream_to itself
        pass
    finally:
        with contextlib.suppress(asyncio.QueueFull):
            sink.put_nowait(None)


def _attach(broadcast: Broadcast[Any], sink: Sink) -> abc.DisposableBase:
    if isinstance(sink, queue_module.Queue):
        put = sink.put
        return broadcast.subscribe(
            put, lambda _e: put(None), lambda: put(None), name=f"queue-{id(sink):x}"
        )
    if isinstance(sink, abc.ObserverBase):
        return broadcast.subscribe(sink)
    if callable(sink):
        on_next = cast(Callable[[Any], None], sink)
        return broadcast.subscribe(on_next, name=getattr(sink, "__qualname__", None))
    raise ConfigError(
        f"a stream_to sink must be a callable, an asyncio.Queue, a queue.Queue or an "
        f"observer, got {sink!r}"
    )


def stream_to_sync(
    source: Observable[Any] | Broadcast[Any] | Callable[[], Observable[Any]],
    *sinks: Sink,
    policy: Literal["coalesce", "drop_latest", "error"] = "coalesce",
    max_pending: int = _DEFAULT_MAX_PENDING,
) -> Completion:
    """The blocking twin of `stream_to`, for scripts: runs its own event loop (`asyncio.run`).

    `source` may also be a zero-argument function returning the Observable,
    so that sources that need the event loop are built inside it (as with
    `rxtokens.aio.run`).

    Raises:
        ConfigError: called while an event loop is running in this thread
            (Jupyter, async code): ``await stream_to(...)`` there instead.
        StreamError: the stream failed (with ``.partial``).

    Example:
        >>> import reactivex
        >>> from rxtokens.tokens import TextDelta
        >>> stream_to_sync(reactivex.of(TextDelta("Hi")), lambda t: print(t.text)).text
        Hi
        'Hi'
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigError(
            "stream_to_sync() cannot be called while an event loop is running in this thread "
            "(Jupyter, async code); use `await stream_to(...)` instead"
        )
    if not isinstance(source, (Observable, Broadcast)) and not callable(source):
        raise ConfigError(
            f"stream_to_sync() needs an Observable, a Broadcast or a function returning one, "
            f"got {type(source).__name__}"
        )

    async def main() -> Completion:
        target = source if isinstance(source, (Observable, Broadcast)) else source()
        return await stream_to(target, *sinks, policy=policy, max_pending=max_pending)

    return asyncio.run(main())
