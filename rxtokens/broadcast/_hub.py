"""`Broadcast`: one upstream subscription shared by many subscribers (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ..errors import BroadcastCancelledError, ConfigError, ReplayGapError
from ..token_log import MemoryTokenLog, Sequenced, TokenLog
from ..tokens import Completion
from ._answer import notify
from ._core import BroadcastCore, OnGap
from ._delivery import (
    DEFAULT_MAX_PENDING,
    QUEUED_POLICIES,
    BroadcastIterator,
    OverflowPolicy,
    _AsyncSink,
    _noop,
    _Queued,
    _Sub,
    check_policy,
    drop_seq,
    observer_callbacks,
)

__all__ = [
    "Broadcast",
    "BroadcastCancelledError",
    "OnGap",
    "Replay",
    "ReplayGapError",
]

logger = logging.getLogger("rxtokens.broadcast")

_T = TypeVar("_T")

Replay: TypeAlias = Literal["all", "none"] | int
"""What a late subscriber receives first: every token, none, or the last N."""


class Broadcast(BroadcastCore[_T]):
    """A hot, multicasting wrapper around one token stream (see the module docstring).

    Args:
        source: the cold observable to share (typically a provider's token stream).
        replay: what late subscribers receive first: ``"all"`` (default),
            ``"none"`` or the last ``N`` tokens. It also bounds the history kept
            for `sequenced`.
        keep_alive: when True, the upstream is not cancelled when the last
            subscriber leaves: it runs to completion and `final` resolves.
        name: used in logs and error messages.
        log: where the tokens are kept (a `rxtokens.token_log.TokenLog`);
            default: a `MemoryTokenLog` whose retention follows `replay`.
            With a log, ``replay`` must be left at its default: the log's
            ``retain`` decides.

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

    __slots__ = ()

    def __init__(
        self,
        source: Observable[_T],
        *,
        replay: Replay = "all",
        keep_alive: bool = False,
        name: str | None = None,
        log: TokenLog | None = None,
    ) -> None:
        if isinstance(replay, bool) or not (
            replay in ("all", "none") or (isinstance(replay, int) and replay >= 0)
        ):
            raise ConfigError(f"replay must be 'all', 'none' or a non-negative int, got {replay!r}")
        if not isinstance(source, Observable):
            raise ConfigError(f"Broadcast needs a reactivex Observable, got {source!r}")
        if log is None:
            log = MemoryTokenLog(None if replay == "all" else 0 if replay == "none" else replay)
        elif replay != "all":
            raise ConfigError("pass either replay= or log= (the log's retain sets the replay)")
        elif not isinstance(log, TokenLog):
            raise ConfigError(f"log must implement rxtokens.token_log.TokenLog, got {log!r}")
        else:
            replay = "all" if log.retain is None else log.retain
        super().__init__(
            source,
            log,
            replay,
            keep_alive,
            name if name is not None else f"broadcast-{id(self):x}",
        )

    def __repr__(self) -> str:
        state = ("idle", "running", "done")[self._state]
        return (
            f"Broadcast(name={self.name!r}, state={state}, seq={self._seq}, "
            f"subscribers={len(self._subs)}, replay={self._replay!r})"
        )

    # ------------------------------------------------------------------ state

    @property
    def seq(self) -> int:
        """The sequence number of the latest token (0 before the first)."""
        return self._seq

    @property
    def log(self) -> TokenLog:
        """The token log: every token this broadcast keeps, and how the stream ended."""
        return self._log

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

    def completion_so_far(self) -> Completion:
        """The `Completion` of everything received so far (unfinished tool calls: lenient)."""
        with self._lock:
            return self._answer.so_far()

    # ------------------------------------------------------------------ subscribing

    def subscribe(
        self,
        observer: abc.ObserverBase[_T] | Callable[[_T], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
        on_completed: Callable[[], None] | None = None,
        on_next: Callable[[_T], None] | None = None,
        *,
        policy: OverflowPolicy = "block",
        max_pending: int = DEFAULT_MAX_PENDING,
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
                `scheduler`, ``"coalesce"``, ``"drop_newest"`` (alias
                ``"drop_latest"``) or ``"error"``.
            max_pending: how many live tokens may wait for a queued subscriber.
            scheduler: where a queued subscriber is called (a UI loop, a
                `reactivex.scheduler.eventloop.AsyncIOThreadSafeScheduler` ...).
            name: the subscriber's name in logs and in `errors`.

        Returns:
            A disposable: dispose it to leave (the last one out cancels the upstream).

        Raises:
            ConfigError: an invalid policy / max_pending / scheduler combination.
        """
        on_next_, on_error_, on_completed_ = observer_callbacks(
            observer, on_error, on_completed, on_next
        )
        canonical = check_policy(policy, max_pending, scheduler)
        sub_name = self._name_for(name)
        sub: _Sub
        if policy == "block":
            emit = drop_seq(on_next_)
            sub = _Sub(self, sub_name, on_next_, emit, on_error_, on_completed_)
        else:
            sub = _Queued(
                self,
                sub_name,
                on_next_,
                on_error_,
                on_completed_,
                policy=canonical,
                max_pending=max_pending,
                scheduler=scheduler,
                sequenced=False,
            )
        return self._add(sub, after=None, on_gap="oldest")

    @property
    def observable(self) -> Observable[_T]:
        """The tokens as an ordinary (inline-delivered) Observable, for ``pipe()``.

        ``aggregate()`` over it yields this broadcast's own answer (built once) when it
        subscribes before the first token, or when the log keeps every token.
        """
        return _Tokens(self)

    def _subscribe_answer(
        self, observer: abc.ObserverBase[Completion]
    ) -> abc.DisposableBase | None:
        """`aggregate()` of `observable`: the answer, if this subscriber sees every token."""
        with self._lock:
            if self._seq and not self._answer.from_log:
                return None  # it joined late: only later tokens are its own

        def on_completed() -> None:  # called under the lock, once the stream ended well
            completion, error = self._answer.result(None)
            if completion is None:
                assert error is not None
                observer.on_error(error)
                return
            observer.on_next(completion)
            observer.on_completed()

        sub = _Sub(self, self._name_for(None), _noop, _noop, observer.on_error, on_completed)
        return self._add(sub, after=None, on_gap="oldest")

    def pipe(self, *operators: Callable[[Any], Any]) -> Any:
        """``broadcast.observable.pipe(*operators)``."""
        return self.observable.pipe(*operators)

    def sequenced(
        self,
        after: int = 0,
        *,
        on_gap: OnGap = "error",
        policy: OverflowPolicy = "block",
        max_pending: int = DEFAULT_MAX_PENDING,
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
        canonical = check_policy(policy, max_pending, scheduler)

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
                    policy=canonical,
                    max_pending=max_pending,
                    scheduler=scheduler,
                    sequenced=True,
                )
            return self._add(sub, after=after, on_gap=on_gap)

        return reactivex.create(subscribe)

    def to_async_iterator(
        self,
        *,
        policy: Literal["coalesce", "drop_newest", "drop_latest", "error"] = "coalesce",
        max_pending: int = DEFAULT_MAX_PENDING,
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
        if policy not in QUEUED_POLICIES:
            raise ConfigError(
                f"policy must be one of {QUEUED_POLICIES} for an async iterator, got {policy!r}"
            )
        canonical = check_policy(policy, max_pending, None, queued_ok=True)
        sink = _AsyncSink(self, self._name_for(name), canonical, max_pending)
        return BroadcastIterator(sink, self._add(sink, after=None, on_gap="oldest"))

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
            start = self._hold()
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

    def cancel(self) -> None:
        """Stop now: cancel the upstream; subscribers get `BroadcastCancelledError`."""
        self._stop(BroadcastCancelledError(f"broadcast {self.name!r} was cancelled by cancel()"))

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
            future: asyncio.Future[Completion] = self._answer.future(loop, self._end)
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
                if self._end is not None:
                    notify(observer, *self._answer.result(self._end[0]))
                    return Disposable()
                self._answer.listen(observer)
                start = self._hold()
            if start:
                self._start()

            def dispose() -> None:
                with self._lock:
                    if self._answer.unlisten(observer):
                        self._release()

            return Disposable(dispose)

        return reactivex.create(subscribe)


class _Tokens(Observable[_T]):
    """`Broadcast.observable`: subscribing subscribes to the broadcast (an `AnswerSource`)."""

    def __init__(self, broadcast: Broadcast[_T]) -> None:
        super().__init__(self._subscribe_tokens)
        self._broadcast = broadcast

    def _subscribe_tokens(
        self, observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self._broadcast.subscribe(observer)

    def subscribe_answer(
        self, observer: abc.ObserverBase[Completion], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase | None:
        """See `rxtokens.completion.AnswerSource`."""
        return self._broadcast._subscribe_answer(observer)
