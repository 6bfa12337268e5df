"""Bad input from the server: each case is one specific error, or a correct retry, never a hang.

Garbage bytes, invalid JSON in ``data:``, a wrong content type, HTML error pages, gzip
bodies (valid and lying), HTTP 500 / 429 / 529 with ``retry-after``. Every stream is
collected under pytest-timeout (60 s per test), so a hang fails the test instead of the run.
"""

from __future__ import annotations

import pytest

from rxtokens import (
    AuthenticationError,
    ProviderHTTPError,
    RateLimitError,
    StreamDecodeError,
    StreamError,
    TruncatedStreamError,
)
from rxtokens.aio import collect
from rxtokens.operators import is_retryable, retry_with_backoff
from rxtokens.testing import ProviderServer, Reply, Script, encode, expected_completion

from ._util import PROVIDERS, open_client_connections, open_stream, text_deltas

pytestmark = pytest.mark.timeout(60)

NAMES = list(PROVIDERS)
DELTAS = text_deltas(5)
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    "<script>var x = '<b>noise</b>';</script></body>\r\n</html>\r\n"
)


async def _error(srv: ProviderServer, name: str, reply: Reply) -> StreamError:
    srv.queue(reply)
    with pytest.raises(StreamError) as info:
        await collect(open_stream(srv, name))
    return info.value


# --------------------------------------------------------------------------- garbage


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x01\xff\xfe\x80 garbage\n\n\xc3(",
        b"HTTP/1.1 200 OK\r\n\r\nnot an event stream at all\r\n",
        b": only a comment\n\n: and another\n\n",
        b"event: message_stop\n\n",  # an event without data is never dispatched
    ],
    ids=["empty", "binary", "text", "comments", "data-less"],
)
async def test_garbage_without_events_is_truncated(
    srv: ProviderServer, name: str, body: bytes
) -> None:
    error = await _error(srv, name, Reply(body=body))
    assert type(error) is TruncatedStreamError
    assert error.partial is None or error.partial.text == ""


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "data",
    [b"{not json", b"\x00\xff\xfe{{{", b'{"a": 1', b"[DONE", b"\xc3("],
    ids=["brace", "binary", "unclosed", "done-typo", "bad-utf8"],
)
async def test_invalid_json_after_valid_events_keeps_the_text(
    srv: ProviderServer, name: str, data: bytes
) -> None:
    fmt = PROVIDERS[name][1]
    events = encode(fmt, Script(text=DELTAS))
    marker = DELTAS[2].encode()
    upto = next(i for i, e in enumerate(events) if marker in e) + 1
    bad = (b"event: content_block_delta\n" if fmt == "anthropic" else b"") + b"data: " + data
    error = await _error(srv, name, Reply(events=[*events[:upto], bad + b"\n\n", *events[upto:]]))
    assert type(error) is StreamDecodeError
    assert error.partial is not None
    assert error.partial.text == "".join(DELTAS[:3])
    assert name.split("_")[0] in str(error)  # names the provider


@pytest.mark.parametrize("name", NAMES)
async def test_json_that_is_not_an_object_is_a_decode_error(srv: ProviderServer, name: str) -> None:
    fmt = PROVIDERS[name][1]
    prefix = b"event: message_start\n" if fmt == "anthropic" else b""
    error = await _error(srv, name, Reply(body=prefix + b"data: [1, 2, 3]\n\n"))
    assert type(error) is StreamDecodeError
    assert "[1, 2, 3]" in str(error)


async def test_four_megabytes_without_a_newline_end_as_truncated(srv: ProviderServer) -> None:
    """No event boundary in 4 MB (16 KB writes): buffered linearly, ends as truncated."""
    body = b"data: " + b"x" * (4 * 1024 * 1024)
    error = await _error(srv, "openai", Reply(body=body, chunk_size=16384))
    assert type(error) is TruncatedStreamError


# --------------------------------------------------------------------------- content type


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", None),
        ("text/plain", None),
        ("text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>"),
    ],
    ids=["json", "plain", "html"],
)
async def test_wrong_content_type_on_200_is_a_decode_error(
    srv: ProviderServer, name: str, content_type: str, body: bytes | None
) -> None:
    error = await _error(srv, name, Reply(content_type=content_type, body=body))
    assert type(error) is StreamDecodeError
    assert repr(content_type) in str(error)
    assert "<h1>" not in str(error)  # HTML is shown as text
    assert await open_client_connections() == 0 or srv.requests[-1].completed


@pytest.mark.parametrize("name", NAMES)
async def test_html_error_page_is_a_short_http_error(srv: ProviderServer, name: str) -> None:
    error = await _error(srv, name, Reply(status=502, body=HTML_502))
    assert type(error) is ProviderHTTPError
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)
    assert "<" not in str(error)
    assert "noise" not in str(error)  # scripts are dropped
    assert error.body == HTML_502  # the raw body is kept for debugging


