"""`rxtokens.providers.sse_client.sse`: EventSource semantics over real loopback servers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as ops

from rxtokens.aio import collect, from_async_iterable, to_list
from rxtokens.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionLostError,
    ProviderError,
    StreamDecodeError,
)
from rxtokens.providers import close_sessions, sse_client
from rxtokens.providers.sse_client import sse
from rxtokens.sse import SseEvent
from rxtokens.testing import Reply
from rxtokens.testing.server import default_script
from rxtokens.tokens import Finish, StreamToken, TextDelta

from .server_helpers import running

EXPECTED = default_script("hi").text


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The reconnection delays the client waits (recorded; the wait itself is skipped)."""
    seen: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        seen.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(sse_client, "_sleep", fake_sleep)
    return seen


class Flaky:
    """An SSE endpoint that drops the connection every `per_connection` events."""

    def __init__(self, words: list[str], per_connection: int, retry: int = 7) -> None:
        self.words = words
        self.per_connection = per_connection
        self.retry = retry
        self.last_ids: list[str | None] = []
        self.status = 200

    async def handle(self, request: web.Request) -> web.StreamResponse:
        last = request.headers.get("Last-Event-ID")
        self.last_ids.append(last)
        if self.status != 200:
            return web.Response(status=self.status)
        start = int(last or 0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"retry: {self.retry}\n\n".encode())
        chunk = self.words[start : start + self.per_connection]
        for i, word in enumerate(chunk, start + 1):
            data = json.dumps({"type": "text", "text": word, "index": 0})
            await response.write(f"event: text\nid: {i}\ndata: {data}\n\n".encode())
        if start + len(chunk) >= len(self.words):
            await response.write(f"event: done\nid: {len(self.words) + 1}\ndata: {{}}\n\n".encode())
            await response.write_eof()
        else:  # drop the connection mid-stream
            assert request.transport is not None
            request.transport.close()
        return response


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, str]]:
    endpoint = Flaky([f"w{i} " for i in range(10)], per_connection=3)
    app = web.Application()
    app.router.add_get("/events", endpoint.handle)
    async with TestServer(app) as server:
        yield endpoint, str(server.make_url("/events"))
        await close_sessions()


async def test_reads_a_stream_of_the_rxtokens_server() -> None:
    async with running() as srv:
        stream_id = await srv.start("hi")
        completion = await collect(sse(srv.url(f"/v1/streams/{stream_id}/events"), token=srv.token))
        assert completion.text == EXPECTED
        assert completion.finish_reason == "stop"


async def test_reconnects_after_the_retry_delay_with_last_event_id(
    flaky: tuple[Flaky, str], delays: list[float]
) -> None:
    endpoint, url = flaky
    tokens = await to_list(sse(url, max_retries=1))
    assert tokens == [TextDelta(w) for w in endpoint.words]  # no gap, no duplicate
    assert endpoint.last_ids == [None, "3", "6", "9"]
    assert delays == [0.007, 0.007, 0.007]  # the server's retry: 7 (ms)


async def test_resumes_from_a_given_last_event_id(
    flaky: tuple[Flaky, str], delays: list[float]
) -> None:
    endpoint, url = flaky
    tokens = await to_list(sse(url, last_event_id="8"))
    assert [t.text for t in tokens] == ["w8 ", "w9 "]
    assert endpoint.last_ids == ["8"]
    assert delays == []


