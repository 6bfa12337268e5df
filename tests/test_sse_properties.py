"""Property tests for SseParser: chunking never matters, and it equals a naive reference model.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from rxtokens.sse import SseEvent, SseParser

from .sse_reference import BOM, reference

# --- helpers -------------------------------------------------------------------------------


def feed_chunks(chunks: list[bytes]) -> tuple[list[SseEvent], SseParser]:
    parser = SseParser()
    events: list[SseEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events, parser


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def assert_valid_strings(events: list[SseEvent]) -> None:
    for event in events:
        assert type(event) is SseEvent
        for text in (event.event, event.data, event.id):
            assert isinstance(text, str)
            text.encode("utf-8")  # raises on a lone surrogate
            assert "\r" not in text
        assert "\r" not in event.data
        assert event.retry is None or (isinstance(event.retry, int) and event.retry >= 0)


# --- (a) serialised events round-trip, whatever the chunking -------------------------------

line_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
    max_size=12,
)
field_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyzDAT -_", min_size=1, max_size=6).filter(
    lambda n: n not in {"data", "event", "id", "retry"}
)


@st.composite
def sse_stream(draw: st.DrawFn) -> tuple[bytes, list[SseEvent], str]:
    """A serialised stream of random blocks, with the events it must produce."""
    out: list[str] = []
    expected: list[SseEvent] = []
    last_id = ""
    previous_eol = ""

    def emit(line: str) -> None:
        nonlocal previous_eol
        eols = ["\n", "\r", "\r\n"]
        if previous_eol == "\r" and line == "":
            eols = ["\r", "\r\n"]  # "\r" + "\n" would be one line ending, not two
        eol = draw(st.sampled_from(eols))
        out.append(line + eol)
        previous_eol = eol

    def field(name: str, value: str) -> None:
        forms = [f"{name}: {value}"]
        if not value.startswith(" "):
            forms.append(f"{name}:{value}")  # the space after the colon is optional
        if value == "":
            forms.append(name)  # a line without a colon: empty value
        emit(draw(st.sampled_from(forms)))

    for _ in range(draw(st.integers(0, 6))):
        data: list[str] = []
        event_type = ""
        retry: int | None = None
        for _ in range(draw(st.integers(0, 5))):
            kind = draw(st.sampled_from(["data", "data", "event", "id", "retry", "comment", "x"]))
            if kind == "data":
                value = draw(line_text)
                data.append(value)
                field("data", value)
            elif kind == "event":
                event_type = draw(line_text)
                field("event", event_type)
            elif kind == "id":
                value = draw(line_text)
                if "\0" not in value:
                    last_id = value
                field("id", value)
            elif kind == "retry":
                if draw(st.booleans()):
                    retry = draw(st.integers(0, 10**15))
                    field("retry", str(retry))
                else:
                    field("retry", draw(st.sampled_from(["", "1a", "-5", "1.5", " 7", "٣", "x"])))
            elif kind == "comment":
                emit(":" + draw(line_text))
            else:
                field(draw(field_name), draw(line_text))
        emit("")  # the blank line that dispatches the block
        if data:
            expected.append(SseEvent(event_type or "message", "\n".join(data), last_id, retry))
    if draw(st.booleans()):  # an unterminated final block: discarded
        out.append("data: never dispatched" + draw(st.sampled_from(["", "\n", "\r\n"])))
    stream = "".join(out).encode("utf-8")
    if draw(st.booleans()):
        stream = BOM + stream
    return stream, expected, last_id


@given(sse_stream(), st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_serialised_events_parse_back_under_any_chunking(
    case: tuple[bytes, list[SseEvent], str], cuts: list[int]
) -> None:
    stream, expected, last_id = case
    whole, parser = feed_chunks([stream])
    chunked, _ = feed_chunks(split_at(stream, cuts))
    assert whole == expected
    assert chunked == expected
    assert parser.last_event_id == last_id
    assert whole == reference(stream).events


# --- (b) arbitrary bytes never raise and give valid strings --------------------------------


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_arbitrary_bytes_never_raise_and_chunking_does_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    whole, _ = feed_chunks([data])
    chunked, _ = feed_chunks(split_at(data, cuts))
    assert_valid_strings(whole)
    assert chunked == whole


# --- (c) byte-by-byte equals whole ---------------------------------------------------------

sse_fragments = st.lists(
    st.sampled_from(
        [
            b"\r", b"\n", b"\r\n", b"\n\n", b":", b" ", b"data", b"event", b"id", b"retry",
            b"data: ", b"data:", b"0", b"1", b"9", b"x", b"\x00", b"\xc3\xa9", b"\xe2\x82",
            b"\xe2\x82\xac", b"\xef", b"\xbb", b"\xbf", BOM, b"\xff", b"\xf0\x9f\x98\x80",
            b"\xed\xa0\x80", b"\xc3",
        ]
    ),
    max_size=60,
).map(b"".join)  # fmt: skip


@given(st.one_of(sse_fragments, sse_stream().map(lambda case: case[0]), st.binary(max_size=200)))
def test_byte_by_byte_equals_whole(data: bytes) -> None:
    whole, whole_parser = feed_chunks([data])
    bytewise, byte_parser = feed_chunks([data[i : i + 1] for i in range(len(data))])
    assert bytewise == whole
    assert byte_parser.last_event_id == whole_parser.last_event_id
    assert byte_parser.reconnection_time == whole_parser.reconnection_time


# --- (d) the fast parser equals the naive reference model -----------------------------------


@given(sse_fragments, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_parser_equals_reference_model(data: bytes, cuts: list[int]) -> None:
    expected = reference(data)
    for chunks in ([data], split_at(data, cuts)):
        events, parser = feed_chunks(chunks)
        assert events == expected.events
        assert parser.last_event_id == expected.last_event_id
        assert parser.reconnection_time == expected.reconnection_time


@given(st.binary(max_size=300))
def test_parser_equals_reference_model_on_arbitrary_bytes(data: bytes) -> None:
    events, _ = feed_chunks([data])
    assert events == reference(data).events


@given(sse_fragments, st.integers(min_value=0, max_value=400))
def test_state_mid_stream_equals_reference_of_prefix(data: bytes, cut: int) -> None:
    # Before close(): last_event_id and reconnection_time reflect exactly the bytes fed so far.
    parser = SseParser()
    events = parser.feed(data[:cut])
    prefix = reference(data[:cut])
    assert events == prefix.events
    assert parser.last_event_id == prefix.last_event_id
    assert parser.reconnection_time == prefix.reconnection_time


# --- the decoding claim the parser relies on ------------------------------------------------


@given(st.one_of(sse_fragments, st.binary(max_size=300)))
def test_decoding_per_line_equals_decoding_whole_stream(data: bytes) -> None:
    # CR and LF are ASCII, so they always end an invalid UTF-8 sequence: decoding the pieces
    # between line endings separately gives exactly the whole-stream decode.
    pieces = re.split(b"([\r\n])", data)
    assert "".join(p.decode("utf-8", "replace") for p in pieces) == data.decode("utf-8", "replace")
