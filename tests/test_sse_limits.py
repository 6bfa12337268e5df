"""max_event_bytes: a server that never ends an event cannot grow the buffer without bound."""

from __future__ import annotations

import itertools

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st

from rxtokens import ConfigError, StreamDecodeError
from rxtokens.operators import parse_sse
from rxtokens.sse import SseParser


def feed_all(parser: SseParser, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(
    st.lists(st.text(alphabet="ab é\n:", max_size=40), max_size=8),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_a_limit_above_every_event_changes_nothing(values: list[str], cuts: list[int]) -> None:
    body = b"".join(f"data: {v}\n\n".encode() for v in values)
    chunks = split(body, cuts)
    limit = max((len(f"data: {v}\n\n".encode()) for v in values), default=1) + 1
    assert feed_all(SseParser(max_event_bytes=limit), chunks) == feed_all(SseParser(), chunks)


def bytes_fed_before_failing(
    parser: SseParser, body: bytes, chunk_size: int
) -> tuple[int, StreamDecodeError]:
    fed = 0
    for start in range(0, len(body), chunk_size):
        try:
            parser.feed(body[start : start + chunk_size])
        except StreamDecodeError as error:
            return fed, error
        fed += chunk_size
    raise AssertionError("the limit never fired")


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 5000])
def test_an_endless_event_fails_once_it_passes_the_limit(chunk_size: int) -> None:
    parser = SseParser(max_event_bytes=1000)
    assert parser.feed(b"data: first\n\n") != []
    fed, error = bytes_fed_before_failing(parser, b"data: " + b"x" * 5000, chunk_size)
    assert "max_event_bytes=1000" in str(error)
    assert fed <= 1000 < fed + chunk_size  # it fails with the chunk that crosses the limit
    assert parser.closed


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10"])
def test_invalid_limits_are_config_errors(bad: object) -> None:
    with pytest.raises(ConfigError):
        SseParser(max_event_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        parse_sse(max_event_bytes=bad)  # type: ignore[arg-type]


def test_the_operator_fails_the_stream_and_keeps_earlier_events() -> None:
    seen: list[object] = []
    errors: list[Exception] = []
    completed: list[bool] = []
    chunks = [b"data: a\n\n", b"data: " + b"y" * 300, b"y" * 300, b"\n\n"]
    reactivex.from_iterable(chunks).pipe(parse_sse(max_event_bytes=512)).subscribe(
        seen.append, errors.append, lambda: completed.append(True)
    )
    assert [e.data for e in seen] == ["a"]  # type: ignore[attr-defined]
    assert len(errors) == 1
    assert isinstance(errors[0], StreamDecodeError)
    assert completed == []
