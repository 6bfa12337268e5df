"""The state machine behind `Broadcast`: the token log, subscribers, refcount and the end."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable
from reactivex.subject import Subject

from ..aio import flow_control_scope
from ..errors import (
    BackpressureOverflowError,
    BroadcastCancelledError,
    ConfigError,
    ReplayGapError,
)
from ..token_log import LogEnd, MemoryTokenLog, Sequenced, TokenLog
from ._answer import Answer
from ._delivery import _noop, _Queued, _Sub

__all__ = ["BroadcastCore", "OnGap"]

logger = logging.getLogger("rxtokens.broadcast")

_T = TypeVar("_T")

_IDLE, _RUNNING, _DONE = 0, 1, 2

OnGap: TypeAlias = Literal["error", "oldest"]
"""What `Broadcast.sequenced` does when asked to resume before the retained history."""


class BroadcastCore(Generic[_T]):
    """What `Broadcast` is made of: its log, its subscribers and its lifecycle (no public API).

    Every token goes to the log (the only store) and, under one re-entrant lock,
    to every subscriber record (`rxtokens.broadcast._delivery`); a late
    subscriber's replay is read from the log under the same lock, so it sees
    no gap and no duplicate.
    """

    __slots__ = (
        "_answer",
        "_end",
        "_errors",
        "_feed",
        "_keep_alive",
        "_lock",
        "_log",
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
        self, source: Observable[_T], log: TokenLog, replay: Any, keep_alive: bool, name: str
    ) -> None:
        self._source = source
        self._replay = replay
        self._keep_alive = keep_alive
        self.name = name
        self._lock = threading.RLock()
        self._subs: tuple[_Sub, ...] = ()
        self._refs = 0  # token subscribers + completion observers + connect() holds
        self._open = 0  # subscriber records not yet closed (for completing `errors`)
        self._next_id = 0
        self._state = _IDLE
        self.done = False
        self._seq = 0
        self._log = log
        self._answer = Answer(log.tokens if isinstance(log, MemoryTokenLog) else None)
        self._feed = self._answer.feed
        self._upstream = SingleAssignmentDisposable()
        self._end: tuple[Exception | None] | None = None  # how the token stream ended
        self._errors: Subject[tuple[str, Exception]] = Subject()

    # ------------------------------------------------------------------ hot path

    def _on_next(self, token: _T) -> None:
        # The per-token path: keep it short (benchmarks/fanout.py measures it).
        with self._lock:
            if self.done:
                return
            self._seq += 1
            self._log.append(token)
            feed = self._feed
            if feed is not None:
                try:
                    feed(token)
                except ConfigError as exc:  # not a token: only the final answer fails
                    self._feed = None
                    self._answer.refuse(exc)
            for sub in self._subs:
                try:
                    sub.on_next(token)
                except Exception as exc:
                    self._fail(sub, exc)

    def _on_error(self, error: Exception) -> None:
        self._finish(error)

    def _on_completed(self) -> None:
        self._finish(None)

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
            if self._end is not None:
                sub.finish(self._end[0])
                return Disposable()
            self._subs = (*self._subs, sub)
            start = self._hold()
        if start:
            self._start()
        return Disposable(lambda: self._remove(sub))

    def _replay_items(
        self, after: int | None, on_gap: OnGap
    ) -> tuple[list[Sequenced], ReplayGapError | None]:
        entries, first, _end = self._log.read(0 if after is None else after)
        if after is not None and after + 1 < first and on_gap == "error":
            return [], ReplayGapError(
                f"broadcast {self.name!r} cannot resume after seq {after}: the oldest "
                f"retained token is seq {first} (replay={self._replay!r}); use a larger "
                f"replay, or on_gap='oldest' to start there",
                after=after,
                oldest=first,
            )
        return entries, None

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
            f"policy 'coalesce' or 'drop_newest'",
            capacity=sub.max_pending,
        )
        with self._lock:
            self._answer.attach_partial(error)
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
            if error is not None:
                self._answer.attach_partial(error)  # token subscribers get it with the partial
            self._end = (error,)
            self._log.close(LogEnd(error))
            subs, self._subs = self._subs, ()
            self._refs = 0
            for sub in subs:
                sub.finish(error)
            settle_futures = self._answer.settle(error)
            if not subs and self._open == 0:
                with contextlib.suppress(Exception):
                    self._errors.on_completed()
        settle_futures()
        self._upstream.dispose()

    def _hold(self) -> bool:
        """One more subscriber / hold (under the lock); True when the upstream must start now."""
        self._refs += 1
        start = self._state == _IDLE
        if start:
            self._state = _RUNNING
        return start
