"""A stateful token processor as a ReactiveX operator (shared by the filter operators).

A processor is a plain object with ``feed(item) -> Sequence`` and
``close() -> Sequence``; `processor_operator` creates one per subscription, so
no state leaks between subscriptions. A processor may raise `StopStream` to
end the stream cleanly: its ``tokens`` are emitted, the output completes and
the upstream subscription is disposed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import SingleAssignmentDisposable

__all__ = ["FailStream", "Processor", "StopStream", "processor_operator"]

_A = TypeVar("_A")
_B = TypeVar("_B")


class Processor(Protocol):
    """Per-subscription state of an operator: items in, lists of items out."""

    def feed(self, item: Any) -> Sequence[Any]: ...  # pragma: no cover

    def close(self) -> Sequence[Any]: ...  # pragma: no cover


class StopStream(Exception, Generic[_B]):
    """Raised by a processor to emit `tokens`, complete, and dispose upstream."""

    def __init__(self, tokens: Sequence[_B]) -> None:
        super().__init__("stream stopped")
        self.tokens = tokens


class FailStream(Exception, Generic[_B]):
    """Raised by a processor to emit `tokens`, then fail with `error`, and dispose upstream.

    For a processor that decoded some tokens of an item before failing on the rest.
    """

    def __init__(self, error: Exception, tokens: Sequence[_B]) -> None:
        super().__init__(str(error))
        self.error = error
        self.tokens = tokens


def processor_operator(
    factory: Callable[[], Processor],
) -> Callable[[Observable[_A]], Observable[_B]]:
    """An operator running one ``factory()`` processor per subscription.

    Exceptions from ``feed`` / ``close`` go to ``on_error``; after an error or
    a `StopStream` the upstream subscription is disposed and later items are
    ignored.
    """

    def _operator(source: Observable[_A]) -> Observable[_B]:
        def subscribe(
            observer: abc.ObserverBase[_B], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            processor = factory()
            feed = processor.feed
            emit = observer.on_next
            upstream = SingleAssignmentDisposable()
            stopped = False

            def stop(error: Exception | None, tokens: Sequence[Any]) -> None:
                nonlocal stopped
                stopped = True
                upstream.dispose()
                for token in tokens:
                    emit(token)
                if error is None:
                    observer.on_completed()
                else:
                    observer.on_error(error)

            def on_next(item: _A) -> None:
                if stopped:
                    return
                try:
                    out = feed(item)
                except StopStream as stop_request:
                    stop(None, stop_request.tokens)
                    return
                except FailStream as failure:
                    stop(failure.error, failure.tokens)
                    return
                except Exception as exc:
                    stop(exc, [])
                    return
                for token in out:
                    emit(token)

            def on_error(error: Exception) -> None:
                if not stopped:
                    stop(error, [])

            def on_completed() -> None:
                if stopped:
                    return
                try:
                    out = processor.close()
                except StopStream as stop_request:
                    out = stop_request.tokens
                except Exception as exc:
                    stop(exc, [])
                    return
                stop(None, out)

            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler
            )
            return upstream

        return reactivex.create(subscribe)

    return _operator
