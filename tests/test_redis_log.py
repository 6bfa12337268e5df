"""RedisTokenLog against the TokenLog contract and a real redis-server; read_log / from_log."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import reactivex
from redis.asyncio import Redis

import rxtokens
from rxtokens import Broadcast, from_log
from rxtokens.aio import collect, to_list
from rxtokens.distributed import RedisTokenLog, alive_key, connect, read_log
from rxtokens.errors import (
    BroadcastCancelledError,
    ConfigError,
    ProducerLostError,
    ProviderError,
    RemoteStreamError,
    ReplayGapError,
    StoreUnavailableError,
)
from rxtokens.testing.cluster import RedisServer
from rxtokens.token_log import LogEnd, LogRead, MemoryTokenLog, Sequenced, TokenLog
from rxtokens.tokens import Finish, TextDelta
from tests._redis import redis_process

__all__ = ["redis_process"]  # the fixture, imported for pytest

_keys = itertools.count()


@pytest.fixture
async def client(redis_process: RedisServer) -> AsyncIterator[Redis]:
    redis = connect(redis_process.url)
    yield redis
    await redis.aclose()


LogFactory = Callable[[int | None], Any]


@pytest.fixture(params=["memory", "redis"])
async def make_log(request: pytest.FixtureRequest) -> AsyncIterator[LogFactory]:
    """The same contract tests, over both implementations."""
    if request.param == "memory":
        yield MemoryTokenLog
        return
    server: RedisServer = request.getfixturevalue("redis_process")
    made: list[RedisTokenLog] = []

    def make(retain: int | None) -> RedisTokenLog:
        log = RedisTokenLog(server.url, f"contract:{next(_keys)}", retain=retain)
        made.append(log)
        return log

    yield make
    for log in made:
        log.close(LogEnd())
        await log.flushed()


async def test_both_logs_implement_the_interface(make_log: LogFactory) -> None:
    assert isinstance(make_log(None), TokenLog)


@pytest.mark.parametrize(
    ("retain", "count", "after"),
    [(None, 5, 0), (None, 5, 3), (2, 5, 0), (0, 3, 0), (3, 2, 1), (None, 0, 0)],
)
async def test_read_returns_the_retained_entries_after_a_seq(
    make_log: LogFactory, retain: int | None, count: int, after: int
) -> None:
    log = make_log(retain)
    for i in range(count):
        log.append(f"t{i}")
    kept = count if retain is None else min(retain, count)
    first = count - kept + 1
    entries, oldest, end = log.read(after)
    assert (oldest, end, log.last_seq) == (first, None, count)
    assert entries == [Sequenced(s, f"t{s - 1}") for s in range(max(first, after + 1), count + 1)]


async def test_the_end_marker_is_written_once(make_log: LogFactory) -> None:
    log = make_log(0)
    error = ProviderError("boom")
    log.close(LogEnd(error))
    log.close(LogEnd())
    assert log.end == LogEnd(error)
    assert log.read() == LogRead([], 1, LogEnd(error))


async def test_wait_returns_on_append_and_at_the_end(make_log: LogFactory) -> None:
    log = make_log(2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await log.wait(after=0)
    waiter = asyncio.ensure_future(log.wait(after=0))
    await asyncio.sleep(0)
    log.append("x")
    async with asyncio.timeout(10):
        await waiter
    waiter = asyncio.ensure_future(log.wait(after=1))
    await asyncio.sleep(0)
    log.close(LogEnd())
    async with asyncio.timeout(10):
        await waiter


async def test_a_broadcast_stores_into_either_log(make_log: LogFactory) -> None:
    log = make_log(1)
    b: Broadcast[Any] = Broadcast(reactivex.of(TextDelta("a"), TextDelta("b")), log=log)
    b.connect()
    assert (await b.final).text == "ab"
    assert log.read() == LogRead([Sequenced(2, TextDelta("b"))], 2, LogEnd())


# ---------------------------------------------------------------------- Redis only


async def _all(client: Redis, key: str, **kwargs: Any) -> list[Any]:
    async with asyncio.timeout(20):
        return [item async for item in read_log(client, key, **kwargs)]


async def test_tokens_go_to_redis_in_batches_with_the_final_answer(
    redis_process: RedisServer, client: Redis
) -> None:
    log = RedisTokenLog(redis_process.url, "batched", ttl=60)
    tokens = [TextDelta(f"w{i} ") for i in range(200)]
    b: Broadcast[Any] = Broadcast(reactivex.from_iterable([*tokens, Finish("stop")]), log=log)
    b.connect()
    final = await b.final
    await log.flushed()
    assert await client.xlen("batched") < 20  # one entry per loop tick, not per token
    assert 0 < await client.ttl("batched") <= 60
    items = await _all(client, "batched")
    assert [i.token for i in items[:-1]] == [*tokens, Finish("stop")]
    assert [i.seq for i in items[:-1]] == list(range(1, 202))
    assert items[-1] == LogEnd(None, final)
    assert not await client.exists(alive_key("batched"))


async def test_a_reader_resumes_after_any_seq_with_no_gap_or_duplicate(
    redis_process: RedisServer, client: Redis
) -> None:
    log = RedisTokenLog(redis_process.url, "resume")
    for i in range(30):
        log.append(TextDelta(str(i)))
        if i % 7 == 0:
            await asyncio.sleep(0)  # several batches
    log.close(LogEnd())
    await log.flushed()
    for after in (0, 1, 6, 7, 8, 29, 30):
        items = await _all(client, "resume", after=after)
        assert [i.seq for i in items[:-1]] == list(range(after + 1, 31))
    text = (await collect(from_log(redis_process.url, "resume", after=10))).text
    assert text == "".join(str(i) for i in range(10, 30))


async def test_a_live_reader_follows_the_producer(redis_process: RedisServer) -> None:
    log = RedisTokenLog(redis_process.url, "live")
    await log.started()
    reading = asyncio.ensure_future(to_list(from_log(redis_process.url, "live", sequenced=True)))
    for i in range(5):
        log.append(TextDelta(str(i)))
        await asyncio.sleep(0.01)
    log.close(LogEnd())
    async with asyncio.timeout(20):
        items = await reading
    assert items == [Sequenced(i + 1, TextDelta(str(i))) for i in range(5)]


async def test_retention_trims_old_tokens_and_a_resume_before_them_is_a_gap(
    redis_process: RedisServer, client: Redis
) -> None:
    log = RedisTokenLog(redis_process.url, "trim", retain=5)
    for i in range(40):
        log.append(TextDelta(str(i)))
        if i % 4 == 0:
            await log.flushed()  # several entries (retention trims whole entries)
    log.close(LogEnd())
    await log.flushed()
    with pytest.raises(ReplayGapError) as caught:
        await _all(client, "trim", after=2)
    assert caught.value.oldest > 3
    items = await _all(client, "trim", after=2, on_gap="oldest")
    assert items[-2].seq == 40
    assert 5 <= len(items) - 1 < 40


async def test_the_error_and_its_partial_reach_every_reader_typed(
    redis_process: RedisServer,
) -> None:
    for error, kind in (
        (ProviderError("overloaded"), RemoteStreamError),
        (BroadcastCancelledError("stop"), BroadcastCancelledError),
    ):
        key = f"failed:{kind.__name__}"
        log = RedisTokenLog(redis_process.url, key)
        source = reactivex.concat(
            reactivex.of(TextDelta("par"), TextDelta("tial")), reactivex.throw(error)
        )
        Broadcast(source, log=log).connect()
        await log.flushed()
        with pytest.raises(kind) as caught:
            await collect(from_log(redis_process.url, key))
        assert caught.value.partial is not None
        assert caught.value.partial.text == "partial"
    assert isinstance(caught.value, BroadcastCancelledError)


async def test_a_dead_producer_is_reported_with_the_partial_answer(
    redis_process: RedisServer,
) -> None:
    client = connect(redis_process.url)
    log = RedisTokenLog(client, "dying", heartbeat=0.1)
    log.append(TextDelta("half "))
    log.append(TextDelta("done"))
    await log.flushed()
    assert log._task is not None
    log._task.cancel()  # the producer stops heartbeating (its process died)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProducerLostError) as caught:
        await collect(from_log(redis_process.url, "dying", heartbeat=0.1))
    assert loop.time() - started < 4 * 0.1 + 1.0  # LOST_AFTER + 1 heartbeats, plus slack
    assert caught.value.partial is not None
    assert caught.value.partial.text == "half done"
    await client.aclose()


async def test_an_unreachable_redis_fails_the_writer_and_the_reader_typed(
    redis_process: RedisServer,
) -> None:
    failures: list[StoreUnavailableError] = []
    log = RedisTokenLog(redis_process.url, "outage", heartbeat=0.1, on_failure=failures.append)
    await log.started()
    reading = asyncio.ensure_future(collect(from_log(redis_process.url, "outage", heartbeat=0.1)))
    log.append(TextDelta("a"))
    await asyncio.sleep(0.2)
    redis_process.stop()
    log.append(TextDelta("b"))
    async with asyncio.timeout(10):
        with pytest.raises(StoreUnavailableError):
            await reading
        with pytest.raises(StoreUnavailableError):
            await log.flushed()
    assert failures
    assert failures[0] is log.failure
    log.append(TextDelta("c"))  # kept locally, no longer queued
    assert log.read(after=2).entries == [Sequenced(3, TextDelta("c"))]
    redis_process.start()  # service resumes: a new log writes again
    fresh = RedisTokenLog(redis_process.url, "after-outage")
    fresh.append(TextDelta("ok"))
    fresh.close(LogEnd())
    await fresh.flushed()
    assert (await collect(from_log(redis_process.url, "after-outage"))).text == "ok"


@pytest.mark.parametrize(
    "kwargs",
    [{"key": ""}, {"heartbeat": 0}, {"ttl": -1}, {"retain": -1}, {"url": 3}, {"url": "x"}],
)
def test_arguments_are_checked(kwargs: dict[str, Any]) -> None:
    args = {"url": "redis://127.0.0.1:1", "key": "k", **kwargs}
    with pytest.raises(ConfigError):
        RedisTokenLog(args.pop("url"), args.pop("key"), **args)
    with pytest.raises(ConfigError):
        from_log("redis://127.0.0.1:1", "k", after=-1)


@pytest.mark.parametrize("url", ["localhost:6379", "http://127.0.0.1:6379"])
def test_a_url_that_is_not_redis_is_a_config_error_naming_it(url: str) -> None:
    with pytest.raises(ConfigError, match="not a Redis URL") as caught:
        rxtokens.run(from_log(url, "k"))
    assert repr(url) in str(caught.value)
