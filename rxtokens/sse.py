"""Server-sent events: `SseEvent` and the incremental `SseParser`.

(The parser follows the WHATWG HTML "event stream interpretation" algorithm:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SseEvent", "SseParser"]


class SseEvent(NamedTuple):
    """One dispatched server-sent event.

    Attributes:
        event: the event type (``"message"`` when the block had no ``event`` field).
        data: the data buffer, lines joined with LF, final LF removed.
        id: the last event ID in effect when the event was dispatched.
        retry: the reconnection time from a valid ``retry`` field in the same block, else None.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SseParser:
    """Placeholder until the parser lands (issue 2)."""

    def feed(self, data: bytes) -> list[SseEvent]:
        raise NotImplementedError

    def close(self) -> list[SseEvent]:
        raise NotImplementedError
