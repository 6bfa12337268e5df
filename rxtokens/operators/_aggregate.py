"""Aggregation: the final `Completion` of a token stream.

`aggregate_operator` wraps `rxtokens.completion.CompletionBuilder` (the pure,
incremental core, re-exported here) as a ReactiveX operator.
"""

from __future__ import annotations

from collections.abc import Callable

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import SingleAssignmentDisposable

from ..completion import AnswerSource, CompletionBuilder, attach_partial
from ..tokens import Completion, StreamToken

__all__ = ["CompletionBuilder", "aggregate_operator"]


def aggregate_operator() -> Callable[[Observable[StreamToken]], Observable[Completion]]:
    """Implementation of `rxtokens.operators.aggregate` (see there)."""

    def _aggregate(source: Observable[StreamToken]) -> Observable[Completion]:
        shared = source if isinstance(source, AnswerSource) else None

        def subscribe(
            observer: abc.ObserverBase[Completion], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if shared is not None:  # a Broadcast's tokens: its one answer, when it is ours
                answer: abc.DisposableBase | None = shared.subscribe_answer(observer, scheduler)
                if answer is not None:
                    return answer
            builder = CompletionBuilder()
            add = builder.add
            stopped = False

            def on_next(token: StreamToken) -> None:
                # no `stopped` check on this per-token path: after a terminal notification
                # the source's observer is stopped, and tokens added late are never built
                nonlocal stopped
                try:
                    add(token)
                except Exception as exc:  # a malformed token (wrong field types)
                    if stopped:
                        return
                    stopped = True
                    subscription.dispose()
                    observer.on_error(exc)

            def on_error(error: Exception) -> None:
                nonlocal stopped
                if stopped:
                    return
                stopped = True
                observer.on_error(attach_partial(error, builder))

            def on_completed() -> None:
                nonlocal stopped
                if stopped:
                    return
                stopped = True
                try:
                    completion = builder.build()
                except Exception as exc:
                    observer.on_error(exc)
                    return
                observer.on_next(completion)
                observer.on_completed()

            subscription = SingleAssignmentDisposable()
            subscription.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler
            )
            return subscription

        return reactivex.create(subscribe)

    return _aggregate
