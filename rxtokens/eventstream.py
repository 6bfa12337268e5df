"""AWS event streams: `EventStreamMessage`, the incremental `EventStreamParser`, `encode_message`.

``application/vnd.amazon.eventstream`` is the binary framing of Bedrock's
``ConverseStream`` (and of Transcribe, S3 Select, Kinesis ``SubscribeToShard`` ...),
specified in "Event stream encoding":
https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html#streaming-event-stream
and implemented by the official clients (botocore's ``botocore/eventstream.py``,
``aws-c-event-stream``). Each message is::

    [total length: u32][headers length: u32][prelude CRC: u32]   the 12-byte prelude
    [headers: headers length bytes]
    [payload: total length - headers length - 16 bytes]
    [message CRC: u32]

big-endian, the prelude CRC being the CRC32 of the first 8 bytes and the message CRC the
CRC32 of everything before it. Each header is ``[name length: u8][name: UTF-8][type: u8]``
then a value of one of ten types: 0 true and 1 false (no bytes), 2 byte (i8), 3 short
(i16), 4 integer (i32), 5 long (i64), 6 byte array and 7 string (``[length: u16]`` then
the bytes; a string is UTF-8), 8 timestamp (i64 milliseconds since the epoch), 9 UUID
(16 bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from struct import Struct
from struct import error as StructError
from types import MappingProxyType
from typing import NamedTuple, TypeAlias
from zlib import crc32

from .errors import ConfigError, StreamDecodeError, TruncatedStreamError

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EventStreamMessage",
    "EventStreamParser",
    "HeaderValue",
    "encode_message",
]

HeaderValue: TypeAlias = bool | int | bytes | str
"""A decoded header value, as botocore gives it: `bool` (types 0, 1), `int` (byte, short,
integer, long, and timestamp in milliseconds), `bytes` (byte array, and the 16 bytes of a
UUID), `str` (string)."""

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024 + 128 * 1024 + 16
"""The largest message `EventStreamParser` accepts by default: botocore's limits (a 16 MiB
payload, 128 KiB of headers) plus the 16 bytes of framing."""

_PRELUDE = Struct(">III")
_U32 = Struct(">I")
_U16 = Struct(">H")
# type code -> the struct of a fixed-size value (byte, short, integer, long, timestamp)
_FIXED = {2: Struct(">b"), 3: Struct(">h"), 4: Struct(">i"), 5: Struct(">q"), 8: Struct(">q")}
_TYPE_NAMES = {
    "bool": -1,
    "byte": 2,
    "short": 3,
    "integer": 4,
    "long": 5,
    "byte_array": 6,
    "string": 7,
    "timestamp": 8,
    "uuid": 9,
}
_CACHE_SIZE = 64
"""Distinct header blocks a parser remembers decoded (streams repeat a handful)."""
_new_tuple = tuple.__new__


class EventStreamMessage(NamedTuple):
    """One message of an AWS event stream.

    Attributes:
        headers: header name -> value (an immutable mapping; see `HeaderValue`).
        payload: the payload bytes (for Bedrock, a JSON document).
    """

    headers: Mapping[str, HeaderValue]
    payload: bytes

    @property
    def message_type(self) -> HeaderValue | None:
        """The ``:message-type`` header (``event``, ``exception``, ``error``), if any."""
        return self.headers.get(":message-type")

    @property
    def event_type(self) -> HeaderValue | None:
        """The ``:event-type`` header (``contentBlockDelta`` ...), if any."""
        return self.headers.get(":event-type")


class EventStreamParser:
    """An incremental, pure parser of an ``application/vnd.amazon.eventstream`` byte stream.

    `feed` takes the stream cut anywhere and returns the messages each chunk completes;
    chunk boundaries never change the result. Every message is checked as the spec says:
    the prelude CRC before its lengths are trusted, then the lengths (a total under 16
    bytes or headers that do not fit are impossible), then the message CRC before any byte
    of it is decoded, then each header (known type, in bounds, UTF-8 names and strings, no
    duplicates). Any failure is a `StreamDecodeError` naming the message's offset in the
    stream; so is a message whose prelude announces more than `max_message_bytes` (it
    fails at once, nothing is buffered). A stream that ends inside a message (bytes left
    over at `close`) is a `TruncatedStreamError`, as every stream that ends early is
    (retryable by `rxtokens.operators.is_retryable`). A failure ends
    the stream; the good messages before it in the same chunk are returned first and the
    failure is raised by the next `feed` or `close`, so nothing decoded is lost.

    Performance: a chunk's complete messages are sliced out of it with ``struct`` and
    ``zlib.crc32`` (C), never a loop per byte; a message spread over many chunks is joined
    once, when its last byte arrives; a header block seen before (streams repeat the same
    few) is decoded once and then looked up.

    Example:
        >>> wire = encode_message({":event-type": "chunk"}, b'{"a":1}')
        >>> parser = EventStreamParser()
        >>> parser.feed(wire[:20])
        []
        >>> [message] = parser.feed(wire[20:])
        >>> message.event_type, message.payload
        ('chunk', b'{"a":1}')
        >>> parser.close()
        []
    """

    __slots__ = (
        "_cache",
        "_closed",
        "_error",
        "_head",
        "_limit",
        "_more",
        "_more_size",
        "_need",
        "_offset",
    )

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        """Create a parser for one stream.

        Args:
            max_message_bytes: fail with `StreamDecodeError` as soon as a prelude announces
                a message longer than this (at least 16).
        """
        if (
            not isinstance(max_message_bytes, int)
            or isinstance(max_message_bytes, bool)
            or max_message_bytes < 16
        ):
            raise ConfigError(
                f"max_message_bytes must be an int of at least 16, got {max_message_bytes!r}"
            )
        self._limit = max_message_bytes
        # The bytes of the message in progress: `_head`, then `_more` (chunks that did not
        # complete it, joined once it is complete); `_need` is the length that completes
        # what `_head` starts (12 while the prelude is incomplete).
        self._head = b""
        self._more: list[bytes] = []
        self._more_size = 0
        self._need = 12
        self._offset = 0  # stream offset of `_head`
        self._cache: dict[bytes, Mapping[str, HeaderValue]] = {}
        self._closed = False
        # A failure found after good messages of the same chunk: those are returned first,
        # the failure is raised by the next call.
        self._error: StreamDecodeError | None = None

    @property
    def closed(self) -> bool:
        """Whether `close` was called (or a decode error ended the stream)."""
        return self._closed

    def feed(self, data: bytes | bytearray | memoryview) -> list[EventStreamMessage]:
        """Parse the next chunk of the stream and return the messages it completes, in order.

        Args:
            data: the next bytes of the stream, cut anywhere.

        Returns:
            The messages completed by this chunk (often empty).

        Raises:
            StreamDecodeError: a CRC mismatch, an impossible or too large length, or a
                malformed header.
            TypeError: `data` is not a bytes-like object.
            RuntimeError: the parser was already closed.
        """
        if type(data) is not bytes:
            data = _as_bytes(data)
        if self._closed:
            self._raise_pending()
            raise RuntimeError("EventStreamParser.feed() called after close(); create a new one")
        if self._head:
            size = len(self._head) + self._more_size + len(data)
            if size < self._need:
                self._more.append(data)
                self._more_size += len(data)
                return []
            data = b"".join([self._head, *self._more, data])
            self._more = []
            self._more_size = 0
        elif not data:
            return []
        return self._parse(data)

    def close(self) -> list[EventStreamMessage]:
        """End the stream.

        Returns:
            Always an empty list (complete messages were returned by `feed`).

        Raises:
            TruncatedStreamError: the stream ended inside a message.
        """
        if self._closed:
            self._raise_pending()
            return []
        self._closed = True
        held = len(self._head) + self._more_size
        if held:
            what = f"of a {self._need}-byte message" if self._need > 12 else "of a prelude"
            self._head = b""
            self._more = []
            raise TruncatedStreamError(
                f"the event stream ended inside a message: {held} bytes {what} at offset "
                f"{self._offset}; the connection closed early"
            )
        return []

    def _parse(self, buf: bytes) -> list[EventStreamMessage]:
        """The complete messages at the start of `buf`; keeps the rest for later."""
        out: list[EventStreamMessage] = []
        cache = self._cache
        limit = self._limit
        size = len(buf)
        pos = 0
        while size - pos >= 12:
            total, hlen, prelude_crc = _PRELUDE.unpack_from(buf, pos)
            if crc32(buf[pos : pos + 8]) != prelude_crc:
                return self._broken(
                    out, pos, f"prelude CRC mismatch (the prelude says 0x{prelude_crc:08x})"
                )
            if total < 16 or hlen > total - 16:
                return self._broken(out, pos, f"impossible lengths (total {total}, headers {hlen})")
            if total > limit:
                return self._broken(
                    out, pos, f"a {total}-byte message is over max_message_bytes={limit}; refused"
                )
            end = pos + total
            if end > size:
                break
            body = buf[pos + 8 : end - 4]
            expected = _U32.unpack_from(buf, end - 4)[0]
            if crc32(body, prelude_crc) != expected:
                return self._broken(
                    out, pos, f"message CRC mismatch (the message says 0x{expected:08x})"
                )
            block = body[4 : 4 + hlen]
            headers = cache.get(block)
            if headers is None:
                try:
                    headers = MappingProxyType(_decode_headers(block))
                except ValueError as exc:
                    return self._broken(out, pos, f"malformed headers: {exc}")
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[block] = headers
            out.append(_new_tuple(EventStreamMessage, (headers, body[4 + hlen :])))
            pos = end
        self._offset += pos
        self._head = buf[pos:] if pos else buf
        self._need = _U32.unpack_from(buf, pos)[0] if size - pos >= 12 else 12
        return out

    def _broken(
        self, out: list[EventStreamMessage], at: int, what: str
    ) -> list[EventStreamMessage]:
        """End the stream on a bad message at `at`: raise now, or after returning `out`."""
        self._closed = True
        self._head = b""
        self._more = []
        self._more_size = 0
        error = StreamDecodeError(
            f"invalid AWS event stream message at offset {self._offset + at}: {what}; the "
            f"body is not an application/vnd.amazon.eventstream stream or was corrupted"
        )
        if not out:
            raise error
        self._error = error
        return out

    def _raise_pending(self) -> None:
        """Raise the failure found after the messages the last `feed` returned, if any."""
        error, self._error = self._error, None
        if error is not None:
            raise error


def _decode_headers(block: bytes) -> dict[str, HeaderValue]:
    """The headers of one message; ValueError (with the reason) when they are malformed."""
    headers: dict[str, HeaderValue] = {}
    size = len(block)
    pos = 0
    while pos < size:
        start = pos + 1
        pos = start + block[pos]
        if pos >= size:
            raise ValueError(f"header at byte {start - 1} runs past the end of the block")
        try:
            name = block[start:pos].decode()
        except UnicodeDecodeError:
            raise ValueError(f"header name {block[start:pos]!r} is not UTF-8") from None
        kind = block[pos]
        pos += 1
        value: HeaderValue
        if kind in (6, 7):
            if pos + 2 > size:
                raise ValueError(f"header {name!r} runs past the end of the block")
            start = pos + 2
            pos = start + _U16.unpack_from(block, pos)[0]
            if pos > size:
                raise ValueError(f"header {name!r} runs past the end of the block")
            value = block[start:pos]
            if kind == 7:
                try:
                    value = value.decode()
                except UnicodeDecodeError:
                    raise ValueError(f"header {name!r} is not UTF-8: {value!r}") from None
        elif kind < 2:
            value = kind == 0
        elif kind in _FIXED:
            fixed = _FIXED[kind]
            if pos + fixed.size > size:
                raise ValueError(f"header {name!r} runs past the end of the block")
            value = fixed.unpack_from(block, pos)[0]
            pos += fixed.size
        elif kind == 9:
            if pos + 16 > size:
                raise ValueError(f"header {name!r} runs past the end of the block")
            value = block[pos : pos + 16]
            pos += 16
        else:
            raise ValueError(f"header {name!r} has unknown value type {kind}")
        if name in headers:
            raise ValueError(f"duplicate header {name!r}")
        headers[name] = value
    return headers


def encode_message(
    headers: Mapping[str, HeaderValue],
    payload: bytes = b"",
    *,
    types: Mapping[str, str] | None = None,
) -> bytes:
    """Encode one event stream message (the inverse of `EventStreamParser`).

    A header's type follows its Python value: `bool` -> true/false, `str` -> string,
    `bytes` -> byte array, `int` -> integer (long when it does not fit 32 bits). `types`
    names another type for a header: ``byte``, ``short``, ``integer``, ``long``,
    ``timestamp`` (int milliseconds), ``uuid`` (16 bytes), ``byte_array``, ``string``.

    Args:
        headers: header name -> value, in wire order.
        payload: the payload bytes.
        types: header name -> type name, for the headers whose type is not the default.

    Returns:
        The message's bytes, prelude and CRCs included.

    Raises:
        ConfigError: a value that does not fit its type, or an unknown type name.

    Example:
        >>> encode_message({":event-type": "x"}, b"{}").hex()
        '0000002200000010c394b3690b3a6576656e742d74797065070001787b7df09f1afd'
    """
    types = types or {}
    parts = [_encode_header(name, value, types.get(name)) for name, value in headers.items()]
    block = b"".join(parts)
    total = 16 + len(block) + len(payload)
    prelude = _U32.pack(total) + _U32.pack(len(block))
    message = prelude + _U32.pack(crc32(prelude)) + block + bytes(payload)
    return message + _U32.pack(crc32(message))


def _encode_header(name: str, value: HeaderValue, type_name: str | None) -> bytes:
    raw_name = name.encode()
    if len(raw_name) > 255:
        raise ConfigError(f"header name {name!r} is longer than 255 bytes")
    if type_name is None:
        if isinstance(value, bool):
            type_name = "bool"
        elif isinstance(value, int):
            type_name = "integer" if -(2**31) <= value < 2**31 else "long"
        else:
            type_name = "string" if isinstance(value, str) else "byte_array"
    kind = _TYPE_NAMES.get(type_name)
    if kind is None:
        raise ConfigError(f"unknown header type {type_name!r}; known: {sorted(_TYPE_NAMES)}")
    head = bytes([len(raw_name)]) + raw_name
    try:
        if kind == -1:
            return head + (b"\x00" if value else b"\x01")
        if kind in _FIXED:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"expected an int, got {value!r}")
            return head + bytes([kind]) + _FIXED[kind].pack(value)
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if kind == 9:
            if len(raw) != 16:
                raise ValueError(f"a UUID is 16 bytes, got {len(raw)}")
            return head + b"\x09" + raw
        return head + bytes([kind]) + _U16.pack(len(raw)) + raw
    except (TypeError, ValueError, OverflowError, StructError) as exc:
        raise ConfigError(
            f"header {name!r} = {value!r} is not a valid {type_name}: {exc}"
        ) from None


def _as_bytes(data: object) -> bytes:
    """``data`` as bytes, or a TypeError that says what was passed."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(
        f"EventStreamParser.feed() expects bytes, got {type(data).__name__}: {data!r:.80}"
    )
