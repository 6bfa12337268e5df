"""`stream_to`: one stream to many live outputs, and the final answer at the end."""

from __future__ import annotations

import asyncio
import contextlib
import queue as queue_module
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, cast

from reactivex import Observable, abc

from ..aio import run_sync
from ..errors import ConfigError
from ..tokens import Completion
from ._delivery import DEFAULT_MAX_PENDING, BroadcastIterator
from ._hub import Broadcast

__all__ = ["Sink", "stream_to", "stream_to_sync"]

Sink: TypeAlias = (
    Callable[[Any], object] | asyncio.Queue[Any] | queue_module.Queue[Any] | abc.ObserverBase[Any]
)
"""Where `stream_to` sends tokens: a callback, an asyncio / thread queue, or an observer."""


async def stream_to(
    source: Observable[Any] | Broadcast[Any],
    *sinks: Sink,
    policy: Literal["coalesce", "drop_newest", "drop_latest", "error"] = "coalesce",
    max_pending: int = DEFAULT_MAX_PENDING,
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
    policy: Literal["coalesce", "drop_newest", "drop_latest", "error"] = "coalesce",
    max_pending: int = DEFAULT_MAX_PENDING,
) -> Completion:
    """The blocking twin of `stream_to`, for scripts: runs its own loop (`rxtokens.aio.run_sync`).

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
    if not isinstance(source, (Observable, Broadcast)) and not callable(source):
        raise ConfigError(
            f"stream_to_sync() needs an Observable, a Broadcast or a function returning one, "
            f"got {type(source).__name__}"
        )

    async def main() -> Completion:
        target = source if isinstance(source, (Observable, Broadcast)) else source()
        return await stream_to(target, *sinks, policy=policy, max_pending=max_pending)

    return run_sync(main, "stream_to_sync()", "await stream_to(...)")
