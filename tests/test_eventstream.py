"""EventStreamParser / encode_message / parse_aws_eventstream(): the AWS event stream framing.

Judged by botocore's own parser (``botocore.eventstream.EventStreamBuffer``) on the same bytes.
Spec: https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html
"""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.errors import ConfigError, StreamDecodeError, TruncatedStreamError
from rxtokens.eventstream import (
    DEFAULT_MAX_MESSAGE_BYTES,
    EventStreamMessage,
    EventStreamParser,
    encode_message,
)
from rxtokens.operators import parse_aws_eventstream

on_next, on_completed = ReactiveTest.on_next, ReactiveTest.on_completed

# --- helpers -------------------------------------------------------------------------------


def parse_chunks(chunks: list[bytes], **options: Any) -> list[EventStreamMessage]:
    parser = EventStreamParser(**options)
    messages: list[EventStreamMessage] = []
    for chunk in chunks:
        messages += parser.feed(chunk)
    return messages + parser.close()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def botocore_messages(data: bytes, chunks: list[bytes] | None = None) -> list[Any]:
    """The (headers, payload) pairs botocore's EventStreamBuffer finds in `data`."""
    eventstream = pytest.importorskip("botocore.eventstream")
    buffer = eventstream.EventStreamBuffer()
    found = []
    for chunk in chunks if chunks is not None else [data]:
        buffer.add_data(chunk)
        found += [(message.headers, message.payload) for message in buffer]
    return found


def frame(total: int, headers_length: int, rest: bytes = b"") -> bytes:
    """A message with a valid prelude CRC and the given lengths (message CRC appended)."""
    prelude = struct.pack(">II", total, headers_length)
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + rest
    return message + struct.pack(">I", zlib.crc32(message))


# header type name -> strategy of values of that type (None: the type follows the value)
VALUES = {
    None: st.booleans() | st.text(max_size=20) | st.binary(max_size=20),
    "byte": st.integers(-(2**7), 2**7 - 1),
    "short": st.integers(-(2**15), 2**15 - 1),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "timestamp": st.integers(-(2**63), 2**63 - 1),
    "uuid": st.binary(min_size=16, max_size=16),
    "byte_array": st.binary(max_size=40),
    "string": st.text(max_size=40),
}


@st.composite
def messages(draw: st.DrawFn) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """Headers of every type, a payload, and the type names of the headers."""
    names = draw(st.lists(st.text(max_size=8), max_size=6, unique=True))
    headers: dict[str, Any] = {}
    types: dict[str, str] = {}
    for name in names:
        kind = draw(st.sampled_from(list(VALUES)))
        headers[name] = draw(VALUES[kind])
        if kind is not None:
            types[name] = kind
    return headers, draw(st.binary(max_size=200)), types


Stream = tuple[bytes, list[tuple[dict[str, Any], bytes]], list[int]]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """Encoded messages, the (headers, payload) each must decode to, and their lengths."""
    parts = draw(st.lists(messages(), max_size=6))
    encoded = [encode_message(h, p, types=t) for h, p, t in parts]
    return b"".join(encoded), [(h, p) for h, p, _ in parts], [len(e) for e in encoded]


def as_pairs(found: list[EventStreamMessage]) -> list[tuple[dict[str, Any], bytes]]:
    return [(dict(m.headers), m.payload) for m in found]


# --- framing round trip, chunk invariance, botocore as judge -------------------------------


