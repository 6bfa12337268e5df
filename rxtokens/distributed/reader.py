"""Reading a Redis token log from any process: `read_log` (async iterator) and `from_log`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from reactivex import Observable

from ..aio import from_async_iterable
from ..completion import CompletionBuilder
from ..errors import ConfigError, ProducerLostError, ReplayGapError, StoreUnavailableError
from ..token_log import LogEnd, Sequenced
from ..tokens import Completion
from ._client import LOST_AFTER, UNREACHABLE, Redis, alive_key, check_seconds, connect
from ._codec import decode_batch, decode_end

__all__ = ["from_log", "read_log"]


async def read_log(
    client: Redis,
    key: str,
    *,
    after: int = 0,
    heartbeat: float = 1.0,
    on_gap: Literal["error", "oldest"] = "error",
    store_timeout: float | None = None,
) -> AsyncIterator[Sequenced | LogEnd]:
    """The `Sequenced` tokens of the log at `key` after seq `after`, then its `LogEnd`.

    Replays what is retained, then follows live (``XREAD BLOCK`` of one
    `heartbeat`). When nothing arrives and the producer's heartbeat key is
    gone, raises `ProducerLostError` with the partial answer from the log.

    Raises:
        ProducerLostError: nobody writes the log (the producer died, or the
            stream never existed / expired).
        ReplayGapError: `after` is older than the retained tokens (``on_gap="error"``).
        StoreUnavailableError: Redis stayed unreachable for `store_timeout`
            (default ``LOST_AFTER * heartbeat``).
    """
    heartbeat = check_seconds("heartbeat", heartbeat)
    limit = check_seconds(
        "store_timeout", LOST_AFTER * heartbeat if store_timeout is None else store_timeout
    )
    last_id = f"{after}-0"
    block = max(1, int(heartbeat * 1000))
    first = True
    failing: float | None = None
    while True:
        try:
            reply: Any = await client.xread({key: last_id}, block=block)
            if not reply and not await client.exists(alive_key(key)):
                reply = await client.xread({key: last_id})  # it may have ended just now
                if not reply:
                    raise ProducerLostError(
                        f"the process producing stream {key!r} stopped (no heartbeat for "
                        f"{LOST_AFTER} x {heartbeat:g} s) before the stream ended",
                        partial=await _partial(client, key),
                    )
            failing = None
        except UNREACHABLE as exc:
            now = time.monotonic()
            failing = now if failing is None else failing
            if now - failing >= limit:
                raise StoreUnavailableError(
                    f"Redis was unreachable for {limit:g} s while reading stream {key!r} "
                    f"({type(exc).__name__}: {exc}); resume later with the last event id"
                ) from None
            await asyncio.sleep(min(0.1, heartbeat))
            continue
        for entry_id, fields in reply[0][1] if reply else ():
            last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            ended = decode_end(fields)
            if ended is not None:
                yield ended[1]
                return
            items = decode_batch(fields)
            if first and items[0].seq > after + 1 and on_gap == "error":
                raise ReplayGapError(
                    f"stream {key!r} cannot resume after seq {after}: the oldest retained "
                    f"token is seq {items[0].seq}",
                    after=after,
                    oldest=items[0].seq,
                )
            first = False
            for item in items:
                if item.seq > after:
                    yield item


async def _partial(client: Redis, key: str) -> Completion:
    builder = CompletionBuilder()
    entries: Any = await client.xrange(key)
    for _entry_id, fields in entries:
        if decode_end(fields) is None:
            builder.add_all(item.token for item in decode_batch(fields))
    return builder.build(strict=False)


def from_log(
    url: str,
    key: str,
    *,
    after: int = 0,
    heartbeat: float = 1.0,
    sequenced: bool = False,
    on_gap: Literal["error", "oldest"] = "error",
) -> Observable[Any]:
    """A cold Observable of the tokens of the Redis token log at `key`, from any process.

    Each subscription connects, replays the retained tokens after seq `after`,
    follows live and ends with the log's end marker: it completes, or errors
    with the typed error the producer recorded (with its ``.partial``); a
    producer that dies gives `ProducerLostError` within ``(LOST_AFTER + 1) *
    heartbeat`` seconds. Subscribe inside a running asyncio loop.

    Args:
        url: ``redis://HOST:PORT[/DB]``.
        key: the key the `RedisTokenLog` writes.
        after: resume after this seq (a ``Last-Event-ID``); 0 replays everything.
        heartbeat: the producer's heartbeat (sets the blocking read and the bound).
        sequenced: emit `Sequenced` (seq, token) instead of bare tokens.
        on_gap: "error" (`ReplayGapError`) or "oldest" when `after` was trimmed.

    Example:
        >>> from rxtokens.aio import collect
        >>> tokens = from_log("redis://127.0.0.1:6379", "answers:42", after=3)
        >>> asyncio.run(collect(tokens)).text  # doctest: +SKIP
        'lo, world'
    """
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ConfigError(f"after must be a non-negative int (a seq), got {after!r}")
    check_seconds("heartbeat", heartbeat)

    async def tokens() -> AsyncIterator[Any]:
        client = connect(url, heartbeat=heartbeat)
        try:
            async for item in read_log(
                client, key, after=after, heartbeat=heartbeat, on_gap=on_gap
            ):
                if isinstance(item, LogEnd):
                    if item.error is not None:
                        raise item.error
                    return
                yield item if sequenced else item.token
        finally:
            await client.aclose()

    return from_async_iterable(tokens)
