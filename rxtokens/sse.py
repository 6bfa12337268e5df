"""Server-sent events: `SseEvent` and the incremental `SseParser`.

The parser follows the WHATWG HTML "event stream interpretation" algorithm:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

from .errors import ConfigError, StreamDecodeError

__all__ = ["SseEvent", "SseParser"]


class SseEvent(NamedTuple):
    """One dispatched server-sent event.

    Attributes:
        event: the event type (``"message"`` when the block had no ``event`` field).
        data: the data buffer, lines joined with LF, final LF removed.
        id: the last event ID in effect when the event was dispatched.
        retry: the reconnection time from a valid ``retry`` field in the same block, else None.

    Example:
        >>> SseParser().feed(b"event: ping\\ndata: hi\\n\\n")
        [SseEvent(event='ping', data='hi', id='', retry=None)]
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


_BOM = b"\xef\xbb\xbf"
DATA_VALUES = 0
"""`SseParser.feed_split` shape: data strings of ``"message"`` events."""
FIELD_PAIRS = 1
"""`SseParser.feed_split` shape: ``(event_type, separator, data)`` triples."""
EVENTS = 2
"""`SseParser.feed_split` shape: `SseEvent` s."""
# ``_new_tuple(SseEvent, (event, data, id, retry))`` builds an SseEvent without the
# Python-level ``__new__`` of a NamedTuple (about twice as fast; events are made per token).
_new_tuple = tuple.__new__
_second = itemgetter(1)