@given(streams(), st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_chunking_gives_the_same_messages_as_botocore(stream: Stream, cuts: list[int]) -> None:
    wire, expected, _ = stream
    assert as_pairs(parse_chunks([wire])) == expected
    chunks = split_at(wire, cuts)
    assert as_pairs(parse_chunks(chunks)) == expected
    assert botocore_messages(wire, chunks) == expected


@given(streams())
def test_every_single_cut_and_byte_at_a_time(stream: Stream) -> None:
    wire, expected, _ = stream
    for cut in range(len(wire) + 1):
        assert as_pairs(parse_chunks([wire[:cut], wire[cut:]])) == expected
    assert as_pairs(parse_chunks([wire[i : i + 1] for i in range(len(wire))])) == expected


@given(streams(), st.data())
def test_a_flipped_bit_is_always_caught(stream: Stream, data: st.DataObject) -> None:
    wire, expected, lengths = stream
    if not wire:
        return
    bit = data.draw(st.integers(min_value=0, max_value=len(wire) * 8 - 1))
    corrupted = bytearray(wire)
    corrupted[bit // 8] ^= 1 << (bit % 8)
    parser = EventStreamParser()
    good: list[EventStreamMessage] = []
    failure: StreamDecodeError | None = None
    try:
        for chunk in split_at(bytes(corrupted), data.draw(st.lists(st.integers(0, 2000)))):
            good += parser.feed(chunk)
        parser.close()
    except StreamDecodeError as exc:
        failure = exc
    assert failure is not None
    assert "offset" in str(failure)
    # every message before the damaged one is delivered intact, and nothing else
    damaged = next(i for i, end in enumerate(itertools.accumulate(lengths)) if bit // 8 < end)
    assert as_pairs(good) == expected[:damaged]
    assert parser.closed


def test_encoder_matches_a_message_built_by_hand_from_the_spec() -> None:
    """Every field laid out from the spec's table, independently of `encode_message`."""
    headers = (
        b"\x010\x00"
        b"\x011\x01"
        b"\x012\x02\xfe"
        b"\x013\x03\xff\xfe"
        b"\x014\x04\x00\x00\x00\x04"
        b"\x015\x05" + (5).to_bytes(8, "big") + b"\x016\x06\x00\x05bytes"
        b"\x017\x07\x00\x04utf8"
        b"\x018\x08" + (8).to_bytes(8, "big") + b"\x019\x09" + b"0123456789abcdef"
    )
    payload = b'{"a":1}'
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    wire = body + struct.pack(">I", zlib.crc32(body))
    expected = {
        "0": True, "1": False, "2": -2, "3": -2, "4": 4, "5": 5,
        "6": b"bytes", "7": "utf8", "8": 8, "9": b"0123456789abcdef",
    }  # fmt: skip
    types = {"2": "byte", "3": "short", "5": "long", "8": "timestamp", "9": "uuid"}
    assert encode_message(expected, payload, types=types) == wire
    assert parse_chunks([wire]) == [EventStreamMessage(expected, payload)]
    assert botocore_messages(wire) == [(expected, payload)]


def test_all_ten_header_types_decode_as_botocore_decodes_them() -> None:
    headers = {
        "t": True,
        "f": False,
        "b": -5,
        "s": -300,
        "i": 70000,
        "l": -(2**40),
        "ba": b"\x00\xff",
        "str": "héllo",
        "ts": 1_700_000_000_123,
        "u": bytes(range(16)),
    }
    types = {"b": "byte", "s": "short", "l": "long", "ts": "timestamp", "u": "uuid"}
    wire = encode_message(headers, b"x", types=types)
    [message] = parse_chunks([wire])
    assert dict(message.headers) == headers
    assert [type(v) for v in message.headers.values()] == [type(v) for v in headers.values()]
    assert botocore_messages(wire) == [(headers, b"x")]


def test_messages_are_immutable_and_repeated_header_blocks_are_shared() -> None:
    wire = encode_message({":event-type": "a"}, b"1") + encode_message({":event-type": "a"}, b"2")
    first, second = parse_chunks([wire])
    with pytest.raises(TypeError):
        first.headers[":event-type"] = "b"  # type: ignore[index]
    assert first.headers is second.headers  # decoded once
    assert first.event_type == "a"
    assert first.message_type is None
    assert first == EventStreamMessage({":event-type": "a"}, b"1")


def test_empty_message_and_empty_chunks() -> None:
    wire = encode_message({}, b"")
    assert len(wire) == 16
    assert parse_chunks([b"", wire, b""]) == [EventStreamMessage({}, b"")]


# --- failures ------------------------------------------------------------------------------


def test_truncated_stream_fails_at_close_with_the_offset() -> None:
    wire = encode_message({"a": "b"}, b"payload")
    parser = EventStreamParser()
    assert parser.feed(wire + wire[:20]) != []
    with pytest.raises(TruncatedStreamError, match=r"20 bytes of a 29-byte message at offset 29"):
        parser.close()
    parser = EventStreamParser()
    parser.feed(wire[:5])
    with pytest.raises(TruncatedStreamError, match="5 bytes of a prelude at offset 0"):
        parser.close()


@pytest.mark.parametrize(
    ("total", "headers_length"),
    [(0, 0), (15, 0), (16, 1), (20, 5), (2**32 - 1, 2**32 - 1)],
)
def test_impossible_lengths(total: int, headers_length: int) -> None:
    with pytest.raises(StreamDecodeError, match="impossible lengths"):
        EventStreamParser().feed(frame(total, headers_length))


def test_a_message_over_the_bound_fails_before_it_is_buffered() -> None:
    parser = EventStreamParser(max_message_bytes=1000)
    prelude = struct.pack(">II", 1001, 0)
    with pytest.raises(StreamDecodeError, match="1001-byte message is over max_message_bytes=1000"):
        parser.feed(prelude + struct.pack(">I", zlib.crc32(prelude)))  # 12 bytes are enough
    assert parser.closed
    ok = encode_message({}, b"x" * 984)
    assert len(ok) == 1000
    assert parse_chunks([ok], max_message_bytes=1000)[0].payload == b"x" * 984
    assert DEFAULT_MAX_MESSAGE_BYTES == 16 * 2**20 + 128 * 2**10 + 16


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (b"\x01a\x0a", "unknown value type 10"),
        (b"\x01a\x07\x00\x05ab", "runs past the end"),
        (b"\x01a\x04\x00\x00", "runs past the end"),
        (b"\x01a\x09" + b"\x00" * 15, "runs past the end"),
        (b"\x05ab", "runs past the end"),
        (b"\x01a\x00\x01a\x01", "duplicate header 'a'"),
        (b"\x01\xff\x00", "not UTF-8"),
        (b"\x01a\x07\x00\x01\xff", "not UTF-8"),
    ],
)
def test_malformed_headers(block: bytes, reason: str) -> None:
    wire = frame(16 + len(block), len(block), block)
    with pytest.raises(StreamDecodeError, match=reason):
        EventStreamParser().feed(wire)


def test_misuse() -> None:
    parser = EventStreamParser()
    with pytest.raises(TypeError, match="expects bytes, got str"):
        parser.feed("text")  # type: ignore[arg-type]
    assert parser.feed(bytearray(encode_message({}, b"a"))) == [EventStreamMessage({}, b"a")]
    assert parser.close() == []
    assert parser.close() == []
    with pytest.raises(RuntimeError, match="after close"):
        parser.feed(b"")
    for bad in (15, 0, True, 1.5, None):
        with pytest.raises(ConfigError, match="max_message_bytes"):
            EventStreamParser(max_message_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_message_bytes"):
        parse_aws_eventstream(max_message_bytes=3)


@pytest.mark.parametrize(
    ("headers", "types", "reason"),
    [
        ({"a": 1}, {"a": "float"}, "unknown header type 'float'"),
        ({"a": 300}, {"a": "byte"}, "not a valid byte"),
        ({"a": b"short"}, {"a": "uuid"}, "a UUID is 16 bytes"),
        ({"a": "x"}, {"a": "long"}, "expected an int"),
        ({"a" * 256: 1}, {}, "longer than 255 bytes"),
    ],
)
def test_encoder_refuses_values_that_do_not_fit(
    headers: dict[str, Any], types: dict[str, str], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        encode_message(headers, b"", types=types)


# --- the operator --------------------------------------------------------------------------


def test_operator_emits_each_message_when_its_last_byte_arrives() -> None:
    one, two = encode_message({"n": 1}, b"a"), encode_message({"n": 2}, b"b")
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, one[:5]),
        on_next(220, one[5:] + two[:3]),
        on_next(230, two[3:]),
        on_completed(240),
    )
    result = scheduler.start(lambda: source.pipe(parse_aws_eventstream()))
    assert result.messages == [
        on_next(220, EventStreamMessage({"n": 1}, b"a")),
        on_next(230, EventStreamMessage({"n": 2}, b"b")),
        on_completed(240),
    ]
    assert source.subscriptions == [ReactiveTest.subscribe(200, 240)]


def test_operator_fails_and_disposes_on_corruption_and_on_truncation() -> None:
    wire = encode_message({"n": 1}, b"a")
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(210, wire), on_next(220, wire[:-1] + b"\x00"), on_next(230, wire), on_completed(300)
    )
    result = scheduler.start(lambda: source.pipe(parse_aws_eventstream()))
    assert result.messages[0] == on_next(210, EventStreamMessage({"n": 1}, b"a"))
    assert result.messages[1].time == 220
    assert isinstance(result.messages[1].value.exception, StreamDecodeError)
    assert source.subscriptions == [ReactiveTest.subscribe(200, 220)]

    errors: list[Exception] = []
    reactivex.of(wire + wire[:3]).pipe(parse_aws_eventstream()).subscribe(on_error=errors.append)
    assert isinstance(errors[0], TruncatedStreamError)


def test_operator_passes_errors_through_and_keeps_state_per_subscription() -> None:
    wire = encode_message({}, b"x")
    source = reactivex.of(wire[:10], wire[10:])
    op = source.pipe(parse_aws_eventstream())
    assert op.pipe(reactivex.operators.to_list()).run() == [EventStreamMessage({}, b"x")]
    assert op.pipe(reactivex.operators.to_list()).run() == [EventStreamMessage({}, b"x")]
    failing = reactivex.concat(reactivex.of(wire), reactivex.throw(KeyError("boom")))
    seen: list[Any] = []
    failing.pipe(parse_aws_eventstream()).subscribe(seen.append, seen.append)
    assert seen[0] == EventStreamMessage({}, b"x")
    assert isinstance(seen[1], KeyError)
