"""SseParser against the WHATWG spec's own examples and one test per rule.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import pytest

from rxtokens.sse import SseEvent, SseParser

E = SseEvent


def parse(data: bytes) -> list[SseEvent]:
    """All events of a whole stream: one feed() then close()."""
    parser = SseParser()
    return parser.feed(data) + parser.close()


def parse_bytewise(data: bytes) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    return events + parser.close()


def both(data: bytes) -> list[SseEvent]:
    """Parse whole and byte by byte; they must agree."""
    whole = parse(data)
    assert parse_bytewise(data) == whole
    return whole


# --- the spec's examples -------------------------------------------------------------------


def test_spec_stock_ticker_multiline_data() -> None:
    # "data: YHOO / data: +2 / data: 10" -> one message with three lines
    assert both(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [E(data="YHOO\n+2\n10")]


def test_spec_four_blocks_with_comment_and_ids() -> None:
    stream = (
        b": test stream\n"
        b"\n"
        b"data: first event\n"
        b"id: 1\n"
        b"\n"
        b"data:second event\n"
        b"id\n"
        b"\n"
        b"data:  third event\n"
    )
    # The last block has no blank line after it: it is never dispatched.
    assert both(stream) == [E(data="first event", id="1"), E(data="second event", id="")]
    assert both(stream + b"\n") == [
        E(data="first event", id="1"),
        E(data="second event", id=""),
        E(data=" third event", id=""),  # only one leading space is removed
    ]


def test_spec_empty_data_and_newline_data_last_block_discarded() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:"
    assert both(stream) == [E(data=""), E(data="\n")]


def test_spec_space_after_colon_is_optional() -> None:
    assert both(b"data:test\n\ndata: test\n\n") == [E(data="test"), E(data="test")]


def test_spec_keepalive_comment_lines_fire_nothing() -> None:
    stream = b": ping\n\n: ping\n\ndata: x\n\n:\n\n"
    assert both(stream) == [E(data="x")]


def test_spec_event_type_and_custom_events() -> None:
    stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\ndata: plain\n\n"
    assert both(stream) == [
        E(event="add", data="73857293"),
        E(event="remove", data="2153"),
        E(data="plain"),
    ]


# --- one test per rule ---------------------------------------------------------------------


def test_bom_stripped_at_stream_start() -> None:
    assert both(b"\xef\xbb\xbfdata: a\n\n") == [E(data="a")]


def test_bom_split_across_chunks() -> None:
    parser = SseParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb") == []
    assert parser.feed(b"\xbfdata: a\n\n") == [E(data="a")]
    parser = SseParser()
    assert parser.feed(b"\xef") == []
    assert parser.feed(b"\xbb\xbfdata: b\n\n") == [E(data="b")]


def test_only_one_bom_stripped_and_only_at_start() -> None:
    # A second BOM is a U+FEFF character: it makes the field name "\ufeffdata" (ignored).
    assert both(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []
    assert both(b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n") == [E(data="a")]
    assert both(b"data: \xef\xbb\xbfa\n\n") == [E(data="\ufeffa")]


def test_partial_bom_prefix_is_content() -> None:
    # EF BB followed by something else is not a BOM: invalid UTF-8 -> U+FFFD.
    assert both(b"\xef\xbbdata: a\n\n") == []  # field name "\ufffddata" is unknown
    assert both(b"\n\xef\xbb\xbfdata: a\n\n") == []  # BOM after the first byte
    assert both(b"data: \xef\xbb\n\n") == [E(data="\ufffd")]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert both(stream) == [E(event="e", data="a\nb")]


def test_mixed_line_endings() -> None:
    assert both(b"data: a\rdata: b\r\ndata: c\n\r\n") == [E(data="a\nb\nc")]
    assert both(b"data: a\r\rdata: b\n\r") == [E(data="a"), E(data="b")]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    # If the LF after the CR counted as a second line ending it would dispatch here.
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [E(data="a\nb")]
    assert parser.feed(b"\n") == []  # the LF of the CRLF that ended the block
    assert parser.feed(b"data: c\n\n") == [E(data="c")]


def test_cr_then_cr_across_chunks_is_two_line_endings() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [E(data="a")]


def test_comment_lines_ignored_anywhere_in_block() -> None:
    assert both(b"data: a\n: comment: with colon\ndata: b\n\n") == [E(data="a\nb")]


def test_field_value_split_at_first_colon_one_space_removed() -> None:
    assert both(b"data: a: b:c\n\n") == [E(data="a: b:c")]
    assert both(b"data:  two spaces\n\n") == [E(data=" two spaces")]
    assert both(b"data:\tx\n\n") == [E(data="\tx")]  # only a space is removed


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert both(b"data\n\n") == [E(data="")]
    assert both(b"data\ndata\n\n") == [E(data="\n")]
    assert both(b"event\ndata: x\n\n") == [E(data="x")]


def test_data_lines_accumulate_final_lf_removed() -> None:
    assert both(b"data: a\ndata:\ndata: c\n\n") == [E(data="a\n\nc")]


def test_empty_data_buffer_dispatches_nothing_but_resets_event_type() -> None:
    assert both(b"event: x\n\ndata: y\n\n") == [E(data="y")]
    assert both(b"event: x\nid: 3\n\n") == []


def test_event_type_reset_after_dispatch() -> None:
    assert both(b"event: x\ndata: 1\n\ndata: 2\n\n") == [E("x", "1"), E("message", "2")]


def test_empty_event_type_means_message() -> None:
    assert both(b"event:\ndata: 1\n\n") == [E("message", "1")]
    assert both(b"event: x\nevent:\ndata: 1\n\n") == [E("message", "1")]


def test_id_persists_across_events() -> None:
    assert both(b"id: 7\ndata: a\n\ndata: b\n\n") == [E(data="a", id="7"), E(data="b", id="7")]


def test_empty_id_resets_last_event_id() -> None:
    assert both(b"id: 7\ndata: a\n\nid:\ndata: b\n\nid: 8\n\nid\ndata: c\n\n") == [
        E(data="a", id="7"),
        E(data="b", id=""),
        E(data="c", id=""),
    ]


def test_id_with_nul_is_ignored() -> None:
    assert both(b"id: 1\n\nid: a\x00b\ndata: x\n\n") == [E(data="x", id="1")]


def test_id_applies_to_whole_block_and_id_only_block() -> None:
    # An id after the data lines of the same block still applies to that event.
    assert both(b"data: a\nid: 5\n\n") == [E(data="a", id="5")]
    parser = SseParser()
    assert parser.feed(b"id: 9\n\n") == []
    assert parser.last_event_id == "9"
    assert parser.feed(b"data: z\n\n") == [E(data="z", id="9")]


def test_last_event_id_only_changes_on_dispatch() -> None:
    parser = SseParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert parser.last_event_id == "1"  # block 2 not terminated yet
    parser.close()
    assert parser.last_event_id == "1"  # and it never will be


def test_retry_valid_digits_only() -> None:
    assert both(b"retry: 1500\ndata: a\n\n") == [E(data="a", retry=1500)]
    for bad in (b"retry: 15s", b"retry: -1", b"retry: 1.5", b"retry:", b"retry: \xd9\xa3"):
        assert both(bad + b"\ndata: a\n\n") == [E(data="a")], bad
    assert both(b"retry: 0\ndata: a\n\n") == [E(data="a", retry=0)]


def test_retry_is_per_block_and_latest_valid_wins() -> None:
    stream = b"retry: 10\nretry: x\nretry: 20\ndata: a\n\ndata: b\n\n"
    assert both(stream) == [E(data="a", retry=20), E(data="b")]


def test_reconnection_time_property() -> None:
    parser = SseParser()
    assert parser.reconnection_time is None
    parser.feed(b"retry: 100\n\n")  # no event, but the reconnection time is set
    assert parser.reconnection_time == 100
    parser.feed(b"data: a\nretry: 250\n")  # a complete retry line in an open block applies
    assert parser.reconnection_time == 250
    parser.feed(b"retry: 99")  # an incomplete line does not
    assert parser.reconnection_time == 250
    parser.close()
    assert parser.reconnection_time == 250


def test_unknown_and_case_mismatched_fields_ignored() -> None:
    assert both(b"Data: a\nfoo: bar\ndata : b\nDATA: c\ndata: d\n\n") == [E(data="d")]


def test_unterminated_final_block_discarded_at_close() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\n\ndata: b\n") == [E(data="a")]
    assert parser.close() == []
    parser = SseParser()
    assert parser.feed(b"data: a") == []
    assert parser.close() == []


def test_invalid_utf8_replaced_like_whole_stream_decode() -> None:
    raw = b"data: a\xff\xc3b\xe2\x82\xed\xa0\x80z\n\n"
    expected = raw.decode("utf-8", "replace")[len("data: ") : -2]
    assert both(raw) == [E(data=expected)]
    assert "\ufffd" in expected


def test_multibyte_characters_split_across_chunks() -> None:
    text = "é€😀東京"
    data = ("data: " + text + "\n\n").encode()
    for cut in range(len(data) + 1):
        parser = SseParser()
        events = parser.feed(data[:cut]) + parser.feed(data[cut:]) + parser.close()
        assert events == [E(data=text)], cut


def test_nul_and_non_ascii_in_data_kept() -> None:
    assert both(b"data: a\x00b\n\n") == [E(data="a\x00b")]
    assert both("event: ünï\ndata: 😀\n\n".encode()) == [E(event="ünï", data="😀")]


def test_blank_lines_between_blocks_and_at_start() -> None:
    assert both(b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\n") == [E(data="a"), E(data="b")]


def test_fast_path_with_ids_set_before() -> None:
    # A run of plain data blocks after an id: the fast path must use the last event id.
    parser = SseParser()
    assert parser.feed(b"id: 4\n\n") == []
    assert parser.feed(b"data: a\n\ndata: b\n\ndata: c") == [
        E(data="a", id="4"),
        E(data="b", id="4"),
    ]
    assert parser.feed(b"\n\n") == [E(data="c", id="4")]


def test_empty_chunks_and_bytes_like_input() -> None:
    parser = SseParser()
    assert parser.feed(b"") == []
    assert parser.feed(bytearray(b"data: a\n")) == []
    assert parser.feed(b"") == []
    assert parser.feed(memoryview(b"\n")) == [E(data="a")]


def test_feed_rejects_str_and_feed_after_close() -> None:
    parser = SseParser()
    with pytest.raises(TypeError, match="expects bytes, got str"):
        parser.feed("data: a\n\n")  # type: ignore[arg-type]
    parser.close()
    with pytest.raises(RuntimeError, match="after close"):
        parser.feed(b"data: a\n\n")


def test_events_are_sse_event_instances_with_defaults() -> None:
    (event,) = parse(b"data: x\n\n")
    assert type(event) is SseEvent
    assert event == SseEvent(data="x")
    assert (event.event, event.data, event.id, event.retry) == ("message", "x", "", None)
    assert repr(event) == "SseEvent(event='message', data='x', id='', retry=None)"


# --- the fast paths must fall back exactly when a block has another shape -----------------


def test_event_data_pairs_fast_path() -> None:
    stream = b"event: a\ndata: 1\n\nevent: \ndata: 2\n\nevent: c\ndata:  3\n\n"
    assert both(stream) == [E("a", "1"), E("message", "2"), E("c", " 3")]


def test_event_data_fast_path_falls_back_on_unbalanced_blocks() -> None:
    # Same number of LFs as k "event/data" pairs, but one block has no data line and the
    # next has two: the events must still be the spec's.
    stream = b"event: a\ndata: 1\n\nevent: b\n\nevent: c\ndata: 2\ndata: 3\n\n"
    assert both(stream) == [E("a", "1"), E("c", "2\n3")]
    stream = b"event: a\ndata: 1\n\nevent: b\nid: 9\n\nevent: c\ndata: 2\n\n"
    assert both(stream) == [E("a", "1"), E("c", "2", "9")]


def test_data_fast_path_falls_back_on_other_shapes() -> None:
    assert both(b"data: a\n\ndata: b\ndata: c\n\n") == [E(data="a"), E(data="b\nc")]
    assert both(b"data: a\n\nevent: x\ndata: b\n\n") == [E(data="a"), E("x", "b")]
    assert both(b"data: a\n\n\ndata: b\n\n") == [E(data="a"), E(data="b")]
    assert both(b"data: a\n\n: c\n\ndata: b\n\n") == [E(data="a"), E(data="b")]
