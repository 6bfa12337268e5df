"""Many concurrent streams in one process against the loopback server: every text exact.

Each stream has its own prompt; the server's default reply echoes it (`default_script`),
so every stream's expected text is known and distinct (a mixed-up or cut stream fails).
The four provider formats are interleaved. Both sizes run in the default suite (1,000
streams take about 3 s here); the timeout guards a hang.
"""

from __future__ import annotations

import asyncio

import pytest

from rxtokens.aio import collect
from rxtokens.providers import Timeouts
from rxtokens.testing import ProviderServer, Reply
from rxtokens.testing.server import default_script

from ._util import PROVIDERS, open_client_connections, open_stream

NAMES = list(PROVIDERS)


async def _run_many(srv: ProviderServer, count: int) -> None:
    srv.default = Reply(chunk_size=512)  # several reads per stream, cut anywhere
    prompts = [f"stream {i}: what is {i} times {i * 7 % 13}?" for i in range(count)]
    timeouts = Timeouts(connect=60, first_token=120, idle=60)

    async def one(i: int) -> str:
        completion = await collect(
            open_stream(srv, NAMES[i % len(NAMES)], prompts[i], timeout=timeouts)
        )
        return completion.text

    texts = await asyncio.gather(*(one(i) for i in range(count)))
    wrong = [i for i, text in enumerate(texts) if text != default_script(prompts[i]).text]
    assert not wrong, f"{len(wrong)} of {count} streams had the wrong text, e.g. #{wrong[0]}"
    assert len(srv.requests) == count
    assert all(r.completed for r in srv.requests)
    assert await open_client_connections() <= count  # only idle keep-alive ones remain


@pytest.mark.timeout(120)
async def test_200_concurrent_streams_all_exact(srv: ProviderServer) -> None:
    await _run_many(srv, 200)


@pytest.mark.timeout(180)
async def test_1000_concurrent_streams_all_exact(srv: ProviderServer) -> None:
    await _run_many(srv, 1000)
