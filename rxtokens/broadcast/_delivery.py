"""Per-subscriber delivery for `Broadcast`: inline, queued with an overflow policy, or pulled.

* ``policy="block"``: `_Sub` calls the subscriber inline on the producer's thread.
* ``"coalesce"``, ``"drop_newest"`` (alias ``"drop_latest"``), ``"error"``: `_Queued`
  keeps a bounded queue of at most ``max_pending`` live tokens, drained on the
  subscriber's scheduler. ``"coalesce"`` merges pending tokens with the one
  coalescer (`rxtokens.coalesce.Coalescer`, whose docstring holds the merge rules).
* `_AsyncSink` is the same queue pulled by an async iterator (`BroadcastIterator`).

The policy names are those of the ``on_backpressure_*`` operators; the bound is
called ``max_pending`` everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Literal, Protocol, TypeAlias

from reactivex import abc

from ..aio._flow import resolve_threadsafe
from ..coalesce import Coalescer
from ..errors import ConfigError
from ..token_log import Sequenced
from ..tokens import Finish, ToolCall, Usage

__all__ = [
    "BroadcastIterator",
    "OverflowPolicy",
    "check_policy",
    "observer_callbacks",
]

logger = logging.getLogger("rxtokens.broadcast")

OverflowPolicy: TypeAlias = Literal["block", "coalesce", "drop_newest", "drop_latest", "error"]
"""What happens to a subscriber that consumes more slowly than tokens arrive.

``"drop_latest"`` is the former name of ``"drop_newest"`` (the name the
``on_backpressure_*`` operators use), accepted so that existing code keeps working.
"""

_POLICIES = ("block", "coalesce", "drop_newest", "error")
_ALIASES = {"drop_latest": "drop_newest"}
QUEUED_POLICIES = ("coalesce", "drop_newest", "drop_latest", "error")
DEFAULT_MAX_PENDING = 1024
_NEVER_DROPPED: tuple[type[Any], ...] = (Finish, ToolCall, Usage)
_Queue: TypeAlias = "Coalescer | deque[Sequenced]"


class _Owner(Protocol):
    """What a subscriber record needs from its broadcast."""

    name: str
    _seq: int

    def _report(self, sub: Any, exc: Exception) -> None: ...
    def _closed(self, sub: Any) -> None: ...
    def _fail(self, sub: Any, exc: Exception) -> None: ...
    def _overflow(self, sub: Any) -> None: ...


def _noop(*_: Any) -> None:
    return None


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
        owner: _Owner,
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

    def replay(self, items: Iterable[Sequenced]) -> None:
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
        owner: _Owner,
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
        self.backlog: _Queue = self._queue()  # the replay
        self.pending: _Queue = self._queue()  # live tokens
        self.terminal: tuple[Exception | None] | None = None
        self.signalled = False  # a drain is scheduled / a waiter will be woken
        self.closed = False
        self.dropped = 0

    # -- producer side (called under the broadcast lock)

    def _queue(self) -> _Queue:
        if self.policy == "coalesce":
            return Coalescer(merge_usage=True, sequenced=True)
        return deque()

    def replay(self, items: Iterable[Sequenced]) -> None:
        backlog = self._queue()
        if type(backlog) is Coalescer:
            for seq, token in items:
                backlog.append(token, seq)
            backlog.compact()
        else:
            backlog.extend(items)  # type: ignore[arg-type]
        with self.lock:
            self.backlog = backlog
            wake = self._signal() if backlog else None
        if wake is not None:
            wake()

    def push(self, token: Any) -> None:
        overflow = False
        with self.lock:
            if self.closed or self.terminal is not None:
                return
            pending = self.pending
            if type(pending) is Coalescer:
                size = len(pending)
                pending.append(token, self.owner._seq)
                if len(pending) == size:
                    return  # merged into the newest item: a drain is already signalled
                if size >= self.threshold:
                    pending.compact()
                    self.threshold = max(self.max_pending, 2 * len(pending))
            elif len(pending) < self.max_pending:
                pending.append(Sequenced(self.owner._seq, token))
            elif self.policy == "drop_newest":
                if isinstance(token, _NEVER_DROPPED):
                    pending.append(Sequenced(self.owner._seq, token))
                else:
                    self.dropped += 1
                    if self.dropped == 1:
                        logger.info(
                            "broadcast %r: subscriber %r is too slow; dropping tokens "
                            "(policy 'drop_newest', max_pending=%d)",
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
            backlog, pending = self.backlog, self.pending
            if type(backlog) is Coalescer and backlog and pending:
                backlog.extend(pending)  # type: ignore[arg-type]
                backlog.compact()
            items: list[Sequenced] = [*backlog, *pending]
            backlog.clear()
            pending.clear()
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

    def __init__(self, owner: _Owner, name: str, policy: str, max_pending: int) -> None:
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
        return partial(resolve_threadsafe, waiter)

    async def next(self) -> Any:
        while True:
            with self.lock:
                if self.backlog:
                    return self.backlog.popleft().token
                if self.pending:
                    return self.pending.popleft().token
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


def observer_callbacks(
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


def drop_seq(on_next: Callable[[Any], None]) -> Callable[[int, Any], None]:
    def emit(_seq: int, token: Any) -> None:
        on_next(token)

    return emit


def check_policy(policy: str, max_pending: int, scheduler: Any, *, queued_ok: bool = False) -> str:
    """Validate a subscriber's options; returns the policy's canonical name."""
    policy = _ALIASES.get(policy, policy)
    if policy not in _POLICIES:
        raise ConfigError(f"policy must be one of {_POLICIES}, got {policy!r}")
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        raise ConfigError(f"max_pending must be a positive int, got {max_pending!r}")
    if queued_ok:
        return policy
    if policy == "block" and scheduler is not None:
        raise ConfigError(
            "policy 'block' calls the subscriber inline on the producer's thread and takes no "
            "scheduler; pass policy='coalesce', 'drop_newest' or 'error' with a scheduler"
        )
    if policy != "block" and scheduler is None:
        raise ConfigError(
            f"policy {policy!r} queues tokens for a subscriber that runs on its own "
            "scheduler: pass scheduler=... (or use to_async_iterator() in asyncio code)"
        )
    return policy
