"""Streams shared through Redis by real server processes (``rxtokens serve --redis``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from rxtokens.sse import SseEvent, SseParser
from rxtokens.testing import ProviderServer, Reply, Script
from rxtokens.testing.cluster import HEARTBEAT, TOKEN, RedisServer, ServerProcess, cluster
from tests._redis import redis_process

__all__ = ["redis_process"]  # the fixture, imported for pytest

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORDS = 60
LOST_BOUND = 4 * HEARTBEAT + 1.5
"""producer_lost within LOST_AFTER + 1 heartbeats (plus slack for a loaded machine)."""


def _words(count: int) -> Script:
    return Script(text=" ".join(f"w{i}" for i in range(count)))


@pytest.fixture
async def provider() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(default=Reply(script=_words(WORDS), delay=0.02)) as server:
        yield server


@pytest.fixture
def three(redis_process: RedisServer, provider: ProviderServer) -> Iterator[list[ServerProcess]]:
    with cluster(
        redis_process.url, provider.base_url_for("openai"), 3, "--grace", "0.3"
    ) as servers:
        yield servers


@pytest.fixture
def three_calm(
    redis_process: RedisServer, provider: ProviderServer
) -> Iterator[list[ServerProcess]]:
    """Three processes with a 1 s heartbeat (the default): hundreds of clients arriving at
    once stall a process's loop on a loaded 2-core machine for longer than 3 x 0.2 s."""
    base_url = provider.base_url_for("openai")
    with cluster(redis_process.url, base_url, 3, heartbeat=1.0) as servers:
        yield servers


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


async def start(
    session: aiohttp.ClientSession, server: ServerProcess, **body: Any
) -> dict[str, Any]:
    async with session.post(
        f"{server.url}/v1/streams", json={"prompt": "hi", **body}, headers=AUTH
    ) as response:
        assert response.status == 201, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def events(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    stream_id: str,
    *,
    after: int = 0,
    limit: int | None = None,
    headers: dict[str, str] | None = None,
) -> list[SseEvent]:
    """Events from `server` after `after` until the end (or `limit` token events, then cut)."""
    got: list[SseEvent] = []
    parser = SseParser()
    request_headers = {**(headers or AUTH), "Last-Event-ID": str(after)}
    async with session.get(
        f"{server.url}/v1/streams/{stream_id}/events", headers=request_headers
    ) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            for event in parser.feed(chunk):
                got.append(event)
                tokens = [e for e in got if e.event not in ("done", "error")]
                if limit is not None and len(tokens) >= limit:
                    return got  # the connection is cut here
    return got


def text_of(got: list[SseEvent]) -> str:
    return "".join(json.loads(e.data)["text"] for e in got if e.event == "text")


def seqs(got: list[SseEvent]) -> list[int]:
    return [int(e.id) for e in got if e.event not in ("done", "error")]


async def test_start_on_a_read_on_b_cut_and_resume_on_c(
    three: list[ServerProcess], session: aiohttp.ClientSession
) -> None:
    a, b, c = three
    stream_id = (await start(session, a))["id"]
    first = await events(session, b, stream_id, limit=10)
    rest = await events(session, c, stream_id, after=seqs(first)[-1])
    assert rest[-1].event == "done"
    assert seqs(first) + seqs(rest) == list(range(1, len(seqs(first) + seqs(rest)) + 1))
    final = json.loads(rest[-1].data)
    assert text_of(first + rest) == final["text"] == " ".join(f"w{i}" for i in range(WORDS))
    async with session.get(f"{b.url}/v1/streams/{stream_id}", headers=AUTH) as response:
        status = await response.json()
    assert (status["status"], status["completion"]["text"]) == ("done", final["text"])
    assert status["seq"] == seqs(rest)[-1]


async def test_the_read_token_works_on_every_process(
    three: list[ServerProcess], session: aiohttp.ClientSession
) -> None:
    a, b, _c = three
    created = await start(session, a)
    reader = {"Authorization": f"Bearer {created['read_token']}"}
    got = await events(session, b, created["id"], headers=reader)
    assert got[-1].event == "done"
    wrong = {"Authorization": "Bearer not-the-read-token"}
    async with session.get(f"{b.url}/v1/streams/{created['id']}/events", headers=wrong) as response:
        assert response.status == 401
    async with session.get(f"{b.url}/v1/streams/nope", headers=AUTH) as response:
        assert response.status == 404


async def _fan_out(
    three: list[ServerProcess], session: aiohttp.ClientSession, readers: int
) -> None:
    a = three[0]
    stream_id = (await start(session, a, keep_alive=True))["id"]
    results = await asyncio.gather(
        *(events(session, three[i % 3], stream_id) for i in range(readers))
    )
    expected = " ".join(f"w{i}" for i in range(WORDS))
    for got in results:
        assert got[-1].event == "done", got[-1].data
        assert text_of(got) == expected
        assert seqs(got) == list(range(1, len(seqs(got)) + 1))


async def test_100_readers_over_three_processes_all_get_every_token(
    three_calm: list[ServerProcess], session: aiohttp.ClientSession
) -> None:
    await _fan_out(three_calm, session, 100)