async def test_gives_up_after_max_retries(delays: list[float]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        with pytest.raises(ConnectionLostError, match=r"gave up .* after 3 reconnection attempts"):
            await collect(sse(f"http://127.0.0.1:{port}/events", max_retries=3, retry_ms=5))
    finally:
        await close_sessions()
    assert delays == [0.005, 0.005, 0.005]


async def test_http_errors_fail_at_once(delays: list[float]) -> None:
    async with running() as srv:
        stream_id = await srv.start("hi")
        with pytest.raises(AuthenticationError) as info:
            await collect(sse(srv.url(f"/v1/streams/{stream_id}/events"), token="wrong-token"))
        assert "wrong-token" not in str(info.value)
        with pytest.raises(StreamDecodeError, match="text/event-stream"):
            await collect(sse(srv.url("/static/app.js")))
    assert delays == []


async def test_raw_events_end_with_204_after_the_terminal_event(delays: list[float]) -> None:
    async with running() as srv:
        stream_id = await srv.start("hi")
        events = await to_list(
            sse(srv.url(f"/v1/streams/{stream_id}/events"), token=srv.token, decode="raw")
        )
    assert all(isinstance(e, SseEvent) for e in events)
    assert events[-1].event == "done"
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert delays == [2.0]  # the server's retry: 2000, then 204 ends it


async def test_remote_errors_carry_the_partial_completion() -> None:
    async with running(Reply(drop_after=3000)) as srv:
        stream_id = await srv.start("hi")
        with pytest.raises(ProviderError) as info:
            await collect(sse(srv.url(f"/v1/streams/{stream_id}/events"), token=srv.token))
    error = info.value
    assert error.error_type in ("ConnectionLostError", "TruncatedStreamError")
    assert error.partial is not None
    assert error.partial.text
    assert EXPECTED.startswith(error.partial.text)


def test_arguments_are_checked() -> None:
    for kwargs in (
        {"max_retries": -1},
        {"decode": "json"},
        {"retry_ms": -5},
        {"last_event_id": "1\n2"},
        {"headers": ["x"]},
        {"token": 5},
        {"timeout": "soon"},
    ):
        with pytest.raises(ConfigError):
            sse("http://127.0.0.1:1/", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        sse("ftp://x/")


async def test_follows_an_rxtokens_server_that_drops_it(delays: list[float]) -> None:
    """End to end: the server drops a slow client; sse() reconnects and resumes exactly."""
    words = [f"w{i} " for i in range(50)]
    gate = asyncio.Event()

    def upstream(_prompt: object, _params: dict[str, object]) -> Observable[StreamToken]:
        async def tokens() -> AsyncIterator[StreamToken]:
            yield TextDelta(words[0])
            await gate.wait()
            for word in words[1:]:
                yield TextDelta(word)
            yield Finish("stop")

        return from_async_iterable(tokens)

    async with running(upstream=upstream, max_pending=5, retry_ms=20) as srv:
        stream_id = await srv.start("hi")
        seen: list[str] = []

        def on_token(token: StreamToken) -> None:
            if isinstance(token, TextDelta):
                seen.append(token.text)
            gate.set()  # after the first token, the rest floods in: the server drops us

        source = sse(srv.url(f"/v1/streams/{stream_id}/events"), token=srv.token)
        completion = await collect(source.pipe(ops.do_action(on_token)))
    assert completion.text == "".join(words)
    assert seen == words  # each token once, in order
    assert delays  # it did reconnect
    assert set(delays) == {0.02}  # after the server's retry: 20 ms


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=30),
    per_connection=st.integers(min_value=1, max_value=12),
    retry=st.integers(min_value=0, max_value=50),
)
def test_any_drop_pattern_resumes_exactly(count: int, per_connection: int, retry: int) -> None:
    """Property: however often the connection drops, every token arrives once, in order."""
    endpoint = Flaky([f"t{i} " for i in range(count)], per_connection=per_connection, retry=retry)
    waited: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)

    async def main() -> list[object]:
        app = web.Application()
        app.router.add_get("/events", endpoint.handle)
        original = sse_client._sleep
        sse_client._sleep = fake_sleep
        try:
            async with TestServer(app) as server:
                return await to_list(sse(str(server.make_url("/events")), max_retries=1))
        finally:
            sse_client._sleep = original
            await close_sessions()

    tokens = asyncio.run(main())
    assert tokens == [TextDelta(w) for w in endpoint.words]
    connections = -(-count // per_connection)  # ceil
    assert endpoint.last_ids == [None] + [str(i * per_connection) for i in range(1, connections)]
    assert waited == [retry / 1000] * (connections - 1)


async def test_the_last_event_id_persists_across_connections(delays: list[float]) -> None:
    """A connection whose events carry no id keeps the previous last event ID."""
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        n = len(seen)
        if n == 1:
            await response.write(b'event: text\nid: 3\ndata: {"type":"text","text":"a"}\n\n')
        elif n == 2:  # no id field: the last event ID stays "3"
            await response.write(b'event: text\ndata: {"type":"text","text":"b"}\n\n')
        else:
            await response.write(b'event: text\ndata: {"type":"text","text":"c"}\n\n')
            await response.write(b"event: done\ndata: {}\n\n")
            await response.write_eof()
            return response
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_get("/events", handle)
    async with TestServer(app) as server:
        tokens = await to_list(sse(str(server.make_url("/events")), max_retries=1))
        await close_sessions()
    assert [t.text for t in tokens] == ["a", "b", "c"]
    assert seen == [None, "3", "3"]
