"""Implementation of `parse_sse()`: bytes in, `SseEvent` out, one `SseParser` per subscription."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable, abc

from ..sse import SseEvent, SseParser


def parse_sse_(
    max_event_bytes: int | None = None,
) -> Callable[[Observable[bytes]], Observable[SseEvent]]:
    """See `rxtokens.operators.parse_sse`."""

    def _parse_sse(source: Observable[bytes]) -> Observable[SseEvent]:
        def subscribe(
            observer: abc.ObserverBase[SseEvent],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            # Per-subscription state: a fresh parser for every subscriber.
            parser = SseParser(max_event_bytes=max_event_bytes)
            feed = parser.feed
            emit = observer.on_next

            def on_next(chunk: bytes) -> None:
                try:
                    events = feed(chunk)
                except Exception as error:  # a non-bytes item: fail the stream, not the caller
                    observer.on_error(error)
                    return
                for event in events:
                    emit(event)

            def on_completed() -> None:
                if parser.closed:  # it already failed the stream (an oversized event)
                    return
                for event in parser.close():
                    emit(event)
                observer.on_completed()

            return source.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _parse_sse
