"""Load (bounded, loopback only): 500 concurrent SSE clients on 20 streams; 50 that never read.

The upstream of each stream sends a few tokens, then waits until all 500 clients are
attached (each has seen a token), then sends the rest: so all 500 connections are
open at once and every client receives the live part of its stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from reactivex import Observable

from rxtokens.aio import from_async_iterable
from rxtokens.sse import SseParser
from rxtokens.tokens import Finish, StreamToken, TextDelta

from .server_helpers import running, until

STREAMS = 20
CLIENTS = 500
WORDS = 60


def words(prompt: str) -> list[str]:
    return [f"{prompt}-{i} " for i in range(WORDS)]


async def test_500_clients_on_20_streams_all_receive_every_token() -> None:
    attached = asyncio.Event()

    def upstream(prompt: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        async def tokens() -> AsyncIterator[StreamToken]:
            for i, word in enumerate(words(prompt)):
                if i == 3:
                    await attached.wait()
                yield TextDelta(word)
            yield Finish("stop")

        return from_async_iterable(tokens)

    async with running(upstream=upstream, max_clients=CLIENTS, max_streams=STREAMS) as srv:
        prompts = [f"s{i}" for i in range(STREAMS)]
        ids = await asyncio.gather(*(srv.start(p) for p in prompts))
        live = [0]

        async def client(n: int) -> tuple[int, str, list[int]]:
            k = n % STREAMS
            parser = SseParser()
            text: list[str] = []
            seqs: list[int] = []
            async with srv.session.get(
                srv.url(f"/v1/streams/{ids[k]}/events"), headers=srv.auth
            ) as response:
                assert response.status == 200
                async for chunk in response.content.iter_any():
                    for event in parser.feed(chunk):
                        if event.event == "done":
                            assert json.loads(event.data)["text"] == "".join(text)
                            return k, "".join(text), seqs
                        seqs.append(int(event.id))
                        if event.event == "text":
                            text.append(json.loads(event.data)["text"])
                            if len(text) == 1:
                                live[0] += 1
                                if live[0] == CLIENTS:
                                    attached.set()
            raise AssertionError("the stream ended without a done event")

        async with asyncio.timeout(60):
            results = await asyncio.gather(*(client(n) for n in range(CLIENTS)))
        assert len(results) == CLIENTS
        for k, text, seqs in results:
            assert text == "".join(words(prompts[k]))
            assert seqs == list(range(1, WORDS + 2))  # every token, in order, once
        for stream_id in ids:
            assert (await srv.status(stream_id))["status"] == "done"


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


GROWTH_BOUND_MB = 150
"""Peak memory growth allowed for 50 non-reading clients on a 200,000-token stream.

Measured: ~64 MB (of which the stream's own replay log is the larger part) and all
clients dropped in ~3 s; before the clients were bounded: +728 MB for ~37 s.
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="measures Linux RSS")
async def test_50_clients_that_never_read_keep_memory_bounded() -> None:
    gate = asyncio.Event()

    def upstream(prompt: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        async def tokens() -> AsyncIterator[StreamToken]:
            await gate.wait()
            for i in range(200_000):
                yield TextDelta(f"w{i} ")
            yield Finish("stop")

        return from_async_iterable(tokens)

    base = _rss_mb()
    async with running(upstream=upstream, max_clients=100) as srv:
        stream_id = await srv.start("hi")
        writers = []
        for _ in range(50):  # ask for the events, then never read
            _reader, writer = await asyncio.open_connection(srv.server.host, srv.server.port)
            writer.write(
                f"GET /v1/streams/{stream_id}/events HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {srv.token}\r\n\r\n".encode()
            )
            writers.append(writer)
        try:
            await until(lambda: len(srv.state.queues) == 50)
            gate.set()
            final = srv.state.streams[stream_id].final
            assert final is not None
            peak = [base]
            start = time.monotonic()

            def over() -> bool:
                peak[0] = max(peak[0], _rss_mb())
                return final.done() and not srv.state.queues

            await until(over, timeout=60, every=0.05)
            peak = max(peak[0], _rss_mb())
            assert peak - base < GROWTH_BOUND_MB, (base, peak, time.monotonic() - start)
        finally:
            for writer in writers:
                writer.close()
