"""Awaiting an Observable: `first`, `last`, `to_list`, `collect`, and the synchronous `run`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import SingleAssignmentDisposable

from ..completion import CompletionBuilder, attach_partial
from ..errors import (
    ConfigError,
    EmptyStreamError,
    StreamError,
    StreamTimeoutError,
)
from ..tokens import Completion, StreamToken
from ._flow import flow_control_scope

T = TypeVar("T")


_get_running_loop = asyncio._get_running_loop  # C-accelerated; None outside a running loop


# --- flow control ---------------------------------------------------------------------------


# --- awaitables -----------------------------------------------------------------------------


async def _consume(observable: Observable[T], on_item: Callable[[T], bool]) -> None:
    """Subscribe and wait for the end. `on_item` returns True to stop early."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    stopped = False

    def settle(error: BaseException | None) -> None:
        def apply() -> None:
            if done.done():
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        if _get_running_loop() is loop:
            apply()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(apply)

    def on_next(value: T) -> None:
        nonlocal stopped
        if stopped:
            return
        try:
            stop = on_item(value)
        except Exception as exc:
            stopped = True
            settle(exc)
            return
        if stop:
            stopped = True
            subscription.dispose()  # at once: a greedy source must not run on
            settle(None)

    def on_error(error: Exception) -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            settle(error)

    def on_completed() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            settle(None)

    subscription = SingleAssignmentDisposable()
    # unbounded consumers: never let an inherited FlowControl pause these sources
    with flow_control_scope(None):
        subscription.disposable = observable.subscribe(on_next, on_error, on_completed)
    try:
        await done
    finally:
        subscription.dispose()
        if done.done() and not done.cancelled():
            done.exception()  # mark as retrieved


_MISSING: Any = object()


async def first(observable: Observable[T], *, default: Any = _MISSING) -> T:
    """The first item (then the subscription is disposed).

    Raises:
        EmptyStreamError: the Observable completed empty and no `default` was given.
    """
    items: list[T] = []

    def take(value: T) -> bool:
        items.append(value)
        return True

    await _consume(observable, take)
    if items:
        return items[0]
    if default is _MISSING:
        raise EmptyStreamError("first(): the observable completed without emitting anything")
    return cast(T, default)


async def last(observable: Observable[T], *, default: Any = _MISSING) -> T:
    """The last item, once the Observable completes.

    Raises:
        EmptyStreamError: the Observable completed empty and no `default` was given.
    """
    box: list[T] = []

    def keep(value: T) -> bool:
        if box:
            box[0] = value
        else:
            box.append(value)
        return False

    await _consume(observable, keep)
    if box:
        return box[0]
    if default is _MISSING:
        raise EmptyStreamError("last(): the observable completed without emitting anything")
    return cast(T, default)


async def to_list(observable: Observable[T]) -> list[T]:
    """Every item, once the Observable completes."""
    items: list[T] = []

    def keep(value: T) -> bool:
        items.append(value)
        return False

    await _consume(observable, keep)
    return items


async def collect(
    observable: Observable[StreamToken],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 (on expiry the error carries .partial)
) -> Completion:
    """Await the final `Completion` of a token stream (what ``pipe(aggregate())`` emits).

    Args:
        observable: a token stream.
        timeout: seconds for the whole stream; on expiry the subscription is
            disposed and `StreamTimeoutError` (``phase="total"``) is raised with
            ``.partial``.

    Raises:
        StreamError: the stream failed; ``.partial`` holds everything received before.

    Example:
        >>> completion = await collect(provider_stream)  # doctest: +SKIP
        >>> completion.text  # doctest: +SKIP
    """
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ConfigError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not callable(getattr(observable, "subscribe", None)):
        raise ConfigError(
            f"collect() needs an Observable of tokens, got {type(observable).__name__}"
        )
    builder = CompletionBuilder()
    add = builder.add

    def keep(token: StreamToken) -> bool:
        add(token)
        return False

    try:
        if timeout is None:
            await _consume(observable, keep)
        else:
            async with asyncio.timeout(timeout):
                await _consume(observable, keep)
    except StreamError as exc:
        attach_partial(exc, builder)
        raise
    except TimeoutError:
        raise StreamTimeoutError(
            f"the stream did not complete within {timeout} s; raise the timeout or pass "
            "timeout=None (the text received so far is in .partial)",
            phase="total",
            timeout=cast(float, timeout),
            partial=builder.build(strict=False),
        ) from None
    return builder.build()


RunSource = (
    Observable[StreamToken]
    | Callable[[], Observable[StreamToken] | Awaitable[Observable[StreamToken] | Completion]]
)


def run(source: RunSource, *, timeout: float | None = None) -> Completion:
    """Stream to completion from synchronous code (a script) and return the `Completion`.

    Starts an event loop with `asyncio.run`. `source` is a token Observable,
    or a zero-argument function (sync or async) returning one (so that it is
    built inside the loop) or returning a `Completion` directly.

    Args:
        source: what to run.
        timeout: seconds for everything; `StreamTimeoutError` on expiry.

    Raises:
        ConfigError: called while an event loop is running in this thread
            (Jupyter, async code): use ``await collect(...)`` there.
        StreamError: the stream failed (with ``.partial``).

    Example:
        >>> completion = run(lambda: stream("openai:gpt-4o-mini", "Hi"))  # doctest: +SKIP
    """
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ConfigError(f"timeout must be a number >= 0 or None, got {timeout!r}")
    if not isinstance(source, abc.ObservableBase) and not callable(source):
        raise ConfigError(
            f"run() needs an Observable or a function returning one, got {type(source).__name__}"
        )

    async def main() -> Completion:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        target: Any = source
        if not isinstance(target, abc.ObservableBase):
            target = target()
            # an Observable is awaitable too (its last item): check for it first
            if not isinstance(target, abc.ObservableBase) and inspect.isawaitable(target):
                try:
                    async with asyncio.timeout_at(deadline):
                        target = await target
                except StreamError:
                    raise
                except TimeoutError:
                    raise StreamTimeoutError(
                        f"run() did not finish within {timeout} s",
                        phase="total",
                        timeout=cast(float, timeout),
                    ) from None
        if isinstance(target, Completion):
            return target
        if not isinstance(target, abc.ObservableBase):
            raise ConfigError(
                f"run(): the function returned {type(target).__name__}, "
                "expected an Observable or a Completion"
            )
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await collect(cast(Observable[StreamToken], target), timeout=remaining)

    return run_sync(main, "rxtokens.aio.run()", "await rxtokens.aio.collect(observable)")


def run_sync(main: Callable[[], Coroutine[Any, Any, T]], caller: str, instead: str) -> T:
    """The one synchronous runner: ``asyncio.run(main())``, refused inside a running loop.

    `run`, `rxtokens.broadcast.stream_to_sync`, ``PipelineSpec.run`` and the
    CLI are built on it.

    Args:
        main: builds the coroutine to run (inside the new loop).
        caller: the public function's name, for the error message.
        instead: what to await instead in async code, for the error message.

    Raises:
        ConfigError: an event loop is already running in this thread.

    Example:
        >>> async def answer() -> int:
        ...     return 42
        >>> run_sync(answer, "answer()", "await answer()")
        42
    """
    if _get_running_loop() is not None:
        raise ConfigError(
            f"{caller} cannot be called while an event loop is running in this thread "
            f"(Jupyter, async code); use `{instead}` instead"
        )
    return asyncio.run(main())
