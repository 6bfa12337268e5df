"""The server's own SSE events: how `rxtokens.server` writes a stream and ``sse()`` reads it.

One stream of ``GET /v1/streams/{id}/events`` (UTF-8, LF line ends; the SSE
syntax is https://html.spec.whatwg.org/multipage/server-sent-events.html)::

    retry: 2000                      first: the reconnection delay in ms

    event: text                      one event per token: its type ...
    id: 1                            ... its sequence number (1, 2, ...) ...
    data: {"type":"text",...}        ... and `rxtokens.tokens.token_to_json`

    : ping                           a comment after `heartbeat` seconds of silence

    event: done                      the end, id = the last seq + 1,
    id: 8                            data = `Completion.to_dict` as JSON
    data: {"text":"...",...}

    event: error                     or the failure (same id rule),
    id: 8                            data = {"type", "message", "partial"}
    data: {"type":"ProviderError","message":"...","partial":{...}}

`decode_event` turns the `SseEvent` s of such a stream back into tokens, `Done`
and `Failed`; the page (``rxtokens/static/events.js``) reads the same events, and
``tests/test_formats_events.py`` proves both read the same bytes alike.

Example:
    >>> from rxtokens.sse import SseParser
    >>> from rxtokens.tokens import Completion, TextDelta
    >>> wire = retry_block(2000) + token_event(1, TextDelta("Hi")) + PING
    >>> wire += done_event(2, Completion(text="Hi"))
    >>> decoded = [decode_event(e) for e in SseParser().feed(wire.encode())]
    >>> decoded[0], decoded[1].completion().text
    (TextDelta(text='Hi', index=0), 'Hi')
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, NamedTuple

from ..errors import ConfigError, ProviderError, StreamDecodeError
from ..sse import SseEvent
from ..tokens import TOKEN_TYPES, Completion, token_from_json, token_to_json

__all__ = [
    "DONE",
    "ERROR",
    "PING",
    "Done",
    "Failed",
    "decode_event",
    "done_event",
    "error_event",
    "retry_block",
    "token_event",
]

DONE = "done"
"""The event name of a stream's normal end."""

ERROR = "error"
"""The event name of a stream's failure (including cancellation, type ``cancelled``)."""

PING = ": ping\n\n"
"""The comment that keeps an idle connection open (clients ignore it)."""


def retry_block(retry_ms: int) -> str:
    """The ``retry:`` block sent first: the client's reconnection delay in ms.

    Example:
        >>> retry_block(2000)
        'retry: 2000\\n\\n'
    """
    return f"retry: {retry_ms}\n\n"


def token_event(seq: int, token: Any) -> str:
    """One token as an event: ``event:`` its type, ``id:`` `seq`, ``data:`` its JSON.

    Example:
        >>> from rxtokens.tokens import Finish
        >>> token_event(3, Finish("stop"))
        'event: finish\\nid: 3\\ndata: {"type":"finish","reason":"stop","index":0}\\n\\n'
    """
    return f"event: {token.type}\nid: {seq}\ndata: {token_to_json(token)}\n\n"


def done_event(seq: int, completion: Completion) -> str:
    """The ``done`` event (`seq` is the last token's + 1): the final `Completion` as JSON.

    Example:
        >>> done_event(2, Completion(text="Hi")).splitlines()[:2]
        ['event: done', 'id: 2']
    """
    payload = json.dumps(completion.to_dict(), ensure_ascii=False)
    return f"event: {DONE}\nid: {seq}\ndata: {payload}\n\n"


def error_event(seq: int, kind: str, message: str, partial: Completion) -> str:
    """The ``error`` event: the error's type and message, and what had arrived (`partial`).

    Example:
        >>> error_event(2, "cancelled", "stopped", Completion()).splitlines()[:2]
        ['event: error', 'id: 2']
    """
    body = {"type": kind, "message": message, "partial": partial.to_dict()}
    return f"event: {ERROR}\nid: {seq}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"


class Done(NamedTuple):
    """A ``done`` event: the stream ended normally (`data`: the final answer's JSON)."""

    data: str

    def completion(self) -> Completion:
        """The final `Completion` the server sent.

        Raises:
            StreamDecodeError: the data is not a Completion's JSON.
        """
        try:
            return Completion.from_dict(json.loads(self.data))
        except (ValueError, TypeError, KeyError, AttributeError, ConfigError) as exc:
            raise StreamDecodeError(
                f"sse: the done event is not a Completion: {exc}; data {self.data[:200]!r}",
                provider="sse",
            ) from None


class Failed(NamedTuple):
    """An ``error`` event: the remote stream failed (or was cancelled: ``cancelled``)."""

    error_type: str | None
    message: str
    partial: Completion | None

    def exception(self) -> ProviderError:
        """The `ProviderError` a client raises for it (with the server's partial answer)."""
        kind = self.error_type
        prefix = f"remote stream failed: {kind}: " if kind else "remote stream failed: "
        return ProviderError(
            prefix + self.message, error_type=kind, provider="sse", partial=self.partial
        )


def decode_event(event: SseEvent) -> Any:
    """One event of an rxtokens stream: a token, `Done`, `Failed`, or None (not ours: skip).

    Lenient with ``error`` events (a plain-text body is the message), strict with
    tokens.

    Raises:
        StreamDecodeError: a token event whose data is not that token's JSON.

    Example:
        >>> decode_event(SseEvent("error", '{"type": "cancelled", "message": "bye"}'))
        Failed(error_type='cancelled', message='bye', partial=None)
        >>> decode_event(SseEvent("message", "hello")) is None
        True
    """
    kind = event.event
    if kind == DONE:
        return Done(event.data)
    if kind == ERROR:
        return _failed(event.data)
    if kind in TOKEN_TYPES:
        try:
            return token_from_json(event.data)
        except (ValueError, TypeError, ConfigError) as exc:
            raise StreamDecodeError(
                f"sse: event {event.event!r} (id {event.id!r}) is not a token: {exc}; "
                f"data {event.data[:200]!r}",
                provider="sse",
            ) from None
    return None  # other events ("message" ...) are not part of the format


def _failed(data: str) -> Failed:
    try:
        body = json.loads(data)
    except ValueError:
        body = {"message": data}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    partial = None
    if isinstance(body.get("partial"), dict):
        with contextlib.suppress(Exception):
            partial = Completion.from_dict(body["partial"])
    kind = body.get("type")
    message = str(body.get("message") or "the remote stream failed")
    return Failed(str(kind) if kind is not None else None, message, partial)
