"""Implementation of `parse_aws_eventstream()`: bytes in, `EventStreamMessage` out."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable

from ..eventstream import DEFAULT_MAX_MESSAGE_BYTES, EventStreamMessage, EventStreamParser
from ._processor import processor_operator


def parse_aws_eventstream_(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Callable[[Observable[bytes]], Observable[EventStreamMessage]]:
    """See `rxtokens.operators.parse_aws_eventstream`.

    `EventStreamParser` has the processor shape (``feed(bytes) -> list``,
    ``close() -> list``): one parser per subscription; a decode error (or a
    non-bytes item) fails the stream and disposes the source; bytes left in
    an unfinished message at completion fail it with `TruncatedStreamError`.
    """
    EventStreamParser(max_message_bytes=max_message_bytes)  # validate eagerly
    return processor_operator(lambda: EventStreamParser(max_message_bytes=max_message_bytes))
