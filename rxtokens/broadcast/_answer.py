"""The final answer of a `Broadcast`: built with the shared `CompletionBuilder`, on demand.

When the broadcast's log keeps every token (``replay="all"``), nothing is
built while tokens flow: the builder catches up from the log when somebody
asks (`Broadcast.final`, `Broadcast.completion`, `Broadcast.completion_so_far`,
the ``.partial`` of an error). A log that forgets tokens (``replay="none"`` or
``N``) cannot be read back, so the builder is fed as tokens arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from reactivex import abc

from ..completion import CompletionBuilder, attach_partial
from ..errors import ConfigError
from ..tokens import Completion
from ._delivery import _reject, _resolve

__all__ = ["Answer"]

logger = logging.getLogger("rxtokens.broadcast")


class Answer:
    """The final answer and who waits for it (every method is called under the broadcast lock).

    Args:
        tokens: the log's list of every token, read on demand; None: the
            caller feeds each token to `feed` as it arrives.
    """

    __slots__ = (
        "_builder",
        "_fed",
        "_futures",
        "_listeners",
        "_refused",
        "_result",
        "_tokens",
        "feed",
    )

    def __init__(self, tokens: list[Any] | None) -> None:
        self._tokens = tokens
        self._fed = 0  # how much of `tokens` the builder has seen
        self._builder: CompletionBuilder | None = None
        self._refused: ConfigError | None = None  # an item that is not a token
        self.feed: Callable[[Any], None] | None = None
        if tokens is None:
            self._builder = CompletionBuilder()
            self.feed = self._builder.add
        self._result: tuple[Completion | None, Exception | None] | None = None
        self._listeners: list[abc.ObserverBase[Completion]] = []
        self._futures: dict[asyncio.AbstractEventLoop, asyncio.Future[Completion]] = {}

    @property
    def from_log(self) -> bool:
        """The answer is read from a log that keeps every token (not fed as they arrive)."""
        return self._tokens is not None

    def builder(self) -> CompletionBuilder:
        """The builder, caught up with every token so far."""
        builder = self._builder
        if builder is None:
            builder = self._builder = CompletionBuilder()
        tokens = self._tokens
        if tokens is not None and self._fed < len(tokens):
            fed, self._fed = self._fed, len(tokens)
            try:
                builder.add_all(tokens[fed:])
            except ConfigError as exc:
                self.refuse(exc)
        return builder

    def refuse(self, error: ConfigError) -> None:
        """An item that is not a token arrived: the answer fails with `error` (the stream
        itself goes on: a broadcast may carry anything, only its answer needs tokens)."""
        if self._refused is None:
            self._refused = error
        self.feed = None

    def so_far(self) -> Completion:
        """The completion of everything so far (lenient), or the final one once built."""
        result = self._result
        if result is not None and result[0] is not None:
            return result[0]
        return self.builder().build(strict=False)

    def attach_partial(self, error: Exception) -> None:
        """Give a `StreamError` the completion so far as ``.partial`` (never raises)."""
        attach_partial(error, self.builder())

    def result(self, end: Exception | None) -> tuple[Completion | None, Exception | None]:
        """The final answer of a stream that ended with `end` (built once, when first asked)."""
        if self._result is None:
            if end is None and self._refused is None:
                self.builder()  # (catching up may find an item that is not a token)
            if end is None and self._refused is not None:
                self._result = (None, self._refused)
            elif end is not None:
                self._result = (None, end)
            else:
                try:
                    self._result = (self.builder().build(), None)
                except Exception as exc:  # malformed tool arguments: only the answer fails
                    self._result = (None, exc)
        return self._result

    def settle(self, end: Exception | None) -> Callable[[], None]:
        """The stream ended: notify the listeners now; returns what settles the futures.

        The returned callable must be called outside the broadcast lock.
        """
        listeners, self._listeners = self._listeners, []
        futures = list(self._futures.items())
        if not listeners and not futures:
            return _nothing
        completion, error = self.result(end)
        for listener in listeners:
            notify(listener, completion, error)

        def settle_futures() -> None:
            for loop, future in futures:
                _settle(loop, future, completion, error)

        return settle_futures

    def future(self, loop: asyncio.AbstractEventLoop, end: tuple[Exception | None] | None) -> Any:
        """The future of `loop` (settled at once when the stream already ended with ``end[0]``)."""
        future = self._futures.get(loop)
        if future is None:
            future = self._futures[loop] = loop.create_future()
            if end is not None:
                completion, error = self.result(end[0])
                if completion is not None:
                    future.set_result(completion)
                else:
                    assert error is not None
                    future.set_exception(error)
        return future

    def listen(self, observer: abc.ObserverBase[Completion]) -> None:
        """`observer` gets the answer at the end."""
        self._listeners.append(observer)

    def unlisten(self, observer: abc.ObserverBase[Completion]) -> bool:
        """Forget `observer`; False when it was not listening."""
        if observer in self._listeners:
            self._listeners.remove(observer)
            return True
        return False


def _nothing() -> None:
    return None


def notify(
    observer: abc.ObserverBase[Completion], completion: Completion | None, error: Exception | None
) -> None:
    """Deliver the answer (or the error) to an observer of `Broadcast.completion`."""
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
            _reject(future, error)
        return
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody can await
        if completion is not None:
            loop.call_soon_threadsafe(_resolve, future, completion)
        else:
            loop.call_soon_threadsafe(_reject, future, error)
