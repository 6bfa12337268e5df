"""Stalls: the idle timeout fires on a silent stream; pings keep a slow stream alive.

A stalled server sends nothing (no bytes, no pings) until the client goes away
(``Reply(pause_after=N)`` with no ``pause``): the stream must fail with
`StreamTimeoutError` (phase ``"idle"``, or ``"first_token"`` before any body byte)
carrying the text received so far, and the client must close the connection (the
server sees the disconnect). Timeouts here are short (0.3 s) but the assertions
are about outcomes, never about how long anything took.
"""

from __future__ import annotations

import asyncio

import pytest

from rxtokens import StreamTimeoutError
from rxtokens.aio import collect
from rxtokens.providers import Timeouts
from rxtokens.testing import ProviderServer, Reply, Script, encode, expected_completion

from ._util import PROVIDERS, open_client_connections, open_stream, text_deltas

pytestmark = pytest.mark.timeout(60)

DELTAS = text_deltas(6)


def _units_through(events: list[bytes], count: int) -> int:
    """How many events to send so that the first `count` deltas are out."""
    marker = DELTAS[count - 1].encode()
    return next(i for i, e in enumerate(events) if marker in e) + 1


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_stall_mid_stream_fires_the_idle_timeout(srv: ProviderServer, name: str) -> None:
    events = encode(PROVIDERS[name][1], Script(text=DELTAS))
    srv.queue(Reply(events=events, pause_after=_units_through(events, 3)))  # stall forever
    timeouts = Timeouts(connect=5, first_token=10, idle=0.3)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(open_stream(srv, name, timeout=timeouts))
    error = info.value
    assert error.phase == "idle"
    assert error.timeout == 0.3
    assert isinstance(error, asyncio.TimeoutError)
    assert error.partial is not None
    assert error.partial.text == "".join(DELTAS[:3])
    record = await srv.wait_ended()
    assert record.disconnected  # the client hung up; the server did not end the stream
    assert not record.completed
    assert await open_client_connections() == 0


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_stall_before_the_first_byte_fires_the_first_token_timeout(
    srv: ProviderServer, name: str
) -> None:
    srv.queue(Reply(script=Script(text=DELTAS), pause_after=0))
    timeouts = Timeouts(connect=5, first_token=0.3, idle=30)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(open_stream(srv, name, timeout=timeouts))
    assert info.value.phase == "first_token"
    # errors.py says partial is None when nothing arrived; aggregate() attaches an empty one
    assert info.value.partial is None or info.value.partial.text == ""
    assert (await srv.wait_ended()).disconnected


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_pings_keep_a_slow_stream_alive(srv: ProviderServer, name: str) -> None:
    """A 0.7 s pause with a ping every 0.05 s under a 0.3 s idle timeout: completes exactly."""
    script = Script(text=DELTAS)
    events = encode(PROVIDERS[name][1], script)
    srv.queue(
        Reply(events=events, pause_after=_units_through(events, 2), pause=0.7, ping_interval=0.05)
    )
    completion = await collect(open_stream(srv, name, timeout=Timeouts(idle=0.3)))
    assert completion == expected_completion(script, PROVIDERS[name][1])
    assert srv.requests[-1].completed


async def test_the_same_pause_without_pings_times_out(srv: ProviderServer) -> None:
    """The control of the test above: without pings the 0.9 s pause is fatal."""
    events = encode("anthropic", Script(text=DELTAS))
    srv.queue(Reply(events=events, pause_after=_units_through(events, 2), pause=0.9))
    with pytest.raises(StreamTimeoutError) as info:
        await collect(open_stream(srv, "anthropic", timeout=Timeouts(idle=0.3)))
    assert info.value.phase == "idle"
    assert info.value.partial is not None
    assert info.value.partial.text == "".join(DELTAS[:2])


async def test_a_slow_but_steady_stream_is_not_idle(srv: ProviderServer) -> None:
    """Events every 0.06 s under a 0.5 s idle timeout: the timeout is per gap, not total."""
    script = Script(text=DELTAS)
    srv.queue(Reply(script=script, delay=0.06))
    completion = await collect(open_stream(srv, "openai", timeout=Timeouts(idle=0.5)))
    assert completion.text == "".join(DELTAS)


async def test_stall_with_pings_only_never_ends_without_a_total_timeout(
    srv: ProviderServer,
) -> None:
    """Pings forever keep the stream alive; the consumer's own deadline still ends it.

    Any bytes count as life (documented), so only a deadline of the caller's can end a
    stream that pings forever; `asyncio.timeout` around `collect` does, and the
    connection is closed.
    """
    events = encode("openai_chat", Script(text=DELTAS))
    srv.queue(Reply(events=events, pause_after=_units_through(events, 2), ping_interval=0.05))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.8):
            await collect(open_stream(srv, "openai", timeout=Timeouts(idle=0.3)))
    record = await srv.wait_ended()
    assert record.disconnected
    assert await open_client_connections() == 0


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_a_ping_only_upstream_ends_with_the_progress_timeout(
    srv: ProviderServer, name: str
) -> None:
    """Pings every 0.05 s keep the idle timeout quiet, but bring no token (issue 15.10)."""
    events = encode(PROVIDERS[name][1], Script(text=DELTAS))
    srv.queue(Reply(events=events, pause_after=_units_through(events, 2), ping_interval=0.05))
    timeouts = Timeouts(idle=30, progress=0.4)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(open_stream(srv, name, timeout=timeouts))
    error = info.value
    assert error.phase == "progress"
    assert error.timeout == 0.4
    assert "pings" in str(error)
    assert error.partial is not None
    assert error.partial.text == "".join(DELTAS[:2])
    assert (await srv.wait_ended()).disconnected
    assert await open_client_connections() == 0


async def test_the_total_deadline_ends_a_stream_that_keeps_making_progress(
    srv: ProviderServer,
) -> None:
    script = Script(text=text_deltas(10_000))
    srv.queue(Reply(script=script, delay=0.02))
    timeouts = Timeouts(progress=30, total=0.5)
    with pytest.raises(StreamTimeoutError) as info:
        await collect(open_stream(srv, "openai", timeout=timeouts))
    assert info.value.phase == "total"
    assert info.value.partial is not None
    assert info.value.partial.text  # what came before the deadline is kept
    assert (await srv.wait_ended()).disconnected
