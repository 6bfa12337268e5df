"""The token log interface and its in-memory implementation (rxtokens.token_log)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.broadcast import Broadcast
from rxtokens.errors import ConfigError, ProviderError
from rxtokens.token_log import LogEnd, LogRead, MemoryTokenLog, Sequenced, TokenLog
from rxtokens.tokens import TextDelta


def test_memory_log_implements_the_interface() -> None:
    assert isinstance(MemoryTokenLog(), TokenLog)


@given(
    retain=st.one_of(st.none(), st.integers(0, 6)),
    count=st.integers(0, 12),
    after=st.integers(0, 14),
)
def test_read_returns_the_retained_entries_after_a_seq(
    retain: int | None, count: int, after: int
) -> None:
    log = MemoryTokenLog(retain)
    for i in range(count):
        log.append(f"t{i}")
    kept = count if retain is None else min(retain, count)
    first = count - kept + 1
    entries, oldest, end = log.read(after)
    assert oldest == first
    assert end is None
    assert entries == [Sequenced(s, f"t{s - 1}") for s in range(max(first, after + 1), count + 1)]
    assert log.last_seq == count


def test_retain_none_exposes_every_token_and_bounded_logs_do_not() -> None:
    everything = MemoryTokenLog()
    everything.append("a")
    assert everything.tokens == ["a"]
    assert MemoryTokenLog(3).tokens is None
    assert MemoryTokenLog(0).tokens is None


def test_the_end_marker_is_written_once() -> None:
    log = MemoryTokenLog(0)
    error = ProviderError("boom")
    log.close(LogEnd(error))
    log.close(LogEnd())
    assert log.end == LogEnd(error)
    assert log.ended
    assert log.read() == LogRead([], 1, LogEnd(error))


@pytest.mark.parametrize("bad", [-1, True, 1.5, "all"])
def test_retain_is_validated(bad: Any) -> None:
    with pytest.raises(ConfigError):
        MemoryTokenLog(bad)


async def test_wait_returns_when_a_token_is_appended_from_another_thread() -> None:
    log = MemoryTokenLog(2)
    waiter = asyncio.ensure_future(log.wait(after=0))
    await asyncio.sleep(0)
    assert not waiter.done()
    thread = threading.Thread(target=log.append, args=("x",))
    thread.start()
    async with asyncio.timeout(10):
        await waiter
    thread.join()
    await log.wait(after=0)  # already there: returns at once


async def test_wait_returns_at_the_end_and_can_be_bounded() -> None:
    log = MemoryTokenLog()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await log.wait(after=0)
    waiter = asyncio.ensure_future(log.wait(after=0))
    await asyncio.sleep(0)
    log.close(LogEnd())
    async with asyncio.timeout(10):
        await waiter


def test_a_broadcast_stores_its_tokens_in_its_log_and_ends_it() -> None:
    log = MemoryTokenLog(retain=1)
    b: Broadcast[Any] = Broadcast(reactivex.of(TextDelta("a"), TextDelta("b")), log=log)
    assert b.log is log
    b.connect()
    assert log.read() == LogRead([Sequenced(2, TextDelta("b"))], 2, LogEnd())
    assert b.completion_so_far().text == "ab"
    late: list[Sequenced] = []
    b.sequenced(after=1).subscribe(late.append)
    assert late == [Sequenced(2, TextDelta("b"))]


def test_a_broadcast_takes_either_replay_or_a_log() -> None:
    with pytest.raises(ConfigError):
        Broadcast(reactivex.empty(), replay=2, log=MemoryTokenLog())
    with pytest.raises(ConfigError):
        Broadcast(reactivex.empty(), log=object())  # type: ignore[arg-type]
