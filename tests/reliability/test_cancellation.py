"""Cancellation: disposing a subscription closes the connection, and how fast the server sees it.

The server stalls after the first text until the client goes away, so its response can
only end by noticing the disconnect. The latency from ``dispose()`` to the server's end
of the response is measured and printed (``-s``); it is asserted only loosely (< 2 s:
the machine is shared and timings are noisy). benchmarks/concurrency.py reports it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from reactivex import Observable, abc

from rxtokens import StreamToken, TextDelta
from rxtokens.broadcast import Broadcast
from rxtokens.operators import take_budget
from rxtokens.testing import ProviderServer, Reply, Script, encode

from ._util import PROVIDERS, open_client_connections, open_stream, text_deltas

pytestmark = pytest.mark.timeout(60)

LOOSE_BOUND = 2.0  # seconds


async def _stalled_after_first_text(srv: ProviderServer, name: str) -> None:
    deltas = text_deltas(8)
    events = encode(PROVIDERS[name][1], Script(text=deltas))
    first = next(i for i, e in enumerate(events) if deltas[0].encode() in e)
    srv.queue(Reply(events=events, pause_after=first + 1))  # stall until the client leaves


def _on_first_text(future: asyncio.Future[None]) -> Callable[[StreamToken], None]:
    def on_next(token: StreamToken) -> None:
        if isinstance(token, TextDelta) and not future.done():
            future.set_result(None)

    return on_next


async def _latency(
    srv: ProviderServer, subscribe: Callable[[Callable[[StreamToken], None]], abc.DisposableBase]
) -> float:
    """Subscribe, wait for the first text, dispose; seconds until the server saw it."""
    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_next(token: StreamToken) -> None:
        if isinstance(token, TextDelta) and not first.done():
            first.set_result(None)

    subscription = subscribe(on_next)
    await first
    disposed_at = time.monotonic()
    subscription.dispose()
    record = await srv.wait_ended(within=10)
    assert record.disconnected
    assert not record.completed
    assert record.ended_at is not None
    return record.ended_at - disposed_at


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_dispose_reaches_the_server_quickly(srv: ProviderServer, name: str) -> None:
    await _stalled_after_first_text(srv, name)
    stream = open_stream(srv, name)
    latency = await _latency(srv, lambda on_next: stream.subscribe(on_next))
    print(f"{name}: dispose -> server saw the disconnect in {latency * 1e3:.1f} ms")
    assert latency < LOOSE_BOUND
    assert await open_client_connections() == 0


async def test_last_broadcast_subscriber_leaving_cancels_the_request(
    srv: ProviderServer,
) -> None:
    await _stalled_after_first_text(srv, "anthropic")
    broadcast = Broadcast(open_stream(srv, "anthropic"))
    other = broadcast.subscribe(lambda _: None)

    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    last = broadcast.subscribe(_on_first_text(first))
    await first
    other.dispose()
    assert not srv.requests[-1].ended.is_set()  # one subscriber left: still running
    disposed_at = time.monotonic()
    last.dispose()
    record = await srv.wait_ended(within=10)
    assert record.disconnected
    assert record.ended_at is not None
    assert record.ended_at - disposed_at < LOOSE_BOUND


async def test_take_budget_cancels_the_request_upstream(srv: ProviderServer) -> None:
    await _stalled_after_first_text(srv, "openai")
    tokens: Observable[StreamToken] = open_stream(srv, "openai").pipe(
        take_budget(max_output_tokens=1)
    )
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tokens.subscribe(on_completed=lambda: done.set_result(None), on_error=done.set_exception)
    await done  # completed by the budget, while the server is stalled
    record = await srv.wait_ended(within=10)
    assert record.disconnected
    assert not record.completed


async def test_many_cancellations_leave_nothing_open(srv: ProviderServer) -> None:
    """50 streams disposed mid-answer: the server sees 50 disconnects, the pool is empty."""
    for _ in range(50):
        await _stalled_after_first_text(srv, "openai")
    firsts = [asyncio.get_running_loop().create_future() for _ in range(50)]
    subscriptions = [open_stream(srv, "openai").subscribe(_on_first_text(f)) for f in firsts]
    await asyncio.gather(*firsts)
    for subscription in subscriptions:
        subscription.dispose()
    for index in range(50):
        assert (await srv.wait_ended(index, within=10)).disconnected
    assert await open_client_connections() == 0
