"""Implementation of `parse_sse()`: bytes in, `SseEvent` out, one `SseParser` per subscription."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable

from ..sse import SseEvent, SseParser
from ._processor import processor_operator


def parse_sse_(
    max_event_bytes: int | None = None,
) -> Callable[[Observable[bytes]], Observable[SseEvent]]:
    """See `rxtokens.operators.parse_sse`.

    `SseParser` already has the processor shape (``feed(bytes) -> list``,
    ``close() -> list``): a feed error (a non-bytes item, an oversized event)
    fails the stream and disposes the source.
    """
    return processor_operator(lambda: SseParser(max_event_bytes=max_event_bytes))
