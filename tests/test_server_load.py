"""Load (bounded, loopback only): 500 concurrent SSE clients on 20 streams.

The upstream of each stream sends a few tokens, then waits until all 500 clients are
attached (each has seen a token), then sends the rest: so all 500 connections are
open at once and every client receives the live part of its stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from reactivex import Observable

from rxtokens.aio import from_async_iterable
from rxtokens.sse import SseParser
from rxtokens.tokens import Finish, StreamToken, TextDelta

from .server_helpers import running

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