# --------------------------------------------------------------------------- gzip


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk_size", [None, 1, 50])
async def test_gzip_bodies_decode_exactly(
    srv: ProviderServer, name: str, chunk_size: int | None
) -> None:
    script = Script(text=DELTAS, usage=(3, 5))
    srv.queue(Reply(script=script, gzip=True, chunk_size=chunk_size))
    completion = await collect(open_stream(srv, name))
    assert completion == expected_completion(script, PROVIDERS[name][1])


@pytest.mark.parametrize("name", NAMES)
async def test_gzip_header_on_a_plain_body_is_a_specific_error(
    srv: ProviderServer, name: str
) -> None:
    events = encode(PROVIDERS[name][1], Script(text=DELTAS))
    error = await _error(srv, name, Reply(events=events, headers={"Content-Encoding": "gzip"}))
    # aiohttp reports the undecodable body as a payload error; rxtokens names it a decode
    # error, which retry_with_backoff does not retry (the same bytes would fail again).
    assert type(error) is StreamDecodeError
    assert not is_retryable(error)
    assert "content-encoding" in str(error).lower()
    assert error.partial is None or error.partial.text == ""
    assert await open_client_connections() == 0


# --------------------------------------------------------------------------- HTTP status


@pytest.mark.parametrize("name", NAMES)
async def test_500_is_an_http_error(srv: ProviderServer, name: str) -> None:
    error = await _error(srv, name, Reply(status=500, error_message="The server had an error"))
    assert type(error) is ProviderHTTPError
    assert error.status == 500
    assert "The server had an error" in str(error)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("status", [429, 529])
async def test_429_and_529_are_rate_limits_with_retry_after(
    srv: ProviderServer, name: str, status: int
) -> None:
    error = await _error(srv, name, Reply(status=status, retry_after=7))
    assert type(error) is RateLimitError
    assert error.status == status
    assert error.retry_after == 7.0


@pytest.mark.parametrize("name", NAMES)
async def test_retry_before_the_first_token_through_429_529_500(
    srv: ProviderServer, name: str
) -> None:
    """429 (retry-after 0.2 s), 529, 500, then success: the answer is exact, 4 requests."""
    script = Script(text=DELTAS, usage=(2, 5))
    srv.queue(
        Reply(status=429, retry_after=0.2),
        Reply(status=529, retry_after=0),
        Reply(status=500),
        Reply(script=script),
    )
    tokens = open_stream(srv, name).pipe(
        retry_with_backoff(max_attempts=4, base_delay=0.01, max_delay=1.0)
    )
    completion = await collect(tokens)
    assert completion == expected_completion(script, PROVIDERS[name][1])
    records = srv.requests
    assert [r.status for r in records] == [429, 529, 500, 200]
    first_end = records[0].ended_at
    assert first_end is not None
    assert records[1].started_at - first_end >= 0.2  # retry-after was honoured (a lower bound)


async def test_retries_are_bounded(srv: ProviderServer) -> None:
    srv.register("openai_chat", Reply(status=429, retry_after=0))
    tokens = open_stream(srv, "openai").pipe(retry_with_backoff(max_attempts=3, base_delay=0.01))
    with pytest.raises(RateLimitError):
        await collect(tokens)
    assert len(srv.requests) == 3


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=400),
        Reply(status=401),
        Reply(content_type="application/json"),
        Reply(body=b"data: {oops\n\n"),
    ],
    ids=["400", "401", "content-type", "bad-json"],
)
async def test_permanent_errors_are_not_retried(srv: ProviderServer, reply: Reply) -> None:
    srv.queue(reply)
    tokens = open_stream(srv, "anthropic").pipe(retry_with_backoff(max_attempts=5, base_delay=0))
    with pytest.raises((ProviderHTTPError, StreamDecodeError)) as info:
        await collect(tokens)
    assert len(srv.requests) == 1
    if reply.status == 401:
        assert isinstance(info.value, AuthenticationError)


async def test_no_retry_once_a_token_went_out(srv: ProviderServer) -> None:
    """A drop after the first token is not retried: re-sending would duplicate text."""
    events = encode("openai_chat", Script(text=DELTAS))
    marker = DELTAS[1].encode()
    upto = next(i for i, e in enumerate(events) if marker in e) + 1
    srv.queue(Reply(events=events, drop_after=sum(map(len, events[:upto]))))
    tokens = open_stream(srv, "openai").pipe(retry_with_backoff(max_attempts=5, base_delay=0))
    with pytest.raises(TruncatedStreamError) as info:
        await collect(tokens)
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(DELTAS[:2])
    assert len(srv.requests) == 1
