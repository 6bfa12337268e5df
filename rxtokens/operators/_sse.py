"""Implementation of `parse_sse()`: bytes in, `SseEvent` out, one `SseParser` per subscription."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable

from ..sse import SseEvent, SseParser
from ._processor import processor_operator


class SseOperator:
    """The operator `parse_sse_` returns; `sse_decoder` reads its `max_event_bytes`."""

    __slots__ = ("_operator", "max_event_bytes")

    def __init__(self, max_event_bytes: int | None) -> None:
        self.max_event_bytes = max_event_bytes
        self._operator: Callable[[Observable[bytes]], Observable[SseEvent]] = processor_operator(
            lambda: SseParser(max_event_bytes=max_event_bytes)
        )

    def __call__(self, source: Observable[bytes]) -> Observable[SseEvent]:
        return self._operator(source)


def parse_sse_(max_event_bytes: int | None = None) -> SseOperator:
    """See `rxtokens.operators.parse_sse`.

    `SseParser` already has the processor shape (``feed(bytes) -> list``,
    ``close() -> list``): a feed error (a non-bytes item, an oversized event)
    fails the stream and disposes the source.
    """
    return SseOperator(max_event_bytes)
