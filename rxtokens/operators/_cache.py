"""The response cache as an operator: a miss streams live and records, a hit replays.

`cache_operator` is what ``ops.cache`` and `rxtokens.providers.CachedProvider` run.
Only an answer that completed is stored: an error (truncation included), a
subscription disposed before the end, an empty stream or a ``Finish("error")`` store
nothing. A store that fails (Redis unreachable, a locked file) is logged and treated
as a miss: the cache never fails a request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import CurrentThreadScheduler

from ..cache._store import (
    CacheEntry,
    CacheStore,
    check_ttl,
    encode_entry,
    parse_entry,
    row_token,
)
from ..errors import ConfigError
from ..tokens import Finish, StreamToken, Usage
from ._scheduling import clock_of, default_scheduler, schedule_at

__all__ = ["Pace", "cache_operator", "mark_cached"]

log = logging.getLogger("rxtokens.cache")

Pace = Literal["instant", "recorded"]
_PACES = ("instant", "recorded")


def mark_cached(tokens: Iterable[tuple[float, Any]], end: float) -> Iterator[tuple[float, Any]]:
    """The tokens a hit replays: `tokens` with every `Usage` marked ``cached`` (and a
    ``Usage(cached=True)`` at `end` when there was none).

    Example:
        >>> from rxtokens.tokens import TextDelta
        >>> list(mark_cached([(0.0, TextDelta("Hi"))], 0.1))[-1]
        (0.1, Usage(input_tokens=None, output_tokens=None, estimated=False, cached=True))
    """
    marked = False
    for offset, token in tokens:
        if type(token) is Usage:
            token = token._replace(cached=True)
            marked = True
        yield offset, token
    if not marked:
        yield end, Usage(cached=True)


def _storable(tokens: list[tuple[float, Any]]) -> bool:
    if not tokens:
        return False
    return not any(type(t) is Finish and t.reason == "error" for _, t in tokens)


def _lookup(store: CacheStore, key: str) -> tuple[list[Any], float] | None:
    try:
        data = store.get(key)
        return None if data is None else parse_entry(data)
    except Exception as exc:  # a failing store is a miss, never a failed request
        log.warning("cache lookup failed (streaming live): %s: %s", type(exc).__name__, exc)
        return None


def _store(store: CacheStore, key: str, entry: CacheEntry, ttl: float | None) -> None:
    try:
        store.put(key, encode_entry(entry), ttl)
    except Exception as exc:
        log.warning("cache store failed (answer not kept): %s: %s", type(exc).__name__, exc)


def _record(
    source: Observable[StreamToken],
    store: CacheStore,
    key: str,
    ttl: float | None,
    observer: abc.ObserverBase[StreamToken],
    scheduler: abc.SchedulerBase | None,
) -> abc.DisposableBase:
    clock = clock_of(scheduler) if scheduler is not None else time.monotonic
    start = clock()
    tokens: list[tuple[float, Any]] = []

    def on_next(token: StreamToken) -> None:
        tokens.append((clock() - start, token))
        observer.on_next(token)

    def on_completed() -> None:
        end = clock() - start
        observer.on_completed()  # first: storing never delays the end of the answer
        if _storable(tokens):
            _store(store, key, CacheEntry(tuple(tokens), end), ttl)

    return source.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)


def _replay_instant(
    tokens: Iterator[tuple[float, Any]],
    observer: abc.ObserverBase[StreamToken],
    scheduler: abc.SchedulerBase,
) -> abc.DisposableBase:
    disposed = False

    def run(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        try:
            for _, token in tokens:
                if disposed:
                    return
                observer.on_next(token)
        except ConfigError as exc:  # a corrupt row
            observer.on_error(exc)
            return
        if not disposed:
            observer.on_completed()

    def dispose() -> None:
        nonlocal disposed
        disposed = True

    return CompositeDisposable(Disposable(dispose), scheduler.schedule(run))


def _replay_recorded(
    tokens: Iterator[tuple[float, Any]],
    end: float,
    observer: abc.ObserverBase[StreamToken],
    scheduler: abc.SchedulerBase,
) -> abc.DisposableBase:
    clock = clock_of(scheduler)
    start = clock()
    timer = SerialDisposable()

    def step(last: float) -> None:
        try:
            offset, token = next(tokens)
        except StopIteration:
            offset, token = max(end, last), None
        except ConfigError as exc:  # a corrupt row
            observer.on_error(exc)
            return

        def fire(_due: float) -> None:
            if token is None:
                observer.on_completed()
            else:
                observer.on_next(token)
                step(offset)

        timer.disposable = schedule_at(scheduler, start + offset, clock(), fire)

    step(0.0)
    return timer


def cache_operator(
    store: CacheStore,
    key: str,
    pace: Pace = "instant",
    ttl: float | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """The operator behind ``ops.cache`` (see its docstring)."""
    if not isinstance(key, str) or not key:
        raise ConfigError(f"key must be a non-empty string (e.g. cache_key(...)), got {key!r}")
    if pace not in _PACES:
        raise ConfigError(f"pace must be 'instant' or 'recorded', got {pace!r}")
    for name in ("get", "put"):
        if not callable(getattr(store, name, None)):
            raise ConfigError(f"store must be a cache store (get/put/delete/clear), got {store!r}")
    ttl = check_ttl(ttl)

    def operator(source: Observable[StreamToken]) -> Observable[StreamToken]:
        def subscribe(
            observer: abc.ObserverBase[StreamToken],
            scheduler_: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            sched = scheduler or scheduler_
            found = _lookup(store, key)
            if found is None:
                return _record(source, store, key, ttl, observer, sched)
            rows, end = found
            tokens = mark_cached((row_token(row) for row in rows), end)
            if pace == "recorded":
                return _replay_recorded(tokens, end, observer, sched or default_scheduler())
            return _replay_instant(tokens, observer, sched or CurrentThreadScheduler.singleton())

        return Observable(subscribe)

    return operator
