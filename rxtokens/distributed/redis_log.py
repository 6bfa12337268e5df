"""`RedisTokenLog`: a token log in Redis Streams (`rxtokens.distributed.reader` reads it).

The writer keeps an in-memory mirror (a `MemoryTokenLog`: ``read`` and
``wait`` answer from it, so a `Broadcast` in the writing process is as fast as
with the memory log) and copies it to Redis from one task: the tokens appended
during one event-loop tick go in one ``XADD`` (the entry format is in
`rxtokens.distributed._codec`), with ``MINID`` retention and a TTL on the key.
While the stream runs, the writer refreshes a heartbeat key (``<key>:alive``,
expiring after `LOST_AFTER` heartbeats); a reader that finds neither new
entries nor the heartbeat knows the producer is gone (`ProducerLostError`).

Bounds: a reader notices a dead producer at most ``(LOST_AFTER + 1) *
heartbeat`` after its last heartbeat; an unreachable Redis fails a writer or a
reader after `store_timeout` seconds (`StoreUnavailableError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..completion import CompletionBuilder
from ..errors import ConfigError, StoreUnavailableError
from ..token_log import LogEnd, LogRead, MemoryTokenLog
from ..tokens import Completion
from ._client import (
    LOST_AFTER,
    UNREACHABLE,
    Redis,
    ResponseError,
    alive_key,
    check_seconds,
    connect,
)
from ._codec import encode_batch, encode_end

__all__ = ["RedisTokenLog"]

log = logging.getLogger("rxtokens.distributed")


class RedisTokenLog:
    """A `rxtokens.token_log.TokenLog` kept in a Redis stream, readable from any process.

    Args:
        url: ``redis://HOST:PORT[/DB]``, or a ``redis.asyncio.Redis`` client
            (kept open: the caller owns it).
        key: the Redis key of the stream (the reader's `from_log` names it too).
        retain: tokens kept for readers: None all, N the last N (``XADD MINID``:
            entries hold one tick's tokens, so a token count maps onto entry ids).
        ttl: seconds the key lives after its last write.
        heartbeat: seconds between the producer's heartbeats.
        linger: seconds the writer waits after the first token of a write for
            more (one ``XADD`` for many tokens: the per-token cost stays small;
            readers elsewhere see tokens this much later). 0: one write per tick.
        store_timeout: seconds Redis may stay unreachable before the log gives
            up (default ``LOST_AFTER * heartbeat``).
        on_failure: called once with a `StoreUnavailableError` when it gave up.

    Tokens must be appended on the thread of an asyncio event loop (the one
    running when the log was made, or at the first append). Every append is
    kept in the mirror at once and written within the event-loop tick.

    Example:
        >>> import reactivex
        >>> from rxtokens import Broadcast, TextDelta
        >>> async def produce() -> str:
        ...     log = RedisTokenLog("redis://127.0.0.1:6379", "answers:42")
        ...     b = Broadcast(reactivex.of(TextDelta("Hi")), log=log)
        ...     text = (await b.final).text
        ...     await log.flushed()
        ...     return text
        >>> asyncio.run(produce())  # doctest: +SKIP
        'Hi'
    """

    __slots__ = (
        "_alive",
        "_builder",
        "_client",
        "_failure",
        "_heartbeat",
        "_key",
        "_kick",
        "_kicked",
        "_linger",
        "_loop",
        "_mirror",
        "_on_failure",
        "_own",
        "_pending",
        "_progress",
        "_store_timeout",
        "_task",
        "_thread",
        "_ttl_ms",
        "_written",
    )

    def __init__(
        self,
        url: str | Redis,
        key: str,
        *,
        retain: int | None = None,
        ttl: float = 3600.0,
        heartbeat: float = 1.0,
        linger: float = 0.002,
        store_timeout: float | None = None,
        on_failure: Callable[[StoreUnavailableError], None] | None = None,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"key must be a non-empty string, got {key!r}")
        self._heartbeat = check_seconds("heartbeat", heartbeat)
        if isinstance(linger, bool) or not isinstance(linger, int | float) or not linger >= 0:
            raise ConfigError(f"linger must be >= 0 seconds, got {linger!r}")
        self._linger = float(linger)
        self._ttl_ms = int(check_seconds("ttl", ttl) * 1000)
        self._store_timeout = check_seconds(
            "store_timeout",
            LOST_AFTER * self._heartbeat if store_timeout is None else store_timeout,
        )
        self._mirror = MemoryTokenLog(retain)
        self._key = key
        self._alive = alive_key(key)
        if isinstance(url, str):
            self._client, self._own = connect(url, heartbeat=self._heartbeat), True
        elif isinstance(url, Redis):
            self._client, self._own = url, False
        else:
            raise ConfigError(f"url must be a redis:// URL or a redis.asyncio.Redis, got {url!r}")
        self._on_failure = on_failure
        self._pending: list[Any] | deque[Any] = []
        self._kicked = False
        self._written = 0
        self._builder: CompletionBuilder | None = CompletionBuilder()
        self._failure: StoreUnavailableError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._kick: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        with contextlib.suppress(RuntimeError):
            self._start(asyncio.get_running_loop())

    def __repr__(self) -> str:
        return (
            f"RedisTokenLog(key={self._key!r}, retain={self.retain!r}, "
            f"last_seq={self.last_seq}, written={self._written}, ended={self.end is not None})"
        )

    # ------------------------------------------------------------------ TokenLog

    @property
    def retain(self) -> int | None:
        """How many of the latest tokens are kept (None: all)."""
        return self._mirror.retain

    @property
    def last_seq(self) -> int:
        """The seq of the latest token appended (0 before the first)."""
        return self._mirror.last_seq

    @property
    def end(self) -> LogEnd | None:
        """The end marker, once closed."""
        return self._mirror.end

    @property
    def key(self) -> str:
        """The Redis key of the stream."""
        return self._key

    @property
    def written(self) -> int:
        """The seq of the latest token Redis has acknowledged."""
        return self._written

    @property
    def failure(self) -> StoreUnavailableError | None:
        """Why the log stopped writing to Redis (None while it writes)."""
        return self._failure

    def append(self, token: Any) -> None:
        """Keep `token` in the mirror and queue it for the next write (one per loop tick)."""
        self._mirror.append(token)
        self._pending.append(token)
        if not self._kicked:
            self._kicked = True
            self._wake()

    def close(self, end: LogEnd) -> None:
        """Write the end marker after the queued tokens (once)."""
        if self._mirror.end is None:
            self._mirror.close(end)
            self._kicked = True
            self._wake()

    def read(self, after: int = 0) -> LogRead:
        """The retained entries after `after`, from the mirror (never waits)."""
        return self._mirror.read(after)

    async def wait(self, after: int) -> None:
        """Return once a token after `after` exists or the log ended."""
        await self._mirror.wait(after)

    # ------------------------------------------------------------------ writer

    async def started(self) -> None:
        """Start the writer on the running loop and wait for its first heartbeat in Redis.

        Raises:
            StoreUnavailableError: Redis did not answer within `store_timeout`.
        """
        if self._loop is None:
            self._start(asyncio.get_running_loop())
        await self._retry(lambda: self._client.set(self._alive, 1, px=self._lost_ms()))

    async def flushed(self) -> None:
        """Wait until Redis holds every token appended so far (and the end, once closed).

        Raises:
            StoreUnavailableError: the log gave up writing.
        """
        if self._loop is None:
            self._start(asyncio.get_running_loop())
        while True:
            if self._failure is not None:
                raise self._failure
            task = self._task
            if task is None or task.done():
                return
            if self.end is not None:
                await asyncio.shield(task)  # it ends once the end marker is written
                continue
            if self._written >= self.last_seq:
                return
            assert self._progress is not None
            self._progress.clear()
            await self._progress.wait()

    def _lost_ms(self) -> int:
        return int(LOST_AFTER * self._heartbeat * 1000)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._kick = asyncio.Event()
        self._progress = asyncio.Event()
        self._task = loop.create_task(self._run(), name=f"redis-log:{self._key}")

    def _wake(self) -> None:
        if self._loop is None:
            try:
                self._start(asyncio.get_running_loop())
            except RuntimeError:
                raise ConfigError(
                    "RedisTokenLog.append() needs a running asyncio event loop in this thread "
                    "(make the log inside async code)"
                ) from None
        assert self._kick is not None
        assert self._loop is not None
        if threading.get_ident() == self._thread:
            self._kick.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._kick.set)

    async def _run(self) -> None:
        assert self._kick is not None
        assert self._progress is not None
        assert self._loop is not None
        kick, progress, loop = self._kick, self._progress, self._loop
        next_beat = 0.0
        try:
            while True:
                end = self._mirror.end
                batch, self._pending = self._pending, []
                self._kicked = False
                now = loop.time()
                beat = now >= next_beat
                if batch or beat or end is not None:
                    await self._write(batch, end, beat)
                    progress.set()
                    if beat:
                        next_beat = now + self._heartbeat
                    if end is not None:
                        return
                    if self._pending:  # tokens came during the write: gather more, write them
                        await asyncio.sleep(self._linger)
                        continue
                woke = False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                        await kick.wait()
                        woke = True
                kick.clear()
                if woke and self._mirror.end is None:
                    await asyncio.sleep(self._linger)  # one write for the next few ticks' tokens
        except Exception as error:
            exc = (
                error
                if isinstance(error, StoreUnavailableError)
                else StoreUnavailableError(
                    f"could not write stream {self._key!r} to Redis ({error!r}); it ends here"
                )
            )
            self._failure = exc
            self._pending = deque(maxlen=0)  # later appends stay in the mirror only
            self._kicked = True
            progress.set()
            log.warning("token log %r: %s", self._key, exc)
            if self._on_failure is not None:
                try:
                    self._on_failure(exc)
                except Exception:
                    log.exception("token log %r: on_failure raised", self._key)
        finally:
            progress.set()
            if self._own:
                with contextlib.suppress(Exception):
                    await self._client.aclose()

    async def _write(self, batch: list[Any] | deque[Any], end: LogEnd | None, beat: bool) -> None:
        key = self._key
        commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        last = self._written + len(batch)
        if batch:
            if self._mirror.tokens is None and self._builder is not None:
                try:  # a bounded mirror: build the answer as we go
                    self._builder.add_all(batch)
                except Exception:  # not tokens (a log of other values): no answer
                    self._builder = None
            entry_id, fields = encode_batch(self._written + 1, list(batch))
            retain = self.retain
            minid = None if retain is None else f"{max(0, last - retain + 1)}-0"
            commands.append(
                ("xadd", (key, fields), {"id": entry_id, "minid": minid, "approximate": False})
            )
        if end is not None:
            if end.error is None and end.completion is None:
                end = LogEnd(None, self._answer())
            entry_id, fields = encode_end(last, end)
            commands.append(("xadd", (key, fields), {"id": entry_id}))
            commands.append(("delete", (self._alive,), {}))
        elif beat:
            commands.append(("set", (self._alive, 1), {"px": self._lost_ms()}))
        commands.append(("pexpire", (key, self._ttl_ms), {}))

        async def execute() -> Any:
            pipe = self._client.pipeline(transaction=True)  # a failed pipeline forgets its commands
            for name, args, kwargs in commands:
                getattr(pipe, name)(*args, **kwargs)
            return await pipe.execute()

        await self._retry(execute)
        self._written = last

    def _answer(self) -> Completion | None:
        """The final answer for the end marker (None when the log holds other values)."""
        builder = self._builder
        everything = self._mirror.tokens
        try:
            if everything is not None:  # the mirror holds every token: build the answer once
                builder = CompletionBuilder().add_all(everything)
            if builder is None:
                return None
            try:
                return builder.build()
            except Exception:
                return builder.build(strict=False)
        except Exception:
            return None

    async def _retry(self, command: Callable[[], Any]) -> Any:
        """Run `command` until it succeeds or `store_timeout` has passed."""
        deadline = time.monotonic() + self._store_timeout
        delay = 0.02
        while True:
            try:
                return await command()
            except ResponseError as exc:
                if "equal or smaller" in str(exc):
                    return None  # a retried write that had got in before the connection broke
                raise
            except UNREACHABLE as exc:
                if time.monotonic() >= deadline:
                    raise StoreUnavailableError(
                        f"Redis was unreachable for {self._store_timeout:g} s while writing "
                        f"stream {self._key!r} ({type(exc).__name__}: {exc}); the stream ends here"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._heartbeat)