@pytest.mark.slow
async def test_1000_readers_over_three_processes_all_get_every_token(
    three_calm: list[ServerProcess], session: aiohttp.ClientSession
) -> None:
    await _fan_out(three_calm, session, 1000)


async def test_delete_on_b_cancels_the_upstream_request_on_a(
    three: list[ServerProcess], session: aiohttp.ClientSession, provider: ProviderServer
) -> None:
    a, b, _c = three
    provider.queue(Reply(script=_words(2000), delay=0.02))
    stream_id = (await start(session, a, keep_alive=True))["id"]
    await events(session, b, stream_id, limit=3)
    began = time.monotonic()
    async with session.delete(f"{b.url}/v1/streams/{stream_id}", headers=AUTH) as response:
        assert (await response.json())["status"] == "cancelled"
    record = await provider.wait_ended(within=10)
    assert record.disconnected
    assert time.monotonic() - began < 2 * HEARTBEAT + 2.0
    got = await events(session, b, stream_id)
    assert json.loads(got[-1].data)["type"] == "cancelled"


async def test_the_last_reader_leaving_on_b_cancels_the_upstream_on_a(
    three: list[ServerProcess], session: aiohttp.ClientSession, provider: ProviderServer
) -> None:
    a, b, _c = three
    provider.queue(Reply(script=_words(2000), delay=0.02))
    stream_id = (await start(session, a))["id"]
    await events(session, b, stream_id, limit=3)  # read on B only, then leave
    record = await provider.wait_ended(within=10)
    assert record.disconnected
    async with session.get(f"{a.url}/v1/streams/{stream_id}", headers=AUTH) as response:
        assert (await response.json())["status"] == "cancelled"


async def test_sigkill_of_the_producer_gives_producer_lost_with_the_partial(
    redis_process: RedisServer, provider: ProviderServer, session: aiohttp.ClientSession
) -> None:
    provider.default = Reply(script=_words(2000), delay=0.02)
    with cluster(redis_process.url, provider.base_url_for("openai"), 3) as (a, b, c):
        stream_id = (await start(session, a))["id"]
        readers = [
            asyncio.ensure_future(events(session, server, stream_id)) for server in (b, c, b)
        ]
        await asyncio.sleep(0.5)
        a.kill()
        killed = time.monotonic()
        async with asyncio.timeout(30):
            results = await asyncio.gather(*readers)
        assert time.monotonic() - killed < LOST_BOUND
        for got in results:
            end = json.loads(got[-1].data)
            assert got[-1].event == "error"
            assert end["type"] == "producer_lost"
            assert end["partial"]["text"].startswith(text_of(got))
            assert text_of(got)
        # a client that reconnects later gets the same end, from any process
        late = await events(session, c, stream_id, after=2)
        assert json.loads(late[-1].data)["type"] == "producer_lost"


async def _read_then_kill(
    session: aiohttp.ClientSession, server: ServerProcess, stream_id: str, got: list[SseEvent]
) -> None:
    """Read from `server` into `got`; SIGKILL the server after 8 events (the read then fails)."""
    parser = SseParser()
    url = f"{server.url}/v1/streams/{stream_id}/events"
    async with session.get(url, headers=AUTH) as response:
        async for chunk in response.content.iter_any():
            got.extend(parser.feed(chunk))
            if len(got) >= 8:
                server.kill()


async def test_a_reader_whose_process_dies_resumes_elsewhere_with_nothing_lost(
    redis_process: RedisServer, provider: ProviderServer, session: aiohttp.ClientSession
) -> None:
    with cluster(redis_process.url, provider.base_url_for("openai"), 3) as (a, b, c):
        stream_id = (await start(session, a))["id"]
        got: list[SseEvent] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            await _read_then_kill(session, b, stream_id, got)
        rest = await events(session, c, stream_id, after=seqs(got)[-1])
        assert seqs(got) + seqs(rest) == list(range(1, len(seqs(got) + seqs(rest)) + 1))
        assert text_of(got + rest) == json.loads(rest[-1].data)["text"]


async def test_a_redis_outage_ends_streams_typed_refuses_new_ones_and_recovers(
    redis_process: RedisServer, provider: ProviderServer, session: aiohttp.ClientSession
) -> None:
    provider.default = Reply(script=_words(2000), delay=0.02)
    with cluster(redis_process.url, provider.base_url_for("openai"), 2) as (a, b):
        stream_id = (await start(session, a))["id"]
        readers = [asyncio.ensure_future(events(session, s, stream_id)) for s in (a, b)]
        await asyncio.sleep(0.5)
        redis_process.stop()
        async with asyncio.timeout(30):
            results = await asyncio.gather(*readers)
        for got in results:
            assert got[-1].event == "error"
            assert json.loads(got[-1].data)["type"] == "store_unavailable"
        async with session.post(
            f"{b.url}/v1/streams", json={"prompt": "hi"}, headers=AUTH
        ) as response:
            assert response.status == 503
            assert "Redis" in (await response.json())["error"]["message"]
        redis_process.start()
        provider.default = Reply(script=_words(5), delay=0.0)
        stream_id = (await start(session, b))["id"]
        got = await events(session, a, stream_id)
        assert text_of(got) == "w0 w1 w2 w3 w4"
