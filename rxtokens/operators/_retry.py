"""Retrying a provider request that failed before its first token.

A request is re-sent (re-subscribed) only when nothing was delivered downstream yet and
the failure is transient: `RateLimitError`, a 5xx `ProviderHTTPError`,
`ConnectionLostError`, or a connect-phase `StreamTimeoutError`. Once a token has been
delivered the error passes through unchanged: re-sending would duplicate text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from ..errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    ProviderHTTPError,
    RateLimitError,
    StreamTimeoutError,
    TruncatedStreamError,
)
from ._scheduling import default_scheduler

__all__ = ["backoff_delay", "is_retryable", "retry_with_backoff_operator"]

_T = TypeVar("_T")


def is_retryable(error: BaseException) -> bool:
    """Whether `error` is a transient failure worth re-sending the request for.

    Example:
        >>> is_retryable(RateLimitError("slow down", status=429))
        True
        >>> is_retryable(ProviderHTTPError("bad request", status=400))
        False
    """
    if isinstance(error, AuthenticationError):
        return False
    if isinstance(error, RateLimitError):
        return True
    if isinstance(error, ProviderHTTPError):
        return error.status >= 500
    if isinstance(error, ConnectionLostError | TruncatedStreamError):
        return True  # (the operator retries only while no token was delivered)
    return isinstance(error, StreamTimeoutError) and error.phase in ("connect", "first_token")


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """The exponential delay before retry number `attempt` (1-based), capped at `max_delay`.

    Example:
        >>> [backoff_delay(a, 0.5, 3.0) for a in (1, 2, 3, 4)]
        [0.5, 1.0, 2.0, 3.0]
    """
    return float(min(max_delay, base_delay * (2 ** (attempt - 1))))


def retry_with_backoff_operator(
    max_attempts: int = 3,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
    *,
    jitter: float = 0.0,
    retry_if: Callable[[BaseException], bool] = is_retryable,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """The implementation of `rxtokens.operators.retry_with_backoff` (see there)."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    for name, value in (("base_delay", base_delay), ("max_delay", max_delay), ("jitter", jitter)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, got {value!r}")
    if not base_delay >= 0:
        raise ConfigError(f"base_delay must be >= 0, got {base_delay!r}")
    if not max_delay >= base_delay:
        raise ConfigError(f"max_delay must be >= base_delay, got {max_delay!r}")
    if not 0 <= jitter <= 1:
        raise ConfigError(f"jitter must be between 0 and 1, got {jitter!r}")

    def operator(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            timer_scheduler = scheduler or scheduler_ or default_scheduler()
            current = SerialDisposable()
            timer = SerialDisposable()
            state: dict[str, Any] = {"attempt": 1, "delivered": False, "disposed": False}

            def on_next(value: _T) -> None:
                state["delivered"] = True
                observer.on_next(value)

            def on_error(error: Exception) -> None:
                attempt: int = state["attempt"]
                if state["delivered"] or attempt >= max_attempts or state["disposed"]:
                    observer.on_error(error)
                    return
                try:
                    retry = retry_if(error)
                except Exception as exc:  # a user predicate failed
                    observer.on_error(exc)
                    return
                if not retry:
                    observer.on_error(error)
                    return
                delay = backoff_delay(attempt, base_delay, max_delay)
                if jitter:
                    delay *= 1 - jitter * random.random()
                retry_after = getattr(error, "retry_after", None)
                if retry_after is not None:
                    if retry_after > max_delay:
                        observer.on_error(error)  # the server wants a longer wait than allowed
                        return
                    delay = max(delay, float(retry_after))
                state["attempt"] = attempt + 1

                def resubscribe(_: abc.SchedulerBase, __: Any = None) -> None:
                    if not state["disposed"]:
                        attempt_once()

                timer.disposable = timer_scheduler.schedule_relative(delay, resubscribe)

            def attempt_once() -> None:
                current.disposable = source.subscribe(
                    on_next, on_error, observer.on_completed, scheduler=scheduler_
                )

            def dispose() -> None:
                state["disposed"] = True

            attempt_once()
            return CompositeDisposable(current, timer, Disposable(dispose))

        return Observable(subscribe)

    return operator
