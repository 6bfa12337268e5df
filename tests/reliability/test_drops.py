"""A connection dropped mid-stream, at every kind of boundary, for every provider format.

The loopback server aborts the connection after N body bytes (``Reply.drop_after``).
Whatever the boundary (between two events, inside an event, inside a UTF-8 sequence,
before the blank line that ends an event), the stream must fail with a dropped-stream
`StreamError` whose ``.partial`` holds exactly the text of the events that arrived
whole, nothing more and nothing less, and the client must close the connection
(never pool it for reuse).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest
from reactivex import operators as ops

from rxtokens import StreamDecodeError, StreamError, TextDelta, TruncatedStreamError
from rxtokens.aio import collect
from rxtokens.testing import ProviderServer, Reply, Script, encode

from ._util import (
    DROPPED,
    PROVIDERS,
    complete_prefix,
    open_client_connections,
    open_stream,
    sent_text,
    text_deltas,
)

pytestmark = pytest.mark.timeout(60)

DELTAS = text_deltas(12)
TARGET = 6  # the delta around which the connection is cut
DELIVERY: dict[str, dict[str, Any]] = {
    "per-event": {},
    "7-byte-chunks": {"chunk_size": 7},
    "gzip": {"gzip": True, "chunk_size": 64},
}


def _target_event(events: list[bytes]) -> tuple[int, bytes]:
    """(start offset, bytes) of the event that carries DELTAS[TARGET]."""
    marker = DELTAS[TARGET].encode()
    pos = 0
    for event in events:
        if marker in event:
            return pos, event
        pos += len(event)
    raise AssertionError("target delta not found")


def _cut(events: list[bytes], boundary: str) -> tuple[int, int]:
    """(drop_after, how many deltas arrived whole) for `boundary`."""
    start, event = _target_event(events)
    end = start + len(event)
    if boundary == "between-events":
        return end, TARGET + 1
    if boundary == "inside-event":
        return start + len(event) // 2, TARGET
    if boundary == "inside-utf8":
        return start + event.index("€".encode()) + 1, TARGET  # 1 of the 3 bytes of €
    if boundary == "before-blank-line":
        # "...\n\n" minus the last LF: not dispatched. "...\r\n\r\n" minus the last LF:
        # the CR already ended the blank line (WHATWG: a lone CR is a line ending).
        return end - 1, TARGET + 1 if event.endswith(b"\r\n") else TARGET
    if boundary == "start-of-body":
        return 0, 0
    raise AssertionError(boundary)


async def _fail(srv: ProviderServer, name: str, reply: Reply, **kw: Any) -> StreamError:
    srv.queue(reply)
    with pytest.raises(DROPPED) as info:
        await collect(open_stream(srv, name, **kw))
    return info.value


@pytest.mark.parametrize("delivery", list(DELIVERY))
@pytest.mark.parametrize(
    "boundary",
    ["between-events", "inside-event", "inside-utf8", "before-blank-line", "start-of-body"],
)
@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_drop_keeps_exactly_the_text_sent(
    srv: ProviderServer, name: str, boundary: str, delivery: str
) -> None:
    events = encode(PROVIDERS[name][1], Script(text=DELTAS))
    cut, arrived = _cut(events, boundary)
    error = await _fail(srv, name, Reply(events=events, drop_after=cut, **DELIVERY[delivery]))
    expected = "".join(DELTAS[:arrived])
    assert sent_text(complete_prefix(events, cut), DELTAS) == expected  # the helper agrees
    partial = error.partial
    assert (partial.text if partial is not None else "") == expected
    if partial is not None:
        assert partial.finish_reason is None
    record = await srv.wait_ended()
    assert not record.completed
    assert record.bytes_sent == cut
    assert await open_client_connections() == 0


def _sweep_stride() -> int:
    return 1 if os.environ.get("RXTOKENS_SLOW") == "1" else 37


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_drop_at_many_offsets_loses_nothing(srv: ProviderServer, name: str) -> None:
    """Cut the body at every 37th byte (every byte in the slow run): partial == sent text."""
    deltas = text_deltas(3)
    events = encode(PROVIDERS[name][1], Script(text=deltas, usage=(1, 3)))
    body_size = sum(map(len, events))
    for cut in range(1, body_size, _sweep_stride()):
        error = await _fail(srv, name, Reply(events=events, drop_after=cut))
        expected = sent_text(complete_prefix(events, cut), deltas)
        got = error.partial.text if error.partial is not None else ""
        assert got == expected, f"cut at byte {cut} of {body_size}"
    assert await open_client_connections() == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_drop_at_every_offset_in_tiny_chunks(srv: ProviderServer, name: str) -> None:
    """Slow: every cut offset with the body re-cut into 3-byte writes."""
    deltas = text_deltas(3)
    events = encode(PROVIDERS[name][1], Script(text=deltas, usage=(1, 3)))
    body_size = sum(map(len, events))
    for cut in range(1, body_size):
        error = await _fail(srv, name, Reply(events=events, drop_after=cut, chunk_size=3))
        expected = sent_text(complete_prefix(events, cut), deltas)
        assert (error.partial.text if error.partial is not None else "") == expected, cut


def _busy(token: Any) -> Any:
    # A consumer that is slower than the network (CPU work, no sleeping): the rest of the
    # body and the connection's end pile up in the client's buffers meanwhile.
    if type(token) is TextDelta:
        zlib.crc32(token.text.encode() * 200)
    return token


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
async def test_drop_under_a_slow_consumer_loses_nothing(
    srv: ProviderServer, fraction: float
) -> None:
    deltas = text_deltas(3000)
    events = encode("openai_chat", Script(text=deltas))
    cut = int(sum(map(len, events)) * fraction)
    srv.queue(Reply(events=events, drop_after=cut, chunk_size=16384))
    with pytest.raises(DROPPED) as info:
        await collect(open_stream(srv, "openai").pipe(ops.map(_busy)))
    assert info.value.partial is not None
    assert info.value.partial.text == sent_text(complete_prefix(events, cut), deltas)
    assert await open_client_connections() == 0


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_clean_end_without_terminal_event_is_truncated(
    srv: ProviderServer, name: str
) -> None:
    """The body ends normally (chunked EOF) but before the provider's terminal event."""
    events = encode(PROVIDERS[name][1], Script(text=DELTAS))
    _, event = _target_event(events)
    srv.queue(Reply(events=events[: events.index(event) + 1]))
    with pytest.raises(TruncatedStreamError) as info:
        await collect(open_stream(srv, name))
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(DELTAS[: TARGET + 1])
    assert info.value.partial.finish_reason is None
    assert (await srv.wait_ended()).completed


async def test_drop_inside_a_gzip_member_is_not_a_decode_error(srv: ProviderServer) -> None:
    """A gzip body cut short is a dropped connection, not 'not the provider's format'."""
    events = encode("anthropic", Script(text=DELTAS))
    cut, arrived = _cut(events, "inside-event")
    error = await _fail(srv, "anthropic", Reply(events=events, drop_after=cut, gzip=True))
    assert not isinstance(error, StreamDecodeError)
    assert error.partial is not None
    assert error.partial.text == "".join(DELTAS[:arrived])
