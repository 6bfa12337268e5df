"""Racing: `first_of` keeps the first of several sources to produce content.

The other sources are disposed the moment one of them emits a content token
(`CONTENT_KINDS`); tokens that arrive before (`Usage` ...) are held per source
and only the winner's are passed on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable

from ..errors import ConfigError
from ._kinds import CONTENT_KINDS

__all__ = ["first_of_observable"]


def first_of_observable(sources: Iterable[Observable[Any]]) -> Observable[Any]:
    """Implementation of `rxtokens.operators.first_of` (see there)."""
    candidates = list(sources)
    if not candidates:
        raise ConfigError("first_of needs at least one source")
    for candidate in candidates:
        if not isinstance(candidate, Observable):
            raise ConfigError(f"first_of takes Observables, got {candidate!r}")

    def subscribe(
        observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        lock = threading.RLock()
        n = len(candidates)
        subscriptions = [SingleAssignmentDisposable() for _ in range(n)]
        held: list[list[Any]] = [[] for _ in range(n)]  # non-content tokens before the race ends
        ended: list[Exception | bool | None] = [False] * n  # False: running; None: completed
        winner = -1
        done = False

        def elect(i: int) -> None:
            nonlocal winner
            winner = i
            for j, subscription in enumerate(subscriptions):
                if j != i:
                    subscription.dispose()
            early = held[i]
            held.clear()  # the race is over: free what the losers held
            for token in early:
                observer.on_next(token)

        def settle_without_winner() -> None:
            """Every source ended before any content: the first that completed wins, else fail."""
            nonlocal done
            done = True
            for i, outcome in enumerate(ended):
                if outcome is None:
                    elect(i)
                    observer.on_completed()
                    return
            errors = [e for e in ended if isinstance(e, Exception)]
            observer.on_error(errors[-1])

        def make_observer(i: int) -> tuple[Any, Any, Any]:
            def on_next(token: Any) -> None:
                with lock:
                    if done:
                        return
                    if winner == i:
                        observer.on_next(token)
                    elif winner < 0:
                        if type(token) in CONTENT_KINDS:
                            elect(i)
                            observer.on_next(token)
                        else:
                            held[i].append(token)

            def on_error(error: Exception) -> None:
                nonlocal done
                with lock:
                    if done:
                        return
                    if winner == i:
                        done = True
                        observer.on_error(error)
                    elif winner < 0:
                        ended[i] = error
                        held[i] = []
                        if all(e is not False for e in ended):
                            settle_without_winner()

            def on_completed() -> None:
                nonlocal done
                with lock:
                    if done:
                        return
                    if winner == i:
                        done = True
                        observer.on_completed()
                    elif winner < 0:
                        ended[i] = None
                        if all(e is not False for e in ended):
                            settle_without_winner()

            return on_next, on_error, on_completed

        for i, candidate in enumerate(candidates):
            if done or (winner >= 0 and winner != i):
                break
            on_next, on_error, on_completed = make_observer(i)
            subscriptions[i].disposable = candidate.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler_
            )

        def cancel() -> None:
            nonlocal done
            with lock:
                done = True

        return CompositeDisposable(*subscriptions, Disposable(cancel))

    return Observable(subscribe)