class SseParser:
    """An incremental, pure parser of a ``text/event-stream`` byte stream.

    It implements the WHATWG HTML "event stream interpretation" algorithm
    (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
    exactly, and chunk boundaries anywhere (inside a CRLF, a UTF-8 sequence or the BOM) never
    change the result:

    - The stream is decoded as UTF-8; invalid bytes become U+FFFD exactly as
      ``whole_stream.decode("utf-8", "replace")`` does, and a character split across two
      chunks decodes correctly. One leading BOM (``EF BB BF``) is stripped at the very start
      of the stream only; a later U+FEFF is content.
    - Lines end with CRLF, LF or CR. A CR at the end of one chunk and an LF at the start of
      the next are one line ending.
    - A line starting with ``:`` is a comment and is ignored. Otherwise the line is split at
      its first colon into field name and value, and one space after the colon (if present)
      is removed from the value; a line without a colon is a field name with an empty value.
    - ``data`` appends the value and an LF to the data buffer; ``event`` sets the event type;
      ``id`` sets the last event ID (an empty value resets it to ``""``; a value containing
      U+0000 is ignored) and it persists across events; ``retry`` sets the reconnection time
      only when the value is non-empty and all ASCII digits. Other field names are ignored.
      Field names are case-sensitive.
    - An empty line dispatches: when the data buffer is empty nothing is emitted, otherwise
      an `SseEvent` with the final LF removed from the data, the event type (``"message"``
      when empty) and the last event ID; ``SseEvent.retry`` is the valid ``retry`` value seen
      in that same block, else None. Data, event type and retry are then reset.
    - At `close()` (end of stream) a final block that is not terminated by an empty line is
      discarded, as the spec requires.

    Performance: the work per byte is a few ``find``/``split``/``decode`` calls, never a
    Python loop per character. CRs are normalised to LF with ``bytes.replace`` (only in
    chunks that have one), the complete blocks of a chunk are cut at its last blank line and
    decoded in one call (CR and LF always end an invalid UTF-8 sequence, so this equals the
    whole-stream decode), and a run of blocks that are all one ``data: ...`` line (OpenAI
    streams) or all ``event: ...`` + ``data: ...`` (Anthropic streams) becomes events with
    one ``str.split``, without a loop per line. Other shapes take the spec's line loop.

    Example:
        >>> parser = SseParser()
        >>> parser.feed(b"event: greeting\\ndata: hel")
        []
        >>> for event in parser.feed(b"lo\\nid: 7\\n\\ndata: [DONE]\\r\\n\\r\\ndata: cut"):
        ...     print(event)
        SseEvent(event='greeting', data='hello', id='7', retry=None)
        SseEvent(event='message', data='[DONE]', id='7', retry=None)
        >>> parser.close()  # the unterminated "data: cut" block is discarded
        []
    """

    __slots__ = (
        "_closed",
        "_guard",
        "_head",
        "_last_id",
        "_limit",
        "_more",
        "_more_size",
        "_retry",
        "_skip_lf",
        "_tail",
    )

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        """Create a parser for one stream.

        Args:
            max_event_bytes: fail with `StreamDecodeError` when an unterminated block
                (an event still being received) grows beyond this many bytes; None: no
                limit (the spec sets none). A defence against a server that never sends
                the blank line that ends an event.
        """
        if max_event_bytes is not None and (
            not isinstance(max_event_bytes, int) or max_event_bytes < 1
        ):
            raise ConfigError(f"max_event_bytes must be a positive int, got {max_event_bytes!r}")
        self._limit = max_event_bytes
        # The first bytes of the stream while fewer than 3 have arrived and they could still
        # be a BOM; None once the BOM question is settled.
        self._head: bytes | None = b""
        # The previous chunk ended with CR: an LF at the start of the next chunk is dropped.
        self._skip_lf = False
        # The LF-normalised bytes after the last complete block (an incomplete block):
        # `_tail`, then `_more` (chunks that ended no block, joined once when one ends).
        self._tail = b""
        self._more: list[bytes] = []
        self._more_size = 0
        self._last_id = ""
        self._retry: int | None = None
        self._closed = False
        # True while `feed` must take the slow `_prepare` path (BOM undecided, CR pending,
        # closed) so the common case costs one attribute test.
        self._guard = True

    @property
    def closed(self) -> bool:
        """Whether `close` was called (or an oversized event failed the stream)."""
        return self._closed

    @property
    def last_event_id(self) -> str:
        """The last event ID string: the ``id`` in effect at the latest dispatch (empty line)."""
        return self._last_id

    @property
    def reconnection_time(self) -> int | None:
        """The latest valid ``retry`` value in milliseconds, or None if there was none.

        As in the spec, a ``retry`` line takes effect as soon as the line is complete, even
        if its block is never terminated.
        """
        retry = self._retry
        if self._tail:
            # Complete lines of the block in progress (the spec applies retry per line).
            tail = b"".join([self._tail, *self._more])
            for line in tail[: tail.rfind(b"\n") + 1].decode("utf-8", "replace").split("\n"):
                name, _, value = line.partition(":")
                if name == "retry":
                    value = value.removeprefix(" ")
                    if value.isascii() and value.isdigit():
                        retry = int(value)
        return retry

    def feed(self, data: bytes | bytearray | memoryview) -> list[SseEvent]:
        """Parse the next chunk of the stream and return the events it completes, in order.

        Args:
            data: the next bytes of the stream, cut anywhere (``bytearray`` and
                ``memoryview`` are accepted too).

        Returns:
            The events dispatched by this chunk (often empty).

        Raises:
            TypeError: `data` is not a bytes-like object.
            RuntimeError: the parser was already closed.
        """
        shape, items = self.feed_split(data)
        if shape == DATA_VALUES:
            last_id = self._last_id
            return [_new_tuple(SseEvent, ("message", v, last_id, None)) for v in items]
        if shape == FIELD_PAIRS:
            last_id = self._last_id
            return [
                _new_tuple(SseEvent, (kind or "message", value, last_id, None))
                for kind, _, value in items
            ]
        return items

    def feed_split(self, data: bytes | bytearray | memoryview) -> tuple[int, list[Any]]:
        """`feed` without building `SseEvent` s where the shape of the events allows it.

        The fused SSE -> decoder path (``operators/_decode_sse.py``) reads the data strings
        directly. Returns ``(shape, items)``:

        - ``DATA_VALUES``: ``items`` are the data strings of events of type ``"message"``
          (blocks that are exactly one ``data:`` line);
        - ``FIELD_PAIRS``: ``items`` are ``(event_type, "\\ndata: ", data)`` triples
          (blocks that are exactly ``event:`` then ``data:``; an empty type means
          ``"message"``);
        - ``EVENTS``: ``items`` are `SseEvent` s (every other shape, the spec's line loop).

        The last event ID and retry are those of `feed`: ``last_event_id`` after the call is
        the ID of every event of a ``DATA_VALUES`` or ``FIELD_PAIRS`` result.
        """
        if type(data) is not bytes:
            data = _as_bytes(data)
        # One complete "data: ..." event and nothing pending (token-paced streams send one
        # event per network chunk): no buffering, no splitting.
        if (
            not self._tail
            and not self._guard
            and data[:6] == b"data: "
            and data.find(b"\n") == len(data) - 2
            and data[-1:] == b"\n"
            and b"\r" not in data
        ):
            return DATA_VALUES, [data[6:-2].decode("utf-8", "replace")]
        if self._guard or b"\r" in data:
            data = self._prepare(data)
        if not data:
            return EVENTS, []
        if b"\n" in data and (b"\n\n" in data or (data[0] == 10 and self._tail_lf())):
            if self._more:  # a long block spread over several chunks: one join, no quadratic
                self._more.append(data)
                data = b"".join([self._tail, *self._more])
                self._more = []
                self._more_size = 0
            elif self._tail:
                data = self._tail + data
        elif self._tail:
            self._more.append(data)  # no block ends in this chunk
            self._more_size += len(data)
            if self._limit is not None and len(self._tail) + self._more_size > self._limit:
                self._too_large(len(self._tail) + self._more_size)
            return EVENTS, []
        else:
            self._tail = data
            if self._limit is not None and len(data) > self._limit:
                self._too_large(len(data))
            return EVENTS, []
        end = data.rfind(b"\n\n")
        self._tail = data[end + 2 :]
        if self._limit is not None and len(self._tail) > self._limit:
            self._too_large(len(self._tail))
        # data[:end + 2] is a run of complete blocks. Fast path: every block is exactly one
        # "data: <value>" line; then splitting on "\n\ndata: " leaves no LF in any value.
        if data.startswith(b"data: "):
            text = data[6:end].decode("utf-8", "replace")
            if "\n" not in text:  # one block (a long event: memchr instead of a split)
                return DATA_VALUES, [text]
            values = text.split("\n\ndata: ")
            if "\n" not in "".join(values):
                return DATA_VALUES, values
        # Second fast path: every block is exactly "event: <type>" then "data: <value>" (the
        # shape of Anthropic streams). Then the text holds 3k - 2 LFs for k blocks (two per
        # separator, one per block), and each block has its one LF in "\ndata: ".
        elif data.startswith(b"event: "):
            text = data[7:end].decode("utf-8", "replace")
            blocks = text.split("\n\nevent: ")
            if text.count("\n") == 3 * len(blocks) - 2:
                pairs = [block.partition("\ndata: ") for block in blocks]
                if all(map(_second, pairs)):
                    return FIELD_PAIRS, pairs
        return EVENTS, self._parse_lines(data[: end + 1].decode("utf-8", "replace").split("\n"))

    def _prepare(self, data: bytes) -> bytes:
        """The rare cases of `feed`: a possible BOM, a CR at the previous chunk's end, CRs.

        Returns the chunk with the BOM stripped and every line ending turned into one LF.
        """
        if self._closed:
            raise RuntimeError("SseParser.feed() called after close(); create a new parser")
        if self._head is not None:
            data = self._head + data
            if len(data) < 3 and _BOM.startswith(data):
                self._head = data
                return b""
            self._head = None
            if data.startswith(_BOM):
                data = data[3:]
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
        if b"\r" in data:
            # CRLF and lone CR become LF; a final CR may be the first half of a CRLF.
            self._skip_lf = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._guard = self._skip_lf
        return data

    def close(self) -> list[SseEvent]:
        """End the stream: an incomplete final block is discarded, as the spec requires.

        Returns:
            Always an empty list (every complete block was already returned by `feed`); it is
            a list so callers can treat `feed` and `close` alike.
        """
        self._retry = self.reconnection_time
        self._closed = self._guard = True
        self._tail = b""
        self._more = []
        self._more_size = 0
        self._head = None
        return []

    def _too_large(self, size: int) -> None:
        self.close()
        raise StreamDecodeError(
            f"an SSE event grew to {size} bytes without the blank line that ends it "
            f"(max_event_bytes={self._limit}); the server is not sending an event stream "
            f"as expected"
        )

    def _tail_lf(self) -> bool:
        """Whether the bytes kept from previous chunks end with LF."""
        return (self._more[-1] if self._more else self._tail).endswith(b"\n")

    def _parse_lines(self, lines: list[str]) -> list[SseEvent]:
        """The general path: the spec's line loop over complete lines (the last one empty)."""
        events: list[SseEvent] = []
        data: list[str] = []
        event_type = ""
        retry: int | None = None
        last_id = self._last_id
        for line in lines:
            if not line:
                if data:
                    events.append(
                        _new_tuple(
                            SseEvent, (event_type or "message", "\n".join(data), last_id, retry)
                        )
                    )
                    data = []
                event_type = ""
                retry = None
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
            elif name == "id":
                if "\0" not in value:
                    last_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                retry = int(value)
                self._retry = retry
        self._last_id = last_id
        return events


def _as_bytes(data: object) -> bytes:
    """``data`` as bytes, or a TypeError that says what was passed."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"SseParser.feed() expects bytes, got {type(data).__name__}: {data!r:.80}")
